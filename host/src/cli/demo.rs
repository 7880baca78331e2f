//! `bmc-rotate demo`: a whole stamp on loopback (simulated iDRAC, iLO and XCC BMCs and a
//! privileged endpoint), one full rotation, then one with an injected failure that rolls back —
//! what the tool does, in under a minute, with nothing to set up.

use super::progress::Display;
use super::rotate::{exit_code, print, save_generated};
use super::{Output, exit};
use crate::demo::{LAB_CLOUDADMIN_PASSWORD, StampLab, mixed_fleet};
use crate::fleet::journal;
use crate::fleet::members;
use crate::fleet::rotation::{self, RotationOptions, RunOutcome, RunSecrets};
use crate::gateway::Limits;
use crate::runtime::{Runtime, RuntimeConfig};
use bmc_lab::faults::Faults;
use bmc_lab::pep::PepConfig;
use secrecy::{ExposeSecret, SecretString};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

const USER: &str = "azsbmc";
const PLUGINS: [&str; 3] = ["dell-idrac", "hpe-ilo", "lenovo-xcc"];

/// Where this source tree builds plugins (when the binary runs from it).
fn workspace() -> Option<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).parent()?.to_owned();
    dir.join("plugins").is_dir().then_some(dir)
}

/// The vendor plugins: from `dir` if given, else built from this source tree (cargo is quick
/// when they are up to date), copied into `into` so nothing else in the build directory loads.
fn plugins(dir: Option<PathBuf>, into: &Path) -> Result<PathBuf, String> {
    if let Some(dir) = dir {
        return Ok(dir);
    }
    let workspace = workspace().ok_or(
        "no plugins: give --plugin-dir with dell_idrac.wasm, hpe_ilo.wasm and lenovo_xcc.wasm (built from this repository)",
    )?;
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace.join("target"))
        .join("wasm");
    eprintln!("building the vendor plugins (wasm32-wasip2) …");
    let _ = Command::new("rustup").args(["target", "add", "wasm32-wasip2"]).current_dir(&workspace).output();
    // The reproducible build the built-in profiles' sha256 pins were taken from.
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let status = crate::plugin_build::command(&cargo, &workspace, &target, &PLUGINS)
        .arg("--quiet")
        .status()
        .map_err(|e| format!("cannot run cargo to build the plugins: {e}"))?;
    if !status.success() {
        return Err("building the plugins failed (see cargo's output above)".into());
    }
    std::fs::create_dir_all(into).map_err(|e| format!("{}: {e}", into.display()))?;
    for plugin in PLUGINS {
        let file = format!("{}.wasm", plugin.replace('-', "_"));
        let from = target.join("wasm32-wasip2/plugin").join(&file);
        std::fs::copy(&from, into.join(&file)).map_err(|e| format!("{}: {e}", from.display()))?;
    }
    Ok(into.to_owned())
}

/// One rotation of the demo stamp from `old` to a generated password, saved in `dir`.
async fn run_once(
    stamp: &StampLab,
    runtime: &Runtime,
    plugin_dir: &Path,
    dir: &Path,
    round: u32,
    old: &SecretString,
) -> Result<(RunOutcome, Option<SecretString>), String> {
    let (inventory, members) = members::load(&stamp.inventory, None, plugin_dir, runtime, Limits::default())
        .await
        .map_err(|e| e.join("; "))?;
    let secrets = RunSecrets { old: Arc::new(old.clone()), new: None };
    let options = RotationOptions { concurrency: 16, dry_run: false, rollback_on_pep_failure: true };
    let journal_path = dir.join(format!("run{round}.jsonl"));
    let password_path = dir.join(format!("run{round}-password"));
    let old_text = old.expose_secret().to_owned();
    let before = |new: &SecretString| {
        // The generated password goes to a new 0600 file, never to the screen.
        save_generated(&password_path, new)?;
        journal::start_run(&journal_path, &inventory, &old_text, new.expose_secret(), true)
    };
    let display = Display::new();
    let (report, journal) = rotation::rotate(
        members,
        &inventory.stamp,
        secrets,
        Some(stamp.pep_step(LAB_CLOUDADMIN_PASSWORD)),
        &options,
        before,
        display.clone(),
    )
    .await?;
    drop(display);
    print(&report, journal.as_deref(), Output::Table);
    let new = std::fs::read_to_string(&password_path).ok().map(|p| SecretString::from(p.trim_end().to_owned()));
    Ok((report.outcome, new))
}

fn confirm(stamp: &StampLab, password: &SecretString, what: &str) -> bool {
    let total = stamp.lab.bmcs().len();
    let holding = stamp.holding(USER, password.expose_secret());
    let pep = stamp.pep.stored().is_some_and(|s| s.password.as_str() == password.expose_secret());
    let ok = holding == total && pep;
    let store = if pep { "stores it too" } else { "stores another password" };
    println!(
        "lab check: {holding}/{total} BMCs accept the {what} password; the PEP {store} — {}\n",
        if ok { "the invariant holds" } else { "INVARIANT BROKEN" }
    );
    ok
}

/// `demo`.
pub async fn demo(plugin_dir: Option<PathBuf>, per_persona: u32, cache_dir: Option<PathBuf>) -> u8 {
    let dir = std::env::temp_dir().join(format!("bmc-rotate-demo-{}", std::process::id()));
    let plugin_dir = match plugins(plugin_dir, &dir.join("plugins")) {
        Ok(dir) => dir,
        Err(e) => {
            eprintln!("error: {e}");
            return exit::BAD_INPUT;
        }
    };
    let start = SecretString::from("Lab-Start_2024!");
    let stamp = match StampLab::start(mixed_fleet(USER, start.expose_secret(), per_persona), PepConfig::default(), &dir)
        .await
    {
        Ok(stamp) => stamp,
        Err(e) => {
            eprintln!("error: cannot start the lab: {e:#}");
            return exit::FAILED;
        }
    };
    let runtime = match Runtime::new(RuntimeConfig { cache_dir, ..RuntimeConfig::default() }) {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("error: cannot start the plugin runtime: {e:#}");
            return exit::FAILED;
        }
    };
    println!(
        "bmc-rotate demo: {} simulated BMCs (iDRAC9/10, iLO 5/6, XCC2/3) on loopback HTTPS and a privileged endpoint \
         with 3 ERCS VMs (WinRM, NTLM, PSRP). Inventory: {}\n",
        stamp.lab.bmcs().len(),
        stamp.inventory.display()
    );
    println!("1) A full rotation: preflight, change with a generated password, verify, Set-BmcCredential.\n");
    let (outcome, new) = match run_once(&stamp, &runtime, &plugin_dir, &dir, 1, &start).await {
        Ok(done) => done,
        Err(e) => {
            eprintln!("error: {e}");
            return exit::FAILED;
        }
    };
    let Some(new) = new.filter(|_| outcome == RunOutcome::Rotated) else {
        eprintln!("error: the first rotation ended {}", outcome.as_str());
        return exit_code(outcome);
    };
    if !confirm(&stamp, &new, "new") {
        return exit::FAILED;
    }

    let victim = stamp.lab.bmcs().iter().find(|b| b.name().starts_with("hpe-ilo6")).unwrap_or(&stamp.lab.bmcs()[0]);
    victim
        .set_faults(Faults { error_500: vec!["PATCH /Accounts/".parse().expect("valid match")], ..Faults::default() });
    println!("2) Again, with {} failing every password change (HTTP 500): the fleet rolls back.\n", victim.name());
    let outcome = match run_once(&stamp, &runtime, &plugin_dir, &dir, 2, &new).await {
        Ok((outcome, _)) => outcome,
        Err(e) => {
            eprintln!("error: {e}");
            return exit::FAILED;
        }
    };
    victim.set_faults(Faults::default());
    if outcome != RunOutcome::RolledBack || !confirm(&stamp, &new, "previous") {
        eprintln!("error: the second rotation ended {}", outcome.as_str());
        return exit::FAILED;
    }
    println!(
        "Journals, the generated passwords (mode 0600) and the inventory are in {}.\n\
         Next: `bmc-rotate status --journal {}`; `bmc-rotate rotate --help` for real stamps.",
        dir.display(),
        dir.join("run2.jsonl").display()
    );
    exit::OK
}

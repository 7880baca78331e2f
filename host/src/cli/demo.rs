//! `bmc-rotate demo`: a whole stamp on loopback (simulated iDRAC, iLO and XCC BMCs and a
//! privileged endpoint), one full rotation, then one with an injected failure that rolls back —
//! what the tool does, in under a minute, with nothing to set up.

use super::progress::Display;
use super::rotate::{exit_code, print, save_generated};
use super::{CliError, CmdResult, RunOutput, exit};
use crate::demo::{LAB_CLOUDADMIN_PASSWORD, StampLab, mixed_fleet};
use crate::fleet::engine::{self, Preflight, RotationOptions, RunOutcome, RunSecrets};
use crate::fleet::journal;
use crate::fleet::members;
use crate::gateway::Limits;
use crate::runtime::{Runtime, RuntimeConfig};
use bmc_lab::faults::Faults;
use bmc_lab::pep::PepConfig;
use secrecy::{ExposeSecret, SecretString};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::sync::Arc;

const USER: &str = "azsbmc";
const PLUGINS: [&str; 4] = ["dell-idrac", "hpe-ilo", "lenovo-xcc", "generic-redfish"];

fn file_name(plugin: &str) -> String {
    format!("{}.wasm", plugin.replace('-', "_"))
}

/// The workspace this binary was built from, only while `cargo run` runs it there: cargo sets
/// `CARGO_MANIFEST_DIR` for the process it runs, and it matches the one compiled in. An
/// installed binary (or a copy on another machine) must never run cargo or rustup in whatever
/// happens to sit at the path it was built from.
fn source_tree() -> Option<PathBuf> {
    let built_in = Path::new(env!("CARGO_MANIFEST_DIR"));
    if Path::new(&std::env::var_os("CARGO_MANIFEST_DIR")?) != built_in {
        return None;
    }
    let workspace = built_in.parent()?;
    workspace.join("plugins").is_dir().then(|| workspace.to_owned())
}

/// The vendor plugins: from `dir` if given; else, under `cargo run`, built from the source tree
/// (cargo is quick when they are up to date) and copied into `into` so nothing else in the
/// build directory loads; else the installed ones.
fn plugins(dir: Option<PathBuf>, into: &Path) -> Result<PathBuf, CliError> {
    match (dir, source_tree()) {
        (Some(dir), _) => Ok(dir),
        (None, Some(workspace)) => build(&workspace, into).map_err(CliError::bad_input),
        (None, None) => installed(),
    }
}

fn installed() -> Result<PathBuf, CliError> {
    let wanted: Vec<String> = PLUGINS.iter().map(|p| file_name(p)).collect();
    let dirs = crate::paths::plugin_dirs();
    if dirs.is_empty() {
        return Err(CliError::bad_input(format!(
            "no plugins: give --plugin-dir DIR with {} (none beside the binary, and no $XDG_DATA_HOME or $HOME to find the installed ones)",
            wanted.join(", ")
        )));
    }
    let missing_in =
        |dir: &Path| -> Vec<&str> { wanted.iter().filter(|f| !dir.join(f).is_file()).map(String::as_str).collect() };
    if let Some(dir) = dirs.iter().find(|d| missing_in(d).is_empty()) {
        return Ok(dir.clone());
    }
    let places: Vec<String> = dirs.iter().map(|d| d.display().to_string()).collect();
    Err(CliError::bad_input(format!(
        "no vendor plugins in {} (missing {}): install the plugins there, give --plugin-dir DIR, or run \
         `cargo run -p bmc-rotate -- demo` in the source tree to build them",
        places.join(" or "),
        missing_in(&dirs[0]).join(", ")
    )))
}

fn build(workspace: &Path, into: &Path) -> Result<PathBuf, String> {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace.join("target"))
        .join("wasm");
    eprintln!("building the vendor plugins (wasm32-wasip2) …");
    let _ = Command::new("rustup").args(["target", "add", "wasm32-wasip2"]).current_dir(workspace).output();
    // The reproducible build the built-in profiles' sha256 pins were taken from.
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let status = crate::plugin_build::command(&cargo, workspace, &target, &PLUGINS)
        .arg("--quiet")
        .status()
        .map_err(|e| format!("cannot run cargo to build the plugins: {e}"))?;
    if !status.success() {
        return Err("building the plugins failed (see cargo's output above)".into());
    }
    std::fs::create_dir_all(into).map_err(|e| format!("{}: {e}", into.display()))?;
    for plugin in PLUGINS {
        let file = file_name(plugin);
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
    let (inventory, members) = members::load(&stamp.inventory, None, &[plugin_dir], runtime, Limits::default())
        .await
        .map_err(|e| e.join("; "))?;
    let secrets = RunSecrets { old: Arc::new(old.clone()), new: None };
    let options = RotationOptions {
        concurrency: 16,
        rollback_on_pep_failure: true,
        cancel: crate::fleet::cancel::Cancel::new(),
        ledger: crate::fleet::ledger::Ledger::new(),
        snmp: engine::SnmpMode::Require,
    };
    let journal_path = dir.join(format!("run{round}.jsonl"));
    let password_path = dir.join(format!("run{round}-password"));
    let display = Display::new();
    let pep = Some(stamp.pep_step(LAB_CLOUDADMIN_PASSWORD));
    let observer: Arc<dyn engine::Observer> = display.clone();
    let (report, journal) = match engine::preflight(members, &inventory.stamp, secrets, pep, &options, observer).await {
        Preflight::Stopped(report) => (report, None),
        Preflight::Passed(preflighted) => {
            // The generated password goes to a new 0600 file, never to the screen.
            save_generated(&password_path, preflighted.new_password())?;
            let new = preflighted.new_password().expose_secret();
            let journal = journal::start_run(&journal_path, &inventory, old.expose_secret(), new, true)?;
            (preflighted.execute(journal).await?, Some(journal_path))
        }
    };
    drop(display);
    print(&report, journal.as_deref(), RunOutput::Table);
    let new = crate::files::open_bounded(&password_path, "the generated password", crate::files::MAX_SECRET_FILE)
        .and_then(|file| file.read_secret())
        .ok()
        .and_then(|bytes| std::str::from_utf8(&bytes).ok().map(|p| SecretString::from(p.trim_end().to_owned())));
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
pub async fn demo(plugin_dir: Option<PathBuf>, per_persona: u32, cache_dir: Option<PathBuf>) -> CmdResult {
    let dir = std::env::temp_dir().join(format!("bmc-rotate-demo-{}", std::process::id()));
    let plugin_dir = plugins(plugin_dir, &dir.join("plugins"))?;
    let start = SecretString::from("Lab-Start_2024!");
    let fleet = mixed_fleet(USER, start.expose_secret(), per_persona);
    let stamp = StampLab::start(fleet, PepConfig::default(), &dir)
        .await
        .map_err(|e| CliError::failed(format!("cannot start the lab: {e:#}")))?;
    let runtime = Runtime::new(RuntimeConfig { cache_dir, ..RuntimeConfig::default() })
        .map_err(|e| CliError::failed(format!("cannot start the plugin runtime: {e:#}")))?;
    println!(
        "bmc-rotate demo: {} simulated BMCs (iDRAC9/10, iLO 5/6/7, XCC 1/2/3) on loopback HTTPS and a privileged endpoint \
         with 3 ERCS VMs (WinRM, NTLM, PSRP). Inventory: {}\n",
        stamp.lab.bmcs().len(),
        stamp.inventory.display()
    );
    println!("1) A full rotation: preflight, change with a generated password, verify, Set-BmcCredential.\n");
    let (outcome, new) = run_once(&stamp, &runtime, &plugin_dir, &dir, 1, &start).await.map_err(CliError::failed)?;
    let Some(new) = new.filter(|_| outcome == RunOutcome::Rotated) else {
        return Err(CliError::new(exit_code(outcome), format!("the first rotation ended {}", outcome.as_str())));
    };
    if !confirm(&stamp, &new, "new") {
        // `confirm` said what broke.
        return Ok(ExitCode::from(exit::FAILED));
    }

    let victim = stamp.lab.bmcs().iter().find(|b| b.name().starts_with("hpe-ilo6")).unwrap_or(&stamp.lab.bmcs()[0]);
    victim
        .set_faults(Faults { error_500: vec!["PATCH /Accounts/".parse().expect("valid match")], ..Faults::default() });
    println!("2) Again, with {} failing every password change (HTTP 500): the fleet rolls back.\n", victim.name());
    let (outcome, _) = run_once(&stamp, &runtime, &plugin_dir, &dir, 2, &new).await.map_err(CliError::failed)?;
    victim.set_faults(Faults::default());
    if outcome != RunOutcome::RolledBack || !confirm(&stamp, &new, "previous") {
        return Err(CliError::failed(format!("the second rotation ended {}", outcome.as_str())));
    }
    println!(
        "Journals, the generated passwords (mode 0600) and the inventory are in {}.\n\
         Next: `bmc-rotate status --journal {}`; `bmc-rotate rotate --help` for real stamps.",
        dir.display(),
        dir.join("run2.jsonl").display()
    );
    Ok(ExitCode::SUCCESS)
}

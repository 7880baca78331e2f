//! `bmc-rotate onboard` against a lab stamp with new nodes whose BMCs have only their factory
//! account, through the real binary, the real vendor plugins and HTTPS BMCs on loopback.
// Process groups (setsid): Unix, as cli_rotate.rs.
#![cfg(unix)]

use bmc_lab::FleetSpec;
use bmc_lab::pep::PepConfig;
use bmc_rotate::demo::{LAB_CLOUDADMIN_PASSWORD, StampLab};
use bmc_rotate::gateway::{TlsPolicy, client_config};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const USER: &str = "azsbmc";
const STAMP_PASSWORD: &str = "Onb-Stamp_Pass-1";
const NEXT: &str = "Onb-Next_Pass-2";
/// The lab's factory credentials (vendor defaults; iLO's is printed on each server's tag).
const NEW_NODES: [(&str, &str, &str); 3] = [
    ("dell-idrac9", "root", "calvin"),
    ("hpe-ilo5", "Administrator", "Tag-8CHR"),
    ("lenovo-xcc2", "USERID", "PASSW0RD"),
];

/// A stamp with one BMC of each persona that has the stamp account, and one new node each.
async fn stamp(name: &str) -> (StampLab, PathBuf) {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("cli-onboard-{name}"));
    let _ = std::fs::remove_dir_all(&dir);
    let mut spec = format!("stamp = \"{name}\"\npassword = \"{STAMP_PASSWORD}\"\nuser = \"{USER}\"\n");
    for (persona, _, factory) in NEW_NODES {
        spec.push_str(&format!("[[group]]\npersona = \"{persona}\"\ncount = 1\n"));
        spec.push_str(&format!(
            "[[group]]\npersona = \"{persona}\"\ncount = 1\nnew_node = true\npassword = \"{factory}\"\n"
        ));
    }
    let spec = FleetSpec::parse(&spec).unwrap();
    (StampLab::start(spec, PepConfig::default(), &dir).await.unwrap(), dir)
}

fn command<S: AsRef<std::ffi::OsStr>>(args: Vec<S>) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_bmc-rotate"));
    command
        .args(args)
        .env("BMC_ROTATE_CACHE_DIR", Path::new(env!("CARGO_TARGET_TMPDIR")).join("cli-artifact-cache"))
        .env("XDG_STATE_HOME", Path::new(env!("CARGO_TARGET_TMPDIR")).join("cli-onboard-state"))
        .env("ONB_STAMP", STAMP_PASSWORD)
        .env("ONB_NEXT", NEXT)
        .env("ONB_CLOUD", LAB_CLOUDADMIN_PASSWORD);
    // No controlling terminal, as in CI.
    // SAFETY: setsid is async-signal-safe and touches no memory of the parent.
    unsafe {
        std::os::unix::process::CommandExt::pre_exec(&mut command, || {
            libc::setsid();
            Ok(())
        });
    }
    command
}

async fn bmc_rotate(args: Vec<String>, factory: &str) -> Output {
    let mut command = command(args);
    command.env("ONB_FACTORY", factory);
    tokio::task::spawn_blocking(move || command.output().unwrap()).await.unwrap()
}

fn onboard_args(stamp: &StampLab, dir: &Path, bmc: &str, from_user: &str) -> Vec<String> {
    let plugins = bmc_tests::vendor_plugin_dir();
    [
        "onboard",
        "--inventory",
        stamp.inventory.to_str().unwrap(),
        "--plugin-dir",
        plugins.to_str().unwrap(),
        "--audit-log",
        dir.join("audit.jsonl").to_str().unwrap(),
        "--bmc",
        bmc,
        "--from-user",
        from_user,
        "--from-password",
        "env:ONB_FACTORY",
        "--bmc-password",
        "env:ONB_STAMP",
        "--yes",
    ]
    .map(String::from)
    .to_vec()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Logins the BMC refused (401 answers: iDRAC counts failures per client address, not per
/// account).
fn refused_logins(stamp: &StampLab, bmc: &str) -> usize {
    stamp.lab.bmc(bmc).unwrap().state().requests().iter().filter(|r| r.status == 401).count()
}

fn holds(stamp: &StampLab, bmc: &str, user: &str, password: &str) -> bool {
    stamp.lab.bmc(bmc).unwrap().state().password_is(user, password)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_vendors_new_node_is_onboarded_then_rotated_with_the_stamp() {
    let (stamp, dir) = stamp("onboard-all").await;
    for (persona, from_user, factory) in NEW_NODES {
        let bmc = format!("{persona}-02");
        assert!(stamp.lab.bmc(&bmc).unwrap().state().account(USER).is_none(), "{bmc} starts in factory state");
        let mut args = onboard_args(&stamp, &dir, &bmc, from_user);
        args.extend(["--output".into(), "json".into()]);
        let out = bmc_rotate(args, factory).await;
        assert_eq!(out.status.code(), Some(0), "{bmc}: {}", text(&out.stderr));
        let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(report["outcome"], "created", "{report}");
        assert_eq!(report["checked_on"], "dell-idrac9-01", "{report}");
        assert!(holds(&stamp, &bmc, USER, STAMP_PASSWORD), "{bmc} holds the stamp password");
        assert!(holds(&stamp, &bmc, from_user, factory), "{bmc}: the factory account is left as it was");
        for t in [text(&out.stdout), text(&out.stderr)] {
            assert!(!t.contains(STAMP_PASSWORD) && !t.contains(factory), "a secret was printed: {t}");
        }
    }
    let audit = std::fs::read_to_string(dir.join("audit.jsonl")).unwrap();
    assert_eq!(audit.matches("\"command\":\"onboard\"").count(), 3, "{audit}");
    assert_eq!(audit.matches("\"outcome\":\"onboarded-created\"").count(), 3, "{audit}");
    assert!(!audit.contains(STAMP_PASSWORD));

    // The stamp, new nodes included, rotates as one.
    let plugins = bmc_tests::vendor_plugin_dir();
    let rotate: Vec<String> = [
        "rotate",
        "--inventory",
        stamp.inventory.to_str().unwrap(),
        "--plugin-dir",
        plugins.to_str().unwrap(),
        "--audit-log",
        dir.join("audit.jsonl").to_str().unwrap(),
        "--journal",
        dir.join("run.jsonl").to_str().unwrap(),
        "--bmc-password",
        "env:ONB_STAMP",
        "--new-password",
        "env:ONB_NEXT",
        "--cloudadmin-password",
        "env:ONB_CLOUD",
        // An account set up in a fixed slot has the BMC's default SNMPv3 settings (off).
        "--snmp",
        "warn",
        "--yes",
    ]
    .map(String::from)
    .to_vec();
    let out = bmc_rotate(rotate, "").await;
    assert_eq!(out.status.code(), Some(0), "{}\n{}", text(&out.stdout), text(&out.stderr));
    for bmc in stamp.lab.bmcs() {
        assert!(holds(&stamp, bmc.name(), USER, NEXT), "{} rotated", bmc.name());
    }

    // That rotation loses its end (as if killed before the PEP step ended): its BMCs may hold two
    // passwords, so onboarding waits for it to be resumed, and contacts nothing.
    let journal = dir.join("run.jsonl");
    let lines: Vec<String> = std::fs::read_to_string(&journal).unwrap().lines().map(String::from).collect();
    let cut = lines.iter().position(|l| l.contains("\"pep-started\"") || l.contains("pep_started")).unwrap();
    std::fs::write(&journal, lines[..cut].join("\n") + "\n").unwrap();
    let requests = || -> usize { stamp.lab.bmcs().iter().map(|b| b.state().requests().len()).sum() };
    let before = requests();
    let out = bmc_rotate(onboard_args(&stamp, &dir, "dell-idrac9-02", "root"), "calvin").await;
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    let stderr = text(&out.stderr);
    assert!(stderr.contains("did not finish") && stderr.contains("bmc-rotate resume --journal"), "{stderr}");
    assert_eq!(requests(), before, "no BMC was contacted");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_stamp_password_costs_one_login_on_an_existing_bmc_and_leaves_the_new_one_untouched() {
    let (stamp, dir) = stamp("onboard-wrong-stamp").await;
    let mut args = onboard_args(&stamp, &dir, "hpe-ilo5-02", "Administrator");
    let at = args.iter().position(|a| a == "env:ONB_STAMP").unwrap();
    args[at] = "env:ONB_NEXT".into();
    let out = bmc_rotate(args, "Tag-8CHR").await;
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    let stderr = text(&out.stderr);
    assert!(stderr.contains("dell-idrac9-01: the stamp password was not accepted"), "{stderr}");
    assert!(stderr.contains("one failed login") && stderr.contains("nothing was changed on hpe-ilo5-02"), "{stderr}");
    assert_eq!(refused_logins(&stamp, "dell-idrac9-01"), 1);
    assert_eq!(refused_logins(&stamp, "hpe-ilo5-02"), 0);
    assert_eq!(stamp.lab.changes(), 0, "nothing was changed anywhere");
    assert!(stamp.lab.bmc("hpe-ilo5-02").unwrap().state().account(USER).is_none());
    let audit = std::fs::read_to_string(dir.join("audit.jsonl")).unwrap();
    assert!(audit.contains("\"outcome\":\"stamp-password-refused\""), "{audit}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_factory_password_costs_one_login_on_the_new_bmc() {
    let (stamp, dir) = stamp("onboard-wrong-factory").await;
    let out = bmc_rotate(onboard_args(&stamp, &dir, "lenovo-xcc2-02", "USERID"), "Not-The-Factory-1").await;
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    let stderr = text(&out.stderr);
    assert!(stderr.contains("lenovo-xcc2-02: onboarding `azsbmc` as `USERID` failed: auth-failed"), "{stderr}");
    assert!(stderr.contains("nothing was changed (one failed login on it)"), "{stderr}");
    assert!(stderr.contains("hint: check the factory password of `USERID`"), "{stderr}");
    assert_eq!(refused_logins(&stamp, "lenovo-xcc2-02"), 1);
    assert!(stamp.lab.bmc("lenovo-xcc2-02").unwrap().state().account(USER).is_none());
    assert!(!stderr.contains("Not-The-Factory-1") && !stderr.contains(STAMP_PASSWORD));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_names_what_is_wrong_and_changes_nothing() {
    let (stamp, dir) = stamp("onboard-bad-input").await;
    let out = bmc_rotate(onboard_args(&stamp, &dir, "node-99", "root"), "calvin").await;
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    let stderr = text(&out.stderr);
    assert!(stderr.contains("no BMC named `node-99`") && stderr.contains("dell-idrac9-02"), "{stderr}");
    assert!(stderr.contains("hint: add the new node's [[bmc]] entry"), "{stderr}");
    let out = bmc_rotate(onboard_args(&stamp, &dir, "dell-idrac9-02", USER), "calvin").await;
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    assert!(text(&out.stderr).contains("is the stamp's bmc_user"), "{}", text(&out.stderr));
    assert_eq!(stamp.lab.changes(), 0);
    assert_eq!(refused_logins(&stamp, "dell-idrac9-01"), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn disable_from_account_leaves_the_factory_login_refused() {
    let (stamp, dir) = stamp("onboard-disable").await;
    for (persona, from_user, factory) in NEW_NODES {
        let bmc = format!("{persona}-02");
        let mut args = onboard_args(&stamp, &dir, &bmc, from_user);
        args.push("--disable-from-account".into());
        let out = bmc_rotate(args, factory).await;
        assert_eq!(out.status.code(), Some(0), "{bmc}: {}", text(&out.stderr));
        assert!(text(&out.stdout).contains(&format!("{bmc}: `{from_user}` disabled")), "{}", text(&out.stdout));
        {
            let state = stamp.lab.bmc(&bmc).unwrap().state();
            assert!(!state.account(from_user).unwrap().enabled, "{bmc}: `{from_user}` is disabled");
            assert!(state.account(USER).unwrap().enabled && state.password_is(USER, STAMP_PASSWORD));
        }
        // The factory login itself, over HTTPS: refused.
        let (addr, pin) = {
            let served = stamp.lab.bmc(&bmc).unwrap();
            (served.addr(), TlsPolicy::PinnedSha256(served.sha256()))
        };
        let client = reqwest::Client::builder().use_preconfigured_tls(client_config(&pin).unwrap()).build().unwrap();
        let answer = client
            .get(format!("https://{addr}/redfish/v1/AccountService"))
            .basic_auth(from_user, Some(factory))
            .send()
            .await
            .unwrap();
        assert_eq!(answer.status().as_u16(), 401, "{bmc}: the factory login is refused");
    }
}

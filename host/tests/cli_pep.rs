//! `bmc-rotate pep check|set-credential` as an operator runs them, against the lab's PEP
//! simulator: the binary, real sockets, secrets from the environment and stdin.

use bmc_lab::pep::{PepConfig, PepFaults, PepSimulator};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

const CLOUD: &str = "Cloud-Adm1n-Lab!";
const NEW: &str = "Cli-Canary-8842";

fn inventory(sim: &PepSimulator, dir: &Path, extra: &str) -> PathBuf {
    std::fs::create_dir_all(dir).unwrap();
    let endpoints: Vec<String> = sim.addrs().iter().map(|a| format!("\"{a}\"")).collect();
    let text = format!(
        "stamp = \"{}\"\nbmc_user = \"azsbmc\"\nprofile = \"dell-poweredge-r640\"\n\n[pep]\nendpoints = [{}]\ncloudadmin = '{}'\n{extra}\n[[bmc]]\nname = \"node01\"\naddress = \"127.0.0.1:1\"\n",
        // One stamp per test directory: each has its own stamp lock.
        dir.file_name().unwrap().to_string_lossy(),
        endpoints.join(", "),
        sim.account()
    );
    let path = dir.join("inventory.toml");
    std::fs::write(&path, text).unwrap();
    path
}

fn scratch(name: &str) -> PathBuf {
    Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("cli-pep-{name}"))
}

fn bmc_rotate(args: &[&str], stdin: &str) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_bmc-rotate"))
        .args(args)
        .env("XDG_STATE_HOME", Path::new(env!("CARGO_TARGET_TMPDIR")).join("cli-pep-state"))
        .env("PEP_TEST_CLOUD", CLOUD)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(stdin.as_bytes()).unwrap();
    child.wait_with_output().unwrap()
}

/// Runs the binary on a blocking thread so the simulator keeps serving on the test's runtime.
async fn run(args: Vec<String>, stdin: &str) -> (Option<i32>, String, String) {
    let stdin = stdin.to_owned();
    let out = tokio::task::spawn_blocking(move || {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        bmc_rotate(&args, &stdin)
    })
    .await
    .unwrap();
    let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    (out.status.code(), text(&out.stdout), text(&out.stderr))
}

fn args(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| (*s).to_owned()).collect()
}

/// `pep set-credential` with the CloudAdmin and new passwords from these sources.
fn set_credential(inventory: &str, cloudadmin: &str, new: &str) -> Vec<String> {
    args(&[
        "pep",
        "set-credential",
        "--inventory",
        inventory,
        "--cloudadmin-password",
        cloudadmin,
        "--new-password",
        new,
    ])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn set_credential_leaves_the_pep_holding_the_new_credential() {
    let sim = PepSimulator::start(PepConfig::default()).await.unwrap();
    let inv = inventory(&sim, &scratch("set"), "");
    let inv = inv.to_str().unwrap();
    let (code, stdout, stderr) = run(set_credential(inv, "env:PEP_TEST_CLOUD", "stdin"), &format!("{NEW}\n")).await;
    assert_eq!(code, Some(0), "{stderr}");
    assert!(
        stdout.contains("call:")
            && stdout.contains("Set-BmcCredential -BmcPassword <SecureString> -BmcUser 'azsbmc' -BypassBMCUpdate"),
        "{stdout}"
    );
    assert!(stdout.lines().any(|l| l.starts_with("stored:") && l.trim_end().ends_with(" yes")), "{stdout}");
    assert!(stderr.contains("pep: session open"), "{stderr}");
    let stored = sim.stored().unwrap();
    assert_eq!((stored.user.as_deref(), stored.password.as_str()), (Some("azsbmc"), NEW));
    for secret in [NEW, CLOUD] {
        assert!(!stdout.contains(secret) && !stderr.contains(secret), "a secret was printed");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_reports_the_call_as_json_and_changes_nothing() {
    let sim = PepSimulator::start(PepConfig::default()).await.unwrap();
    let inv = inventory(&sim, &scratch("check"), "");
    let (code, stdout, stderr) = run(
        args(&[
            "pep",
            "check",
            "--inventory",
            inv.to_str().unwrap(),
            "--cloudadmin-password",
            "stdin",
            "--output",
            "json",
        ]),
        &format!("{CLOUD}\n"),
    )
    .await;
    assert_eq!(code, Some(0), "{stderr}");
    let json: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(json["status"], "ok");
    assert_eq!(json["report"]["cmdlet"]["cmdlet"], "set-bmc-credential");
    assert_eq!(json["report"]["stored"], false);
    assert!(sim.stored().is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failures_are_specific_and_use_the_documented_exit_codes() {
    let sim = PepSimulator::start(PepConfig::default()).await.unwrap();
    let dir = scratch("fail");
    let inv = inventory(&sim, &dir, "");
    let inv = inv.to_str().unwrap();

    let (code, _, stderr) = run(set_credential(inv, "stdin", "env:PEP_TEST_CLOUD"), "Wrong-Cloud-Pw\n").await;
    assert_eq!(code, Some(1), "{stderr}");
    assert!(stderr.contains(r"refused the credential of AZURESTACK\CloudAdmin"), "{stderr}");
    assert!(!stderr.contains("Wrong-Cloud-Pw"));

    sim.set_faults(PepFaults { drop_mid_pipeline: 3, ..PepFaults::default() });
    let (code, _, stderr) = run(set_credential(inv, "env:PEP_TEST_CLOUD", "stdin"), &format!("{NEW}\n")).await;
    assert_eq!(code, Some(4), "outcome unknown: {stderr}");
    assert!(stderr.contains("run the same command again"), "{stderr}");
    sim.set_faults(PepFaults::default());

    // Bad input changes nothing and names what is wrong.
    let (code, _, stderr) =
        run(args(&["pep", "check", "--inventory", "/nonexistent/inv.toml", "--cloudadmin-password", "stdin"]), "x\n")
            .await;
    assert_eq!(code, Some(2));
    assert!(stderr.contains("/nonexistent/inv.toml: cannot read the inventory"), "{stderr}");
    let (code, _, stderr) =
        run(args(&["pep", "check", "--inventory", inv, "--cloudadmin-password", "Hunter2-Typed"]), "").await;
    assert_eq!(code, Some(2));
    assert!(stderr.contains("never given on the command line") && !stderr.contains("Hunter2-Typed"), "{stderr}");
    let (code, _, stderr) = run(set_credential(inv, "env:PEP_TEST_CLOUD", "stdin"), "Seventeen-Chars-1\n").await;
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("17 characters"), "{stderr}");
    let (code, _, stderr) = run(set_credential(inv, "env:PEP_TEST_CLOUD", "stdin"), "").await;
    assert_eq!(code, Some(2));
    assert!(stderr.contains("stdin ended"), "{stderr}");
    assert_eq!(sim.store_count(), 3, "only the three dropped attempts ever reached the store");
}

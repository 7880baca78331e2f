//! `plugin test --bmc`: the conformance suite against a BMC the tool does not run itself. The
//! BMC is a bmc-lab persona served by this test process over real TLS on loopback, and the
//! `bmc-rotate` binary reaches it as an operator's would, through its certificate pin; the test
//! then reads what the BMC itself recorded: how many logins it refused, which password it holds.
//! Runs in the lean build too (`--no-default-features`): this mode needs no lab in the binary.

use bmc_lab::{Persona, SimulatedBmc};
use bmc_tests::wasm;
use serde_json::Value;
use std::process::{Command, Output};

const PASSWORD: &str = "Orig-Pass-4u";

fn plugin_test(bmc: &SimulatedBmc, plugin: &str, password: &str, extra: &[&str]) -> Output {
    let cache = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("cli-artifact-cache");
    let address = format!("127.0.0.1:{}", bmc.addr().port());
    let user = bmc.persona().profile().default_account.1;
    let file = wasm(plugin);
    let mut args = vec!["plugin", "test", file.to_str().unwrap(), "--bmc", &address];
    let pin = bmc.pin();
    args.extend(["--tls", &pin, "--account", user, "--password-from", "env:PLUGIN_TEST_PASSWORD"]);
    args.extend(extra);
    Command::new(env!("CARGO_BIN_EXE_bmc-rotate"))
        .args(&args)
        .env("BMC_ROTATE_CACHE_DIR", cache)
        .env("PLUGIN_TEST_PASSWORD", password)
        // The recovery file, should one ever be written, lands in the test's scratch space.
        .current_dir(env!("CARGO_TARGET_TMPDIR"))
        .output()
        .unwrap()
}

fn report(out: &Output) -> Value {
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}\n{}", String::from_utf8_lossy(&out.stdout), stderr(out)))
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// What the BMC recorded: refused logins (a session login or Basic credentials answered 401; a
/// session that died with its password is not one) and PATCHes.
fn seen(bmc: &SimulatedBmc) -> (usize, usize) {
    let requests = bmc.state().requests();
    let login = |r: &&bmc_lab::bmc::LoggedRequest| {
        r.auth.starts_with("basic") || (r.method == "POST" && r.path.trim_end_matches('/').ends_with("/Sessions"))
    };
    let refused = requests.iter().filter(login).filter(|r| r.status == 401).count();
    (refused, requests.iter().filter(|r| r.method == "PATCH").count())
}

fn scenarios(report: &Value) -> Vec<(String, bool)> {
    report["verdicts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| (v["scenario"].as_str().unwrap().to_owned(), v["passed"] == true))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn read_only_costs_exactly_one_failed_login_and_changes_nothing() {
    let bmc = SimulatedBmc::start_local(Persona::Ilo6, PASSWORD).await.unwrap();
    let out = tokio::task::block_in_place(|| plugin_test(&bmc, "hpe_ilo", PASSWORD, &["--output", "json"]));
    let report = report(&out);
    assert_eq!(out.status.code(), Some(0), "{report:#}\n{}", stderr(&out));
    assert!(stderr(&out).contains("costs exactly one failed login on this BMC"), "said up front: {}", stderr(&out));
    let names: Vec<String> = scenarios(&report).into_iter().map(|(n, _)| n).collect();
    assert_eq!(
        names,
        [
            "capabilities within the vendor profile",
            "verify accepts the password",
            "probe finds the account",
            "probe reports the live policy",
            "a wrong password is refused once"
        ]
    );
    assert_eq!(report["failed_logins"], 1, "{report:#}");
    assert_eq!(report["changed"], false);
    assert!(report["original_password_in_place"].is_null());
    // The BMC's own record: one refused login, nothing changed.
    assert_eq!(seen(&bmc), (1, 0));
    let user = bmc.persona().profile().default_account.1;
    assert!(bmc.state().password_is(user, PASSWORD));
    let policy = &report["verdicts"][3]["detail"];
    assert!(policy.as_str().unwrap().contains("characters"), "{policy}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn allow_change_changes_and_leaves_the_original_password_in_place() {
    let bmc = SimulatedBmc::start_local(Persona::Idrac10, PASSWORD).await.unwrap();
    let out = tokio::task::block_in_place(|| plugin_test(&bmc, "dell_idrac", PASSWORD, &["--allow-change"]));
    let table = String::from_utf8_lossy(&out.stdout).into_owned();
    assert_eq!(out.status.code(), Some(0), "{table}\n{}", stderr(&out));
    assert!(table.contains("self-change rotates and proves") && table.contains("7 passed, 0 failed"), "{table}");
    assert!(table.contains("failed logins on the BMC: 1"), "{table}");
    // Changed away and back, one refused login in all, and the original password holds.
    assert_eq!(seen(&bmc), (1, 2));
    let user = bmc.persona().profile().default_account.1;
    assert!(bmc.state().password_is(user, PASSWORD), "the original password is back");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bmc_that_keeps_a_password_history_is_not_changed() {
    // XCC refuses the last five passwords: going back would fail, so nothing is changed.
    let bmc = SimulatedBmc::start_local(Persona::Xcc3, PASSWORD).await.unwrap();
    let out = tokio::task::block_in_place(|| {
        plugin_test(&bmc, "lenovo_xcc", PASSWORD, &["--allow-change", "--output", "json"])
    });
    let report = report(&out);
    assert_eq!(out.status.code(), Some(1), "{report:#}");
    let failed: Vec<_> = scenarios(&report).into_iter().filter(|(_, passed)| !passed).map(|(n, _)| n).collect();
    assert_eq!(failed, ["self-change rotates and proves", "changing back restores the original"]);
    let detail = report["verdicts"][5]["detail"].as_str().unwrap();
    assert!(detail.contains("not run: the BMC refuses the last 5 passwords"), "{detail}");
    assert_eq!(seen(&bmc), (1, 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_password_the_bmc_refuses_stops_the_run_after_one_failed_login() {
    let bmc = SimulatedBmc::start_local(Persona::Ilo6, PASSWORD).await.unwrap();
    let out = tokio::task::block_in_place(|| plugin_test(&bmc, "hpe_ilo", "Not-The-Pass-1", &["--output", "json"]));
    let report = report(&out);
    assert_eq!(out.status.code(), Some(1), "{report:#}");
    let verdicts = scenarios(&report);
    assert_eq!(verdicts.len(), 3, "{report:#}");
    assert!(!verdicts[1].1 && verdicts[2].0 == "the rest of the suite" && !verdicts[2].1, "{report:#}");
    assert!(report["verdicts"][2]["detail"].as_str().unwrap().contains("not run"));
    assert_eq!(report["failed_logins"], 1);
    assert_eq!(seen(&bmc), (1, 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_password_never_travels_over_an_unchecked_connection() {
    let bmc = SimulatedBmc::start_local(Persona::Ilo6, PASSWORD).await.unwrap();
    let address = format!("127.0.0.1:{}", bmc.addr().port());
    let file = wasm("hpe_ilo");
    let out = tokio::task::block_in_place(|| {
        Command::new(env!("CARGO_BIN_EXE_bmc-rotate"))
            .args(["plugin", "test", file.to_str().unwrap(), "--bmc", &address, "--tls", "insecure"])
            .args(["--account", "Administrator", "--password-from", "env:PLUGIN_TEST_PASSWORD"])
            .env("PLUGIN_TEST_PASSWORD", PASSWORD)
            .output()
            .unwrap()
    });
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("never travels over an unchecked connection"), "{}", stderr(&out));
    assert!(bmc.state().requests().is_empty(), "nothing was sent");
}

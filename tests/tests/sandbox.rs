//! Hostile guests from `tests/guests/`: each misbehaviour is contained with a clear error.

use bmc_rotate::gateway::{Endpoint, Gateway, Limits, Outbound, TlsPolicy};
use bmc_rotate::runtime::contract::{MAX_MESSAGE_LEN, MAX_NAME_LEN};
use bmc_rotate::runtime::host::log::{MAX_LOG_EMITTED, MAX_LOG_LINES};
use bmc_rotate::runtime::metadata::MetadataError;
use bmc_rotate::runtime::{CallContext, CallError, ErrorKind, LoadError, Plugin, SecretBindings, SecretName, Target};
use bmc_tests::mini_bmc::MiniBmc;
use bmc_tests::{runtime, test_config, wasm};
use secrecy::SecretString;
use std::sync::Arc;
use std::time::{Duration, Instant};

async fn hostile() -> Arc<Plugin> {
    runtime().load_file(&wasm("guest_hostile")).await.unwrap()
}

const CANARY: &str = "Canary\"Pw\\42ü";

fn ctx(bmc: Option<&MiniBmc>) -> CallContext {
    let gateway = bmc.map(|bmc| {
        let addr = bmc.server().addr();
        let tls = TlsPolicy::PinnedSha256(bmc.server().sha256());
        let gateway = Gateway::pinned(Endpoint::new("127.0.0.1", addr.port()), addr, tls, Limits::default());
        Arc::new(gateway.unwrap()) as Arc<dyn Outbound>
    });
    let secrets = SecretBindings::new()
        .bind(SecretName::LoginPassword, Arc::new(SecretString::from(CANARY.to_owned())))
        .bind(SecretName::NewPassword, Arc::new(SecretString::from("Canary-New-43".to_owned())));
    CallContext { gateway, secrets, budget: None }
}

fn misbehave(what: &str) -> Target {
    Target { address: "bmc".into(), account: what.into(), login_account: "root".into() }
}

#[tokio::test]
async fn an_infinite_loop_is_stopped_at_the_deadline() {
    let budget = test_config().call_budget;
    let started = Instant::now();
    let outcome = hostile().await.change_password(ctx(None), &misbehave("spin")).await;
    assert!(matches!(outcome.result, Err(CallError::Deadline(b)) if b == budget), "{:?}", outcome.result.err());
    let elapsed = started.elapsed();
    assert!(elapsed >= budget && elapsed < budget + Duration::from_secs(3), "stopped after {elapsed:?}");
}

#[tokio::test]
async fn a_memory_bomb_hits_the_limit() {
    let outcome = hostile().await.change_password(ctx(None), &misbehave("grow")).await;
    match outcome.result {
        Err(CallError::Memory { limit_mib, requested_mib }) => {
            assert_eq!(limit_mib, 32);
            assert!(requested_mib > 32);
        }
        other => panic!("expected a memory-limit error, got {:?}", other.err()),
    }
}

#[tokio::test]
async fn other_hosts_and_absolute_urls_are_denied() {
    let bmc = MiniBmc::start(&[("root", "x")]).await;
    for what in ["absolute-url", "authority"] {
        let outcome = hostile().await.change_password(ctx(Some(&bmc)), &misbehave(what)).await;
        let message = outcome.result.unwrap_err().to_string();
        assert!(message.contains("refused") && message.contains("Denied"), "{what}: {message}");
    }
    assert!(bmc.requests().is_empty());
}

#[tokio::test]
async fn a_panic_reports_its_message() {
    let outcome = hostile().await.change_password(ctx(None), &misbehave("panic")).await;
    match outcome.result {
        Err(CallError::Panic(text)) => {
            assert!(text.contains("hostile guest panicked on purpose"), "{text}")
        }
        other => panic!("expected a panic error, got {:?}", other.err()),
    }
}

#[tokio::test]
async fn a_host_sleep_is_cut_at_the_deadline() {
    let budget = test_config().call_budget;
    let started = Instant::now();
    let outcome = hostile().await.change_password(ctx(None), &misbehave("sleep")).await;
    // The minute-long sleep ends at the deadline, and the guest is stopped right after it.
    assert!(matches!(outcome.result, Err(CallError::Deadline(_))), "{:?}", outcome.result.err());
    assert!(started.elapsed() < budget + Duration::from_secs(2), "{:?}", started.elapsed());
}

#[tokio::test]
async fn a_guest_never_reads_an_answer_holding_a_secret() {
    let bmc = MiniBmc::start(&[("root", CANARY)]).await;
    let outcome = hostile().await.change_password(ctx(Some(&bmc)), &misbehave("steal")).await;
    // The secret-bearing body to `/echo` is refused before sending; the Basic credential it
    // then sends comes back reflected, and the call ends there: the guest reads nothing.
    let error = outcome.result.unwrap_err();
    let CallError::SecretEchoed(text) = &error else { panic!("expected the call to end on the echo, got {error:?}") };
    assert!(text.contains("POST /echo") && text.contains("contained a secret"), "{text}");
    let log: String = outcome.log.iter().map(|l| l.message.as_str()).collect();
    assert!(!log.contains("stolen"), "the guest never got to report: {log}");
    let escaped = serde_json::to_string(CANARY).unwrap();
    for leak in [CANARY, &escaped[1..escaped.len() - 1], "Canary-New-43", "echo-token-0001"] {
        assert!(!text.contains(leak) && !log.contains(leak), "`{leak}` leaked: {text} / {log}");
    }
}

/// The target account `root` on a mini BMC, the mode in the address.
fn attack(mode: &str) -> Target {
    Target { address: format!("hostile:{mode}"), account: "root".into(), login_account: "root".into() }
}

#[tokio::test]
async fn every_oracle_and_every_misplaced_secret_is_forbidden_before_sending() {
    let bmc = MiniBmc::start(&[("admin", "Admin-Pass-1"), ("root", CANARY)]).await;
    let outcome = hostile().await.change_password(ctx(Some(&bmc)), &attack("oracles")).await;
    let report = outcome.result.unwrap_err().plugin_error().expect("the guest reports each attempt").message.clone();
    let attempts: Vec<&str> = report.split(" | ").collect();
    let secret_bearing = [
        "create-with-secret",
        "rename-target",
        "guess-beside-secret",
        "secret-as-name",
        "secret-twice",
        "login-secret-to-account",
        "secret-elsewhere",
        "login-as-other",
        "basic-as-other",
    ];
    for label in secret_bearing {
        let line =
            attempts.iter().find(|a| a.starts_with(label)).unwrap_or_else(|| panic!("{label} missing: {report}"));
        assert!(line.contains("Forbidden("), "{label} was not forbidden: {line}");
    }
    // Granted by this guest's (deliberately broad) manifest, and carrying no secret: sent.
    for label in ["create-account", "delete-account"] {
        let line = attempts.iter().find(|a| a.starts_with(label)).unwrap();
        assert!(line.contains("HTTP"), "{label}: {line}");
    }
    // Nothing changed: no PATCH ever reached the BMC, both passwords are as they were.
    assert!(bmc.requests().iter().all(|r| !r.starts_with("PATCH")), "{:?}", bmc.requests());
    assert_eq!(bmc.password_of("root").as_deref(), Some(CANARY));
    assert_eq!(bmc.password_of("admin").as_deref(), Some("Admin-Pass-1"));
}

#[tokio::test]
async fn a_guest_that_guesses_right_is_ended_not_answered() {
    let bmc = MiniBmc::start(&[("root", CANARY)]).await;
    let plugin = hostile().await;
    let wrong = plugin.change_password(ctx(Some(&bmc)), &attack("equality:Not-The-Password")).await;
    let report = wrong.result.unwrap_err().plugin_error().expect("answered").message.clone();
    assert!(report.contains("equality: HTTP 200"), "{report}");
    // The right guess is not answered differently: the call ends before the guest reads it.
    let right = plugin.change_password(ctx(Some(&bmc)), &attack(&format!("equality:{CANARY}"))).await;
    assert!(matches!(right.result, Err(CallError::SecretEchoed(_))), "{:?}", right.result.err());
}

#[tokio::test]
async fn an_echo_in_any_encoding_ends_the_call() {
    let bmc = MiniBmc::start(&[("root", CANARY)]).await;
    let plugin = hostile().await;
    for encoding in bmc_tests::mini_bmc::ENCODINGS {
        let outcome = plugin.change_password(ctx(Some(&bmc)), &attack(&format!("encoded:{encoding}"))).await;
        assert!(matches!(outcome.result, Err(CallError::SecretEchoed(_))), "{encoding}: {:?}", outcome.result.err());
    }
    // The endpoint answers normally when nothing secret is in it: the test is not vacuous.
    let outcome = plugin.change_password(ctx(Some(&bmc)), &attack("encoded:none")).await;
    let report = outcome.result.unwrap_err().plugin_error().expect("answered").message.clone();
    assert!(report.contains("none: HTTP 404"), "{report}");
}

#[tokio::test]
async fn the_conformance_suite_reports_the_manifest_and_fails_an_over_reaching_one() {
    let verdict = bmc_rotate::conformance::capabilities_verdict(&*hostile().await);
    assert!(!verdict.passed && verdict.detail.contains("POST /redfish/v1/AccountService/Accounts"), "{verdict:?}");
    for name in ["dell_idrac", "hpe_ilo", "lenovo_xcc"] {
        let plugin = runtime().load_file(&wasm(name)).await.unwrap();
        let verdict = bmc_rotate::conformance::capabilities_verdict(&plugin);
        assert!(verdict.passed && verdict.detail.contains("PATCH {account} password=/Password"), "{name}: {verdict:?}");
    }
}

#[tokio::test]
async fn the_profiles_refuse_a_plugin_that_asks_to_create_or_delete_accounts() {
    let plugin = hostile().await;
    let profiles = bmc_rotate::fleet::profiles::Profiles::built_in();
    for profile in profiles.iter() {
        let err = profile.check_capabilities(&plugin.metadata.capabilities, &plugin.origin).unwrap_err();
        assert!(err.contains("POST /redfish/v1/AccountService/Accounts") && err.contains("DELETE"), "{err}");
    }
}

#[tokio::test]
async fn guest_chosen_sizes_cost_the_host_no_more_than_the_bounds() {
    let bmc = MiniBmc::start(&[("root", CANARY)]).await;
    let budget = test_config().call_budget;
    let outcome = hostile().await.change_password(ctx(Some(&bmc)), &misbehave("oversize")).await;
    // Every request was refused before the host kept anything of it, and the 8 MiB log line was
    // cut before it was searched: the call ends on its own, well inside its budget.
    let error = outcome.result.unwrap_err();
    let report = &error.plugin_error().expect("the guest returns what it was told").message;
    assert_eq!(report.matches("limit is 256").count(), 8, "{}", &report[..report.len().min(300)]);
    assert!(outcome.elapsed < budget, "took {:?} of a {budget:?} budget", outcome.elapsed);
    let line = &outcome.log[0].message;
    assert!(line.len() <= MAX_MESSAGE_LEN + '…'.len_utf8(), "{} bytes kept", line.len());
}

#[tokio::test]
async fn no_length_range_or_encoding_side_channel() {
    let bmc = MiniBmc::start(&[("root", CANARY)]).await;
    let outcome = hostile().await.change_password(ctx(Some(&bmc)), &misbehave("lengths")).await;
    let report = outcome.result.unwrap_err().plugin_error().expect("typed").message.clone();
    let headers = report.split(" | ").next().unwrap();
    assert!(headers.starts_with("headers: ") && headers.contains("content-type"), "{report}");
    assert!(!headers.contains("content-length") && !headers.contains("content-range"), "{report}");
    assert_eq!(report.matches("may not be set").count(), 2, "Range and Accept-Encoding are refused: {report}");
}

#[tokio::test]
async fn a_log_flood_is_capped() {
    let outcome = hostile().await.change_password(ctx(None), &misbehave("flood")).await;
    assert!(outcome.result.is_ok(), "{:?}", outcome.result.err());
    assert_eq!(outcome.log.len(), MAX_LOG_LINES);
    assert_eq!(outcome.log_suppressed, 100_000 - u64::from(MAX_LOG_EMITTED));
}

#[tokio::test]
async fn plugin_text_reaches_tables_and_logs_escaped_and_capped() {
    let plugin = hostile().await;
    let probe = plugin.probe(ctx(None), &misbehave("inject")).await.result.expect("probe answers");
    let change = plugin.change_password(ctx(None), &misbehave("inject")).await;
    let error = change.result.unwrap_err().plugin_error().expect("typed").message.clone();
    for text in [&probe.family, &probe.firmware, &probe.account_uri, &error, &change.log[0].message] {
        assert!(!text.chars().any(char::is_control), "raw control characters in {text:?}");
        assert!(!text.contains('\u{202e}'), "a bidirectional override in {text:?}");
    }
    assert!(probe.family.starts_with("\\u{1b}[2J"), "{}", probe.family);
    assert!(probe.firmware.len() <= MAX_NAME_LEN + '…'.len_utf8());
    assert!(error.len() <= MAX_MESSAGE_LEN + '…'.len_utf8());
}

#[tokio::test]
async fn an_unsupported_api_version_is_refused_before_compiling() {
    let error = runtime().load_file(&wasm("guest_future_api")).await.err().expect("refused");
    assert!(
        matches!(&error, LoadError::Refused { source: MetadataError::UnsupportedVersion { found, .. }, .. } if found.major == 9),
        "{error}"
    );
    let text = error.to_string();
    assert!(text.contains("9.0.0") && text.contains("^0.2.0"), "{text}");
}

#[tokio::test]
async fn sockets_and_wasi_http_are_refused_at_load() {
    let error = runtime().load_file(&wasm("guest_forbidden_imports")).await.err().expect("refused");
    let LoadError::Refused { source: MetadataError::ForbiddenImports(imports), .. } = &error else {
        panic!("expected forbidden imports, got {error}");
    };
    assert!(imports.iter().any(|i| i.starts_with("wasi:sockets/")), "{imports:?}");
    assert!(imports.iter().any(|i| i.starts_with("wasi:http/")), "{imports:?}");
    assert!(error.to_string().contains("sandbox does not provide"));
}

#[tokio::test]
async fn misbehaving_jobs_leave_the_plugin_usable() {
    let plugin = hostile().await;
    let _ = plugin.change_password(ctx(None), &misbehave("panic")).await;
    let _ = plugin.change_password(ctx(None), &misbehave("grow")).await;
    let again = plugin.change_password(ctx(None), &misbehave("nothing")).await;
    let error = again.result.unwrap_err();
    assert_eq!(error.plugin_error().map(|e| e.kind), Some(ErrorKind::Unsupported));
}

#[tokio::test]
async fn a_directory_loads_each_plugin_on_its_own() {
    let dir = wasm("guest_sample").parent().unwrap().to_owned();
    let results = runtime().load_dir(&dir).await.unwrap();
    let ok: Vec<_> = results.iter().filter_map(|(_, r)| r.as_ref().ok()).map(|p| p.info.id.clone()).collect();
    assert!(ok.contains(&"sample".to_owned()) && ok.contains(&"hostile".to_owned()), "{ok:?}");
    assert!(results.iter().filter(|(_, r)| r.is_err()).count() >= 2);
}

/// Onboarding `azsbmc` on a mini BMC, logged in as `root`, the mode in the address.
fn onboarding(mode: &str) -> Target {
    Target { address: format!("hostile:{mode}"), account: "azsbmc".into(), login_account: "root".into() }
}

#[tokio::test]
async fn onboarding_creates_only_the_stamp_account_with_the_secret_where_declared() {
    let bmc = MiniBmc::start(&[("admin", "Admin-Pass-1"), ("root", CANARY)]).await;
    let outcome = hostile().await.enable_account(ctx(Some(&bmc)), &onboarding("onboard-oracles")).await;
    let report = outcome.result.unwrap_err().plugin_error().expect("the guest reports each attempt").message.clone();
    let attempts: Vec<&str> = report.split(" | ").collect();
    for label in ["other-name", "secret-elsewhere", "login-password", "weaker-role", "login-slot", "unseen-slot"] {
        let line =
            attempts.iter().find(|a| a.starts_with(label)).unwrap_or_else(|| panic!("{label} missing: {report}"));
        assert!(line.contains("Forbidden("), "{label} was not forbidden: {line}");
    }
    assert!(bmc.requests().iter().all(|r| !r.starts_with("PATCH")), "{:?}", bmc.requests());
    assert_eq!(bmc.password_of("root").as_deref(), Some(CANARY));
    assert_eq!(bmc.password_of("azsbmc"), None);
}

#[tokio::test]
async fn only_onboarding_may_create_an_account_whatever_the_manifest_declares() {
    let bmc = MiniBmc::start(&[("root", CANARY)]).await;
    let target =
        Target { address: "hostile:create-account".into(), account: "azsbmc".into(), login_account: "root".into() };
    let outcome = hostile().await.change_password(ctx(Some(&bmc)), &target).await;
    let report = outcome.result.unwrap_err().plugin_error().expect("the guest reports the attempt").message.clone();
    assert!(report.starts_with("create-account: Forbidden("), "{report}");
    assert_eq!(bmc.password_of("azsbmc"), None);
}

//! A real component built from `tests/guests/sample`, run by the real host, against a loopback
//! HTTPS BMC: every export, both ways of rotating, and the typed errors.

use bmc_rotate::gateway::{Endpoint, Gateway, Limits, TlsPolicy};
use bmc_rotate::runtime::{CallContext, ErrorKind, SecretBindings, SecretName, Target};
use bmc_tests::mini_bmc::MiniBmc;
use bmc_tests::{runtime, wasm};
use secrecy::SecretString;
use std::sync::Arc;

fn gateway(bmc: &MiniBmc) -> Arc<Gateway> {
    let addr = bmc.server().addr();
    let tls = TlsPolicy::PinnedSha256(bmc.server().sha256());
    Arc::new(Gateway::pinned(Endpoint::new("127.0.0.1", addr.port()), addr, tls, Limits::default()).unwrap())
}

fn secret(s: &str) -> Arc<SecretString> {
    Arc::new(SecretString::from(s.to_owned()))
}

fn ctx(gateway: &Arc<Gateway>, login: &str, new: Option<&str>) -> CallContext {
    let mut secrets = SecretBindings::new().bind(SecretName::LoginPassword, secret(login));
    if let Some(new) = new {
        secrets = secrets.bind(SecretName::NewPassword, secret(new));
    }
    CallContext { gateway: Some(gateway.clone()), secrets, budget: None }
}

fn target(account: &str, login: &str) -> Target {
    Target { address: "mini-bmc".into(), account: account.into(), login_account: login.into() }
}

#[tokio::test]
async fn every_export_round_trips() {
    let bmc = MiniBmc::start(&[("admin", "Admin-Pass-1"), ("root", "Old-Pass-1")]).await;
    let gw = gateway(&bmc);
    let plugin = runtime().load_file(&wasm("guest_sample")).await.unwrap();
    assert_eq!(plugin.info.id, "sample");
    assert_eq!(plugin.info.families, ["redfish"]);
    assert_eq!(plugin.metadata.api_version.to_string(), "0.2.0");

    let probe = plugin.probe(ctx(&gw, "Old-Pass-1", None), &target("root", "root")).await.result.unwrap();
    assert_eq!(probe.account_uri, "/redfish/v1/AccountService/Accounts/2");
    assert_eq!((probe.policy.min_length, probe.policy.max_length), (8, 20));
    assert_eq!(probe.firmware, "1.15.0");

    plugin.verify(ctx(&gw, "Old-Pass-1", None), &target("root", "root")).await.result.unwrap();
    let wrong = plugin.verify(ctx(&gw, "Not-The-Pass", None), &target("root", "root")).await.result.unwrap_err();
    let wrong = wrong.plugin_error().expect("a typed error");
    assert_eq!(wrong.kind, ErrorKind::AuthFailed);
    assert!(wrong.message.contains("NoValidSession"), "{}", wrong.message);
    assert_eq!(bmc.session_count(), 0, "every session was logged out");
}

#[tokio::test]
async fn self_change_then_reconcile_by_an_administrator() {
    let bmc = MiniBmc::start(&[("admin", "Admin-Pass-1"), ("root", "Old-Pass-1")]).await;
    let gw = gateway(&bmc);
    let plugin = runtime().load_file(&wasm("guest_sample")).await.unwrap();

    // root changes its own password; the plugin re-logs in with the new one.
    let changed = plugin.change_password(ctx(&gw, "Old-Pass-1", Some("New-Pass-2")), &target("root", "root")).await;
    changed.result.unwrap();
    assert_eq!(bmc.password_of("root").as_deref(), Some("New-Pass-2"));
    assert!(changed.log.iter().any(|l| l.message.contains("password of `root` changed")), "{:?}", changed.log);
    plugin.verify(ctx(&gw, "New-Pass-2", None), &target("root", "root")).await.result.unwrap();

    // admin puts root back (the rollback path).
    plugin
        .change_password(ctx(&gw, "Admin-Pass-1", Some("Old-Pass-1")), &target("root", "admin"))
        .await
        .result
        .unwrap();
    assert_eq!(bmc.password_of("root").as_deref(), Some("Old-Pass-1"));
    assert_eq!(bmc.password_of("admin").as_deref(), Some("Admin-Pass-1"));
    assert!(bmc.requests().contains(&"PATCH account 2 by admin".to_owned()));
}

#[tokio::test]
async fn a_policy_rejection_carries_the_vendor_message_and_changes_nothing() {
    let bmc = MiniBmc::start(&[("root", "Old-Pass-1")]).await;
    let gw = gateway(&bmc);
    let plugin = runtime().load_file(&wasm("guest_sample")).await.unwrap();
    let outcome = plugin.change_password(ctx(&gw, "Old-Pass-1", Some("short")), &target("root", "root")).await;
    let error = outcome.result.unwrap_err();
    let error = error.plugin_error().expect("a typed error");
    assert_eq!(error.kind, ErrorKind::PolicyRejected);
    assert!(error.message.contains("8 to 20 characters"), "{}", error.message);
    assert_eq!(bmc.password_of("root").as_deref(), Some("Old-Pass-1"));
}

#[tokio::test]
async fn an_unknown_account_is_reported_by_name() {
    let bmc = MiniBmc::start(&[("root", "Old-Pass-1")]).await;
    let gw = gateway(&bmc);
    let plugin = runtime().load_file(&wasm("guest_sample")).await.unwrap();
    let error = plugin.probe(ctx(&gw, "Old-Pass-1", None), &target("operator", "root")).await.result.unwrap_err();
    let error = error.plugin_error().expect("a typed error");
    assert_eq!(error.kind, ErrorKind::AccountNotFound);
    assert!(error.message.contains("`operator`") && error.message.contains("root"), "{}", error.message);
}

#[tokio::test]
async fn loading_twice_hits_the_cache() {
    let first = runtime().load_file(&wasm("guest_sample")).await.unwrap();
    let second = runtime().load_file(&wasm("guest_sample")).await.unwrap();
    assert!(Arc::ptr_eq(&first, &second));
    assert_eq!(first.sha256.len(), 64);
}

//! The vendor plugins, as real components in the real host, against the lab's personas: the
//! happy path both ways of rotating, every vendor quirk, and the faults.

use bmc_lab::Persona;
use bmc_lab::faults::Faults;
use bmc_rotate::conformance::LabBmc;
use bmc_rotate::gateway::Limits;
use bmc_rotate::runtime::{CallError, ErrorKind, Plugin};
use bmc_tests::{runtime, wasm};
use std::sync::Arc;
use std::time::Duration;

const START: &str = "Start-Pass-1x";
const NEXT: &str = "Next-Pass-2y";

fn plugin_for(persona: Persona) -> &'static str {
    match persona {
        Persona::Idrac9 | Persona::Idrac10 => "dell_idrac",
        Persona::Ilo5 | Persona::Ilo6 | Persona::Ilo7 => "hpe_ilo",
        Persona::Xcc1 | Persona::Xcc2 | Persona::Xcc3 => "lenovo_xcc",
        Persona::DmtfGeneric => "generic_redfish",
    }
}

async fn plugin(name: &str) -> Arc<Plugin> {
    runtime().load_file(&wasm(name)).await.unwrap_or_else(|e| panic!("{name}: {e}"))
}

async fn bench(persona: Persona) -> LabBmc {
    bench_with(persona, Limits::default()).await
}

async fn bench_with(persona: Persona, limits: Limits) -> LabBmc {
    LabBmc::start(persona, START, limits).await.unwrap()
}

fn kind(error: &CallError) -> ErrorKind {
    error.plugin_error().unwrap_or_else(|| panic!("not a plugin error: {error}")).kind
}

#[tokio::test]
async fn every_plugin_rotates_its_own_account_on_every_persona() {
    for persona in Persona::ALL {
        let plugin = plugin(plugin_for(persona)).await;
        let b = bench(persona).await;
        let probe =
            plugin.probe(b.ctx(START, None), &b.own()).await.result.unwrap_or_else(|e| panic!("{persona}: {e}"));
        assert!(plugin.info.families.contains(&probe.family), "{persona}: family {}", probe.family);
        assert_eq!(probe.policy.max_length, persona.profile().policy.max_length, "{persona}");
        assert!(!probe.firmware.is_empty(), "{persona}");
        plugin.verify(b.ctx(START, None), &b.own()).await.result.unwrap_or_else(|e| panic!("{persona}: {e}"));

        let changed = plugin.change_password(b.ctx(START, Some(NEXT)), &b.own()).await;
        changed.result.unwrap_or_else(|e| panic!("{persona}: {e}"));
        assert!(b.bmc.state().password_is(b.user, NEXT), "{persona}");
        plugin.verify(b.ctx(NEXT, None), &b.own()).await.result.unwrap();
        let old = plugin.verify(b.ctx(START, None), &b.own()).await.result.unwrap_err();
        assert_eq!(kind(&old), ErrorKind::AuthFailed, "{persona}");
        assert!(!old.to_string().contains(START), "{persona}: the error quotes no secret");
    }
}

#[tokio::test]
async fn an_administrator_reconciles_another_account() {
    for persona in Persona::ALL {
        let plugin = plugin(plugin_for(persona)).await;
        let b = bench(persona).await;
        b.bmc.state().add_account("azsbmc", "Drifted-Pass-3z", "Operator").unwrap();
        let target = b.target("azsbmc", b.user);
        let probe = plugin.probe(b.ctx(START, None), &target).await.result.unwrap();
        assert!(probe.account_uri.contains("/Accounts/"), "{persona}: {}", probe.account_uri);
        plugin
            .change_password(b.ctx(START, Some(NEXT)), &target)
            .await
            .result
            .unwrap_or_else(|e| panic!("{persona}: {e}"));
        let state = b.bmc.state();
        assert!(state.password_is("azsbmc", NEXT) && state.password_is(b.user, START), "{persona}");
    }
}

#[tokio::test]
async fn a_wrong_profile_fails_in_probe_with_a_clear_message() {
    let pairs = [("hpe_ilo", Persona::Idrac9), ("dell_idrac", Persona::Xcc2), ("lenovo_xcc", Persona::Ilo5)];
    for (name, persona) in pairs {
        let b = bench(persona).await;
        let error = plugin(name).await.probe(b.ctx(START, None), &b.own()).await.result.unwrap_err();
        assert_eq!(kind(&error), ErrorKind::Unsupported, "{name} on {persona}");
        assert!(error.to_string().contains("check the hardware profile"), "{error}");
        assert!(
            b.bmc.state().requests().iter().all(|r| r.auth == "none"),
            "{name}: no credential was sent to the wrong BMC"
        );
    }
}

#[tokio::test]
async fn policy_refusals_quote_the_vendor() {
    let cases = [
        // iLO's messages carry no text, only their MessageId and arguments.
        (Persona::Ilo6, "Sh0rt!", "InvalidPasswordLength"),
        (Persona::Ilo5, "onlylowercase1", "InvalidPasswordComplexity"),
        (Persona::Idrac9, "alllowercase1", "Password"),
        (Persona::Xcc2, "Paaassw0rd", "repeat"),
    ];
    for (persona, bad, quote) in cases {
        let b = bench(persona).await;
        if persona == Persona::Ilo5 {
            // iLO ships with complexity off; an administrator switches it on.
            b.bmc.state().policy_mut().complexity = bmc_lab::persona::Complexity::ThreeOfFour;
        }
        let error = plugin(plugin_for(persona))
            .await
            .change_password(b.ctx(START, Some(bad)), &b.own())
            .await
            .result
            .unwrap_err();
        assert_eq!(kind(&error), ErrorKind::PolicyRejected, "{persona}: {error}");
        assert!(error.to_string().contains(quote), "{persona}: {error}");
        assert!(!error.to_string().contains(bad), "{persona}: the refused password is scrubbed: {error}");
        assert!(b.bmc.state().password_is(b.user, START));
    }
}

#[tokio::test]
async fn xcc_reuse_cycle_refuses_a_rollback() {
    let b = bench(Persona::Xcc3).await;
    let xcc = plugin("lenovo_xcc").await;
    xcc.change_password(b.ctx(START, Some(NEXT)), &b.own()).await.result.unwrap();
    let back = xcc.change_password(b.ctx(NEXT, Some(START)), &b.own()).await.result.unwrap_err();
    assert_eq!(kind(&back), ErrorKind::PolicyRejected);
    assert!(back.to_string().contains("last 5 passwords"), "{back}");
    let probe = xcc.probe(b.ctx(NEXT, None), &b.own()).await.result.unwrap();
    assert_eq!(probe.policy.reuse_cycle, 5, "probe reports the cycle so the host can plan rollbacks");
}

#[tokio::test]
async fn xcc_retries_a_stale_tag_once() {
    let b = bench(Persona::Xcc2).await;
    let xcc = plugin("lenovo_xcc").await;
    b.bmc.set_faults(Faults { intermittent_412_every: 2, ..Faults::default() });
    // The first PATCH passes, the retry is not needed; the second change hits the 412 and retries.
    xcc.change_password(b.ctx(START, Some(NEXT)), &b.own()).await.result.unwrap();
    let outcome = xcc.change_password(b.ctx(NEXT, Some("Third-Pass-4w")), &b.own()).await;
    outcome.result.unwrap();
    assert!(outcome.log.iter().any(|l| l.message.contains("retrying once")), "{:?}", outcome.log);
    assert!(b.bmc.state().password_is("USERID", "Third-Pass-4w"));
    // Always stale: one retry, then a typed error.
    b.bmc.set_faults(Faults { intermittent_412_every: 1, ..Faults::default() });
    let error = xcc.change_password(b.ctx("Third-Pass-4w", Some("Fourth-Pass-5v")), &b.own()).await.result.unwrap_err();
    assert_eq!(kind(&error), ErrorKind::PreconditionFailed);
    let patches = b.bmc.state().requests().iter().filter(|r| r.method == "PATCH").count();
    assert_eq!(patches, 5, "2 + 1 + 2: never more than one retry");
}

#[tokio::test]
async fn idrac_forced_default_change_goes_through_dell_attributes() {
    let b = bench(Persona::Idrac9).await;
    b.bmc.state().account_mut("root").unwrap().dell_default_password = true;
    let outcome = plugin("dell_idrac").await.change_password(b.ctx(START, Some(NEXT)), &b.own()).await;
    outcome.result.unwrap();
    assert!(b.bmc.state().password_is("root", NEXT));
    assert!(
        b.bmc.state().requests().iter().any(|r| r.path.ends_with("DellAttributes/iDRAC.Embedded.1") && r.status == 200)
    );
}

#[tokio::test]
async fn idrac_generations_use_their_account_uris() {
    let dell = plugin("dell_idrac").await;
    for (persona, family, uri) in [
        (Persona::Idrac9, "iDRAC9", "/redfish/v1/Managers/iDRAC.Embedded.1/Accounts/2"),
        (Persona::Idrac10, "iDRAC10", "/redfish/v1/AccountService/Accounts/2"),
    ] {
        let b = bench(persona).await;
        let probe = dell.probe(b.ctx(START, None), &b.own()).await.result.unwrap();
        assert_eq!((probe.family.as_str(), probe.account_uri.as_str()), (family, uri));
    }
}

#[tokio::test]
async fn ilo_finds_accounts_by_user_name_not_login_name() {
    let b = bench(Persona::Ilo5).await;
    b.bmc.state().add_account("azsbmc", "Drifted-Pass-3z", "Operator").unwrap();
    let ilo = plugin("hpe_ilo").await;
    let probe = ilo.probe(b.ctx(START, None), &b.target("azsbmc", "Administrator")).await.result.unwrap();
    assert!(probe.account_uri.ends_with('/'), "iLO 5 URIs keep their trailing slash: {}", probe.account_uri);
    assert_eq!(probe.family, "iLO5");
    // iLO's LoginName starts as the user name; once edited it is a description, not a login.
    b.bmc.state().account_mut("azsbmc").unwrap().login_name = "Rotation account".into();
    let error = ilo.probe(b.ctx(START, None), &b.target("Rotation account", "Administrator")).await.result.unwrap_err();
    assert_eq!(kind(&error), ErrorKind::AccountNotFound);
}

#[tokio::test]
async fn refused_credentials_are_never_retried() {
    for persona in [Persona::Idrac9, Persona::Ilo5, Persona::Xcc2] {
        let b = bench(persona).await;
        let error =
            plugin(plugin_for(persona)).await.change_password(b.ctx("Wrong-Pass-9", Some(NEXT)), &b.own()).await;
        let error = error.result.unwrap_err();
        assert_eq!(kind(&error), ErrorKind::AuthFailed, "{persona}");
        assert!(error.to_string().contains("do not retry"), "{persona}: {error}");
        let refused = b.bmc.state().requests().iter().filter(|r| r.status == 401).count();
        assert_eq!(refused, 1, "{persona}: exactly one refused request");
    }
}

#[tokio::test]
async fn a_lost_answer_to_the_change_is_ambiguous() {
    for persona in [Persona::Idrac10, Persona::Ilo6, Persona::Xcc3] {
        let b = bench(persona).await;
        b.bmc.set_faults(Faults { apply_then_drop: vec!["PATCH /Accounts/ x1".parse().unwrap()], ..Faults::default() });
        let error = plugin(plugin_for(persona))
            .await
            .change_password(b.ctx(START, Some(NEXT)), &b.own())
            .await
            .result
            .unwrap_err();
        assert_eq!(kind(&error), ErrorKind::Ambiguous, "{persona}: {error}");
        assert!(b.bmc.state().password_is(b.user, NEXT), "{persona}: it was in fact applied");
    }
}

#[tokio::test]
async fn a_hanging_change_is_ambiguous_and_a_500_is_not() {
    let b =
        bench_with(Persona::Ilo5, Limits { request_timeout: Duration::from_millis(500), ..Limits::default() }).await;
    let ilo = plugin("hpe_ilo").await;
    b.bmc.set_faults(Faults { hang: vec!["PATCH /Accounts/ x1".parse().unwrap()], ..Faults::default() });
    let error = ilo.change_password(b.ctx(START, Some(NEXT)), &b.own()).await.result.unwrap_err();
    assert_eq!(kind(&error), ErrorKind::Ambiguous, "{error}");

    b.bmc.set_faults(Faults { error_500: vec!["PATCH /Accounts/ x1".parse().unwrap()], ..Faults::default() });
    let error = ilo.change_password(b.ctx(START, Some(NEXT)), &b.own()).await.result.unwrap_err();
    assert_eq!(kind(&error), ErrorKind::Protocol, "{error}");
    assert!(error.to_string().contains("InternalError"), "{error}");
    assert!(b.bmc.state().password_is("Administrator", START));
}

#[tokio::test]
async fn a_dead_bmc_is_unreachable_and_a_session_limit_is_typed() {
    let b = bench(Persona::Xcc2).await;
    b.bmc.set_faults(Faults { down: true, ..Faults::default() });
    let error = plugin("lenovo_xcc").await.probe(b.ctx(START, None), &b.own()).await.result.unwrap_err();
    assert_eq!(kind(&error), ErrorKind::Unreachable, "{error}");

    // A session limit is not a refused login: the lockout ledger must not count it. (iDRAC and
    // XCC are driven with Basic, which no session limit stops.)
    for persona in [Persona::Ilo5, Persona::Ilo6] {
        let b = bench(persona).await;
        b.bmc.set_faults(Faults { session_limit: true, ..Faults::default() });
        let error = plugin(plugin_for(persona)).await.verify(b.ctx(START, None), &b.own()).await.result.unwrap_err();
        assert_eq!(kind(&error), ErrorKind::Unreachable, "{persona}: {error}");
        assert!(error.to_string().contains("session limit"), "{persona}: {error}");
    }
}

#[tokio::test]
async fn a_profile_pinning_another_digest_refuses_the_plugin() {
    use bmc_rotate::fleet::profiles::Profiles;
    let dell = plugin("dell_idrac").await;
    let mut profile = Profiles::built_in().get("dell-poweredge-r640").unwrap().clone();
    profile.check_plugin(&dell).unwrap();
    profile.plugin_sha256 = Some(dell.sha256.clone());
    profile.check_plugin(&dell).unwrap();
    profile.plugin_sha256 = Some("0".repeat(64));
    let error = profile.check_plugin(&dell).unwrap_err();
    assert!(error.contains(&dell.sha256) && error.contains("refusing"), "{error}");
    let ilo = plugin("hpe_ilo").await;
    assert!(
        Profiles::built_in()
            .get("dell-poweredge-r640")
            .unwrap()
            .check_plugin(&ilo)
            .unwrap_err()
            .contains("needs plugin `dell-idrac`")
    );
}

/// XCC really refuses a password containing the account name: the substring oracle a hostile
/// plugin once built on it (a new account named by a guess, created with the secret) is
/// forbidden before anything reaches the BMC, and so is every other misplacement.
#[tokio::test]
async fn a_hostile_plugin_cannot_build_an_oracle_on_xcc_s_user_name_rule() {
    let b = bench(Persona::Xcc2).await;
    let hostile = plugin("guest_hostile").await;
    let target = bmc_rotate::runtime::Target {
        address: "hostile:oracles".into(),
        account: b.user.into(),
        login_account: b.user.into(),
    };
    let outcome = hostile.change_password(b.ctx(START, Some(NEXT)), &target).await;
    let report = outcome.result.unwrap_err().plugin_error().expect("each attempt reported").message.clone();
    for label in ["create-with-secret", "guess-beside-secret", "secret-as-name", "rename-target", "login-as-other"] {
        let line = report.split(" | ").find(|a| a.starts_with(label)).unwrap_or_else(|| panic!("{label}: {report}"));
        assert!(line.contains("Forbidden("), "{label}: {line}");
    }
    let requests = b.bmc.state().requests();
    // On XCC the target account is slot 1, so the guest's "another account" PATCH is the one
    // legitimate change (refused for want of If-Match); nothing else was PATCHed.
    let patches: Vec<&str> = requests.iter().filter(|r| r.method == "PATCH").map(|r| r.path.as_str()).collect();
    assert!(patches.iter().all(|p| *p == "/redfish/v1/AccountService/Accounts/1"), "{requests:?}");
    let creations = requests.iter().filter(|r| r.method == "POST" && r.path.contains("/Accounts")).count();
    assert_eq!(creations, 1, "only the declared, secret-free creation was sent: {requests:?}");
    assert!(b.bmc.state().password_is(b.user, START));
}

/// iLO answers a login with an absolute `Location` and a name-based session id; the plugin logs
/// out of exactly that session (the host allows a DELETE of sessions the call created, and of
/// nothing else), on both generations, so no session is left behind.
#[tokio::test]
async fn ilo_sessions_are_closed_through_their_absolute_location() {
    for persona in [Persona::Ilo5, Persona::Ilo6] {
        let b = bench(persona).await;
        let ilo = plugin("hpe_ilo").await;
        ilo.verify(b.ctx(START, None), &b.own()).await.result.unwrap_or_else(|e| panic!("{persona}: {e}"));
        ilo.probe(b.ctx(START, None), &b.own()).await.result.unwrap_or_else(|e| panic!("{persona}: {e}"));
        assert_eq!(b.bmc.state().session_count(), 0, "{persona}: a session was left open");
        let deletes: Vec<_> = b.bmc.state().requests().into_iter().filter(|r| r.method == "DELETE").collect();
        assert_eq!(deletes.len(), 2, "{persona}: {deletes:?}");
        let own = b.user.to_owned();
        assert!(
            deletes.iter().all(|r| r.path.contains(&format!("/Sessions/{own}")) && r.status < 300),
            "{persona}: {deletes:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sdk_s_baseline_manifest_is_the_host_s() {
    // The sample guest declares no capability of its own: what its section holds is the SDK's
    // `BASELINE_CAPABILITIES`, and it must be the host's `BASELINE` rule for rule, or every
    // SDK-built plugin would be refused or granted more than the host documents. (Every vendor
    // plugin adds its onboarding rules, and iLO its SNMPv3 passphrase rules.)
    let sample = plugin("guest_sample").await;
    assert_eq!(sample.metadata.capabilities, bmc_rotate::runtime::capabilities::Manifest::baseline());
}

#[tokio::test]
async fn the_generic_plugin_refuses_a_service_without_account_management() {
    let plugin = plugin("generic_redfish").await;
    for fault in ["* /AccountService", "* /redfish"] {
        let b = bench(Persona::DmtfGeneric).await;
        b.bmc.set_faults(Faults { not_found: vec![fault.parse().unwrap()], ..Faults::default() });
        for error in [
            plugin.probe(b.ctx(START, None), &b.own()).await.result.unwrap_err(),
            plugin.change_password(b.ctx(START, Some(NEXT)), &b.own()).await.result.unwrap_err(),
        ] {
            assert_eq!(kind(&error), ErrorKind::Unsupported, "{fault}: {error}");
        }
        assert!(b.bmc.state().password_is(b.user, START), "{fault}: nothing changed");
        if fault == "* /redfish" {
            let requests = b.bmc.state().requests();
            assert!(requests.iter().all(|r| r.auth != "session" && !r.auth.starts_with("basic")), "{requests:?}");
        }
    }
}

#[tokio::test]
async fn the_generic_plugin_rotates_the_vendor_personas_standard_accounts() {
    // Bound explicitly to a vendor's BMC, it relies only on what DSP0266 says: every persona's
    // accounts rotate, both ways (XCC's required If-Match is met by the tag it reads).
    let plugin = plugin("generic_redfish").await;
    for persona in Persona::ALL {
        let b = bench(persona).await;
        b.bmc.state().add_account("azsbmc", START, "Operator").unwrap();
        plugin
            .change_password(b.ctx(START, Some(NEXT)), &b.target("azsbmc", b.user))
            .await
            .result
            .unwrap_or_else(|e| panic!("{persona}: {e}"));
        plugin
            .change_password(b.ctx(START, Some(NEXT)), &b.own())
            .await
            .result
            .unwrap_or_else(|e| panic!("{persona}: {e}"));
        let state = b.bmc.state();
        assert!(state.password_is("azsbmc", NEXT) && state.password_is(b.user, NEXT), "{persona}");
    }
}

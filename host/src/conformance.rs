//! The plugin conformance suite behind `bmc-rotate plugin test`: one plugin, real lab personas
//! in-process, the scenarios every vendor plugin must pass (the same ones the project's own
//! integration tests run), each with a verdict and a timing.
//!
//! Every scenario states what it expects ([`Expected`]): success, or a typed plugin error of
//! named kinds, judged as [`crate::suite`] says.

use crate::gateway::{Endpoint, Gateway, Limits};
use crate::runtime::{CallContext, ErrorKind, Plugin, SecretBindings, SecretName, Target};
use crate::suite::verdict;
pub use crate::suite::{Expected, Verdict, capabilities_verdict};
use bmc_lab::faults::Faults;
use bmc_lab::persona::Vendor;
use bmc_lab::{Persona, SimulatedBmc};
use secrecy::SecretString;
use std::sync::Arc;
use std::time::{Duration, Instant};

const START: &str = "Start-Pass-1x";
const NEXT: &str = "Next-Pass-2y";
const ADMIN: &str = "Admin-Pass-3z";

/// The personas a plugin should pass, from its declared vendor: that vendor's, or for any vendor
/// the lab does not simulate (the generic Redfish plugin's `DMTF`, Supermicro, ...) the
/// `dmtf-generic` persona, which behaves as the standard says and nothing more.
pub fn personas_for(plugin: &Plugin) -> Vec<Persona> {
    let vendor = match plugin.info.vendor.to_ascii_lowercase().as_str() {
        "dell" => Vendor::Dell,
        "hpe" | "hp" => Vendor::Hpe,
        "lenovo" => Vendor::Lenovo,
        _ => Vendor::Generic,
    };
    Persona::ALL.into_iter().filter(|p| p.vendor() == vendor).collect()
}

/// The host's gateway to a simulated BMC: pinned to its address and certificate.
pub fn gateway_to(bmc: &SimulatedBmc, limits: Limits) -> Result<Gateway, String> {
    let tls = bmc.pin().parse()?;
    Gateway::pinned(Endpoint::new("127.0.0.1", bmc.addr().port()), bmc.addr(), tls, limits).map_err(|e| e.to_string())
}

/// A simulated BMC, the gateway to it and call contexts for it: what the suite, the project's
/// integration tests and contributors' own tests drive plugins with.
pub struct LabBmc {
    /// The simulated BMC.
    pub bmc: SimulatedBmc,
    /// The gateway to it.
    pub gateway: Arc<Gateway>,
    /// The persona's default account.
    pub user: &'static str,
}

impl LabBmc {
    /// Starts `persona` on loopback with its default account holding `password`.
    pub async fn start(persona: Persona, password: &str, limits: Limits) -> Result<LabBmc, String> {
        let bmc =
            SimulatedBmc::start_local(persona, password).await.map_err(|e| format!("cannot start the persona: {e}"))?;
        let gateway = Arc::new(gateway_to(&bmc, limits)?);
        Ok(LabBmc { gateway, user: persona.profile().default_account.1, bmc })
    }

    /// A call context binding `login-password` (and `new-password`, if given).
    pub fn ctx(&self, login: &str, new: Option<&str>) -> CallContext {
        let secret = |s: &str| Arc::new(SecretString::from(s.to_owned()));
        let mut secrets = SecretBindings::new().bind(SecretName::LoginPassword, secret(login));
        if let Some(new) = new {
            secrets = secrets.bind(SecretName::NewPassword, secret(new));
        }
        CallContext { gateway: Some(self.gateway.clone()), secrets, budget: Some(Duration::from_secs(30)) }
    }

    /// A target on this BMC.
    pub fn target(&self, account: &str, login: &str) -> Target {
        Target { address: self.bmc.addr().to_string(), account: account.into(), login_account: login.into() }
    }

    /// The default account changing its own password.
    pub fn own(&self) -> Target {
        self.target(self.user, self.user)
    }
}

/// A persona for the suite: the default account plus `azsadmin` (Administrator) and `azsbmc`
/// (Operator), so reconcile scenarios have an administrator and a victim.
async fn bench(persona: Persona, limits: Limits) -> Result<LabBmc, String> {
    let b = LabBmc::start(persona, START, limits).await?;
    b.bmc.state().add_account("azsadmin", ADMIN, "Administrator").ok_or("no free account slot")?;
    b.bmc.state().add_account("azsbmc", START, "Operator").ok_or("no free account slot")?;
    Ok(b)
}

/// A scenario: its name, what it expects, and the check, which gets the expectation to judge the
/// call with (`Ok` with a short confirmation, `Err` with what was seen instead).
type Scenario = (
    &'static str,
    Expected,
    fn(Arc<Plugin>, Persona, Expected) -> std::pin::Pin<Box<dyn Future<Output = Result<String, String>> + Send>>,
);

macro_rules! scenario {
    ($name:literal, $expected:expr, |$plugin:ident, $persona:ident, $expect:ident| $body:expr) => {
        ($name, $expected, |$plugin: Arc<Plugin>, $persona: Persona, $expect: Expected| Box::pin(async move { $body }))
    };
}

const AUTH_FAILED: Expected = Expected::Error(&[ErrorKind::AuthFailed]);
const POLICY_REJECTED: Expected = Expected::Error(&[ErrorKind::PolicyRejected]);
const AMBIGUOUS: Expected = Expected::Error(&[ErrorKind::Ambiguous]);
/// A 500 is an answer the plugin cannot use: `protocol`. `ambiguous` is accepted too (it makes
/// the host verify what the BMC holds, which is safe); success or any other kind is wrong.
const SERVER_ERROR: Expected = Expected::Error(&[ErrorKind::Protocol, ErrorKind::Ambiguous]);
const UNREACHABLE: Expected = Expected::Error(&[ErrorKind::Unreachable]);
const UNSUPPORTED: Expected = Expected::Error(&[ErrorKind::Unsupported]);

fn scenarios() -> Vec<Scenario> {
    vec![
        scenario!("probe finds the account", Expected::Success, |plugin, persona, expect| {
            let b = bench(persona, Limits::default()).await?;
            let probe = expect.success(plugin.probe(b.ctx(START, None), &b.target("azsbmc", b.user)).await.result)?;
            if !plugin.info.families.contains(&probe.family) {
                return Err(format!("family `{}` is not one of {:?}", probe.family, plugin.info.families));
            }
            Ok(format!("{} {} at {}", probe.family, probe.firmware, probe.account_uri))
        }),
        scenario!("verify accepts the password", Expected::Success, |plugin, persona, expect| {
            let b = bench(persona, Limits::default()).await?;
            expect.success(plugin.verify(b.ctx(START, None), &b.own()).await.result)?;
            Ok("accepted".into())
        }),
        scenario!("a wrong password is refused once", AUTH_FAILED, |plugin, persona, expect| {
            let b = bench(persona, Limits::default()).await?;
            let detail = expect.error(plugin.verify(b.ctx("Wrong-Pass-9", None), &b.own()).await.result)?;
            match b.bmc.state().requests().iter().filter(|r| r.status == 401).count() {
                1 => Ok(detail),
                n => Err(format!("{n} refused requests: a refused credential must not be retried")),
            }
        }),
        scenario!("self-change rotates and proves", Expected::Success, |plugin, persona, expect| {
            let b = bench(persona, Limits::default()).await?;
            expect.success(plugin.change_password(b.ctx(START, Some(NEXT)), &b.own()).await.result)?;
            let state = b.bmc.state();
            if !state.password_is(b.user, NEXT) {
                return Err("the BMC does not hold the new password".into());
            }
            Ok("new password set, old one dead".into())
        }),
        scenario!("an administrator reconciles another account", Expected::Success, |plugin, persona, expect| {
            let b = bench(persona, Limits::default()).await?;
            let target = b.target("azsbmc", "azsadmin");
            expect.success(plugin.change_password(b.ctx(ADMIN, Some(NEXT)), &target).await.result)?;
            let state = b.bmc.state();
            match (state.password_is("azsbmc", NEXT), state.password_is("azsadmin", ADMIN)) {
                (true, true) => Ok("azsbmc changed by azsadmin".into()),
                _ => Err("the wrong account changed".into()),
            }
        }),
        scenario!("a policy violation is typed", POLICY_REJECTED, |plugin, persona, expect| {
            let b = bench(persona, Limits::default()).await?;
            let detail = expect.error(plugin.change_password(b.ctx(START, Some("x")), &b.own()).await.result)?;
            if !b.bmc.state().password_is(b.user, START) {
                return Err("the password changed anyway".into());
            }
            Ok(detail)
        }),
        scenario!("apply-then-drop is ambiguous", AMBIGUOUS, |plugin, persona, expect| {
            let b = bench(persona, Limits::default()).await?;
            b.bmc.set_faults(Faults { apply_then_drop: vec!["PATCH / x1".parse()?], ..Faults::default() });
            expect.error(plugin.change_password(b.ctx(START, Some(NEXT)), &b.own()).await.result)
        }),
        scenario!("a hung change is ambiguous", AMBIGUOUS, |plugin, persona, expect| {
            let b = bench(persona, Limits { request_timeout: Duration::from_millis(500), ..Limits::default() }).await?;
            b.bmc.set_faults(Faults { hang: vec!["PATCH / x1".parse()?], ..Faults::default() });
            expect.error(plugin.change_password(b.ctx(START, Some(NEXT)), &b.own()).await.result)
        }),
        scenario!("a 500 is an error, not a success", SERVER_ERROR, |plugin, persona, expect| {
            let b = bench(persona, Limits::default()).await?;
            b.bmc.set_faults(Faults { error_500: vec!["PATCH / x1".parse()?], ..Faults::default() });
            let detail = expect.error(plugin.change_password(b.ctx(START, Some(NEXT)), &b.own()).await.result)?;
            if !b.bmc.state().password_is(b.user, START) {
                return Err("the password changed although the BMC answered 500 (the lab applies nothing)".into());
            }
            Ok(detail)
        }),
        scenario!("a dead BMC is unreachable", UNREACHABLE, |plugin, persona, expect| {
            let b = bench(persona, Limits::default()).await?;
            b.bmc.set_faults(Faults { down: true, ..Faults::default() });
            expect.error(plugin.verify(b.ctx(START, None), &b.own()).await.result)
        }),
    ]
}

/// Checks the plugin's capabilities against its profiles, runs every scenario against each
/// persona, then checks that a BMC it cannot handle is refused in `probe` with `unsupported`:
/// another vendor's, for a vendor plugin; for one run against `dmtf-generic` (which may handle
/// every vendor's standard accounts), a Redfish service without account management (its
/// `AccountService` answers 404).
pub async fn run(plugin: Arc<Plugin>, personas: &[Persona]) -> Vec<Verdict> {
    let mut verdicts = vec![capabilities_verdict(&plugin)];
    for persona in personas {
        for (name, expected, scenario) in scenarios() {
            let started = Instant::now();
            let result = scenario(plugin.clone(), *persona, expected).await;
            verdicts.push(verdict(name, persona.name().into(), expected, started, result));
        }
    }
    let Some(first) = personas.first() else { return verdicts };
    let (name, other, faults) = if first.vendor() == Vendor::Generic {
        let faults = Faults { not_found: vec![NO_ACCOUNT_SERVICE.parse().expect("a call match")], ..Faults::default() };
        ("a service without AccountService is refused", Persona::DmtfGeneric, faults)
    } else {
        let vendors = |o: &Persona| o.vendor() != first.vendor() && o.vendor() != Vendor::Generic;
        let Some(other) = Persona::ALL.into_iter().find(vendors) else { return verdicts };
        ("another vendor is refused", other, Faults::default())
    };
    let started = Instant::now();
    let result = async {
        let b = bench(other, Limits::default()).await?;
        b.bmc.set_faults(faults);
        UNSUPPORTED.error(plugin.probe(b.ctx(START, None), &b.own()).await.result)
    }
    .await;
    verdicts.push(verdict(name, other.name().into(), UNSUPPORTED, started, result));
    verdicts
}

/// The fault that takes account management away from a Redfish service.
const NO_ACCOUNT_SERVICE: &str = "* /AccountService";

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::{CallError, PluginError};

    fn plugin_error(kind: ErrorKind) -> CallError {
        CallError::Plugin(PluginError { kind, message: "the vendor's words".into() })
    }

    /// Every failure that is not the plugin's own answer.
    fn not_the_plugins_answer() -> Vec<CallError> {
        vec![
            CallError::Panic("not yet implemented".into()),
            CallError::Trap("unreachable".into()),
            CallError::Deadline(Duration::from_secs(3)),
            CallError::Memory { limit_mib: 64, requested_mib: 128 },
            CallError::SecretEchoed("the answer held a secret of the job".into()),
        ]
    }

    #[test]
    fn only_the_plugins_own_error_of_an_expected_kind_passes() {
        for expected in [AUTH_FAILED, POLICY_REJECTED, AMBIGUOUS, SERVER_ERROR, UNREACHABLE, UNSUPPORTED] {
            let Expected::Error(kinds) = expected else { panic!("{expected}") };
            for kind in kinds {
                let detail = expected.error::<()>(Err(plugin_error(*kind))).unwrap();
                assert!(detail.starts_with(&format!("`{}`", kind.as_str())), "{detail}");
            }
            assert_eq!(expected.error(Ok(())).unwrap_err(), "got: success");
            for error in not_the_plugins_answer() {
                let seen = expected.error::<()>(Err(error)).unwrap_err();
                assert!(seen.starts_with("got: "), "{expected}: {seen}");
            }
            let other = if kinds.contains(&ErrorKind::LockedOut) { ErrorKind::Protocol } else { ErrorKind::LockedOut };
            let seen = expected.error::<()>(Err(plugin_error(other))).unwrap_err();
            assert!(seen.contains("`locked-out` error") || seen.contains("`protocol` error"), "{seen}");
        }
        // A scenario expecting success takes no error, and an error check never passes one
        // expecting success.
        for error in not_the_plugins_answer().into_iter().chain([plugin_error(ErrorKind::Ambiguous)]) {
            assert!(Expected::Success.success::<()>(Err(error)).is_err());
        }
        assert!(Expected::Success.error::<()>(Err(plugin_error(ErrorKind::Protocol))).is_err());
    }

    #[test]
    fn a_failed_verdict_says_what_was_expected() {
        let started = Instant::now();
        let v = verdict("s", "p".into(), SERVER_ERROR, started, Err("got: the plugin panicked: todo".into()));
        assert!(!v.passed);
        assert_eq!(v.detail, "expected protocol or ambiguous; got: the plugin panicked: todo");
        let json = serde_json::to_value(&v).unwrap();
        assert_eq!(json["expected"], "protocol or ambiguous");
        let ok = verdict("s", "p".into(), Expected::Success, started, Ok("accepted".into()));
        assert!(ok.passed && ok.detail == "accepted");
        assert_eq!(serde_json::to_value(&ok).unwrap()["expected"], "success");
    }
}

//! The plugin conformance suite behind `bmc-rotate plugin test`: one plugin, real lab personas
//! in-process, the scenarios every vendor plugin must pass (the same ones the project's own
//! integration tests run), each with a verdict and a timing.

use crate::fleet::profiles::{HardwareProfile, Profiles};
use crate::gateway::{Endpoint, Gateway, Limits};
use crate::runtime::capabilities::Manifest;
use crate::runtime::{CallContext, ErrorKind, Plugin, SecretBindings, SecretName, Target};
use bmc_lab::faults::Faults;
use bmc_lab::persona::Vendor;
use bmc_lab::{Persona, SimulatedBmc};
use secrecy::SecretString;
use serde::Serialize;
use std::sync::Arc;
use std::time::{Duration, Instant};

const START: &str = "Start-Pass-1x";
const NEXT: &str = "Next-Pass-2y";
const ADMIN: &str = "Admin-Pass-3z";

/// One scenario's verdict.
#[derive(Clone, Debug, Serialize)]
pub struct Verdict {
    /// Scenario name.
    pub scenario: &'static str,
    /// Persona it ran against.
    pub persona: String,
    /// Whether it passed.
    pub passed: bool,
    /// Wall-clock time.
    #[serde(serialize_with = "millis")]
    pub elapsed: Duration,
    /// What was seen (the failure reason, or a short confirmation).
    pub detail: String,
}

fn millis<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_f64(d.as_secs_f64() * 1000.0)
}

/// The personas a plugin should pass, from its declared vendor.
pub fn personas_for(plugin: &Plugin) -> Vec<Persona> {
    let vendor = match plugin.info.vendor.to_ascii_lowercase().as_str() {
        "dell" => Vendor::Dell,
        "hpe" | "hp" => Vendor::Hpe,
        "lenovo" => Vendor::Lenovo,
        _ => return Vec::new(),
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

fn expect_kind<T>(result: Result<T, crate::runtime::CallError>, want: ErrorKind) -> Result<String, String> {
    match result {
        Ok(_) => Err(format!("succeeded; expected a `{}` error", want.as_str())),
        Err(e) => match e.plugin_error() {
            Some(p) if p.kind == want => Ok(p.message.chars().take(100).collect()),
            _ => Err(format!("expected `{}`, got: {e}", want.as_str())),
        },
    }
}

type Scenario =
    (&'static str, fn(Arc<Plugin>, Persona) -> std::pin::Pin<Box<dyn Future<Output = Result<String, String>> + Send>>);

macro_rules! scenario {
    ($name:literal, |$plugin:ident, $persona:ident| $body:expr) => {
        ($name, |$plugin: Arc<Plugin>, $persona: Persona| Box::pin(async move { $body }))
    };
}

fn scenarios() -> Vec<Scenario> {
    vec![
        scenario!("probe finds the account", |plugin, persona| {
            let b = bench(persona, Limits::default()).await?;
            let probe = plugin
                .probe(b.ctx(START, None), &b.target("azsbmc", b.user))
                .await
                .result
                .map_err(|e| e.to_string())?;
            if !plugin.info.families.contains(&probe.family) {
                return Err(format!("family `{}` is not one of {:?}", probe.family, plugin.info.families));
            }
            Ok(format!("{} {} at {}", probe.family, probe.firmware, probe.account_uri))
        }),
        scenario!("verify accepts the password", |plugin, persona| {
            let b = bench(persona, Limits::default()).await?;
            plugin.verify(b.ctx(START, None), &b.own()).await.result.map_err(|e| e.to_string())?;
            Ok("accepted".into())
        }),
        scenario!("a wrong password is refused once", |plugin, persona| {
            let b = bench(persona, Limits::default()).await?;
            let detail =
                expect_kind(plugin.verify(b.ctx("Wrong-Pass-9", None), &b.own()).await.result, ErrorKind::AuthFailed)?;
            match b.bmc.state().requests().iter().filter(|r| r.status == 401).count() {
                1 => Ok(detail),
                n => Err(format!("{n} refused requests: a refused credential must not be retried")),
            }
        }),
        scenario!("self-change rotates and proves", |plugin, persona| {
            let b = bench(persona, Limits::default()).await?;
            plugin.change_password(b.ctx(START, Some(NEXT)), &b.own()).await.result.map_err(|e| e.to_string())?;
            let state = b.bmc.state();
            if !state.password_is(b.user, NEXT) {
                return Err("the BMC does not hold the new password".into());
            }
            Ok("new password set, old one dead".into())
        }),
        scenario!("an administrator reconciles another account", |plugin, persona| {
            let b = bench(persona, Limits::default()).await?;
            plugin
                .change_password(b.ctx(ADMIN, Some(NEXT)), &b.target("azsbmc", "azsadmin"))
                .await
                .result
                .map_err(|e| e.to_string())?;
            let state = b.bmc.state();
            match (state.password_is("azsbmc", NEXT), state.password_is("azsadmin", ADMIN)) {
                (true, true) => Ok("azsbmc changed by azsadmin".into()),
                _ => Err("the wrong account changed".into()),
            }
        }),
        scenario!("a policy violation is typed", |plugin, persona| {
            let b = bench(persona, Limits::default()).await?;
            let r = plugin.change_password(b.ctx(START, Some("x")), &b.own()).await.result;
            let detail = expect_kind(r, ErrorKind::PolicyRejected)?;
            if !b.bmc.state().password_is(b.user, START) {
                return Err("the password changed anyway".into());
            }
            Ok(detail)
        }),
        scenario!("apply-then-drop is ambiguous", |plugin, persona| {
            let b = bench(persona, Limits::default()).await?;
            b.bmc.set_faults(Faults { apply_then_drop: vec!["PATCH / x1".parse()?], ..Faults::default() });
            expect_kind(plugin.change_password(b.ctx(START, Some(NEXT)), &b.own()).await.result, ErrorKind::Ambiguous)
        }),
        scenario!("a hung change is ambiguous", |plugin, persona| {
            let b = bench(persona, Limits { request_timeout: Duration::from_millis(500), ..Limits::default() }).await?;
            b.bmc.set_faults(Faults { hang: vec!["PATCH / x1".parse()?], ..Faults::default() });
            expect_kind(plugin.change_password(b.ctx(START, Some(NEXT)), &b.own()).await.result, ErrorKind::Ambiguous)
        }),
        scenario!("a 500 is an error, not a success", |plugin, persona| {
            let b = bench(persona, Limits::default()).await?;
            b.bmc.set_faults(Faults { error_500: vec!["PATCH / x1".parse()?], ..Faults::default() });
            let r = plugin.change_password(b.ctx(START, Some(NEXT)), &b.own()).await.result;
            match r {
                Ok(()) => Err("reported success although the BMC answered 500".into()),
                Err(e) => Ok(e.to_string().chars().take(100).collect()),
            }
        }),
        scenario!("a dead BMC is unreachable", |plugin, persona| {
            let b = bench(persona, Limits::default()).await?;
            b.bmc.set_faults(Faults { down: true, ..Faults::default() });
            expect_kind(plugin.verify(b.ctx(START, None), &b.own()).await.result, ErrorKind::Unreachable)
        }),
    ]
}

/// Whether the plugin's capability manifest stays within what every built-in hardware profile
/// for its id grants (the baseline, for an id no profile names), with the manifest as detail.
pub fn capabilities_verdict(plugin: &Plugin) -> Verdict {
    let started = Instant::now();
    let profiles = Profiles::built_in();
    let mine: Vec<&HardwareProfile> = profiles.iter().filter(|p| p.plugin == plugin.info.id).collect();
    let manifest = plugin.metadata.capabilities.rules().iter().map(ToString::to_string).collect::<Vec<_>>().join("; ");
    let refusals: Vec<String> = if mine.is_empty() {
        let beyond = plugin.metadata.capabilities.beyond(&Manifest::baseline());
        beyond.iter().map(|r| format!("`{r}` is beyond the baseline (no built-in profile names this plugin)")).collect()
    } else {
        mine.iter().filter_map(|p| p.check_capabilities(&plugin.metadata.capabilities, &plugin.origin).err()).collect()
    };
    let scope = if mine.is_empty() {
        "baseline".to_owned()
    } else {
        mine.iter().map(|p| p.name.as_str()).collect::<Vec<_>>().join(", ")
    };
    Verdict {
        scenario: "capabilities within the vendor profile",
        persona: scope,
        passed: refusals.is_empty(),
        elapsed: started.elapsed(),
        detail: if refusals.is_empty() { format!("declares: {manifest}") } else { refusals.join("; ") },
    }
}

/// Checks the plugin's capabilities against its profiles, runs every scenario against each
/// persona, then checks that another vendor's BMC is refused in `probe` with `unsupported`.
pub async fn run(plugin: Arc<Plugin>, personas: &[Persona]) -> Vec<Verdict> {
    let mut verdicts = vec![capabilities_verdict(&plugin)];
    for persona in personas {
        for (name, scenario) in scenarios() {
            let started = Instant::now();
            let result = scenario(plugin.clone(), *persona).await;
            let (passed, detail) = match result {
                Ok(d) => (true, d),
                Err(d) => (false, d),
            };
            verdicts.push(Verdict {
                scenario: name,
                persona: persona.name().into(),
                passed,
                elapsed: started.elapsed(),
                detail,
            });
        }
    }
    if let Some(other) = personas.first().and_then(|p| Persona::ALL.into_iter().find(|o| o.vendor() != p.vendor())) {
        let started = Instant::now();
        let result = async {
            let b = bench(other, Limits::default()).await?;
            expect_kind(plugin.probe(b.ctx(START, None), &b.own()).await.result, ErrorKind::Unsupported)
        }
        .await;
        let (passed, detail) = match result {
            Ok(d) => (true, d),
            Err(d) => (false, d),
        };
        verdicts.push(Verdict {
            scenario: "another vendor is refused",
            persona: other.name().into(),
            passed,
            elapsed: started.elapsed(),
            detail,
        });
    }
    verdicts
}

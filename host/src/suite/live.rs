//! The conformance suite against a BMC the operator names (`plugin test --bmc`): a vendor's lab
//! machine, reached through the same pinned gateway a rotation uses. No simulator, so no faults
//! to inject: the scenarios are the ones a real BMC can answer without harm.
//!
//! Read-only by default: verify, probe and its live policy, and one wrong password, which costs
//! exactly one failed login on that BMC (the report counts the refusals the gateway saw). With
//! `allow_change`, the account's password is changed to a generated one, proven, and changed
//! back; the original is checked last, and if the BMC does not take it any more the temporary
//! password is saved to a file only the operator can read, so the account is never lost.

use super::{Expected, Verdict, capabilities_verdict, verdict};
use crate::gateway::{Auth, Failure, Gateway, Outbound, Part, Request, Response};
use crate::runtime::{
    CallContext, CallError, ErrorKind, PasswordPolicy, Plugin, ProbeResult, SecretBindings, SecretName, Target,
};
use crate::secrets::policy::FleetPolicy;
use secrecy::SecretString;
use serde::Serialize;
use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Instant;

/// The BMC and account the suite runs against.
pub struct LiveBmc {
    /// The gateway to it, pinned to its certificate.
    pub gateway: Arc<Gateway>,
    /// The account that logs in and (with `allow_change`) changes its own password.
    pub account: String,
    /// That account's password.
    pub password: Arc<SecretString>,
    /// Whether the change scenarios run.
    pub allow_change: bool,
    /// Where to save a temporary password the BMC kept (the current directory by default).
    pub recovery_dir: PathBuf,
}

/// The whole run, as `--output json` prints it.
#[derive(Debug, Serialize)]
pub struct LiveReport {
    /// The BMC's address.
    pub bmc: String,
    /// The account.
    pub account: String,
    /// Refused logins the gateway saw during the run (401 or 403 to a request offering a
    /// password): 1, the wrong-password scenario's, unless something else went wrong.
    pub failed_logins: u32,
    /// Whether the change scenarios ran (`--allow-change`).
    pub changed: bool,
    /// Whether the BMC was last seen to accept the original password (`null` when nothing changed).
    pub original_password_in_place: Option<bool>,
    /// The file holding the temporary password, if the BMC kept it.
    pub recovery_file: Option<PathBuf>,
    /// One per scenario.
    pub verdicts: Vec<Verdict>,
}

/// The wrong-password scenario's cost, for the operator before the run and in the report.
pub const WRONG_PASSWORD_COST: &str = "the wrong-password scenario costs exactly one failed login on this BMC";

/// The gateway, counting the answers that refuse a credential.
struct Counting {
    gateway: Arc<Gateway>,
    refused: AtomicU32,
}

impl Counting {
    fn refused(&self) -> u32 {
        self.refused.load(Ordering::SeqCst)
    }
}

impl Outbound for Counting {
    fn bmc(&self) -> String {
        self.gateway.bmc()
    }

    fn max_requests_per_job(&self) -> u32 {
        self.gateway.max_requests_per_job()
    }

    fn send<'a>(
        &'a self,
        request: &'a Request,
        deadline: Option<Instant>,
    ) -> Pin<Box<dyn Future<Output = Result<Response, Failure>> + Send + 'a>> {
        Box::pin(async move {
            let answer = self.gateway.send(request, deadline).await;
            if is_login(request) && matches!(&answer, Ok(r) if r.status == 401 || r.status == 403) {
                self.refused.fetch_add(1, Ordering::SeqCst);
            }
            answer
        })
    }
}

/// Whether a request offers a credential: Basic auth, or a password in the body of an
/// unauthenticated request (a session login). A refused session token is not a failed login.
fn is_login(request: &Request) -> bool {
    match &request.auth {
        Auth::Basic { .. } => true,
        Auth::None => request.body.iter().any(|part| matches!(part, Part::SecretJson(_))),
        Auth::Session(_) => false,
    }
}

const AUTH_FAILED: Expected = Expected::Error(&[ErrorKind::AuthFailed]);

/// One run's state: the counting gateway and the calls' common parts.
struct Run<'a> {
    plugin: &'a Plugin,
    bmc: &'a LiveBmc,
    outbound: Arc<Counting>,
    target: Target,
    label: String,
}

impl Run<'_> {
    fn ctx(&self, login: &Arc<SecretString>, new: Option<&Arc<SecretString>>) -> CallContext {
        let mut secrets = SecretBindings::new().bind(SecretName::LoginPassword, login.clone());
        if let Some(new) = new {
            secrets = secrets.bind(SecretName::NewPassword, new.clone());
        }
        CallContext { gateway: Some(self.outbound.clone()), secrets, budget: None }
    }

    async fn verify(&self, password: &Arc<SecretString>) -> Result<(), CallError> {
        self.plugin.verify(self.ctx(password, None), &self.target).await.result
    }

    async fn change(&self, from: &Arc<SecretString>, to: &Arc<SecretString>) -> Result<(), CallError> {
        self.plugin.change_password(self.ctx(from, Some(to)), &self.target).await.result
    }

    fn verdict(
        &self,
        scenario: &'static str,
        expected: Expected,
        started: Instant,
        result: Result<String, String>,
    ) -> Verdict {
        verdict(scenario, self.label.clone(), expected, started, result)
    }
}

/// Runs the suite: the manifest check, then each scenario in an order that spends no more
/// failed logins than announced (verify first: a password the BMC refuses stops the run).
pub async fn run(plugin: &Plugin, bmc: &LiveBmc) -> LiveReport {
    let outbound = Arc::new(Counting { gateway: bmc.gateway.clone(), refused: AtomicU32::new(0) });
    let label = bmc.gateway.endpoint().to_string();
    let target = Target { address: label.clone(), account: bmc.account.clone(), login_account: bmc.account.clone() };
    let suite = Run { plugin, bmc, outbound, target, label };
    let mut verdicts = vec![capabilities_verdict(plugin)];
    let mut report = LiveReport {
        bmc: suite.label.clone(),
        account: bmc.account.clone(),
        failed_logins: 0,
        changed: false,
        original_password_in_place: None,
        recovery_file: None,
        verdicts: Vec::new(),
    };

    let started = Instant::now();
    let verified = Expected::Success.success(suite.verify(&bmc.password).await);
    let stop = verified.is_err();
    verdicts.push(suite.verdict(
        "verify accepts the password",
        Expected::Success,
        started,
        verified.map(|()| "accepted".into()),
    ));
    if stop {
        // Every further scenario logs in: with a password the BMC refuses, each would cost
        // another failed login.
        report.failed_logins = suite.outbound.refused();
        report.verdicts = verdicts;
        report.verdicts.push(suite.verdict(
            "the rest of the suite",
            Expected::Success,
            Instant::now(),
            Err("not run: verify failed, and every other scenario logs in with that password".into()),
        ));
        return report;
    }

    let started = Instant::now();
    let probed = Expected::Success.success(plugin.probe(suite.ctx(&bmc.password, None), &suite.target).await.result);
    let (probe, result) = match probed {
        Ok(p) => match plugin.info.families.contains(&p.family) {
            true => (Some(p.clone()), Ok(format!("{} {} at {}", p.family, p.firmware, p.account_uri))),
            false => (None, Err(format!("family `{}` is not one of {:?}", p.family, plugin.info.families))),
        },
        Err(e) => (None, Err(e)),
    };
    verdicts.push(suite.verdict("probe finds the account", Expected::Success, started, result));

    let started = Instant::now();
    let result = match &probe {
        Some(p) => policy_is_usable(&p.policy).map(|()| describe(&p.policy)),
        None => Err("not run: probe failed".into()),
    };
    verdicts.push(suite.verdict("probe reports the live policy", Expected::Success, started, result));

    let started = Instant::now();
    let result = wrong_password(&suite).await;
    verdicts.push(suite.verdict("a wrong password is refused once", AUTH_FAILED, started, result));

    if bmc.allow_change {
        report.changed = true;
        change_and_back(&suite, probe.as_ref(), &mut verdicts, &mut report).await;
    }
    report.failed_logins = suite.outbound.refused();
    report.verdicts = verdicts;
    report
}

/// A random password the BMC cannot hold: `Wrong-` and 16 hex digits from the OS's random source.
fn wrong() -> Result<Arc<SecretString>, String> {
    let mut bytes = [0u8; 8];
    getrandom::fill(&mut bytes).map_err(|e| format!("no random source: {e}"))?;
    Ok(Arc::new(SecretString::from(format!("Wrong-{}", hex::encode(bytes)))))
}

/// One wrong password: refused with `auth-failed` after exactly one refused request, and the
/// right password still accepted afterwards (one failed login locks no sane BMC).
async fn wrong_password(suite: &Run<'_>) -> Result<String, String> {
    let before = suite.outbound.refused();
    let detail = AUTH_FAILED.error(suite.verify(&wrong()?).await)?;
    match suite.outbound.refused() - before {
        1 => {}
        n => return Err(format!("{n} refused requests: a refused credential must not be retried")),
    }
    suite.verify(&suite.bmc.password).await.map_err(|e| {
        format!("after one failed login the BMC refuses the right password (is the account locked out?): {e}")
    })?;
    Ok(format!("{detail}; 1 failed login, the right password still accepted"))
}

/// Why a probed policy cannot be what the BMC enforces, if it cannot.
fn policy_is_usable(policy: &PasswordPolicy) -> Result<(), String> {
    if policy.min_length == 0 || (policy.max_length > 0 && policy.min_length > policy.max_length) {
        return Err(format!("lengths {}-{} admit no password", policy.min_length, policy.max_length));
    }
    if policy.min_classes > 4 {
        return Err(format!("{} character classes required, of four", policy.min_classes));
    }
    Ok(())
}

/// The policy in one line.
fn describe(policy: &PasswordPolicy) -> String {
    let mut parts = vec![
        format!("{}-{} characters", policy.min_length, policy.max_length),
        format!("{} classes", policy.min_classes),
    ];
    if !policy.allowed_symbols.is_empty() {
        parts.push(format!("symbols {}", policy.allowed_symbols));
    }
    if policy.reuse_cycle > 0 {
        parts.push(format!("no reuse of the last {}", policy.reuse_cycle));
    }
    if policy.min_change_interval_hours > 0 {
        parts.push(format!("{} h between changes", policy.min_change_interval_hours));
    }
    if policy.max_repeated_chars > 0 {
        parts.push(format!("at most {} repeated", policy.max_repeated_chars));
    }
    if policy.forbid_account_name {
        parts.push("not the account name".into());
    }
    parts.join(", ")
}

/// Why the original password could not be set again after a change, if it could not: a reuse
/// history or a minimum interval between changes.
fn no_way_back(policy: &PasswordPolicy) -> Option<String> {
    if policy.reuse_cycle > 0 {
        return Some(format!(
            "the BMC refuses the last {} passwords, so the original could not be set again",
            policy.reuse_cycle
        ));
    }
    (policy.min_change_interval_hours > 0).then(|| {
        format!(
            "the BMC allows one change per {} h, so the original could not be set again",
            policy.min_change_interval_hours
        )
    })
}

/// Changes the password to a generated one, proves it, changes it back and checks the original
/// is in place; saves the temporary password if the BMC kept it.
async fn change_and_back(
    suite: &Run<'_>,
    probe: Option<&ProbeResult>,
    verdicts: &mut Vec<Verdict>,
    report: &mut LiveReport,
) {
    const CHANGE: &str = "self-change rotates and proves";
    const BACK: &str = "changing back restores the original";
    let not_run = |why: String| Err::<String, String>(format!("not run: {why}"));
    let temporary = match probe {
        None => Err("probe failed, so the live policy is unknown".to_owned()),
        Some(p) => match no_way_back(&p.policy) {
            Some(why) => Err(why),
            None => {
                let mut policy = FleetPolicy::azure_stack();
                policy.intersect(&p.policy);
                policy.generate(&suite.bmc.account).map(Arc::new)
            }
        },
    };
    let temporary = match temporary {
        Ok(t) => t,
        Err(why) => {
            verdicts.push(suite.verdict(CHANGE, Expected::Success, Instant::now(), not_run(why.clone())));
            verdicts.push(suite.verdict(BACK, Expected::Success, Instant::now(), not_run(why)));
            report.changed = false;
            return;
        }
    };

    let started = Instant::now();
    let changed = Expected::Success.success(suite.change(&suite.bmc.password, &temporary).await);
    let result = match changed {
        Ok(()) => Expected::Success
            .success(suite.verify(&temporary).await)
            .map(|()| "the BMC took a generated password and accepts it".to_owned())
            .map_err(|e| format!("the change succeeded but the new password is refused: {e}")),
        Err(e) => Err(e),
    };
    let forward = result.is_ok();
    verdicts.push(suite.verdict(CHANGE, Expected::Success, started, result));

    let started = Instant::now();
    let back = match forward {
        true => Expected::Success.success(suite.change(&temporary, &suite.bmc.password).await),
        false => Err("not run: the change did not go through".into()),
    };
    // Whatever happened, the account must end with the password the operator knows.
    let in_place = suite.verify(&suite.bmc.password).await.is_ok();
    report.original_password_in_place = Some(in_place);
    let result = match (back, in_place) {
        (Ok(()), true) => Ok("the original password is back, and accepted".into()),
        (Ok(()), false) => Err("the change back succeeded but the original password is refused".into()),
        (Err(e), true) => Err(format!("{e} (the original password is still accepted)")),
        (Err(e), false) => Err(e),
    };
    if !in_place {
        report.recovery_file = save_temporary(&suite.bmc.recovery_dir, &temporary).ok();
    }
    verdicts.push(suite.verdict(BACK, Expected::Success, started, result));
}

/// Writes the temporary password to a new file of mode 0600 in `dir`, for an operator whose
/// BMC did not take the original back.
fn save_temporary(dir: &std::path::Path, password: &SecretString) -> std::io::Result<PathBuf> {
    use secrecy::ExposeSecret;
    use std::io::Write;
    let path = dir.join(format!("bmc-rotate-temporary-password.{}", std::process::id()));
    let mut file = crate::platform::owner_only(std::fs::OpenOptions::new().write(true).create_new(true)).open(&path)?;
    crate::platform::make_private(&file)?;
    writeln!(file, "{}", password.expose_secret())?;
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(reuse_cycle: u32, min_change_interval_hours: u32) -> PasswordPolicy {
        PasswordPolicy {
            min_length: 8,
            max_length: 20,
            min_classes: 3,
            reuse_cycle,
            min_change_interval_hours,
            ..PasswordPolicy::default()
        }
    }

    #[test]
    fn a_policy_that_forbids_going_back_stops_the_change() {
        assert!(no_way_back(&policy(0, 0)).is_none());
        assert!(no_way_back(&policy(5, 0)).unwrap().contains("last 5 passwords"));
        assert!(no_way_back(&policy(0, 24)).unwrap().contains("one change per 24 h"));
    }

    #[test]
    fn an_impossible_policy_is_reported() {
        assert!(policy_is_usable(&policy(0, 0)).is_ok());
        let backwards = PasswordPolicy { min_length: 30, max_length: 20, ..policy(0, 0) };
        assert!(policy_is_usable(&backwards).unwrap_err().contains("admit no password"));
    }

    #[test]
    fn the_wrong_password_is_random_and_never_empty() {
        use secrecy::ExposeSecret;
        let (a, b) = (wrong().unwrap(), wrong().unwrap());
        assert_ne!(a.expose_secret(), b.expose_secret());
        assert!(a.expose_secret().starts_with("Wrong-") && a.expose_secret().len() == 22);
    }

    #[test]
    fn a_kept_temporary_password_is_saved_for_the_owner_only() {
        let dir = std::env::temp_dir().join(format!("bmc-rotate-live-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = save_temporary(&dir, &SecretString::from("Temp-Pass-1x".to_owned())).unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "Temp-Pass-1x\n");
        let file = std::fs::File::open(&path).unwrap();
        let exposure = crate::platform::exposure(&file, &file.metadata().unwrap()).unwrap();
        assert_eq!(exposure, None, "the owner's alone");
        drop(file); // Windows deletes no open file.
        assert!(save_temporary(&dir, &SecretString::from("other".to_owned())).is_err(), "never overwritten");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}

//! The BMCs of one command and what it knows of each, and how that is learnt: `probe` logs in
//! and reads the family, firmware and live policy, so one successful probe both identifies the
//! password a BMC holds and tells whether the BMC can ever go back to the old one.

use super::report::{BmcReport, BmcResult, Observer};
use super::snmp::SnmpCheck;
use super::steps::{Login, SharedJournal, context, each, login, name};
use crate::fleet::cancel::Cancel;
use crate::fleet::journal::Which;
use crate::fleet::ledger::{self, Ledger, LoginFailure};
use crate::fleet::members::Member;
use crate::runtime::{PasswordPolicy, ProbeResult};
use secrecy::SecretString;
use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub(crate) type Shared<T> = Arc<Mutex<T>>;

/// One BMC during a command.
pub(crate) struct Bmc {
    pub member: Member,
    /// What it held when the command began changing BMCs (once identified).
    pub start: Which,
    /// What it holds now.
    pub holds: Which,
    pub family: String,
    pub firmware: String,
    /// Its live policy once probed; before that, what its plugin and profile declare.
    pub policy: PasswordPolicy,
    pub result: BmcResult,
    pub error: Option<String>,
    /// The BMC answered a login with a refusal in this command (not merely a login cut short).
    pub refused: bool,
    /// Time spent on this BMC alone.
    pub spent: Duration,
    /// Its SNMPv3 state in preflight, once checked.
    pub snmp_preflight: Option<SnmpCheck>,
    /// Its SNMPv3 state after the run's change, once checked.
    pub snmp_after: Option<SnmpCheck>,
}

impl Bmc {
    /// A BMC believed to hold `believed`, not yet contacted.
    pub fn new(member: Member, believed: Which) -> Shared<Bmc> {
        let policy = member.profile.apply(member.plugin.info.policy.clone());
        Arc::new(Mutex::new(Bmc {
            member,
            start: believed,
            holds: believed,
            family: String::new(),
            firmware: String::new(),
            policy,
            result: BmcResult::Unchanged,
            error: None,
            refused: false,
            spent: Duration::ZERO,
            snmp_preflight: None,
            snmp_after: None,
        }))
    }

    pub fn name(&self) -> &str {
        &self.member.entry.name
    }

    /// Whether its policy lets it return to the password it held before: a reuse cycle refuses
    /// it, a minimum change interval refuses the second change.
    pub fn rollback_safe(&self) -> bool {
        self.policy.reuse_cycle == 0 && self.policy.min_change_interval_hours == 0
    }

    pub fn report(&self) -> BmcReport {
        BmcReport {
            name: self.member.entry.name.clone(),
            address: self.member.entry.endpoint.to_string(),
            vendor: self.member.plugin.info.vendor.clone(),
            family: self.family.clone(),
            firmware: self.firmware.clone(),
            holds: self.holds,
            result: self.result,
            duration: self.spent,
            error: self.error.clone(),
            rollback_safe: self.rollback_safe(),
            snmp_preflight: self.snmp_preflight.clone(),
            snmp_after: self.snmp_after.clone(),
        }
    }

    /// What was learnt from a probe that logged in with `which`.
    fn probed(&mut self, which: Which, probe: ProbeResult) {
        self.holds = which;
        self.start = which;
        self.policy = self.member.profile.apply(probe.policy);
        self.family = probe.family;
        self.firmware = probe.firmware;
    }
}

pub(crate) fn lock(bmc: &Shared<Bmc>) -> std::sync::MutexGuard<'_, Bmc> {
    bmc.lock().expect("a BMC's state is never left poisoned: no job panics holding it")
}

pub(crate) fn reports(bmcs: &[Shared<Bmc>]) -> Vec<BmcReport> {
    bmcs.iter().map(|b| lock(b).report()).collect()
}

/// Finds which of `candidates` the BMC accepts, trying each once, in order, through the
/// failed-login ledger. On success the BMC holds that password; otherwise it holds `unknown` and
/// the failures are returned, one per password, for the operator.
pub(crate) async fn identify(
    bmc: &Shared<Bmc>,
    candidates: &[(Which, Arc<SecretString>)],
    (ledger, journal): (&Ledger, Option<&SharedJournal>),
    observer: &Arc<dyn Observer>,
) -> Result<Which, Vec<String>> {
    let started = Instant::now();
    let member = lock(bmc).member.clone();
    observer.started(&member.entry.name);
    let mut failures = Vec::new();
    let mut found = None;
    let mut refused = false;
    if let Err(e) = &member.gateway {
        // The gateway could not be set up (a bad TLS setting, say): nothing can be sent.
        failures.push(e.clone());
    } else {
        for (which, password) in candidates {
            let call = async { member.plugin.probe(context(&member, password, None), &member.target).await.result };
            match login(&member.entry.name, *which, ledger, journal, call).await {
                Login::Done(probe) => {
                    found = Some((*which, probe));
                    break;
                }
                Login::Failed(e) => {
                    refused |= LoginFailure::of(&e).is_some_and(LoginFailure::refused);
                    failures.push(format!("{} password: {e}", name(*which)));
                }
                Login::NotTried => failures.push(format!("{} password: {}", name(*which), ledger::spent_note())),
            }
        }
    }
    let mut bmc = lock(bmc);
    bmc.spent += started.elapsed();
    bmc.refused |= refused;
    match found {
        Some((which, probe)) => {
            bmc.probed(which, probe);
            Ok(which)
        }
        None => {
            bmc.holds = Which::Unknown;
            bmc.start = Which::Unknown;
            Err(failures)
        }
    }
}

/// Runs `job` on every BMC. With `canaries`, the first BMC of each hardware profile goes
/// first, alone: when one of them cannot be identified and spent its failed-login budget doing
/// so, the passwords are most likely mistyped, and stopping there costs one failed login on one
/// BMC instead of one on every BMC of the fleet. Returns that canary, if any; every BMC not
/// started (after it, or after a stop) is marked so.
pub(crate) async fn identify_all<F, Fut>(
    bmcs: &[Shared<Bmc>],
    canaries: bool,
    (concurrency, cancel, ledger): (usize, &Cancel, &Ledger),
    job: F,
) -> Result<Option<usize>, String>
where
    F: Fn(usize) -> Fut,
    Fut: Future<Output = Result<(), String>> + Send + 'static,
{
    let all: Vec<usize> = (0..bmcs.len()).collect();
    let mut first = Vec::new();
    if canaries {
        let mut profiles = BTreeSet::new();
        first = all.iter().copied().filter(|&i| profiles.insert(lock(&bmcs[i]).member.profile.name.clone())).collect();
    }
    for (n, &i) in first.iter().enumerate() {
        mark_not_started(bmcs, &each(&[i], 1, cancel, &job).await?);
        // One failed login per BMC per command: a canary out of budget was not identified.
        if !ledger.allows(lock(&bmcs[i]).name()) {
            let rest: Vec<usize> = all.iter().copied().filter(|j| !first[..=n].contains(j)).collect();
            mark_not_started(bmcs, &rest);
            return Ok(Some(i));
        }
    }
    let rest: Vec<usize> = all.iter().copied().filter(|j| !first.contains(j)).collect();
    mark_not_started(bmcs, &each(&rest, concurrency, cancel, &job).await?);
    Ok(None)
}

/// BMCs a stop (or an earlier failure) kept from starting.
pub(crate) fn mark_not_started(bmcs: &[Shared<Bmc>], indices: &[usize]) {
    for &i in indices {
        lock(&bmcs[i]).result = BmcResult::NotStarted;
    }
}

/// The line that says a canary refused the passwords: which account, which BMC, and that no
/// other was tried.
pub(crate) fn canary_note(bmcs: &[Shared<Bmc>], canary: usize, what: &str) -> String {
    let bmc = lock(&bmcs[canary]);
    let before = bmcs[..canary].iter().any(|b| lock(b).result != BmcResult::NotStarted);
    let others = if before { " (the BMCs tried before it, one per other profile, took it)" } else { "" };
    if !bmc.refused {
        // The login was cut short (a BMC still delaying after an earlier failure, a hung one):
        // it counts as a failed login, but says nothing about the password.
        return format!(
            "{} did not answer the login with {what} for {} in time{others}; it counts as this command's failed \
             login there, so no other BMC was tried: check that BMC, then run again",
            bmc.name(),
            bmc.member.target.account
        );
    }
    format!(
        "{what} for {} was refused by {}{others}: mistyped? no other BMC was tried",
        bmc.member.target.account,
        bmc.name()
    )
}

/// Progress for one identified BMC.
pub(crate) fn advanced(observer: &Arc<dyn Observer>, bmc: &Shared<Bmc>) {
    let bmc = lock(bmc);
    let ok = bmc.holds != Which::Unknown;
    let detail = if ok { bmc.family.as_str() } else { bmc.error.as_deref().unwrap_or("") };
    observer.advanced(bmc.name(), ok, detail);
}

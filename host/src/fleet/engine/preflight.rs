//! A rotation's start: preflight every BMC (reachable, recognised by its plugin, the current
//! password accepted), the PEP (authenticates, has the cmdlet) and the new password (fits every
//! live policy, or is generated to). What passes is a [`Preflighted`] run: its plan can be shown,
//! and only [`Preflighted::execute`] changes anything — a dry run is simply not executing it.

use super::bmcs::{self, Bmc, Shared, lock};
use super::converge::{Command, Converging, Fleet, PepStep};
use super::plan::Plan;
use super::report::{BmcResult, Observer, Phase, RunOutcome, RunReport};
use super::snmp::{self, SnmpMode};
use super::steps::SharedJournal;
use crate::fleet::cancel::Cancel;
use crate::fleet::journal::{Journal, Record, Which};
use crate::fleet::ledger::Ledger;
use crate::fleet::members::Member;
use crate::pep::{self, PepAction, PepClient, PepReport, PepRequest};
use crate::secrets::policy::FleetPolicy;
use secrecy::{ExposeSecret, SecretString};
use std::sync::Arc;
use std::time::Instant;

/// The run's secrets.
#[derive(Clone)]
pub struct RunSecrets {
    /// The password every BMC holds now.
    pub old: Arc<SecretString>,
    /// The password to set, or `None` to generate one from the fleet's policy.
    pub new: Option<Arc<SecretString>>,
}

/// Run settings.
#[derive(Clone, Debug)]
pub struct RotationOptions {
    /// BMCs worked on at once.
    pub concurrency: usize,
    /// A failed PEP step returns the BMCs to the old password (otherwise they keep the new one
    /// and the run needs `resume`).
    pub rollback_on_pep_failure: bool,
    /// Set by SIGINT/SIGTERM: no BMC job or phase starts after it.
    pub cancel: Cancel,
    /// Failed logins per BMC in this command (at most one each).
    pub ledger: Ledger,
    /// What an SNMPv3 problem (off, DES, MD5, not reported) does: stop preflight or warn.
    pub snmp: SnmpMode,
}

/// What preflight found.
// One per run, moved once: boxing would buy nothing.
#[allow(clippy::large_enum_variant)]
pub enum Preflight<C: PepClient> {
    /// Every check passed: the run can be shown and executed.
    Passed(Preflighted<C>),
    /// A check failed, or the operator stopped it: nothing was changed, nothing was written.
    Stopped(RunReport),
}

/// A run that passed preflight: every BMC verified on the current password, the PEP checked and
/// the new password settled. Nothing has changed yet.
pub struct Preflighted<C: PepClient> {
    stamp: String,
    fleet: Fleet,
    account: String,
    policy: FleetPolicy,
    pep_step: Option<PepStep<C>>,
    pep_check: Option<PepReport>,
    rollback_on_pep_failure: bool,
    observer: Arc<dyn Observer>,
    notes: Vec<String>,
    started: Instant,
    snmp: SnmpMode,
}

/// Preflights a rotation of `members` (see the module). Changes nothing and writes nothing.
pub async fn preflight<C: PepClient>(
    members: Vec<Member>,
    stamp: &str,
    secrets: RunSecrets,
    pep_step: Option<PepStep<C>>,
    options: &RotationOptions,
    observer: Arc<dyn Observer>,
) -> Preflight<C> {
    let started = Instant::now();
    let bmcs: Vec<Shared<Bmc>> = members.into_iter().map(|m| Bmc::new(m, Which::Old)).collect();
    let account = bmcs.first().map(|b| lock(b).member.target.account.clone()).unwrap_or_default();
    let mut notes = Vec::new();
    let stopped = |bmcs: &[Shared<Bmc>], outcome, notes, policy| {
        Preflight::Stopped(RunReport { policy, ..RunReport::new(stamp, bmcs::reports(bmcs), outcome, notes, started) })
    };

    let mut errors = check_bmcs(&bmcs, &secrets.old, options, &observer).await;
    if errors.is_empty() && !options.cancel.is_cancelled() {
        check_snmp(&bmcs, &secrets.old, options, &mut errors, &mut notes).await;
    }
    if options.cancel.is_cancelled() {
        notes.push("interrupted during preflight: nothing was changed".into());
        return stopped(&bmcs, RunOutcome::Interrupted, notes, None);
    }
    // The privileged endpoint too: a refused CloudAdmin password or a stamp without the cmdlet
    // is found now, before any BMC changes, not after (which would mean a rollback).
    let mut pep_check = None;
    if let Some(step) = &pep_step {
        observer.phase(Phase::PepCheck, 1);
        let action = PepAction::Check { bmc_user: Some(account.clone()), readiness: step.readiness };
        let check = PepRequest { action, close: None };
        match pep::run(&step.client, &step.target, &check, &observer.pep_progress()).await {
            Ok(report) => {
                match &report.readiness {
                    Some(readiness) if !readiness.passed => {
                        observer.advanced("PEP", false, &readiness.summary());
                        errors.push(format!(
                            "privileged endpoint: the stamp is not ready for secret rotation: {}",
                            readiness.summary()
                        ));
                    }
                    Some(readiness) => {
                        observer.advanced("PEP", true, &report.call);
                        notes.push(format!("PEP readiness: {}", readiness.summary()));
                    }
                    None => observer.advanced("PEP", true, &report.call),
                }
                pep_check = Some(report);
            }
            Err(e) => {
                observer.advanced("PEP", false, &e.to_string());
                errors.push(format!("privileged endpoint: {e}"));
            }
        }
    }
    if options.cancel.is_cancelled() {
        notes.push("interrupted during preflight: nothing was changed".into());
        return stopped(&bmcs, RunOutcome::Interrupted, notes, None);
    }
    let mut policy = FleetPolicy::azure_stack();
    for bmc in &bmcs {
        policy.intersect(&lock(bmc).policy);
    }
    let new = if errors.is_empty() { settle_new(&bmcs, &secrets, &policy, &account, &mut errors) } else { None };
    let Some(new) = new.filter(|_| errors.is_empty()) else {
        notes.push("preflight failed: nothing was changed".into());
        notes.extend(errors);
        return stopped(&bmcs, RunOutcome::PreflightFailed, notes, Some(policy));
    };
    let last = bmcs.iter().filter(|b| !lock(b).rollback_safe()).count();
    if last > 0 {
        notes.push(format!(
            "{last} BMC(s) cannot return to the old password (reuse cycle or minimum change interval): they change \
             last, after every other BMC holds the new password"
        ));
    }
    let fleet = Fleet {
        bmcs,
        old: secrets.old,
        new,
        concurrency: options.concurrency,
        cancel: options.cancel.clone(),
        ledger: options.ledger.clone(),
    };
    Preflight::Passed(Preflighted {
        stamp: stamp.to_owned(),
        fleet,
        account,
        policy,
        pep_step,
        pep_check,
        rollback_on_pep_failure: options.rollback_on_pep_failure,
        observer,
        notes,
        started,
        snmp: options.snmp,
    })
}

/// Checks the rotation account's SNMPv3 state on every BMC (each check logs in with the password
/// the BMC was just shown to hold). A problem is an error under [`SnmpMode::Require`], a warning
/// under [`SnmpMode::Warn`]; both name the BMC and the fix, in inventory order.
async fn check_snmp(
    bmcs: &[Shared<Bmc>],
    old: &Arc<SecretString>,
    options: &RotationOptions,
    errors: &mut Vec<String>,
    notes: &mut Vec<String>,
) {
    let checks = snmp::check_each(bmcs, |_| Some(old.clone()), options.concurrency).await;
    for (bmc, check) in bmcs.iter().zip(checks) {
        let Some(check) = check else { continue };
        let mut bmc = lock(bmc);
        for problem in &check.problems {
            match options.snmp {
                SnmpMode::Require => errors.push(format!("{}: {problem} (or run with --snmp warn)", bmc.name())),
                SnmpMode::Warn => notes.push(format!("warning: {}: {problem}", bmc.name())),
            }
        }
        if !check.ok && options.snmp == SnmpMode::Require {
            bmc.result = BmcResult::PreflightFailed;
            bmc.error = Some(check.problems.join("; "));
        }
        bmc.snmp_preflight = Some(check);
    }
}

/// Probes every BMC with the current password (`probe` logs in, so it verifies the password
/// too), canaries first; returns what failed, sorted.
async fn check_bmcs(
    bmcs: &[Shared<Bmc>],
    old: &Arc<SecretString>,
    options: &RotationOptions,
    observer: &Arc<dyn Observer>,
) -> Vec<String> {
    observer.phase(Phase::Preflight, bmcs.len());
    let errors: Shared<Vec<String>> = Arc::default();
    let job = |i: usize| {
        let (bmc, old, errors, observer, ledger) =
            (bmcs[i].clone(), old.clone(), errors.clone(), observer.clone(), options.ledger.clone());
        async move {
            // No journal yet: a refused login here ends the run before anything changes.
            let identified = bmcs::identify(&bmc, &[(Which::Old, old)], (&ledger, None), &observer).await;
            lock(&bmc).member.rest();
            if let Err(failures) = identified {
                let mut bmc = lock(&bmc);
                let error = format!("probe with the current password: {}", failures.join("; "));
                errors.lock().expect("errors").push(format!("{}: {error}", bmc.name()));
                // Unverified: the table shows `-`, the JSON `unknown`.
                bmc.result = BmcResult::PreflightFailed;
                bmc.error = Some(error);
            }
            bmcs::advanced(&observer, &bmc);
            Ok(())
        }
    };
    let limits = (options.concurrency, &options.cancel, &options.ledger);
    match bmcs::identify_all(bmcs, true, limits, job).await {
        Ok(Some(canary)) => return vec![bmcs::canary_note(bmcs, canary, "the current password")],
        Ok(None) => {}
        Err(e) => errors.lock().expect("errors").push(e),
    }
    let mut errors = std::mem::take(&mut *errors.lock().expect("errors"));
    errors.sort();
    errors
}

/// The new password: the operator's, checked against every policy, or one generated to fit them.
fn settle_new(
    bmcs: &[Shared<Bmc>],
    secrets: &RunSecrets,
    policy: &FleetPolicy,
    account: &str,
    errors: &mut Vec<String>,
) -> Option<Arc<SecretString>> {
    match &secrets.new {
        Some(new) => {
            let violations = policy.violations(new, account);
            if !violations.is_empty() {
                errors.push(format!("the new password does not fit every BMC: {}", violations.join("; ")));
            }
            if new.expose_secret() == secrets.old.expose_secret() {
                errors.push("the new password is the current one".into());
            }
            Some(new.clone())
        }
        None => match generation_floor(bmcs).map_or_else(|| policy.generate(account), Err) {
            Ok(generated) => Some(Arc::new(generated)),
            Err(e) => {
                errors.push(e);
                None
            }
        },
    }
}

/// The BMCs that cannot take a generated password, each with why: a plugin's reported policy
/// may not weaken the fleet's password, so such a BMC fails preflight instead.
fn generation_floor(bmcs: &[Shared<Bmc>]) -> Option<String> {
    let refused: Vec<String> = bmcs
        .iter()
        .filter_map(|b| {
            let b = lock(b);
            let why = FleetPolicy::below_generation_floor(&b.policy)?;
            Some(format!("{}: {why}", b.name()))
        })
        .collect();
    (!refused.is_empty()).then(|| format!("cannot generate the new password: {}", refused.join("; ")))
}

impl<C: PepClient> Preflighted<C> {
    /// The password the run sets: to save a generated one before anything changes.
    pub fn new_password(&self) -> &SecretString {
        &self.fleet.new
    }

    /// What the run will do.
    pub fn plan(&self) -> Plan {
        Plan::of(&self.stamp, &self.account, &self.fleet.bmcs, self.pep_check.as_ref())
    }

    /// The run as it stands, changing nothing: what `--dry-run` prints, with the PEP's answer.
    pub fn dry_run(mut self) -> RunReport {
        let count = self.fleet.bmcs.len();
        self.notes.push(format!("dry run: preflight passed on {count} BMCs; nothing was changed"));
        let mut report = self.report(RunOutcome::DryRun, None, None);
        report.pep = self.pep_check;
        report
    }

    /// Runs the rotation, journalling into `journal` (its run-started record written by the
    /// caller, with the password's fingerprint). An error is a journal that could not be
    /// written: the run stopped there, and the journal says where.
    pub async fn execute(mut self, journal: Journal) -> Result<RunReport, String> {
        let journal = SharedJournal::new(journal);
        journal.write(Record::PreflightPassed)?;
        let mut notes = std::mem::take(&mut self.notes);
        let converging = Converging {
            fleet: &self.fleet,
            journal: &journal,
            observer: &self.observer,
            pep_step: self.pep_step.take(),
            command: Command::Rotate { back_on_pep_failure: self.rollback_on_pep_failure },
            account: self.account.clone(),
        };
        let converged = converging.run(Which::New, Which::Old, &mut notes).await?;
        self.check_snmp_after(&mut notes).await;
        self.notes = notes;
        Ok(self.report(converged.outcome, converged.pep, converged.pep_error))
    }

    /// Checks SNMPv3 again once the passwords agree. Under `--snmp warn` a problem preflight
    /// already warned of is not repeated.
    async fn check_snmp_after(&self, notes: &mut Vec<String>) {
        let require = self.snmp == SnmpMode::Require;
        let warned = |bmc: &Bmc| !require && bmc.snmp_preflight.as_ref().is_some_and(|c| !c.ok);
        snmp::check_after(&self.fleet, warned, notes).await;
    }

    fn report(&self, outcome: RunOutcome, pep: Option<PepReport>, pep_error: Option<String>) -> RunReport {
        RunReport {
            pep,
            pep_error,
            policy: Some(self.policy.clone()),
            ..RunReport::new(&self.stamp, bmcs::reports(&self.fleet.bmcs), outcome, self.notes.clone(), self.started)
        }
    }
}

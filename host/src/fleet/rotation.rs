//! The fleet-atomic rotation: preflight every BMC, change them with bounded
//! concurrency, verify each, roll every changed BMC back if any fails, then hand the password to
//! the PEP — so the run ends with every BMC and Azure Stack on one password, or says exactly
//! which BMC holds which and leaves a journal that `resume` converges from.
//!
//! Outcomes that are not known (a lost answer) are resolved by verifying each password once;
//! a refused login is never retried with the same password (iLO delays, XCC locks out, iDRAC
//! blocks the address). BMCs whose policy forbids going back (a reuse cycle or a minimum
//! change interval, as on XCC) are changed last, once every other BMC holds the new password.

use super::cancel::Cancel;
use super::journal::{Journal, Record, Which};
use super::ledger::{Ledger, LoginFailure};
use super::members::Member;
use crate::gateway::Outbound;
use crate::pep::{
    self, BmcCredential, PepAction, PepClient, PepError, PepReport, PepRequest, PepTarget, Progress, TranscriptShare,
};
use crate::runtime::{CallContext, CallError, ErrorKind, PasswordPolicy, SecretBindings, SecretName};
use crate::secrets::policy::FleetPolicy;
use secrecy::{ExposeSecret, SecretString};
use serde::Serialize;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::Semaphore;

/// The run's secrets.
#[derive(Clone)]
pub struct RunSecrets {
    /// The password every BMC holds now.
    pub old: Arc<SecretString>,
    /// The password to set, or `None` to generate one from the fleet's policy.
    pub new: Option<Arc<SecretString>>,
}

/// How the PEP step is run.
pub struct PepStep<C: PepClient> {
    /// The client.
    pub client: C,
    /// Where and as whom.
    pub target: PepTarget,
    /// Transcript hand-off, if wanted.
    pub close: Option<TranscriptShare>,
}

/// Run settings.
#[derive(Clone, Debug)]
pub struct RotationOptions {
    /// BMCs worked on at once.
    pub concurrency: usize,
    /// Stop after preflight.
    pub dry_run: bool,
    /// A failed PEP step returns the BMCs to the old password (otherwise they keep the new one
    /// and the run needs `resume`).
    pub rollback_on_pep_failure: bool,
    /// Set by SIGINT/SIGTERM: no BMC job or phase starts after it.
    pub cancel: Cancel,
    /// Failed logins per BMC in this command (at most one each).
    pub ledger: Ledger,
}

/// What one BMC went through.
#[derive(Clone, Debug, Serialize)]
pub struct BmcReport {
    /// Inventory name.
    pub name: String,
    /// Address.
    pub address: String,
    /// Vendor (from the plugin).
    pub vendor: String,
    /// Controller family (from probe), if known.
    pub family: String,
    /// Firmware (from probe), if known.
    pub firmware: String,
    /// The password it holds at the end.
    pub holds: Which,
    /// What happened to it.
    pub result: BmcResult,
    /// Time spent on this BMC.
    #[serde(serialize_with = "crate::pep::millis")]
    pub duration: Duration,
    /// What went wrong, if anything.
    pub error: Option<String>,
    /// Whether its policy lets it return to the old password.
    pub rollback_safe: bool,
}

/// What happened to one BMC in a command. The JSON words are the table's.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub enum BmcResult {
    /// It holds the new password, changed and verified by this run.
    #[serde(rename = "rotated")]
    Rotated,
    /// Not changed.
    #[serde(rename = "unchanged")]
    Unchanged,
    /// Its password could not be determined.
    #[serde(rename = "unknown")]
    Unknown,
    /// Preflight failed on it.
    #[serde(rename = "preflight failed")]
    PreflightFailed,
    /// A stop, an earlier failure or a canary's refusal kept it from being started.
    #[serde(rename = "not started")]
    NotStarted,
    /// Changed, then returned to the old password.
    #[serde(rename = "rolled back")]
    RolledBack,
    /// Its return to the old password failed.
    #[serde(rename = "rollback failed")]
    RollbackFailed,
    /// A resume brought it to the run's target.
    #[serde(rename = "converged")]
    Converged,
    /// A resume could not bring it to the target.
    #[serde(rename = "failed")]
    Failed,
    /// It spent this command's failed-login budget: not logged in to again until the next command.
    #[serde(rename = "needs-attention")]
    NeedsAttention,
}

impl BmcResult {
    /// The table's word for it.
    pub fn as_str(self) -> &'static str {
        match self {
            BmcResult::Rotated => "rotated",
            BmcResult::Unchanged => "unchanged",
            BmcResult::Unknown => "unknown",
            BmcResult::PreflightFailed => "preflight failed",
            BmcResult::NotStarted => "not started",
            BmcResult::RolledBack => "rolled back",
            BmcResult::RollbackFailed => "rollback failed",
            BmcResult::Converged => "converged",
            BmcResult::Failed => "failed",
            BmcResult::NeedsAttention => "needs-attention",
        }
    }
}

impl PartialEq<&str> for BmcResult {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

impl std::fmt::Display for BmcResult {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How a run ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RunOutcome {
    /// Every BMC and the PEP hold the new password.
    Rotated,
    /// `--dry-run`: preflight passed, nothing was changed.
    DryRun,
    /// Preflight failed: nothing was changed.
    PreflightFailed,
    /// A failure, and every BMC is back on the old password (the PEP was not changed).
    RolledBack,
    /// Some state is not where the invariant wants it: `resume` converges.
    NeedsResume,
    /// The operator stopped the run (SIGINT/SIGTERM): the steps under way finished and were
    /// journalled, nothing else started; `resume` converges.
    Interrupted,
}

impl RunOutcome {
    /// The journal's word for it.
    pub fn as_str(self) -> &'static str {
        match self {
            RunOutcome::Rotated => "rotated",
            RunOutcome::DryRun => "dry-run",
            RunOutcome::PreflightFailed => "preflight-failed",
            RunOutcome::RolledBack => "rolled-back",
            RunOutcome::NeedsResume => "needs-resume",
            RunOutcome::Interrupted => "interrupted",
        }
    }
}

/// The end of a run.
#[derive(Clone, Debug, Serialize)]
pub struct RunReport {
    /// The stamp.
    pub stamp: String,
    /// How it ended.
    pub outcome: RunOutcome,
    /// Per BMC.
    pub bmcs: Vec<BmcReport>,
    /// The PEP step, if it ran.
    pub pep: Option<PepReport>,
    /// The PEP step's error, if it failed.
    pub pep_error: Option<String>,
    /// The rules the new password met.
    pub policy: Option<FleetPolicy>,
    /// What happened, in order, for people.
    pub notes: Vec<String>,
    /// Wall time.
    #[serde(serialize_with = "crate::pep::millis")]
    pub elapsed: Duration,
}

/// Phases, for progress displays.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phase {
    /// Probe and verify every BMC.
    Preflight,
    /// Set the new password.
    Change,
    /// Set the new password on the BMCs that cannot go back (after every other one made it).
    ChangeLast,
    /// Return changed BMCs to the old password.
    Rollback,
    /// Store the password in Azure Stack.
    Pep,
}

impl Phase {
    /// A label.
    pub fn label(self) -> &'static str {
        match self {
            Phase::Preflight => "preflight",
            Phase::Change => "change",
            Phase::ChangeLast => "change, last",
            Phase::Rollback => "rollback",
            Phase::Pep => "PEP",
        }
    }
}

/// Where progress goes (a TTY's progress bars, or log lines).
pub trait Observer: Send + Sync {
    /// A phase starts over `total` BMCs.
    fn phase(&self, phase: Phase, total: usize);
    /// One BMC finished the current phase.
    fn advanced(&self, bmc: &str, ok: bool, detail: &str);
    /// A line for the operator.
    fn note(&self, text: &str);
    /// Where PEP progress goes.
    fn pep_progress(&self) -> Progress;
}

/// An observer that drops everything (tests, benchmarks).
pub struct Silent;

impl Observer for Silent {
    fn phase(&self, _: Phase, _: usize) {}
    fn advanced(&self, _: &str, _: bool, _: &str) {}
    fn note(&self, _: &str) {}
    fn pep_progress(&self) -> Progress {
        pep::quiet()
    }
}

/// Per-member working state.
struct Work {
    member: Member,
    holds: Which,
    family: String,
    firmware: String,
    policy: Option<PasswordPolicy>,
    rollback_safe: bool,
    result: BmcResult,
    error: Option<String>,
    spent: Duration,
}

impl Work {
    fn report(&self) -> BmcReport {
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
            rollback_safe: self.rollback_safe,
        }
    }
}

/// The BMCs that cannot take a generated password, each with why: a plugin's reported policy
/// may not weaken the fleet's password, so such a BMC fails preflight instead.
fn generation_floor(works: &[Shared<Work>]) -> Option<String> {
    let refused: Vec<String> = works
        .iter()
        .filter_map(|w| {
            let w = w.lock().expect("work");
            let why = FleetPolicy::below_generation_floor(w.policy.as_ref()?)?;
            Some(format!("{}: {why}", w.member.entry.name))
        })
        .collect();
    (!refused.is_empty()).then(|| format!("cannot generate the new password: {}", refused.join("; ")))
}

type Shared<T> = Arc<Mutex<T>>;

pub(crate) fn context(member: &Member, login: &Arc<SecretString>, new: Option<&Arc<SecretString>>) -> CallContext {
    let mut secrets = SecretBindings::new().bind(SecretName::LoginPassword, login.clone());
    if let Some(new) = new {
        secrets = secrets.bind(SecretName::NewPassword, new.clone());
    }
    CallContext { gateway: member.outbound(), secrets, budget: None }
}

/// The journal, shared by the concurrent jobs; a write failure stops the run where it stands:
/// the journal refuses every later record, and no job starts another step.
#[derive(Clone)]
pub(crate) struct SharedJournal(Shared<Journal>, Arc<std::sync::atomic::AtomicBool>);

impl SharedJournal {
    pub(crate) fn new(journal: Journal) -> SharedJournal {
        SharedJournal(Arc::new(Mutex::new(journal)), Arc::default())
    }

    pub(crate) fn write(&self, record: Record) -> Result<(), String> {
        let mut journal = self.0.lock().expect("journal");
        let written = journal.write(record);
        if written.is_err() {
            self.1.store(true, std::sync::atomic::Ordering::SeqCst);
        }
        written
    }

    /// Refuses to start a step once a record could not be written.
    pub(crate) fn check(&self) -> Result<(), String> {
        if !self.1.load(std::sync::atomic::Ordering::SeqCst) {
            return Ok(());
        }
        Err(self.0.lock().expect("journal").broken().unwrap_or("the journal could not be written").to_owned())
    }

    pub(crate) fn path(&self) -> std::path::PathBuf {
        self.0.lock().expect("journal").path().to_owned()
    }
}

/// Whether a failed change may still have been applied.
fn maybe_applied(error: &CallError) -> bool {
    match error.plugin_error() {
        Some(e) => matches!(e.kind, ErrorKind::Ambiguous | ErrorKind::Protocol | ErrorKind::AuthFailed),
        // Stopped mid-call (deadline, crash): it may have sent the PATCH.
        None => true,
    }
}

/// A plugin call that logs in, through the failed-login ledger.
pub(crate) enum Login<T> {
    /// It succeeded.
    Done(T),
    /// It failed (a failed login among other errors: counted and journalled already).
    Failed(CallError),
    /// Not made: the BMC already cost its failed-login budget in this action.
    NotTried,
}

/// Makes one call that logs in to `bmc` with `password`, unless the BMC's failed-login budget
/// for this action is spent; a failed login is counted and, once the run has a journal,
/// journalled.
pub(crate) async fn login<T>(
    bmc: &str,
    password: Which,
    ledger: &Ledger,
    journal: Option<&SharedJournal>,
    call: impl Future<Output = Result<T, CallError>>,
) -> Login<T> {
    if !ledger.allows(bmc) {
        return Login::NotTried;
    }
    match call.await {
        Ok(value) => Login::Done(value),
        Err(error) => {
            if let Some(failure) = LoginFailure::of(&error) {
                ledger.record(bmc);
                if let Some(journal) = journal {
                    // A record that cannot be written marks the journal broken: the step after
                    // this one refuses to start, so the result can be ignored here.
                    let _ = journal.write(Record::LoginRefused { bmc: bmc.to_owned(), password, failure });
                }
            }
            Login::Failed(error)
        }
    }
}

/// Finds out which password a BMC holds, trying each once; `refused` was just refused and is not
/// retried, and nothing is tried once the BMC's failed-login budget is spent.
pub(crate) async fn resolve(
    member: &Member,
    secrets: [(&Arc<SecretString>, Which); 2],
    refused: Option<Which>,
    ledger: &Ledger,
    journal: &SharedJournal,
) -> (Which, String) {
    let mut notes = Vec::new();
    for (secret, which) in secrets {
        if Some(which) == refused {
            continue;
        }
        let call = async { member.plugin.verify(context(member, secret, None), &member.target).await.result };
        match login(&member.entry.name, which, ledger, Some(journal), call).await {
            Login::Done(()) => return (which, format!("verified the {} password", name(which))),
            Login::Failed(e) => notes.push(format!("{} password: {e}", name(which))),
            Login::NotTried => notes.push(format!("{} password: {}", name(which), super::ledger::spent_note())),
        }
    }
    (Which::Unknown, format!("neither password could be verified ({})", notes.join("; ")))
}

pub(crate) fn name(which: Which) -> &'static str {
    match which {
        Which::Old => "old",
        Which::New => "new",
        Which::Unknown => "unknown",
    }
}

/// What one change ended with.
pub(crate) struct Changed {
    /// The password the BMC holds now.
    pub holds: Which,
    /// What went wrong, for the operator.
    pub error: Option<String>,
    /// The plugin's kind of error when the change itself was answered with one, so callers
    /// decide on the kind, never on the error's text.
    pub refused: Option<ErrorKind>,
}

impl Changed {
    /// The report's word for a BMC that did not reach `target`: `needs-attention` when it spent
    /// its failed-login budget (it is not logged in to again in this command), else `failed`.
    pub fn missed(member: &Member, ledger: &Ledger) -> BmcResult {
        if ledger.allows(&member.entry.name) { BmcResult::Failed } else { BmcResult::NeedsAttention }
    }
}

/// Sets `to` on one BMC that holds `from`, verifies it, and journals each step.
pub(crate) async fn change_one(
    member: &Member,
    from: (&Arc<SecretString>, Which),
    to: (&Arc<SecretString>, Which),
    journal: &SharedJournal,
    ledger: &Ledger,
) -> Result<Changed, String> {
    journal.check()?;
    let bmc = member.entry.name.as_str();
    if !ledger.allows(bmc) {
        // Not even the change: it logs in, and this BMC already refused a login in this command.
        return Ok(Changed { holds: from.1, error: Some(super::ledger::spent_note()), refused: None });
    }
    journal.write(Record::Changing { bmc: bmc.to_owned(), to: to.1 })?;
    let call =
        async { member.plugin.change_password(context(member, from.0, Some(to.0)), &member.target).await.result };
    let changed = match login(bmc, from.1, ledger, Some(journal), call).await {
        Login::Done(()) => Ok(()),
        Login::Failed(e) => Err(e),
        Login::NotTried => {
            // Checked above; one job per BMC, so only a bug gets here: nothing was sent.
            let note = super::ledger::spent_note();
            journal.write(Record::Holds { bmc: bmc.to_owned(), password: from.1, note: note.clone() })?;
            return Ok(Changed { holds: from.1, error: Some(note), refused: None });
        }
    };
    let refused = changed.as_ref().err().and_then(|e| e.plugin_error()).map(|p| p.kind);
    let verify = async { member.plugin.verify(context(member, to.0, None), &member.target).await.result };
    let (holds, note, error) = match changed {
        Ok(()) => match login(bmc, to.1, ledger, Some(journal), verify).await {
            Login::Done(()) => (to.1, format!("changed and verified the {} password", name(to.1)), None),
            Login::NotTried => {
                let note = format!("the change was accepted; {}", super::ledger::spent_note());
                (Which::Unknown, note.clone(), Some(note))
            }
            Login::Failed(e) => {
                let (holds, note) =
                    resolve(member, [(from.0, from.1), (to.0, to.1)], Some(to.1), ledger, journal).await;
                (
                    holds,
                    note.clone(),
                    Some(format!("the change was accepted but the new password does not verify: {e}; {note}")),
                )
            }
        },
        Err(e) if maybe_applied(&e) => {
            let kind = e.plugin_error().map(|p| p.kind);
            let refused = (kind == Some(ErrorKind::AuthFailed)).then_some(from.1);
            // One failed login per BMC per command: the likelier password first. An answer the
            // plugin did not understand (a 500, say) most often means nothing was changed; a lost
            // answer or a call cut short, that the change was made.
            let order = if kind == Some(ErrorKind::Protocol) {
                [(from.0, from.1), (to.0, to.1)]
            } else {
                [(to.0, to.1), (from.0, from.1)]
            };
            let (holds, note) = resolve(member, order, refused, ledger, journal).await;
            (holds, note.clone(), Some(format!("{e}; {note}")))
        }
        Err(e) => (from.1, "refused, nothing changed".into(), Some(e.to_string())),
    };
    journal.write(Record::Holds { bmc: member.entry.name.clone(), password: holds, note })?;
    Ok(Changed { holds, error, refused })
}

/// Runs `job(i)` for each of `indices` with at most `limit` at once. Once `cancel` is set no
/// further job starts (those running finish: a change is always verified and journalled); the
/// indices never started are returned. A job's error (the journal could not be written) is
/// returned once every running job has ended.
pub(crate) async fn each<F, Fut>(indices: &[usize], limit: usize, cancel: &Cancel, job: F) -> Result<Vec<usize>, String>
where
    F: Fn(usize) -> Fut,
    Fut: Future<Output = Result<(), String>> + Send + 'static,
{
    let semaphore = Arc::new(Semaphore::new(limit.max(1)));
    let mut tasks = tokio::task::JoinSet::new();
    let mut not_started = Vec::new();
    for (n, &i) in indices.iter().enumerate() {
        let permit = semaphore.clone().acquire_owned().await.expect("never closed");
        // Checked after the wait for a slot: a stop that came while waiting is seen here.
        if cancel.is_cancelled() {
            not_started.extend_from_slice(&indices[n..]);
            break;
        }
        let fut = job(i);
        tasks.spawn(async move {
            let result = fut.await;
            drop(permit);
            result
        });
    }
    let mut first_error = None;
    while let Some(joined) = tasks.join_next().await {
        let result = joined.map_err(|e| format!("a BMC job panicked: {e}")).and_then(|r| r);
        if let Err(e) = result {
            first_error.get_or_insert(e);
        }
    }
    first_error.map_or(Ok(not_started), Err)
}

/// Preflight: every BMC is reachable, its plugin recognises it and logs in with the old password,
/// and (checked by the caller) the new password fits every live policy. Changes nothing.
async fn preflight(
    works: &[Shared<Work>],
    secrets: &RunSecrets,
    options: &RotationOptions,
    observer: &Arc<dyn Observer>,
) -> Vec<String> {
    observer.phase(Phase::Preflight, works.len());
    let errors: Shared<Vec<String>> = Arc::default();
    let all: Vec<usize> = (0..works.len()).collect();
    let job = |i: usize| {
        let work = works[i].clone();
        let (old, errors, observer, ledger) =
            (secrets.old.clone(), errors.clone(), observer.clone(), options.ledger.clone());
        async move {
            let started = Instant::now();
            let member = {
                let w = work.lock().expect("work");
                (
                    w.member.plugin.clone(),
                    w.member.target.clone(),
                    w.member.gateway.clone(),
                    w.member.entry.name.clone(),
                    w.member.profile.clone(),
                )
            };
            let (plugin, target, gateway, name, profile) = member;
            let ctx = CallContext {
                gateway: gateway.as_ref().ok().map(|g| g.clone() as Arc<dyn Outbound>),
                secrets: SecretBindings::new().bind(SecretName::LoginPassword, old.clone()),
                budget: None,
            };
            let outcome = async {
                gateway.as_ref().map_err(Clone::clone)?;
                // `probe` logs in with the current password, so a probe that succeeds has verified
                // it; a separate `verify` would only double the logins (and a refused one is
                // never retried).
                let call = async { plugin.probe(ctx, &target).await.result };
                // No journal yet: a refused login here ends the run before anything changes.
                match login(&name, Which::Old, &ledger, None, call).await {
                    Login::Done(probe) => Ok(probe),
                    Login::Failed(e) => Err(format!("probe with the current password: {e}")),
                    Login::NotTried => Err(super::ledger::spent_note()),
                }
            }
            .await;
            let mut w = work.lock().expect("work");
            w.spent += started.elapsed();
            match outcome {
                Ok(probe) => {
                    let policy = profile.apply(probe.policy.clone());
                    w.rollback_safe = policy.reuse_cycle == 0 && policy.min_change_interval_hours == 0;
                    w.family = probe.family;
                    w.firmware = probe.firmware;
                    w.policy = Some(policy);
                    observer.advanced(&name, true, &w.family);
                }
                Err(e) => {
                    observer.advanced(&name, false, &e);
                    w.error = Some(e.clone());
                    w.result = BmcResult::PreflightFailed;
                    errors.lock().expect("errors").push(format!("{name}: {e}"));
                }
            }
            Ok(())
        }
    };
    // Canaries: the first BMC of each hardware profile, one at a time, before any other. A
    // current password a canary refuses is most likely mistyped; stopping there costs one failed
    // login on one BMC instead of one on every BMC of the fleet.
    let mut profiles = std::collections::BTreeSet::new();
    let canaries: Vec<usize> = all
        .iter()
        .copied()
        .filter(|&i| profiles.insert(works[i].lock().expect("work").member.profile.name.clone()))
        .collect();
    for (n, &i) in canaries.iter().enumerate() {
        match each(&[i], 1, &options.cancel, &job).await {
            Ok(not_started) => mark_not_started(works, &not_started),
            Err(e) => errors.lock().expect("errors").push(e),
        }
        let (bmc, user) = {
            let w = works[i].lock().expect("work");
            (w.member.entry.name.clone(), w.member.target.account.clone())
        };
        if !options.ledger.allows(&bmc) {
            let rest: Vec<usize> = all.iter().copied().filter(|j| !canaries[..=n].contains(j)).collect();
            mark_not_started(works, &rest);
            let others = if n == 0 { "" } else { " (the BMCs tried before it, one per other profile, took it)" };
            return vec![format!(
                "the current password for {user} was refused by {bmc}{others}: mistyped? no other BMC was tried"
            )];
        }
    }
    let rest: Vec<usize> = all.iter().copied().filter(|j| !canaries.contains(j)).collect();
    match each(&rest, options.concurrency, &options.cancel, &job).await {
        Ok(not_started) => mark_not_started(works, &not_started),
        Err(e) => errors.lock().expect("errors").push(e),
    }
    let mut errors = std::mem::take(&mut *errors.lock().expect("errors"));
    errors.sort();
    errors
}

/// Runs a rotation over `members`. Preflight includes a read-only check of the PEP (when there
/// is a PEP step): connect, authenticate, detect the cmdlet. Once preflight passes, `before_change` gets the new password
/// (generated or given) and returns the journal, its first record written: that is where a
/// generated password is saved for the operator and the run becomes resumable. A dry run or a
/// failed preflight leaves nothing behind.
pub async fn rotate<C: PepClient>(
    members: Vec<Member>,
    stamp: &str,
    secrets: RunSecrets,
    pep_step: Option<PepStep<C>>,
    options: &RotationOptions,
    before_change: impl FnOnce(&SecretString) -> Result<Journal, String>,
    observer: Arc<dyn Observer>,
) -> Result<(RunReport, Option<std::path::PathBuf>), String> {
    let started = Instant::now();
    let works: Vec<Shared<Work>> = members
        .into_iter()
        .map(|member| {
            Arc::new(Mutex::new(Work {
                member,
                holds: Which::Old,
                family: String::new(),
                firmware: String::new(),
                policy: None,
                rollback_safe: true,
                result: BmcResult::Unchanged,
                error: None,
                spent: Duration::ZERO,
            }))
        })
        .collect();
    let mut notes = Vec::new();
    let report =
        |works: &[Shared<Work>], outcome, notes: Vec<String>, policy, pep: Option<PepReport>, pep_error| RunReport {
            stamp: stamp.to_owned(),
            outcome,
            bmcs: works.iter().map(|w| w.lock().expect("work").report()).collect(),
            pep,
            pep_error,
            policy,
            notes,
            elapsed: started.elapsed(),
        };

    // Preflight.
    let mut errors = preflight(&works, &secrets, options, &observer).await;
    if options.cancel.is_cancelled() {
        notes.push("interrupted during preflight: nothing was changed".into());
        return Ok((report(&works, RunOutcome::Interrupted, notes, None, None, None), None));
    }
    // The privileged endpoint too: a refused CloudAdmin password or a stamp without the cmdlet
    // is found now, before any BMC changes, not after (which would mean a rollback).
    let account = works.first().map(|w| w.lock().expect("work").member.target.account.clone()).unwrap_or_default();
    if let Some(step) = &pep_step {
        observer.phase(Phase::Pep, 1);
        let check = PepRequest { action: PepAction::Check { bmc_user: Some(account.clone()) }, close: None };
        match pep::run(&step.client, &step.target, &check, &observer.pep_progress()).await {
            Ok(report) => {
                observer.advanced("PEP", true, &report.call);
                notes.push(format!("the PEP answers on {} and will run {}", report.endpoint, report.call));
            }
            Err(e) => {
                observer.advanced("PEP", false, &e.to_string());
                errors.push(format!("privileged endpoint: {e}"));
            }
        }
    }
    let mut policy = FleetPolicy::azure_stack();
    for w in &works {
        if let Some(p) = &w.lock().expect("work").policy {
            policy.intersect(p);
        }
    }
    let new = if errors.is_empty() {
        match &secrets.new {
            Some(new) => {
                let violations = policy.violations(new, &account);
                if !violations.is_empty() {
                    errors.push(format!("the new password does not fit every BMC: {}", violations.join("; ")));
                }
                if new.expose_secret() == secrets.old.expose_secret() {
                    errors.push("the new password is the current one".into());
                }
                Some(new.clone())
            }
            None => match generation_floor(&works).map_or_else(|| policy.generate(&account), Err) {
                Ok(generated) => Some(Arc::new(generated)),
                Err(e) => {
                    errors.push(e);
                    None
                }
            },
        }
    } else {
        None
    };
    if !errors.is_empty() {
        notes.push("preflight failed: nothing was changed".into());
        notes.extend(errors);
        return Ok((report(&works, RunOutcome::PreflightFailed, notes, Some(policy), None, None), None));
    }
    let new = new.expect("set when preflight passed");
    let unsafe_count = works.iter().filter(|w| !w.lock().expect("work").rollback_safe).count();
    if unsafe_count > 0 {
        notes.push(format!(
            "{unsafe_count} BMC(s) cannot return to the old password (reuse cycle or minimum change interval): they \
             change last, after every other BMC holds the new password"
        ));
    }
    if options.dry_run {
        notes.push(format!("dry run: preflight passed on {} BMCs; nothing was changed", works.len()));
        return Ok((report(&works, RunOutcome::DryRun, notes, Some(policy), None, None), None));
    }
    let journal = SharedJournal::new(before_change(&new)?);
    journal.write(Record::PreflightPassed)?;
    let journal_path = journal.path();

    // Change: rollback-safe BMCs first, then those that cannot go back.
    let (safe, last): (Vec<usize>, Vec<usize>) =
        (0..works.len()).partition(|&i| works[i].lock().expect("work").rollback_safe);
    let mut failed = false;
    for (phase, batch) in [(Phase::Change, safe), (Phase::ChangeLast, last)] {
        if failed {
            for &i in &batch {
                works[i].lock().expect("work").result = BmcResult::NotStarted;
            }
            continue;
        }
        if batch.is_empty() {
            continue;
        }
        if options.cancel.is_cancelled() {
            mark_not_started(&works, &batch);
            continue;
        }
        observer.phase(phase, batch.len());
        let job = |i: usize| {
            let work = works[i].clone();
            let (old, new, journal, observer) = (secrets.old.clone(), new.clone(), journal.clone(), observer.clone());
            let ledger = options.ledger.clone();
            async move {
                let started = Instant::now();
                let member = work.lock().expect("work").member.clone();
                let Changed { holds, error, .. } =
                    change_one(&member, (&old, Which::Old), (&new, Which::New), &journal, &ledger).await?;
                let mut w = work.lock().expect("work");
                w.spent += started.elapsed();
                w.holds = holds;
                w.result = match holds {
                    Which::New => BmcResult::Rotated,
                    _ if !ledger.allows(&member.entry.name) => BmcResult::NeedsAttention,
                    Which::Old => BmcResult::Unchanged,
                    Which::Unknown => BmcResult::Unknown,
                };
                w.error = error;
                observer.advanced(&w.member.entry.name, holds == Which::New, w.error.as_deref().unwrap_or(""));
                Ok(())
            }
        };
        let not_started = each(&batch, options.concurrency, &options.cancel, job).await?;
        mark_not_started(&works, &not_started);
        failed = batch.iter().any(|&i| works[i].lock().expect("work").holds != Which::New);
    }
    // The operator asked to stop: no rollback and no PEP step (each is a new phase); what was
    // done is journalled and `resume` takes it from here.
    if options.cancel.is_cancelled() {
        notes.push(interrupted_note(&works));
        journal.write(Record::Finished { outcome: RunOutcome::Interrupted })?;
        return Ok((report(&works, RunOutcome::Interrupted, notes, Some(policy), None, None), Some(journal_path)));
    }

    if failed {
        let failures: Vec<String> = works
            .iter()
            .filter_map(|w| {
                let w = w.lock().expect("work");
                let error = w.error.as_ref().filter(|_| w.holds != Which::New)?;
                Some(format!("{}: {error}", w.member.entry.name))
            })
            .collect();
        notes.push(format!("the change failed on {} BMC(s): {}", failures.len(), failures.join("; ")));
        let stuck = works.iter().any(|w| {
            let w = w.lock().expect("work");
            !w.rollback_safe && w.holds != Which::Old
        });
        if stuck {
            notes.push(
                "BMCs that cannot return to the old password already hold the new one: the run stops here; fix the \
                 failed BMCs and run `bmc-rotate resume`, which completes the rotation"
                    .into(),
            );
            journal.write(Record::Finished { outcome: RunOutcome::NeedsResume })?;
            return Ok((report(&works, RunOutcome::NeedsResume, notes, Some(policy), None, None), Some(journal_path)));
        }
        let outcome =
            roll_back(&works, &secrets.old, &new, "the change failed", options, &journal, &observer, &mut notes)
                .await?;
        return Ok((report(&works, outcome, notes, Some(policy), None, None), Some(journal_path)));
    }
    notes.push(format!("all {} BMCs hold the new password", works.len()));

    // The PEP step.
    let Some(step) = pep_step else {
        notes.push("no [pep] table: Azure Stack was not told; run `bmc-rotate pep set-credential`".into());
        journal.write(Record::Finished { outcome: RunOutcome::NeedsResume })?;
        return Ok((report(&works, RunOutcome::NeedsResume, notes, Some(policy), None, None), Some(journal_path)));
    };
    observer.phase(Phase::Pep, 1);
    let request = PepRequest {
        action: PepAction::SetCredential(BmcCredential {
            user: Some(account.clone()),
            password: SecretString::from(new.expose_secret().to_owned()),
            bypass_bmc_update: true,
        }),
        close: step.close,
    };
    journal.write(Record::PepStarted { password: Which::New })?;
    let result = pep::run(&step.client, &step.target, &request, &observer.pep_progress()).await;
    observer.advanced("PEP", result.is_ok(), "");
    match result {
        Ok(pep_report) => {
            journal.write(Record::PepEnded { password: Which::New, stored: Some(Which::New), error: None })?;
            journal.write(Record::Finished { outcome: RunOutcome::Rotated })?;
            notes.push(format!("Azure Stack Hub stores the new credential ({})", pep_report.call));
            Ok((report(&works, RunOutcome::Rotated, notes, Some(policy), Some(pep_report), None), Some(journal_path)))
        }
        Err(error) => {
            let unknown = error.outcome_unknown();
            let stored = unknown.then_some(Which::Unknown);
            journal.write(Record::PepEnded { password: Which::New, stored, error: Some(error.to_string()) })?;
            notes.push(format!("the PEP step failed: {error}"));
            let all_safe = works.iter().all(|w| w.lock().expect("work").rollback_safe);
            if unknown || !options.rollback_on_pep_failure || !all_safe {
                notes.push(pep_resume_note(&error, options.rollback_on_pep_failure, all_safe));
                journal.write(Record::Finished { outcome: RunOutcome::NeedsResume })?;
                return Ok((
                    report(&works, RunOutcome::NeedsResume, notes, Some(policy), None, Some(error.to_string())),
                    Some(journal_path),
                ));
            }
            let outcome =
                roll_back(&works, &secrets.old, &new, "the PEP step failed", options, &journal, &observer, &mut notes)
                    .await?;
            Ok((report(&works, outcome, notes, Some(policy), None, Some(error.to_string())), Some(journal_path)))
        }
    }
}

/// BMCs a stop kept from starting.
fn mark_not_started(works: &[Shared<Work>], indices: &[usize]) {
    for &i in indices {
        works[i].lock().expect("work").result = BmcResult::NotStarted;
    }
}

/// What an interrupted run leaves: how many BMCs may not hold the old password.
fn interrupted_note(works: &[Shared<Work>]) -> String {
    let changed = works.iter().filter(|w| w.lock().expect("work").holds != Which::Old).count();
    format!("interrupted: {changed} BMC(s) changed; nothing else was started")
}

fn pep_resume_note(error: &PepError, rollback: bool, all_safe: bool) -> String {
    if error.outcome_unknown() {
        "whether Azure Stack stored the new credential is unknown; the BMCs keep the new password. Run `bmc-rotate \
         resume` to store it again (harmless if it was stored)"
            .into()
    } else if !rollback {
        "--on-pep-failure keep: the BMCs keep the new password; run `bmc-rotate resume` once the PEP is reachable"
            .into()
    } else {
        debug_assert!(!all_safe);
        "some BMCs cannot return to the old password, so the BMCs keep the new one; run `bmc-rotate resume` once \
         the PEP is reachable"
            .into()
    }
}

/// Returns every BMC that holds (or may hold) the new password to the old one.
#[allow(clippy::too_many_arguments)]
async fn roll_back(
    works: &[Shared<Work>],
    old: &Arc<SecretString>,
    new: &Arc<SecretString>,
    reason: &str,
    options: &RotationOptions,
    journal: &SharedJournal,
    observer: &Arc<dyn Observer>,
    notes: &mut Vec<String>,
) -> Result<RunOutcome, String> {
    journal.write(Record::RollingBack { reason: reason.into() })?;
    let todo: Vec<usize> = (0..works.len()).filter(|&i| works[i].lock().expect("work").holds != Which::Old).collect();
    observer.phase(Phase::Rollback, todo.len());
    let job = |i: usize| {
        let work = works[i].clone();
        let (old, new, journal, observer) = (old.clone(), new.clone(), journal.clone(), observer.clone());
        let ledger = options.ledger.clone();
        async move {
            let started = Instant::now();
            let (member, holds) = {
                let w = work.lock().expect("work");
                (w.member.clone(), w.holds)
            };
            // An unknown BMC is left alone: both passwords were just tried on it (or one was
            // refused), and trying again now would repeat a refused login. `resume` verifies it
            // later, once per password.
            let (holds, error) = match holds {
                Which::New => {
                    let changed =
                        change_one(&member, (&new, Which::New), (&old, Which::Old), &journal, &ledger).await?;
                    (changed.holds, changed.error)
                }
                other => (other, None),
            };
            let mut w = work.lock().expect("work");
            w.spent += started.elapsed();
            w.holds = holds;
            if holds == Which::Old && w.result == BmcResult::Rotated {
                w.result = BmcResult::RolledBack;
            } else if holds != Which::Old {
                w.result = if ledger.allows(&member.entry.name) {
                    BmcResult::RollbackFailed
                } else {
                    BmcResult::NeedsAttention
                };
                // A BMC left alone keeps what its change said (why its password is not known).
                let why = error.or_else(|| w.error.take()).unwrap_or_default();
                w.error = Some(format!("{why}; its password is not known: `bmc-rotate resume` verifies it"));
            }
            observer.advanced(&w.member.entry.name, holds == Which::Old, w.error.as_deref().unwrap_or(""));
            Ok(())
        }
    };
    let not_started = each(&todo, options.concurrency, &options.cancel, job).await?;
    mark_not_started(works, &not_started);
    let stuck: Vec<String> = works
        .iter()
        .filter_map(|w| {
            let w = w.lock().expect("work");
            (w.holds != Which::Old).then(|| format!("{} holds the {} password", w.member.entry.name, name(w.holds)))
        })
        .collect();
    if !stuck.is_empty() && options.cancel.is_cancelled() {
        notes.push(interrupted_note(works));
        journal.write(Record::Finished { outcome: RunOutcome::Interrupted })?;
        return Ok(RunOutcome::Interrupted);
    }
    if stuck.is_empty() {
        notes.push("every BMC is back on the old password; Azure Stack was not changed".into());
        journal.write(Record::Finished { outcome: RunOutcome::RolledBack })?;
        Ok(RunOutcome::RolledBack)
    } else {
        notes.push(format!("the rollback did not finish: {}; run `bmc-rotate resume`", stuck.join(", ")));
        journal.write(Record::Finished { outcome: RunOutcome::NeedsResume })?;
        Ok(RunOutcome::NeedsResume)
    }
}

//! `resume` and `status`: read a run's journal, check the operator's secrets against its
//! fingerprints and the inventory against the run's, check the PEP, find out what every BMC
//! really holds (one login per password, never a retry of a refused one), and converge to the
//! invariant — every BMC and Azure Stack on one password. The direction is the run's: forward
//! to the new password, unless the run had decided to roll back; if a BMC refuses to go back (a
//! reuse cycle), forward it is. BMCs are worked on with the same bounded concurrency as a run.

use super::cancel::Cancel;
use super::journal::{self, Journal, Line, Record, Which};
use super::ledger::{BUDGET, Ledger};
use super::members::Member;
use super::rotation::{
    BmcReport, BmcResult, Changed, Login, Observer, PepStep, Phase, RunOutcome, RunReport, SharedJournal, change_one,
    context, each, login, name,
};
use crate::pep::{self, BmcCredential, PepAction, PepClient, PepRequest};
use crate::runtime::{ErrorKind, PasswordPolicy};
use secrecy::{ExposeSecret, SecretString};
use serde::Serialize;
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Where a run stands, from its journal alone.
#[derive(Clone, Debug, Serialize)]
pub struct RunState {
    /// Run id.
    pub run: String,
    /// Stamp.
    pub stamp: String,
    /// The inventory the run used.
    pub inventory: std::path::PathBuf,
    /// The BMC account.
    pub bmc_user: String,
    /// What each BMC is known to hold, in inventory order.
    pub bmcs: Vec<(String, Which)>,
    /// Each BMC's canonical address when the run started (empty for journals of earlier releases).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub addresses: Vec<String>,
    /// SHA-256 of the run's BMC address set.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bmcs_sha256: Option<String>,
    /// The password the run converges to.
    pub target: Which,
    /// What Azure Stack is known to store: `new`, `old`, or `unknown` (an attempt's outcome was lost).
    pub pep: Which,
    /// The last `finished` outcome, unless something happened after it or it disagrees with the
    /// records before it.
    pub finished: Option<RunOutcome>,
    /// Why a `finished` record was not believed: what it claims disagrees with what the journal
    /// says each BMC and Azure Stack hold.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub inconsistent: Option<String>,
    /// Records in the journal.
    pub records: usize,
    /// File lines skipped as damaged.
    pub skipped: Vec<usize>,
    /// What was wrong with the journal, if anything.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub damage: Option<String>,
    /// No run-started record was left: the state comes from the inventory, every BMC and Azure
    /// Stack are unknown, and the secrets cannot be checked.
    pub recovered: bool,
    /// The lockout ledger: failed logins per BMC, in inventory order.
    pub ledger: Vec<LedgerRow>,
    /// Salt and fingerprints, to check secrets (none when `recovered`).
    #[serde(skip)]
    fingerprints: Option<(String, String, String)>,
    /// The password `resume` tries first on each BMC, where the journal has a better guess than
    /// what the BMC is believed to hold (see [`state`]).
    #[serde(skip)]
    guesses: BTreeMap<String, Which>,
}

/// One BMC's line of the lockout ledger.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct LedgerRow {
    /// The BMC.
    pub bmc: String,
    /// Failed logins the journal records for it, every command of the run together.
    pub failed_logins: u32,
    /// Failed logins in the last command (`rotate` or the last `resume`).
    pub last_command: u32,
    /// Of the budget per command (`ledger::BUDGET`), what the last command left; every command
    /// starts with the whole budget.
    pub budget_left: u32,
}

impl RunState {
    /// Whether the invariant already holds and nothing is left to do.
    pub fn converged(&self) -> bool {
        matches!(self.finished, Some(RunOutcome::Rotated | RunOutcome::RolledBack))
    }

    /// Checks the operator's secrets against the run's fingerprints.
    pub fn check_secrets(&self, old: &SecretString, new: &SecretString) -> Result<(), String> {
        let Some((salt, old_fp, new_fp)) = &self.fingerprints else {
            // Nothing to check against: at least refuse a pair that cannot be a rotation.
            if old.expose_secret() == new.expose_secret() {
                return Err("the old and the new BMC password are the same".into());
            }
            return Ok(());
        };
        if &journal::fingerprint(salt, "old", old.expose_secret()) != old_fp {
            return Err("the old BMC password is not the one this run started with".into());
        }
        if &journal::fingerprint(salt, "new", new.expose_secret()) != new_fp {
            return Err("the new BMC password is not the one this run set".into());
        }
        Ok(())
    }

    /// How the inventory given to `resume` differs from the one the run started with: another
    /// stamp, or BMCs at other addresses (names alone say little: every stamp has a `node01`).
    /// Empty when it is the same fleet, or when the journal predates address binding.
    pub fn inventory_changes(&self, stamp: &str, members: &[Member]) -> Vec<String> {
        let mut changes = Vec::new();
        if self.stamp != stamp {
            changes.push(format!("the run was on stamp `{}`, the inventory is stamp `{stamp}`", self.stamp));
        }
        let given: Vec<String> =
            members.iter().map(|m| super::inventory::canonical_address(&m.entry.endpoint)).collect();
        for ((bmc, _), (then, now)) in self.bmcs.iter().zip(self.addresses.iter().zip(&given)) {
            if then != now {
                changes.push(format!("{bmc}: {then} then, {now} now"));
            }
        }
        if let Some(digest) = &self.bmcs_sha256
            && *digest != super::lock::address_digest(given)
            && changes.is_empty()
        {
            changes.push("the set of BMC addresses differs".into());
        }
        changes
    }
}

/// What a resume needs when the journal lost its run-started record: where it comes from.
#[derive(Clone, Debug)]
pub struct Recovery {
    /// The stamp (from the inventory).
    pub stamp: String,
    /// The inventory given to `resume`.
    pub inventory: std::path::PathBuf,
}

/// The journal's words for "no run-started record".
pub const NO_START: &str = "the journal has no readable run-started record";

/// What a `finished` record claims that the records before it contradict, if anything: a run
/// that ended `rotated` left every BMC and Azure Stack on the new password, one that ended
/// `rolled-back` left them on the old one. A forged or misplaced `finished` line must not make
/// `status` or `resume` say there is nothing to do.
fn contradiction(outcome: RunOutcome, bmcs: &[(String, Which)], pep: Which) -> Option<String> {
    let want = match outcome {
        RunOutcome::Rotated => Which::New,
        RunOutcome::RolledBack => Which::Old,
        _ => return None,
    };
    let off: Vec<String> =
        bmcs.iter().filter(|(_, w)| *w != want).map(|(b, w)| format!("{b} holds the {} password", name(*w))).collect();
    let mut why = off;
    if pep != want {
        why.push(format!("Azure Stack stores the {} password", name(pep)));
    }
    (!why.is_empty()).then(|| format!("the journal ends `{}` but {}", outcome.as_str(), why.join(", ")))
}

/// Reads where a run stands, from the last run-started record on (a `resume` that found none
/// writes a new one).
pub fn state(lines: &[Line]) -> Result<RunState, String> {
    let Some(first) = lines.iter().rposition(|l| matches!(l.record, Record::RunStarted { .. })) else {
        return Err(NO_START.into());
    };
    let lines = &lines[first..];
    let Some(Record::RunStarted {
        run,
        stamp,
        inventory,
        bmc_user,
        bmcs,
        salt,
        old,
        new,
        recovered,
        addresses,
        bmcs_sha256,
        ..
    }) = lines.first().map(|l| l.record.clone())
    else {
        unreachable!("found above");
    };
    let start = if recovered { Which::Unknown } else { Which::Old };
    let mut holds: BTreeMap<String, Which> = bmcs.iter().map(|b| (b.clone(), start)).collect();
    let (mut target, mut pep, mut pep_before, mut finished) = (Which::New, start, start, None);
    let (mut failed, mut last_command, mut refused) =
        (BTreeMap::<String, u32>::new(), BTreeMap::<String, u32>::new(), BTreeMap::new());
    let mut pending: BTreeMap<String, (Which, Which)> = BTreeMap::new();
    for line in &lines[1..] {
        match &line.record {
            Record::Changing { bmc, to } => {
                let from = holds.insert(bmc.clone(), Which::Unknown).unwrap_or(Which::Unknown);
                pending.insert(bmc.clone(), (from, *to));
            }
            Record::Holds { bmc, password, .. } => {
                holds.insert(bmc.clone(), *password);
            }
            Record::RollingBack { .. } => target = Which::Old,
            Record::RollingForward { .. } => target = Which::New,
            Record::PepStarted { .. } => {
                pep_before = pep;
                pep = Which::Unknown;
            }
            Record::PepEnded { password, stored, .. } => {
                pep = match stored {
                    Some(Which::Unknown) => Which::Unknown,
                    Some(_) => *password,
                    // A definite failure stored nothing: the store keeps what it had before.
                    None => pep_before,
                };
            }
            Record::Finished { outcome } => finished = Some(*outcome),
            Record::Resumed => {
                finished = None;
                last_command.clear();
            }
            Record::LoginRefused { bmc, password, .. } => {
                *failed.entry(bmc.clone()).or_default() += 1;
                *last_command.entry(bmc.clone()).or_default() += 1;
                refused.insert(bmc.clone(), *password);
            }
            Record::RunStarted { .. } | Record::PreflightPassed => {}
        }
        if let Record::Holds { bmc, password, .. } = &line.record {
            pending.remove(bmc);
            if *password != Which::Unknown {
                refused.remove(bmc);
            }
        }
        if !matches!(line.record, Record::Finished { .. } | Record::Resumed) && finished.is_some() {
            finished = None;
        }
    }
    let ledger = bmcs
        .iter()
        .map(|b| {
            let last = last_command.get(b).copied().unwrap_or(0);
            LedgerRow {
                bmc: b.clone(),
                failed_logins: failed.get(b).copied().unwrap_or(0),
                last_command: last,
                budget_left: BUDGET.saturating_sub(last),
            }
        })
        .collect();
    // With one failed login per BMC per command, the first password tried should be the right
    // one. A password the BMC refused since it was last known is wrong; a change whose answer was
    // lost was most likely applied if the run went on after sending it (another BMC's answer was
    // journalled since), and most likely never sent if only `changing` records follow it (the
    // run died as it was starting those changes: each is journalled before it is sent).
    let tail = lines.iter().rposition(|l| !matches!(l.record, Record::Changing { .. })).map_or(0, |at| at + 1);
    let unsent: Vec<&str> = lines[tail..]
        .iter()
        .filter_map(|l| match &l.record {
            Record::Changing { bmc, .. } => Some(bmc.as_str()),
            _ => None,
        })
        .collect();
    let mut guesses = BTreeMap::new();
    for b in &bmcs {
        let guess = match (refused.get(b), pending.get(b)) {
            (Some(&Which::Old), _) => Which::New,
            (Some(&Which::New), _) => Which::Old,
            (_, Some(&(from, to))) => {
                if unsent.contains(&b.as_str()) && from != Which::Unknown {
                    from
                } else {
                    to
                }
            }
            _ => continue,
        };
        guesses.insert(b.clone(), guess);
    }
    let bmcs: Vec<(String, Which)> = bmcs.iter().map(|b| (b.clone(), holds[b])).collect();
    let inconsistent = finished.and_then(|outcome| contradiction(outcome, &bmcs, pep));
    if inconsistent.is_some() {
        finished = None;
    }
    Ok(RunState {
        run,
        stamp,
        inventory,
        bmc_user,
        bmcs,
        addresses,
        bmcs_sha256,
        target,
        pep,
        finished,
        inconsistent,
        records: lines.len(),
        skipped: Vec::new(),
        damage: None,
        recovered: false,
        ledger,
        fingerprints: Some((salt, old, new)),
        guesses,
    })
}

/// Where a run stands, from a journal that may be damaged. Lost records are allowed for: a
/// damaged line after the last `finished` record means the run did not end there, and what
/// Azure Stack stores is taken as unknown (storing the target again is harmless). What each BMC
/// holds is only ever a first guess: `resume` verifies every BMC.
pub fn state_of(contents: &journal::Contents) -> Result<RunState, String> {
    let mut run = state(&contents.lines)?;
    run.skipped = contents.skipped.clone();
    run.damage = contents.damage_summary();
    if contents.damaged() {
        let last_finished = contents
            .lines
            .iter()
            .zip(&contents.line_numbers)
            .rev()
            .find(|(l, _)| matches!(l.record, Record::Finished { .. }))
            .map(|(_, n)| *n);
        if let (Some(at), Some(&damaged)) = (last_finished, contents.skipped.last())
            && damaged > at
        {
            run.finished = None;
        }
        if !run.converged() {
            run.pep = Which::Unknown;
        }
    }
    Ok(run)
}

impl RunState {
    /// A run whose journal lost its run-started record: the BMCs (from the inventory) and Azure
    /// Stack hold unknown passwords, the direction is forward.
    pub fn recovered(recovery: &Recovery, bmc_user: &str, bmcs: Vec<String>, contents: &journal::Contents) -> RunState {
        RunState {
            run: String::new(),
            stamp: recovery.stamp.clone(),
            inventory: recovery.inventory.clone(),
            bmc_user: bmc_user.to_owned(),
            bmcs: bmcs.into_iter().map(|b| (b, Which::Unknown)).collect(),
            addresses: Vec::new(),
            bmcs_sha256: None,
            target: Which::New,
            pep: Which::Unknown,
            finished: None,
            inconsistent: None,
            records: contents.lines.len(),
            skipped: contents.skipped.clone(),
            damage: contents.damage_summary(),
            recovered: true,
            ledger: Vec::new(),
            fingerprints: None,
            guesses: BTreeMap::new(),
        }
    }
}

/// Why a resume did not converge.
#[derive(Debug, thiserror::Error)]
pub enum ResumeError {
    /// The journal, the inventory or the secrets do not fit the run: nothing was done.
    #[error("{0}")]
    BadInput(String),
    /// A check before any BMC was contacted failed (the PEP refused the CloudAdmin password, or
    /// has no BMC credential cmdlet): nothing was done.
    #[error("{0}")]
    Preflight(String),
    /// The resume stopped part way (its journal could not be written): run it again.
    #[error("{0}")]
    Stopped(String),
}

/// How a resume runs.
#[derive(Clone, Debug)]
pub struct ResumeOptions {
    /// BMCs worked on at once.
    pub concurrency: usize,
    /// Set by SIGINT/SIGTERM: no BMC job or phase starts after it.
    pub cancel: Cancel,
    /// The stamp of the inventory given: checked against the run's.
    pub stamp: String,
    /// Go on when the inventory's stamp or addresses are not the run's (BMCs re-addressed), and
    /// list what changed.
    pub allow_inventory_change: bool,
    /// When the journal lost its run-started record: where the run comes from.
    pub recovery: Option<Recovery>,
    /// Failed logins per BMC in this command (at most one each).
    pub ledger: Ledger,
}

impl ResumeOptions {
    /// A resume of the run of `stamp` with `concurrency`, nothing else asked.
    pub fn new(stamp: &str, concurrency: usize) -> ResumeOptions {
        ResumeOptions {
            concurrency,
            cancel: Cancel::new(),
            stamp: stamp.to_owned(),
            allow_inventory_change: false,
            recovery: None,
            ledger: Ledger::new(),
        }
    }
}

/// Converges the run recorded in `path`; with `options.recovery`, also a journal that lost its
/// run-started record (see [`RunState::recovered`]).
pub async fn resume<C: PepClient>(
    path: &Path,
    members: Vec<Member>,
    old: Arc<SecretString>,
    new: Arc<SecretString>,
    pep_step: Option<PepStep<C>>,
    observer: Arc<dyn Observer>,
    options: &ResumeOptions,
) -> Result<RunReport, ResumeError> {
    let started = Instant::now();
    let (journal, contents) = Journal::append(path).map_err(ResumeError::BadInput)?;
    let run = match (state_of(&contents), &options.recovery) {
        (Ok(run), _) => run,
        (Err(_), Some(recovery)) => {
            let user = members.first().map(|m| m.target.account.clone()).unwrap_or_default();
            RunState::recovered(recovery, &user, members.iter().map(|m| m.entry.name.clone()).collect(), &contents)
        }
        (Err(e), None) => return Err(ResumeError::BadInput(format!("{}: {e}", path.display()))),
    };
    run.check_secrets(&old, &new).map_err(ResumeError::BadInput)?;
    let names: Vec<&str> = members.iter().map(|m| m.entry.name.as_str()).collect();
    let recorded: Vec<&str> = run.bmcs.iter().map(|(b, _)| b.as_str()).collect();
    if names != recorded {
        return Err(ResumeError::BadInput(format!(
            "the inventory's BMCs ({}) are not the run's ({}): resume with the inventory the run used ({})",
            names.join(", "),
            recorded.join(", "),
            run.inventory.display()
        )));
    }
    if let Some(member) = members.iter().find(|m| m.target.account != run.bmc_user) {
        return Err(ResumeError::BadInput(format!(
            "the inventory rotates the BMC account `{}`, the run rotated `{}`",
            member.target.account, run.bmc_user
        )));
    }
    let mut notes = Vec::new();
    let changes = run.inventory_changes(&options.stamp, &members);
    if !changes.is_empty() {
        if !options.allow_inventory_change {
            return Err(ResumeError::BadInput(format!(
                "the inventory is not the one this run used: {}; nothing was changed. Resume with the run's \
                 inventory ({}), or give --allow-inventory-change if these are the same BMCs at new addresses",
                changes.join("; "),
                run.inventory.display()
            )));
        }
        notes.push(format!("the inventory changed since the run (--allow-inventory-change): {}", changes.join("; ")));
    }
    if run.converged() {
        notes.push(format!("the run already ended `{}`: nothing to do", run.finished.map_or("", RunOutcome::as_str)));
        let reports = members
            .iter()
            .zip(&run.bmcs)
            .map(|(m, (_, holds))| Slot::believed(m, *holds, BmcResult::Unchanged).report(m))
            .collect();
        let outcome = run.finished.expect("converged");
        return Ok(report(&run, started, reports, outcome, notes, None, None));
    }
    // The privileged endpoint first, as `rotate` does: a wrong CloudAdmin password or a stamp
    // without the cmdlet is found before any BMC is contacted, not after the BMCs converged.
    if let Some(step) = &pep_step {
        observer.phase(Phase::Pep, 1);
        let check = PepRequest { action: PepAction::Check { bmc_user: Some(run.bmc_user.clone()) }, close: None };
        match pep::run(&step.client, &step.target, &check, &observer.pep_progress()).await {
            Ok(report) => {
                observer.advanced("PEP", true, &report.call);
                notes.push(format!("the PEP answers on {} and will run {}", report.endpoint, report.call));
            }
            Err(e) => {
                observer.advanced("PEP", false, &e.to_string());
                return Err(ResumeError::Preflight(format!("privileged endpoint: {e}; nothing was changed")));
            }
        }
    }
    let fleet = Fleet {
        members: Arc::new(members),
        old,
        new,
        concurrency: options.concurrency,
        cancel: options.cancel.clone(),
        ledger: options.ledger.clone(),
    };
    converge(journal, run, fleet, pep_step, observer, notes, started).await.map_err(ResumeError::Stopped)
}

/// The BMCs of a resume and what it works with.
struct Fleet {
    members: Arc<Vec<Member>>,
    old: Arc<SecretString>,
    new: Arc<SecretString>,
    concurrency: usize,
    cancel: Cancel,
    ledger: Ledger,
}

impl Fleet {
    fn secret(&self, which: Which) -> Arc<SecretString> {
        if which == Which::New { self.new.clone() } else { self.old.clone() }
    }
}

/// One BMC during a resume.
#[derive(Clone, Debug)]
struct Slot {
    holds: Which,
    /// How what it holds is known.
    note: String,
    /// Whether its policy lets it return to the old password.
    safe: bool,
    family: String,
    firmware: String,
    result: BmcResult,
    error: Option<String>,
    /// Time spent on this BMC alone.
    spent: Duration,
}

/// Whether a policy lets a BMC go back to the password it held before.
fn reversible(policy: &PasswordPolicy) -> bool {
    policy.reuse_cycle == 0 && policy.min_change_interval_hours == 0
}

impl Slot {
    /// Before it is contacted: what the journal believes, and whether it can go back as far as
    /// its plugin's and profile's policy say (the live policy replaces this once probed).
    fn believed(member: &Member, holds: Which, result: BmcResult) -> Slot {
        Slot {
            holds,
            note: String::new(),
            safe: reversible(&member.profile.apply(member.plugin.info.policy.clone())),
            family: String::new(),
            firmware: String::new(),
            result,
            error: None,
            spent: Duration::ZERO,
        }
    }

    fn report(&self, member: &Member) -> BmcReport {
        BmcReport {
            name: member.entry.name.clone(),
            address: member.entry.endpoint.to_string(),
            vendor: member.plugin.info.vendor.clone(),
            family: self.family.clone(),
            firmware: self.firmware.clone(),
            holds: self.holds,
            result: self.result,
            duration: self.spent,
            error: self.error.clone(),
            rollback_safe: self.safe,
        }
    }
}

type Slots = Arc<Vec<Mutex<Slot>>>;

fn report(
    run: &RunState,
    started: Instant,
    bmcs: Vec<BmcReport>,
    outcome: RunOutcome,
    notes: Vec<String>,
    pep: Option<crate::pep::PepReport>,
    pep_error: Option<String>,
) -> RunReport {
    RunReport {
        stamp: run.stamp.clone(),
        outcome,
        bmcs,
        pep,
        pep_error,
        policy: None,
        notes,
        elapsed: started.elapsed(),
    }
}

/// Finds which password a BMC holds: `probe` (which logs in, and reads the family, firmware and
/// live policy) with the journal's guess first, then with the other password — each once.
async fn identify(
    member: &Member,
    (fleet_old, fleet_new): (Arc<SecretString>, Arc<SecretString>),
    first: Which,
    slot: &Mutex<Slot>,
    (ledger, journal): (&Ledger, &SharedJournal),
) {
    let started = Instant::now();
    let other = if first == Which::New { Which::Old } else { Which::New };
    let secret = |w: Which| if w == Which::New { fleet_new.clone() } else { fleet_old.clone() };
    let mut failures = Vec::new();
    let mut found = None;
    for which in [first, other] {
        let password = secret(which);
        let call = async { member.plugin.probe(context(member, &password, None), &member.target).await.result };
        match login(&member.entry.name, which, ledger, Some(journal), call).await {
            Login::Done(probe) => {
                found = Some((which, probe));
                break;
            }
            Login::Failed(e) => failures.push(format!("{} password: {e}", name(which))),
            Login::NotTried => failures.push(format!("{} password: {}", name(which), super::ledger::spent_note())),
        }
    }
    let mut slot = slot.lock().expect("slot");
    slot.spent += started.elapsed();
    match found {
        Some((which, probe)) => {
            slot.holds = which;
            slot.note = format!("verified the {} password", name(which));
            slot.safe = reversible(&member.profile.apply(probe.policy));
            slot.family = probe.family;
            slot.firmware = probe.firmware;
            slot.result = BmcResult::Unchanged;
        }
        None => {
            slot.holds = Which::Unknown;
            slot.note = format!("neither password could be verified ({})", failures.join("; "));
            slot.result =
                if ledger.allows(&member.entry.name) { BmcResult::Unknown } else { BmcResult::NeedsAttention };
            slot.error = Some(slot.note.clone());
        }
    }
}

async fn converge<C: PepClient>(
    journal: Journal,
    run: RunState,
    fleet: Fleet,
    pep_step: Option<PepStep<C>>,
    observer: Arc<dyn Observer>,
    mut notes: Vec<String>,
    started: Instant,
) -> Result<RunReport, String> {
    let members = fleet.members.clone();
    let count = members.len();
    let slots: Slots = Arc::new(
        members
            .iter()
            .zip(&run.bmcs)
            .map(|(m, (_, believed))| Mutex::new(Slot::believed(m, *believed, BmcResult::Unchanged)))
            .collect(),
    );
    let reports = |slots: &Slots| -> Vec<BmcReport> {
        members.iter().zip(slots.iter()).map(|(m, s)| s.lock().expect("slot").report(m)).collect()
    };
    if let Some(damage) = &run.damage {
        notes.push(format!("the journal was damaged ({damage}): every BMC is verified before anything changes"));
    }
    if let Some(why) = &run.inconsistent {
        notes.push(format!("{why}: every BMC is verified"));
    }
    let journal = SharedJournal::new(journal);
    if run.recovered {
        // Make the journal whole again, so a later `status` or `resume` reads this run.
        let salt = journal::new_salt()?;
        let addresses: Vec<String> =
            members.iter().map(|m| super::inventory::canonical_address(&m.entry.endpoint)).collect();
        notes.push("the journal had no run-started record: resuming from the inventory and what each BMC holds".into());
        journal.write(Record::RunStarted {
            run: salt[..12].to_owned(),
            stamp: run.stamp.clone(),
            inventory: run.inventory.clone(),
            bmc_user: run.bmc_user.clone(),
            bmcs: run.bmcs.iter().map(|(b, _)| b.clone()).collect(),
            old: journal::fingerprint(&salt, "old", fleet.old.expose_secret()),
            new: journal::fingerprint(&salt, "new", fleet.new.expose_secret()),
            salt,
            rollback_on_pep_failure: true,
            recovered: true,
            bmcs_sha256: Some(super::lock::address_digest(addresses.clone())),
            addresses,
        })?;
    }
    journal.write(Record::Resumed)?;

    // What each BMC really holds (the journal's belief first, each password once) and whether
    // its live policy lets it go back to the old password.
    observer.phase(Phase::Preflight, count);
    // Without fingerprints the secrets were not checked: one BMC that takes neither means they
    // are probably wrong, so after the first BMC no other is tried with them.
    let gave_up = Arc::new(AtomicBool::new(false));
    let verify = |i: usize| {
        let (members, slots, journal, observer, gave_up) =
            (members.clone(), slots.clone(), journal.clone(), observer.clone(), gave_up.clone());
        let (old, new, recovered) = (fleet.old.clone(), fleet.new.clone(), run.recovered);
        let believed = run.bmcs[i].1;
        let first = match run.guesses.get(&run.bmcs[i].0) {
            Some(&guess) => guess,
            None if believed == Which::Unknown => run.target,
            None => believed,
        };
        let ledger = fleet.ledger.clone();
        async move {
            let member = &members[i];
            if gave_up.load(Ordering::SeqCst) {
                let mut slot = slots[i].lock().expect("slot");
                (slot.holds, slot.result) = (Which::Unknown, BmcResult::Unknown);
                slot.error = Some("not verified: an earlier BMC took neither password".into());
                return Ok(());
            }
            identify(member, (old, new), first, &slots[i], (&ledger, &journal)).await;
            let (holds, note) = {
                let slot = slots[i].lock().expect("slot");
                (slot.holds, slot.note.clone())
            };
            if recovered && holds == Which::Unknown {
                gave_up.store(true, Ordering::SeqCst);
            }
            journal.write(Record::Holds { bmc: member.entry.name.clone(), password: holds, note: note.clone() })?;
            observer.advanced(&member.entry.name, holds != Which::Unknown, &note);
            Ok(())
        }
    };
    let all: Vec<usize> = (0..count).collect();
    let (head, rest) = all.split_at(usize::from(run.recovered && count > 0));
    let mut not_started = each(head, 1, &fleet.cancel, &verify).await?;
    not_started.extend(each(rest, fleet.concurrency, &fleet.cancel, &verify).await?);
    for &i in &not_started {
        let mut slot = slots[i].lock().expect("slot");
        (slot.holds, slot.result) = (Which::Unknown, BmcResult::NotStarted);
    }
    if fleet.cancel.is_cancelled() {
        notes.push("interrupted while verifying the BMCs: nothing was changed".into());
        journal.write(Record::Finished { outcome: RunOutcome::Interrupted })?;
        return Ok(report(&run, started, reports(&slots), RunOutcome::Interrupted, notes, None, None));
    }
    let holds = |i: usize| slots[i].lock().expect("slot").holds;
    if run.recovered && (0..count).any(|i| holds(i) == Which::Unknown) {
        notes.push(
            "without a run-started record nothing changes until every BMC takes the old or the new password: check \
             the secrets and the BMCs, then run resume again"
                .into(),
        );
        journal.write(Record::Finished { outcome: RunOutcome::NeedsResume })?;
        return Ok(report(&run, started, reports(&slots), RunOutcome::NeedsResume, notes, None, None));
    }
    // As in a run: BMCs that cannot go back change last, and only if every other one made it.
    let safe = |i: usize| slots[i].lock().expect("slot").safe;
    let (first_batch, last_batch): (Vec<usize>, Vec<usize>) = (0..count).partition(|&i| safe(i));
    let mut target = run.target;
    let mut flipped = false;
    loop {
        observer.phase(if target == Which::New { Phase::Change } else { Phase::Rollback }, count);
        let refused_back = Arc::new(AtomicBool::new(false));
        let refused_forward: Arc<Mutex<Vec<String>>> = Arc::default();
        for (k, batch) in [&first_batch, &last_batch].into_iter().enumerate() {
            let todo: Vec<usize> =
                batch.iter().copied().filter(|&i| holds(i) != target && holds(i) != Which::Unknown).collect();
            // The BMCs that cannot go back move only once every other one holds the new password:
            // one that refused it, or whose state this command could not learn, keeps them back.
            let blocked = k == 1 && target == Which::New && first_batch.iter().any(|&i| holds(i) != Which::New);
            if blocked || fleet.cancel.is_cancelled() {
                for &i in &todo {
                    slots[i].lock().expect("slot").result = BmcResult::NotStarted;
                }
                continue;
            }
            let job = |i: usize| {
                let (members, slots, journal, observer) =
                    (members.clone(), slots.clone(), journal.clone(), observer.clone());
                let (refused_back, refused_forward) = (refused_back.clone(), refused_forward.clone());
                let ledger = fleet.ledger.clone();
                let from = holds(i);
                let (from_secret, to_secret) = (fleet.secret(from), fleet.secret(target));
                async move {
                    let began = Instant::now();
                    let member = &members[i];
                    let Changed { holds: now, error, refused } =
                        change_one(member, (&from_secret, from), (&to_secret, target), &journal, &ledger).await?;
                    observer.advanced(&member.entry.name, now == target, error.as_deref().unwrap_or(""));
                    if target == Which::Old && now == Which::New && refused == Some(ErrorKind::PolicyRejected) {
                        refused_back.store(true, Ordering::SeqCst);
                    }
                    // A BMC that refused the new password, not one this command may no longer log in to.
                    if target == Which::New && now == Which::Old && ledger.allows(&member.entry.name) {
                        refused_forward.lock().expect("refused").push(member.entry.name.clone());
                    }
                    let mut slot = slots[i].lock().expect("slot");
                    slot.spent += began.elapsed();
                    slot.holds = now;
                    slot.result = if now == target { BmcResult::Converged } else { Changed::missed(member, &ledger) };
                    slot.error = error;
                    Ok(())
                }
            };
            for i in each(&todo, fleet.concurrency, &fleet.cancel, job).await? {
                slots[i].lock().expect("slot").result = BmcResult::NotStarted;
            }
        }
        if fleet.cancel.is_cancelled() {
            break;
        }
        let refused_forward = std::mem::take(&mut *refused_forward.lock().expect("refused"));
        let stuck_forward = (0..count).any(|i| !safe(i) && holds(i) == Which::New);
        if refused_back.load(Ordering::SeqCst) && !flipped {
            let reason = "a BMC refused the old password (reuse cycle): completing the rotation instead".to_owned();
            notes.push(reason.clone());
            journal.write(Record::RollingForward { reason })?;
            (target, flipped) = (Which::New, true);
            continue;
        }
        if !refused_forward.is_empty() && !flipped && !stuck_forward {
            // As the run itself would have: a BMC that refuses the new password sends the fleet back.
            let reason =
                format!("{} refused the new password: returning every BMC to the old one", refused_forward.join(", "));
            notes.push(reason.clone());
            journal.write(Record::RollingBack { reason })?;
            (target, flipped) = (Which::Old, true);
            continue;
        }
        break;
    }
    let reports_now = reports(&slots);
    if fleet.cancel.is_cancelled() {
        let changed = reports_now.iter().filter(|r| r.result == BmcResult::Converged).count();
        notes.push(format!("interrupted: {changed} BMC(s) changed by this resume; nothing else was started"));
        journal.write(Record::Finished { outcome: RunOutcome::Interrupted })?;
        return Ok(report(&run, started, reports_now, RunOutcome::Interrupted, notes, None, None));
    }
    let stuck: Vec<String> = reports_now
        .iter()
        .filter(|r| r.holds != target)
        .map(|r| format!("{} holds the {} password ({})", r.name, name(r.holds), r.error.clone().unwrap_or_default()))
        .collect();
    if !stuck.is_empty() {
        notes.push(format!("not converged: {}; fix these BMCs and run resume again", stuck.join("; ")));
        journal.write(Record::Finished { outcome: RunOutcome::NeedsResume })?;
        return Ok(report(&run, started, reports_now, RunOutcome::NeedsResume, notes, None, None));
    }
    notes.push(format!("every BMC holds the {} password", name(target)));

    // Azure Stack must store the same password.
    let pep_needed = run.pep != target;
    let done = if target == Which::New { RunOutcome::Rotated } else { RunOutcome::RolledBack };
    if !pep_needed {
        journal.write(Record::Finished { outcome: done })?;
        return Ok(report(&run, started, reports_now, done, notes, None, None));
    }
    let Some(step) = pep_step else {
        notes.push("the inventory has no [pep] table: Azure Stack cannot be told".into());
        journal.write(Record::Finished { outcome: RunOutcome::NeedsResume })?;
        return Ok(report(&run, started, reports_now, RunOutcome::NeedsResume, notes, None, None));
    };
    observer.phase(Phase::Pep, 1);
    let request = PepRequest {
        action: PepAction::SetCredential(BmcCredential {
            user: Some(run.bmc_user.clone()),
            password: SecretString::from(fleet.secret(target).expose_secret().to_owned()),
            bypass_bmc_update: true,
        }),
        close: step.close,
    };
    journal.write(Record::PepStarted { password: target })?;
    let result = pep::run(&step.client, &step.target, &request, &observer.pep_progress()).await;
    observer.advanced("PEP", result.is_ok(), "");
    match result {
        Ok(pep_report) => {
            journal.write(Record::PepEnded { password: target, stored: Some(target), error: None })?;
            journal.write(Record::Finished { outcome: done })?;
            notes.push(format!("Azure Stack Hub stores the {} credential", name(target)));
            Ok(report(&run, started, reports_now, done, notes, Some(pep_report), None))
        }
        Err(error) => {
            let stored = error.outcome_unknown().then_some(Which::Unknown);
            journal.write(Record::PepEnded { password: target, stored, error: Some(error.to_string()) })?;
            journal.write(Record::Finished { outcome: RunOutcome::NeedsResume })?;
            notes.push(format!("the PEP step failed: {error}; run resume again once the PEP is reachable"));
            Ok(report(&run, started, reports_now, RunOutcome::NeedsResume, notes, None, Some(error.to_string())))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fleet::journal::{Contents, parse_all};

    fn line(seq: u64, record: Record) -> Line {
        Line { seq, at_ms: 1, record }
    }

    fn started(recovered: bool) -> Record {
        Record::RunStarted {
            run: "r1".into(),
            stamp: "lab".into(),
            inventory: "inv.toml".into(),
            bmc_user: "azsbmc".into(),
            bmcs: vec!["a".into(), "b".into()],
            salt: "00".into(),
            old: "o".into(),
            new: "n".into(),
            rollback_on_pep_failure: true,
            recovered,
            addresses: vec!["10.0.0.1:443".into(), "10.0.0.2:443".into()],
            bmcs_sha256: None,
        }
    }

    /// The lines as a file, with file line `damaged` (1-based) replaced by garbage.
    fn contents(lines: &[Line], damaged: Option<usize>) -> Contents {
        let mut text = String::new();
        for (i, l) in lines.iter().enumerate() {
            if damaged == Some(i + 1) {
                text.push_str("{\"seq\":9999,\"at\n");
            }
            text.push_str(&serde_json::to_string(l).unwrap());
            text.push('\n');
        }
        if damaged == Some(lines.len() + 1) {
            text.push_str("{\"seq\":9999,\"at\n");
        }
        parse_all(text.as_bytes())
    }

    fn finished_run() -> Vec<Line> {
        vec![
            line(1, started(false)),
            line(2, Record::Changing { bmc: "a".into(), to: Which::New }),
            line(3, Record::Holds { bmc: "a".into(), password: Which::New, note: String::new() }),
            line(4, Record::Finished { outcome: RunOutcome::NeedsResume }),
        ]
    }

    /// A whole rotation of `a` and `b`, ending `rotated`.
    fn rotated_run() -> Vec<Line> {
        let holds =
            |seq, bmc: &str| line(seq, Record::Holds { bmc: bmc.into(), password: Which::New, note: String::new() });
        vec![
            line(1, started(false)),
            line(2, Record::Changing { bmc: "a".into(), to: Which::New }),
            holds(3, "a"),
            holds(4, "b"),
            line(5, Record::PepStarted { password: Which::New }),
            line(6, Record::PepEnded { password: Which::New, stored: Some(Which::New), error: None }),
            line(7, Record::Finished { outcome: RunOutcome::Rotated }),
        ]
    }

    #[test]
    fn a_finished_record_the_records_before_it_contradict_is_not_believed() {
        assert!(state_of(&contents(&rotated_run(), None)).unwrap().converged());
        // A forged `rotated` after a crash mid-change: b still holds the old password, Azure
        // Stack was never told.
        let mut forged = finished_run();
        forged[3] = line(4, Record::Finished { outcome: RunOutcome::Rotated });
        let run = state_of(&contents(&forged, None)).unwrap();
        assert!(!run.converged());
        let why = run.inconsistent.unwrap();
        assert!(why.contains("b holds the old password") && why.contains("Azure Stack stores the old"), "{why}");
        // A `rolled-back` while a BMC holds the new password.
        forged[3] = line(4, Record::Finished { outcome: RunOutcome::RolledBack });
        assert!(!state_of(&contents(&forged, None)).unwrap().converged());
        // A lost record of a BMC's change (b's `holds new`): the end is not believed, resume
        // verifies every BMC.
        let mut lines = rotated_run();
        lines.remove(3);
        assert!(!state_of(&contents(&lines, None)).unwrap().converged());
    }

    fn refused(seq: u64, bmc: &str, password: Which) -> Line {
        let failure = crate::fleet::ledger::LoginFailure::AuthFailed;
        line(seq, Record::LoginRefused { bmc: bmc.into(), password, failure })
    }

    #[test]
    fn the_ledger_counts_failed_logins_per_bmc_and_per_command() {
        let lines = vec![
            line(1, started(false)),
            line(2, Record::Changing { bmc: "a".into(), to: Which::New }),
            refused(3, "a", Which::Old),
            line(4, Record::Holds { bmc: "a".into(), password: Which::Unknown, note: String::new() }),
            line(5, Record::Resumed),
            refused(6, "a", Which::New),
        ];
        let run = state_of(&contents(&lines, None)).unwrap();
        let a = &run.ledger[0];
        assert_eq!((a.failed_logins, a.last_command, a.budget_left), (2, 1, 0));
        assert_eq!((run.ledger[1].failed_logins, run.ledger[1].budget_left), (0, 1));
        // Both passwords refused since a was last known: the guess is the other of the last.
        assert_eq!(run.guesses.get("a"), Some(&Which::Old));
        let run = state_of(&contents(&lines[..4], None)).unwrap();
        assert_eq!(run.ledger[0].last_command, 1, "rotate is a command too");
        assert_eq!(run.guesses.get("a"), Some(&Which::New), "the old password was refused: the new one first");
    }

    #[test]
    fn a_change_without_an_answer_is_guessed_by_where_the_journal_ends() {
        let mut lines = vec![line(1, started(false)), line(2, Record::Changing { bmc: "a".into(), to: Which::New })];
        // The journal ends with it: the run died before sending it.
        assert_eq!(state_of(&contents(&lines, None)).unwrap().guesses.get("a"), Some(&Which::Old));
        // Two changes started together and nothing after: neither was sent.
        lines.push(line(3, Record::Changing { bmc: "b".into(), to: Which::New }));
        let run = state_of(&contents(&lines, None)).unwrap();
        assert_eq!((run.guesses.get("a"), run.guesses.get("b")), (Some(&Which::Old), Some(&Which::Old)));
        // The run went on after a's change (b's answer came): a's was most likely applied.
        lines.push(line(4, Record::Holds { bmc: "b".into(), password: Which::New, note: String::new() }));
        let run = state_of(&contents(&lines, None)).unwrap();
        assert_eq!((run.guesses.get("a"), run.guesses.get("b")), (Some(&Which::New), None), "b's answer is known");
    }

    #[test]
    fn an_intact_journal_reads_as_before() {
        let run = state_of(&contents(&finished_run(), None)).unwrap();
        assert_eq!(run.bmcs, [("a".into(), Which::New), ("b".into(), Which::Old)]);
        assert_eq!((run.pep, run.damage.clone()), (Which::Old, None));
    }

    #[test]
    fn damage_makes_azure_stack_unknown_and_damage_after_the_end_undoes_it() {
        let lines = rotated_run();
        // Damage before the last `finished`: the run did end there.
        let run = state_of(&contents(&lines, Some(2))).unwrap();
        assert!(run.converged());
        assert_eq!(run.skipped, [2]);
        // Damage after it: something happened later (a resume), so it is not over, and what
        // Azure Stack stores is not known.
        let run = state_of(&contents(&lines, Some(8))).unwrap();
        assert!(!run.converged());
        assert_eq!(run.pep, Which::Unknown);
        assert!(run.damage.unwrap().contains("skipped 1 damaged line(s) (line 8)"));
    }

    #[test]
    fn no_start_record_is_the_one_error_and_a_recovered_start_knows_nothing() {
        let lines = finished_run();
        assert_eq!(state_of(&contents(&lines[1..], None)).unwrap_err(), NO_START);
        assert_eq!(state_of(&parse_all(b"")).unwrap_err(), NO_START);
        // A resume without the start record writes a recovered one; from there on everything
        // starts unknown and the later records count.
        let mut lines = lines[1..].to_vec();
        lines.push(line(5, started(true)));
        lines.push(line(6, Record::Holds { bmc: "b".into(), password: Which::New, note: String::new() }));
        let run = state_of(&contents(&lines, None)).unwrap();
        assert_eq!(run.bmcs, [("a".into(), Which::Unknown), ("b".into(), Which::New)]);
        assert_eq!(run.pep, Which::Unknown);
        let recovery = Recovery { stamp: "lab".into(), inventory: "inv.toml".into() };
        let blind = RunState::recovered(&recovery, "azsbmc", vec!["a".into()], &parse_all(b""));
        assert!(blind.recovered && !blind.converged());
        let same = SecretString::from("Pw-1");
        assert!(blind.check_secrets(&same, &SecretString::from("Pw-1")).is_err(), "old = new refused");
        assert!(blind.check_secrets(&same, &SecretString::from("Pw-2")).is_ok(), "nothing to check against");
    }
}

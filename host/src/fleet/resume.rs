//! `resume` and `status`: read a run's journal, check the operator's secrets against its
//! fingerprints, find out what every BMC really holds (one verification per password, never a
//! retry of a refused one), and converge to the invariant — every BMC and Azure Stack on one
//! password. The direction is the run's: forward to the new password, unless the run had
//! decided to roll back; if a BMC refuses to go back (a reuse cycle), forward it is.

use super::journal::{self, Journal, Line, Record, Which};
use super::members::Member;
use super::rotation::{
    BmcReport, Observer, PepStep, Phase, RunOutcome, RunReport, SharedJournal, change_one, context, name, resolve,
};
use crate::pep::{self, BmcCredential, PepAction, PepClient, PepRequest};
use crate::runtime::ErrorKind;
use secrecy::{ExposeSecret, SecretString};
use serde::Serialize;
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

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
    /// The password the run converges to.
    pub target: Which,
    /// What Azure Stack is known to store: `new`, `old`, or `unknown` (an attempt's outcome was lost).
    pub pep: Which,
    /// The last `finished` outcome, unless something happened after it.
    pub finished: Option<String>,
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
    /// Salt and fingerprints, to check secrets (none when `recovered`).
    #[serde(skip)]
    fingerprints: Option<(String, String, String)>,
}

impl RunState {
    /// Whether the invariant already holds and nothing is left to do.
    pub fn converged(&self) -> bool {
        matches!(self.finished.as_deref(), Some("rotated" | "rolled-back"))
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

/// Reads where a run stands, from the last run-started record on (a `resume` that found none
/// writes a new one).
pub fn state(lines: &[Line]) -> Result<RunState, String> {
    let Some(first) = lines.iter().rposition(|l| matches!(l.record, Record::RunStarted { .. })) else {
        return Err(NO_START.into());
    };
    let lines = &lines[first..];
    let Some(Record::RunStarted { run, stamp, inventory, bmc_user, bmcs, salt, old, new, recovered, .. }) =
        lines.first().map(|l| l.record.clone())
    else {
        unreachable!("found above");
    };
    let start = if recovered { Which::Unknown } else { Which::Old };
    let mut holds: BTreeMap<String, Which> = bmcs.iter().map(|b| (b.clone(), start)).collect();
    let (mut target, mut pep, mut pep_before, mut finished) = (Which::New, start, start, None);
    for line in &lines[1..] {
        match &line.record {
            Record::Changing { bmc, .. } => {
                holds.insert(bmc.clone(), Which::Unknown);
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
            Record::Finished { outcome } => finished = Some(outcome.clone()),
            Record::Resumed => finished = None,
            Record::RunStarted { .. } | Record::PreflightPassed => {}
        }
        if !matches!(line.record, Record::Finished { .. } | Record::Resumed) && finished.is_some() {
            finished = None;
        }
    }
    Ok(RunState {
        run,
        stamp,
        inventory,
        bmc_user,
        bmcs: bmcs.iter().map(|b| (b.clone(), holds[b])).collect(),
        target,
        pep,
        finished,
        records: lines.len(),
        skipped: Vec::new(),
        damage: None,
        recovered: false,
        fingerprints: Some((salt, old, new)),
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
            target: Which::New,
            pep: Which::Unknown,
            finished: None,
            records: contents.lines.len(),
            skipped: contents.skipped.clone(),
            damage: contents.damage_summary(),
            recovered: true,
            fingerprints: None,
        }
    }
}

/// Why a resume did not converge.
#[derive(Debug, thiserror::Error)]
pub enum ResumeError {
    /// The journal, the inventory or the secrets do not fit the run: nothing was done.
    #[error("{0}")]
    BadInput(String),
    /// The resume stopped part way (its journal could not be written): run it again.
    #[error("{0}")]
    Stopped(String),
}

/// Converges the run recorded in `path`.
pub async fn resume<C: PepClient>(
    path: &Path,
    members: Vec<Member>,
    old: Arc<SecretString>,
    new: Arc<SecretString>,
    pep_step: Option<PepStep<C>>,
    observer: Arc<dyn Observer>,
) -> Result<RunReport, ResumeError> {
    resume_with(path, members, old, new, pep_step, observer, None).await
}

/// Converges the run recorded in `path`; with `recovery`, also a journal that lost its
/// run-started record (see [`RunState::recovered`]).
pub async fn resume_with<C: PepClient>(
    path: &Path,
    members: Vec<Member>,
    old: Arc<SecretString>,
    new: Arc<SecretString>,
    pep_step: Option<PepStep<C>>,
    observer: Arc<dyn Observer>,
    recovery: Option<Recovery>,
) -> Result<RunReport, ResumeError> {
    let (journal, contents) = Journal::append(path).map_err(ResumeError::BadInput)?;
    let run = match (state_of(&contents), recovery) {
        (Ok(run), _) => run,
        (Err(_), Some(recovery)) => {
            let user = members.first().map(|m| m.target.account.clone()).unwrap_or_default();
            RunState::recovered(&recovery, &user, members.iter().map(|m| m.entry.name.clone()).collect(), &contents)
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
    converge(journal, run, members, old, new, pep_step, observer).await.map_err(ResumeError::Stopped)
}

async fn converge<C: PepClient>(
    journal: Journal,
    run: RunState,
    members: Vec<Member>,
    old: Arc<SecretString>,
    new: Arc<SecretString>,
    pep_step: Option<PepStep<C>>,
    observer: Arc<dyn Observer>,
) -> Result<RunReport, String> {
    let started = Instant::now();
    let mut notes = Vec::new();
    let report = |reports: Vec<BmcReport>, outcome, notes, pep, pep_error| RunReport {
        stamp: run.stamp.clone(),
        outcome,
        bmcs: reports,
        pep,
        pep_error,
        policy: None,
        notes,
        elapsed: started.elapsed(),
    };
    if run.converged() {
        notes.push(format!("the run already ended `{}`: nothing to do", run.finished.clone().unwrap_or_default()));
        let reports = members
            .iter()
            .zip(&run.bmcs)
            .map(|(m, (_, holds))| bmc_report(m, *holds, "unchanged", None, started))
            .collect();
        let outcome =
            if run.finished.as_deref() == Some("rotated") { RunOutcome::Rotated } else { RunOutcome::RolledBack };
        return Ok(report(reports, outcome, notes, None, None));
    }
    if let Some(damage) = &run.damage {
        notes.push(format!("the journal was damaged ({damage}): every BMC is verified before anything changes"));
    }
    let journal = SharedJournal::new(journal);
    if run.recovered {
        // Make the journal whole again, so a later `status` or `resume` reads this run.
        let salt = journal::new_salt()?;
        notes.push("the journal had no run-started record: resuming from the inventory and what each BMC holds".into());
        journal.write(Record::RunStarted {
            run: salt[..12].to_owned(),
            stamp: run.stamp.clone(),
            inventory: run.inventory.clone(),
            bmc_user: run.bmc_user.clone(),
            bmcs: run.bmcs.iter().map(|(b, _)| b.clone()).collect(),
            old: journal::fingerprint(&salt, "old", old.expose_secret()),
            new: journal::fingerprint(&salt, "new", new.expose_secret()),
            salt,
            rollback_on_pep_failure: true,
            recovered: true,
        })?;
    }
    journal.write(Record::Resumed)?;
    let secret = |w: Which| if w == Which::New { new.clone() } else { old.clone() };
    let other = |w: Which| if w == Which::New { Which::Old } else { Which::New };

    // What each BMC really holds (the journal's belief, verified once) and whether its live
    // policy lets it go back to the old password.
    observer.phase(Phase::Preflight, members.len());
    let mut holds = Vec::new();
    let mut safe = Vec::new();
    let mut unverified = false;
    for (member, (_, believed)) in members.iter().zip(&run.bmcs) {
        if unverified {
            // Without fingerprints the secrets were not checked: one BMC that takes neither
            // means they are probably wrong, and no other BMC is tried with them.
            holds.push((Which::Unknown, "not verified: an earlier BMC took neither password".to_owned()));
            safe.push(false);
            continue;
        }
        let first = if *believed == Which::Unknown { run.target } else { *believed };
        let (actual, note) =
            resolve(member, [(&secret(first), first), (&secret(other(first)), other(first))], None).await;
        unverified = run.recovered && actual == Which::Unknown;
        journal.write(Record::Holds { bmc: member.entry.name.clone(), password: actual, note: note.clone() })?;
        observer.advanced(&member.entry.name, actual != Which::Unknown, &note);
        let rollback_safe = match actual {
            Which::Unknown => false,
            known => match member.plugin.probe(context(member, &secret(known), None), &member.target).await.result {
                Ok(probe) => {
                    let policy = member.profile.apply(probe.policy);
                    policy.reuse_cycle == 0 && policy.min_change_interval_hours == 0
                }
                Err(_) => false,
            },
        };
        holds.push((actual, note));
        safe.push(rollback_safe);
    }
    if run.recovered && holds.iter().any(|(h, _)| *h == Which::Unknown) {
        notes.push(
            "without a run-started record nothing changes until every BMC takes the old or the new password: check \
             the secrets and the BMCs, then run resume again"
                .into(),
        );
        journal.write(Record::Finished { outcome: RunOutcome::NeedsResume.as_str().into() })?;
        let reports = members
            .iter()
            .zip(&holds)
            .map(|(m, (h, note))| {
                let error = (*h == Which::Unknown).then(|| note.clone());
                bmc_report(m, *h, if error.is_some() { "unknown" } else { "unchanged" }, error, started)
            })
            .collect();
        return Ok(report(reports, RunOutcome::NeedsResume, notes, None, None));
    }
    // As in a run: BMCs that cannot go back change last, and only if every other one made it.
    let order: Vec<usize> =
        (0..members.len()).filter(|&i| safe[i]).chain((0..members.len()).filter(|&i| !safe[i])).collect();
    let mut target = run.target;
    let mut flipped = false;
    let mut reports: Vec<Option<BmcReport>> = vec![None; members.len()];
    loop {
        observer.phase(if target == Which::New { Phase::Change } else { Phase::Rollback }, members.len());
        let (mut refused_back, mut refused_forward) = (false, Vec::new());
        for &i in &order {
            let member = &members[i];
            let (actual, _) = holds[i].clone();
            if target == Which::New && !safe[i] && !refused_forward.is_empty() && actual != target {
                reports[i] = Some(bmc_report(member, actual, "not started", None, started));
                continue;
            }
            if actual == target || actual == Which::Unknown {
                let error = (actual == Which::Unknown).then(|| holds[i].1.clone());
                let result = if error.is_some() { "unknown" } else { "unchanged" };
                reports[i] = Some(bmc_report(member, actual, result, error, started));
                continue;
            }
            let (now, error) =
                change_one(member, (&secret(actual), actual), (&secret(target), target), &journal).await?;
            observer.advanced(&member.entry.name, now == target, error.as_deref().unwrap_or(""));
            if target == Which::Old
                && now == Which::New
                && error.as_deref().is_some_and(|e| e.contains(ErrorKind::PolicyRejected.as_str()))
            {
                refused_back = true;
            }
            if target == Which::New && now == Which::Old {
                refused_forward.push(member.entry.name.clone());
            }
            holds[i].0 = now;
            let result = if now == target { "converged" } else { "failed" };
            reports[i] = Some(bmc_report(member, now, result, error, started));
        }
        let stuck_forward = (0..members.len()).any(|i| !safe[i] && holds[i].0 == Which::New);
        if refused_back && !flipped {
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
    let reports: Vec<BmcReport> = reports.into_iter().map(|r| r.expect("every BMC reported")).collect();
    let stuck: Vec<String> = reports
        .iter()
        .filter(|r| r.holds != target)
        .map(|r| format!("{} holds the {} password ({})", r.name, name(r.holds), r.error.clone().unwrap_or_default()))
        .collect();
    if !stuck.is_empty() {
        notes.push(format!("not converged: {}; fix these BMCs and run resume again", stuck.join("; ")));
        journal.write(Record::Finished { outcome: RunOutcome::NeedsResume.as_str().into() })?;
        return Ok(report(reports, RunOutcome::NeedsResume, notes, None, None));
    }
    notes.push(format!("every BMC holds the {} password", name(target)));

    // Azure Stack must store the same password.
    let pep_needed = run.pep != target;
    let done = if target == Which::New { RunOutcome::Rotated } else { RunOutcome::RolledBack };
    if !pep_needed {
        journal.write(Record::Finished { outcome: done.as_str().into() })?;
        return Ok(report(reports, done, notes, None, None));
    }
    let Some(step) = pep_step else {
        notes.push("the inventory has no [pep] table: Azure Stack cannot be told".into());
        journal.write(Record::Finished { outcome: RunOutcome::NeedsResume.as_str().into() })?;
        return Ok(report(reports, RunOutcome::NeedsResume, notes, None, None));
    };
    observer.phase(Phase::Pep, 1);
    let request = PepRequest {
        action: PepAction::SetCredential(BmcCredential {
            user: Some(run.bmc_user.clone()),
            password: SecretString::from(secret(target).expose_secret().to_owned()),
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
            journal.write(Record::Finished { outcome: done.as_str().into() })?;
            notes.push(format!("Azure Stack Hub stores the {} credential", name(target)));
            Ok(report(reports, done, notes, Some(pep_report), None))
        }
        Err(error) => {
            let stored = error.outcome_unknown().then_some(Which::Unknown);
            journal.write(Record::PepEnded { password: target, stored, error: Some(error.to_string()) })?;
            journal.write(Record::Finished { outcome: RunOutcome::NeedsResume.as_str().into() })?;
            notes.push(format!("the PEP step failed: {error}; run resume again once the PEP is reachable"));
            Ok(report(reports, RunOutcome::NeedsResume, notes, None, Some(error.to_string())))
        }
    }
}

fn bmc_report(member: &Member, holds: Which, result: &str, error: Option<String>, started: Instant) -> BmcReport {
    BmcReport {
        name: member.entry.name.clone(),
        address: member.entry.endpoint.to_string(),
        vendor: member.plugin.info.vendor.clone(),
        family: String::new(),
        firmware: String::new(),
        holds,
        result: result.into(),
        duration: started.elapsed(),
        error,
        rollback_safe: true,
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
            line(4, Record::Finished { outcome: "needs-resume".into() }),
        ]
    }

    #[test]
    fn an_intact_journal_reads_as_before() {
        let run = state_of(&contents(&finished_run(), None)).unwrap();
        assert_eq!(run.bmcs, [("a".into(), Which::New), ("b".into(), Which::Old)]);
        assert_eq!((run.pep, run.damage.clone()), (Which::Old, None));
    }

    #[test]
    fn damage_makes_azure_stack_unknown_and_damage_after_the_end_undoes_it() {
        let mut lines = finished_run();
        lines[3] = line(4, Record::Finished { outcome: "rotated".into() });
        // Damage before the last `finished`: the run did end there.
        let run = state_of(&contents(&lines, Some(2))).unwrap();
        assert!(run.converged());
        assert_eq!(run.skipped, [2]);
        // Damage after it: something happened later (a resume), so it is not over, and what
        // Azure Stack stores is not known.
        let run = state_of(&contents(&lines, Some(5))).unwrap();
        assert!(!run.converged());
        assert_eq!(run.pep, Which::Unknown);
        assert!(run.damage.unwrap().contains("skipped 1 damaged line(s) (line 5)"));
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

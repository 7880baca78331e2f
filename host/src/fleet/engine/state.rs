//! Where a run stands, from its journal alone: what each BMC and Azure Stack are believed to
//! hold, the direction, the lockout ledger, and the first password to try on each BMC. A damaged
//! journal still reads: what it lost makes the state less certain, never wrong, since `resume`
//! verifies every BMC before it changes one. `status` prints this; `resume` starts from it.

use super::report::RunOutcome;
use super::steps::name;
use crate::fleet::journal::{self, Line, Record, Which};
use crate::fleet::ledger::BUDGET;
use crate::fleet::members::Member;
use secrecy::{ExposeSecret, SecretString};
use serde::Serialize;
use std::collections::BTreeMap;

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
    /// What each BMC is known to hold, in inventory order (JSON: objects `{"bmc", "holds"}`).
    #[serde(serialize_with = "bmc_objects")]
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
    /// The escrow command stored the new password before the first change.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub escrowed: bool,
    /// Salt and fingerprints, to check secrets (none when `recovered`).
    #[serde(skip)]
    fingerprints: Option<(String, String, String)>,
    /// The password `resume` tries first on each BMC, where the journal has a better guess than
    /// what the BMC is believed to hold (see [`state`]).
    #[serde(skip)]
    pub(crate) guesses: BTreeMap<String, Which>,
}

/// `(name, holds)` pairs as objects, which a script reads by name rather than by position.
fn bmc_objects<S: serde::Serializer>(bmcs: &[(String, Which)], serializer: S) -> Result<S::Ok, S::Error> {
    #[derive(Serialize)]
    struct Bmc<'a> {
        bmc: &'a str,
        holds: Which,
    }
    serializer.collect_seq(bmcs.iter().map(|(bmc, holds)| Bmc { bmc, holds: *holds }))
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

    /// Whether `secret` is the run's old (`Which::Old`) or new password; `None` when the journal
    /// has no fingerprints to tell.
    pub fn is(&self, which: Which, secret: &SecretString) -> Option<bool> {
        let (salt, old, new) = self.fingerprints.as_ref()?;
        let (label, fingerprint) = if which == Which::New { ("new", new) } else { ("old", old) };
        Some(&journal::fingerprint(salt, label, secret.expose_secret()) == fingerprint)
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
            members.iter().map(|m| crate::fleet::inventory::canonical_address(&m.entry.endpoint)).collect();
        for ((bmc, _), (then, now)) in self.bmcs.iter().zip(self.addresses.iter().zip(&given)) {
            if then != now {
                changes.push(format!("{bmc}: {then} then, {now} now"));
            }
        }
        if let Some(digest) = &self.bmcs_sha256
            && *digest != crate::fleet::lock::address_digest(given)
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
    let mut escrowed = false;
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
            Record::LoginRefused { bmc, password, failure } => {
                *failed.entry(bmc.clone()).or_default() += 1;
                *last_command.entry(bmc.clone()).or_default() += 1;
                if failure.refused() {
                    refused.insert(bmc.clone(), *password);
                }
            }
            Record::RunStarted { .. } | Record::PreflightPassed => {}
            Record::Escrowed => escrowed = true,
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
        escrowed,
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
            escrowed: false,
            fingerprints: None,
            guesses: BTreeMap::new(),
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
        // A login whose answer was never read counts against the budget, but says nothing of
        // which password the BMC holds.
        let mut unanswered = lines[..4].to_vec();
        let failure = crate::fleet::ledger::LoginFailure::Unanswered;
        unanswered[2] = line(3, Record::LoginRefused { bmc: "a".into(), password: Which::Old, failure });
        let run = state_of(&contents(&unanswered, None)).unwrap();
        assert_eq!((run.ledger[0].failed_logins, run.ledger[0].budget_left), (1, 0));
        assert_eq!(run.guesses.get("a"), None, "no refusal: the journal's belief stands");
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

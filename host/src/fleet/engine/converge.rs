//! Converging, the part `rotate` and `resume` share: move every BMC to the target password —
//! those that can go back first, those that cannot only once every other one made it — then
//! store that password in Azure Stack, turning back to the old password at most once when the
//! command's rules say so. `rotate` enters with every BMC verified on the old password,
//! `resume` with what it verified each BMC holds; the loop is the same.

use super::bmcs::{Bmc, Shared, lock};
use super::report::{BmcResult, Observer, Phase, RunOutcome};
use super::steps::{Changed, SharedJournal, change_one, each, name};
use crate::fleet::cancel::Cancel;
use crate::fleet::journal::{Record, Which};
use crate::fleet::ledger::Ledger;
use crate::pep::{
    self, BmcCredential, PepAction, PepClient, PepError, PepReport, PepRequest, PepTarget, TranscriptShare,
};
use crate::runtime::ErrorKind;
use secrecy::{ExposeSecret, SecretString};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

/// How the PEP step is run.
pub struct PepStep<C: PepClient> {
    /// The client.
    pub client: C,
    /// Where and as whom.
    pub target: PepTarget,
    /// Transcript hand-off, if wanted.
    pub close: Option<TranscriptShare>,
    /// Preflight also runs the PEP's secret-rotation readiness check; a failure stops the run.
    pub readiness: bool,
}

/// Which command converges: it decides the words of the report, and when to turn back.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Command {
    /// A run's first attempt: any BMC that misses the new password turns the fleet back, since
    /// the old password is where every BMC and Azure Stack still agree.
    Rotate {
        /// A definite PEP failure turns the fleet back too (`--on-pep-failure rollback`).
        back_on_pep_failure: bool,
    },
    /// A resume goes on in the run's direction past a BMC it cannot reach (the next resume
    /// finishes it); only a BMC that refuses the new password turns the fleet back.
    Resume,
}

/// The BMCs and what a command works with.
pub(crate) struct Fleet {
    pub bmcs: Vec<Shared<Bmc>>,
    pub old: Arc<SecretString>,
    pub new: Arc<SecretString>,
    pub concurrency: usize,
    pub cancel: Cancel,
    pub ledger: Ledger,
}

impl Fleet {
    fn secret(&self, which: Which) -> Arc<SecretString> {
        if which == Which::New { self.new.clone() } else { self.old.clone() }
    }

    fn holds(&self, i: usize) -> Which {
        lock(&self.bmcs[i]).holds
    }

    fn safe(&self, i: usize) -> bool {
        lock(&self.bmcs[i]).rollback_safe()
    }
}

/// How converging ended.
pub(crate) struct Converged {
    pub outcome: RunOutcome,
    pub pep: Option<PepReport>,
    pub pep_error: Option<String>,
}

/// What one pass over the fleet saw, gathered by its jobs.
#[derive(Default)]
struct Seen {
    /// A BMC refused to go back to the old password (its policy, whatever it declared).
    refused_back: AtomicBool,
    /// A BMC stayed on the old password when asked for the new one, with budget to spare: it
    /// refused it (or was not reached), not merely out of logins.
    refused_forward: AtomicBool,
}

/// What one pass over the fleet saw.
struct Pass {
    refused_back: bool,
    refused_forward: bool,
}

/// The converging of one command.
pub(crate) struct Converging<'a, C: PepClient> {
    pub fleet: &'a Fleet,
    pub journal: &'a SharedJournal,
    pub observer: &'a Arc<dyn Observer>,
    pub pep_step: Option<PepStep<C>>,
    pub command: Command,
    /// The account every BMC and Azure Stack share.
    pub account: String,
}

impl<C: PepClient> Converging<'_, C> {
    /// Converges from `target` with Azure Stack known to store `pep`; every step is journalled,
    /// and the run's end too. An error is a journal that could not be written: the command
    /// stops where it stands, the journal valid up to its last record.
    pub async fn run(
        mut self,
        mut target: Which,
        mut pep: Which,
        notes: &mut Vec<String>,
    ) -> Result<Converged, String> {
        let journal = self.journal;
        let mut turned = false;
        let mut pep_error = None;
        let end = |outcome: RunOutcome, pep_report: Option<PepReport>, pep_error: Option<String>| {
            journal.write(Record::Finished { outcome })?;
            Ok::<_, String>(Converged { outcome, pep: pep_report, pep_error })
        };
        loop {
            let pass = self.pass(target).await?;
            let missed: Vec<usize> = (0..self.fleet.bmcs.len()).filter(|&i| self.fleet.holds(i) != target).collect();
            // A stop starts nothing new; a fleet the pass already converged (and Azure Stack
            // with it, as after a rollback) has nothing left to start.
            if self.fleet.cancel.is_cancelled() && !(missed.is_empty() && pep == target) {
                notes.push(self.interrupted_note());
                return end(RunOutcome::Interrupted, None, pep_error);
            }
            if !missed.is_empty() {
                if target == Which::Old && pass.refused_back && !turned {
                    let reason = "a BMC refused the old password (reuse cycle): completing the rotation instead";
                    self.turn(Which::New, reason, notes)?;
                    (target, turned) = (Which::New, true);
                    continue;
                }
                let trigger = matches!(self.command, Command::Rotate { .. }) || pass.refused_forward;
                // A BMC that cannot go back and may hold the new password keeps the fleet going
                // forward: turning back would leave it alone on the new one.
                let stuck =
                    (0..self.fleet.bmcs.len()).any(|i| !self.fleet.safe(i) && self.fleet.holds(i) != Which::Old);
                if target == Which::New && trigger && !turned {
                    notes.push(format!("the change failed on {} BMC(s): {}", missed.len(), self.failures(&missed)));
                    if !stuck {
                        let reason = "the change failed: returning every BMC to the old password";
                        self.turn(Which::Old, reason, notes)?;
                        (target, turned) = (Which::Old, true);
                        continue;
                    }
                    notes.push(
                        "BMCs that cannot return to the old password already hold the new one: the fleet cannot \
                         go back; fix the failed BMCs and run `bmc-rotate resume`, which completes the rotation"
                            .into(),
                    );
                } else {
                    notes.push(format!(
                        "not converged on the {} password: {}; fix these BMCs and run `bmc-rotate resume`",
                        name(target),
                        self.failures(&missed)
                    ));
                }
                return end(RunOutcome::NeedsResume, None, pep_error);
            }
            notes.push(format!("all {} BMCs hold the {} password", self.fleet.bmcs.len(), name(target)));
            let done = if target == Which::New { RunOutcome::Rotated } else { RunOutcome::RolledBack };
            if pep == target {
                notes.push(format!("Azure Stack already stores the {} password", name(target)));
                return end(done, None, pep_error);
            }
            let Some(step) = self.pep_step.take() else {
                notes.push("no [pep] table: Azure Stack was not told; run `bmc-rotate pep set-credential`".into());
                return end(RunOutcome::NeedsResume, None, pep_error);
            };
            match self.store(step, target).await? {
                Ok(report) => {
                    notes.push(format!("Azure Stack Hub stores the {} credential", name(target)));
                    return end(done, Some(report), pep_error);
                }
                Err(error) => {
                    notes.push(format!("the PEP step failed: {error}"));
                    pep_error = Some(error.to_string());
                    if error.outcome_unknown() {
                        pep = Which::Unknown;
                    }
                    let all_safe = (0..self.fleet.bmcs.len()).all(|i| self.fleet.safe(i));
                    let back = matches!(self.command, Command::Rotate { back_on_pep_failure: true });
                    if target == Which::New && back && !error.outcome_unknown() && all_safe && !turned {
                        self.turn(Which::Old, "the PEP step failed", notes)?;
                        (target, turned) = (Which::Old, true);
                        continue;
                    }
                    notes.push(self.pep_note(&error, target, all_safe));
                    return end(RunOutcome::NeedsResume, None, pep_error);
                }
            }
        }
    }

    /// Moves every BMC that holds the other password to `target`, journalling each step.
    async fn pass(&self, target: Which) -> Result<Pass, String> {
        let fleet = self.fleet;
        let pass = Arc::new(Seen::default());
        let (first, last): (Vec<usize>, Vec<usize>) = (0..fleet.bmcs.len()).partition(|&i| fleet.safe(i));
        for (k, batch) in [first.clone(), last].into_iter().enumerate() {
            let todo: Vec<usize> =
                batch.into_iter().filter(|&i| fleet.holds(i) != target && fleet.holds(i) != Which::Unknown).collect();
            if todo.is_empty() {
                continue;
            }
            // The BMCs that cannot go back move only once every other one holds the new password:
            // one that refused it, or whose password this command could not learn, holds them back.
            let blocked = k == 1 && target == Which::New && first.iter().any(|&i| fleet.holds(i) != Which::New);
            if blocked || fleet.cancel.is_cancelled() {
                super::bmcs::mark_not_started(&fleet.bmcs, &todo);
                continue;
            }
            let phase = match (target, k) {
                (Which::Old, _) => Phase::Rollback,
                (_, 0) => Phase::Change,
                _ => Phase::ChangeLast,
            };
            self.observer.phase(phase, todo.len());
            let job = |i: usize| {
                let bmc = fleet.bmcs[i].clone();
                let from = fleet.holds(i);
                let (from_secret, to_secret) = (fleet.secret(from), fleet.secret(target));
                let (journal, observer, ledger, pass) =
                    (self.journal.clone(), self.observer.clone(), fleet.ledger.clone(), pass.clone());
                let command = self.command;
                async move {
                    let began = Instant::now();
                    let member = lock(&bmc).member.clone();
                    observer.started(&member.entry.name);
                    let Changed { holds, error, refused } =
                        change_one(&member, (&from_secret, from), (&to_secret, target), &journal, &ledger).await?;
                    member.rest();
                    let allowed = ledger.allows(&member.entry.name);
                    if target == Which::Old && holds == Which::New && refused == Some(ErrorKind::PolicyRejected) {
                        pass.refused_back.store(true, Ordering::SeqCst);
                    }
                    if target == Which::New && holds == Which::Old && allowed {
                        pass.refused_forward.store(true, Ordering::SeqCst);
                    }
                    let mut bmc = lock(&bmc);
                    bmc.spent += began.elapsed();
                    bmc.holds = holds;
                    bmc.result = result(command, target, holds, allowed);
                    bmc.error = error;
                    observer.advanced(bmc.name(), holds == target, bmc.error.as_deref().unwrap_or(""));
                    Ok(())
                }
            };
            let not_started = each(&todo, fleet.concurrency, &fleet.cancel, job).await?;
            super::bmcs::mark_not_started(&fleet.bmcs, &not_started);
        }
        Ok(Pass {
            refused_back: pass.refused_back.load(Ordering::SeqCst),
            refused_forward: pass.refused_forward.load(Ordering::SeqCst),
        })
    }

    /// Turns the fleet towards `to`, journalled before any BMC moves.
    fn turn(&self, to: Which, reason: &str, notes: &mut Vec<String>) -> Result<(), String> {
        notes.push(reason.to_owned());
        let reason = reason.to_owned();
        self.journal.write(if to == Which::Old {
            Record::RollingBack { reason }
        } else {
            Record::RollingForward { reason }
        })
    }

    /// Stores `target` in Azure Stack: the outer error is the journal's, the inner the PEP's.
    async fn store(&self, step: PepStep<C>, target: Which) -> Result<Result<PepReport, PepError>, String> {
        self.observer.phase(Phase::Pep, 1);
        let request = PepRequest {
            action: PepAction::SetCredential(BmcCredential {
                user: Some(self.account.clone()),
                password: SecretString::from(self.fleet.secret(target).expose_secret().to_owned()),
                bypass_bmc_update: true,
            }),
            close: step.close,
        };
        self.journal.write(Record::PepStarted { password: target })?;
        let result = pep::run(&step.client, &step.target, &request, &self.observer.pep_progress()).await;
        self.observer.advanced("PEP", result.is_ok(), "");
        let ended = match &result {
            Ok(_) => Record::PepEnded { password: target, stored: Some(target), error: None },
            Err(e) => Record::PepEnded {
                password: target,
                // A definite failure stored nothing: Azure Stack keeps what it had.
                stored: e.outcome_unknown().then_some(Which::Unknown),
                error: Some(e.to_string()),
            },
        };
        self.journal.write(ended)?;
        Ok(result)
    }

    /// Each missed BMC with what went wrong.
    fn failures(&self, missed: &[usize]) -> String {
        let lines: Vec<String> = missed
            .iter()
            .map(|&i| {
                let bmc = lock(&self.fleet.bmcs[i]);
                let why = bmc.error.clone().unwrap_or_else(|| bmc.result.as_str().to_owned());
                format!("{} holds the {} password ({why})", bmc.name(), name(bmc.holds))
            })
            .collect();
        lines.join("; ")
    }

    fn interrupted_note(&self) -> String {
        let changed = self.fleet.bmcs.iter().filter(|b| {
            let b = lock(b);
            b.holds != b.start
        });
        let changed = changed.count();
        format!("interrupted: {changed} BMC(s) changed by this command; nothing else was started")
    }

    /// Why the BMCs keep `target` after a failed PEP step, and what to run.
    fn pep_note(&self, error: &PepError, target: Which, all_safe: bool) -> String {
        let which = name(target);
        if error.outcome_unknown() {
            format!(
                "whether Azure Stack stored the {which} credential is unknown; the BMCs keep the {which} password. Run \
                 `bmc-rotate resume` to store it again (harmless if it was stored)"
            )
        } else if self.command == (Command::Rotate { back_on_pep_failure: false }) {
            "--on-pep-failure keep: the BMCs keep the new password; run `bmc-rotate resume` once the PEP is reachable"
                .into()
        } else if target == Which::New && !all_safe {
            "some BMCs cannot return to the old password, so the BMCs keep the new one; run `bmc-rotate resume` once \
             the PEP is reachable"
                .into()
        } else {
            format!("the BMCs keep the {which} password; run `bmc-rotate resume` once the PEP is reachable")
        }
    }
}

/// The report's word for a BMC a pass worked on.
fn result(command: Command, target: Which, holds: Which, allowed: bool) -> BmcResult {
    match (command, target == holds, allowed, target) {
        (Command::Resume, true, _, _) => BmcResult::Converged,
        (Command::Rotate { .. }, true, _, Which::New) => BmcResult::Rotated,
        (Command::Rotate { .. }, true, _, _) => BmcResult::RolledBack,
        // It is not logged in to again in this command.
        (_, false, false, _) => BmcResult::NeedsAttention,
        (Command::Resume, false, true, _) => BmcResult::Failed,
        (Command::Rotate { .. }, false, true, Which::New) if holds == Which::Old => BmcResult::Unchanged,
        (Command::Rotate { .. }, false, true, Which::New) => BmcResult::Unknown,
        (Command::Rotate { .. }, false, true, _) => BmcResult::RollbackFailed,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_end_of_a_change_has_its_word() {
        let rotate = Command::Rotate { back_on_pep_failure: true };
        let cases = [
            (rotate, Which::New, Which::New, true, BmcResult::Rotated),
            (rotate, Which::New, Which::Old, true, BmcResult::Unchanged),
            (rotate, Which::New, Which::Unknown, true, BmcResult::Unknown),
            (rotate, Which::New, Which::Unknown, false, BmcResult::NeedsAttention),
            (rotate, Which::Old, Which::Old, true, BmcResult::RolledBack),
            (rotate, Which::Old, Which::New, true, BmcResult::RollbackFailed),
            (rotate, Which::Old, Which::Unknown, false, BmcResult::NeedsAttention),
            (Command::Resume, Which::Old, Which::Old, true, BmcResult::Converged),
            (Command::Resume, Which::New, Which::New, false, BmcResult::Converged),
            (Command::Resume, Which::New, Which::Old, true, BmcResult::Failed),
            (Command::Resume, Which::New, Which::Unknown, false, BmcResult::NeedsAttention),
        ];
        for (command, target, holds, allowed, want) in cases {
            assert_eq!(result(command, target, holds, allowed), want, "{command:?} {target:?} {holds:?} {allowed}");
        }
    }
}

//! `resume`: start from where the journal says the run stands, check the operator's secrets
//! against its fingerprints and the inventory against the run's, check the PEP and the new
//! password before any BMC is contacted, verify what every BMC really holds (the journal's best
//! guess first, each password once), then converge as a run does. The direction is the run's:
//! forward to the new password, unless the run had decided to roll back.

use super::bmcs::{self, Bmc, Shared, lock};
use super::converge::{Command, Converging, Fleet, PepStep};
use super::report::{BmcResult, Observer, Phase, RunOutcome, RunReport};
use super::snmp;
use super::state::{Recovery, RunState, state_of};
use super::steps::SharedJournal;
use crate::fleet::cancel::Cancel;
use crate::fleet::journal::{self, Journal, Record, Which};
use crate::fleet::ledger::Ledger;
use crate::fleet::members::Member;
use crate::pep::{self, PepAction, PepClient, PepRequest};
use crate::secrets::policy::FleetPolicy;
use secrecy::{ExposeSecret, SecretString};
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

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
    let mut notes = check_inputs(&run, &members, &old, &new, options)?;
    let bmcs: Vec<Shared<Bmc>> = members.into_iter().zip(&run.bmcs).map(|(m, (_, held))| Bmc::new(m, *held)).collect();
    if run.converged() {
        let outcome = run.finished.expect("converged");
        notes.push(format!("the run already ended `{}`: nothing to do", outcome.as_str()));
        return Ok(RunReport::new(&run.stamp, bmcs::reports(&bmcs), outcome, notes, started));
    }
    // The new password against Azure Stack's rules before any BMC is contacted: a run whose
    // secrets could not be checked (no run-started record) must not move BMCs to a password the
    // PEP then refuses. Such a run is also held to what each plugin and profile declare; a run
    // whose fingerprints matched was checked by its own preflight against the live policies,
    // which may be looser than the declared ones — refusing it here would strand a half-rotated
    // fleet with no way forward.
    let mut policy = FleetPolicy::azure_stack();
    if run.recovered {
        for bmc in &bmcs {
            policy.intersect(&lock(bmc).policy);
        }
    }
    let violations = policy.violations(&new, &run.bmc_user);
    if !violations.is_empty() {
        return Err(ResumeError::BadInput(format!(
            "the new password does not fit every BMC and Azure Stack: {}; nothing was changed",
            violations.join("; ")
        )));
    }
    // The privileged endpoint first, as `rotate` does: a wrong CloudAdmin password or a stamp
    // without the cmdlet is found before any BMC is contacted, not after the BMCs converged.
    if let Some(step) = &pep_step {
        observer.phase(Phase::PepCheck, 1);
        let check = PepRequest {
            action: PepAction::Check { bmc_user: Some(run.bmc_user.clone()), readiness: false },
            close: None,
        };
        match pep::run(&step.client, &step.target, &check, &observer.pep_progress()).await {
            Ok(report) => {
                observer.advanced("PEP", true, &report.call);
            }
            Err(e) => {
                observer.advanced("PEP", false, &e.to_string());
                return Err(ResumeError::Preflight(format!("privileged endpoint: {e}; nothing was changed")));
            }
        }
    }
    let fleet = Fleet {
        bmcs,
        old,
        new,
        concurrency: options.concurrency,
        cancel: options.cancel.clone(),
        ledger: options.ledger.clone(),
    };
    let outcome = converge(SharedJournal::new(journal), &run, &fleet, pep_step, &observer, &mut notes)
        .await
        .map_err(ResumeError::Stopped)?;
    // As a run does after its change: the SNMPv3 side of each BMC must have followed the
    // password (a passphrase refused, or the BMC changed by hand since the run).
    snmp::check_after(&fleet, |_| false, &mut notes).await;
    Ok(RunReport {
        pep: outcome.1,
        pep_error: outcome.2,
        policy: Some(policy),
        ..RunReport::new(&run.stamp, bmcs::reports(&fleet.bmcs), outcome.0, notes, started)
    })
}

/// Checks the secrets and the inventory against the run's before anything is contacted;
/// returns the notes for the report.
fn check_inputs(
    run: &RunState,
    members: &[Member],
    old: &SecretString,
    new: &SecretString,
    options: &ResumeOptions,
) -> Result<Vec<String>, ResumeError> {
    run.check_secrets(old, new).map_err(ResumeError::BadInput)?;
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
    let changes = run.inventory_changes(&options.stamp, members);
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
    Ok(notes)
}

/// Verifies what every BMC holds, then converges; returns the outcome and the PEP's answer.
async fn converge<C: PepClient>(
    journal: SharedJournal,
    run: &RunState,
    fleet: &Fleet,
    pep_step: Option<PepStep<C>>,
    observer: &Arc<dyn Observer>,
    notes: &mut Vec<String>,
) -> Result<(RunOutcome, Option<crate::pep::PepReport>, Option<String>), String> {
    if let Some(damage) = &run.damage {
        notes.push(format!("the journal was damaged ({damage}): every BMC is verified before anything changes"));
    }
    if let Some(why) = &run.inconsistent {
        notes.push(format!("{why}: every BMC is verified"));
    }
    if run.recovered {
        // Make the journal whole again, so a later `status` or `resume` reads this run.
        notes.push("the journal had no run-started record: resuming from the inventory and what each BMC holds".into());
        journal.write(recovered_start(run, fleet)?)?;
    }
    journal.write(Record::Resumed)?;
    let canary = verify_all(&journal, run, fleet, observer).await?;
    if fleet.cancel.is_cancelled() {
        notes.push("interrupted while verifying the BMCs: nothing was changed".into());
        journal.write(Record::Finished { outcome: RunOutcome::Interrupted })?;
        return Ok((RunOutcome::Interrupted, None, None));
    }
    if let Some(canary) = canary {
        notes.push(bmcs::canary_note(&fleet.bmcs, canary, "the passwords given"));
    }
    if run.recovered && fleet.bmcs.iter().any(|b| lock(b).holds == Which::Unknown) {
        notes.push(
            "without a run-started record nothing changes until every BMC takes the old or the new password: check \
             the secrets and the BMCs, then run resume again"
                .into(),
        );
        journal.write(Record::Finished { outcome: RunOutcome::NeedsResume })?;
        return Ok((RunOutcome::NeedsResume, None, None));
    }
    let converging = Converging {
        fleet,
        journal: &journal,
        observer,
        pep_step,
        command: Command::Resume,
        account: run.bmc_user.clone(),
    };
    let converged = converging.run(run.target, run.pep, notes).await?;
    Ok((converged.outcome, converged.pep, converged.pep_error))
}

/// The run-started record of a journal that lost its own: the inventory's BMCs and fresh
/// fingerprints of the secrets given.
fn recovered_start(run: &RunState, fleet: &Fleet) -> Result<Record, String> {
    let salt = journal::new_salt()?;
    let addresses: Vec<String> =
        fleet.bmcs.iter().map(|b| crate::fleet::inventory::canonical_address(&lock(b).member.entry.endpoint)).collect();
    Ok(Record::RunStarted {
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
        bmcs_sha256: Some(crate::fleet::lock::address_digest(addresses.clone())),
        addresses,
    })
}

/// Finds what each BMC holds: the journal's guess first, then the other password, each once,
/// and journals it. Without fingerprints the secrets were not checked, so canaries go first and
/// one that refuses both stops the others being tried; that canary is returned.
async fn verify_all(
    journal: &SharedJournal,
    run: &RunState,
    fleet: &Fleet,
    observer: &Arc<dyn Observer>,
) -> Result<Option<usize>, String> {
    observer.phase(Phase::Preflight, fleet.bmcs.len());
    let job = |i: usize| {
        let (bmc, journal, observer, ledger) =
            (fleet.bmcs[i].clone(), journal.clone(), observer.clone(), fleet.ledger.clone());
        let believed = run.bmcs[i].1;
        let first = match run.guesses.get(&run.bmcs[i].0) {
            Some(&guess) => guess,
            None if believed == Which::Unknown => run.target,
            None => believed,
        };
        let other = if first == Which::New { Which::Old } else { Which::New };
        let secret = |w: Which| if w == Which::New { fleet.new.clone() } else { fleet.old.clone() };
        let candidates = [(first, secret(first)), (other, secret(other))];
        async move {
            let identified = bmcs::identify(&bmc, &candidates, (&ledger, Some(&journal)), &observer).await;
            lock(&bmc).member.rest();
            let note = {
                let mut bmc = lock(&bmc);
                match identified {
                    Ok(which) => format!("verified the {} password", super::steps::name(which)),
                    Err(failures) => {
                        let note = format!("neither password could be verified ({})", failures.join("; "));
                        let allowed = ledger.allows(bmc.name());
                        bmc.result = if allowed { BmcResult::Unknown } else { BmcResult::NeedsAttention };
                        bmc.error = Some(note.clone());
                        note
                    }
                }
            };
            let (name, holds) = {
                let bmc = lock(&bmc);
                (bmc.name().to_owned(), bmc.holds)
            };
            journal.write(Record::Holds { bmc: name, password: holds, note })?;
            bmcs::advanced(&observer, &bmc);
            Ok(())
        }
    };
    let limits = (fleet.concurrency, &fleet.cancel, &fleet.ledger);
    let canary = bmcs::identify_all(&fleet.bmcs, run.recovered, limits, job).await?;
    for bmc in &fleet.bmcs {
        let mut bmc = lock(bmc);
        if bmc.result == BmcResult::NotStarted {
            (bmc.holds, bmc.start) = (Which::Unknown, Which::Unknown);
        }
    }
    Ok(canary)
}

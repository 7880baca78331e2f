//! What a command tells its caller: per BMC and for the run, as enums the journal, the report
//! and the JSON share, and the progress it reports on the way.

use super::snmp::SnmpCheck;
use crate::fleet::journal::Which;
use crate::pep::{self, PepReport, Progress};
use crate::secrets::policy::FleetPolicy;
use serde::Serialize;
use std::time::Duration;

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
    /// Time spent on this BMC (JSON: `duration_ms`).
    #[serde(rename = "duration_ms", serialize_with = "crate::pep::millis")]
    pub duration: Duration,
    /// What went wrong, if anything.
    pub error: Option<String>,
    /// Whether its policy lets it return to the old password.
    pub rollback_safe: bool,
    /// The rotation account's SNMPv3 state in preflight (absent when not checked).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub snmp_preflight: Option<SnmpCheck>,
    /// The rotation account's SNMPv3 state after the change (absent when not checked).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub snmp_after: Option<SnmpCheck>,
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
    #[serde(rename = "elapsed_ms", serialize_with = "crate::pep::millis")]
    pub elapsed: Duration,
}

impl RunReport {
    /// A report with no PEP step and no policy, timed from `started`.
    pub(crate) fn new(
        stamp: &str,
        bmcs: Vec<BmcReport>,
        outcome: RunOutcome,
        notes: Vec<String>,
        started: std::time::Instant,
    ) -> RunReport {
        RunReport {
            stamp: stamp.to_owned(),
            outcome,
            bmcs,
            pep: None,
            pep_error: None,
            policy: None,
            notes,
            elapsed: started.elapsed(),
        }
    }
}

/// Phases, for progress displays and `--output jsonl` events (as kebab-case words).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Phase {
    /// Probe and verify every BMC.
    Preflight,
    /// Check the PEP: connect, authenticate, find the cmdlet.
    PepCheck,
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
            Phase::PepCheck => "PEP check",
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
    /// Work on one BMC in the current phase began (at high latency, several are in flight).
    fn started(&self, _bmc: &str) {}
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

//! `--escrow-command` and friends: the operator's vault gets the new password before the first
//! BMC changes, and hears how the run ended.

use super::CliError;
use crate::fleet::engine::{RunOutcome, RunReport};
use crate::fleet::escrow::{Escrow, Event, RunInfo};
use std::time::Duration;

/// Where the new password is escrowed.
#[derive(Clone, Debug, clap::Args)]
pub struct EscrowArgs {
    /// Before the first BMC changes, run COMMAND (by `/bin/sh -c`) with the new password on its
    /// standard input, never in its arguments or environment; a failure or timeout stops the run
    /// with nothing changed. After the run it runs again with no input and
    /// BMC_ROTATE_EVENT=rotated or rolled-back. It sees BMC_ROTATE_EVENT, BMC_ROTATE_STAMP,
    /// BMC_ROTATE_BMC_USER, PATH, HOME, USER, LANG, TZ, TMPDIR and the --escrow-env names only.
    #[arg(long, value_name = "COMMAND")]
    pub escrow_command: Option<String>,
    /// An environment variable the escrow command may also see, e.g. VAULT_ADDR (repeatable).
    #[arg(long, value_name = "NAME", requires = "escrow_command")]
    pub escrow_env: Vec<String>,
    /// How long the escrow command may take, in seconds.
    #[arg(long, value_name = "SECONDS", default_value_t = 60, value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub escrow_timeout: u64,
}

impl EscrowArgs {
    /// The escrow command, checked, if one was given.
    pub fn escrow(&self) -> Result<Option<Escrow>, CliError> {
        let Some(command) = &self.escrow_command else { return Ok(None) };
        Escrow::new(command.clone(), self.escrow_env.clone(), Duration::from_secs(self.escrow_timeout))
            .map(Some)
            .map_err(CliError::bad_input)
    }
}

/// Tells the vault how the run ended, when it ended one way or the other: a run that needs
/// `resume` has not decided which password stays, so the vault hears nothing yet. A failure is
/// a note on the report, not a failed run: the BMCs and Azure Stack already agree.
pub async fn notify_end(escrow: Option<&Escrow>, run: RunInfo<'_>, report: &mut RunReport) {
    let Some(escrow) = escrow else { return };
    let event = match report.outcome {
        RunOutcome::Rotated => Event::Rotated,
        RunOutcome::RolledBack => Event::RolledBack,
        _ => return,
    };
    if let Err(e) = escrow.notify(run, event).await {
        tracing::warn!("escrow: {e}");
        report.notes.push(format!(
            "escrow: telling the vault the run {} failed: {e}; mark the escrowed version by hand",
            event.as_str()
        ));
    }
}

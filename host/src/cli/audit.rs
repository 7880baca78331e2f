//! `bmc-rotate audit verify`.

use super::{CliError, CmdResult, Output, exit};
use crate::fleet::audit;
use crate::paths;
use clap::Subcommand;
use std::path::PathBuf;
use std::process::ExitCode;

/// What `audit` does.
#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// Check that no record of the audit log was removed or edited (each line carries the hash of
    /// the one before it) and print the hash of the last one, to keep elsewhere: a cut at the
    /// very end is only visible against that. Exit code 0 if the chain is intact, 1 if not.
    Verify {
        /// The audit log. [default: $XDG_STATE_HOME/bmc-rotate/audit.jsonl]
        #[arg(long, value_name = "FILE")]
        audit_log: Option<PathBuf>,
        /// Output format.
        #[arg(long, value_enum, default_value_t = Output::Table)]
        output: Output,
    },
}

/// Runs an `audit` command.
pub fn run(command: AuditCommand) -> CmdResult {
    let AuditCommand::Verify { audit_log, output } = command;
    let path = audit_log
        .or_else(paths::audit_log)
        .ok_or_else(|| CliError::bad_input("no audit log: give --audit-log (no state directory is known)"))?;
    let verified = audit::verify(&path).map_err(CliError::failed)?;
    match output {
        Output::Json => println!(
            "{}",
            serde_json::json!({"audit_log": path.to_string_lossy(), "records": verified.records, "head": verified.head})
        ),
        Output::Table => println!(
            "{}: {} records, chain intact; last record's sha256 {}",
            path.display(),
            verified.records,
            verified.head
        ),
    }
    Ok(ExitCode::from(exit::OK))
}

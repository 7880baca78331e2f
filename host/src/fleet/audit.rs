//! The audit log: one JSON line per run or resume — who, when, which stamp and BMCs, what came
//! of it, and where the journal is. Never a secret. Appended with mode 0600 and fsync.

use serde::Serialize;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

/// One audit record.
#[derive(Clone, Debug, Serialize)]
pub struct AuditEntry {
    /// Unix time in milliseconds.
    pub at_ms: u64,
    /// The operator (`$SUDO_USER`, `$USER`, or the uid).
    pub operator: String,
    /// `rotate`, `resume`, `pep set-credential`, ...
    pub command: String,
    /// The stamp.
    pub stamp: String,
    /// The BMCs worked on.
    pub bmcs: Vec<String>,
    /// How it ended.
    pub outcome: String,
    /// The run's journal, if one was written.
    pub journal: Option<PathBuf>,
}

impl AuditEntry {
    /// An entry stamped now, for the current operator.
    pub fn now(command: &str, stamp: &str, bmcs: Vec<String>, outcome: &str, journal: Option<PathBuf>) -> AuditEntry {
        AuditEntry {
            at_ms: super::journal::now_ms(),
            operator: operator(),
            command: command.into(),
            stamp: stamp.into(),
            bmcs,
            outcome: outcome.into(),
            journal,
        }
    }
}

/// Who is running the tool.
pub fn operator() -> String {
    std::env::var("SUDO_USER")
        .or_else(|_| std::env::var("USER"))
        // SAFETY: getuid has no preconditions.
        .unwrap_or_else(|_| format!("uid {}", unsafe { libc::getuid() }))
}

/// Appends one entry.
pub fn append(path: &Path, entry: &AuditEntry) -> Result<(), String> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    }
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| format!("cannot open the audit log {}: {e}", path.display()))?;
    let mut line = serde_json::to_string(entry).expect("serialisable");
    line.push('\n');
    file.write_all(line.as_bytes())
        .and_then(|()| file.sync_data())
        .map_err(|e| format!("cannot write the audit log {}: {e}", path.display()))
}

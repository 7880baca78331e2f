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
    /// The run's journal, if one was written. Written as (lossy) UTF-8: a path need not be.
    #[serde(serialize_with = "lossy_path")]
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

/// A path as JSON text: serde refuses a path that is not UTF-8, and the log must still be written.
fn lossy_path<S: serde::Serializer>(path: &Option<PathBuf>, serializer: S) -> Result<S::Ok, S::Error> {
    match path {
        Some(path) => serializer.serialize_some(&path.to_string_lossy()),
        None => serializer.serialize_none(),
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::ffi::OsStr;
    use std::os::unix::ffi::OsStrExt;

    #[test]
    fn a_journal_path_that_is_not_utf8_is_logged_lossily() {
        let dir = std::env::temp_dir().join(format!("bmc-rotate-audit-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let journal = dir.join(OsStr::from_bytes(b"run-\xff.jsonl"));
        let log = dir.join("audit.jsonl");
        append(&log, &AuditEntry::now("rotate", "lab", vec!["node01".into()], "rotated", Some(journal))).unwrap();
        let line: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&log).unwrap()).unwrap();
        assert!(line["journal"].as_str().unwrap().ends_with("run-\u{fffd}.jsonl"), "{line}");
        assert_eq!(line["outcome"], "rotated");
    }
}

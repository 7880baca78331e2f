//! The audit log: one JSON line per run or resume — who, when, which stamp and BMCs, what came
//! of it, and where the journal is. Never a secret. Appended with mode 0600 and fsync.
//!
//! Each line carries the SHA-256 of the line before it (`prev`; zeros for the first), so a line
//! removed or edited anywhere but at the very end breaks the chain at the next line, which
//! `bmc-rotate audit verify` reports. Appends hold an exclusive lock on the file, so two runs
//! never fork the chain. The last line is only as safe as where its hash is kept: `verify` prints
//! it, for the operator to record elsewhere.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

/// The `prev` of the first line.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// Longest audit line read back (a run over ten thousand BMCs names each).
const MAX_LINE: u64 = 4 << 20;

/// One audit record.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct AuditEntry {
    /// Unix time in milliseconds.
    pub at_ms: u64,
    /// The same instant, RFC 3339 in UTC.
    pub at: String,
    /// The operator: the login name of the real user id, from the system's user database (on
    /// Windows, the account name of the process's token).
    pub operator: String,
    /// The real user id (Unix; Windows has none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uid: Option<u32>,
    /// `$SUDO_USER` and `$USER` as the environment claimed them (informational: the
    /// environment is the caller's to set).
    pub env_user: Option<String>,
    /// `$SUDO_USER`, if set.
    pub sudo_user: Option<String>,
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
    /// SHA-256 of the previous line, hex ([`GENESIS`] for the first); set by [`append`].
    #[serde(default)]
    pub prev: String,
}

impl AuditEntry {
    /// An entry stamped now, for the current operator.
    pub fn now(command: &str, stamp: &str, bmcs: Vec<String>, outcome: &str, journal: Option<PathBuf>) -> AuditEntry {
        let at_ms = super::journal::now_ms();
        let me = crate::platform::operator();
        let unnamed = || me.uid.map_or_else(|| "unknown".to_owned(), |uid| format!("uid {uid}"));
        AuditEntry {
            at_ms,
            at: rfc3339(at_ms),
            operator: me.name.clone().unwrap_or_else(unnamed),
            uid: me.uid,
            env_user: std::env::var("USER").ok(),
            sudo_user: std::env::var("SUDO_USER").ok(),
            command: command.into(),
            stamp: stamp.into(),
            bmcs,
            outcome: outcome.into(),
            journal,
            prev: String::new(),
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

/// Milliseconds since the epoch as RFC 3339 UTC, e.g. `2026-11-30T00:41:07.123Z`.
pub fn rfc3339(ms: u64) -> String {
    let (secs, millis) = (ms / 1000, ms % 1000);
    let (days, rem) = (secs / 86_400, secs % 86_400);
    // Days to a civil date (Howard Hinnant's algorithm), valid for every date after 1970.
    let z = days as i64 + 719_468;
    let era = z / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!("{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{millis:03}Z", rem / 3600, rem % 3600 / 60, rem % 60)
}

fn hash(line: &[u8]) -> String {
    hex::encode(Sha256::digest(line))
}

/// An exclusive lock on the open log, held until dropped.
struct Locked(std::fs::File);

impl Locked {
    fn new(file: std::fs::File) -> Result<Locked, String> {
        file.lock().map_err(|e| e.to_string())?;
        Ok(Locked(file))
    }
}

impl Drop for Locked {
    fn drop(&mut self) {
        // Unlocking cannot fail in a way that matters: closing the file unlocks too.
        let _ = self.0.unlock();
    }
}

/// The last line of the log (without its newline), or `None` when the log is empty.
fn last_line(file: &mut std::fs::File) -> std::io::Result<Option<Vec<u8>>> {
    let len = file.seek(SeekFrom::End(0))?;
    if len == 0 {
        return Ok(None);
    }
    let start = len.saturating_sub(MAX_LINE + 1);
    file.seek(SeekFrom::Start(start))?;
    let mut tail = Vec::new();
    file.take(len - start).read_to_end(&mut tail)?;
    if tail.last() == Some(&b'\n') {
        tail.pop();
    }
    let from = tail.iter().rposition(|b| *b == b'\n').map_or(0, |i| i + 1);
    Ok(Some(tail[from..].to_vec()))
}

/// Appends one entry, chained to the line before it.
pub fn append(path: &Path, entry: &AuditEntry) -> Result<(), String> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    }
    let file = crate::platform::owner_only(std::fs::OpenOptions::new().create(true).read(true).append(true))
        .open(path)
        .map_err(|e| format!("cannot open the audit log {}: {e}", path.display()))?;
    crate::platform::make_private(&file)
        .map_err(|e| format!("cannot make the audit log {} private: {e}", path.display()))?;
    let mut locked = Locked::new(file).map_err(|e| format!("cannot lock the audit log {}: {e}", path.display()))?;
    let prev = last_line(&mut locked.0)
        .map_err(|e| format!("cannot read the audit log {}: {e}", path.display()))?
        .map_or_else(|| GENESIS.to_owned(), |line| hash(&line));
    let mut line = serde_json::to_string(&AuditEntry { prev, ..entry.clone() }).expect("serialisable");
    line.push('\n');
    locked
        .0
        .write_all(line.as_bytes())
        .and_then(|()| locked.0.sync_data())
        .map_err(|e| format!("cannot write the audit log {}: {e}", path.display()))
}

/// The stamp's last `rotate` or `resume` that left a journal, as the audit log records it; `None`
/// when the log cannot be read or records none (the log is a history, not a requirement). A run
/// that `failed` changed nothing, so it is passed over.
pub fn last_run(path: &Path, stamp: &str) -> Option<AuditEntry> {
    let text = crate::files::read_bounded_string(path, "the audit log", crate::files::MAX_JOURNAL).ok()?;
    text.lines().rev().filter_map(|line| serde_json::from_str::<AuditEntry>(line).ok()).find(|entry| {
        entry.stamp == stamp
            && matches!(entry.command.as_str(), "rotate" | "resume")
            && entry.outcome != "failed"
            && entry.journal.is_some()
    })
}

/// What `verify` found.
#[derive(Debug, PartialEq, Eq)]
pub struct Verified {
    /// Lines checked.
    pub records: usize,
    /// SHA-256 of the last line: record it elsewhere to detect the end being cut.
    pub head: String,
}

/// Checks the chain from the first line to the last; the error names the first line where it
/// breaks and what that means.
pub fn verify(path: &Path) -> Result<Verified, String> {
    let text = crate::files::read_bounded_string(path, "the audit log", crate::files::MAX_JOURNAL)
        .map_err(|e| e.to_string())?;
    let mut expected = GENESIS.to_owned();
    let mut records = 0;
    for (i, line) in text.lines().enumerate() {
        let n = i + 1;
        let prev = serde_json::from_str::<serde_json::Value>(line)
            .ok()
            .and_then(|v| v.get("prev").and_then(|p| p.as_str()).map(str::to_owned))
            .ok_or_else(|| {
                format!("{}:{n}: not an audit record (no `prev`): the line was edited or damaged", path.display())
            })?;
        if prev != expected {
            return Err(format!(
                "{}:{n}: the chain breaks here: this record does not follow the one before it — a record before \
                 line {n} was removed or edited{}",
                path.display(),
                if n == 1 { " (or the log's beginning was cut)" } else { "" }
            ));
        }
        expected = hash(line.as_bytes());
        records += 1;
    }
    Ok(Verified { records, head: expected })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("bmc-rotate-audit-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        dir
    }

    #[test]
    #[cfg(unix)] // Windows paths are UTF-16: an unpaired surrogate is the analogue, not bytes.
    fn a_journal_path_that_is_not_utf8_is_logged_lossily() {
        use std::ffi::OsStr;
        use std::os::unix::ffi::OsStrExt;
        let dir = temp("utf8");
        let journal = dir.join(OsStr::from_bytes(b"run-\xff.jsonl"));
        let log = dir.join("audit.jsonl");
        append(&log, &AuditEntry::now("rotate", "lab", vec!["node01".into()], "rotated", Some(journal))).unwrap();
        let line: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&log).unwrap()).unwrap();
        assert!(line["journal"].as_str().unwrap().ends_with("run-\u{fffd}.jsonl"), "{line}");
        assert_eq!(line["outcome"], "rotated");
        assert_eq!(line["prev"], GENESIS);
    }

    #[test]
    fn the_operator_is_the_real_user_not_the_environment() {
        let entry = AuditEntry::now("rotate", "lab", vec![], "rotated", None);
        let me = crate::platform::operator();
        assert_eq!(entry.uid, me.uid);
        assert!(cfg!(windows) || entry.uid.is_some(), "Unix always has a uid");
        if let Some(name) = me.name {
            assert_eq!(entry.operator, name);
        }
        assert!(entry.at.ends_with('Z') && entry.at.len() == 24, "{}", entry.at);
    }

    #[test]
    fn rfc3339_dates() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(rfc3339(951_782_400_000), "2000-02-29T00:00:00.000Z");
        assert_eq!(rfc3339(1_796_000_467_123), "2026-11-30T01:01:07.123Z");
    }

    #[test]
    fn a_removed_or_edited_record_breaks_the_chain_where_it_was() {
        let dir = temp("chain");
        let log = dir.join("audit.jsonl");
        for i in 0..4 {
            append(&log, &AuditEntry::now("rotate", &format!("s{i}"), vec![], "rotated", None)).unwrap();
        }
        let intact = verify(&log).unwrap();
        assert_eq!(intact.records, 4);
        let text = std::fs::read_to_string(&log).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(intact.head, hash(lines[3].as_bytes()));

        let removed = [lines[0], lines[2], lines[3]].join("\n") + "\n";
        std::fs::write(&log, removed).unwrap();
        let err = verify(&log).unwrap_err();
        assert!(err.contains(":2: the chain breaks here") && err.contains("removed or edited"), "{err}");

        let edited = [lines[0], &lines[1].replace("\"s1\"", "\"s9\""), lines[2], lines[3]].join("\n") + "\n";
        std::fs::write(&log, edited).unwrap();
        assert!(verify(&log).unwrap_err().contains(":3: the chain breaks here"));

        std::fs::write(&log, lines[1..].join("\n") + "\n").unwrap();
        assert!(verify(&log).unwrap_err().contains(":1: the chain breaks here"));
    }
}

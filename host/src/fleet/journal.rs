//! The run journal: append-only JSON lines, one `fsync` per record, mode 0600, and never a
//! plaintext secret — passwords appear only as salted, stretched fingerprints so `resume` can
//! check that the operator typed the same ones. A crash at any point leaves every record that
//! was acknowledged; a torn last line (a crash mid-write) is ignored on reading.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

/// Which of the run's two passwords.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Which {
    /// The password before the run.
    Old,
    /// The password the run sets.
    New,
    /// Not known: an answer was lost. Resolved by verifying each password once.
    Unknown,
}

/// One event of a run.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "kebab-case")]
pub enum Record {
    /// The run's identity and everything `resume` needs besides the secrets.
    RunStarted {
        /// Random id of the run.
        run: String,
        /// The stamp.
        stamp: String,
        /// The inventory file.
        inventory: PathBuf,
        /// The BMC account rotated.
        bmc_user: String,
        /// BMC names, in inventory order.
        bmcs: Vec<String>,
        /// Hex salt of the fingerprints.
        salt: String,
        /// Fingerprint of the old BMC password.
        old: String,
        /// Fingerprint of the new BMC password.
        new: String,
        /// Whether a failed PEP step rolls the BMCs back.
        rollback_on_pep_failure: bool,
    },
    /// Preflight passed: every BMC answered with the old password and accepts the new one.
    PreflightPassed,
    /// A change (or a rollback) of one BMC is about to be sent.
    Changing {
        /// The BMC.
        bmc: String,
        /// The password being set.
        to: Which,
    },
    /// What a BMC is known to hold now.
    Holds {
        /// The BMC.
        bmc: String,
        /// The password.
        password: Which,
        /// How it is known, or what went wrong.
        note: String,
    },
    /// The run decided to return every BMC to the old password.
    RollingBack {
        /// Why.
        reason: String,
    },
    /// A resume found it cannot return every BMC to the old password (a reuse cycle refused it)
    /// and completes the rotation instead.
    RollingForward {
        /// Why.
        reason: String,
    },
    /// The PEP step is about to store a password.
    PepStarted {
        /// Which one.
        password: Which,
    },
    /// The PEP step ended.
    PepEnded {
        /// The password it was storing.
        password: Which,
        /// `new`/`old` when stored, `unknown` when the outcome was lost, absent when it failed.
        stored: Option<Which>,
        /// The error, if any.
        error: Option<String>,
    },
    /// The run (or a resume) ended with this outcome.
    Finished {
        /// `rotated`, `rolled-back`, `needs-resume` or `failed`.
        outcome: String,
    },
    /// A `resume` started from this journal.
    Resumed,
}

/// A record as stored: sequence number and time around it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Line {
    /// 1-based position in the file.
    pub seq: u64,
    /// Unix time in milliseconds.
    pub at_ms: u64,
    /// The event.
    #[serde(flatten)]
    pub record: Record,
}

/// An open journal, appending.
pub struct Journal {
    file: File,
    path: PathBuf,
    seq: u64,
    #[cfg(feature = "test-hooks")]
    crash_after: Option<u64>,
}

/// For the crash tests only (the `test-hooks` feature, which no product build enables):
/// `BMC_ROTATE_TEST_CRASH_AFTER_RECORD=k` kills the process with SIGKILL right after record `k`
/// is durable, the harshest crash there is.
#[cfg(feature = "test-hooks")]
const CRASH_HOOK: &str = "BMC_ROTATE_TEST_CRASH_AFTER_RECORD";

/// Unix time in milliseconds.
pub(crate) fn now_ms() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
}

impl Journal {
    /// Creates a new journal (refusing to overwrite one), mode 0600.
    pub fn create(path: &Path) -> Result<Journal, String> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        }
        let file = OpenOptions::new()
            .create_new(true)
            .append(true)
            .mode(0o600)
            .open(path)
            .map_err(|e| format!("cannot create the journal {}: {e}", path.display()))?;
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            // Make the new directory entry durable too.
            let _ = File::open(dir).and_then(|d| d.sync_all());
        }
        Ok(Journal::with(file, path, 0))
    }

    /// Opens an existing journal to append to it (a resume).
    pub fn append(path: &Path) -> Result<(Journal, Vec<Line>), String> {
        let (lines, text) = load(path)?;
        let file = OpenOptions::new()
            .append(true)
            .open(path)
            .map_err(|e| format!("cannot open the journal {}: {e}", path.display()))?;
        // Cut a torn last record (a crash mid-write) so the next record starts on its own line.
        if !text.is_empty() && !text.ends_with('\n') {
            let keep = text.rfind('\n').map_or(0, |i| i + 1);
            file.set_len(keep as u64)
                .and_then(|()| file.sync_data())
                .map_err(|e| format!("cannot repair the journal {}: {e}", path.display()))?;
        }
        let seq = lines.last().map_or(0, |l| l.seq);
        Ok((Journal::with(file, path, seq), lines))
    }

    fn with(file: File, path: &Path, seq: u64) -> Journal {
        Journal {
            file,
            path: path.to_owned(),
            seq,
            #[cfg(feature = "test-hooks")]
            crash_after: std::env::var(CRASH_HOOK).ok().and_then(|v| v.parse().ok()),
        }
    }

    /// The file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Records written so far (all runs in the file).
    pub fn len(&self) -> u64 {
        self.seq
    }

    /// Whether nothing was written yet.
    pub fn is_empty(&self) -> bool {
        self.seq == 0
    }

    /// Appends a record and makes it durable before returning.
    pub fn write(&mut self, record: Record) -> Result<(), String> {
        self.seq += 1;
        let line = Line { seq: self.seq, at_ms: now_ms(), record };
        let mut text = serde_json::to_string(&line).expect("records serialise");
        text.push('\n');
        self.file
            .write_all(text.as_bytes())
            .and_then(|()| self.file.sync_data())
            .map_err(|e| format!("cannot write the journal {}: {e}", self.path.display()))?;
        #[cfg(feature = "test-hooks")]
        if self.crash_after == Some(self.seq) {
            // SAFETY: kill(2) on our own pid; the test harness asked for exactly this.
            unsafe { libc::kill(libc::getpid(), libc::SIGKILL) };
        }
        Ok(())
    }
}

/// Creates a run's journal and writes its first record: the run's identity and the salted
/// fingerprints of both passwords.
pub fn start_run(
    path: &Path,
    inventory: &super::inventory::Inventory,
    old: &str,
    new: &str,
    rollback_on_pep_failure: bool,
) -> Result<Journal, String> {
    let salt = new_salt()?;
    let mut journal = Journal::create(path)?;
    journal.write(Record::RunStarted {
        run: salt[..12].to_owned(),
        stamp: inventory.stamp.clone(),
        inventory: std::fs::canonicalize(&inventory.path).unwrap_or_else(|_| inventory.path.clone()),
        bmc_user: inventory.bmc_user.clone(),
        bmcs: inventory.bmcs.iter().map(|b| b.name.clone()).collect(),
        old: fingerprint(&salt, "old", old),
        new: fingerprint(&salt, "new", new),
        salt,
        rollback_on_pep_failure,
    })?;
    Ok(journal)
}

/// Reads a journal. Refuses one others can read or write (it names the fleet and its timing)
/// or that does not parse, except a torn last line.
pub fn read(path: &Path) -> Result<Vec<Line>, String> {
    load(path).map(|(lines, _)| lines)
}

/// The records and the file's text, read once.
fn load(path: &Path) -> Result<(Vec<Line>, String), String> {
    let file = crate::files::open_bounded(path, "the journal", crate::files::MAX_JOURNAL).map_err(|e| e.to_string())?;
    let meta = file.metadata();
    if meta.mode() & 0o077 != 0 {
        return Err(format!(
            "the journal {} is accessible to group or others (mode {:o}); run `chmod 600 {}`",
            path.display(),
            meta.mode() & 0o777,
            path.display()
        ));
    }
    let text = file.read_string().map_err(|e| e.to_string())?;
    let raw: Vec<&str> = text.lines().collect();
    let mut lines = Vec::new();
    for (i, line) in raw.iter().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        match serde_json::from_str::<Line>(line) {
            Ok(line) => lines.push(line),
            Err(_) if i + 1 == raw.len() => {
                tracing::warn!(journal = %path.display(), line = i + 1, "ignoring a torn last record (a crash mid-write)");
            }
            Err(e) => return Err(format!("{}:{}: not a journal record: {e}", path.display(), i + 1)),
        }
    }
    if !matches!(lines.first().map(|l| &l.record), Some(Record::RunStarted { .. })) {
        return Err(format!("{} is not a bmc-rotate journal (no run-started record)", path.display()));
    }
    Ok((lines, text))
}

/// A random salt, hex.
pub fn new_salt() -> Result<String, String> {
    let mut salt = [0u8; 16];
    getrandom::fill(&mut salt).map_err(|e| format!("the system's random source failed: {e}"))?;
    Ok(hex::encode(salt))
}

/// The fingerprint of a secret: SHA-256 stretched 100,000 times over salt, label and secret, so
/// a copied journal does not make guessing a weak password cheap.
pub fn fingerprint(salt: &str, label: &str, secret: &str) -> String {
    let mut digest: [u8; 32] = Sha256::new()
        .chain_update(salt.as_bytes())
        .chain_update([0])
        .chain_update(label.as_bytes())
        .chain_update([0])
        .chain_update(secret.as_bytes())
        .finalize()
        .into();
    for _ in 0..100_000 {
        digest = Sha256::new().chain_update(digest).chain_update(salt.as_bytes()).finalize().into();
    }
    hex::encode(digest)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn scratch(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("bmc-rotate-journal-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        dir.join("run.jsonl")
    }

    fn started() -> Record {
        Record::RunStarted {
            run: "r1".into(),
            stamp: "lab".into(),
            inventory: "inv.toml".into(),
            bmc_user: "azsbmc".into(),
            bmcs: vec!["node01".into()],
            salt: "00".into(),
            old: "a".into(),
            new: "b".into(),
            rollback_on_pep_failure: true,
        }
    }

    #[test]
    fn records_are_durable_private_and_read_back_in_order() {
        let path = scratch("order");
        let mut journal = Journal::create(&path).unwrap();
        journal.write(started()).unwrap();
        journal.write(Record::Changing { bmc: "node01".into(), to: Which::New }).unwrap();
        assert_eq!(std::fs::metadata(&path).unwrap().mode() & 0o777, 0o600);
        assert!(Journal::create(&path).is_err(), "never overwritten");
        let (mut again, lines) = Journal::append(&path).unwrap();
        assert_eq!(lines.len(), 2);
        assert_eq!(lines[1].record, Record::Changing { bmc: "node01".into(), to: Which::New });
        again.write(Record::Resumed).unwrap();
        assert_eq!(read(&path).unwrap().last().unwrap().seq, 3);
    }

    #[test]
    fn a_torn_last_line_is_ignored_and_other_damage_is_reported() {
        let path = scratch("torn");
        let mut journal = Journal::create(&path).unwrap();
        journal.write(started()).unwrap();
        drop(journal);
        let mut file = OpenOptions::new().append(true).open(&path).unwrap();
        file.write_all(b"{\"seq\":2,\"at_ms\":1,\"event\":\"chang").unwrap();
        assert_eq!(read(&path).unwrap().len(), 1);
        drop(file);
        let (mut repaired, lines) = Journal::append(&path).unwrap();
        assert_eq!(lines.len(), 1);
        repaired.write(Record::Resumed).unwrap();
        assert_eq!(read(&path).unwrap().len(), 2, "the torn record was cut, the new one stands alone");
        let mut file = OpenOptions::new().append(true).open(&path).unwrap();
        file.write_all(b"{\"seq\":3}\n{\"seq\":4,\"at_ms\":1,\"event\":\"resumed\"}\n").unwrap();
        assert!(read(&path).unwrap_err().contains(":3: not a journal record"), "{:?}", read(&path));
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        assert!(read(&path).unwrap_err().contains("chmod 600"));
    }

    #[test]
    fn fingerprints_are_salted_and_labelled() {
        let a = fingerprint("s1", "new", "Pw-1");
        assert_eq!(a, fingerprint("s1", "new", "Pw-1"));
        assert_ne!(a, fingerprint("s2", "new", "Pw-1"));
        assert_ne!(a, fingerprint("s1", "old", "Pw-1"));
        assert!(!a.contains("Pw-1"));
    }
}

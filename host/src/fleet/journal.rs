//! The run journal: append-only JSON lines, one `fsync` per record, mode 0600, and never a
//! plaintext secret — passwords appear only as salted, stretched fingerprints so `resume` can
//! check that the operator typed the same ones. A crash at any point leaves every record that
//! was acknowledged.
//!
//! Each record is one line written with a single `write(2)` on an `O_APPEND` descriptor, then
//! `fdatasync`, and ends in `"sum"`: the first 8 bytes of SHA-256, hex, over the line's bytes
//! without `,"sum":"…"`. The first failed write cuts whatever part of the line reached the file and
//! refuses every later write, so the journal stays valid up to its last good record. Reading
//! never refuses damage: a line that does not parse, fails its sum, repeats or goes back in
//! sequence, a byte-order mark, an empty file — each is skipped and reported once (count and
//! line numbers). Records of the previous release (no `"sum"`) are read as unchecked.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::fs::{File, OpenOptions};
use std::io::Write;
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
#[allow(
    clippy::large_enum_variant,
    reason = "records are built and written one at a time; Windows' larger PathBuf tips the lint"
)]
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
        /// Each BMC's canonical address (`inventory::canonical_address`), in `bmcs` order:
        /// `resume` refuses an inventory whose addresses differ. Absent in journals of earlier
        /// releases.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        addresses: Vec<String>,
        /// SHA-256 of the canonical address set (`lock::address_digest`).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        bmcs_sha256: Option<String>,
        /// Written by a `resume` that found no run-started record: what each BMC and Azure Stack
        /// held before it is unknown, and the secrets were not checked against earlier ones.
        #[serde(default, skip_serializing_if = "is_false")]
        recovered: bool,
    },
    /// Preflight passed: every BMC answered with the old password and accepts the new one.
    PreflightPassed,
    /// The escrow command stored the new password (before any change).
    Escrowed,
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
        /// `rotated`, `rolled-back`, `needs-resume` or `interrupted`.
        outcome: super::engine::RunOutcome,
    },
    /// A `resume` started from this journal.
    Resumed,
    /// A BMC refused a login (`auth-failed` or `locked-out`): the lockout ledger.
    LoginRefused {
        /// The BMC.
        bmc: String,
        /// The password it refused.
        password: Which,
        /// How.
        failure: super::ledger::LoginFailure,
    },
}

/// A record as stored: sequence number and time around it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Line {
    /// 1-based position among the records written to the file.
    pub seq: u64,
    /// Unix time in milliseconds.
    pub at_ms: u64,
    /// The event.
    #[serde(flatten)]
    pub record: Record,
}

fn is_false(b: &bool) -> bool {
    !*b
}

/// What ends every record: `,"sum":"` + 16 hex digits + `"}`.
const SUM_KEY: &str = ",\"sum\":\"";

/// The record's checksum: SHA-256 over its canonical JSON (the line without the sum), first 8
/// bytes, hex.
fn checksum(body: &str) -> String {
    hex::encode(&Sha256::digest(body.as_bytes())[..8])
}

/// The whole line, `\n` included.
fn encode(line: &Line) -> String {
    let body = serde_json::to_string(line).expect("records serialise");
    let sum = checksum(&body);
    format!("{}{SUM_KEY}{sum}\"}}\n", &body[..body.len() - 1])
}

/// Why a line was not taken as a record.
const DAMAGED: &str = "does not parse or fails its checksum";

/// Parses one line: the record and whether it carried a checksum. A line without one (the
/// previous release) must be exactly the canonical JSON of its record, so damage to a key or to
/// the JSON's shape is still found.
fn parse(text: &str) -> Result<(Line, bool), &'static str> {
    if let Some(rest) = text.strip_suffix("\"}")
        && let Some(at) = rest.rfind(SUM_KEY)
    {
        let sum = &rest[at + SUM_KEY.len()..];
        let body = format!("{}}}", &rest[..at]);
        if sum.len() != 16 || checksum(&body) != sum {
            return Err("fails its checksum");
        }
        let line = serde_json::from_str::<Line>(&body).map_err(|_| DAMAGED)?;
        return Ok((line, true));
    }
    let line = serde_json::from_str::<Line>(text).map_err(|_| DAMAGED)?;
    if serde_json::to_string(&line).ok().as_deref() != Some(text) {
        return Err(DAMAGED);
    }
    Ok((line, false))
}

/// A journal as read: the good records in order, and what was skipped.
#[derive(Clone, Debug, Default)]
pub struct Contents {
    /// The records taken, in sequence order.
    pub lines: Vec<Line>,
    /// The file line number (1-based) of each record in `lines`.
    pub line_numbers: Vec<usize>,
    /// File lines (1-based) skipped as damaged: unparseable, a failed checksum, a repeated or
    /// out-of-order sequence number, a torn last line.
    pub skipped: Vec<usize>,
    /// Records without a checksum (written by the previous release), taken unchecked.
    pub unchecked: usize,
    /// Byte-order marks removed.
    pub boms: usize,
    /// Whether the file ends mid-line (a torn last write), and where the last whole line ends.
    torn_tail: Option<u64>,
    /// Whether the last line is a good record without its `\n`.
    needs_newline: bool,
}

impl Contents {
    /// Whether anything was skipped or removed.
    pub fn damaged(&self) -> bool {
        !self.skipped.is_empty() || self.boms > 0
    }

    /// One line for the operator about the damage, if any.
    pub fn damage_summary(&self) -> Option<String> {
        if !self.damaged() {
            return None;
        }
        let mut parts = Vec::new();
        if !self.skipped.is_empty() {
            let shown: Vec<String> = self.skipped.iter().take(20).map(ToString::to_string).collect();
            let more = if self.skipped.len() > 20 { ", …" } else { "" };
            parts.push(format!("skipped {} damaged line(s) (line {}{more})", self.skipped.len(), shown.join(", ")));
        }
        if self.boms > 0 {
            parts.push(format!("ignored {} byte-order mark(s)", self.boms));
        }
        Some(parts.join("; "))
    }
}

/// Reads records out of a journal's bytes, tolerating any damage.
pub fn parse_all(bytes: &[u8]) -> Contents {
    let mut contents = Contents::default();
    let mut last_seq = 0u64;
    let mut checked_seen = false;
    let mut offset = 0u64;
    let pieces: Vec<&[u8]> = bytes.split(|&b| b == b'\n').collect();
    let count = pieces.len();
    for (i, piece) in pieces.into_iter().enumerate() {
        let number = i + 1;
        let start = offset;
        offset += piece.len() as u64 + 1;
        let unterminated = i + 1 == count && !piece.is_empty();
        let Ok(mut text) = std::str::from_utf8(piece) else {
            contents.skipped.push(number);
            if unterminated {
                contents.torn_tail = Some(start);
            }
            continue;
        };
        while let Some(rest) = text.strip_prefix('\u{feff}') {
            contents.boms += 1;
            text = rest;
        }
        let text = text.trim_end_matches('\r');
        if text.trim().is_empty() {
            continue;
        }
        // A torn write followed by a whole record on the same line: take the record.
        let parsed = parse(text).or_else(|e| {
            text.match_indices("{\"seq\":")
                .skip_while(|(at, _)| *at == 0)
                .find_map(|(at, _)| parse(&text[at..]).ok())
                .inspect(|_| contents.skipped.push(number))
                .ok_or(e)
        });
        match parsed {
            Ok((line, checked)) if line.seq > last_seq && (checked || !checked_seen) => {
                checked_seen |= checked;
                contents.unchecked += usize::from(!checked);
                last_seq = line.seq;
                contents.lines.push(line);
                contents.line_numbers.push(number);
                contents.needs_newline = unterminated;
            }
            // A repeat, a record from before, or an unchecked record after checked ones (this
            // release always writes the sum).
            _ => {
                if contents.skipped.last() != Some(&number) {
                    contents.skipped.push(number);
                }
                if unterminated {
                    contents.torn_tail = Some(start);
                }
            }
        }
    }
    contents
}

/// An open journal, appending.
pub struct Journal {
    file: File,
    path: PathBuf,
    seq: u64,
    /// The first write error: every later write is refused.
    broken: Option<String>,
    #[cfg(feature = "test-hooks")]
    crash_after: Option<u64>,
    #[cfg(feature = "test-hooks")]
    fail_at: Option<u64>,
    #[cfg(feature = "test-hooks")]
    attempts: u64,
}

/// For the crash tests only (the `test-hooks` feature, which no product build enables):
/// `BMC_ROTATE_TEST_CRASH_AFTER_RECORD=k` kills the process with SIGKILL right after record `k`
/// is durable, the harshest crash there is.
#[cfg(feature = "test-hooks")]
const CRASH_HOOK: &str = "BMC_ROTATE_TEST_CRASH_AFTER_RECORD";

/// For the tests only (`test-hooks`): `BMC_ROTATE_TEST_FAIL_WRITE_AT_RECORD=k` makes the `k`-th
/// write (record `k` of a new journal) reach the file only in part and fail as a full disk does;
/// later writes would succeed, so only the journal's own refusal keeps them out.
#[cfg(feature = "test-hooks")]
const FAIL_HOOK: &str = "BMC_ROTATE_TEST_FAIL_WRITE_AT_RECORD";

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
        let file = crate::platform::owner_only(OpenOptions::new().create_new(true).append(true))
            .open(path)
            .map_err(|e| format!("cannot create the journal {}: {e}", path.display()))?;
        crate::platform::make_private(&file)
            .map_err(|e| format!("cannot make the journal {} private: {e}", path.display()))?;
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            // Make the new directory entry durable too.
            let _ = File::open(dir).and_then(|d| d.sync_all());
        }
        Ok(Journal::with(file, path, 0))
    }

    /// Opens an existing journal to append to it (a resume), reading it first. Damage is
    /// skipped and reported; a torn last line is cut so the next record starts on its own line.
    pub fn append(path: &Path) -> Result<(Journal, Contents), String> {
        let contents = load(path)?;
        let file = OpenOptions::new()
            .append(true)
            .open(path)
            .map_err(|e| format!("cannot open the journal {}: {e}", path.display()))?;
        let repaired = match contents.torn_tail {
            Some(keep) => file.set_len(keep).and_then(|()| file.sync_data()),
            None if contents.needs_newline => (&file).write_all(b"\n").and_then(|()| file.sync_data()),
            None => Ok(()),
        };
        repaired.map_err(|e| format!("cannot repair the journal {}: {e}", path.display()))?;
        let seq = contents.lines.last().map_or(0, |l| l.seq);
        Ok((Journal::with(file, path, seq), contents))
    }

    fn with(file: File, path: &Path, seq: u64) -> Journal {
        Journal {
            file,
            path: path.to_owned(),
            seq,
            broken: None,
            #[cfg(feature = "test-hooks")]
            crash_after: std::env::var(CRASH_HOOK).ok().and_then(|v| v.parse().ok()),
            #[cfg(feature = "test-hooks")]
            fail_at: std::env::var(FAIL_HOOK).ok().and_then(|v| v.parse().ok()),
            #[cfg(feature = "test-hooks")]
            attempts: seq,
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

    /// The first write error, after which nothing more is written.
    pub fn broken(&self) -> Option<&str> {
        self.broken.as_deref()
    }

    /// Appends a record — one `write` of the whole line, then `fdatasync` — and makes it durable
    /// before returning. The first failure cuts what part of the line reached the file, and
    /// every later call is refused: the journal stays valid up to its last good record.
    pub fn write(&mut self, record: Record) -> Result<(), String> {
        if let Some(broken) = &self.broken {
            return Err(broken.clone());
        }
        let line = Line { seq: self.seq + 1, at_ms: now_ms(), record };
        let text = encode(&line);
        let before = self.file.metadata().map(|m| m.len());
        let written = self.write_once(text.as_bytes()).and_then(|()| self.file.sync_data());
        if let Err(e) = written {
            let mut message = format!("cannot write the journal {}: {e}", self.path.display());
            let cut = before.and_then(|len| self.file.set_len(len)).and_then(|()| self.file.sync_data());
            if let Err(cut) = cut {
                message.push_str(&format!(" (and cannot cut the partial record: {cut}; reading skips it)"));
            }
            self.broken = Some(message.clone());
            return Err(message);
        }
        self.seq = line.seq;
        #[cfg(feature = "test-hooks")]
        if self.crash_after == Some(self.seq) {
            crate::platform::die_now();
        }
        Ok(())
    }

    /// One `write(2)` of the whole line; a short write is an error.
    fn write_once(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        #[cfg(feature = "test-hooks")]
        {
            self.attempts += 1;
        }
        #[cfg(feature = "test-hooks")]
        if self.fail_at == Some(self.attempts) {
            self.file.write_all(&bytes[..bytes.len() / 2])?;
            return Err(std::io::Error::new(std::io::ErrorKind::StorageFull, "no space left on device"));
        }
        let n = loop {
            match self.file.write(bytes) {
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                other => break other?,
            }
        };
        if n != bytes.len() {
            return Err(std::io::Error::other(format!("short write: {n} of {} bytes", bytes.len())));
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
    let addresses: Vec<String> =
        inventory.bmcs.iter().map(|b| super::inventory::canonical_address(&b.endpoint)).collect();
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
        recovered: false,
        addresses: addresses.clone(),
        bmcs_sha256: Some(super::lock::address_digest(addresses)),
    })?;
    Ok(journal)
}

/// Reads a journal's records (damage skipped, with one warning). Refuses only a file others can
/// read or write (it names the fleet and its timing) or one that cannot be read at all.
pub fn read(path: &Path) -> Result<Vec<Line>, String> {
    read_all(path).map(|contents| contents.lines)
}

/// Reads a journal with what was skipped, warning once about any damage.
pub fn read_all(path: &Path) -> Result<Contents, String> {
    let contents = load(path)?;
    if let Some(summary) = contents.damage_summary() {
        tracing::warn!(journal = %path.display(), "{summary}; what each BMC holds is verified on resume");
    }
    if contents.lines.is_empty() {
        tracing::warn!(journal = %path.display(), "the journal holds no readable record");
    }
    Ok(contents)
}

/// Whether the journal records that a change may have been sent to a BMC (a `changing` record
/// is written before any change). `true` when the journal cannot be read.
pub fn any_change(path: &Path) -> bool {
    match load(path) {
        Ok(contents) => contents.lines.iter().any(|l| matches!(l.record, Record::Changing { .. })),
        Err(_) => path.exists(),
    }
}

/// The records, read once.
fn load(path: &Path) -> Result<Contents, String> {
    let file = crate::files::open_bounded(path, "the journal", crate::files::MAX_JOURNAL).map_err(|e| e.to_string())?;
    let exposure =
        file.exposure().map_err(|e| format!("the journal {}: cannot read its permissions: {e}", path.display()))?;
    if let Some(exposure) = exposure {
        return Err(format!(
            "the journal {} is {exposure}; run `{}`",
            path.display(),
            crate::platform::privatize_command(path)
        ));
    }
    let bytes = file.read().map_err(|e| e.to_string())?;
    Ok(parse_all(&bytes))
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
            recovered: false,
            addresses: Vec::new(),
            bmcs_sha256: None,
        }
    }

    #[test]
    fn records_are_durable_private_and_read_back_in_order() {
        let path = scratch("order");
        let mut journal = Journal::create(&path).unwrap();
        journal.write(started()).unwrap();
        journal.write(Record::Changing { bmc: "node01".into(), to: Which::New }).unwrap();
        let file = File::open(&path).unwrap();
        assert_eq!(crate::platform::exposure(&file, &file.metadata().unwrap()).unwrap(), None, "the user's alone");
        assert!(Journal::create(&path).is_err(), "never overwritten");
        let (mut again, contents) = Journal::append(&path).unwrap();
        assert_eq!(contents.lines.len(), 2);
        assert_eq!(contents.unchecked, 0, "every record carries its sum");
        assert_eq!(contents.lines[1].record, Record::Changing { bmc: "node01".into(), to: Which::New });
        again.write(Record::Resumed).unwrap();
        assert_eq!(read(&path).unwrap().last().unwrap().seq, 3);
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.lines().all(|l| l.contains(",\"sum\":\"")), "{text}");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
            assert!(read(&path).unwrap_err().contains("chmod 600"), "a readable journal is still refused");
        }
    }

    /// A journal of `n` good records (the start and `changing` ones), as text lines.
    fn good(n: u64) -> Vec<String> {
        (1..=n)
            .map(|seq| {
                let record = if seq == 1 {
                    started()
                } else {
                    Record::Changing { bmc: format!("node{seq:02}"), to: Which::New }
                };
                encode(&Line { seq, at_ms: 1, record }).trim_end().to_owned()
            })
            .collect()
    }

    fn seqs(contents: &Contents) -> Vec<u64> {
        contents.lines.iter().map(|l| l.seq).collect()
    }

    fn joined(lines: &[String]) -> Vec<u8> {
        let mut text = lines.join("\n");
        text.push('\n');
        text.into_bytes()
    }

    #[test]
    fn a_record_failing_its_checksum_is_skipped_and_reported() {
        let mut lines = good(5);
        // One flipped byte inside a value that still parses: only the sum finds it.
        lines[2] = lines[2].replacen("node03", "nodf03", 1);
        let contents = parse_all(&joined(&lines));
        assert_eq!(seqs(&contents), [1, 2, 4, 5]);
        assert_eq!(contents.skipped, [3]);
        let summary = contents.damage_summary().unwrap();
        assert!(summary.contains("skipped 1 damaged line(s) (line 3)"), "{summary}");
        // A flipped byte in the sum itself, and in a key.
        let mut lines = good(4);
        let last = lines[1].len() - 3;
        let flipped = if &lines[1][last..last + 1] == "0" { "1" } else { "0" };
        lines[1].replace_range(last..last + 1, flipped);
        lines[3] = lines[3].replacen("\"bmc\"", "\"bmx\"", 1);
        let contents = parse_all(&joined(&lines));
        assert_eq!(seqs(&contents), [1, 3]);
        assert_eq!(contents.skipped, [2, 4]);
        // Bytes that are not UTF-8.
        let mut bytes = joined(&good(3));
        let at = bytes.iter().position(|&b| b == b'\n').unwrap() + 5;
        bytes[at] = 0xff;
        let contents = parse_all(&bytes);
        assert_eq!((seqs(&contents), contents.skipped.clone()), (vec![1, 3], vec![2]));
    }

    #[test]
    fn a_torn_record_in_the_middle_is_skipped_and_the_record_after_it_kept() {
        // The testers' journal: `{"seq":34,…,"event"{"seq":38,…}` — part of a record, then a
        // whole one on the same line.
        let mut lines = good(6);
        let torn = lines[3][..lines[3].len() / 2].to_owned();
        lines[3] = format!("{torn}{}", lines[5]);
        lines.truncate(5);
        let contents = parse_all(&joined(&lines));
        assert_eq!(seqs(&contents), [1, 2, 3, 6], "record 4 torn, 5 comes after 6 and is out of order");
        assert_eq!(contents.skipped, [4, 5]);
        // A torn part alone on its line.
        let mut lines = good(4);
        lines[1].truncate(20);
        let contents = parse_all(&joined(&lines));
        assert_eq!((seqs(&contents), contents.skipped.clone()), (vec![1, 3, 4], vec![2]));
    }

    #[test]
    fn a_torn_last_line_is_skipped_and_cut_before_the_next_record() {
        let path = scratch("torn");
        let mut journal = Journal::create(&path).unwrap();
        journal.write(started()).unwrap();
        drop(journal);
        let mut file = OpenOptions::new().append(true).open(&path).unwrap();
        file.write_all(b"{\"seq\":2,\"at_ms\":1,\"event\":\"chang").unwrap();
        let contents = read_all(&path).unwrap();
        assert_eq!((contents.lines.len(), contents.skipped.clone()), (1, vec![2]));
        drop(file);
        let (mut repaired, contents) = Journal::append(&path).unwrap();
        assert_eq!(contents.lines.len(), 1);
        repaired.write(Record::Resumed).unwrap();
        let contents = read_all(&path).unwrap();
        assert_eq!((contents.lines.len(), contents.skipped.len()), (2, 0), "the torn record was cut");
        // A whole last record without its newline is kept, and the next starts on its own line.
        drop(repaired);
        let mut file = OpenOptions::new().append(true).open(&path).unwrap();
        let whole = encode(&Line { seq: 3, at_ms: 1, record: Record::PreflightPassed });
        file.write_all(whole.trim_end().as_bytes()).unwrap();
        let (mut again, contents) = Journal::append(&path).unwrap();
        assert_eq!(seqs(&contents), [1, 2, 3]);
        again.write(Record::Resumed).unwrap();
        assert_eq!(seqs(&read_all(&path).unwrap()), [1, 2, 3, 4]);
    }

    #[test]
    fn byte_order_marks_and_an_empty_file_are_not_refusals() {
        let mut bytes = "\u{feff}".as_bytes().to_vec();
        bytes.extend(joined(&good(3)));
        let contents = parse_all(&bytes);
        assert_eq!(seqs(&contents), [1, 2, 3]);
        assert_eq!(contents.boms, 1);
        assert!(contents.damage_summary().unwrap().contains("byte-order mark"));
        let contents = parse_all(b"");
        assert!(contents.lines.is_empty() && !contents.damaged());
        let path = scratch("empty");
        let journal = Journal::create(&path).unwrap();
        drop(journal);
        assert!(read_all(&path).unwrap().lines.is_empty(), "an empty journal reads as no records");
        let (mut journal, _) = Journal::append(&path).unwrap();
        journal.write(Record::Resumed).unwrap();
        assert_eq!(seqs(&read_all(&path).unwrap()), [1]);
    }

    #[test]
    fn duplicated_and_appended_records_are_skipped() {
        let lines = good(4);
        // A record written twice, and the whole journal appended to itself.
        let mut twice = lines.clone();
        twice.insert(2, lines[1].clone());
        twice.extend(lines.iter().cloned());
        let contents = parse_all(&joined(&twice));
        assert_eq!(seqs(&contents), [1, 2, 3, 4]);
        assert_eq!(contents.skipped, [3, 6, 7, 8, 9]);
        // A gap (records lost) is not damage by itself.
        let gap = [lines[0].clone(), lines[3].clone()];
        let contents = parse_all(&joined(&gap));
        assert_eq!((seqs(&contents), contents.damaged()), (vec![1, 4], false));
    }

    #[test]
    fn journals_of_the_previous_release_read_unchecked() {
        // The previous release wrote the canonical JSON of each line, without a sum.
        let old: Vec<String> = (1..=3)
            .map(|seq| {
                let record = if seq == 1 { started() } else { Record::PreflightPassed };
                serde_json::to_string(&Line { seq, at_ms: 1, record }).unwrap()
            })
            .collect();
        let contents = parse_all(&joined(&old));
        assert_eq!((seqs(&contents), contents.unchecked, contents.damaged()), (vec![1, 2, 3], 3, false));
        // Resumed by this release: old lines, then checked ones.
        let mut mixed = old.clone();
        mixed.push(encode(&Line { seq: 4, at_ms: 1, record: Record::Resumed }).trim_end().to_owned());
        let contents = parse_all(&joined(&mixed));
        assert_eq!((seqs(&contents), contents.unchecked), (vec![1, 2, 3, 4], 3));
        // An unchecked record after a checked one, or one not in canonical form, is damage.
        let mut late = mixed.clone();
        late.push(serde_json::to_string(&Line { seq: 5, at_ms: 1, record: Record::Resumed }).unwrap());
        late.push(old[1].replacen("\"seq\":2", "\"seq\": 6", 1));
        let contents = parse_all(&joined(&late));
        assert_eq!((seqs(&contents), contents.skipped.clone()), (vec![1, 2, 3, 4], vec![5, 6]));
    }

    #[test]
    fn the_first_failed_write_cuts_its_part_and_refuses_every_later_record() {
        let path = scratch("broken");
        let mut journal = Journal::create(&path).unwrap();
        journal.write(started()).unwrap();
        let good_len = std::fs::metadata(&path).unwrap().len();
        // A descriptor that cannot write, as a full disk would fail every write.
        let mut broken = Journal::with(File::open(&path).unwrap(), &path, journal.len());
        let error = broken.write(Record::PreflightPassed).unwrap_err();
        assert!(error.contains("cannot write the journal"), "{error}");
        assert_eq!(broken.broken(), Some(error.as_str()));
        assert_eq!(broken.write(Record::Resumed).unwrap_err(), error, "refused without touching the file");
        assert_eq!(std::fs::metadata(&path).unwrap().len(), good_len);
        assert_eq!(seqs(&read_all(&path).unwrap()), [1]);
        // The journal that did write keeps its sequence.
        journal.write(Record::PreflightPassed).unwrap();
        assert_eq!(seqs(&read_all(&path).unwrap()), [1, 2]);
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

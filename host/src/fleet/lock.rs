//! The stamp lock: one `rotate`, `resume` or `pep set-credential` per stamp at a time. Two runs
//! on one stamp would each log in with a password the other just changed — failed logins, a
//! locked-out account, two journals that each believe they know what the BMCs hold.
//!
//! The lock is `flock(LOCK_EX | LOCK_NB)` on `<state>/locks/<stamp>.lock`, held for the whole
//! command. The kernel drops it when the process dies however it dies, so a lock is never stale:
//! a file whose flock is free is simply taken (with a note when a crashed holder left its record
//! in it). While held, the file records who holds it — pid, command, start time, journal, and a
//! digest of the inventory's BMC address set — so a refused second command can say who to wait
//! for. A holder that ends normally empties the file before it lets go.
//!
//! The lock is per user (it lives in the user's state directory) and per stamp name: it keeps one
//! operator from starting two runs on a stamp, not two operators on two accounts.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::fmt;
use std::fs::File;
use std::io::{self, Read as _, Seek as _, Write as _};
use std::path::{Path, PathBuf};

/// The most of a lock file read back (a record is a few hundred bytes).
const MAX_RECORD: u64 = 16 * 1024;

/// Who holds (or held) a stamp's lock: what its lock file records.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Holder {
    /// The holding process.
    pub pid: u32,
    /// `rotate`, `resume` or `pep set-credential`.
    pub command: String,
    /// The stamp.
    pub stamp: String,
    /// When it took the lock, Unix milliseconds.
    pub since_ms: u64,
    /// Its journal (lossy UTF-8: for people to read), if it writes one.
    pub journal: Option<String>,
    /// SHA-256 of the inventory's BMC addresses (see [`address_digest`]).
    pub bmcs_sha256: String,
}

impl Holder {
    /// A record for this process, now.
    pub fn me(command: &str, stamp: &str, journal: Option<&Path>, bmcs_sha256: String) -> Holder {
        Holder {
            pid: std::process::id(),
            command: command.into(),
            stamp: stamp.into(),
            since_ms: super::journal::now_ms(),
            journal: journal.map(|j| j.to_string_lossy().into_owned()),
            bmcs_sha256,
        }
    }

    /// `rotated by pid 4242 since 2026-11-29 10:41:07 UTC (journal /x.jsonl)`.
    pub fn describe(&self) -> String {
        let verb = match self.command.as_str() {
            "rotate" => "rotated",
            "resume" => "resumed",
            _ => "given a new credential through the PEP",
        };
        let mut text = format!("{verb} by pid {} since {}", self.pid, utc(self.since_ms));
        if let Some(journal) = &self.journal {
            text.push_str(&format!(" (journal {})", printable(journal)));
        }
        text
    }
}

/// Why the lock was not taken.
#[derive(Debug)]
pub enum LockError {
    /// Another process holds it. `holder` is `None` when its record cannot be read (it is being
    /// written, or the file is damaged).
    Held {
        /// The stamp.
        stamp: String,
        /// The lock file.
        path: PathBuf,
        /// What the lock file says.
        holder: Option<Box<Holder>>,
        /// Whether the holder's inventory lists other BMC addresses than ours.
        other_bmcs: bool,
    },
    /// The stamp's name cannot name a file (`..`, `/`, a newline): refused before any path is built.
    BadStamp(String),
    /// The lock directory or file could not be created, opened or locked.
    Io(String),
}

impl fmt::Display for LockError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LockError::Held { stamp, path, holder: Some(holder), other_bmcs } => {
                write!(f, "stamp {stamp} is being {}", holder.describe())?;
                if *other_bmcs {
                    write!(f, "; its inventory lists another set of BMC addresses")?;
                }
                write!(f, " (lock {})", path.display())
            }
            LockError::Held { stamp, path, holder: None, .. } => {
                write!(f, "stamp {stamp} is locked by another bmc-rotate process (lock {})", path.display())
            }
            LockError::BadStamp(e) | LockError::Io(e) => f.write_str(e),
        }
    }
}

impl std::error::Error for LockError {}

/// A held stamp lock; dropping it empties the record and releases the lock.
#[derive(Debug)]
pub struct StampLock {
    file: File,
    path: PathBuf,
    /// The record a holder that did not end normally left behind (a crash, a kill): the lock was
    /// free, so that process no longer holds it.
    pub taken_over: Option<Holder>,
}

impl StampLock {
    /// Takes `<dir>/<stamp>.lock` for `me`, without waiting: refused at once if another open file
    /// description — another process, or another open of the file in this one — holds it.
    pub fn acquire(dir: &Path, me: &Holder) -> Result<StampLock, LockError> {
        super::inventory::check_stamp_name(&me.stamp).map_err(|e| LockError::BadStamp(format!("stamp: {e}")))?;
        crate::platform::create_private_dir(dir)
            .map_err(|e| LockError::Io(format!("cannot create the lock directory {}: {e}", dir.display())))?;
        let path = dir.join(format!("{}.lock", me.stamp));
        let io =
            |what: &str, e: io::Error| LockError::Io(format!("cannot {what} the stamp lock {}: {e}", path.display()));
        let mut options = std::fs::OpenOptions::new();
        options.read(true).write(true).create(true).truncate(false);
        crate::platform::owner_only(crate::platform::not_following(&mut options));
        let mut file = options.open(&path).map_err(|e| io("open", e))?;
        let meta = file.metadata().map_err(|e| io("inspect", e))?;
        if !meta.file_type().is_file() {
            return Err(LockError::Io(format!("the stamp lock {} is not a regular file", path.display())));
        }
        match crate::platform::try_lock(&file) {
            Ok(true) => {}
            Ok(false) => {
                let holder = read_record(&mut file).map(Box::new);
                let other_bmcs = holder.as_ref().is_some_and(|h| h.bmcs_sha256 != me.bmcs_sha256);
                return Err(LockError::Held { stamp: me.stamp.clone(), path, holder, other_bmcs });
            }
            Err(e) => return Err(io("lock", e)),
        }
        crate::platform::make_private(&file).map_err(|e| io("make private", e))?;
        let taken_over = read_record(&mut file);
        let mut record = serde_json::to_string(me).map_err(|e| LockError::Io(e.to_string()))?;
        record.push('\n');
        file.set_len(0)
            .and_then(|()| file.rewind())
            .and_then(|()| file.write_all(record.as_bytes()))
            .map_err(|e| io("write", e))?;
        Ok(StampLock { file, path, taken_over })
    }

    /// The lock file.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for StampLock {
    fn drop(&mut self) {
        // Still holding the lock: an empty file says the last holder ended normally. Closing the
        // file (when `self.file` drops) releases the lock.
        let _ = self.file.set_len(0);
    }
}

/// What the last holder of `stamp`'s lock in `dir` left in it: a record when it did not end
/// normally (a crash, a kill) or still runs, `None` after a normal end. Takes no lock.
pub fn left_behind(dir: &Path, stamp: &str) -> Option<Holder> {
    super::inventory::check_stamp_name(stamp).ok()?;
    let mut options = std::fs::OpenOptions::new();
    let mut file = crate::platform::not_following(options.read(true)).open(dir.join(format!("{stamp}.lock"))).ok()?;
    if !file.metadata().ok()?.file_type().is_file() {
        return None;
    }
    read_record(&mut file).filter(|holder| holder.stamp == stamp)
}

/// The record in a lock file, if it holds a readable one.
fn read_record(file: &mut File) -> Option<Holder> {
    let mut text = String::new();
    file.rewind().ok()?;
    file.take(MAX_RECORD).read_to_string(&mut text).ok()?;
    serde_json::from_str(text.trim()).ok()
}

/// SHA-256 (hex) of a set of BMC addresses, order and repeats ignored: two inventories of one
/// stamp that list the same BMCs have the same digest.
pub fn address_digest<I: IntoIterator<Item = String>>(addresses: I) -> String {
    let mut list: Vec<String> = addresses.into_iter().collect();
    list.sort();
    list.dedup();
    let mut hash = Sha256::new();
    for address in &list {
        hash.update(address.as_bytes());
        hash.update(b"\n");
    }
    hex::encode(hash.finalize())
}

/// `2026-11-29 10:41:07 UTC` from Unix milliseconds.
fn utc(ms: u64) -> String {
    let secs = ms / 1000;
    let (days, rest) = ((secs / 86_400) as i64, secs % 86_400);
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!("{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02} UTC", rest / 3600, rest / 60 % 60, rest % 60)
}

/// Text from a lock file, with control characters escaped (it is printed on a terminal).
pub fn printable(text: &str) -> String {
    text.chars().map(|c| if c.is_control() { c.escape_default().to_string() } else { c.to_string() }).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dir(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("bmc-rotate-lock-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        dir
    }

    fn me(command: &str) -> Holder {
        Holder::me(command, "contoso-east", Some(Path::new("/state/j.jsonl")), address_digest(["a:443".to_owned()]))
    }

    #[test]
    fn a_second_lock_is_refused_with_who_holds_it() {
        let dir = dir("second");
        let first = StampLock::acquire(&dir, &me("rotate")).unwrap();
        assert!(first.taken_over.is_none());
        // Another open file description, as another process would have: refused at once.
        let err = StampLock::acquire(&dir, &me("resume")).unwrap_err();
        let text = err.to_string();
        assert!(
            text.starts_with(&format!("stamp contoso-east is being rotated by pid {} since ", std::process::id())),
            "{text}"
        );
        assert!(text.contains("UTC (journal /state/j.jsonl)") && !text.contains("another set"), "{text}");
        assert!(matches!(err, LockError::Held { holder: Some(ref h), .. } if h.command == "rotate"));
        // Another inventory of the stamp, with other BMCs: said too.
        let other = Holder { bmcs_sha256: address_digest(["b:443".to_owned()]), ..me("rotate") };
        assert!(StampLock::acquire(&dir, &other).unwrap_err().to_string().contains("another set of BMC addresses"));
        let file = File::open(first.path()).unwrap();
        let exposure = crate::platform::exposure(&file, &file.metadata().unwrap()).unwrap();
        assert_eq!(exposure, None, "the lock file is the user's alone");
    }

    #[test]
    fn dropping_the_lock_releases_it_and_leaves_no_record() {
        let dir = dir("drop");
        let first = StampLock::acquire(&dir, &me("rotate")).unwrap();
        let path = first.path().to_owned();
        drop(first);
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "", "a normal end empties the record");
        let second = StampLock::acquire(&dir, &me("resume")).unwrap();
        assert!(second.taken_over.is_none(), "nothing to take over after a normal end");
    }

    #[test]
    fn a_lock_whose_holder_is_gone_is_taken_over_with_its_record() {
        let dir = dir("takeover");
        let first = StampLock::acquire(&dir, &me("rotate")).unwrap();
        // A holder that dies: the kernel closes its descriptor (and drops the flock) without the
        // tidy-up `Drop` does.
        close_without_drop(first);
        let second = StampLock::acquire(&dir, &me("resume")).unwrap();
        let old = second.taken_over.clone().expect("the dead holder's record");
        assert_eq!((old.command.as_str(), old.pid), ("rotate", std::process::id()));
        let third = StampLock::acquire(&dir, &me("rotate")).unwrap_err();
        assert!(third.to_string().contains("is being resumed by pid"), "{third}");
    }

    /// Closes the lock's descriptor the way process death does, skipping `Drop`.
    fn close_without_drop(lock: StampLock) {
        let lock = std::mem::ManuallyDrop::new(lock);
        // SAFETY: the file is moved out once, here, and closed; `lock` is never dropped or used again.
        drop(unsafe { std::ptr::read(&lock.file) });
    }

    #[test]
    fn stamp_names_that_are_not_file_names_are_refused_before_any_path_is_built() {
        let dir = dir("names");
        for bad in ["../etc", "a/b", "..", ".", "", "a\nb", &"x".repeat(65)] {
            let holder = Holder { stamp: bad.to_owned(), ..me("rotate") };
            assert!(matches!(StampLock::acquire(&dir, &holder), Err(LockError::BadStamp(_))), "{bad:?}");
        }
        assert!(!dir.exists() || std::fs::read_dir(&dir).unwrap().next().is_none());
    }

    #[test]
    fn the_digest_ignores_order_and_repeats() {
        let a = address_digest(["b:443".to_owned(), "a:443".to_owned(), "a:443".to_owned()]);
        assert_eq!(a, address_digest(["a:443".to_owned(), "b:443".to_owned()]));
        assert_ne!(a, address_digest(["a:443".to_owned()]));
    }

    #[test]
    fn a_record_with_control_characters_is_printed_escaped() {
        let dir = dir("escape");
        let holder = Holder { journal: Some("/j\x1b[2J\n.jsonl".into()), ..me("rotate") };
        let _held = StampLock::acquire(&dir, &holder).unwrap();
        let text = StampLock::acquire(&dir, &me("rotate")).unwrap_err().to_string();
        assert!(text.contains("(journal /j\\u{1b}[2J\\n.jsonl)") && !text.contains('\x1b'), "{text}");
    }

    #[test]
    fn times_are_printed_in_utc() {
        assert_eq!(utc(0), "1970-01-01 00:00:00 UTC");
        assert_eq!(utc(1_709_210_467_000), "2024-02-29 12:41:07 UTC");
    }
}

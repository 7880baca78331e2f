//! Bounded reads of the files the tool is given: inventories, hardware profiles, CA files,
//! secret files, journals and plugins. Every read goes through [`open_bounded`], which
//!
//! - refuses a path that is not a regular file (a FIFO, a device such as `/dev/zero`, a
//!   directory, a socket) — first by `stat` so a device is never even opened, then again by
//!   `fstat` of the opened descriptor, which is what counts;
//! - opens with `O_NONBLOCK` (opening a FIFO that appeared after the `stat` returns at once
//!   instead of waiting for a writer; regular files ignore the flag), `O_NOCTTY` and `O_CLOEXEC`;
//! - refuses a file larger than the cap for its kind, named by the caller, and reads at most
//!   one byte more than the cap, so a file that grows while being read (or a `/proc` file that
//!   reports size 0) is refused instead of exhausting memory.
//!
//! Errors name the path, what was expected and what was found, e.g.
//! `inventory.toml: not a regular file (a FIFO); the inventory must be a regular file` or
//! `inventory.toml: 25 MiB; the inventory is at most 4 MiB`.

use std::fmt;
use std::fs::{File, Metadata};
use std::io::{self, Read};
use std::path::{Path, PathBuf};
use zeroize::Zeroizing;

const KIB: u64 = 1 << 10;
const MIB: u64 = 1 << 20;

/// An inventory: a few hundred bytes per BMC, so 4 MiB holds tens of thousands of BMCs.
pub const MAX_INVENTORY: u64 = 4 * MIB;
/// A hardware profile: a handful of TOML keys.
pub const MAX_PROFILE: u64 = MIB;
/// A CA file given as `tls = "ca-file:PATH"`: room for a whole system bundle (about 200 KiB).
pub const MAX_CA_FILE: u64 = 4 * MIB;
/// A secret file (`file:PATH`): one password on its first line.
pub const MAX_SECRET_FILE: u64 = 64 * KIB;
/// A run journal read by `resume` and `status`. A run writes a few hundred bytes per BMC per
/// step, a few MiB for thousands of BMCs with resumes; 256 MiB is far beyond any real run and
/// still a bounded allocation.
pub const MAX_JOURNAL: u64 = 256 * MIB;
/// A plugin `.wasm` component (the stock plugins are well under 1 MiB).
pub const MAX_PLUGIN: u64 = 64 * MIB;

/// Why a file was not read.
#[derive(Debug)]
pub struct FileError {
    /// The file.
    pub path: PathBuf,
    /// What it should have been, e.g. "the inventory".
    pub what: String,
    /// What went wrong.
    pub problem: Problem,
}

/// What went wrong reading a file.
#[derive(Debug)]
pub enum Problem {
    /// It could not be inspected, opened or read (missing, no permission, I/O error).
    Io(io::Error),
    /// It is not a regular file; `found` says what it is ("a FIFO", "a directory", ...).
    NotRegular {
        /// What the path turned out to be.
        found: &'static str,
    },
    /// It is larger than the cap.
    TooLarge {
        /// Its size, from `fstat`.
        size: u64,
        /// The cap.
        max: u64,
    },
    /// More than the cap arrived while reading: it grew, or reported a smaller size than it has.
    Grew {
        /// The cap.
        max: u64,
    },
    /// It was expected to be text and is not UTF-8.
    NotUtf8 {
        /// The offset of the first byte that is not UTF-8.
        at: usize,
    },
}

impl FileError {
    /// The message without the path (for callers that print the path themselves).
    pub fn reason(&self) -> String {
        let what = &self.what;
        match &self.problem {
            Problem::Io(e) => format!("cannot read {what}: {e}"),
            Problem::NotRegular { found } => format!("not a regular file ({found}); {what} must be a regular file"),
            Problem::TooLarge { size, max } => format!("{}; {what} is at most {}", size_text(*size), size_text(*max)),
            Problem::Grew { max } => {
                format!("more than {} arrived while reading it; {what} is at most {}", size_text(*max), size_text(*max))
            }
            Problem::NotUtf8 { at } => format!("not UTF-8 text (byte {at}); {what} must be UTF-8 text"),
        }
    }
}

impl fmt::Display for FileError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.path.display(), self.reason())
    }
}

impl std::error::Error for FileError {}

/// `4 MiB`, `25.3 MiB`, `12 KiB`, `1001 bytes`.
fn size_text(n: u64) -> String {
    for (unit, name) in [(MIB, "MiB"), (KIB, "KiB")] {
        if n >= unit {
            return if n.is_multiple_of(unit) {
                format!("{} {name}", n / unit)
            } else {
                format!("{:.1} {name} ({n} bytes)", n as f64 / unit as f64)
            };
        }
    }
    format!("{n} bytes")
}

/// What a file type is, for messages.
fn describe(kind: std::fs::FileType) -> &'static str {
    if kind.is_dir() {
        "a directory"
    } else if let Some(special) = crate::platform::special_kind(kind) {
        special
    } else if kind.is_symlink() {
        "a symbolic link"
    } else {
        "an unknown kind of file"
    }
}

/// An opened regular file of at most `max` bytes (by `fstat`), not yet read.
#[derive(Debug)]
pub struct Bounded {
    file: File,
    meta: Metadata,
    path: PathBuf,
    what: String,
    max: u64,
}

/// Opens `path`, expected to be `what` (e.g. "the inventory"), refusing anything but a regular
/// file of at most `max` bytes. Check [`Bounded::metadata`] (the opened descriptor's) for
/// ownership or mode, then read it.
pub fn open_bounded(path: &Path, what: &str, max: u64) -> Result<Bounded, FileError> {
    let error = |problem| FileError { path: path.to_owned(), what: what.to_owned(), problem };
    // Refuse a device or FIFO before opening it: opening some devices has effects.
    let before = std::fs::metadata(path).map_err(|e| error(Problem::Io(e)))?;
    if !before.is_file() {
        return Err(error(Problem::NotRegular { found: describe(before.file_type()) }));
    }
    let file = crate::platform::for_reading(std::fs::OpenOptions::new().read(true))
        .open(path)
        .map_err(|e| error(Problem::Io(e)))?;
    checked(file, path, what, max)
}

/// The checks that count: `fstat` of the opened descriptor (the path may have been replaced
/// since the `stat`).
fn checked(file: File, path: &Path, what: &str, max: u64) -> Result<Bounded, FileError> {
    let error = |problem| FileError { path: path.to_owned(), what: what.to_owned(), problem };
    let meta = file.metadata().map_err(|e| error(Problem::Io(e)))?;
    if !meta.is_file() {
        return Err(error(Problem::NotRegular { found: describe(meta.file_type()) }));
    }
    if meta.len() > max {
        return Err(error(Problem::TooLarge { size: meta.len(), max }));
    }
    Ok(Bounded { file, meta, path: path.to_owned(), what: what.to_owned(), max })
}

impl Bounded {
    /// The opened descriptor's metadata.
    pub fn metadata(&self) -> &Metadata {
        &self.meta
    }

    /// How the opened file is open to others, if it is (`readable by group or others (mode
    /// 644)`, `open to Everyone (its access control list)`): see [`crate::platform::exposure`].
    pub fn exposure(&self) -> io::Result<Option<String>> {
        crate::platform::exposure(&self.file, &self.meta)
    }

    fn error(&self, problem: Problem) -> FileError {
        FileError { path: self.path.clone(), what: self.what.clone(), problem }
    }

    /// Reads the whole file: at most `max` bytes, else an error.
    pub fn read(mut self) -> Result<Vec<u8>, FileError> {
        let mut bytes = Vec::with_capacity(self.meta.len().min(self.max) as usize + 1);
        (&mut self.file).take(self.max + 1).read_to_end(&mut bytes).map_err(|e| self.error(Problem::Io(e)))?;
        if bytes.len() as u64 > self.max {
            return Err(self.error(Problem::Grew { max: self.max }));
        }
        Ok(bytes)
    }

    /// Reads the whole file as UTF-8 text.
    pub fn read_string(self) -> Result<String, FileError> {
        let (path, what) = (self.path.clone(), self.what.clone());
        let bytes = self.read()?;
        String::from_utf8(bytes).map_err(|e| FileError {
            path,
            what,
            problem: Problem::NotUtf8 { at: e.utf8_error().valid_up_to() },
        })
    }

    /// Reads the whole file into one buffer allocated once (`max` + 1 bytes, so keep `max`
    /// small) and zeroed when dropped: no reallocation leaves a copy of a secret behind.
    pub fn read_secret(mut self) -> Result<Zeroizing<Vec<u8>>, FileError> {
        let mut buffer = Zeroizing::new(vec![0u8; self.max as usize + 1]);
        let mut len = 0;
        loop {
            match self.file.read(&mut buffer[len..]) {
                Ok(0) => break,
                Ok(n) => {
                    len += n;
                    if len == buffer.len() {
                        return Err(self.error(Problem::Grew { max: self.max }));
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(self.error(Problem::Io(e))),
            }
        }
        buffer.truncate(len);
        Ok(buffer)
    }
}

/// Reads `path`, expected to be `what` (e.g. "the plugin"): a regular file of at most `max`
/// bytes.
pub fn read_bounded(path: &Path, what: &str, max: u64) -> Result<Vec<u8>, FileError> {
    open_bounded(path, what, max)?.read()
}

/// [`read_bounded`], as UTF-8 text.
pub fn read_bounded_string(path: &Path, what: &str, max: u64) -> Result<String, FileError> {
    open_bounded(path, what, max)?.read_string()
}

/// For tests: makes a FIFO at `path`.
#[cfg(all(test, unix))]
pub(crate) fn mkfifo(path: &Path) {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(path.as_os_str().as_bytes()).unwrap();
    // SAFETY: a valid NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0, "mkfifo {}", path.display());
}

#[cfg(test)]
mod tests {
    use super::*;
    #[cfg(unix)]
    use std::time::{Duration, Instant};

    fn scratch(tag: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("bmc-rotate-files-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn a_regular_file_within_the_cap_is_read() {
        let dir = scratch("ok");
        let path = dir.join("a.toml");
        std::fs::write(&path, "stamp = \"x\"\n").unwrap();
        assert_eq!(read_bounded_string(&path, "the inventory", 12).unwrap(), "stamp = \"x\"\n");
        assert_eq!(read_bounded(&path, "the inventory", 1000).unwrap(), b"stamp = \"x\"\n");
        assert_eq!(&open_bounded(&path, "x", 12).unwrap().read_secret().unwrap()[..], b"stamp = \"x\"\n");
        std::fs::write(&path, "").unwrap();
        assert_eq!(read_bounded(&path, "the inventory", 0).unwrap(), b"");
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn a_file_over_the_cap_is_refused_with_its_size() {
        let dir = scratch("big");
        let path = dir.join("inventory.toml");
        std::fs::write(&path, vec![b'#'; 1001]).unwrap();
        let err = read_bounded(&path, "the inventory", 1000).unwrap_err();
        assert!(matches!(err.problem, Problem::TooLarge { size: 1001, max: 1000 }), "{err:?}");
        assert_eq!(err.to_string(), format!("{}: 1001 bytes; the inventory is at most 1000 bytes", path.display()));
        let err = open_bounded(&path, "the secret file", 1000).unwrap_err();
        assert!(err.to_string().contains("1001 bytes; the secret file is at most 1000 bytes"), "{err}");
        // Sizes read as people write them.
        let file = File::create(&path).unwrap();
        file.set_len(25 * MIB).unwrap();
        drop(file); // Windows deletes no open file.
        let err = read_bounded(&path, "the inventory", MAX_INVENTORY).unwrap_err();
        assert!(err.to_string().ends_with("inventory.toml: 25 MiB; the inventory is at most 4 MiB"), "{err}");
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    #[cfg(unix)] // FIFOs and devices are Unix's
    fn a_fifo_is_refused_at_once() {
        let dir = scratch("fifo");
        let path = dir.join("inventory.toml");
        mkfifo(&path);
        let started = Instant::now();
        let err = read_bounded_string(&path, "the inventory", MAX_INVENTORY).unwrap_err();
        assert!(started.elapsed() < Duration::from_secs(5), "no hang waiting for a writer");
        assert_eq!(
            err.to_string(),
            format!("{}: not a regular file (a FIFO); the inventory must be a regular file", path.display())
        );
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    #[cfg(unix)] // FIFOs and devices are Unix's
    fn the_opened_descriptor_is_what_is_checked() {
        // A FIFO that replaced the file between the `stat` and the `open`: opened without
        // blocking, refused by `fstat`.
        let dir = scratch("race");
        let path = dir.join("ca.pem");
        mkfifo(&path);
        let started = Instant::now();
        let file = crate::platform::for_reading(std::fs::OpenOptions::new().read(true)).open(&path).unwrap();
        let err = checked(file, &path, "the CA file", MAX_CA_FILE).unwrap_err();
        assert!(started.elapsed() < Duration::from_secs(5));
        assert!(matches!(err.problem, Problem::NotRegular { found: "a FIFO" }), "{err:?}");
        let file = File::open("/dev/zero").unwrap();
        let err = checked(file, Path::new("/dev/zero"), "the CA file", MAX_CA_FILE).unwrap_err();
        assert!(matches!(err.problem, Problem::NotRegular { found: "a character device" }), "{err:?}");
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    #[cfg(unix)] // FIFOs and devices are Unix's
    fn devices_and_directories_are_not_regular_files() {
        for (path, found) in [("/dev/zero", "a character device"), ("/dev/urandom", "a character device")] {
            let err = read_bounded(Path::new(path), "the CA file", MAX_CA_FILE).unwrap_err();
            assert_eq!(
                err.to_string(),
                format!("{path}: not a regular file ({found}); the CA file must be a regular file")
            );
        }
        let dir = scratch("dir");
        let err = read_bounded(&dir, "the plugin", MAX_PLUGIN).unwrap_err();
        assert!(err.to_string().contains("not a regular file (a directory); the plugin must be"), "{err}");
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn a_file_with_more_than_its_size_says_is_cut_at_the_cap() {
        // `/proc` files report size 0 and hold more: the read stops one byte past the cap.
        let err = read_bounded(Path::new("/proc/self/maps"), "the journal", 16).unwrap_err();
        assert!(matches!(err.problem, Problem::Grew { max: 16 }), "{err:?}");
        assert!(err.to_string().contains("more than 16 bytes arrived while reading it"), "{err}");
        let err = open_bounded(Path::new("/proc/self/maps"), "the secret file", 16).unwrap().read_secret().unwrap_err();
        assert!(matches!(err.problem, Problem::Grew { max: 16 }), "{err:?}");
        // Within the cap it is read.
        assert!(!read_bounded(Path::new("/proc/self/maps"), "x", MIB).unwrap().is_empty());
    }

    #[test]
    fn a_missing_file_is_named() {
        let err = read_bounded(Path::new("/nonexistent/inv.toml"), "the inventory", MAX_INVENTORY).unwrap_err();
        assert!(matches!(&err.problem, Problem::Io(e) if e.kind() == io::ErrorKind::NotFound), "{err:?}");
        assert!(err.to_string().starts_with("/nonexistent/inv.toml: cannot read the inventory: "), "{err}");
    }

    #[test]
    fn text_must_be_utf8() {
        let dir = scratch("utf8");
        let path = dir.join("p.toml");
        std::fs::write(&path, b"ab\xffcd").unwrap();
        let err = read_bounded_string(&path, "the hardware profile", MAX_PROFILE).unwrap_err();
        assert!(err.to_string().contains("not UTF-8 text (byte 2)"), "{err}");
        std::fs::remove_dir_all(dir).unwrap();
    }
}

/// Each kind of file the tool reads goes through [`open_bounded`]: a FIFO, a device or an
/// oversized file is refused at the call site with the helper's message. (Unix: FIFOs and devices.)
#[cfg(all(test, unix))]
mod call_sites {
    use super::*;
    use std::os::unix::fs::PermissionsExt;
    use std::time::{Duration, Instant};

    fn scratch(tag: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("bmc-rotate-call-sites-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    /// A sparse file of `len` bytes, mode 0600.
    fn sparse(path: &Path, len: u64) {
        let file = File::create(path).unwrap();
        file.set_len(len).unwrap();
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).unwrap();
    }

    #[test]
    fn inventory() {
        use crate::fleet::inventory::Inventory;
        let dir = scratch("inventory");
        let fifo = dir.join("inventory.toml");
        mkfifo(&fifo);
        let started = Instant::now();
        let err = Inventory::load(&fifo).unwrap_err().to_string();
        assert!(started.elapsed() < Duration::from_secs(5));
        assert_eq!(
            err,
            format!("{}: not a regular file (a FIFO); the inventory must be a regular file", fifo.display())
        );
        let err = Inventory::load(Path::new("/dev/zero")).unwrap_err().to_string();
        assert!(err.contains("/dev/zero: not a regular file (a character device)"), "{err}");
        let big = dir.join("big.toml");
        sparse(&big, MAX_INVENTORY + 1);
        let err = Inventory::load(&big).unwrap_err().to_string();
        assert!(err.ends_with("big.toml: 4.0 MiB (4194305 bytes); the inventory is at most 4 MiB"), "{err}");
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn hardware_profiles() {
        // A profile directory holding a FIFO named x.toml is refused (not skipped): like a
        // profile that does not parse, nothing is half-loaded.
        use crate::fleet::profiles::Profiles;
        let dir = scratch("profiles");
        mkfifo(&dir.join("x.toml"));
        let started = Instant::now();
        let err = Profiles::load(Some(&dir)).unwrap_err();
        assert!(started.elapsed() < Duration::from_secs(5));
        assert!(
            err.ends_with("x.toml: not a regular file (a FIFO); the hardware profile must be a regular file"),
            "{err}"
        );
        std::fs::remove_file(dir.join("x.toml")).unwrap();
        sparse(&dir.join("y.toml"), MAX_PROFILE + 1);
        let err = Profiles::load(Some(&dir)).unwrap_err();
        assert!(err.contains("y.toml: 1.0 MiB (1048577 bytes); the hardware profile is at most 1 MiB"), "{err}");
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn ca_files() {
        use crate::gateway::{TlsPolicy, client_config};
        let policy: TlsPolicy = "ca-file:/dev/zero".parse().unwrap();
        let err = client_config(&policy).unwrap_err();
        assert_eq!(err, "/dev/zero: not a regular file (a character device); the CA file must be a regular file");
        let dir = scratch("ca");
        let fifo = dir.join("ca.pem");
        mkfifo(&fifo);
        let err = client_config(&TlsPolicy::CaFile(fifo)).unwrap_err();
        assert!(err.contains("ca.pem: not a regular file (a FIFO)"), "{err}");
        let big = dir.join("big.pem");
        sparse(&big, MAX_CA_FILE + 1);
        let err = client_config(&TlsPolicy::CaFile(big)).unwrap_err();
        assert!(err.contains("the CA file is at most 4 MiB"), "{err}");
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn secret_files() {
        use crate::secrets::{SecretReader, SecretSource};
        let dir = scratch("secret");
        let fifo = dir.join("pw");
        mkfifo(&fifo);
        let mut reader = SecretReader::default();
        let started = Instant::now();
        let err = reader.read(&SecretSource::File(fifo), "the new BMC password").unwrap_err();
        assert!(started.elapsed() < Duration::from_secs(5));
        assert!(err.starts_with("the new BMC password: "), "{err}");
        assert!(err.contains("pw: not a regular file (a FIFO); the secret file must be a regular file"), "{err}");
        assert!(err.contains("use `stdin`"), "{err}");
        let err = reader.read(&SecretSource::File("/dev/urandom".into()), "the new BMC password").unwrap_err();
        assert!(err.contains("/dev/urandom: not a regular file (a character device)"), "{err}");
        let big = dir.join("big");
        std::fs::write(&big, format!("Big-Pw-1\n{}", "x".repeat(MAX_SECRET_FILE as usize))).unwrap();
        std::fs::set_permissions(&big, std::fs::Permissions::from_mode(0o600)).unwrap();
        let err = reader.read(&SecretSource::File(big), "the new BMC password").unwrap_err();
        assert!(err.contains("; the secret file is at most 64 KiB"), "{err}");
        assert!(!err.contains("Big-Pw-1"), "never echoes the content: {err}");
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn journals() {
        use crate::fleet::journal;
        let dir = scratch("journal");
        let fifo = dir.join("run.jsonl");
        mkfifo(&fifo);
        let started = Instant::now();
        let err = journal::read(&fifo).unwrap_err();
        assert!(started.elapsed() < Duration::from_secs(5));
        assert!(err.ends_with("run.jsonl: not a regular file (a FIFO); the journal must be a regular file"), "{err}");
        let err = journal::Journal::append(&fifo).err().unwrap();
        assert!(err.contains("not a regular file (a FIFO)"), "{err}");
        let big = dir.join("big.jsonl");
        sparse(&big, MAX_JOURNAL + 1);
        let err = journal::read(&big).unwrap_err();
        assert!(err.contains("256.0 MiB (268435457 bytes); the journal is at most 256 MiB"), "{err}");
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[tokio::test]
    async fn plugins() {
        use crate::runtime::{LoadError, Runtime, RuntimeConfig};
        let runtime = Runtime::new(RuntimeConfig { cache_dir: None, ..RuntimeConfig::default() }).unwrap();
        let dir = scratch("plugins");
        let fifo = dir.join("x.wasm");
        mkfifo(&fifo);
        let started = Instant::now();
        let err = runtime.load_file(&fifo).await.err().unwrap();
        assert!(started.elapsed() < Duration::from_secs(5));
        assert!(matches!(err, LoadError::Read { .. }), "{err}");
        assert!(
            err.to_string().ends_with("x.wasm: not a regular file (a FIFO); the plugin must be a regular file"),
            "{err}"
        );
        // A directory listing reports it on its own line, next to the others.
        let loaded = runtime.load_dir(&dir).await.unwrap();
        assert_eq!(loaded.len(), 1);
        assert!(loaded[0].1.as_ref().err().unwrap().to_string().contains("not a regular file (a FIFO)"));
        let big = dir.join("big.wasm");
        sparse(&big, MAX_PLUGIN + 1);
        let err = runtime.load_file(&big).await.err().unwrap();
        assert!(err.to_string().contains("the plugin is at most 64 MiB"), "{err}");
        std::fs::remove_dir_all(dir).unwrap();
    }
}

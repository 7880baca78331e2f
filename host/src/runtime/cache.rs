//! A persistent cache of compiled plugins, so a plugin is compiled once per host build rather
//! than once per run.
//!
//! Entries are native code: `Component::deserialize` trusts its input, so a planted entry would
//! run with the operator's rights, whatever the plugin's SHA-256 pin says. What stands between a
//! file on disk and `deserialize`:
//!
//! 1. **A verified directory, held open.** The cache directory is reached from `/` one component
//!    at a time with `openat(O_DIRECTORY | O_NOFOLLOW)`, each component checked with `fstat` on
//!    the descriptor just opened (see [`open_private_dir`] for the exact rule): every ancestor is
//!    owned by this user or root and not writable by group or others unless sticky (`/tmp`); the
//!    cache directory itself is owned by this user and not writable by group or others, and is
//!    never a symbolic link. A symbolic link on the way (not the last component) is followed only
//!    if it lies in an already-verified directory and belongs to this user or root, and its
//!    target is walked with the same rule. Every later file operation is relative to that
//!    descriptor (`openat`, `renameat`, `linkat`, `unlinkat`), so swapping a path component
//!    after the check changes nothing.
//! 2. **Each entry opened without following links** (`O_NOFOLLOW`, `O_NONBLOCK` so a FIFO cannot
//!    stall the load), checked on its descriptor (a regular file of this user, not writable by
//!    group or others, of sane size) and read from it into memory; `deserialize` gets those bytes,
//!    never a path.
//! 3. **A MAC before deserialize.** Each entry is `MAGIC ‖ tag ‖ artifact`, where `tag` is
//!    HMAC-SHA256 over (a domain string, the plugin's SHA-256, the engine key, the artifact's
//!    length, the artifact) under a random 32-byte per-user key kept in `cache.key` (mode 0600,
//!    created once with `O_CREAT | O_EXCL | O_NOFOLLOW`) inside the verified directory. The engine
//!    key is a SHA-256 of the host's version and wasmtime's precompile compatibility hash. An entry
//!    whose tag does not verify (planted, copied from another user or plugin, truncated, left by an
//!    older host) is never deserialized.
//!
//! Any failed check: a warning naming the path and the reason, the entry is removed (from the
//! verified directory only), the plugin is recompiled and the fresh artifact replaces it
//! atomically (`O_EXCL` temporary file, `fsync`, `renameat`). A cache directory that fails its
//! check is not used at all (compile every time).
//!
//! Residual risk: anything running as this user (or root) can read the key and write the
//! directory, so it can forge an entry; it could as well replace the `bmc-rotate` binary or the
//! operator's shell profile, so the cache adds no new way in for it.

use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};
use std::collections::VecDeque;
use std::ffi::{CStr, CString, OsStr, OsString};
use std::fs::{File, Metadata};
use std::hash::{Hash, Hasher};
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::os::unix::fs::MetadataExt;
use std::path::{Component as PathComponent, Path, PathBuf};
use std::sync::Arc;
use wasmtime::Engine;
use wasmtime::component::Component;
use zeroize::Zeroizing;

/// The first bytes of every entry (format version 1).
const MAGIC: &[u8; 8] = b"BMCRCW\x00\x01";
/// HMAC-SHA256 output.
const TAG_LEN: usize = 32;
const HEADER_LEN: usize = MAGIC.len() + TAG_LEN;
/// Larger artifacts are neither stored nor read (compiled plugins are well under 10 MiB).
const MAX_ARTIFACT: u64 = 256 << 20;
/// The per-user MAC key, inside the cache directory.
const KEY_FILE: &str = "cache.key";
const KEY_LEN: usize = 32;
/// Bound on symbolic links followed while walking to the directory (Linux's own limit).
const MAX_SYMLINKS: usize = 40;
/// `S_ISVTX`, as `MetadataExt::mode` reports it on every Unix.
const STICKY: u32 = 0o1000;
const DOMAIN: &[u8] = b"bmc-rotate compiled-plugin cache v1\0";

type HmacSha256 = Hmac<Sha256>;

/// The MAC key; never printed.
struct Key(Zeroizing<[u8; KEY_LEN]>);

impl std::fmt::Debug for Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Key(..)")
    }
}

/// An on-disk cache of precompiled components.
#[derive(Clone, Debug)]
pub struct ArtifactCache {
    dir: PathBuf,
    /// The verified cache directory, held open: every file operation is relative to it.
    handle: Arc<File>,
    key: Arc<Key>,
    engine_key: [u8; 32],
    euid: u32,
}

impl ArtifactCache {
    /// Opens (creating missing components with mode 0700) a cache directory and its MAC key,
    /// refusing a directory that anyone but this user (or root, for ancestors) could change.
    pub fn open(dir: &Path, engine: &Engine) -> Result<ArtifactCache, String> {
        let euid = euid();
        let refused = |reason: String| {
            format!(
                "compiled-plugin cache {} not used: {reason}. Compiled plugins are native code, so the cache must \
                 be private to this user; plugins are compiled on every run instead",
                dir.display()
            )
        };
        let handle = open_private_dir(dir, euid).map_err(refused)?;
        let key = load_or_create_key(&handle, dir, euid).map_err(refused)?;
        let mut hasher = ShaHasher(Sha256::new());
        hasher.0.update(b"bmc-rotate engine\0");
        hasher.0.update(env!("CARGO_PKG_VERSION").as_bytes());
        hasher.0.update(b"\0");
        engine.precompile_compatibility_hash().hash(&mut hasher);
        let engine_key: [u8; 32] = hasher.0.finalize().into();
        Ok(ArtifactCache { dir: dir.to_owned(), handle: Arc::new(handle), key: Arc::new(key), engine_key, euid })
    }

    /// The cache directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// An entry's file name: the plugin's digest and a short form of the engine key, so hosts
    /// and engine configurations do not evict each other.
    fn file_name(&self, sha256: &str) -> String {
        format!("{sha256}-{}.cwasm", hex::encode(&self.engine_key[..8]))
    }

    fn tag(&self, digest: &[u8; 32], artifact: &[u8]) -> HmacSha256 {
        let mut mac = HmacSha256::new_from_slice(&self.key.0[..]).expect("HMAC takes any key length");
        mac.update(DOMAIN);
        mac.update(digest);
        mac.update(&self.engine_key);
        mac.update(&(artifact.len() as u64).to_le_bytes());
        mac.update(artifact);
        mac
    }

    /// The entry for `sha256`, read from the verified directory, with its tag checked: `Ok(None)`
    /// if there is none; `Err` with the reason if there is one that must not be used. On `Ok`,
    /// the artifact starts at [`HEADER_LEN`].
    fn read_verified(&self, sha256: &str) -> Result<Option<Vec<u8>>, Refusal> {
        check_cache_dir(&self.handle.metadata().map_err(|e| Refusal::Dir(e.to_string()))?, self.euid)
            .map_err(Refusal::Dir)?;
        let digest = parse_digest(sha256).ok_or_else(|| Refusal::Entry("not a SHA-256 digest".into()))?;
        let name = c_name(self.file_name(sha256)).map_err(|e| Refusal::Entry(e.to_string()))?;
        let flags = libc::O_RDONLY | libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_CLOEXEC;
        let file = match openat(self.handle.as_fd(), &name, flags, 0) {
            Ok(fd) => File::from(fd),
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) if is_symlink_error(&e) => return Err(Refusal::Entry("it is a symbolic link".into())),
            Err(e) => return Err(Refusal::Entry(format!("cannot open it: {e}"))),
        };
        let meta = file.metadata().map_err(|e| Refusal::Entry(e.to_string()))?;
        if !meta.is_file() {
            return Err(Refusal::Entry("it is not a regular file".into()));
        }
        if meta.uid() != self.euid {
            return Err(Refusal::Entry(format!(
                "it belongs to uid {}, not to this user (uid {})",
                meta.uid(),
                self.euid
            )));
        }
        if meta.mode() & 0o022 != 0 {
            return Err(Refusal::Entry(format!("it is writable by group or others (mode {:o})", meta.mode() & 0o7777)));
        }
        if meta.len() < HEADER_LEN as u64 || meta.len() > MAX_ARTIFACT + HEADER_LEN as u64 {
            return Err(Refusal::Entry(format!("its size ({} bytes) is out of range", meta.len())));
        }
        let mut bytes = Vec::with_capacity(meta.len() as usize);
        file.take(MAX_ARTIFACT + HEADER_LEN as u64)
            .read_to_end(&mut bytes)
            .map_err(|e| Refusal::Entry(format!("cannot read it: {e}")))?;
        if bytes.len() < HEADER_LEN || bytes[..MAGIC.len()] != MAGIC[..] {
            return Err(Refusal::Entry("it is not a bmc-rotate cache entry (no MAC header)".into()));
        }
        let (tag, artifact) = bytes[MAGIC.len()..].split_at(TAG_LEN);
        if self.tag(&digest, artifact).verify_slice(tag).is_err() {
            return Err(Refusal::Entry(
                "its MAC does not match this user's cache key, the plugin's SHA-256 and this engine \
                 (planted, copied, or written by another host build)"
                    .into(),
            ));
        }
        Ok(Some(bytes))
    }

    /// The compiled component for the plugin with this SHA-256 (lowercase hex), if a verified
    /// entry exists. A refused entry is logged, removed and reported as a miss.
    pub fn load(&self, engine: &Engine, sha256: &str) -> Option<Component> {
        let name = self.file_name(sha256);
        let path = self.dir.join(&name);
        let bytes = match self.read_verified(sha256) {
            Ok(bytes) => bytes?,
            Err(Refusal::Dir(reason)) => {
                tracing::warn!(dir = %self.dir.display(), %reason, "compiled-plugin cache no longer private; not used");
                return None;
            }
            Err(Refusal::Entry(reason)) => {
                tracing::warn!(path = %path.display(), %reason, "refused a compiled-plugin cache entry; recompiling");
                self.remove(&name);
                return None;
            }
        };
        // SAFETY: `deserialize` runs native code from its input. These bytes were read from a
        // descriptor opened without following links, in a directory verified (and held open) to
        // be changeable only by this user or root, and carry an HMAC under this user's key over
        // the plugin's SHA-256, this engine's configuration and the bytes themselves: only `store`
        // (or something already running as this user) can have written them.
        match unsafe { Component::deserialize(engine, &bytes[HEADER_LEN..]) } {
            Ok(component) => Some(component),
            Err(e) => {
                tracing::warn!(path = %path.display(), reason = %e, "unusable compiled-plugin cache entry; recompiling");
                self.remove(&name);
                None
            }
        }
    }

    /// Removes an entry (or whatever sits under its name) from the verified directory.
    fn remove(&self, name: &str) {
        if let Ok(name) = c_name(name) {
            let _ = unlinkat(self.handle.as_fd(), &name);
        }
    }

    /// Stores a compiled component, replacing any entry atomically; failures only cost a
    /// recompile next time.
    pub fn store(&self, sha256: &str, component: &Component) {
        if let Err(e) = self.try_store(sha256, component) {
            tracing::warn!(dir = %self.dir.display(), error = %e, "could not cache a compiled plugin");
        }
    }

    fn try_store(&self, sha256: &str, component: &Component) -> Result<(), String> {
        check_cache_dir(&self.handle.metadata().map_err(|e| e.to_string())?, self.euid)?;
        let digest = parse_digest(sha256).ok_or("not a SHA-256 digest")?;
        let artifact = component.serialize().map_err(|e| e.to_string())?;
        if artifact.len() as u64 > MAX_ARTIFACT {
            return Err(format!("the artifact is {} bytes, over the cache's limit", artifact.len()));
        }
        let tag = self.tag(&digest, &artifact).finalize().into_bytes();
        let name = self.file_name(sha256);
        let (tmp, mut file) = create_temporary(&self.handle, &name)?;
        let written = (|| {
            file.write_all(MAGIC)?;
            file.write_all(&tag)?;
            file.write_all(&artifact)?;
            file.sync_all()?;
            renameat(self.handle.as_fd(), &tmp, &c_name(&name)?)
        })();
        if let Err(e) = written {
            let _ = unlinkat(self.handle.as_fd(), &tmp);
            return Err(e.to_string());
        }
        Ok(())
    }
}

/// Why an entry was not used.
enum Refusal {
    /// The directory itself no longer passes its check: leave it alone.
    Dir(String),
    /// This entry is bad: remove it and recompile.
    Entry(String),
}

/// Feeds wasmtime's `Hash`-only compatibility value into SHA-256 (`DefaultHasher` would keep only
/// 64 bits and is not stable across Rust releases).
struct ShaHasher(Sha256);

impl Hasher for ShaHasher {
    fn finish(&self) -> u64 {
        let digest = self.0.clone().finalize();
        u64::from_le_bytes(digest[..8].try_into().expect("8 bytes"))
    }

    fn write(&mut self, bytes: &[u8]) {
        self.0.update(bytes);
    }
}

fn euid() -> u32 {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() }
}

fn parse_digest(sha256: &str) -> Option<[u8; 32]> {
    if sha256.len() != 64 || !sha256.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)) {
        return None;
    }
    hex::decode(sha256).ok()?.try_into().ok()
}

fn c_name(name: impl AsRef<OsStr>) -> io::Result<CString> {
    CString::new(name.as_ref().as_bytes()).map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "NUL in a name"))
}

/// `O_NOFOLLOW` on a symbolic link fails with `ELOOP` (Linux, macOS) or `EMLINK` (FreeBSD).
fn is_symlink_error(e: &io::Error) -> bool {
    matches!(e.raw_os_error(), Some(libc::ELOOP) | Some(libc::EMLINK))
}

/// How directories are opened: for `openat` and `fstat` only. `O_PATH` on Linux so that a
/// search-only (`--x`) ancestor can be walked through.
#[cfg(any(target_os = "linux", target_os = "android"))]
const DIR_FLAGS: libc::c_int = libc::O_PATH | libc::O_DIRECTORY | libc::O_NOFOLLOW | libc::O_CLOEXEC;
#[cfg(not(any(target_os = "linux", target_os = "android")))]
const DIR_FLAGS: libc::c_int = libc::O_RDONLY | libc::O_DIRECTORY | libc::O_NOFOLLOW | libc::O_CLOEXEC;

fn cvt(result: libc::c_int) -> io::Result<libc::c_int> {
    if result < 0 { Err(io::Error::last_os_error()) } else { Ok(result) }
}

fn openat(dir: BorrowedFd<'_>, name: &CStr, flags: libc::c_int, mode: libc::c_uint) -> io::Result<OwnedFd> {
    // SAFETY: `dir` is an open descriptor and `name` a NUL-terminated string, both borrowed for
    // the call; `mode` is passed as the (promoted) variadic argument openat reads with O_CREAT.
    let fd = cvt(unsafe { libc::openat(dir.as_raw_fd(), name.as_ptr(), flags, mode) })?;
    // SAFETY: openat just returned this descriptor; nothing else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

fn mkdirat(dir: BorrowedFd<'_>, name: &CStr, mode: libc::mode_t) -> io::Result<()> {
    // SAFETY: `dir` is an open descriptor and `name` a NUL-terminated string, borrowed for the call.
    cvt(unsafe { libc::mkdirat(dir.as_raw_fd(), name.as_ptr(), mode) }).map(drop)
}

fn unlinkat(dir: BorrowedFd<'_>, name: &CStr) -> io::Result<()> {
    // SAFETY: `dir` is an open descriptor and `name` a NUL-terminated string, borrowed for the call.
    cvt(unsafe { libc::unlinkat(dir.as_raw_fd(), name.as_ptr(), 0) }).map(drop)
}

fn renameat(dir: BorrowedFd<'_>, from: &CStr, to: &CStr) -> io::Result<()> {
    // SAFETY: `dir` is an open descriptor and both names NUL-terminated strings, borrowed for the call.
    cvt(unsafe { libc::renameat(dir.as_raw_fd(), from.as_ptr(), dir.as_raw_fd(), to.as_ptr()) }).map(drop)
}

/// Links `from` to `to` in `dir`; fails with `AlreadyExists` rather than replacing `to`.
fn linkat(dir: BorrowedFd<'_>, from: &CStr, to: &CStr) -> io::Result<()> {
    // SAFETY: `dir` is an open descriptor and both names NUL-terminated strings, borrowed for the
    // call; flags 0 does not follow a link at `from`.
    cvt(unsafe { libc::linkat(dir.as_raw_fd(), from.as_ptr(), dir.as_raw_fd(), to.as_ptr(), 0) }).map(drop)
}

/// What `fstatat(AT_SYMLINK_NOFOLLOW)` says about a name that could not be opened as a directory.
struct Entry {
    symlink: bool,
    uid: u32,
}

fn lstatat(dir: BorrowedFd<'_>, name: &CStr) -> io::Result<Entry> {
    let mut stat = std::mem::MaybeUninit::<libc::stat>::uninit();
    // SAFETY: `dir` is an open descriptor, `name` a NUL-terminated string and `stat` writable
    // memory of the right type, all valid for the call.
    cvt(unsafe { libc::fstatat(dir.as_raw_fd(), name.as_ptr(), stat.as_mut_ptr(), libc::AT_SYMLINK_NOFOLLOW) })?;
    // SAFETY: fstatat succeeded, so it filled `stat`.
    let stat = unsafe { stat.assume_init() };
    Ok(Entry { symlink: stat.st_mode & libc::S_IFMT == libc::S_IFLNK, uid: stat.st_uid })
}

fn readlinkat(dir: BorrowedFd<'_>, name: &CStr) -> io::Result<OsString> {
    let mut buf = vec![0u8; libc::PATH_MAX as usize + 1];
    // SAFETY: `dir` is an open descriptor, `name` a NUL-terminated string and `buf` writable for
    // `buf.len()` bytes, all valid for the call.
    let n = unsafe { libc::readlinkat(dir.as_raw_fd(), name.as_ptr(), buf.as_mut_ptr().cast(), buf.len()) };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    let n = n as usize;
    if n >= buf.len() {
        return Err(io::Error::new(io::ErrorKind::InvalidData, "symbolic link target too long"));
    }
    buf.truncate(n);
    Ok(OsString::from_vec(buf))
}

/// A fresh `.NAME.tmp.RANDOM` file (mode 0600, `O_EXCL | O_NOFOLLOW`) in `dir`.
fn create_temporary(dir: &File, name: &str) -> Result<(CString, File), String> {
    let mut suffix = [0u8; 8];
    getrandom::fill(&mut suffix).map_err(|e| format!("the system's random source failed: {e}"))?;
    let tmp = c_name(format!(".{name}.tmp.{}", hex::encode(suffix))).map_err(|e| e.to_string())?;
    let flags = libc::O_WRONLY | libc::O_CREAT | libc::O_EXCL | libc::O_NOFOLLOW | libc::O_CLOEXEC;
    let fd = openat(dir.as_fd(), &tmp, flags, 0o600).map_err(|e| format!("cannot create a temporary file: {e}"))?;
    Ok((tmp, File::from(fd)))
}

/// The rule for a directory on the way to the cache: owned by this user or root, and not
/// writable by group or others unless the sticky bit is set (then only an entry's owner, the
/// directory's owner or root can rename or remove an entry, and the next component is checked
/// for its own owner).
fn check_ancestor(meta: &Metadata, path: &Path, euid: u32) -> Result<(), String> {
    if !meta.is_dir() {
        return Err(format!("{} is not a directory", path.display()));
    }
    if meta.uid() != euid && meta.uid() != 0 {
        return Err(format!(
            "{} belongs to uid {}, neither this user (uid {euid}) nor root, and its owner could replace what is under it",
            path.display(),
            meta.uid()
        ));
    }
    if meta.mode() & 0o022 != 0 && meta.mode() & STICKY == 0 {
        return Err(format!(
            "{} is writable by group or others (mode {:o}) without the sticky bit, so they could replace what is under it",
            path.display(),
            meta.mode() & 0o7777
        ));
    }
    Ok(())
}

/// The rule for the cache directory itself: a directory owned by this user, not writable by
/// group or others (sticky or not).
fn check_cache_dir(meta: &Metadata, euid: u32) -> Result<(), String> {
    if !meta.is_dir() {
        return Err("it is not a directory".into());
    }
    if meta.uid() != euid {
        return Err(format!("it belongs to uid {}, not to this user (uid {euid})", meta.uid()));
    }
    if meta.mode() & 0o022 != 0 {
        return Err(format!("it is writable by group or others (mode {:o})", meta.mode() & 0o7777));
    }
    Ok(())
}

fn open_root() -> io::Result<File> {
    let fd = openat(
        // SAFETY: AT_FDCWD is a valid "descriptor" for openat; it is only borrowed for the call
        // and the path is absolute anyway.
        unsafe { BorrowedFd::borrow_raw(libc::AT_FDCWD) },
        c"/",
        DIR_FLAGS,
        0,
    )?;
    Ok(File::from(fd))
}

/// Walks to `path` from `/` without following a link anywhere the link could be changed by
/// someone else, creating missing directories (mode 0700), and returns the cache directory open.
///
/// Each component is opened with `openat(parent, name, O_DIRECTORY | O_NOFOLLOW)` relative to
/// the descriptor of its verified parent and checked with `fstat` on the new descriptor: `/` and
/// every ancestor with [`check_ancestor`], the last component with [`check_cache_dir`]. A
/// component that is a symbolic link is refused if it is the last one; otherwise it is followed
/// only if it belongs to this user or root (its directory has already passed), and its target's
/// components are walked by the same rule, from `/` for an absolute target. `..` is opened like
/// any name and checked like any ancestor. A relative `path` starts from the current directory as
/// the kernel reports it (absolute, without links).
fn open_private_dir(path: &Path, euid: u32) -> Result<File, String> {
    let absolute = if path.is_absolute() {
        path.to_owned()
    } else {
        std::env::current_dir().map_err(|e| format!("cannot resolve a relative path: {e}"))?.join(path)
    };
    let mut pending: VecDeque<OsString> = components(&absolute).collect();
    let root = open_root().map_err(|e| format!("cannot open /: {e}"))?;
    let mut walked = PathBuf::from("/");
    let root_meta = root.metadata().map_err(|e| format!("cannot stat /: {e}"))?;
    if pending.is_empty() {
        check_cache_dir(&root_meta, euid).map_err(|e| format!("/: {e}"))?;
        return Ok(root);
    }
    check_ancestor(&root_meta, &walked, euid)?;
    let mut dir = root;
    let (mut links, mut created) = (0, 0);
    while let Some(name) = pending.pop_front() {
        let last = pending.is_empty();
        let c = c_name(&name).map_err(|e| format!("{}: {e}", absolute.display()))?;
        let here = walked.join(&name);
        match openat(dir.as_fd(), &c, DIR_FLAGS, 0) {
            Ok(fd) => {
                let next = File::from(fd);
                let meta = next.metadata().map_err(|e| format!("cannot stat {}: {e}", here.display()))?;
                if last {
                    check_cache_dir(&meta, euid).map_err(|e| format!("{}: {e}", here.display()))?;
                } else {
                    check_ancestor(&meta, &here, euid)?;
                }
                dir = next;
                walked = here;
            }
            Err(open_error) => match lstatat(dir.as_fd(), &c) {
                Err(e) if e.kind() == io::ErrorKind::NotFound && created < 64 => {
                    created += 1;
                    match mkdirat(dir.as_fd(), &c, 0o700) {
                        Ok(()) => {}
                        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
                        Err(e) => return Err(format!("cannot create {}: {e}", here.display())),
                    }
                    pending.push_front(name);
                }
                Ok(entry) if entry.symlink => {
                    if last {
                        return Err(format!("{} is a symbolic link", here.display()));
                    }
                    if entry.uid != euid && entry.uid != 0 {
                        return Err(format!(
                            "{} is a symbolic link belonging to uid {}, neither this user (uid {euid}) nor root",
                            here.display(),
                            entry.uid
                        ));
                    }
                    links += 1;
                    if links > MAX_SYMLINKS {
                        return Err(format!("too many symbolic links on the way to {}", absolute.display()));
                    }
                    let target = PathBuf::from(
                        readlinkat(dir.as_fd(), &c).map_err(|e| format!("cannot read link {}: {e}", here.display()))?,
                    );
                    for component in components(&target).collect::<Vec<_>>().into_iter().rev() {
                        pending.push_front(component);
                    }
                    if target.is_absolute() {
                        dir = open_root().map_err(|e| format!("cannot open /: {e}"))?;
                        walked = PathBuf::from("/");
                    }
                }
                _ => return Err(format!("cannot open {} as a directory: {open_error}", here.display())),
            },
        }
    }
    Ok(dir)
}

/// The names to walk, `..` included; `/` and `.` dropped.
fn components(path: &Path) -> impl Iterator<Item = OsString> + '_ {
    path.components().filter_map(|c| match c {
        PathComponent::Normal(name) => Some(name.to_owned()),
        PathComponent::ParentDir => Some(OsString::from("..")),
        PathComponent::RootDir | PathComponent::CurDir | PathComponent::Prefix(_) => None,
    })
}

/// Why a key file cannot be used.
enum KeyProblem {
    Missing,
    /// Present but unusable: replaced with a fresh key.
    Bad(String),
    /// Cannot be read at all: the cache is not used.
    Io(String),
}

fn read_key(dir: &File, euid: u32) -> Result<Key, KeyProblem> {
    let name = c_name(KEY_FILE).expect("no NUL");
    let flags = libc::O_RDONLY | libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_CLOEXEC;
    let mut file = match openat(dir.as_fd(), &name, flags, 0) {
        Ok(fd) => File::from(fd),
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Err(KeyProblem::Missing),
        Err(e) if is_symlink_error(&e) => return Err(KeyProblem::Bad("it is a symbolic link".into())),
        Err(e) => return Err(KeyProblem::Io(e.to_string())),
    };
    let meta = file.metadata().map_err(|e| KeyProblem::Io(e.to_string()))?;
    if !meta.is_file() {
        return Err(KeyProblem::Bad("it is not a regular file".into()));
    }
    if meta.uid() != euid {
        return Err(KeyProblem::Bad(format!("it belongs to uid {}, not to this user (uid {euid})", meta.uid())));
    }
    if meta.mode() & 0o077 != 0 {
        return Err(KeyProblem::Bad(format!("group or others may read or write it (mode {:o})", meta.mode() & 0o7777)));
    }
    if meta.len() != KEY_LEN as u64 {
        return Err(KeyProblem::Bad(format!("it is {} bytes, not {KEY_LEN}", meta.len())));
    }
    let mut key = Zeroizing::new([0u8; KEY_LEN]);
    file.read_exact(&mut key[..]).map_err(|e| KeyProblem::Io(e.to_string()))?;
    Ok(Key(key))
}

/// Writes a fresh random key to a temporary file, then links it in as `cache.key` (first
/// creation: never replaces a key another process just made) or renames it over (replacing a
/// bad key).
fn write_key(dir: &File, replace: bool) -> Result<(), String> {
    let mut key = Zeroizing::new([0u8; KEY_LEN]);
    getrandom::fill(&mut key[..]).map_err(|e| format!("the system's random source failed: {e}"))?;
    let (tmp, mut file) = create_temporary(dir, KEY_FILE)?;
    let name = c_name(KEY_FILE).expect("no NUL");
    let result = (|| {
        file.write_all(&key[..])?;
        file.sync_all()?;
        if replace {
            renameat(dir.as_fd(), &tmp, &name)
        } else {
            match linkat(dir.as_fd(), &tmp, &name) {
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(()),
                other => other,
            }
        }
    })();
    let _ = unlinkat(dir.as_fd(), &tmp);
    result.map_err(|e| format!("cannot write {KEY_FILE}: {e}"))
}

fn load_or_create_key(dir: &File, path: &Path, euid: u32) -> Result<Key, String> {
    for _ in 0..4 {
        match read_key(dir, euid) {
            Ok(key) => return Ok(key),
            Err(KeyProblem::Missing) => write_key(dir, false)?,
            Err(KeyProblem::Bad(reason)) => {
                tracing::warn!(
                    path = %path.join(KEY_FILE).display(),
                    %reason,
                    "replacing the compiled-plugin cache key; cached plugins will be recompiled"
                );
                write_key(dir, true)?;
            }
            Err(KeyProblem::Io(reason)) => return Err(format!("cannot read {KEY_FILE}: {reason}")),
        }
    }
    Err(format!("{KEY_FILE} keeps changing under us"))
}

#[cfg(test)]
mod tests {
    //! The checks on a real engine and a real (empty) component: what is refused is refused before
    //! `deserialize`, which would have accepted the planted bytes.

    use super::*;
    use std::os::unix::fs::{PermissionsExt, symlink};

    /// The binary encoding of `(component)`: the crate has no `wat` feature.
    const EMPTY_COMPONENT: &[u8] = b"\0asm\x0d\0\x01\0";
    const SHA_A: &str = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
    const SHA_B: &str = "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb";

    fn engine() -> Engine {
        let mut config = wasmtime::Config::new();
        config.wasm_component_model(true);
        Engine::new(&config).unwrap()
    }

    fn component(engine: &Engine) -> Component {
        Component::new(engine, EMPTY_COMPONENT).unwrap()
    }

    /// A fresh directory under the system's temporary directory (sticky `/tmp`), mode 0700.
    fn scratch(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("bmc-rotate-cache-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir(&dir).unwrap();
        chmod(&dir, 0o700);
        dir
    }

    fn chmod(path: &Path, mode: u32) {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
    }

    fn refusal(cache: &ArtifactCache, sha256: &str) -> String {
        match cache.read_verified(sha256) {
            Err(Refusal::Entry(reason)) | Err(Refusal::Dir(reason)) => reason,
            Ok(found) => panic!("accepted (found: {})", found.is_some()),
        }
    }

    /// What an attacker plants: wasmtime's own serialisation, which `deserialize` accepts.
    fn raw_artifact(engine: &Engine) -> Vec<u8> {
        let raw = component(engine).serialize().unwrap();
        // SAFETY: bytes this engine just produced; proves the plant would load if it got through.
        assert!(unsafe { Component::deserialize(engine, &raw) }.is_ok());
        raw
    }

    #[test]
    fn a_stored_entry_round_trips_and_is_bound_to_the_digest_and_the_key() {
        let engine = engine();
        let dir = scratch("roundtrip");
        let cache = ArtifactCache::open(&dir.join("wasm"), &engine).unwrap();
        assert!(cache.load(&engine, SHA_A).is_none(), "empty cache");
        cache.store(SHA_A, &component(&engine));
        assert!(cache.load(&engine, SHA_A).is_some(), "stored entry loads");

        let key = std::fs::metadata(dir.join("wasm").join(KEY_FILE)).unwrap();
        assert_eq!((key.len(), key.mode() & 0o777), (KEY_LEN as u64, 0o600));
        let again = ArtifactCache::open(&dir.join("wasm"), &engine).unwrap();
        assert!(again.load(&engine, SHA_A).is_some(), "the key persists across opens");

        // The same bytes under another plugin's digest.
        let entry = dir.join("wasm").join(cache.file_name(SHA_A));
        std::fs::copy(&entry, dir.join("wasm").join(cache.file_name(SHA_B))).unwrap();
        assert!(refusal(&cache, SHA_B).contains("MAC does not match"));
        assert!(cache.load(&engine, SHA_B).is_none());
        assert!(!dir.join("wasm").join(cache.file_name(SHA_B)).exists(), "refused entry removed");

        // Another user's (another key's) genuine entry.
        let other = ArtifactCache::open(&dir.join("other"), &engine).unwrap();
        std::fs::copy(&entry, dir.join("other").join(other.file_name(SHA_A))).unwrap();
        assert!(refusal(&other, SHA_A).contains("MAC does not match"));
        assert!(other.load(&engine, SHA_A).is_none());
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn a_planted_artifact_is_refused_before_deserialize() {
        let engine = engine();
        let dir = scratch("planted");
        let cache = ArtifactCache::open(&dir, &engine).unwrap();
        let raw = raw_artifact(&engine);
        let entry = dir.join(cache.file_name(SHA_A));

        std::fs::write(&entry, &raw).unwrap();
        assert!(refusal(&cache, SHA_A).contains("no MAC header"));
        assert!(cache.load(&engine, SHA_A).is_none());
        assert!(!entry.exists(), "refused entry removed");

        let mut forged = MAGIC.to_vec();
        forged.extend_from_slice(&[0u8; TAG_LEN]);
        forged.extend_from_slice(&raw);
        std::fs::write(&entry, &forged).unwrap();
        assert!(refusal(&cache, SHA_A).contains("MAC does not match"));
        assert!(cache.load(&engine, SHA_A).is_none());

        // A genuine entry with one artifact byte changed.
        cache.store(SHA_A, &component(&engine));
        let mut bytes = std::fs::read(&entry).unwrap();
        *bytes.last_mut().unwrap() ^= 1;
        std::fs::write(&entry, &bytes).unwrap();
        assert!(refusal(&cache, SHA_A).contains("MAC does not match"));

        // Not a regular file: a FIFO must not stall the load.
        std::fs::remove_file(&entry).unwrap();
        let fifo = c_name(&entry).unwrap();
        // SAFETY: a NUL-terminated path, valid for the call.
        assert_eq!(unsafe { libc::mkfifo(fifo.as_ptr(), 0o600) }, 0);
        assert!(refusal(&cache, SHA_A).contains("not a regular file"));
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn a_symlinked_entry_is_refused_and_its_target_left_alone() {
        let engine = engine();
        let dir = scratch("entry-link");
        let cache = ArtifactCache::open(&dir.join("wasm"), &engine).unwrap();
        cache.store(SHA_A, &component(&engine));
        let entry = dir.join("wasm").join(cache.file_name(SHA_A));
        // A genuine, correctly MACed entry elsewhere: only the link is wrong.
        let elsewhere = dir.join("elsewhere.cwasm");
        std::fs::rename(&entry, &elsewhere).unwrap();
        symlink(&elsewhere, &entry).unwrap();
        assert!(refusal(&cache, SHA_A).contains("symbolic link"));
        assert!(cache.load(&engine, SHA_A).is_none());
        assert!(std::fs::symlink_metadata(&entry).is_err(), "the link is removed");
        assert!(elsewhere.exists(), "its target is not touched");
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn a_symlinked_cache_directory_is_refused() {
        let engine = engine();
        let dir = scratch("dir-link");
        std::fs::create_dir(dir.join("real")).unwrap();
        chmod(&dir.join("real"), 0o700);
        symlink(dir.join("real"), dir.join("link")).unwrap();
        let error = ArtifactCache::open(&dir.join("link"), &engine).unwrap_err();
        assert!(error.contains("link is a symbolic link"), "{error}");
        // A link among the ancestors, in a directory only this user can change, is followed.
        let cache = ArtifactCache::open(&dir.join("link").join("wasm"), &engine).unwrap();
        cache.store(SHA_A, &component(&engine));
        assert!(dir.join("real").join("wasm").join(cache.file_name(SHA_A)).exists());
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn a_directory_others_can_write_is_refused() {
        let engine = engine();
        let dir = scratch("modes");
        for mode in [0o720, 0o702, 0o777] {
            chmod(&dir, 0o700);
            let cache = dir.join(format!("cache{mode:o}"));
            std::fs::create_dir(&cache).unwrap();
            chmod(&cache, mode);
            let error = ArtifactCache::open(&cache, &engine).unwrap_err();
            assert!(error.contains("writable by group or others"), "{mode:o}: {error}");
        }
        // An ancestor others can write, without the sticky bit: they could swap the cache.
        chmod(&dir, 0o777);
        let error = ArtifactCache::open(&dir.join("wasm"), &engine).unwrap_err();
        assert!(error.contains("without the sticky bit"), "{error}");
        // With it (like /tmp), only the entry's owner can rename it: accepted.
        chmod(&dir, 0o1777);
        ArtifactCache::open(&dir.join("wasm"), &engine).unwrap();
        // A cache directory made group-writable after opening is no longer used.
        let cache = ArtifactCache::open(&dir.join("wasm"), &engine).unwrap();
        cache.store(SHA_A, &component(&engine));
        chmod(&dir.join("wasm"), 0o770);
        assert!(matches!(cache.read_verified(SHA_A), Err(Refusal::Dir(_))));
        assert!(cache.load(&engine, SHA_A).is_none());
        chmod(&dir.join("wasm"), 0o700);
        assert!(cache.load(&engine, SHA_A).is_some(), "kept, not removed");
        std::fs::remove_dir_all(dir).unwrap();
    }

    /// Another user's directory or entry: needs root to set up (`chown`), which the CI and the
    /// development containers run as; as an ordinary user only the message is left untested.
    #[test]
    fn what_another_user_owns_is_refused() {
        if euid() != 0 {
            eprintln!("skipped: chown needs root");
            return;
        }
        let chown = |path: &Path, uid: u32| {
            let c = c_name(path).unwrap();
            // SAFETY: a NUL-terminated path, valid for the call; gid -1 leaves the group.
            assert_eq!(unsafe { libc::chown(c.as_ptr(), uid, u32::MAX) }, 0);
        };
        let engine = engine();
        let dir = scratch("owners");
        // An ancestor of another user (65534, "nobody").
        std::fs::create_dir_all(dir.join("theirs/wasm")).unwrap();
        chmod(&dir.join("theirs"), 0o755);
        chown(&dir.join("theirs"), 65534);
        let error = ArtifactCache::open(&dir.join("theirs/wasm"), &engine).unwrap_err();
        assert!(error.contains("belongs to uid 65534, neither this user"), "{error}");
        // The cache directory itself.
        std::fs::create_dir(dir.join("cache")).unwrap();
        chmod(&dir.join("cache"), 0o700);
        chown(&dir.join("cache"), 65534);
        let error = ArtifactCache::open(&dir.join("cache"), &engine).unwrap_err();
        assert!(error.contains("belongs to uid 65534, not to this user"), "{error}");
        // An entry.
        let cache = ArtifactCache::open(&dir.join("mine"), &engine).unwrap();
        cache.store(SHA_A, &component(&engine));
        chown(&dir.join("mine").join(cache.file_name(SHA_A)), 65534);
        assert!(refusal(&cache, SHA_A).contains("belongs to uid 65534"));
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn a_key_others_can_read_is_replaced_and_invalidates_entries() {
        let engine = engine();
        let dir = scratch("key");
        let cache = ArtifactCache::open(&dir, &engine).unwrap();
        cache.store(SHA_A, &component(&engine));
        let key = dir.join(KEY_FILE);
        let before = std::fs::read(&key).unwrap();
        chmod(&key, 0o644);
        let reopened = ArtifactCache::open(&dir, &engine).unwrap();
        let after = std::fs::read(&key).unwrap();
        assert_ne!(before, after, "a fresh key");
        assert_eq!(std::fs::metadata(&key).unwrap().mode() & 0o777, 0o600);
        assert!(refusal(&reopened, SHA_A).contains("MAC does not match"));

        // A key that is a link (to a key the attacker knows) is replaced too.
        std::fs::write(dir.join("known"), [7u8; KEY_LEN]).unwrap();
        chmod(&dir.join("known"), 0o600);
        std::fs::remove_file(&key).unwrap();
        symlink(dir.join("known"), &key).unwrap();
        let relinked = ArtifactCache::open(&dir, &engine).unwrap();
        assert!(std::fs::symlink_metadata(&key).unwrap().is_file());
        assert_ne!(&relinked.key.0[..], &[7u8; KEY_LEN][..]);
        std::fs::remove_dir_all(dir).unwrap();
    }
}

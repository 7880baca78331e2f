//! Unix: the cache directory reached from `/` with `openat(O_NOFOLLOW)` and checked on each
//! descriptor (owner, mode bits), held open; every file in it opened, renamed, linked and removed
//! relative to that descriptor.

use super::Open;
use std::collections::VecDeque;
use std::ffi::{CStr, CString, OsStr, OsString};
use std::fs::{File, Metadata};
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::os::unix::fs::MetadataExt;
use std::path::{Component as PathComponent, Path, PathBuf};

/// Bound on symbolic links followed while walking to the directory (Linux's own limit).
const MAX_SYMLINKS: usize = 40;
/// `S_ISVTX`, as `MetadataExt::mode` reports it on every Unix.
const STICKY: u32 = 0o1000;

/// The verified cache directory, held open.
#[derive(Debug)]
pub(super) struct Dir {
    file: File,
    euid: u32,
}

/// A fresh file in the directory, not yet under its final name.
pub(super) struct Temporary {
    name: CString,
    /// Where the content is written.
    pub(super) file: File,
}

impl Dir {
    /// Walks to `path` (creating missing directories, mode 0700) with [`open_private_dir`].
    pub(super) fn open(path: &Path) -> Result<Dir, String> {
        let euid = euid();
        Ok(Dir { file: open_private_dir(path, euid)?, euid })
    }

    /// Whether the directory, as held open, still passes [`check_cache_dir`].
    pub(super) fn recheck(&self) -> Result<(), String> {
        check_cache_dir(&self.file.metadata().map_err(|e| e.to_string())?, self.euid)
    }

    /// Opens `name` for reading without following a link (`O_NOFOLLOW`) or waiting on a FIFO
    /// (`O_NONBLOCK`).
    pub(super) fn open_file(&self, name: &str) -> Result<File, Open> {
        let name = c_name(name).map_err(Open::Failed)?;
        let flags = libc::O_RDONLY | libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_CLOEXEC;
        match openat(self.file.as_fd(), &name, flags, 0) {
            Ok(fd) => Ok(File::from(fd)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Err(Open::NotFound),
            Err(e) if is_symlink_error(&e) => Err(Open::Link("it is a symbolic link")),
            Err(e) => Err(Open::Failed(e)),
        }
    }

    /// An opened file's size if it may be used: a regular file of this user, not writable by
    /// group or others; a `secret` one not even readable by them. `Ok(Err(reason))` if not.
    pub(super) fn check_file(&self, file: &File, secret: bool) -> io::Result<Result<u64, String>> {
        let meta = file.metadata()?;
        let mode = meta.mode() & 0o7777;
        Ok(if !meta.is_file() {
            Err("it is not a regular file".into())
        } else if meta.uid() != self.euid {
            Err(format!("it belongs to uid {}, not to this user (uid {})", meta.uid(), self.euid))
        } else if secret && mode & 0o077 != 0 {
            Err(format!("group or others may read or write it (mode {mode:o})"))
        } else if mode & 0o022 != 0 {
            Err(format!("it is writable by group or others (mode {mode:o})"))
        } else {
            Ok(meta.len())
        })
    }

    /// A fresh `.NAME.tmp.RANDOM` file (mode 0600, `O_EXCL | O_NOFOLLOW`).
    pub(super) fn create_temporary(&self, name: &str) -> Result<Temporary, String> {
        let (name, file) = create_temporary(&self.file, name)?;
        Ok(Temporary { name, file })
    }

    /// Gives the temporary file its final name: replacing what is there (`renameat`), or, without
    /// `replace`, only if nothing is (`linkat`, which never replaces: `AlreadyExists` is success,
    /// someone else got there first). The temporary name is gone afterwards either way.
    pub(super) fn commit(&self, tmp: Temporary, to: &str, replace: bool) -> io::Result<()> {
        let to = c_name(to)?;
        let result = if replace {
            renameat(self.file.as_fd(), &tmp.name, &to)
        } else {
            match linkat(self.file.as_fd(), &tmp.name, &to) {
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(()),
                other => other,
            }
        };
        let _ = unlinkat(self.file.as_fd(), &tmp.name);
        result
    }

    /// Removes a temporary file that will not be committed.
    pub(super) fn discard(&self, tmp: Temporary) {
        let _ = unlinkat(self.file.as_fd(), &tmp.name);
    }

    /// Removes `name` (whatever it is; a link, not its target).
    pub(super) fn remove(&self, name: &str) -> io::Result<()> {
        unlinkat(self.file.as_fd(), &c_name(name)?)
    }
}

pub(super) fn euid() -> u32 {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() }
}

pub(super) fn c_name(name: impl AsRef<OsStr>) -> io::Result<CString> {
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

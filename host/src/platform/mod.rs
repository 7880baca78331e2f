//! What differs between Unix and Windows, in one place: the rest of the tree calls these and
//! carries no `cfg` of its own.
//!
//! | concern | Unix | Windows |
//! |---|---|---|
//! | private files | created 0600; refused when group or others have any mode bit | an owner-only, non-inherited DACL set on creation; refused when an ACE grants anyone but the owner, SYSTEM or Administrators, or the owner is someone else |
//! | opening given files | `O_NONBLOCK \| O_NOCTTY \| O_CLOEXEC`, `O_NOFOLLOW` where a link must not be followed | handles are not inherited; `FILE_FLAG_OPEN_REPARSE_POINT` where a link must not be followed (the link itself is opened, then refused as not a regular file) |
//! | crash hardening | no core file, not dumpable / ptrace-able | no fault dialog or Windows Error Reporting prompt holding the process (and its secrets) alive |
//! | open descriptors | soft limit raised to the hard one at start (a large fleet's connections) | no per-process limit: nothing to do |
//! | stop requests | SIGINT, SIGTERM | Ctrl-C, Ctrl-Break, console close |
//! | escrow commands | `/bin/sh -c`, own process group killed on timeout | `cmd.exe /C`, killed on timeout |
//! | operator | login name of the uid | the account name of the process token |
//!
//! The compiled-plugin cache's directory walk and relative file operations are its own
//! (`runtime::cache::{unix, windows}`); on Windows it uses [`exposure`] and [`make_private`] from here.
//!
//! The stamp lock and the audit log's lock are std's `File::try_lock`/`lock` on both (flock on
//! Unix, `LockFileEx` on Windows). Default directories are in [`crate::paths`].

#[cfg(unix)]
mod unix;
#[cfg(unix)]
pub use unix::*;

#[cfg(windows)]
mod windows;
#[cfg(windows)]
pub use windows::*;

/// Who the process runs as, for the audit log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Operator {
    /// The numeric user id (Unix only).
    pub uid: Option<u32>,
    /// The account name, when the system can name it.
    pub name: Option<String>,
}

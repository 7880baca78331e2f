//! Unix: modes, `O_*` flags, signals, `/bin/sh`.

use super::Operator;
use std::fs::{File, FileType, Metadata, OpenOptions};
use std::io;
use std::os::unix::fs::{DirBuilderExt, FileTypeExt, MetadataExt, OpenOptionsExt};
use std::path::Path;

/// Opening a file the tool was given to read: a FIFO cannot stall the open, a terminal does not
/// become the controlling one, and no child inherits the descriptor.
pub fn for_reading(options: &mut OpenOptions) -> &mut OpenOptions {
    options.custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY | libc::O_CLOEXEC)
}

/// As [`for_reading`], and a symbolic link in the last component is refused (`ELOOP`, see
/// [`is_link_refusal`]) instead of followed.
pub fn not_following(options: &mut OpenOptions) -> &mut OpenOptions {
    options.custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_CLOEXEC)
}

/// A file this opening creates is the user's alone (mode 0600).
pub fn owner_only(options: &mut OpenOptions) -> &mut OpenOptions {
    options.mode(0o600)
}

/// Makes an open file the user's alone. On Unix [`owner_only`] did it at creation.
pub fn make_private(_file: &File) -> io::Result<()> {
    Ok(())
}

/// Creates `dir` and its missing parents, the new ones the user's alone (mode 0700).
pub fn create_private_dir(dir: &Path) -> io::Result<()> {
    std::fs::DirBuilder::new().recursive(true).mode(0o700).create(dir)
}

/// How the opened file is open to others, if it is: `readable by group or others (mode 644)`.
pub fn exposure(_file: &File, meta: &Metadata) -> io::Result<Option<String>> {
    let mode = meta.mode() & 0o777;
    Ok((mode & 0o077 != 0).then(|| format!("readable by group or others (mode {mode:o})")))
}

/// The command that makes `path` private.
pub fn privatize_command(path: &Path) -> String {
    format!("chmod 600 {}", path.display())
}

/// Whether an open failed because [`not_following`] met a symbolic link.
pub fn is_link_refusal(e: &io::Error) -> bool {
    e.raw_os_error() == Some(libc::ELOOP)
}

/// The kinds of file only Unix has, for messages.
pub fn special_kind(kind: FileType) -> Option<&'static str> {
    if kind.is_fifo() {
        Some("a FIFO")
    } else if kind.is_char_device() {
        Some("a character device")
    } else if kind.is_block_device() {
        Some("a block device")
    } else if kind.is_socket() {
        Some("a socket")
    } else {
        None
    }
}

/// The width of standard output's terminal, if it is one.
pub fn stdout_width() -> Option<usize> {
    width_of(libc::STDOUT_FILENO)
}

/// The width of the terminal `file` is open on, if it is one.
pub fn terminal_width(file: &File) -> Option<usize> {
    width_of(std::os::fd::AsRawFd::as_raw_fd(file))
}

fn width_of(fd: std::os::fd::RawFd) -> Option<usize> {
    // SAFETY: winsize is plain data, filled by TIOCGWINSZ for a terminal descriptor.
    let mut size: libc::winsize = unsafe { std::mem::zeroed() };
    // SAFETY: as above; the pointer is to a valid, writable winsize; a non-terminal fails.
    let ok = unsafe { libc::ioctl(fd, libc::TIOCGWINSZ, &mut size) } == 0;
    (ok && size.ws_col > 0).then_some(usize::from(size.ws_col))
}

/// The terminal to show a secret on and read Enter from, whatever standard streams were
/// redirected: `/dev/tty`, as (input, output).
pub fn open_terminal() -> io::Result<(File, File)> {
    let tty = OpenOptions::new().read(true).write(true).open("/dev/tty")?;
    Ok((tty.try_clone()?, tty))
}

/// Makes the process undumpable: no core file (`RLIMIT_CORE` 0), and on Linux
/// `PR_SET_DUMPABLE` 0, which also keeps other processes of the same user from attaching with
/// ptrace or reading `/proc/<pid>/mem`.
pub fn harden_process() -> io::Result<()> {
    let none = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: setrlimit reads a valid rlimit struct.
    if unsafe { libc::setrlimit(libc::RLIMIT_CORE, &none) } != 0 {
        return Err(io::Error::last_os_error());
    }
    #[cfg(target_os = "linux")]
    // SAFETY: PR_SET_DUMPABLE takes one integer argument; the others are ignored.
    if unsafe { libc::prctl(libc::PR_SET_DUMPABLE, 0, 0, 0, 0) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Raises the soft limit on open descriptors to the hard one and returns the soft limit now in
/// force. A large fleet holds a connection to every BMC in flight and keeps idle ones between
/// phases; the usual soft default (1,024) would fail connections with `EMFILE` long before the
/// memory or the network is the limit, while the hard limit, which only root may raise, stays.
#[allow(clippy::useless_conversion, reason = "rlim_t is u64 here but u32 on some 32-bit targets")]
pub fn raise_open_file_limit() -> io::Result<u64> {
    // SAFETY: rlimit is plain data, valid when zeroed.
    let mut limit: libc::rlimit = unsafe { std::mem::zeroed() };
    // SAFETY: getrlimit fills a valid, writable rlimit.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } != 0 {
        return Err(io::Error::last_os_error());
    }
    // macOS refuses a soft limit above OPEN_MAX even when the hard limit is unlimited.
    #[cfg(target_os = "macos")]
    let ceiling = limit.rlim_max.min(libc::OPEN_MAX as libc::rlim_t);
    #[cfg(not(target_os = "macos"))]
    let ceiling = limit.rlim_max;
    if limit.rlim_cur < ceiling {
        let raised = libc::rlimit { rlim_cur: ceiling, rlim_max: limit.rlim_max };
        // SAFETY: setrlimit reads a valid rlimit struct.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raised) } != 0 {
            return Err(io::Error::last_os_error());
        }
        limit.rlim_cur = ceiling;
    }
    Ok(u64::from(limit.rlim_cur))
}

/// Who the process runs as: the real uid and its login name.
pub fn operator() -> Operator {
    // SAFETY: getuid has no preconditions and cannot fail.
    let uid = unsafe { libc::getuid() };
    Operator { uid: Some(uid), name: login_name(uid) }
}

/// The login name of `uid` in the system's user database (`getpwuid_r`), if it has one.
fn login_name(uid: u32) -> Option<String> {
    let mut buf = vec![0u8; 4096];
    // SAFETY: passwd is plain data, valid when zeroed.
    let mut pwd: libc::passwd = unsafe { std::mem::zeroed() };
    let mut result: *mut libc::passwd = std::ptr::null_mut();
    // SAFETY: every pointer is valid for the call and `buf` outlives the use of `pwd`'s fields.
    let rc = unsafe { libc::getpwuid_r(uid, &mut pwd, buf.as_mut_ptr().cast(), buf.len(), &mut result) };
    if rc != 0 || result.is_null() || pwd.pw_name.is_null() {
        return None;
    }
    // SAFETY: getpwuid_r succeeded, so pw_name points to a NUL-terminated string inside `buf`.
    let name = unsafe { std::ffi::CStr::from_ptr(pwd.pw_name) };
    Some(name.to_string_lossy().into_owned())
}

/// The shell an escrow command runs in, and how the error names it.
pub fn shell(command: &str) -> (tokio::process::Command, &'static str) {
    let mut shell = tokio::process::Command::new("/bin/sh");
    shell.arg("-c").arg(command);
    // Its own process group, so a timeout ends whatever it started too (see `kill_tree`).
    shell.process_group(0);
    (shell, "/bin/sh -c COMMAND")
}

/// What an escrow command inherits from the environment besides what it is given.
pub const SHELL_ENV: &[&str] = &["PATH", "HOME", "USER", "LOGNAME", "LANG", "LC_ALL", "LC_CTYPE", "TZ", "TMPDIR"];

/// Ends a shell started by [`shell`] and everything in its process group.
pub fn kill_tree(pid: u32) {
    if let Ok(pid) = libc::pid_t::try_from(pid) {
        // SAFETY: killpg only sends a signal; the group is the one the child was started in.
        unsafe {
            libc::killpg(pid, libc::SIGKILL);
        }
    }
}

/// The operating system's requests to stop: SIGINT and SIGTERM.
pub struct StopRequests {
    interrupt: tokio::signal::unix::Signal,
    terminate: tokio::signal::unix::Signal,
}

impl StopRequests {
    /// Starts listening (call from within the runtime).
    pub fn listen() -> Result<StopRequests, String> {
        use tokio::signal::unix::{SignalKind, signal};
        let interrupt = signal(SignalKind::interrupt()).map_err(|e| format!("cannot watch SIGINT: {e}"))?;
        let terminate = signal(SignalKind::terminate()).map_err(|e| format!("cannot watch SIGTERM: {e}"))?;
        Ok(StopRequests { interrupt, terminate })
    }

    /// The next request's name.
    pub async fn next(&mut self) -> &'static str {
        tokio::select! {
            _ = self.interrupt.recv() => "SIGINT",
            _ = self.terminate.recv() => "SIGTERM",
        }
    }
}

/// Ends the process at once, with no cleanup, as a crash or SIGKILL would (the crash tests).
#[cfg(feature = "test-hooks")]
pub fn die_now() -> ! {
    // SAFETY: kill(2) on our own pid.
    unsafe { libc::kill(libc::getpid(), libc::SIGKILL) };
    unreachable!("SIGKILL is not caught")
}

/// Reads standard input straight from file descriptor 0, without std's buffer.
pub fn read_stdin(buf: &mut [u8]) -> io::Result<usize> {
    // SAFETY: `buf` is valid for writes of `buf.len()` bytes.
    let n = unsafe { libc::read(libc::STDIN_FILENO, buf.as_mut_ptr().cast(), buf.len()) };
    if n < 0 { Err(io::Error::last_os_error()) } else { Ok(n as usize) }
}

/// Takes an exclusive lock on `file` without waiting: `Ok(false)` when another open file
/// description holds it. `flock`: released by the kernel however the process ends.
pub fn try_lock(file: &File) -> io::Result<bool> {
    match file.try_lock() {
        Ok(()) => Ok(true),
        Err(std::fs::TryLockError::WouldBlock) => Ok(false),
        Err(std::fs::TryLockError::Error(e)) => Err(e),
    }
}

/// This process's CPU time (user and system) and peak resident set in KiB (`getrusage`): what
/// the benchmarks report.
pub fn resource_usage() -> (std::time::Duration, u64) {
    use std::time::Duration;
    // SAFETY: getrusage fills a plain struct.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: `usage` is a valid, writable rusage for the call to fill.
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut usage) };
    let tv = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    (tv(usage.ru_utime) + tv(usage.ru_stime), usage.ru_maxrss as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn open_file_limit() -> (libc::rlim_t, libc::rlim_t) {
        // SAFETY: as in raise_open_file_limit.
        let mut limit: libc::rlimit = unsafe { std::mem::zeroed() };
        // SAFETY: getrlimit fills a valid, writable rlimit.
        assert_eq!(unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) }, 0);
        (limit.rlim_cur, limit.rlim_max)
    }

    /// Run in a child process: lowering the soft limit in the test process would starve the
    /// tests running beside it.
    #[test]
    #[allow(clippy::useless_conversion, reason = "rlim_t is u64 here but u32 on some 32-bit targets")]
    fn the_soft_descriptor_limit_is_raised_to_the_hard_one() {
        if std::env::var_os("BMC_ROTATE_NOFILE_CHILD").is_none() {
            let out = std::process::Command::new(std::env::current_exe().unwrap())
                .args(["--exact", "platform::unix::tests::the_soft_descriptor_limit_is_raised_to_the_hard_one"])
                .env("BMC_ROTATE_NOFILE_CHILD", "1")
                .output()
                .unwrap();
            let stdout = String::from_utf8_lossy(&out.stdout);
            assert!(
                out.status.success() && stdout.contains("1 passed"),
                "{stdout}{}",
                String::from_utf8_lossy(&out.stderr)
            );
            return;
        }
        let (_, hard) = open_file_limit();
        let low = libc::rlimit { rlim_cur: 64.min(hard), rlim_max: hard };
        // SAFETY: setrlimit reads a valid rlimit struct.
        assert_eq!(unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &low) }, 0);
        let now = raise_open_file_limit().unwrap();
        let (soft, still_hard) = open_file_limit();
        assert_eq!(still_hard, hard, "the hard limit is not the tool's to change");
        assert_eq!(u64::from(soft), now);
        #[cfg(not(target_os = "macos"))]
        assert_eq!(soft, hard);
        #[cfg(target_os = "macos")]
        assert!(soft > 64);
        // Raising again changes nothing.
        assert_eq!(raise_open_file_limit().unwrap(), now);
    }
}

//! Reading a line from the controlling terminal with echo off (termios), restoring the terminal
//! even when reading fails.

use std::io::Write;
use std::os::fd::AsRawFd;
use zeroize::Zeroizing;

/// Restores the saved terminal mode when dropped.
struct EchoOff {
    fd: i32,
    saved: libc::termios,
}

impl Drop for EchoOff {
    fn drop(&mut self) {
        // SAFETY: `fd` is the open terminal and `saved` came from tcgetattr on it.
        unsafe { libc::tcsetattr(self.fd, libc::TCSANOW, &self.saved) };
    }
}

/// Prints `label` on the terminal and reads one line without echoing it.
pub(super) fn read_hidden(label: &str) -> std::io::Result<Zeroizing<String>> {
    let tty = std::fs::OpenOptions::new().read(true).write(true).open("/dev/tty")?;
    let fd = tty.as_raw_fd();
    // SAFETY: termios is plain data; tcgetattr fills it for an open terminal descriptor.
    let mut mode: libc::termios = unsafe { std::mem::zeroed() };
    // SAFETY: `fd` is the open terminal above and `mode` a valid, writable termios.
    if unsafe { libc::tcgetattr(fd, &mut mode) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    let guard = EchoOff { fd, saved: mode };
    mode.c_lflag &= !libc::ECHO;
    mode.c_lflag |= libc::ECHONL;
    // SAFETY: as above; `mode` is a valid termios derived from the terminal's own.
    if unsafe { libc::tcsetattr(fd, libc::TCSANOW, &mode) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    let mut out = &tty;
    out.write_all(label.as_bytes())?;
    out.flush()?;
    let line = super::protect::read_line(&tty)?.unwrap_or_default();
    drop(guard);
    Ok(line)
}

//! Where the process keeps its secrets' guarantees in memory: the process cannot be dumped or
//! traced by another unprivileged process, and secret lines are read without any buffer the
//! program does not own and wipe.
//!
//! Every secret the tool reads arrives through [`read_line`] (stdin), the terminal prompt (whose
//! String is wrapped at once) or a zeroizing file read, and lives in `Zeroizing`/`SecretString`
//! from then on.

use std::io::{self, Read};
use zeroize::Zeroizing;

/// Longest secret line read; a BMC password is at most 16 characters, a CloudAdmin password a
/// few dozen.
pub const MAX_SECRET_LINE: usize = 1024;

/// Keeps secrets from leaving the process in a crash (see [`crate::platform::harden_process`]):
/// on Unix no core file and not dumpable or traceable; on Windows no fault dialog or error
/// report. Called first thing in `main`, before any secret exists.
pub fn harden_process() -> io::Result<()> {
    crate::platform::harden_process()
}

/// Reads one line, a byte at a time so nothing past it is consumed and no buffer outside the
/// returned one ever holds it (std's stdin keeps an 8 KiB buffer for the life of the process).
/// `None` at end of input; the line ending is dropped.
pub fn read_line(mut source: impl Read) -> io::Result<Option<Zeroizing<String>>> {
    let mut bytes = Zeroizing::new(Vec::with_capacity(MAX_SECRET_LINE));
    let mut byte = Zeroizing::new([0u8; 1]);
    loop {
        match source.read(&mut byte[..]) {
            Ok(0) if bytes.is_empty() => return Ok(None),
            Ok(0) => break,
            Ok(_) if byte[0] == b'\n' => break,
            Ok(_) if bytes.len() == MAX_SECRET_LINE => {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("the line is longer than {MAX_SECRET_LINE} bytes"),
                ));
            }
            Ok(_) => bytes.push(byte[0]),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    while bytes.last() == Some(&b'\r') {
        bytes.pop();
    }
    // Capacity was reserved up front, so the bytes were never moved to a buffer left unwiped.
    let text = std::str::from_utf8(&bytes).map_err(|_| io::Error::new(io::ErrorKind::InvalidData, "not UTF-8"))?;
    Ok(Some(Zeroizing::new(text.to_owned())))
}

/// Standard input without std's buffer: reads go straight to file descriptor 0 (the stdin handle
/// on Windows).
pub struct RawStdin;

impl Read for RawStdin {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        crate::platform::read_stdin(buf)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_read_one_at_a_time_without_their_ending() {
        let mut input: &[u8] = b"First-Pw-1\r\nSecond-Pw-2\nlast";
        assert_eq!(read_line(&mut input).unwrap().unwrap().as_str(), "First-Pw-1");
        assert_eq!(input, b"Second-Pw-2\nlast", "nothing past the line was consumed");
        assert_eq!(read_line(&mut input).unwrap().unwrap().as_str(), "Second-Pw-2");
        assert_eq!(read_line(&mut input).unwrap().unwrap().as_str(), "last");
        assert!(read_line(&mut input).unwrap().is_none());
    }

    #[test]
    fn overlong_and_invalid_lines_are_refused() {
        let long = vec![b'x'; MAX_SECRET_LINE + 1];
        assert!(read_line(long.as_slice()).unwrap_err().to_string().contains("longer than 1024"));
        assert!(read_line(&b"\xff\xfe\n"[..]).is_err());
    }

    #[test]
    #[cfg(unix)] // Windows' SetErrorMode has nothing a test can observe from inside.
    fn the_process_is_not_dumpable() {
        harden_process().unwrap();
        let mut limit = libc::rlimit { rlim_cur: 1, rlim_max: 1 };
        // SAFETY: getrlimit writes a valid rlimit struct.
        assert_eq!(unsafe { libc::getrlimit(libc::RLIMIT_CORE, &mut limit) }, 0);
        assert_eq!((limit.rlim_cur, limit.rlim_max), (0, 0));
        #[cfg(target_os = "linux")]
        // SAFETY: PR_GET_DUMPABLE takes no argument and returns the flag.
        assert_eq!(unsafe { libc::prctl(libc::PR_GET_DUMPABLE, 0, 0, 0, 0) }, 0);
    }
}

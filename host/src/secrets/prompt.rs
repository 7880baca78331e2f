//! Reading a secret from the controlling terminal with echo off, through `rpassword`: it opens
//! the terminal itself (`/dev/tty`, the console on Windows), so a prompt works even when stdin
//! and stdout are redirected, and it restores the terminal mode whether or not the read succeeds.

use zeroize::Zeroizing;

/// Prints `label` on the terminal and reads one line without echoing it.
pub(super) fn read_hidden(label: &str) -> std::io::Result<Zeroizing<String>> {
    // rpassword hands back a plain String (its own buffers are wiped as it goes): wrap it before
    // anything else can copy or move it, so the one heap copy of the secret is wiped on drop.
    let line = Zeroizing::new(rpassword::prompt_password(label)?);
    if line.len() > super::protect::MAX_SECRET_LINE {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("the line is longer than {} bytes", super::protect::MAX_SECRET_LINE),
        ));
    }
    Ok(line)
}

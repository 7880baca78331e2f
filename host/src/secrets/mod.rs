//! Where secrets come from: an interactive prompt without echo (the default on a terminal), an
//! environment variable, a file only its owner can read, or stdin. A password is never accepted
//! on the command line: a source names where to read it, and a source that does not parse is
//! refused without repeating what was typed (it might be the password).

use crate::files;
use secrecy::SecretString;
use std::io::IsTerminal;
use std::path::PathBuf;
use std::str::FromStr;
use zeroize::Zeroizing;

pub mod policy;
mod prompt;
pub mod protect;

/// Where to read one secret.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SecretSource {
    /// Ask on the terminal, without echo.
    Prompt,
    /// `env:VAR`.
    Env(String),
    /// `file:PATH`: the first line of a file of mode 0600 or stricter.
    File(PathBuf),
    /// `stdin`: the next line of standard input.
    Stdin,
}

impl FromStr for SecretSource {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        match text {
            "prompt" => return Ok(SecretSource::Prompt),
            "stdin" | "-" => return Ok(SecretSource::Stdin),
            _ => {}
        }
        if let Some(var) = text.strip_prefix("env:").filter(|v| !v.is_empty()) {
            return Ok(SecretSource::Env(var.to_owned()));
        }
        if let Some(path) = text.strip_prefix("file:").filter(|p| !p.is_empty()) {
            return Ok(SecretSource::File(PathBuf::from(path)));
        }
        // Never echo `text`: an operator may have typed the password itself here.
        Err("expected a secret source — prompt, env:VAR, file:PATH or stdin; a password is never given on the \
             command line"
            .into())
    }
}

impl SecretSource {
    /// Whether the source names its stamp (`env:CA_{stamp}`, `file:/secrets/{stamp}/ca`).
    pub fn names_stamp(&self) -> bool {
        match self {
            SecretSource::Env(var) => var.contains(STAMP),
            SecretSource::File(path) => path.to_string_lossy().contains(STAMP),
            SecretSource::Prompt | SecretSource::Stdin => false,
        }
    }

    /// The source of one stamp: `{stamp}` replaced by its name — in a variable name upper-cased,
    /// with every character a variable name cannot hold made `_` (`east-1` → `EAST_1`).
    pub fn for_stamp(&self, stamp: &str) -> SecretSource {
        if !self.names_stamp() {
            return self.clone();
        }
        match self {
            SecretSource::Env(var) => {
                let name: String = stamp
                    .chars()
                    .map(|c| if c.is_ascii_alphanumeric() { c.to_ascii_uppercase() } else { '_' })
                    .collect();
                SecretSource::Env(var.replace(STAMP, &name))
            }
            SecretSource::File(path) => SecretSource::File(PathBuf::from(path.to_string_lossy().replace(STAMP, stamp))),
            other => other.clone(),
        }
    }
}

/// The placeholder a secret source, journal or password file of several stamps may hold.
pub const STAMP: &str = "{stamp}";

/// Reads secrets, sharing one stdin between the sources that use it (one line each, in the
/// order they are read).
#[derive(Default)]
pub struct SecretReader {
    stdin_used: usize,
}

impl SecretReader {
    /// Reads `what` (e.g. "the new BMC password") from `source`.
    pub fn read(&mut self, source: &SecretSource, what: &str) -> Result<SecretString, String> {
        let value: Zeroizing<String> = match source {
            SecretSource::Env(var) => Zeroizing::new(
                std::env::var(var)
                    .map_err(|_| format!("{what}: environment variable {var} is not set (or not UTF-8)"))?,
            ),
            SecretSource::File(path) => read_file(path, what)?,
            SecretSource::Stdin => {
                self.stdin_used += 1;
                protect::read_line(protect::RawStdin).map_err(|e| format!("{what}: stdin: {e}"))?.ok_or_else(|| {
                    format!("{what}: stdin ended before line {} (one secret per line)", self.stdin_used)
                })?
            }
            SecretSource::Prompt => {
                if !std::io::stdin().is_terminal() {
                    return Err(format!(
                        "{what}: no terminal to prompt on; give the source as env:VAR, file:PATH or stdin"
                    ));
                }
                prompt::read_hidden(&format!("{what}: ")).map_err(|e| format!("{what}: {e}"))?
            }
        };
        if value.is_empty() {
            return Err(format!("{what} is empty"));
        }
        Ok(SecretString::from(value.as_str().to_owned()))
    }
}

/// The first line of a secret file: a regular file of at most [`files::MAX_SECRET_FILE`] bytes
/// and mode 0600 or stricter (both checked on the opened descriptor), read into one zeroizing
/// buffer.
fn read_file(path: &std::path::Path, what: &str) -> Result<Zeroizing<String>, String> {
    let file = files::open_bounded(path, "the secret file", files::MAX_SECRET_FILE).map_err(|e| match &e.problem {
        files::Problem::NotRegular { .. } => format!("{what}: {e} (to pipe a secret in, use `stdin`)"),
        _ => format!("{what}: {e}"),
    })?;
    let exposure =
        file.exposure().map_err(|e| format!("{what}: {}: cannot read its permissions: {e}", path.display()))?;
    if let Some(exposure) = exposure {
        return Err(format!(
            "{what}: {} is {exposure}; run `{}` first",
            path.display(),
            crate::platform::privatize_command(path)
        ));
    }
    let bytes = file.read_secret().map_err(|e| format!("{what}: {e}"))?;
    // Never echo the content: a byte offset is all the error says.
    let text = std::str::from_utf8(&bytes)
        .map_err(|e| format!("{what}: {}: not UTF-8 text (byte {})", path.display(), e.valid_up_to()))?;
    let first = text.lines().next().unwrap_or_default();
    Ok(Zeroizing::new(first.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sources_parse_and_never_echo_what_was_typed() {
        assert_eq!("prompt".parse(), Ok(SecretSource::Prompt));
        assert_eq!("env:BMC_NEW".parse(), Ok(SecretSource::Env("BMC_NEW".into())));
        assert_eq!("file:/run/secrets/pw".parse(), Ok(SecretSource::File("/run/secrets/pw".into())));
        assert_eq!("stdin".parse(), Ok(SecretSource::Stdin));
        for typed in ["Hunter2-Secret!", "env:", "file:"] {
            let error = typed.parse::<SecretSource>().unwrap_err();
            assert!(!error.contains(typed) || typed.ends_with(':'), "{error}");
            assert!(error.contains("env:VAR"), "{error}");
        }
    }

    #[test]
    #[cfg(unix)] // modes; Windows' DACL check: platform::windows
    fn files_must_be_private() {
        use secrecy::ExposeSecret;
        use std::os::unix::fs::PermissionsExt;
        let dir = std::env::temp_dir().join(format!("bmc-rotate-secret-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("pw");
        std::fs::write(&path, "File-Pw-1\nignored second line\n").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let mut reader = SecretReader::default();
        let error = reader.read(&SecretSource::File(path.clone()), "the new BMC password").unwrap_err();
        assert!(error.contains("mode 644") && error.contains("chmod 600"), "{error}");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        let secret = reader.read(&SecretSource::File(path.clone()), "the new BMC password").unwrap();
        assert_eq!(secret.expose_secret(), "File-Pw-1");
        std::fs::write(&path, "\n").unwrap();
        assert!(reader.read(&SecretSource::File(path), "x").unwrap_err().contains("x is empty"));
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn environment_variables_must_exist() {
        let error = SecretReader::default()
            .read(&SecretSource::Env("BMC_ROTATE_SURELY_UNSET_VAR".into()), "the CloudAdmin password")
            .unwrap_err();
        assert!(error.contains("BMC_ROTATE_SURELY_UNSET_VAR is not set"), "{error}");
    }
}

//! Argument types shared by several commands.

use crate::secrets::SecretSource;
use clap::error::ErrorKind;
use std::ffi::OsStr;
use std::time::Duration;

/// Parses a secret source without ever repeating the value in an error: an operator who typed
/// the password itself where a source was expected must not see it echoed (or logged by CI).
#[derive(Clone, Copy, Debug)]
pub struct SecretSourceParser;

impl clap::builder::TypedValueParser for SecretSourceParser {
    type Value = SecretSource;

    fn parse_ref(
        &self,
        cmd: &clap::Command,
        arg: Option<&clap::Arg>,
        value: &OsStr,
    ) -> Result<SecretSource, clap::Error> {
        let parsed = value.to_str().ok_or_else(|| "not UTF-8".to_owned()).and_then(str::parse);
        parsed.map_err(|reason| {
            let name = arg.map(|a| a.to_string()).unwrap_or_else(|| "the secret source".into());
            clap::Error::raw(ErrorKind::ValueValidation, format!("{name}: {reason}\n")).with_cmd(cmd)
        })
    }
}

/// `90`, `90s`, `30m`, `1h`.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let (number, unit) = match text.char_indices().find(|(_, c)| !c.is_ascii_digit()) {
        Some((at, _)) => text.split_at(at),
        None => (text, "s"),
    };
    let n: u64 = number.parse().map_err(|_| format!("`{text}` is not a duration: expected e.g. 90s, 30m or 1h"))?;
    let seconds = match unit {
        "s" => n,
        "m" => n * 60,
        "h" => n * 3600,
        other => return Err(format!("`{other}` is not a unit: use s, m or h")),
    };
    (seconds > 0).then(|| Duration::from_secs(seconds)).ok_or_else(|| "the duration must be positive".into())
}

#[cfg(test)]
mod tests {
    use super::parse_duration;
    use std::time::Duration;

    #[test]
    fn durations_take_a_unit() {
        assert_eq!(parse_duration("90"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("30m"), Ok(Duration::from_secs(1800)));
        assert_eq!(parse_duration("1h"), Ok(Duration::from_secs(3600)));
        assert!(parse_duration("10d").unwrap_err().contains("use s, m or h"));
        assert!(parse_duration("0s").is_err());
        assert!(parse_duration("soon").is_err());
    }
}

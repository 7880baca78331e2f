//! Where a BMC is: host and port, parsed from the operator's address.

use std::fmt;
use std::str::FromStr;

/// A BMC's HTTPS endpoint. The gateway resolves it once per job and pins the address.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Endpoint {
    /// Host name or IP literal (IPv6 without brackets).
    pub host: String,
    /// TCP port (443 unless given).
    pub port: u16,
}

impl Endpoint {
    /// An endpoint on an explicit host and port.
    pub fn new(host: impl Into<String>, port: u16) -> Self {
        Endpoint { host: host.into(), port }
    }

    /// `https://host:port`, with brackets around IPv6 literals.
    pub fn origin(&self) -> String {
        format!("https://{self}")
    }
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.host.contains(':') {
            write!(f, "[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{}:{}", self.host, self.port)
        }
    }
}

impl FromStr for Endpoint {
    type Err = String;

    /// Accepts `host`, `host:port`, `1.2.3.4:8443`, `[fd00::1]:443` and `fd00::1`.
    fn from_str(s: &str) -> Result<Self, String> {
        let s = s.trim();
        if s.is_empty() {
            return Err("the address is empty".into());
        }
        // `user:password@host` (with or without a scheme): never repeat it, it may be a password.
        if s.contains('@') {
            return Err("the address holds `@`, as in `user:password@host`: credentials never belong in the \
                        inventory (the value is not repeated here); write the host name or IP only, optionally \
                        `:port`, and give passwords through a secret source"
                .into());
        }
        if s.contains("://") || s.contains('/') {
            return Err(format!(
                "`{s}` is not an address: write a host name or IP, optionally `:port`, without scheme or path"
            ));
        }
        let port = |p: &str| {
            p.parse::<u16>().ok().filter(|p| *p != 0).ok_or_else(|| format!("`{p}` is not a TCP port (1-65535)"))
        };
        if let Some(rest) = s.strip_prefix('[') {
            let (host, after) = rest.split_once(']').ok_or_else(|| format!("`{s}`: missing `]`"))?;
            let port = match after {
                "" => 443,
                p => port(p.strip_prefix(':').ok_or_else(|| format!("`{s}`: expected `:port` after `]`"))?)?,
            };
            return Ok(Endpoint::new(host, port));
        }
        if s.matches(':').count() > 1 {
            return Ok(Endpoint::new(s, 443)); // bare IPv6 literal
        }
        let (host, port) = match s.split_once(':') {
            Some((h, p)) => (h, port(p)?),
            None => (s, 443),
        };
        if host.is_empty() || !host.chars().all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '-') {
            return Err(format!("`{host}` is not a host name or IP address"));
        }
        Ok(Endpoint::new(host, port))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_information_is_refused_without_repeating_it() {
        for address in
            ["https://root:Canary-Pw-9@bmc01", "root:Canary-Pw-9@bmc01", "Canary-Pw-9@10.0.0.1:443", "[fd00::1]@x"]
        {
            let err = address.parse::<Endpoint>().unwrap_err();
            assert!(err.contains("credentials never belong in the inventory"), "{err}");
            assert!(!err.contains("Canary") && !err.contains("root"), "{err}");
        }
    }

    #[test]
    fn parses_the_usual_forms() {
        assert_eq!("bmc1.lab".parse(), Ok(Endpoint::new("bmc1.lab", 443)));
        assert_eq!("10.0.0.5:8443".parse(), Ok(Endpoint::new("10.0.0.5", 8443)));
        assert_eq!("[fd00::1]:444".parse(), Ok(Endpoint::new("fd00::1", 444)));
        assert_eq!("fd00::1".parse(), Ok(Endpoint::new("fd00::1", 443)));
        assert_eq!(Endpoint::new("fd00::1", 443).origin(), "https://[fd00::1]:443");
    }

    #[test]
    fn refuses_urls_and_junk() {
        assert!("https://bmc".parse::<Endpoint>().unwrap_err().contains("without scheme"));
        assert!("bmc:0".parse::<Endpoint>().unwrap_err().contains("not a TCP port"));
        assert!("bmc:http".parse::<Endpoint>().is_err());
        assert!("bad host".parse::<Endpoint>().is_err());
        assert!("user@bmc".parse::<Endpoint>().is_err());
        assert!("".parse::<Endpoint>().is_err());
    }
}

//! Where an ERCS VM's WinRM listener is: `http://IP:5985/wsman` by default (what
//! `New-PSSession -ComputerName IP` uses), or HTTPS on 5986 with a TLS policy.

use crate::gateway::TlsPolicy;
use std::fmt;
use std::str::FromStr;

/// One ERCS VM's WinRM listener.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PepEndpoint {
    /// IP address or host name.
    pub host: String,
    /// TCP port.
    pub port: u16,
    /// `Some` for HTTPS: TLS then protects the bodies and WinRM message sealing is off, as
    /// Windows and pypsrp do on 5986.
    pub tls: Option<TlsPolicy>,
}

impl PepEndpoint {
    /// Plain WinRM on `host:5985`.
    pub fn http(host: impl Into<String>) -> PepEndpoint {
        PepEndpoint { host: host.into(), port: 5985, tls: None }
    }

    /// The WS-Man URL.
    pub fn url(&self) -> String {
        let scheme = if self.tls.is_some() { "https" } else { "http" };
        let host = if self.host.contains(':') { format!("[{}]", self.host) } else { self.host.clone() };
        format!("{scheme}://{host}:{}/wsman", self.port)
    }
}

impl fmt::Display for PepEndpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.url())
    }
}

impl FromStr for PepEndpoint {
    type Err = String;

    /// `HOST`, `HOST:PORT`, `http://HOST[:PORT][/wsman]` or `https://HOST[:PORT][/wsman]` (HTTPS
    /// trusts the system roots until a TLS policy is set).
    fn from_str(text: &str) -> Result<Self, String> {
        let text = text.trim();
        // `user:password@host`: never repeat it, it may be a password.
        if text.contains('@') {
            return Err("the PEP address holds `@`, as in `user:password@host`: credentials never belong in the \
                        inventory (the value is not repeated here); write the ERCS VM's IP or host name, and give \
                        the CloudAdmin password through --cloudadmin-password"
                .into());
        }
        let (tls, rest) = if let Some(rest) = text.strip_prefix("https://") {
            (Some(TlsPolicy::SystemRoots), rest)
        } else {
            (None, text.strip_prefix("http://").unwrap_or(text))
        };
        let authority = rest.strip_suffix("/wsman").unwrap_or(rest).trim_end_matches('/');
        if authority.is_empty() || authority.contains('/') || authority.contains(char::is_whitespace) {
            return Err(format!(
                "`{text}` is not a PEP address: expected an ERCS VM's IP or host name, optionally with :PORT or an http(s):// prefix"
            ));
        }
        let default_port = if tls.is_some() { 5986 } else { 5985 };
        let (host, port) = if let Some(bracketed) = authority.strip_prefix('[') {
            let (host, after) = bracketed.split_once(']').ok_or_else(|| format!("`{text}`: unclosed `[`"))?;
            (host.to_owned(), after.strip_prefix(':'))
        } else if authority.matches(':').count() == 1 {
            let (host, port) = authority.split_once(':').expect("one colon");
            (host.to_owned(), Some(port))
        } else {
            (authority.to_owned(), None)
        };
        let port = match port {
            None => default_port,
            Some(p) => p.parse().map_err(|_| format!("`{text}`: port `{p}` is not a number from 1 to 65535"))?,
        };
        if port == 0 {
            return Err(format!("`{text}`: port 0 is not a listener"));
        }
        Ok(PepEndpoint { host, port, tls })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_information_is_refused_without_repeating_it() {
        for text in ["https://admin:Canary-Pw-1@ercs01", "admin:Canary-Pw-1@10.0.0.4", "Canary-Pw-1@ercs01:5985"] {
            let err = text.parse::<PepEndpoint>().unwrap_err();
            assert!(err.contains("credentials never belong") && !err.contains("Canary"), "{err}");
        }
    }

    #[test]
    fn addresses_default_to_winrm_http() {
        let e: PepEndpoint = "10.0.0.4".parse().unwrap();
        assert_eq!(e.url(), "http://10.0.0.4:5985/wsman");
        assert_eq!("10.0.0.4:15985".parse::<PepEndpoint>().unwrap().port, 15985);
        assert_eq!("http://ercs01/wsman".parse::<PepEndpoint>().unwrap(), PepEndpoint::http("ercs01"));
        let s: PepEndpoint = "https://[fd00::4]".parse().unwrap();
        assert_eq!((s.host.as_str(), s.port, s.url()), ("fd00::4", 5986, "https://[fd00::4]:5986/wsman".into()));
        for bad in ["", "10.0.0.4:x", "http://a/b/c", "a b", "h:0"] {
            assert!(bad.parse::<PepEndpoint>().is_err(), "{bad}");
        }
    }
}

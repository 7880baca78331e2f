//! How the gateway trusts a BMC's certificate: system roots, a CA file, a pinned certificate
//! SHA-256, or (loudly) not at all. BMCs mostly ship self-signed certificates, so pinning is the
//! practical secure choice; `insecure` exists for labs and is reported wherever it is used.

use crate::files;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, WebPkiSupportedAlgorithms};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, SignatureScheme};
use sha2::{Digest, Sha256};
use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;
use std::sync::{Arc, Mutex};

/// The TLS trust policy for one BMC.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TlsPolicy {
    /// The operating system's trust store.
    SystemRoots,
    /// Certificates signed by the CA(s) in this PEM file.
    CaFile(PathBuf),
    /// Exactly the certificate whose DER encoding has this SHA-256.
    PinnedSha256([u8; 32]),
    /// Any certificate. Only for labs; every use is logged as a warning.
    Insecure,
}

impl fmt::Display for TlsPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TlsPolicy::SystemRoots => f.write_str("system"),
            TlsPolicy::CaFile(p) => write!(f, "ca-file:{}", p.display()),
            TlsPolicy::PinnedSha256(d) => write!(f, "sha256:{}", hex::encode(d)),
            TlsPolicy::Insecure => f.write_str("insecure"),
        }
    }
}

impl FromStr for TlsPolicy {
    type Err = String;

    /// `system`, `ca-file:PATH`, `sha256:HEX` (64 hex digits; `:` separators allowed) or `insecure`.
    fn from_str(s: &str) -> Result<Self, String> {
        let s = s.trim();
        if s == "system" {
            return Ok(TlsPolicy::SystemRoots);
        }
        if s == "insecure" {
            return Ok(TlsPolicy::Insecure);
        }
        if let Some(path) = s.strip_prefix("ca-file:") {
            return match path {
                "" => Err("`ca-file:` needs a path to a PEM file".into()),
                p => Ok(TlsPolicy::CaFile(PathBuf::from(p))),
            };
        }
        if let Some(hex_digest) = s.strip_prefix("sha256:") {
            let clean: String = hex_digest.chars().filter(|c| *c != ':').collect();
            let bytes = hex::decode(&clean).ok().and_then(|b| <[u8; 32]>::try_from(b).ok());
            return bytes
                .map(TlsPolicy::PinnedSha256)
                .ok_or_else(|| format!("`{hex_digest}` is not a SHA-256 fingerprint: expected 64 hex digits"));
        }
        Err(format!("unknown TLS policy `{s}`: expected `system`, `ca-file:PATH`, `sha256:HEX` or `insecure`"))
    }
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// The SHA-256 of a certificate's DER encoding, as pinned by [`TlsPolicy::PinnedSha256`].
pub fn fingerprint(der: &[u8]) -> [u8; 32] {
    Sha256::digest(der).into()
}

/// The leaf certificate a BMC last presented to a [`TlsPolicy::PinnedSha256`] or
/// [`TlsPolicy::Insecure`] client: what tells a changed certificate from a dead BMC, and what
/// `discover` pins. rustls reports a refused certificate only as text, hence this side channel.
#[derive(Clone, Debug, Default)]
pub struct Presented(Arc<Mutex<Option<CertificateDer<'static>>>>);

impl Presented {
    /// The certificate's DER encoding, if a handshake got that far.
    pub fn der(&self) -> Option<Vec<u8>> {
        self.0.lock().expect("presented certificate").as_ref().map(|c| c.to_vec())
    }

    fn record(&self, cert: &CertificateDer<'_>) {
        *self.0.lock().expect("presented certificate") = Some(cert.clone().into_owned());
    }
}

/// Builds the rustls configuration for a policy.
pub fn client_config(policy: &TlsPolicy) -> Result<ClientConfig, String> {
    client_config_observed(policy).map(|(config, _)| config)
}

/// [`client_config`], and for the policies that check the certificate themselves (a pin, or
/// none) where the presented certificate is recorded.
pub fn client_config_observed(policy: &TlsPolicy) -> Result<(ClientConfig, Option<Presented>), String> {
    let provider = provider();
    let presented = Presented::default();
    let algorithms = provider.signature_verification_algorithms;
    let pinned = |pin| Pinned { pin, algorithms, presented: presented.clone() };
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS setup: {e}"))?;
    let config = match policy {
        TlsPolicy::SystemRoots => {
            let verifier = rustls_platform_verifier::Verifier::new(provider)
                .map_err(|e| format!("cannot load the system trust store: {e}"))?;
            builder.dangerous().with_custom_certificate_verifier(Arc::new(verifier)).with_no_client_auth()
        }
        TlsPolicy::CaFile(path) => {
            let pem = files::read_bounded(path, "the CA file", files::MAX_CA_FILE).map_err(|e| e.to_string())?;
            let mut roots = rustls::RootCertStore::empty();
            let mut count = 0;
            for cert in rustls_pemfile::certs(&mut pem.as_slice()) {
                let cert = cert.map_err(|e| format!("CA file {}: not valid PEM: {e}", path.display()))?;
                roots.add(cert).map_err(|e| format!("CA file {}: unusable certificate: {e}", path.display()))?;
                count += 1;
            }
            if count == 0 {
                return Err(format!("CA file {} holds no PEM certificate", path.display()));
            }
            builder.with_root_certificates(roots).with_no_client_auth()
        }
        TlsPolicy::PinnedSha256(pin) => {
            let verifier = Arc::new(pinned(Some(*pin)));
            return Ok((
                builder.dangerous().with_custom_certificate_verifier(verifier).with_no_client_auth(),
                Some(presented),
            ));
        }
        TlsPolicy::Insecure => {
            let verifier = Arc::new(pinned(None));
            return Ok((
                builder.dangerous().with_custom_certificate_verifier(verifier).with_no_client_auth(),
                Some(presented),
            ));
        }
    };
    Ok((config, None))
}

/// Accepts exactly the pinned certificate (or, without a pin, any certificate), while still
/// checking that the server holds the certificate's private key.
#[derive(Debug)]
struct Pinned {
    pin: Option<[u8; 32]>,
    algorithms: WebPkiSupportedAlgorithms,
    presented: Presented,
}

impl ServerCertVerifier for Pinned {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        self.presented.record(end_entity);
        match self.pin {
            None => Ok(ServerCertVerified::assertion()),
            Some(pin) => {
                let seen = fingerprint(end_entity);
                if seen == pin {
                    Ok(ServerCertVerified::assertion())
                } else {
                    Err(rustls::Error::General(format!(
                        "certificate fingerprint mismatch: pinned sha256:{}, BMC presented sha256:{}",
                        hex::encode(pin),
                        hex::encode(seen)
                    )))
                }
            }
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn policies_round_trip_through_text() {
        for text in ["system", "insecure", "ca-file:/etc/bmc-ca.pem", &format!("sha256:{}", "ab".repeat(32))] {
            assert_eq!(text.parse::<TlsPolicy>().unwrap().to_string(), text);
        }
        let colons = ["AB"; 32].join(":");
        assert!(matches!(format!("sha256:{colons}").parse(), Ok(TlsPolicy::PinnedSha256(_))));
    }

    #[test]
    fn bad_policies_say_what_is_expected() {
        assert!("sha256:abc".parse::<TlsPolicy>().unwrap_err().contains("64 hex digits"));
        assert!("trust-me".parse::<TlsPolicy>().unwrap_err().contains("expected `system`"));
        assert!("ca-file:".parse::<TlsPolicy>().unwrap_err().contains("needs a path"));
    }

    #[test]
    fn a_missing_or_empty_ca_file_is_reported() {
        let err = client_config(&TlsPolicy::CaFile("/nonexistent/ca.pem".into())).unwrap_err();
        assert!(err.contains("/nonexistent/ca.pem"), "{err}");
        let empty = std::env::temp_dir().join(format!("bmc-rotate-empty-ca-{}.pem", std::process::id()));
        std::fs::write(&empty, "not a certificate").unwrap();
        let err = client_config(&TlsPolicy::CaFile(empty.clone())).unwrap_err();
        std::fs::remove_file(&empty).ok();
        assert!(err.contains("no PEM certificate"), "{err}");
    }
}

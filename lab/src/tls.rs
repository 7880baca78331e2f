//! Self-signed server identities, made fresh for every simulated BMC.

use sha2::{Digest, Sha256};
use std::sync::Arc;

/// A certificate and its private key, plus the certificate's SHA-256 for pinning.
#[derive(Clone)]
pub struct TlsIdentity {
    /// The certificate, DER.
    pub cert_der: Vec<u8>,
    cert_pem: String,
    key_der: Vec<u8>,
    /// SHA-256 of `cert_der`.
    pub sha256: [u8; 32],
}

impl TlsIdentity {
    /// A self-signed certificate valid for `localhost`, `127.0.0.1`, `::1` and `names`.
    pub fn self_signed(names: &[&str]) -> anyhow::Result<TlsIdentity> {
        let mut sans: Vec<String> = vec!["localhost".into(), "127.0.0.1".into(), "::1".into()];
        sans.extend(names.iter().map(|n| n.to_string()));
        let key = rcgen::KeyPair::generate()?;
        let cert = rcgen::CertificateParams::new(sans)?.self_signed(&key)?;
        let cert_der = cert.der().to_vec();
        let sha256 = Sha256::digest(&cert_der).into();
        Ok(TlsIdentity { cert_der, cert_pem: cert.pem(), key_der: key.serialize_der(), sha256 })
    }

    /// The identity saved by [`TlsIdentity::key_pem`] and [`TlsIdentity::cert_pem`], back (a
    /// restarted lab presents the same certificate, so pins stay valid).
    pub fn from_pem(cert_pem: &str, key_pem: &str) -> anyhow::Result<TlsIdentity> {
        use rustls::pki_types::pem::PemObject;
        let cert_der = rustls::pki_types::CertificateDer::from_pem_slice(cert_pem.as_bytes())
            .map_err(|e| anyhow::anyhow!("not a PEM certificate: {e}"))?
            .to_vec();
        let key = rcgen::KeyPair::from_pem(key_pem).map_err(|e| anyhow::anyhow!("not a PEM private key: {e}"))?;
        let sha256 = Sha256::digest(&cert_der).into();
        Ok(TlsIdentity { cert_der, cert_pem: cert_pem.to_owned(), key_der: key.serialize_der(), sha256 })
    }

    /// The private key as PKCS#8 PEM (to save with mode 0600).
    pub fn key_pem(&self) -> zeroize::Zeroizing<String> {
        let body = base64::Engine::encode(&base64::engine::general_purpose::STANDARD, &self.key_der);
        let mut pem = String::from("-----BEGIN PRIVATE KEY-----\n");
        for line in body.as_bytes().chunks(64) {
            pem.push_str(std::str::from_utf8(line).expect("base64 is ASCII"));
            pem.push('\n');
        }
        pem.push_str("-----END PRIVATE KEY-----\n");
        zeroize::Zeroizing::new(pem)
    }

    /// The fingerprint as bmc-rotate's TLS policy text: `sha256:<hex>`.
    pub fn pin(&self) -> String {
        format!("sha256:{}", hex::encode(self.sha256))
    }

    /// The certificate as PEM (for a `ca-file:` policy: a self-signed certificate is its own CA).
    pub fn cert_pem(&self) -> &str {
        &self.cert_pem
    }

    /// A rustls server configuration presenting this identity.
    pub fn server_config(&self) -> anyhow::Result<Arc<rustls::ServerConfig>> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let key = rustls::pki_types::PrivateKeyDer::Pkcs8(self.key_der.clone().into());
        let config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()?
            .with_no_client_auth()
            .with_single_cert(vec![self.cert_der.clone().into()], key)?;
        Ok(Arc::new(config))
    }
}

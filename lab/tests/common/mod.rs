//! A plain HTTPS client for the lab's own tests and its scale bench (which includes this file
//! with `#[path]`): reqwest over rustls with the `ring` provider, trusting exactly one simulated
//! BMC's self-signed certificate, with keep-alive. It adds nothing of its own to the requests
//! (no retries, no rewriting), so what the tests see is what the simulator sent.

// The tests and the bench each use part of this helper.
#![allow(dead_code)]

use bmc_lab::SimulatedBmc;
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;
use std::sync::Arc;
use std::time::Duration;

pub use reqwest::Method;

/// A keep-alive HTTPS client for one simulated BMC that trusts only that BMC's certificate.
pub struct Pinned {
    client: reqwest::Client,
    origin: String,
}

/// A complete answer.
pub struct Answer {
    /// HTTP status.
    pub status: u16,
    /// Headers, lower-case names.
    pub headers: Vec<(String, String)>,
    /// The body.
    pub body: Vec<u8>,
}

impl Answer {
    /// The first header of that (lower-case) name.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }

    /// The body as JSON.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).expect("a JSON body")
    }
}

impl Pinned {
    /// A client for `bmc`; every request may take up to 60 s.
    pub fn to(bmc: &SimulatedBmc) -> Pinned {
        Pinned::with_timeout(bmc, Duration::from_secs(60))
    }

    /// A client for `bmc` whose requests fail after `timeout` without a complete answer.
    pub fn with_timeout(bmc: &SimulatedBmc, timeout: Duration) -> Pinned {
        // A self-signed certificate is its own trust anchor: with it as the only root, the
        // client accepts this BMC's certificate and no other.
        let cert = CertificateDer::from_pem_slice(bmc.cert_pem().as_bytes()).expect("the lab's certificate");
        let mut roots = rustls::RootCertStore::empty();
        roots.add(cert).expect("a usable trust anchor");
        let config = rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .expect("TLS versions")
            .with_root_certificates(roots)
            .with_no_client_auth();
        let client = reqwest::Client::builder()
            .tls_backend_preconfigured(config)
            .no_proxy()
            .redirect(reqwest::redirect::Policy::none())
            .https_only(true)
            .connect_timeout(Duration::from_secs(10))
            .timeout(timeout)
            .build()
            .expect("an HTTPS client");
        Pinned { client, origin: format!("https://{}", bmc.addr()) }
    }

    /// A request to `path` on the BMC, to complete with headers, credentials and a body.
    pub fn request(&self, method: Method, path: &str) -> reqwest::RequestBuilder {
        self.client.request(method, format!("{}{path}", self.origin))
    }

    /// `GET path` with Basic credentials.
    pub async fn get(&self, path: &str, user: &str, password: &str) -> Result<Answer, reqwest::Error> {
        send(self.request(Method::GET, path).basic_auth(user, Some(password))).await
    }

    /// `PATCH path` of `{"Password": new}` with `If-Match: *` and Basic credentials.
    pub async fn change_password(
        &self,
        path: &str,
        user: &str,
        password: &str,
        new: &str,
    ) -> Result<Answer, reqwest::Error> {
        let body = serde_json::json!({ "Password": new }).to_string();
        let request = self
            .request(Method::PATCH, path)
            .basic_auth(user, Some(password))
            .header("If-Match", "*")
            .header("Content-Type", "application/json")
            .body(body);
        send(request).await
    }
}

/// Sends a request and reads the whole answer.
pub async fn send(request: reqwest::RequestBuilder) -> Result<Answer, reqwest::Error> {
    let response = request.send().await?;
    let status = response.status().as_u16();
    let headers = response
        .headers()
        .iter()
        .map(|(k, v)| (k.as_str().to_owned(), String::from_utf8_lossy(v.as_bytes()).into_owned()))
        .collect();
    let body = response.bytes().await?.to_vec();
    Ok(Answer { status, headers, body })
}

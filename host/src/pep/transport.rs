//! One authenticated WinRM connection. NTLM authenticates a *connection*, not a request, so the
//! session owns one dedicated HTTP/1.1 keep-alive connection (a pool could switch sockets): the
//! handshake runs on empty bodies, then every SOAP envelope is sealed both ways. SOAP text never
//! leaves this module in clear on plain HTTP, and is never logged.

use super::PepEndpoint;
use crate::gateway::{Presented, TlsPolicy, client_config_observed, fingerprint};
use base64::Engine as _;
use bmc_winrm::ntlm::{self, Sealer};
use bmc_winrm::sealing;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::{self, SendRequest};
use hyper_util::rt::TokioIo;
use secrecy::{ExposeSecret, SecretString};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use zeroize::Zeroizing;

/// Why an exchange failed, before any WS-Man meaning is given to it.
#[derive(Debug)]
pub(crate) enum TransportError {
    /// No connection could be made.
    Connect(String),
    /// The credential was refused (401 after AUTHENTICATE).
    Refused,
    /// The listener presented another certificate than the pinned one: nothing was sent.
    CertificateChanged {
        /// The pin.
        pinned: [u8; 32],
        /// The SHA-256 of the certificate presented.
        presented: [u8; 32],
    },
    /// The server spoke, but not the protocol expected.
    Protocol(String),
    /// The connection broke or the answer did not arrive in time.
    Broken(String),
}

/// An answer: HTTP status and the (unsealed) SOAP text, empty if there was none.
pub(crate) struct Answer {
    pub status: u16,
    pub soap: String,
}

trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

pub(crate) struct Connection {
    sender: SendRequest<Full<Bytes>>,
    /// `None` over HTTPS, where TLS protects the bodies.
    sealer: Option<Sealer>,
    authority: String,
    read_timeout: Duration,
}

/// A failed handshake that is in truth a certificate other than the pinned one.
fn changed_certificate(policy: &TlsPolicy, presented: Option<&Presented>) -> Option<TransportError> {
    let TlsPolicy::PinnedSha256(pinned) = policy else { return None };
    let presented = fingerprint(&presented?.der()?);
    (presented != *pinned).then_some(TransportError::CertificateChanged { pinned: *pinned, presented })
}

/// `DOMAIN\user` → (`user`, `DOMAIN`); a UPN `user@domain` goes whole as the user name.
fn split_account(account: &str) -> (&str, &str) {
    match account.split_once('\\') {
        Some((domain, user)) => (user, domain),
        None => (account, ""),
    }
}

impl Connection {
    /// Connects, authenticates `account` with NTLM and sets up sealing.
    pub(crate) async fn open(
        endpoint: &PepEndpoint,
        account: &str,
        password: &SecretString,
        connect_timeout: Duration,
        read_timeout: Duration,
    ) -> Result<Connection, TransportError> {
        let tcp = tokio::time::timeout(connect_timeout, TcpStream::connect((endpoint.host.as_str(), endpoint.port)))
            .await
            .map_err(|_| TransportError::Connect(format!("no TCP connection within {connect_timeout:?}")))?
            .map_err(|e| TransportError::Connect(e.to_string()))?;
        let _ = tcp.set_nodelay(true);
        let io: Box<dyn Io> = match &endpoint.tls {
            None => Box::new(tcp),
            Some(policy) => {
                let (config, presented) = client_config_observed(policy).map_err(TransportError::Connect)?;
                let name = rustls::pki_types::ServerName::try_from(endpoint.host.clone())
                    .map_err(|e| TransportError::Connect(format!("`{}` as a TLS name: {e}", endpoint.host)))?;
                let tls = tokio_rustls::TlsConnector::from(Arc::new(config));
                let stream = tokio::time::timeout(connect_timeout, tls.connect(name, tcp))
                    .await
                    .map_err(|_| TransportError::Connect("TLS handshake timed out".into()))?
                    .map_err(|e| {
                        changed_certificate(policy, presented.as_ref())
                            .unwrap_or_else(|| TransportError::Connect(format!("TLS: {e}")))
                    })?;
                Box::new(stream)
            }
        };
        let (sender, driver) = http1::handshake(TokioIo::new(io))
            .await
            .map_err(|e| TransportError::Connect(format!("HTTP handshake: {e}")))?;
        tokio::spawn(async move {
            if let Err(error) = driver.await {
                tracing::debug!(%error, "WinRM connection closed");
            }
        });
        let authority = match endpoint.host.contains(':') {
            true => format!("[{}]:{}", endpoint.host, endpoint.port),
            false => format!("{}:{}", endpoint.host, endpoint.port),
        };
        let mut connection = Connection { sender, sealer: None, authority, read_timeout };
        let sealer = tokio::time::timeout(connect_timeout, connection.authenticate(account, password)).await.map_err(
            |_| TransportError::Connect(format!("authentication did not finish within {connect_timeout:?}")),
        )??;
        connection.sealer = if endpoint.tls.is_some() { None } else { Some(sealer) };
        Ok(connection)
    }

    async fn authenticate(&mut self, account: &str, password: &SecretString) -> Result<Sealer, TransportError> {
        let (user, domain) = split_account(account);
        let mut client =
            ntlm::Client::new(user, domain, Zeroizing::new(password.expose_secret().to_owned()), "BMC-ROTATE");
        let b64 = base64::engine::general_purpose::STANDARD;
        let negotiate = format!("Negotiate {}", b64.encode(client.negotiate()));
        let (status, headers, _) = self.post(Some(&negotiate), None, Bytes::new()).await?;
        let challenge = headers
            .get_all(hyper::header::WWW_AUTHENTICATE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .find_map(|v| v.strip_prefix("Negotiate ").or_else(|| v.strip_prefix("NTLM ")))
            .and_then(|token| b64.decode(token.trim()).ok());
        let Some(challenge) = challenge.filter(|_| status == 401) else {
            return Err(TransportError::Protocol(format!(
                "expected 401 with a Negotiate challenge to the NTLM negotiate message, got HTTP {status}"
            )));
        };
        let (authenticate, sealer) =
            client.authenticate(&challenge).map_err(|e| TransportError::Protocol(e.to_string()))?;
        let header = format!("Negotiate {}", b64.encode(authenticate));
        match self.post(Some(&header), None, Bytes::new()).await?.0 {
            401 => Err(TransportError::Refused),
            200..=299 => Ok(sealer),
            other => Err(TransportError::Protocol(format!("HTTP {other} to the NTLM authenticate message"))),
        }
    }

    async fn post(
        &mut self,
        authorization: Option<&str>,
        content_type: Option<&str>,
        body: Bytes,
    ) -> Result<(u16, hyper::HeaderMap, Bytes), TransportError> {
        let mut request = hyper::Request::post("/wsman")
            .header(hyper::header::HOST, &self.authority)
            .header(hyper::header::CONNECTION, "Keep-Alive")
            .header(hyper::header::USER_AGENT, concat!("bmc-rotate/", env!("CARGO_PKG_VERSION")))
            .header(hyper::header::CONTENT_LENGTH, body.len());
        if let Some(value) = authorization {
            request = request.header(hyper::header::AUTHORIZATION, value);
        }
        if let Some(value) = content_type {
            request = request.header(hyper::header::CONTENT_TYPE, value);
        }
        let request = request.body(Full::new(body)).map_err(|e| TransportError::Protocol(e.to_string()))?;
        let exchange = async {
            self.sender.ready().await.map_err(|e| TransportError::Broken(e.to_string()))?;
            let response =
                self.sender.send_request(request).await.map_err(|e| TransportError::Broken(e.to_string()))?;
            let (parts, body) = response.into_parts();
            let body = body.collect().await.map_err(|e| TransportError::Broken(e.to_string()))?.to_bytes();
            Ok((parts.status.as_u16(), parts.headers, body))
        };
        tokio::time::timeout(self.read_timeout, exchange)
            .await
            .map_err(|_| TransportError::Broken(format!("no answer within {:?}", self.read_timeout)))?
    }

    /// Sends one SOAP envelope and returns the answer, sealing and unsealing as the transport needs.
    pub(crate) async fn exchange(&mut self, soap: &str) -> Result<Answer, TransportError> {
        let (content_type, body) = match &mut self.sealer {
            Some(sealer) => (sealing::CONTENT_TYPE, Bytes::from(sealing::seal(sealer, soap.as_bytes()))),
            None => ("application/soap+xml;charset=UTF-8", Bytes::copy_from_slice(soap.as_bytes())),
        };
        let (status, headers, body) = self.post(None, Some(content_type), body).await?;
        if status == 401 {
            return Err(TransportError::Broken("the server dropped the authenticated session (HTTP 401)".into()));
        }
        let sealed = headers
            .get(hyper::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("multipart/encrypted"));
        let soap = match (&mut self.sealer, sealed) {
            (Some(sealer), true) => {
                sealing::unseal(sealer, &body).map_err(|e| TransportError::Protocol(e.to_string()))?
            }
            (Some(_), false) if !body.is_empty() => {
                return Err(TransportError::Protocol(format!(
                    "HTTP {status} with an unsealed body on a sealed session"
                )));
            }
            (None, true) => return Err(TransportError::Protocol("a sealed answer over HTTPS".into())),
            _ => body.to_vec(),
        };
        let soap = String::from_utf8(soap).map_err(|_| TransportError::Protocol("the answer is not UTF-8".into()))?;
        Ok(Answer { status, soap })
    }
}

#[cfg(test)]
mod tests {
    use super::split_account;

    #[test]
    fn accounts_split_into_user_and_domain() {
        assert_eq!(split_account(r"AZURESTACK\CloudAdmin"), ("CloudAdmin", "AZURESTACK"));
        assert_eq!(split_account("cloudadmin@azurestack.local"), ("cloudadmin@azurestack.local", ""));
    }
}

//! The HTTP gateway: the only way a plugin reaches the network.
//!
//! One [`Gateway`] serves one BMC. It resolves the BMC's address once and pins it, never follows
//! redirects, applies the BMC's TLS policy, enforces timeouts and a response-size cap, splices
//! secrets into the request at send time, and captures `X-Auth-Token` into a secret instead of
//! handing it to the guest. Plain Rust, no wasm: the runtime's `http` import is a thin layer on top.

mod automata;
pub mod echo;
mod endpoint;
pub mod redact;
pub mod request;
mod tls;

pub use endpoint::Endpoint;
pub use request::{Auth, Method, Part, Request};
pub use tls::{Presented, TlsPolicy, client_config, client_config_observed, fingerprint};

use bytes::Bytes;
use secrecy::SecretString;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};
use zeroize::Zeroizing;

/// Bounds on what one BMC job may do through the gateway.
#[derive(Clone, Debug)]
pub struct Limits {
    /// TCP + TLS connection set-up.
    pub connect_timeout: Duration,
    /// One request, from send to the last byte of the answer.
    pub request_timeout: Duration,
    /// Largest response body accepted (Redfish documents are small).
    pub max_response_bytes: usize,
    /// Most requests one job (one plugin call) may send.
    pub max_requests_per_job: u32,
    /// Whether [`Gateway::rest`] closes the BMC's connection. A fleet too large to hold one open
    /// to every BMC between phases sets it (see `fleet::members`); a small one keeps them, as a
    /// new connection costs a TLS handshake.
    pub close_when_resting: bool,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            connect_timeout: Duration::from_secs(10),
            request_timeout: Duration::from_secs(60),
            max_response_bytes: 1 << 20,
            max_requests_per_job: 200,
            close_when_resting: false,
        }
    }
}

/// A complete answer from the BMC.
pub struct Response {
    /// HTTP status.
    pub status: u16,
    /// Headers, lower-case names, without [`request::HIDDEN_RESPONSE_HEADERS`] (credentials and
    /// the wire's lengths and encodings).
    pub headers: Vec<(String, String)>,
    /// The body.
    pub body: Vec<u8>,
    /// The `X-Auth-Token` the BMC returned.
    pub session_token: Option<SecretString>,
}

/// Why a request got no answer. Mirrors the contract's `http-error`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Failure {
    /// Refused before sending.
    Denied(String),
    /// Refused before sending by the plugin's capability manifest or the secret placement rules.
    Forbidden(String),
    /// No connection: the request was not sent.
    Connect(String),
    /// Sent, but no complete answer: its effect is unknown.
    NoResponse(String),
    /// The answer exceeded [`Limits::max_response_bytes`].
    TooLarge(String),
    /// The BMC presented another certificate than the pinned one: nothing was sent. Not a dead
    /// BMC — possibly someone in the middle — so it is never reported as `Connect`.
    CertificateChanged {
        /// The pin.
        pinned: [u8; 32],
        /// The SHA-256 of the certificate the BMC presented.
        presented: [u8; 32],
    },
}

/// What the operator reads when a BMC's certificate no longer matches its pin.
pub fn certificate_changed(pinned: &[u8; 32], presented: &[u8; 32]) -> String {
    format!(
        "certificate changed: pinned {}, presented {}; this can be an attack — verify the BMC's certificate before \
         updating the pin",
        hex::encode(pinned),
        hex::encode(presented)
    )
}

/// The one operation the runtime's `http` import needs from the network: send a request to the
/// job's BMC and read the whole answer. [`Gateway`] is the real one; the import's tests put a
/// scripted BMC behind it, with no socket and no TLS.
pub trait Outbound: Send + Sync {
    /// The BMC, as shown in logs.
    fn bmc(&self) -> String;

    /// Most requests one job may send.
    fn max_requests_per_job(&self) -> u32;

    /// Sends one request and reads the whole answer, within `deadline` if one is given.
    fn send<'a>(
        &'a self,
        request: &'a Request,
        deadline: Option<Instant>,
    ) -> Pin<Box<dyn Future<Output = Result<Response, Failure>> + Send + 'a>>;
}

impl Outbound for Gateway {
    fn bmc(&self) -> String {
        match &self.name {
            Some(name) => format!("{name} ({})", self.endpoint),
            None => self.endpoint.to_string(),
        }
    }

    fn max_requests_per_job(&self) -> u32 {
        self.limits.max_requests_per_job
    }

    fn send<'a>(
        &'a self,
        request: &'a Request,
        deadline: Option<Instant>,
    ) -> Pin<Box<dyn Future<Output = Result<Response, Failure>> + Send + 'a>> {
        Box::pin(Gateway::send(self, request, deadline))
    }
}

/// A client that dials `addr` for `endpoint` with `config`, keeping idle connections 30 s.
fn client(
    config: rustls::ClientConfig,
    endpoint: &Endpoint,
    addr: SocketAddr,
    limits: &Limits,
) -> reqwest::Result<reqwest::Client> {
    reqwest::Client::builder()
        .use_preconfigured_tls(config)
        .resolve(&endpoint.host, addr)
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
        .https_only(true)
        .connect_timeout(limits.connect_timeout)
        .pool_idle_timeout(Duration::from_secs(30))
        .pool_max_idle_per_host(4)
        .user_agent(concat!("bmc-rotate/", env!("CARGO_PKG_VERSION")))
        .build()
}

/// Why a gateway could not be set up for a BMC.
#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    /// The name did not resolve.
    #[error("cannot resolve BMC address {endpoint}: {reason}")]
    Resolve {
        /// The endpoint.
        endpoint: Endpoint,
        /// What the resolver said.
        reason: String,
    },
    /// The TLS policy could not be applied.
    #[error("TLS policy `{policy}` for {endpoint}: {reason}")]
    Tls {
        /// The endpoint.
        endpoint: Endpoint,
        /// The policy.
        policy: TlsPolicy,
        /// What went wrong.
        reason: String,
    },
}

/// The HTTP client for one BMC, shared by every job on that BMC (keep-alive).
pub struct Gateway {
    /// Built when a request needs it; dropped (closing its idle connection) by [`Gateway::rest`].
    client: Mutex<Option<reqwest::Client>>,
    /// What the client is built from, kept to build it again after a rest.
    config: rustls::ClientConfig,
    /// The inventory's name for the BMC, when it has one: what an operator greps a log for.
    name: Option<String>,
    endpoint: Endpoint,
    addr: SocketAddr,
    origin: reqwest::Url,
    tls: TlsPolicy,
    presented: Option<Presented>,
    limits: Limits,
}

impl Gateway {
    /// Resolves `endpoint` once and builds a client pinned to the first address found.
    pub async fn connect(endpoint: Endpoint, tls: TlsPolicy, limits: Limits) -> Result<Gateway, SetupError> {
        let resolve_error = |reason: String| SetupError::Resolve { endpoint: endpoint.clone(), reason };
        let addr = tokio::net::lookup_host((endpoint.host.as_str(), endpoint.port))
            .await
            .map_err(|e| resolve_error(e.to_string()))?
            .next()
            .ok_or_else(|| resolve_error("no address found".into()))?;
        Gateway::pinned(endpoint, addr, tls, limits)
    }

    /// A client for `endpoint` that always dials `addr`, without any name resolution.
    pub fn pinned(endpoint: Endpoint, addr: SocketAddr, tls: TlsPolicy, limits: Limits) -> Result<Gateway, SetupError> {
        if tls == TlsPolicy::Insecure {
            tracing::warn!(bmc = %endpoint, "TLS verification is OFF for this BMC (policy `insecure`)");
        }
        Gateway::build(endpoint, addr, tls, limits)
    }

    /// A client for `discover`: it accepts any certificate and records it
    /// ([`Gateway::presented_certificate`]), so that the operator can check it and pin it. Only
    /// for anonymous reads: a credential must never travel over a connection nobody verified.
    pub fn observe(endpoint: Endpoint, addr: SocketAddr, limits: Limits) -> Result<Gateway, SetupError> {
        Gateway::build(endpoint, addr, TlsPolicy::Insecure, limits)
    }

    fn build(endpoint: Endpoint, addr: SocketAddr, tls: TlsPolicy, limits: Limits) -> Result<Gateway, SetupError> {
        let tls_error = |reason: String| SetupError::Tls { endpoint: endpoint.clone(), policy: tls.clone(), reason };
        let (config, presented) = client_config_observed(&tls).map_err(tls_error)?;
        let origin = reqwest::Url::parse(&endpoint.origin()).map_err(|e| tls_error(format!("bad origin: {e}")))?;
        let client = client(config.clone(), &endpoint, addr, &limits).map_err(|e| tls_error(chain(&e)))?;
        let client = Mutex::new(Some(client));
        Ok(Gateway { client, config, name: None, endpoint, addr, origin, tls, presented, limits })
    }

    /// The client, built again if [`Gateway::rest`] dropped it.
    fn client(&self) -> Result<reqwest::Client, Failure> {
        let mut slot = self.client.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(client) = slot.as_ref() {
            return Ok(client.clone());
        }
        let built = client(self.config.clone(), &self.endpoint, self.addr, &self.limits)
            .map_err(|e| Failure::Connect(format!("cannot set up a client for {}: {}", self.endpoint, chain(&e))))?;
        Ok(slot.insert(built).clone())
    }

    /// The BMC's work in this phase is done. With [`Limits::close_when_resting`], its idle
    /// connection is closed now (a request in flight keeps its own until it ends) and the next
    /// request opens another; otherwise nothing happens.
    pub fn rest(&self) {
        if self.limits.close_when_resting {
            self.client.lock().unwrap_or_else(PoisonError::into_inner).take();
        }
    }

    /// Whether [`Gateway::rest`] closed the client and no request has built another since (so no
    /// connection to the BMC is open).
    pub fn is_resting(&self) -> bool {
        self.client.lock().unwrap_or_else(PoisonError::into_inner).is_none()
    }

    /// Names the BMC in every log line about it (and in plugins' log lines) as the inventory does.
    pub fn named(mut self, name: impl Into<String>) -> Gateway {
        self.name = Some(name.into());
        self
    }

    /// The inventory's name for the BMC, or its address when it has none.
    fn label(&self) -> String {
        self.name.clone().unwrap_or_else(|| self.endpoint.to_string())
    }

    /// The DER encoding of the leaf certificate the BMC presented last, when the policy is a pin
    /// or `insecure` and a handshake got that far.
    pub fn presented_certificate(&self) -> Option<Vec<u8>> {
        self.presented.as_ref()?.der()
    }

    /// A connection failure that is in truth a certificate other than the pinned one.
    fn changed_certificate(&self) -> Option<Failure> {
        let TlsPolicy::PinnedSha256(pinned) = self.tls else { return None };
        let presented = fingerprint(&self.presented_certificate()?);
        (presented != pinned).then_some(Failure::CertificateChanged { pinned, presented })
    }

    fn classify(&self, e: &reqwest::Error, timeout: Duration) -> Failure {
        match classify(e, timeout) {
            Failure::Connect(reason) => self
                .changed_certificate()
                .unwrap_or_else(|| Failure::Connect(format!("cannot connect to {} ({reason})", self.endpoint))),
            other => other,
        }
    }

    /// The BMC this gateway serves.
    pub fn endpoint(&self) -> &Endpoint {
        &self.endpoint
    }

    /// The pinned address.
    pub fn address(&self) -> SocketAddr {
        self.addr
    }

    /// The TLS policy in force.
    pub fn tls(&self) -> &TlsPolicy {
        &self.tls
    }

    /// The limits in force.
    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// Sends one request and reads the whole answer, within `deadline` if one is given.
    pub async fn send(&self, request: &Request, deadline: Option<Instant>) -> Result<Response, Failure> {
        request::check_sizes(request).map_err(Failure::Denied)?;
        request::check_path(&request.path).map_err(Failure::Denied)?;
        let headers = request::check_headers(&request.headers).map_err(Failure::Denied)?;
        let mut timeout = self.limits.request_timeout;
        if let Some(deadline) = deadline {
            timeout = timeout.min(deadline.saturating_duration_since(Instant::now()));
            if timeout.is_zero() {
                return Err(Failure::Denied("the job's deadline is spent".into()));
            }
        }
        let url = reqwest::Url::parse(&format!("{}{}", self.endpoint.origin(), request.path))
            .map_err(|e| Failure::Denied(format!("bad path: {e}")))?;
        if url.origin() != self.origin.origin() {
            return Err(Failure::Denied("the path leaves the job's BMC".into()));
        }

        let mut builder = self
            .client()?
            .request(request.method.to_http(), url)
            .headers(headers)
            // The host reads only identity-encoded answers: a compressed body would hide an
            // echoed secret from the redactor and hand the guest its compressed length.
            .header(http::header::ACCEPT_ENCODING, "identity")
            .timeout(timeout);
        match &request.auth {
            Auth::None => {}
            Auth::Basic { user, password } => {
                let token = request::basic_token(user, password);
                let value = Zeroizing::new(format!("Basic {}", token.as_str()).into_bytes());
                builder = builder.header(http::header::AUTHORIZATION, sensitive(value)?);
            }
            Auth::Session(token) => {
                let value = Zeroizing::new(secrecy::ExposeSecret::expose_secret(&**token).as_bytes().to_vec());
                builder = builder.header("x-auth-token", sensitive(value)?);
            }
        }
        let secret_body = request::has_secret(&request.body);
        if !request.body.is_empty() {
            builder = builder.body(Bytes::from_owner(request::splice(&request.body)));
        }
        tracing::debug!(
            bmc = %self.label(),
            address = %self.endpoint,
            method = ?request.method,
            path = %request.path,
            body = if secret_body { "<redacted>" } else { "plain" },
            "request"
        );

        let started = Instant::now();
        let mut response = builder.send().await.map_err(|e| self.classify(&e, timeout))?;
        let status = response.status().as_u16();
        if let Some(len) = response.content_length()
            && len > self.limits.max_response_bytes as u64
        {
            return Err(self.too_large(len));
        }
        if let Some(encoding) = response.headers().get(http::header::CONTENT_ENCODING)
            && !encoding.as_bytes().eq_ignore_ascii_case(b"identity")
        {
            return Err(Failure::NoResponse(format!(
                "the BMC answered with Content-Encoding `{}` although only identity was accepted; the answer was \
                 discarded",
                String::from_utf8_lossy(encoding.as_bytes())
            )));
        }
        let mut headers = Vec::with_capacity(response.headers().len());
        let mut session_token = None;
        for (name, value) in response.headers() {
            match name.as_str() {
                "x-auth-token" => {
                    session_token = Some(SecretString::from(String::from_utf8_lossy(value.as_bytes()).into_owned()))
                }
                n if request::HIDDEN_RESPONSE_HEADERS.contains(&n) => {}
                n => headers.push((n.to_owned(), String::from_utf8_lossy(value.as_bytes()).into_owned())),
            }
        }
        let mut body = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(|e| self.classify(&e, timeout))? {
            if body.len() + chunk.len() > self.limits.max_response_bytes {
                return Err(self.too_large((body.len() + chunk.len()) as u64));
            }
            body.extend_from_slice(&chunk);
        }
        tracing::debug!(bmc = %self.label(), address = %self.endpoint, status, bytes = body.len(), elapsed_ms = started.elapsed().as_millis() as u64, "response");
        Ok(Response { status, headers, body, session_token })
    }

    fn too_large(&self, len: u64) -> Failure {
        Failure::TooLarge(format!(
            "the BMC's answer is at least {len} bytes; the limit is {} bytes",
            self.limits.max_response_bytes
        ))
    }
}

fn sensitive(value: Zeroizing<Vec<u8>>) -> Result<http::HeaderValue, Failure> {
    let mut value = http::HeaderValue::from_maybe_shared(Bytes::from_owner(value))
        .map_err(|_| Failure::Denied("a credential holds characters not allowed in a header".into()))?;
    value.set_sensitive(true);
    Ok(value)
}

/// Whether the request may have reached the BMC decides between `connect` and `no-response`.
fn classify(e: &reqwest::Error, timeout: Duration) -> Failure {
    if e.is_connect() {
        Failure::Connect(root_cause(e))
    } else if e.is_timeout() {
        Failure::NoResponse(format!("no complete answer within {timeout:?}"))
    } else {
        Failure::NoResponse(chain(e))
    }
}

/// Why a connection failed, in the operator's words: the innermost cause (`connection refused`,
/// `timed out`, the TLS alert), not reqwest's wrapping of it around the URL.
fn root_cause(e: &(dyn std::error::Error + 'static)) -> String {
    let mut inner = e;
    while let Some(source) = inner.source() {
        inner = source;
    }
    if let Some(io) = inner.downcast_ref::<std::io::Error>() {
        use std::io::ErrorKind as K;
        let word = match io.kind() {
            K::ConnectionRefused => Some("connection refused"),
            K::ConnectionReset => Some("connection reset"),
            K::TimedOut => Some("timed out"),
            K::HostUnreachable => Some("host unreachable"),
            K::NetworkUnreachable => Some("network unreachable"),
            K::AddrNotAvailable => Some("address not available"),
            _ => None,
        };
        if let Some(word) = word {
            return word.to_owned();
        }
    }
    inner.to_string()
}

/// An error and its causes on one line; reqwest's top-level message alone hides the reason.
fn chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let s_text = s.to_string();
        if !text.contains(&s_text) {
            text.push_str(": ");
            text.push_str(&s_text);
        }
        source = s.source();
    }
    text
}

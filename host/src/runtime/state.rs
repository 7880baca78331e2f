//! The state of one job (one plugin call against one BMC) and the host imports over it.
//!
//! Everything here is plain Rust: the imports are trait methods on [`JobState`] that tests call
//! directly, without any wasm (the Spin pattern).

use super::bindings::bmc::plugin::{clock, http, log, secrets, types};
use crate::gateway::{self, Failure, Gateway, Outbound, Part, redact::Redactor};
use secrecy::SecretString;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};
use wasmtime::component::{Resource, ResourceTable};
use wasmtime_wasi::{WasiCtx, WasiCtxBuilder, WasiCtxView, WasiView};

/// The host side of a `secret` resource.
pub struct SecretHandle(pub(crate) Arc<SecretString>);

/// Longest guest log message kept; the rest is cut.
pub const MAX_LOG_MESSAGE: usize = 4096;
/// Most guest log lines kept per job (all are also sent to tracing).
pub const MAX_LOG_LINES: usize = 256;

/// Secrets bound to names for one call.
#[derive(Clone, Default)]
pub struct SecretBindings(BTreeMap<String, Arc<SecretString>>);

impl SecretBindings {
    /// No secrets.
    pub fn new() -> Self {
        SecretBindings::default()
    }

    /// Binds `name` (e.g. `login-password`) to a secret.
    pub fn bind(mut self, name: &str, secret: Arc<SecretString>) -> Self {
        self.0.insert(name.to_owned(), secret);
        self
    }
}

/// One line the guest logged.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GuestLogLine {
    /// Severity.
    pub level: log::Level,
    /// The message, scrubbed of the job's secrets.
    pub message: String,
}

/// Memory and instance limits of one store. Records what was refused so the runtime can report
/// a memory bomb as such rather than as an anonymous trap.
pub struct JobLimits {
    max_memory: usize,
    pub(crate) refused: Option<usize>,
}

impl wasmtime::ResourceLimiter for JobLimits {
    fn memory_growing(&mut self, _current: usize, desired: usize, _maximum: Option<usize>) -> wasmtime::Result<bool> {
        if desired > self.max_memory {
            self.refused = Some(desired);
            return Err(wasmtime::Error::msg(format!(
                "memory limit of {} MiB exceeded (the plugin asked for {} MiB)",
                self.max_memory >> 20,
                desired.div_ceil(1 << 20)
            )));
        }
        Ok(true)
    }

    fn table_growing(&mut self, _current: usize, desired: usize, _maximum: Option<usize>) -> wasmtime::Result<bool> {
        Ok(desired <= 100_000)
    }

    fn instances(&self) -> usize {
        16
    }

    fn tables(&self) -> usize {
        16
    }

    fn memories(&self) -> usize {
        4
    }
}

/// What a job knows: its BMC, its secrets, its limits and what the guest did.
pub struct JobState {
    table: ResourceTable,
    wasi: WasiCtx,
    pub(crate) limits: JobLimits,
    gateway: Option<Arc<Gateway>>,
    bound: SecretBindings,
    redactor: Redactor,
    requests_left: u32,
    pub(crate) deadline: Instant,
    pub(crate) deadline_hit: bool,
    plugin: String,
    bmc: String,
    pub(crate) panic_message: Option<String>,
    pub(crate) log: Vec<GuestLogLine>,
}

impl JobState {
    /// A job for `plugin` against `gateway` (none: HTTP is denied), with `bound` secrets.
    pub fn new(
        plugin: &str,
        gateway: Option<Arc<Gateway>>,
        bound: SecretBindings,
        budget: Duration,
        max_memory: usize,
    ) -> Self {
        let mut redactor = Redactor::new();
        for secret in bound.0.values() {
            redactor.add_secret(secret);
        }
        let requests_left = gateway.as_ref().map_or(0, |g| g.limits().max_requests_per_job);
        let bmc = gateway.as_ref().map_or_else(|| "-".to_owned(), |g| g.endpoint().to_string());
        let mut wasi = WasiCtxBuilder::new();
        wasi.allow_tcp(false).allow_udp(false).allow_ip_name_lookup(false);
        JobState {
            table: ResourceTable::new(),
            wasi: wasi.build(),
            limits: JobLimits { max_memory, refused: None },
            gateway,
            bound,
            redactor,
            requests_left,
            deadline: Instant::now() + budget,
            deadline_hit: false,
            plugin: plugin.to_owned(),
            bmc,
            panic_message: None,
            log: Vec::new(),
        }
    }

    fn secret(&self, handle: &Resource<SecretHandle>) -> wasmtime::Result<Arc<SecretString>> {
        Ok(self.table.get(handle)?.0.clone())
    }

    fn outbound(&self, request: http::Request) -> wasmtime::Result<Outbound> {
        let method = match request.method {
            http::Method::Get => gateway::Method::Get,
            http::Method::Post => gateway::Method::Post,
            http::Method::Patch => gateway::Method::Patch,
            http::Method::Put => gateway::Method::Put,
            http::Method::Delete => gateway::Method::Delete,
        };
        let auth = match &request.auth {
            http::Auth::None => gateway::Auth::None,
            http::Auth::Basic((user, password)) => {
                gateway::Auth::Basic { user: user.clone(), password: self.secret(password)? }
            }
            http::Auth::Session(token) => gateway::Auth::Session(self.secret(token)?),
        };
        let mut body = Vec::with_capacity(request.body.len());
        for part in &request.body {
            body.push(match part {
                http::BodyPart::Text(t) => Part::Text(t.clone()),
                http::BodyPart::SecretJsonString(s) => Part::SecretJson(self.secret(s)?),
            });
        }
        Ok(Outbound { method, path: request.path, headers: request.headers, auth, body })
    }
}

impl WasiView for JobState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView { ctx: &mut self.wasi, table: &mut self.table }
    }
}

impl types::Host for JobState {}

impl secrets::Host for JobState {
    async fn get(&mut self, name: String) -> wasmtime::Result<Result<Resource<SecretHandle>, String>> {
        let Some(secret) = self.bound.0.get(&name).cloned() else {
            let bound: Vec<&str> = self.bound.0.keys().map(String::as_str).collect();
            return Ok(Err(format!(
                "`{name}` is not bound for this call (bound: {})",
                if bound.is_empty() { "none".to_owned() } else { bound.join(", ") }
            )));
        };
        Ok(Ok(self.table.push(SecretHandle(secret))?))
    }
}

impl secrets::HostSecret for JobState {
    async fn drop(&mut self, handle: Resource<SecretHandle>) -> wasmtime::Result<()> {
        self.table.delete(handle)?;
        Ok(())
    }
}

impl http::Host for JobState {
    async fn send(&mut self, request: http::Request) -> wasmtime::Result<Result<http::Response, http::HttpError>> {
        let Some(gateway) = self.gateway.clone() else {
            return Ok(Err(http::HttpError::Denied("this call has no BMC: HTTP is not available".into())));
        };
        if self.requests_left == 0 {
            return Ok(Err(http::HttpError::Denied(format!(
                "request limit reached: a job may send at most {} requests",
                gateway.limits().max_requests_per_job
            ))));
        }
        self.requests_left -= 1;
        let outbound = self.outbound(request)?;
        if let gateway::Auth::Basic { user, password } = &outbound.auth {
            self.redactor.add_form(gateway::request::basic_token(user, password).as_bytes());
        }
        let inbound = match gateway.send(&outbound, Some(self.deadline)).await {
            Ok(inbound) => inbound,
            Err(failure) => {
                return Ok(Err(match failure {
                    Failure::Denied(m) => http::HttpError::Denied(m),
                    Failure::Connect(m) => http::HttpError::Connect(m),
                    Failure::NoResponse(m) => http::HttpError::NoResponse(m),
                    Failure::TooLarge(m) => http::HttpError::ResponseTooLarge(m),
                }));
            }
        };
        let session_token = match inbound.session_token {
            Some(token) => {
                self.redactor.add_secret(&token);
                Some(self.table.push(SecretHandle(Arc::new(token)))?)
            }
            None => None,
        };
        // Scrub after capturing the token, so a body repeating the token is scrubbed too.
        let mut body = inbound.body;
        if self.redactor.scrub(&mut body) {
            tracing::warn!(plugin = %self.plugin, bmc = %self.bmc, "the BMC echoed a secret; it was redacted before the plugin saw it");
        }
        let headers = inbound.headers.into_iter().map(|(k, v)| (k, self.redactor.scrub_str(&v))).collect();
        Ok(Ok(http::Response { status: inbound.status, headers, body, session_token }))
    }
}

impl log::Host for JobState {
    async fn log(&mut self, level: log::Level, message: String) -> wasmtime::Result<()> {
        let mut message = self.redactor.scrub_str(&message);
        if message.len() > MAX_LOG_MESSAGE {
            let mut cut = MAX_LOG_MESSAGE;
            while !message.is_char_boundary(cut) {
                cut -= 1;
            }
            message.truncate(cut);
            message.push('…');
        }
        let (plugin, bmc) = (&self.plugin, &self.bmc);
        match level {
            log::Level::Trace => tracing::trace!(target: "plugin", %plugin, %bmc, "{message}"),
            log::Level::Debug => tracing::debug!(target: "plugin", %plugin, %bmc, "{message}"),
            log::Level::Info => tracing::info!(target: "plugin", %plugin, %bmc, "{message}"),
            log::Level::Warn => tracing::warn!(target: "plugin", %plugin, %bmc, "{message}"),
            log::Level::Error => tracing::error!(target: "plugin", %plugin, %bmc, "{message}"),
        }
        // The SDK's panic hook reports through this import just before the guest aborts.
        if level == log::Level::Error && message.starts_with("plugin panicked at") {
            self.panic_message = Some(message.clone());
        }
        if self.log.len() < MAX_LOG_LINES {
            self.log.push(GuestLogLine { level, message });
        }
        Ok(())
    }
}

impl clock::Host for JobState {
    async fn now_ms(&mut self) -> wasmtime::Result<u64> {
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
        Ok(now.as_millis() as u64)
    }

    async fn sleep_ms(&mut self, ms: u32) -> wasmtime::Result<()> {
        let wanted = Duration::from_millis(ms.into());
        let left = self.deadline.saturating_duration_since(Instant::now());
        tokio::time::sleep(wanted.min(left)).await;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    //! The imports called directly, as a guest would call them, without any wasm.

    use super::*;
    use crate::gateway::{Endpoint, Limits, TlsPolicy};
    use axum::body::Bytes;
    use bmc_lab::HttpsServer;
    use secrecy::ExposeSecret;

    const PASSWORD: &str = r#"Old"Pass\1ü"#;

    fn bindings() -> SecretBindings {
        SecretBindings::new()
            .bind("login-password", Arc::new(SecretString::from(PASSWORD.to_owned())))
            .bind("new-password", Arc::new(SecretString::from("NewPass-2".to_owned())))
    }

    fn job(gateway: Option<Arc<Gateway>>) -> JobState {
        JobState::new("test", gateway, bindings(), Duration::from_secs(30), 64 << 20)
    }

    /// A BMC that reflects everything: request body, headers, and a token in its own body.
    async fn echo_bmc(limits: Limits) -> (HttpsServer, Arc<Gateway>) {
        let router = axum::Router::new().route(
            "/echo",
            axum::routing::any(|headers: axum::http::HeaderMap, body: Bytes| async move {
                let auth = headers.get("authorization").map(|v| v.to_str().unwrap().to_owned()).unwrap_or_default();
                let token = headers.get("x-auth-token").map(|v| v.to_str().unwrap().to_owned()).unwrap_or_default();
                let reply = format!(
                    r#"{{"echo":{},"auth":"{auth}","token":"{token}","issued":"Tok-Secret-99"}}"#,
                    serde_json::to_string(&String::from_utf8_lossy(&body)).unwrap()
                );
                ([("x-auth-token", "Tok-Secret-99".to_owned()), ("x-echo-auth", auth)], reply)
            }),
        );
        let server = HttpsServer::start_local(router).await.unwrap();
        let gateway = Gateway::pinned(
            Endpoint::new("127.0.0.1", server.addr().port()),
            server.addr(),
            TlsPolicy::PinnedSha256(server.sha256()),
            limits,
        )
        .unwrap();
        (server, Arc::new(gateway))
    }

    async fn secret(job: &mut JobState, name: &str) -> Resource<SecretHandle> {
        secrets::Host::get(job, name.into()).await.unwrap().unwrap()
    }

    fn borrow(handle: &Resource<SecretHandle>) -> Resource<SecretHandle> {
        Resource::new_borrow(handle.rep())
    }

    fn request(path: &str, auth: http::Auth, body: Vec<http::BodyPart>) -> http::Request {
        http::Request { method: http::Method::Post, path: path.into(), headers: vec![], auth, body }
    }

    #[tokio::test]
    async fn unbound_secrets_are_refused_by_name() {
        let mut job = job(None);
        let err = secrets::Host::get(&mut job, "admin-password".into()).await.unwrap().unwrap_err();
        assert_eq!(err, "`admin-password` is not bound for this call (bound: login-password, new-password)");
        let handle = secret(&mut job, "login-password").await;
        secrets::HostSecret::drop(&mut job, handle).await.unwrap();
    }

    #[tokio::test]
    async fn without_a_bmc_http_is_denied() {
        let mut job = job(None);
        let answer = http::Host::send(&mut job, request("/x", http::Auth::None, vec![])).await.unwrap();
        assert!(matches!(answer, Err(http::HttpError::Denied(m)) if m.contains("no BMC")));
    }

    #[tokio::test]
    async fn echoed_secrets_never_reach_the_guest() {
        let (_server, gateway) = echo_bmc(Limits::default()).await;
        let mut job = job(Some(gateway));
        let login = secret(&mut job, "login-password").await;
        let new = secret(&mut job, "new-password").await;
        let body = vec![
            http::BodyPart::Text("{\"a\":".into()),
            http::BodyPart::SecretJsonString(borrow(&login)),
            http::BodyPart::Text(",\"b\":".into()),
            http::BodyPart::SecretJsonString(borrow(&new)),
            http::BodyPart::Text("}".into()),
        ];
        let auth = http::Auth::Basic(("root".into(), borrow(&login)));
        let answer = http::Host::send(&mut job, request("/echo", auth, body)).await.unwrap().unwrap();
        let text = String::from_utf8(answer.body.clone()).unwrap();
        let basic = gateway::request::basic_token("root", &SecretString::from(PASSWORD.to_owned()));
        for leak in [PASSWORD, r#"Old\"Pass\\1ü"#, "NewPass-2", "Tok-Secret-99", basic.as_str()] {
            assert!(!text.contains(leak), "`{leak}` reached the guest: {text}");
            assert!(answer.headers.iter().all(|(_, v)| !v.contains(leak)), "`{leak}` in headers");
        }
        assert!(text.contains("<redacted>"), "{text}");
        // The token came back as a handle that works as a credential.
        let token = answer.session_token.expect("token handle");
        assert_eq!(job.table.get(&token).unwrap().0.expose_secret(), "Tok-Secret-99");
        let again = http::Host::send(&mut job, request("/echo", http::Auth::Session(borrow(&token)), vec![])).await;
        let text = String::from_utf8(again.unwrap().unwrap().body).unwrap();
        assert!(text.contains(r#""token":"<redacted>""#), "{text}");
    }

    #[tokio::test]
    async fn requests_per_job_are_capped() {
        let (_server, gateway) = echo_bmc(Limits { max_requests_per_job: 2, ..Limits::default() }).await;
        let mut job = job(Some(gateway));
        for _ in 0..2 {
            assert!(http::Host::send(&mut job, request("/echo", http::Auth::None, vec![])).await.unwrap().is_ok());
        }
        let third = http::Host::send(&mut job, request("/echo", http::Auth::None, vec![])).await.unwrap();
        assert!(matches!(third, Err(http::HttpError::Denied(m)) if m.contains("at most 2 requests")));
    }

    #[tokio::test]
    async fn a_stale_handle_traps_instead_of_sending() {
        let (_server, gateway) = echo_bmc(Limits::default()).await;
        let mut job = job(Some(gateway));
        let handle = secret(&mut job, "login-password").await;
        let rep = handle.rep();
        secrets::HostSecret::drop(&mut job, handle).await.unwrap();
        let stale = Resource::<SecretHandle>::new_borrow(rep);
        assert!(http::Host::send(&mut job, request("/echo", http::Auth::Session(stale), vec![])).await.is_err());
    }

    #[tokio::test]
    async fn logs_are_scrubbed_bounded_and_panics_recorded() {
        let mut job = job(None);
        log::Host::log(&mut job, log::Level::Info, format!("pw={PASSWORD}")).await.unwrap();
        log::Host::log(&mut job, log::Level::Warn, "é".repeat(MAX_LOG_MESSAGE)).await.unwrap();
        log::Host::log(&mut job, log::Level::Error, "plugin panicked at src/lib.rs:1:1:\nboom".into()).await.unwrap();
        assert_eq!(job.log[0].message, "pw=<redacted>");
        assert!(job.log[1].message.len() <= MAX_LOG_MESSAGE + '…'.len_utf8());
        assert_eq!(job.panic_message.as_deref(), Some("plugin panicked at src/lib.rs:1:1:\nboom"));
        for _ in 0..MAX_LOG_LINES {
            log::Host::log(&mut job, log::Level::Debug, "x".into()).await.unwrap();
        }
        assert_eq!(job.log.len(), MAX_LOG_LINES);
    }

    #[tokio::test]
    async fn sleep_is_cut_at_the_deadline() {
        let mut job = JobState::new("test", None, bindings(), Duration::from_millis(100), 64 << 20);
        let started = Instant::now();
        clock::Host::sleep_ms(&mut job, 60_000).await.unwrap();
        assert!(started.elapsed() < Duration::from_secs(5));
        assert!(clock::Host::now_ms(&mut job).await.unwrap() > 1_600_000_000_000);
    }
}

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
    fn memory_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired > self.max_memory {
            self.refused = Some(desired);
            return Err(wasmtime::Error::msg(format!(
                "memory limit of {} MiB exceeded (the plugin asked for {} MiB)",
                self.max_memory >> 20,
                desired >> 20
            )));
        }
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
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
        let requests_left = gateway
            .as_ref()
            .map_or(0, |g| g.limits().max_requests_per_job);
        let bmc = gateway
            .as_ref()
            .map_or_else(|| "-".to_owned(), |g| g.endpoint().to_string());
        let mut wasi = WasiCtxBuilder::new();
        wasi.allow_tcp(false)
            .allow_udp(false)
            .allow_ip_name_lookup(false);
        JobState {
            table: ResourceTable::new(),
            wasi: wasi.build(),
            limits: JobLimits {
                max_memory,
                refused: None,
            },
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
            http::Auth::Basic((user, password)) => gateway::Auth::Basic {
                user: user.clone(),
                password: self.secret(password)?,
            },
            http::Auth::Session(token) => gateway::Auth::Session(self.secret(token)?),
        };
        let mut body = Vec::with_capacity(request.body.len());
        for part in &request.body {
            body.push(match part {
                http::BodyPart::Text(t) => Part::Text(t.clone()),
                http::BodyPart::SecretJsonString(s) => Part::SecretJson(self.secret(s)?),
            });
        }
        Ok(Outbound {
            method,
            path: request.path,
            headers: request.headers,
            auth,
            body,
        })
    }
}

impl WasiView for JobState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl types::Host for JobState {}

impl secrets::Host for JobState {
    async fn get(
        &mut self,
        name: String,
    ) -> wasmtime::Result<Result<Resource<SecretHandle>, String>> {
        let Some(secret) = self.bound.0.get(&name).cloned() else {
            let bound: Vec<&str> = self.bound.0.keys().map(String::as_str).collect();
            return Ok(Err(format!(
                "`{name}` is not bound for this call (bound: {})",
                if bound.is_empty() {
                    "none".to_owned()
                } else {
                    bound.join(", ")
                }
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
    async fn send(
        &mut self,
        request: http::Request,
    ) -> wasmtime::Result<Result<http::Response, http::HttpError>> {
        let Some(gateway) = self.gateway.clone() else {
            return Ok(Err(http::HttpError::Denied(
                "this call has no BMC: HTTP is not available".into(),
            )));
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
            self.redactor
                .add_form(gateway::request::basic_token(user, password).as_bytes());
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
        let headers = inbound
            .headers
            .into_iter()
            .map(|(k, v)| (k, self.redactor.scrub_str(&v)))
            .collect();
        Ok(Ok(http::Response {
            status: inbound.status,
            headers,
            body,
            session_token,
        }))
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
            message.push_str("…");
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
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        Ok(now.as_millis() as u64)
    }

    async fn sleep_ms(&mut self, ms: u32) -> wasmtime::Result<()> {
        let wanted = Duration::from_millis(ms.into());
        let left = self.deadline.saturating_duration_since(Instant::now());
        tokio::time::sleep(wanted.min(left)).await;
        Ok(())
    }
}

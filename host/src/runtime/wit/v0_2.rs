//! `bmc:plugin@0.2.0` (the frozen `sdk/wit/v0.2` folder): its bindings, the conversions between its
//! generated types and the host's, and its imports delegating to [`crate::runtime::host`].

use super::Answer;
use crate::gateway;
use crate::runtime::contract::{
    ErrorKind, MAX_MESSAGE_LEN, MAX_NAME_LEN, Onboarded, PasswordPolicy, PluginError, PluginInfo, ProbeResult,
    SnmpAuthentication, SnmpPrivacy, SnmpV3, Target, untrusted,
};
use crate::runtime::host::clock::ClockCtx;
use crate::runtime::host::http::{HttpView, SendError};
use crate::runtime::host::log::{Level, LogView};
use crate::runtime::host::secrets::{SecretHandle, SecretsView};
use crate::runtime::job::JobState;
use semver::Version;
use wasmtime::Store;
use wasmtime::component::{HasData, InstancePre, Linker, Resource};

mod bindings {
    wasmtime::component::bindgen!({
        path: "../sdk/wit/v0.2",
        world: "bmc:plugin/vendor-plugin",
        // Every import may wait (HTTP, sleep) and must be cancellable with the job; `trappable`
        // lets an invalid resource handle trap the guest instead of panicking the host.
        imports: { default: async | trappable },
        exports: { default: async },
        with: { "bmc:plugin/secrets.secret": crate::runtime::host::secrets::SecretHandle },
        trappable_error_type: { "bmc:plugin/http.http-error" => crate::runtime::host::http::SendError },
    });
}

/// The optional `snmp` export, bound on its own so that a component without it still matches the
/// base world: `VendorPluginIndices` asks only for `info`, `probe`, `verify` and
/// `change-password`, and `snmp::GuestIndices::new` fails (and the host records "not reported")
/// when the component has no `bmc:plugin/snmp@0.2.0` instance. The imports are the base
/// bindings' own (`with`), so there is one set of types.
mod snmp_bindings {
    wasmtime::component::bindgen!({
        path: "../sdk/wit/v0.2",
        world: "bmc:plugin/vendor-plugin-snmp",
        imports: { default: async | trappable },
        exports: { default: async },
        with: {
            "bmc:plugin/types": super::bindings::bmc::plugin::types,
            "bmc:plugin/secrets": super::bindings::bmc::plugin::secrets,
            "bmc:plugin/http": super::bindings::bmc::plugin::http,
            "bmc:plugin/log": super::bindings::bmc::plugin::log,
            "bmc:plugin/clock": super::bindings::bmc::plugin::clock,
        },
    });
}

/// The optional `onboard` export, bound on its own for the same reason as `snmp`: a component
/// without it still loads, and the host says it cannot onboard.
mod onboard_bindings {
    wasmtime::component::bindgen!({
        path: "../sdk/wit/v0.2",
        world: "bmc:plugin/vendor-plugin-onboard",
        imports: { default: async | trappable },
        exports: { default: async },
        with: {
            "bmc:plugin/types": super::bindings::bmc::plugin::types,
            "bmc:plugin/secrets": super::bindings::bmc::plugin::secrets,
            "bmc:plugin/http": super::bindings::bmc::plugin::http,
            "bmc:plugin/log": super::bindings::bmc::plugin::log,
            "bmc:plugin/clock": super::bindings::bmc::plugin::clock,
        },
    });
}

use bindings::bmc::plugin::{clock, http, log, secrets, types as wit};
use onboard_bindings::exports::bmc::plugin::onboard as wit_onboard;
use snmp_bindings::exports::bmc::plugin::snmp as wit_snmp;

/// The contract version of this module.
pub const VERSION: Version = Version::new(0, 2, 0);

/// The contract's interfaces, without package or version.
pub const INTERFACES: &[&str] = &["types", "secrets", "http", "log", "clock"];

/// Each import gets its own view of the job (wasmtime-wasi's projections), so no import can
/// reach another's state.
struct Secrets;
impl HasData for Secrets {
    type Data<'a> = SecretsView<'a>;
}
struct Http;
impl HasData for Http {
    type Data<'a> = HttpView<'a>;
}
struct Log;
impl HasData for Log {
    type Data<'a> = LogView<'a>;
}
struct Clock;
impl HasData for Clock {
    type Data<'a> = &'a ClockCtx;
}

/// Links this version's imports.
pub(crate) fn add_to_linker(linker: &mut Linker<JobState>) -> wasmtime::Result<()> {
    wit::add_to_linker::<JobState, Clock>(linker, JobState::clock)?;
    secrets::add_to_linker::<JobState, Secrets>(linker, JobState::secrets)?;
    http::add_to_linker::<JobState, Http>(linker, JobState::http)?;
    log::add_to_linker::<JobState, Log>(linker, JobState::log)?;
    clock::add_to_linker::<JobState, Clock>(linker, JobState::clock)
}

/// A component pre-instantiated as a v0.2 vendor plugin.
pub(crate) struct Pre {
    pre: InstancePre<JobState>,
    base: bindings::VendorPluginIndices,
    /// Where the `snmp` export is, when the component has one.
    snmp: Option<wit_snmp::GuestIndices>,
    /// Where the `onboard` export is, when the component has one.
    onboard: Option<wit_onboard::GuestIndices>,
}

impl Pre {
    /// Fails when the component does not export the v0.2 world; the `snmp` export is optional.
    pub(crate) fn new(pre: InstancePre<JobState>) -> wasmtime::Result<Pre> {
        let base = bindings::VendorPluginIndices::new(&pre)?;
        let snmp = wit_snmp::GuestIndices::new(&pre).ok();
        let onboard = wit_onboard::GuestIndices::new(&pre).ok();
        Ok(Pre { pre, base, snmp, onboard })
    }

    /// Whether the component exports `onboard`.
    pub(crate) fn onboards(&self) -> bool {
        self.onboard.is_some()
    }

    /// Whether the component exports `snmp`.
    pub(crate) fn reports_snmp(&self) -> bool {
        self.snmp.is_some()
    }

    pub(crate) async fn instantiate(&self, store: &mut Store<JobState>) -> wasmtime::Result<Instance> {
        let instance = self.pre.instantiate_async(&mut *store).await?;
        let base = self.base.load(&mut *store, &instance)?;
        // Type-checked only when used: a mistyped `snmp` export fails the SNMPv3 check, not the
        // rotation calls.
        let snmp = self.snmp.as_ref().map(|indices| indices.load(&mut *store, &instance));
        let onboard = self.onboard.as_ref().map(|indices| indices.load(&mut *store, &instance));
        Ok(Instance { base, snmp, onboard })
    }

    pub(crate) fn engine(&self) -> &wasmtime::Engine {
        self.pre.engine()
    }
}

/// A live v0.2 plugin.
pub(crate) struct Instance {
    base: bindings::VendorPlugin,
    snmp: Option<wasmtime::Result<wit_snmp::Guest>>,
    onboard: Option<wasmtime::Result<wit_onboard::Guest>>,
}

impl Instance {
    pub(crate) async fn info(&self, store: &mut Store<JobState>) -> Answer<PluginInfo> {
        Ok(Ok(self.base.call_info(store).await?.into()))
    }

    pub(crate) async fn probe(&self, store: &mut Store<JobState>, target: &Target) -> Answer<ProbeResult> {
        Ok(self.base.call_probe(store, &target.into()).await?.map(Into::into).map_err(Into::into))
    }

    pub(crate) async fn verify(&self, store: &mut Store<JobState>, target: &Target) -> Answer<()> {
        Ok(self.base.call_verify(store, &target.into()).await?.map_err(Into::into))
    }

    pub(crate) async fn change_password(&self, store: &mut Store<JobState>, target: &Target) -> Answer<()> {
        Ok(self.base.call_change_password(store, &target.into()).await?.map_err(Into::into))
    }

    /// `snmp#state`; `Ok(Ok(None))` from a component without the export.
    pub(crate) async fn snmp_state(&self, store: &mut Store<JobState>, target: &Target) -> Answer<Option<SnmpV3>> {
        let Some(snmp) = &self.snmp else { return Ok(Ok(None)) };
        let snmp =
            snmp.as_ref().map_err(|e| wasmtime::format_err!("its `snmp` export does not match the contract: {e}"))?;
        Ok(snmp.call_state(store, &target.into()).await?.map(|s| s.map(Into::into)).map_err(Into::into))
    }
}

impl Instance {
    /// `onboard#enable-account`; an `unsupported` error from a component without the export.
    pub(crate) async fn enable_account(&self, store: &mut Store<JobState>, target: &Target) -> Answer<Onboarded> {
        let Some(onboard) = &self.onboard else {
            return Ok(Err(PluginError {
                kind: ErrorKind::Unsupported,
                message: "this plugin cannot onboard: it does not export `bmc:plugin/onboard` (built with an SDK \
                          older than 0.2.1)"
                    .into(),
            }));
        };
        let onboard = onboard
            .as_ref()
            .map_err(|e| wasmtime::format_err!("its `onboard` export does not match the contract: {e}"))?;
        let answer = onboard.call_enable_account(store, &target.into()).await?;
        Ok(answer
            .map(|o| match o {
                wit_onboard::Onboarded::Created => Onboarded::Created,
                wit_onboard::Onboarded::Updated => Onboarded::Updated,
            })
            .map_err(Into::into))
    }

    /// `onboard#disable-account`; an `unsupported` error from a component without the export.
    pub(crate) async fn disable_account(&self, store: &mut Store<JobState>, target: &Target) -> Answer<()> {
        let Some(onboard) = &self.onboard else {
            return Ok(Err(PluginError {
                kind: ErrorKind::Unsupported,
                message: "this plugin cannot onboard: it does not export `bmc:plugin/onboard`".into(),
            }));
        };
        let onboard = onboard
            .as_ref()
            .map_err(|e| wasmtime::format_err!("its `onboard` export does not match the contract: {e}"))?;
        Ok(onboard.call_disable_account(store, &target.into()).await?.map_err(Into::into))
    }
}

impl From<wit_snmp::SnmpV3> for SnmpV3 {
    fn from(s: wit_snmp::SnmpV3) -> Self {
        let authentication = match s.authentication {
            wit_snmp::Authentication::None => SnmpAuthentication::None,
            wit_snmp::Authentication::CommunityString => SnmpAuthentication::CommunityString,
            wit_snmp::Authentication::HmacMd5 => SnmpAuthentication::HmacMd5,
            wit_snmp::Authentication::HmacSha96 => SnmpAuthentication::HmacSha96,
            wit_snmp::Authentication::Hmac128Sha224 => SnmpAuthentication::Hmac128Sha224,
            wit_snmp::Authentication::Hmac192Sha256 => SnmpAuthentication::Hmac192Sha256,
            wit_snmp::Authentication::Hmac256Sha384 => SnmpAuthentication::Hmac256Sha384,
            wit_snmp::Authentication::Hmac384Sha512 => SnmpAuthentication::Hmac384Sha512,
        };
        let privacy = match s.privacy {
            wit_snmp::Privacy::None => SnmpPrivacy::None,
            wit_snmp::Privacy::CbcDes => SnmpPrivacy::CbcDes,
            wit_snmp::Privacy::Cfb128Aes128 => SnmpPrivacy::Cfb128Aes128,
            wit_snmp::Privacy::Cfb128Aes192 => SnmpPrivacy::Cfb128Aes192,
            wit_snmp::Privacy::Cfb128Aes256 => SnmpPrivacy::Cfb128Aes256,
        };
        SnmpV3 { enabled: s.enabled, authentication, privacy }
    }
}

// The imports: conversions around the host's own implementation.

impl wit::Host for &ClockCtx {}

impl secrets::Host for SecretsView<'_> {
    async fn get(&mut self, name: String) -> wasmtime::Result<Result<Resource<SecretHandle>, String>> {
        SecretsView::get(self, &name)
    }
}

impl secrets::HostSecret for SecretsView<'_> {
    async fn drop(&mut self, handle: Resource<SecretHandle>) -> wasmtime::Result<()> {
        SecretsView::drop(self, handle)
    }
}

impl http::Host for HttpView<'_> {
    async fn send(&mut self, request: http::Request) -> Result<http::Response, SendError> {
        let request = to_gateway(self, request)?;
        let reply = self.request(request).await?;
        Ok(http::Response {
            status: reply.status,
            headers: reply.headers,
            body: reply.body,
            session_token: reply.session_token,
        })
    }

    fn convert_http_error(&mut self, err: SendError) -> wasmtime::Result<http::HttpError> {
        use gateway::Failure;
        match err {
            SendError::Failed(Failure::Denied(m)) => Ok(http::HttpError::Denied(m)),
            SendError::Failed(Failure::Forbidden(m)) => Ok(http::HttpError::Forbidden(m)),
            SendError::Failed(Failure::Connect(m)) => Ok(http::HttpError::Connect(m)),
            SendError::Failed(Failure::NoResponse(m)) => Ok(http::HttpError::NoResponse(m)),
            SendError::Failed(Failure::TooLarge(m)) => Ok(http::HttpError::ResponseTooLarge(m)),
            // `HttpView::request` ends the call instead; should it ever get here, nothing was sent.
            SendError::Failed(Failure::CertificateChanged { pinned, presented }) => {
                Ok(http::HttpError::Connect(gateway::certificate_changed(&pinned, &presented)))
            }
            SendError::Trap(trap) => Err(trap),
        }
    }
}

/// The guest's request with its handles resolved; a stale handle traps before anything is sent.
fn to_gateway(view: &HttpView<'_>, request: http::Request) -> wasmtime::Result<gateway::Request> {
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
            gateway::Auth::Basic { user: user.clone(), password: view.secret(password)? }
        }
        http::Auth::Session(token) => gateway::Auth::Session(view.secret(token)?),
    };
    let mut body = Vec::with_capacity(request.body.len());
    for part in request.body {
        body.push(match part {
            http::BodyPart::Text(t) => gateway::Part::Text(t),
            http::BodyPart::SecretJsonString(s) => gateway::Part::SecretJson(view.secret(&s)?),
        });
    }
    Ok(gateway::Request { method, path: request.path, headers: request.headers, auth, body })
}

impl log::Host for LogView<'_> {
    async fn log(&mut self, level: log::Level, message: String) -> wasmtime::Result<()> {
        let level = match level {
            log::Level::Trace => Level::Trace,
            log::Level::Debug => Level::Debug,
            log::Level::Info => Level::Info,
            log::Level::Warn => Level::Warn,
            log::Level::Error => Level::Error,
        };
        LogView::log(self, level, &message)
    }
}

impl clock::Host for &ClockCtx {
    async fn now_ms(&mut self) -> wasmtime::Result<u64> {
        Ok(ClockCtx::now_ms(self))
    }

    async fn sleep_ms(&mut self, ms: u32) -> wasmtime::Result<()> {
        ClockCtx::sleep_ms(self, ms).await;
        Ok(())
    }
}

// The exports' types. Every string a plugin returns passes `untrusted` here, once, so no
// caller (table, progress line, JSON, log, journal) ever holds raw plugin text.

/// Most families a plugin may list.
const MAX_FAMILIES: usize = 32;

impl From<wit::PasswordPolicy> for PasswordPolicy {
    fn from(p: wit::PasswordPolicy) -> Self {
        PasswordPolicy {
            min_length: p.min_length,
            max_length: p.max_length,
            min_classes: p.min_classes,
            allowed_symbols: untrusted(&p.allowed_symbols, MAX_NAME_LEN),
            reuse_cycle: p.reuse_cycle,
            min_change_interval_hours: p.min_change_interval_hours,
            max_repeated_chars: p.max_repeated_chars,
            forbid_account_name: p.forbid_account_name,
        }
    }
}

impl From<wit::PluginInfo> for PluginInfo {
    fn from(i: wit::PluginInfo) -> Self {
        PluginInfo {
            id: untrusted(&i.id, MAX_NAME_LEN),
            vendor: untrusted(&i.vendor, MAX_NAME_LEN),
            product: untrusted(&i.product, MAX_NAME_LEN),
            version: untrusted(&i.version, MAX_NAME_LEN),
            families: i.families.iter().take(MAX_FAMILIES).map(|f| untrusted(f, MAX_NAME_LEN)).collect(),
            policy: i.policy.into(),
        }
    }
}

impl From<wit::ProbeResult> for ProbeResult {
    fn from(p: wit::ProbeResult) -> Self {
        ProbeResult {
            family: untrusted(&p.family, MAX_NAME_LEN),
            firmware: untrusted(&p.firmware, MAX_NAME_LEN),
            account_uri: untrusted(&p.account_uri, gateway::request::MAX_PATH_LEN),
            policy: p.policy.into(),
        }
    }
}

impl From<&Target> for wit::Target {
    fn from(t: &Target) -> Self {
        wit::Target { address: t.address.clone(), account: t.account.clone(), login_account: t.login_account.clone() }
    }
}

impl From<wit::PluginError> for PluginError {
    fn from(e: wit::PluginError) -> Self {
        let (kind, message) = match e {
            wit::PluginError::Unreachable(m) => (ErrorKind::Unreachable, m),
            wit::PluginError::AuthFailed(m) => (ErrorKind::AuthFailed, m),
            wit::PluginError::LockedOut(m) => (ErrorKind::LockedOut, m),
            wit::PluginError::PolicyRejected(m) => (ErrorKind::PolicyRejected, m),
            wit::PluginError::AccountNotFound(m) => (ErrorKind::AccountNotFound, m),
            wit::PluginError::PasswordChangeRequired(m) => (ErrorKind::PasswordChangeRequired, m),
            wit::PluginError::PreconditionFailed(m) => (ErrorKind::PreconditionFailed, m),
            wit::PluginError::Unsupported(m) => (ErrorKind::Unsupported, m),
            wit::PluginError::Ambiguous(m) => (ErrorKind::Ambiguous, m),
            wit::PluginError::Protocol(m) => (ErrorKind::Protocol, m),
        };
        PluginError { kind, message: untrusted(&message, MAX_MESSAGE_LEN) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::host::clock::SystemClock;
    use crate::runtime::host::secrets::{SecretBindings, SecretName};
    use crate::runtime::job::JobSpec;
    use secrecy::SecretString;
    use std::sync::Arc;
    use std::time::Duration;

    fn job() -> JobState {
        JobState::new(JobSpec {
            plugin: "test".into(),
            outbound: None,
            secrets: SecretBindings::new()
                .bind(SecretName::LoginPassword, Arc::new(SecretString::from("Old-1".to_owned()))),
            budget: Duration::from_secs(30),
            max_memory: 64 << 20,
            clock: Arc::new(SystemClock),
            call: crate::runtime::host::guard::Call::Probe,
            target: None,
            capabilities: Arc::new(crate::runtime::capabilities::Manifest::baseline()),
        })
    }

    fn request(auth: http::Auth) -> http::Request {
        http::Request { method: http::Method::Post, path: "/x".into(), headers: vec![], auth, body: vec![] }
    }

    #[tokio::test]
    async fn a_stale_handle_traps_instead_of_sending() {
        let mut job = job();
        let handle =
            secrets::Host::get(&mut job.secrets(), SecretName::LoginPassword.as_str().into()).await.unwrap().unwrap();
        let rep = handle.rep();
        secrets::HostSecret::drop(&mut job.secrets(), handle).await.unwrap();
        let stale = Resource::<SecretHandle>::new_borrow(rep);
        let mut http = job.http();
        let err = http::Host::send(&mut http, request(http::Auth::Session(stale))).await.expect_err("refused");
        assert!(http::Host::convert_http_error(&mut http, err).is_err(), "a stale handle traps");
    }

    #[tokio::test]
    async fn refusals_reach_the_guest_as_http_errors() {
        let mut job = job();
        let mut http = job.http();
        let err = http::Host::send(&mut http, request(http::Auth::None)).await.expect_err("no BMC");
        let answer = http::Host::convert_http_error(&mut http, err).unwrap();
        assert!(matches!(answer, http::HttpError::Denied(m) if m.contains("no BMC")));
    }
}

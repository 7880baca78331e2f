//! The bridge between the generated bindings and the hand-written API: the real host backend,
//! type conversions, the panic hook and the entry points `register_plugin!` forwards to.

use crate::bindings::bmc::plugin::{clock, http as wit_http, log as wit_log, secrets, types as wit};
use crate::bindings::exports::bmc::plugin::onboard as wit_onboard;
use crate::bindings::exports::bmc::plugin::snmp as wit_snmp;
use crate::http::{Auth, BodyPart, HttpError, Method, Request, Response};
use crate::plugin::{Backend, Level};
use crate::secret::Repr;
use crate::{
    Bmc, Onboarded, PasswordPolicy, PluginError, PluginInfo, ProbeResult, Secret, SnmpAuthentication, SnmpPrivacy,
    SnmpV3, Target, VendorPlugin,
};

struct HostBackend;

fn handle(secret: &Secret) -> &secrets::Secret {
    match &secret.0 {
        Repr::Host(h) => h,
        #[cfg(feature = "testing")]
        Repr::Mock(_) => panic!("a MockHost secret was sent through the real host"),
    }
}

impl Backend for HostBackend {
    fn secret(&self, name: &str) -> Result<Secret, String> {
        secrets::get(name).map(|h| Secret(Repr::Host(h)))
    }

    fn send(&self, request: &Request<'_>) -> Result<Response, HttpError> {
        let method = match request.method {
            Method::Get => wit_http::Method::Get,
            Method::Post => wit_http::Method::Post,
            Method::Patch => wit_http::Method::Patch,
            Method::Put => wit_http::Method::Put,
            Method::Delete => wit_http::Method::Delete,
        };
        let auth = match request.auth {
            Auth::None => wit_http::Auth::None,
            Auth::Basic { user, password } => wit_http::Auth::Basic((user.to_owned(), handle(password))),
            Auth::Session(token) => wit_http::Auth::Session(handle(token)),
        };
        let body = request
            .body
            .iter()
            .map(|part| match part {
                BodyPart::Text(t) => wit_http::BodyPart::Text(t.clone()),
                BodyPart::SecretJsonString(s) => wit_http::BodyPart::SecretJsonString(handle(s)),
            })
            .collect();
        let wire =
            wit_http::Request { method, path: request.path.clone(), headers: request.headers.clone(), auth, body };
        match wit_http::send(&wire) {
            Ok(r) => Ok(Response {
                status: r.status,
                headers: r.headers,
                body: r.body,
                session_token: r.session_token.map(|h| Secret(Repr::Host(h))),
            }),
            Err(wit_http::HttpError::Denied(m)) => Err(HttpError::Denied(m)),
            Err(wit_http::HttpError::Forbidden(m)) => Err(HttpError::Forbidden(m)),
            Err(wit_http::HttpError::Connect(m)) => Err(HttpError::Connect(m)),
            Err(wit_http::HttpError::NoResponse(m)) => Err(HttpError::NoResponse(m)),
            Err(wit_http::HttpError::ResponseTooLarge(m)) => Err(HttpError::ResponseTooLarge(m)),
        }
    }

    fn log(&self, level: Level, message: &str) {
        wit_log::log(wit_level(level), message);
    }

    fn now_ms(&self) -> u64 {
        clock::now_ms()
    }

    fn sleep_ms(&self, ms: u32) {
        clock::sleep_ms(ms);
    }
}

fn wit_level(level: Level) -> wit_log::Level {
    match level {
        Level::Trace => wit_log::Level::Trace,
        Level::Debug => wit_log::Level::Debug,
        Level::Info => wit_log::Level::Info,
        Level::Warn => wit_log::Level::Warn,
        Level::Error => wit_log::Level::Error,
    }
}

/// Sends panic messages to the host log: without it a panic reaches the operator only as
/// "wasm `unreachable` instruction executed".
fn enter() -> Bmc {
    static HOOK: std::sync::Once = std::sync::Once::new();
    HOOK.call_once(|| {
        std::panic::set_hook(Box::new(|info| {
            wit_log::log(wit_log::Level::Error, &format!("plugin {info}"));
        }));
    });
    Bmc::new(Box::new(HostBackend))
}

impl From<PasswordPolicy> for wit::PasswordPolicy {
    fn from(p: PasswordPolicy) -> Self {
        wit::PasswordPolicy {
            min_length: p.min_length,
            max_length: p.max_length,
            min_classes: p.min_classes,
            allowed_symbols: p.allowed_symbols,
            reuse_cycle: p.reuse_cycle,
            min_change_interval_hours: p.min_change_interval_hours,
            max_repeated_chars: p.max_repeated_chars,
            forbid_account_name: p.forbid_account_name,
        }
    }
}

impl From<PluginInfo> for wit::PluginInfo {
    fn from(i: PluginInfo) -> Self {
        wit::PluginInfo {
            id: i.id,
            vendor: i.vendor,
            product: i.product,
            version: i.version,
            families: i.families,
            policy: i.policy.into(),
        }
    }
}

impl From<ProbeResult> for wit::ProbeResult {
    fn from(p: ProbeResult) -> Self {
        wit::ProbeResult { family: p.family, firmware: p.firmware, account_uri: p.account_uri, policy: p.policy.into() }
    }
}

impl From<PluginError> for wit::PluginError {
    fn from(e: PluginError) -> Self {
        match e {
            PluginError::Unreachable(m) => wit::PluginError::Unreachable(m),
            PluginError::AuthFailed(m) => wit::PluginError::AuthFailed(m),
            PluginError::LockedOut(m) => wit::PluginError::LockedOut(m),
            PluginError::PolicyRejected(m) => wit::PluginError::PolicyRejected(m),
            PluginError::AccountNotFound(m) => wit::PluginError::AccountNotFound(m),
            PluginError::PasswordChangeRequired(m) => wit::PluginError::PasswordChangeRequired(m),
            PluginError::PreconditionFailed(m) => wit::PluginError::PreconditionFailed(m),
            PluginError::Unsupported(m) => wit::PluginError::Unsupported(m),
            PluginError::Ambiguous(m) => wit::PluginError::Ambiguous(m),
            PluginError::Protocol(m) => wit::PluginError::Protocol(m),
        }
    }
}

impl From<wit::Target> for Target {
    fn from(t: wit::Target) -> Self {
        Target { address: t.address, account: t.account, login_account: t.login_account }
    }
}

/// `info` export.
pub fn info<P: VendorPlugin>() -> wit::PluginInfo {
    enter();
    P::info().into()
}

/// `probe` export.
pub fn probe<P: VendorPlugin>(target: wit::Target) -> Result<wit::ProbeResult, wit::PluginError> {
    let bmc = enter();
    P::probe(&bmc, &target.into()).map(Into::into).map_err(Into::into)
}

/// `verify` export.
pub fn verify<P: VendorPlugin>(target: wit::Target) -> Result<(), wit::PluginError> {
    let bmc = enter();
    P::verify(&bmc, &target.into()).map_err(Into::into)
}

/// `change-password` export.
pub fn change_password<P: VendorPlugin>(target: wit::Target) -> Result<(), wit::PluginError> {
    let bmc = enter();
    P::change_password(&bmc, &target.into()).map_err(Into::into)
}

/// `snmp#state` export.
pub fn snmp_state<P: VendorPlugin>(target: wit::Target) -> Result<Option<wit_snmp::SnmpV3>, wit::PluginError> {
    let bmc = enter();
    P::snmp_state(&bmc, &target.into()).map(|s| s.map(Into::into)).map_err(Into::into)
}

/// `onboard#enable-account` export.
pub fn enable_account<P: VendorPlugin>(target: wit::Target) -> Result<wit_onboard::Onboarded, wit::PluginError> {
    let bmc = enter();
    P::enable_account(&bmc, &target.into())
        .map(|o| match o {
            Onboarded::Created => wit_onboard::Onboarded::Created,
            Onboarded::Updated => wit_onboard::Onboarded::Updated,
        })
        .map_err(Into::into)
}

/// `onboard#disable-account` export.
pub fn disable_account<P: VendorPlugin>(target: wit::Target) -> Result<(), wit::PluginError> {
    let bmc = enter();
    P::disable_account(&bmc, &target.into()).map_err(Into::into)
}

impl From<SnmpV3> for wit_snmp::SnmpV3 {
    fn from(s: SnmpV3) -> Self {
        let authentication = match s.authentication {
            SnmpAuthentication::None => wit_snmp::Authentication::None,
            SnmpAuthentication::CommunityString => wit_snmp::Authentication::CommunityString,
            SnmpAuthentication::HmacMd5 => wit_snmp::Authentication::HmacMd5,
            SnmpAuthentication::HmacSha96 => wit_snmp::Authentication::HmacSha96,
            SnmpAuthentication::Hmac128Sha224 => wit_snmp::Authentication::Hmac128Sha224,
            SnmpAuthentication::Hmac192Sha256 => wit_snmp::Authentication::Hmac192Sha256,
            SnmpAuthentication::Hmac256Sha384 => wit_snmp::Authentication::Hmac256Sha384,
            SnmpAuthentication::Hmac384Sha512 => wit_snmp::Authentication::Hmac384Sha512,
        };
        let privacy = match s.privacy {
            SnmpPrivacy::None => wit_snmp::Privacy::None,
            SnmpPrivacy::CbcDes => wit_snmp::Privacy::CbcDes,
            SnmpPrivacy::Cfb128Aes128 => wit_snmp::Privacy::Cfb128Aes128,
            SnmpPrivacy::Cfb128Aes192 => wit_snmp::Privacy::Cfb128Aes192,
            SnmpPrivacy::Cfb128Aes256 => wit_snmp::Privacy::Cfb128Aes256,
        };
        wit_snmp::SnmpV3 { enabled: s.enabled, authentication, privacy }
    }
}

/// A constant string as the bytes of a custom section (`bmc:api-version`, `bmc:capabilities`).
pub const fn section_bytes<const N: usize>(text: &str) -> [u8; N] {
    let src = text.as_bytes();
    let mut out = [0u8; N];
    let mut i = 0;
    while i < N {
        out[i] = src[i];
        i += 1;
    }
    out
}

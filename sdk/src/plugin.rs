//! The trait a vendor implements and the handle through which it reaches the host.

use crate::http::{HttpError, Request, Response};
use crate::{Onboarded, PluginError, PluginInfo, ProbeResult, Secret, SnmpV3, Target};

/// A vendor plugin. Implement it on a unit struct and export it with
/// [`register_plugin!`](crate::register_plugin).
///
/// Every method gets the [`Bmc`] under work, through which all I/O goes, so the same code runs
/// inside the host and natively against [`testing::MockHost`](crate::testing) (feature `testing`).
pub trait VendorPlugin {
    /// The Redfish requests the plugin sends, one rule per line (`METHOD PATH
    /// [password=POINTER]`), written by [`register_plugin!`](crate::register_plugin) into the
    /// component's `bmc:capabilities` section. The host refuses any request no rule covers, and
    /// a plugin whose rules go beyond what its hardware profile allows. The default,
    /// [`BASELINE_CAPABILITIES`](crate::BASELINE_CAPABILITIES), is what plain Redfish needs; a
    /// vendor path is added by extending it, e.g. with `concat!`.
    const CAPABILITIES: &'static str = crate::BASELINE_CAPABILITIES;

    /// Static facts about the plugin.
    fn info() -> PluginInfo;

    /// Identifies the BMC, finds `target.account`, reads the live policy. Changes nothing.
    fn probe(bmc: &Bmc, target: &Target) -> Result<ProbeResult, PluginError>;

    /// Logs in as `target.login_account` with the `login-password` secret. Changes nothing.
    fn verify(bmc: &Bmc, target: &Target) -> Result<(), PluginError>;

    /// Sets the `new-password` secret on `target.account` and confirms the change.
    fn change_password(bmc: &Bmc, target: &Target) -> Result<(), PluginError>;

    /// The SNMPv3 settings of `target.account`, logged in as `target.login_account` with the
    /// `login-password` secret; `Ok(None)` when the BMC does not show them. Changes nothing (the
    /// host holds it to `probe`'s rules). The default reports nothing, which the host treats like
    /// a plugin built before SNMPv3 reporting existed: "not reported".
    fn snmp_state(bmc: &Bmc, target: &Target) -> Result<Option<SnmpV3>, PluginError> {
        let _ = (bmc, target);
        Ok(None)
    }

    /// Onboards a new node: logged in as the factory account `target.login_account` with the
    /// `login-password` secret, creates `target.account` as an Administrator with the
    /// `new-password` secret, or sets that password on it and enables it when it exists. The host
    /// holds the call to the rules of the `onboard` interface: one write, through a capability
    /// rule marked `onboard`, of exactly the new account's body (see
    /// [`redfish::enable_account`](crate::redfish::enable_account), which does it the standard
    /// way). The default answers `unsupported`: a vendor that cannot onboard says so.
    fn enable_account(bmc: &Bmc, target: &Target) -> Result<Onboarded, PluginError> {
        let _ = (bmc, target);
        Err(PluginError::Unsupported("this plugin does not onboard new nodes".into()))
    }

    /// Disables the factory account `target.account`, logged in as the stamp account
    /// `target.login_account` with the `login-password` secret, after onboarding. The host
    /// admits one write: `{"Enabled": false}` to that account as the BMC showed it, through a
    /// capability rule marked `onboard` (see [`redfish::disable_account`](crate::redfish::disable_account)).
    /// The default answers `unsupported`.
    fn disable_account(bmc: &Bmc, target: &Target) -> Result<(), PluginError> {
        let _ = (bmc, target);
        Err(PluginError::Unsupported("this plugin does not disable factory accounts".into()))
    }
}

/// Severity of a log line.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    /// Very detailed tracing.
    Trace,
    /// Diagnostics.
    Debug,
    /// Normal progress.
    Info,
    /// Something unexpected that the plugin handled.
    Warn,
    /// A failure.
    Error,
}

/// The host services a plugin may use. Implemented by the real host imports and by the mock.
pub(crate) trait Backend {
    fn secret(&self, name: &str) -> Result<Secret, String>;
    fn send(&self, request: &Request<'_>) -> Result<Response, HttpError>;
    fn log(&self, level: Level, message: &str);
    fn now_ms(&self) -> u64;
    fn sleep_ms(&self, ms: u32);
}

/// The BMC under work, as the host exposes it: HTTP to that BMC only, the secrets bound for this
/// call, logging and time.
pub struct Bmc {
    backend: Box<dyn Backend>,
}

impl Bmc {
    pub(crate) fn new(backend: Box<dyn Backend>) -> Self {
        Bmc { backend }
    }

    /// The secret bound to `name` for this call (`login-password`, `new-password`).
    pub fn secret(&self, name: &str) -> Result<Secret, PluginError> {
        self.backend.secret(name).map_err(|e| PluginError::Protocol(format!("secret `{name}` is not available: {e}")))
    }

    /// The password of `target.login_account`.
    pub fn login_password(&self) -> Result<Secret, PluginError> {
        self.secret(crate::LOGIN_PASSWORD)
    }

    /// The password `change_password` must set.
    pub fn new_password(&self) -> Result<Secret, PluginError> {
        self.secret(crate::NEW_PASSWORD)
    }

    /// Sends one request to the BMC and returns whatever it answered (any status).
    pub fn send(&self, request: &Request<'_>) -> Result<Response, HttpError> {
        self.backend.send(request)
    }

    /// Writes a line to the host's log.
    pub fn log(&self, level: Level, message: impl AsRef<str>) {
        self.backend.log(level, message.as_ref());
    }

    /// Logs at debug level.
    pub fn debug(&self, message: impl AsRef<str>) {
        self.log(Level::Debug, message);
    }

    /// Logs at info level.
    pub fn info(&self, message: impl AsRef<str>) {
        self.log(Level::Info, message);
    }

    /// Logs at warn level.
    pub fn warn(&self, message: impl AsRef<str>) {
        self.log(Level::Warn, message);
    }

    /// Milliseconds since the Unix epoch.
    pub fn now_ms(&self) -> u64 {
        self.backend.now_ms()
    }

    /// Waits, cut short by the host at the job's deadline.
    pub fn sleep_ms(&self, ms: u32) {
        self.backend.sleep_ms(ms);
    }
}

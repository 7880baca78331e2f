//! The contract's types as the rest of the host sees them: independent of any contract version
//! (each version's module under `wit/` converts its generated types into these), serialisable
//! for reports.

use serde::Serialize;
use std::fmt;

/// What a BMC accepts as a password.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct PasswordPolicy {
    /// Fewest characters.
    pub min_length: u32,
    /// Most characters.
    pub max_length: u32,
    /// Character classes required (of upper, lower, digit, symbol).
    pub min_classes: u32,
    /// Accepted symbols; empty when none is known to be safe.
    pub allowed_symbols: String,
    /// Previous passwords that cannot be reused.
    pub reuse_cycle: u32,
    /// Hours between two changes.
    pub min_change_interval_hours: u32,
    /// Longest run of one character; 0 without limit.
    pub max_repeated_chars: u32,
    /// Whether the account name may not appear in the password.
    pub forbid_account_name: bool,
}

/// Static facts about a plugin.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct PluginInfo {
    /// Stable id, e.g. `dell-idrac`.
    pub id: String,
    /// OEM.
    pub vendor: String,
    /// Controller product.
    pub product: String,
    /// The plugin's own version.
    pub version: String,
    /// Controller generations handled.
    pub families: Vec<String>,
    /// The vendor's default policy.
    pub policy: PasswordPolicy,
}

/// The BMC and accounts a call works on.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Target {
    /// The BMC's address as the operator wrote it.
    pub address: String,
    /// The account verified or changed.
    pub account: String,
    /// The account logged in as.
    pub login_account: String,
}

/// What `probe` learned.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ProbeResult {
    /// Controller generation.
    pub family: String,
    /// Firmware version.
    pub firmware: String,
    /// Redfish URI of the account.
    pub account_uri: String,
    /// Live policy.
    pub policy: PasswordPolicy,
}

/// The kinds of plugin error in the contract.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ErrorKind {
    /// Nothing was sent.
    Unreachable,
    /// Credential refused.
    AuthFailed,
    /// Account locked or client blocked.
    LockedOut,
    /// New password refused by policy.
    PolicyRejected,
    /// No such account.
    AccountNotFound,
    /// The BMC demands a password change first.
    PasswordChangeRequired,
    /// ETag precondition failed.
    PreconditionFailed,
    /// Not a BMC this plugin handles.
    Unsupported,
    /// Sent, no answer: the change may have been applied.
    Ambiguous,
    /// An answer the plugin does not understand.
    Protocol,
}

impl ErrorKind {
    /// The contract's name, e.g. `policy-rejected`.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::Unreachable => "unreachable",
            ErrorKind::AuthFailed => "auth-failed",
            ErrorKind::LockedOut => "locked-out",
            ErrorKind::PolicyRejected => "policy-rejected",
            ErrorKind::AccountNotFound => "account-not-found",
            ErrorKind::PasswordChangeRequired => "password-change-required",
            ErrorKind::PreconditionFailed => "precondition-failed",
            ErrorKind::Unsupported => "unsupported",
            ErrorKind::Ambiguous => "ambiguous",
            ErrorKind::Protocol => "protocol",
        }
    }
}

/// A typed error returned by a plugin.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct PluginError {
    /// What kind of failure.
    pub kind: ErrorKind,
    /// The plugin's message, normally quoting the vendor.
    pub message: String,
}

impl fmt::Display for PluginError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.kind.as_str(), self.message)
    }
}

impl std::error::Error for PluginError {}

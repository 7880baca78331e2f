//! The contract's data types, hand-written so that generated bindings never leak into a plugin's
//! public surface (the SDK can then evolve its bindings without breaking plugins).

use std::fmt;

/// What a BMC accepts as a password. See the WIT `password-policy` record for each field.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PasswordPolicy {
    /// Fewest characters accepted.
    pub min_length: u32,
    /// Most characters accepted.
    pub max_length: u32,
    /// How many of the four classes (upper, lower, digit, symbol) must appear.
    pub min_classes: u32,
    /// The symbols the BMC accepts; empty when none is known to be safe.
    pub allowed_symbols: String,
    /// How many previous passwords may not be reused; 0 without history.
    pub reuse_cycle: u32,
    /// Hours that must pass between two changes; 0 without limit.
    pub min_change_interval_hours: u32,
    /// Longest run of one repeated character; 0 without limit.
    pub max_repeated_chars: u32,
    /// Whether the password may not contain the account name (forward or reversed).
    pub forbid_account_name: bool,
}

/// Static facts about a plugin.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PluginInfo {
    /// Stable identifier that hardware profiles refer to, e.g. `dell-idrac`.
    pub id: String,
    /// The OEM, e.g. `Dell`.
    pub vendor: String,
    /// The controller product, e.g. `iDRAC`.
    pub product: String,
    /// The plugin's own version (usually `env!("CARGO_PKG_VERSION")`).
    pub version: String,
    /// Controller generations handled, e.g. `["iDRAC9", "iDRAC10"]`.
    pub families: Vec<String>,
    /// The vendor's documented default policy.
    pub policy: PasswordPolicy,
}

/// The BMC and accounts one call works on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Target {
    /// The BMC's address as the operator wrote it. Informational: requests go where the host says.
    pub address: String,
    /// The account whose password is verified or changed.
    pub account: String,
    /// The account the plugin logs in as (equal to `account` on a self-change).
    pub login_account: String,
}

impl Target {
    /// Whether the login account changes its own password (its session dies with the change).
    pub fn is_self_change(&self) -> bool {
        self.account == self.login_account
    }
}

/// What `probe` learned about a live BMC.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProbeResult {
    /// The controller generation, one of the plugin's families.
    pub family: String,
    /// The firmware version the BMC reports.
    pub firmware: String,
    /// The Redfish URI of the target account.
    pub account_uri: String,
    /// The policy the BMC enforces now.
    pub policy: PasswordPolicy,
}

/// SNMPv3 authentication, with the Redfish names (`ManagerAccount.SNMP.AuthenticationProtocol`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SnmpAuthentication {
    /// No authentication.
    None,
    /// An SNMPv1/v2c community string.
    CommunityString,
    /// HMAC-MD5-96.
    HmacMd5,
    /// HMAC-SHA-96.
    HmacSha96,
    /// HMAC-128-SHA-224.
    Hmac128Sha224,
    /// HMAC-192-SHA-256.
    Hmac192Sha256,
    /// HMAC-256-SHA-384.
    Hmac256Sha384,
    /// HMAC-384-SHA-512.
    Hmac384Sha512,
}

impl SnmpAuthentication {
    /// The protocol a Redfish `AuthenticationProtocol` value names (`HMAC_SHA96`, …); `None` for
    /// a value this SDK does not know.
    pub fn from_redfish(value: &str) -> Option<Self> {
        Some(match value {
            "None" => Self::None,
            "CommunityString" => Self::CommunityString,
            "HMAC_MD5" => Self::HmacMd5,
            "HMAC_SHA96" => Self::HmacSha96,
            "HMAC128_SHA224" => Self::Hmac128Sha224,
            "HMAC192_SHA256" => Self::Hmac192Sha256,
            "HMAC256_SHA384" => Self::Hmac256Sha384,
            "HMAC384_SHA512" => Self::Hmac384Sha512,
            _ => return None,
        })
    }
}

/// SNMPv3 privacy, with the Redfish names (`ManagerAccount.SNMP.EncryptionProtocol`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SnmpPrivacy {
    /// No privacy.
    None,
    /// CBC-DES.
    CbcDes,
    /// CFB128-AES-128.
    Cfb128Aes128,
    /// CFB128-AES-192.
    Cfb128Aes192,
    /// CFB128-AES-256.
    Cfb128Aes256,
}

impl SnmpPrivacy {
    /// The protocol a Redfish `EncryptionProtocol` value names (`CFB128_AES128`, …); `None` for a
    /// value this SDK does not know.
    pub fn from_redfish(value: &str) -> Option<Self> {
        Some(match value {
            "None" => Self::None,
            "CBC_DES" => Self::CbcDes,
            "CFB128_AES128" => Self::Cfb128Aes128,
            "CFB128_AES192" => Self::Cfb128Aes192,
            "CFB128_AES256" => Self::Cfb128Aes256,
            _ => return None,
        })
    }
}

/// The SNMPv3 settings of the target account (the WIT `snmp-v3` record).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SnmpV3 {
    /// Whether the account can send SNMPv3 traps.
    pub enabled: bool,
    /// Its authentication protocol.
    pub authentication: SnmpAuthentication,
    /// Its privacy protocol.
    pub privacy: SnmpPrivacy,
}

/// What [`VendorPlugin::enable_account`](crate::VendorPlugin::enable_account) did (the WIT
/// `onboarded` enum).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Onboarded {
    /// The account did not exist; it was created (in an empty slot, or by a POST).
    Created,
    /// The account existed (perhaps disabled); its password was set and it was enabled.
    Updated,
}

/// Why a plugin call failed; the text should carry the vendor's own message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PluginError {
    /// The BMC could not be reached; nothing was sent.
    Unreachable(String),
    /// The BMC refused the credential.
    AuthFailed(String),
    /// The account is locked out, or the client address is blocked.
    LockedOut(String),
    /// The BMC refused the new password under its policy.
    PolicyRejected(String),
    /// No account with the requested user name exists.
    AccountNotFound(String),
    /// The BMC demands a password change before anything else.
    PasswordChangeRequired(String),
    /// An ETag precondition failed and re-reading did not resolve it.
    PreconditionFailed(String),
    /// The BMC is not one this plugin handles.
    Unsupported(String),
    /// The change was sent but no answer came back: it may or may not have been applied.
    Ambiguous(String),
    /// The BMC answered something the plugin does not understand.
    Protocol(String),
}

impl PluginError {
    /// The kind of error as the WIT contract names it, e.g. `policy-rejected`.
    pub fn kind(&self) -> &'static str {
        match self {
            PluginError::Unreachable(_) => "unreachable",
            PluginError::AuthFailed(_) => "auth-failed",
            PluginError::LockedOut(_) => "locked-out",
            PluginError::PolicyRejected(_) => "policy-rejected",
            PluginError::AccountNotFound(_) => "account-not-found",
            PluginError::PasswordChangeRequired(_) => "password-change-required",
            PluginError::PreconditionFailed(_) => "precondition-failed",
            PluginError::Unsupported(_) => "unsupported",
            PluginError::Ambiguous(_) => "ambiguous",
            PluginError::Protocol(_) => "protocol",
        }
    }

    /// The human-readable message.
    pub fn message(&self) -> &str {
        match self {
            PluginError::Unreachable(m)
            | PluginError::AuthFailed(m)
            | PluginError::LockedOut(m)
            | PluginError::PolicyRejected(m)
            | PluginError::AccountNotFound(m)
            | PluginError::PasswordChangeRequired(m)
            | PluginError::PreconditionFailed(m)
            | PluginError::Unsupported(m)
            | PluginError::Ambiguous(m)
            | PluginError::Protocol(m) => m,
        }
    }
}

impl fmt::Display for PluginError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.kind(), self.message())
    }
}

impl std::error::Error for PluginError {}

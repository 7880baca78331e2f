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

/// SNMPv3 authentication, with the contract's (and so Redfish's) names.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum SnmpAuthentication {
    /// None (noAuthNoPriv).
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

/// SNMPv3 privacy, with the contract's (and so Redfish's) names.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum SnmpPrivacy {
    /// None.
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

/// The target account's SNMPv3 settings, as the `snmp` export reported them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct SnmpV3 {
    /// Whether the account can send SNMPv3 traps.
    pub enabled: bool,
    /// Authentication protocol.
    pub authentication: SnmpAuthentication,
    /// Privacy protocol.
    pub privacy: SnmpPrivacy,
}

/// What `onboard#enable-account` did to the target account.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Onboarded {
    /// It did not exist and was created.
    Created,
    /// It existed; its password was set and it was enabled.
    Updated,
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

/// Longest identifier-like text a plugin may report (ids, names, versions, families, firmware).
pub const MAX_NAME_LEN: usize = 128;
/// Longest message a plugin may report (errors quote the vendor) or log.
pub const MAX_MESSAGE_LEN: usize = 4096;

/// Text from a plugin, made safe to print, log or serialise: at most `max` bytes of it (cut on a
/// character boundary, then `…`), and every character that could move a terminal's cursor,
/// forge a log line or reorder what is shown (C0/C1 controls, ESC, CR, LF, bidirectional
/// overrides) written as a visible escape such as `\u{1b}`.
pub fn untrusted(text: &str, max: usize) -> String {
    let mut out = String::with_capacity(text.len().min(max));
    let mut buf = [0u8; 4];
    for c in text.chars() {
        let dangerous =
            c.is_control() || matches!(c, '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}');
        let escaped = if dangerous { c.escape_unicode().to_string() } else { String::new() };
        let piece = if dangerous { escaped.as_str() } else { c.encode_utf8(&mut buf) };
        if out.len() + piece.len() > max {
            out.push('…');
            break;
        }
        out.push_str(piece);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plugin_text_cannot_drive_a_terminal_or_forge_a_line() {
        let shown = untrusted("iDRAC9\u{1b}[2J\r\nFORGED line\u{202e}txt", MAX_NAME_LEN);
        assert_eq!(shown, "iDRAC9\\u{1b}[2J\\u{d}\\u{a}FORGED line\\u{202e}txt");
        assert!(!shown.chars().any(char::is_control));
        assert_eq!(untrusted("plain text, ü", 64), "plain text, ü");
    }

    #[test]
    fn plugin_text_is_capped_on_a_character_boundary() {
        let long = "é".repeat(100);
        let shown = untrusted(&long, 11);
        assert_eq!(shown, format!("{}…", "é".repeat(5)));
        assert_eq!(untrusted(&"\u{1b}".repeat(10), 20).matches("\\u{1b}").count(), 3);
    }
}

//! The inventory: one Azure Stack Hub stamp's BMCs and privileged endpoint. It holds no secret —
//! a key that looks like one is refused — and every error names the file, the line, the field
//! and what was expected. The commented example is `host/inventory.example.toml`.

use crate::gateway::{Endpoint, TlsPolicy};
use crate::pep::{MAX_CREDENTIAL_CHARS, PepEndpoint};
use serde::Deserialize;
use std::collections::{HashMap, HashSet};
use std::fmt;
use std::path::{Path, PathBuf};
use toml::Spanned;

/// A parsed, checked inventory.
#[derive(Clone, Debug)]
pub struct Inventory {
    /// The file it came from.
    pub path: PathBuf,
    /// The stamp's name (reports, journal, audit log).
    pub stamp: String,
    /// The BMC account rotated on every BMC (Azure Stack wants one user on all).
    pub bmc_user: String,
    /// The BMCs, in file order.
    pub bmcs: Vec<BmcEntry>,
    /// The privileged endpoint, if the file has a `[pep]` table.
    pub pep: Option<PepSettings>,
    /// Things that are allowed but unwise, for the operator to read.
    pub warnings: Vec<String>,
}

/// One BMC.
#[derive(Clone, Debug)]
pub struct BmcEntry {
    /// Unique name (the node, e.g. `node01`).
    pub name: String,
    /// Where its Redfish service listens.
    pub endpoint: Endpoint,
    /// The hardware profile (its own, or the stamp's).
    pub profile: String,
    /// How its certificate is trusted (its own, or the stamp's).
    pub tls: TlsPolicy,
    /// Line of its `[[bmc]]` entry, for messages.
    pub line: usize,
}

/// The privileged endpoint.
#[derive(Clone, Debug)]
pub struct PepSettings {
    /// The ERCS VMs, in the order they are tried.
    pub endpoints: Vec<PepEndpoint>,
    /// `DOMAIN\CloudAdmin`.
    pub cloudadmin: String,
    /// `Close-PrivilegedEndpoint -TranscriptsPathDestination`, and the share's account.
    pub transcripts: Option<(String, String)>,
}

/// A problem with the inventory, located.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InventoryError {
    /// The file.
    pub path: PathBuf,
    /// 1-based line, when known.
    pub line: Option<usize>,
    /// The field (`bmc[2].address`), when known.
    pub field: Option<String>,
    /// What is wrong and what was expected.
    pub message: String,
}

impl fmt::Display for InventoryError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.path.display())?;
        if let Some(line) = self.line {
            write!(f, ":{line}")?;
        }
        if let Some(field) = &self.field {
            write!(f, ": `{field}`")?;
        }
        write!(f, ": {}", self.message)
    }
}

impl std::error::Error for InventoryError {}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawInventory {
    stamp: Spanned<String>,
    bmc_user: Spanned<String>,
    profile: Option<Spanned<String>>,
    tls: Option<Spanned<String>>,
    pep: Option<Spanned<RawPep>>,
    #[serde(default)]
    bmc: Vec<Spanned<RawBmc>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPep {
    endpoints: Spanned<Vec<Spanned<String>>>,
    cloudadmin: Spanned<String>,
    tls: Option<Spanned<String>>,
    transcripts: Option<Spanned<String>>,
    transcripts_user: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawBmc {
    name: Spanned<String>,
    address: Spanned<String>,
    profile: Option<Spanned<String>>,
    tls: Option<Spanned<String>>,
    /// Written by bmc-lab (which cannot stop writing it without a change of its own): the
    /// simulated persona, informational. Only a build that carries the lab reads lab inventories;
    /// a production build refuses the key like any other unknown one.
    #[cfg(feature = "lab")]
    #[allow(dead_code)]
    persona: Option<String>,
}

/// Names of keys that would hold a secret. The inventory is shared and versioned: never there.
const SECRET_WORDS: [&str; 4] = ["password", "passwd", "secret", "credential"];

struct Locator<'a> {
    path: &'a Path,
    text: &'a str,
    /// Byte offset of every line break, so a line number is a binary search (one per BMC: a
    /// count from the start each time would be quadratic in the fleet's size).
    breaks: Vec<usize>,
}

impl<'a> Locator<'a> {
    fn new(path: &'a Path, text: &'a str) -> Self {
        let breaks = text.bytes().enumerate().filter(|(_, b)| *b == b'\n').map(|(i, _)| i).collect();
        Locator { path, text, breaks }
    }

    fn line(&self, offset: usize) -> usize {
        self.breaks.partition_point(|&b| b < offset) + 1
    }

    fn at<T>(&self, spanned: &Spanned<T>, field: impl Into<String>, message: impl Into<String>) -> InventoryError {
        InventoryError {
            path: self.path.to_owned(),
            line: Some(self.line(spanned.span().start)),
            field: Some(field.into()),
            message: message.into(),
        }
    }
}

fn refuse_secrets(locate: &Locator<'_>) -> Result<(), InventoryError> {
    for (i, line) in locate.text.lines().enumerate() {
        let code = line.split('#').next().unwrap_or_default();
        for word in SECRET_WORDS {
            let Some(at) = code.to_ascii_lowercase().find(word) else { continue };
            let key_like = code[at..].trim_start_matches(|c: char| c.is_ascii_alphanumeric() || c == '_' || c == '-');
            if key_like.trim_start().starts_with('=') || key_like.trim_start().starts_with("\"=") {
                return Err(InventoryError {
                    path: locate.path.to_owned(),
                    line: Some(i + 1),
                    field: Some(code[..at + word.len()].trim().trim_start_matches(['{', ',', ' ']).to_owned()),
                    message: "the inventory never holds a secret; give passwords with --bmc-password, \
                              --new-password and --cloudadmin-password (prompt, env:VAR, file:PATH or stdin)"
                        .into(),
                });
            }
        }
    }
    Ok(())
}

/// A value for an error message, unless it looks like it carries a credential (`user:password`,
/// `user@…`): then a note instead, so no message ever repeats a password typed into the wrong
/// field.
fn shown(value: &str) -> String {
    if value.contains([':', '@']) {
        "(the value is not repeated: it looks like it holds a credential, which never belongs in the inventory)"
            .to_owned()
    } else {
        format!("`{}`", crate::runtime::contract::untrusted(value, 128))
    }
}

fn account_name(value: &Spanned<String>, field: &str, locate: &Locator<'_>) -> Result<String, InventoryError> {
    let name = value.get_ref().trim();
    let chars = name.chars().count();
    if chars == 0 || chars > MAX_CREDENTIAL_CHARS {
        return Err(locate.at(
            value,
            field,
            format!("expected 1 to {MAX_CREDENTIAL_CHARS} characters (Azure Stack Hub's limit), got {chars}"),
        ));
    }
    if let Some(bad) = name.chars().find(|c| c.is_whitespace() || c.is_control() || "\"'\\/:;<>@[]|=,+*?".contains(*c))
    {
        return Err(locate.at(
            value,
            field,
            format!(
                "{} has {bad:?}, which BMC user names do not allow: use letters, digits, `-`, `_` and `.`",
                shown(name)
            ),
        ));
    }
    Ok(name.to_owned())
}

/// One spelling per BMC address, so one BMC listed twice under aliases is found: host names in
/// lower case without a trailing dot; IPv4 in every form `inet_aton` accepts (`127.1`,
/// `0x7f.0.0.1`, `017700000001`, `2130706433`) as dotted decimal; IPv6 in RFC 5952 form, and an
/// IPv4-mapped one (`::ffff:127.0.0.1`) as its IPv4 address. With the port: `127.0.0.1:443`.
pub fn canonical_address(endpoint: &Endpoint) -> String {
    let host = endpoint.host.trim().trim_end_matches('.').to_ascii_lowercase();
    let host = if let Some(v4) = ipv4_any_form(&host) {
        v4.to_string()
    } else if let Ok(v6) = host.parse::<std::net::Ipv6Addr>() {
        match v6.to_ipv4_mapped() {
            Some(v4) => v4.to_string(),
            None => format!("[{v6}]"),
        }
    } else {
        host
    };
    format!("{host}:{}", endpoint.port)
}

/// An IPv4 address in any form `inet_aton` accepts: one to four parts, each decimal, octal
/// (leading `0`) or hex (`0x`), the last filling the remaining bytes.
fn ipv4_any_form(text: &str) -> Option<std::net::Ipv4Addr> {
    let parts: Vec<&str> = text.split('.').collect();
    if parts.is_empty() || parts.len() > 4 {
        return None;
    }
    let numbers: Vec<u64> = parts
        .iter()
        .map(|p| {
            let (digits, radix) = match p.strip_prefix("0x") {
                Some(hex) => (hex, 16),
                None if p.len() > 1 && p.starts_with('0') => (&p[1..], 8),
                None => (*p, 10),
            };
            if digits.is_empty() && radix == 10 || digits.len() > 12 {
                return None;
            }
            if digits.is_empty() {
                return Some(0); // `0x` is 0 to inet_aton
            }
            u64::from_str_radix(digits, radix).ok()
        })
        .collect::<Option<_>>()?;
    let (last, head) = numbers.split_last()?;
    if head.iter().any(|n| *n > 255) || *last >= 1u64 << (8 * (4 - head.len())) {
        return None;
    }
    let value = head.iter().enumerate().fold(*last, |acc, (i, n)| acc | n << (8 * (3 - i)));
    Some(std::net::Ipv4Addr::from(u32::try_from(value).ok()?))
}

/// The longest stamp name.
pub const MAX_STAMP_CHARS: usize = 64;

/// A stamp name names files (the default journal, the stamp lock) and appears in reports: 1 to
/// 64 of `A-Z a-z 0-9 . _ -`, and not `.` or `..`.
pub fn check_stamp_name(stamp: &str) -> Result<(), String> {
    let example = "expected the stamp's name, e.g. \"contoso-east\"";
    if stamp.is_empty() {
        return Err(example.into());
    }
    let len = stamp.chars().count();
    if len > MAX_STAMP_CHARS {
        return Err(format!("{len} characters: a stamp name has at most {MAX_STAMP_CHARS}"));
    }
    if stamp == "." || stamp == ".." {
        return Err(format!("`{stamp}` is not a stamp name; {example}"));
    }
    if let Some(bad) = stamp.chars().find(|c| !(c.is_ascii_alphanumeric() || ".-_".contains(*c))) {
        return Err(format!("{:?} is not allowed in a stamp name: use letters, digits, `.`, `_` and `-`", bad));
    }
    Ok(())
}

impl Inventory {
    /// Reads and checks an inventory file.
    pub fn load(path: &Path) -> Result<Inventory, InventoryError> {
        let text = crate::files::read_bounded_string(path, "the inventory", crate::files::MAX_INVENTORY)
            .map_err(|e| InventoryError { path: path.to_owned(), line: None, field: None, message: e.reason() })?;
        Inventory::parse(path, &text)
    }

    /// Checks an inventory's text (`path` is for messages).
    pub fn parse(path: &Path, text: &str) -> Result<Inventory, InventoryError> {
        let locate = Locator::new(path, text);
        refuse_secrets(&locate)?;
        let raw: RawInventory = toml::from_str(text).map_err(|e| InventoryError {
            path: path.to_owned(),
            line: e.span().map(|s| locate.line(s.start)),
            field: None,
            message: e.message().trim().to_owned(),
        })?;
        let stamp = raw.stamp.get_ref().trim().to_owned();
        check_stamp_name(&stamp).map_err(|e| locate.at(&raw.stamp, "stamp", e))?;
        let bmc_user = account_name(&raw.bmc_user, "bmc_user", &locate)?;
        let mut warnings = Vec::new();
        if ["admin", "root", "administrator", "userid"].contains(&bmc_user.to_ascii_lowercase().as_str()) {
            warnings.push(format!(
                "bmc_user `{bmc_user}` is a well-known default account; Azure Stack Hub OEM guidance is to rotate a dedicated account"
            ));
        }
        let tls_of = |value: &Spanned<String>, field: &str| {
            value.get_ref().parse::<TlsPolicy>().map_err(|e| locate.at(value, field, e))
        };
        let default_tls = raw.tls.as_ref().map(|t| tls_of(t, "tls")).transpose()?;
        if raw.bmc.is_empty() {
            return Err(InventoryError {
                path: path.to_owned(),
                line: None,
                field: Some("bmc".into()),
                message: "no BMC: add one `[[bmc]]` table (name, address) per server".into(),
            });
        }
        let mut names = HashSet::new();
        // Canonical address → the index of the BMC that has it.
        let mut addresses: HashMap<String, usize> = HashMap::new();
        let mut bmcs = Vec::new();
        for (i, entry) in raw.bmc.iter().enumerate() {
            let bmc = entry.get_ref();
            let field = |f: &str| format!("bmc[{i}].{f}");
            let name = bmc.name.get_ref().trim().to_owned();
            if name.is_empty() {
                return Err(locate.at(&bmc.name, field("name"), "expected a name, e.g. \"node01\""));
            }
            if !names.insert(name.clone()) {
                return Err(locate.at(
                    &bmc.name,
                    field("name"),
                    format!("`{name}` is used by another BMC; names must be unique"),
                ));
            }
            let endpoint: Endpoint =
                bmc.address.get_ref().parse().map_err(|e: String| locate.at(&bmc.address, field("address"), e))?;
            let canonical = canonical_address(&endpoint);
            if let Some(first) = addresses.insert(canonical.clone(), i) {
                let other = &raw.bmc[first].get_ref().address;
                return Err(locate.at(
                    &bmc.address,
                    field("address"),
                    format!(
                        "{endpoint} is listed twice: it is {canonical}, as is bmc[{first}].address `{}` (line {}); \
                         one BMC must appear once",
                        other.get_ref().trim(),
                        locate.line(other.span().start)
                    ),
                ));
            }
            let profile = match (&bmc.profile, &raw.profile) {
                (Some(p), _) | (None, Some(p)) => p.get_ref().trim().to_owned(),
                (None, None) => {
                    return Err(locate.at(entry, field("profile"), "no hardware profile: set `profile` here or at the top of the file (see `bmc-rotate profiles list`)"));
                }
            };
            let tls = match (&bmc.tls, &default_tls) {
                (Some(t), _) => tls_of(t, &field("tls"))?,
                (None, Some(t)) => t.clone(),
                (None, None) => TlsPolicy::SystemRoots,
            };
            if tls == TlsPolicy::Insecure {
                warnings.push(format!("BMC {name}: TLS certificate checks are OFF (tls = \"insecure\")"));
            }
            bmcs.push(BmcEntry { name, endpoint, profile, tls, line: locate.line(entry.span().start) });
        }
        let pep = raw.pep.as_ref().map(|pep| pep_settings(pep, &locate)).transpose()?;
        Ok(Inventory { path: path.to_owned(), stamp, bmc_user, bmcs, pep, warnings })
    }

    /// The `[pep]` table, or an error saying it is needed.
    pub fn pep(&self) -> Result<&PepSettings, InventoryError> {
        self.pep.as_ref().ok_or_else(|| InventoryError {
            path: self.path.clone(),
            line: None,
            field: Some("pep".into()),
            message: "no `[pep]` table: add `endpoints` (the ERCS VM addresses) and `cloudadmin` (DOMAIN\\user)".into(),
        })
    }
}

fn pep_settings(pep: &Spanned<RawPep>, locate: &Locator<'_>) -> Result<PepSettings, InventoryError> {
    let raw = pep.get_ref();
    let list = raw.endpoints.get_ref();
    if list.is_empty() || list.len() > 3 {
        return Err(locate.at(
            &raw.endpoints,
            "pep.endpoints",
            format!("expected 1 to 3 ERCS VM addresses, got {}", list.len()),
        ));
    }
    let tls = raw
        .tls
        .as_ref()
        .map(|t| t.get_ref().parse::<TlsPolicy>().map_err(|e| locate.at(t, "pep.tls", e)))
        .transpose()?;
    let mut endpoints = Vec::new();
    for (i, address) in list.iter().enumerate() {
        let mut endpoint: PepEndpoint =
            address.get_ref().parse().map_err(|e: String| locate.at(address, format!("pep.endpoints[{i}]"), e))?;
        if let (Some(_), Some(policy)) = (&endpoint.tls, &tls) {
            endpoint.tls = Some(policy.clone());
        }
        endpoints.push(endpoint);
    }
    if let Some(policy) = &raw.tls
        && endpoints.iter().all(|e| e.tls.is_none())
    {
        return Err(locate.at(
            policy,
            "pep.tls",
            "a TLS policy needs HTTPS endpoints: write them as https://IP (WinRM's 5986 listener), or drop `tls` for \
             plain WinRM with message sealing",
        ));
    }
    let cloudadmin = raw.cloudadmin.get_ref().trim().to_owned();
    // Windows account names exclude these characters; `:` or `@` here is most likely a password.
    let windows_name =
        |part: &str| !part.is_empty() && !part.contains(|c: char| "\"/\\[]:;|=,+*?<>@".contains(c) || c.is_control());
    if !cloudadmin.split_once('\\').is_some_and(|(domain, user)| windows_name(domain) && windows_name(user)) {
        return Err(locate.at(
            &raw.cloudadmin,
            "pep.cloudadmin",
            format!(
                "{}: expected DOMAIN\\user, e.g. 'AZURESTACK\\CloudAdmin' (single quotes keep the backslash)",
                shown(&cloudadmin)
            ),
        ));
    }
    let transcripts = match (&raw.transcripts, &raw.transcripts_user) {
        (None, None) => None,
        (Some(path), Some(user)) => Some((path.get_ref().clone(), user.get_ref().clone())),
        (Some(path), None) => {
            return Err(locate.at(
                path,
                "pep.transcripts_user",
                "`transcripts` needs `transcripts_user` (DOMAIN\\user of the share)",
            ));
        }
        (None, Some(user)) => {
            return Err(locate.at(user, "pep.transcripts", "`transcripts_user` needs `transcripts` (the share path)"));
        }
    };
    Ok(PepSettings { endpoints, cloudadmin, transcripts })
}

#[cfg(test)]
mod tests;

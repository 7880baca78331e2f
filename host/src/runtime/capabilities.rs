//! A plugin's capability manifest: the Redfish requests it declares it needs, read from the
//! component's `bmc:capabilities` section before compiling, shown by `plugins inspect`, bounded
//! by its hardware profile and enforced by the `http` import on every request.
//!
//! One rule per line, `#` starts a comment:
//!
//! ```text
//! GET /redfish/v1/**
//! POST /redfish/v1/SessionService/Sessions
//! DELETE {session}
//! PATCH {account} password=/Password
//! ```
//!
//! A path pattern matches segment by segment: `*` is one segment, a final `**` any number. Two
//! names stand for resources the host learns during the call, from the BMC's own answers:
//! `{account}` is the target account's resource (a `ManagerAccount` whose `UserName` is the
//! target account, read in the same call), `{snmp-user}` a vendor SNMPv3 user the BMC showed, in
//! the same call, to belong to the target account (its `SecurityName` is the account's name: HPE
//! iLO's `SnmpService/SNMPUsers` members, whose passphrases must follow the password), and
//! `{session}` a session the call created. A
//! `password=` pointer is the one place a rule lets the new password go: the body of such a
//! request must be exactly that JSON member holding the secret; `{account-id}` in a pointer is
//! the target account's `Id`.
//!
//! A rule ending in `onboard` serves only `onboard#enable-account`, the one call that may set up
//! an account on a new node (`POST /redfish/v1/AccountService/Accounts password=/Password
//! onboard`, or `PATCH /redfish/v1/AccountService/Accounts/* password=/Password onboard` for
//! BMCs with fixed account slots). Every other call ignores such rules, and that call ignores
//! every other rule that writes: creating accounts is granted to onboarding alone.

use crate::gateway::Method;
use std::fmt;

/// The custom section holding the manifest, as UTF-8 text.
pub const CAPABILITIES_SECTION: &str = "bmc:capabilities";

/// Most rules one manifest may hold; real plugins need fewer than ten.
pub const MAX_RULES: usize = 64;

/// Largest manifest accepted, in bytes.
pub const MAX_MANIFEST_LEN: usize = 16 << 10;

/// The placeholder for the target account's resource.
pub const ACCOUNT: &str = "{account}";
/// The placeholder for the target account's SNMPv3 user (see the module).
pub const SNMP_USER: &str = "{snmp-user}";
/// The placeholder for a session the call created.
pub const SESSION: &str = "{session}";
/// The placeholder for the target account's `Id`, inside a password pointer.
pub const ACCOUNT_ID: &str = "{account-id}";

/// What every Redfish plugin needs and every profile allows: read the service, log in and out,
/// and set the target account's `Password`. Plugins built for `bmc:plugin@0.1` have no manifest
/// and are held to this one.
pub const BASELINE: &str = "\
GET /redfish/v1/**
POST /redfish/v1/SessionService/Sessions
DELETE {session}
PATCH {account} password=/Password
";

/// Which resources a rule covers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Resource {
    /// Paths matching a pattern.
    Pattern(Vec<String>),
    /// The target account, pinned from the BMC's answer in the same call.
    Account,
    /// The target account's SNMPv3 user, pinned from the BMC's answer in the same call.
    SnmpUser,
    /// A session this call created.
    Session,
}

/// One permission: a method on some resources, and where a password may go.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rule {
    /// The method.
    pub method: Method,
    /// The resources.
    pub resource: Resource,
    /// The JSON pointer of the only member that may carry the new password, if any.
    pub password: Option<String>,
    /// Whether the rule serves only onboarding (see the module).
    pub onboard: bool,
}

/// Why a manifest was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: {message}")]
pub struct ManifestError {
    /// 1-based line in the manifest.
    pub line: usize,
    /// What is wrong and what was expected.
    pub message: String,
}

/// A plugin's declared capabilities.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Manifest {
    rules: Vec<Rule>,
}

impl Manifest {
    /// [`BASELINE`], parsed.
    pub fn baseline() -> Manifest {
        Manifest::parse(BASELINE).expect("the baseline manifest parses")
    }

    /// Parses manifest text; every error names its line and what was expected.
    pub fn parse(text: &str) -> Result<Manifest, ManifestError> {
        if text.len() > MAX_MANIFEST_LEN {
            return Err(ManifestError {
                line: 0,
                message: format!("the manifest is {} bytes long; the limit is {MAX_MANIFEST_LEN}", text.len()),
            });
        }
        let mut rules = Vec::new();
        for (index, raw) in text.lines().enumerate() {
            let line = raw.split('#').next().unwrap_or("").trim();
            if line.is_empty() {
                continue;
            }
            let rule = parse_rule(line).map_err(|message| ManifestError { line: index + 1, message })?;
            if !rules.contains(&rule) {
                rules.push(rule);
            }
            if rules.len() > MAX_RULES {
                return Err(ManifestError { line: index + 1, message: format!("more than {MAX_RULES} rules") });
            }
        }
        if rules.is_empty() {
            return Err(ManifestError { line: 0, message: "the manifest declares no rule".into() });
        }
        Ok(Manifest { rules })
    }

    /// The rules, in declaration order.
    pub fn rules(&self) -> &[Rule] {
        &self.rules
    }

    /// The rules this manifest asks for that `allowed` does not grant (rules compare as written:
    /// a profile grants exactly what it lists).
    pub fn beyond<'a>(&'a self, allowed: &Manifest) -> Vec<&'a Rule> {
        self.rules.iter().filter(|r| !allowed.rules.contains(r)).collect()
    }

    /// This manifest with `other`'s rules added.
    pub fn with(mut self, other: &Manifest) -> Manifest {
        for rule in &other.rules {
            if !self.rules.contains(rule) {
                self.rules.push(rule.clone());
            }
        }
        self
    }
}

impl fmt::Display for Manifest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for rule in &self.rules {
            writeln!(f, "{rule}")?;
        }
        Ok(())
    }
}

impl fmt::Display for Rule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ", self.method)?;
        match &self.resource {
            Resource::Account => f.write_str(ACCOUNT)?,
            Resource::SnmpUser => f.write_str(SNMP_USER)?,
            Resource::Session => f.write_str(SESSION)?,
            Resource::Pattern(segments) => {
                for s in segments {
                    write!(f, "/{s}")?;
                }
            }
        }
        if let Some(pointer) = &self.password {
            write!(f, " password={pointer}")?;
        }
        if self.onboard {
            f.write_str(" onboard")?;
        }
        Ok(())
    }
}

fn parse_rule(line: &str) -> Result<Rule, String> {
    let words: Vec<&str> = line.split_whitespace().collect();
    let (method, target, rest) = match words.as_slice() {
        [method, target, rest @ ..] => (*method, *target, rest),
        _ => return Err(format!("expected `METHOD PATH [password=POINTER]`, found `{line}`")),
    };
    let method = match method {
        "GET" => Method::Get,
        "POST" => Method::Post,
        "PATCH" => Method::Patch,
        "PUT" => Method::Put,
        "DELETE" => Method::Delete,
        other => return Err(format!("unknown method `{other}`: expected GET, POST, PATCH, PUT or DELETE")),
    };
    let resource = match target {
        ACCOUNT => Resource::Account,
        SNMP_USER => Resource::SnmpUser,
        SESSION => Resource::Session,
        path => Resource::Pattern(parse_pattern(path)?),
    };
    let (rest, onboard) = match rest {
        [before @ .., "onboard"] => (before, true),
        _ => (rest, false),
    };
    let password = match rest {
        [] => None,
        [slot] => match slot.strip_prefix("password=") {
            Some(pointer) => Some(parse_pointer(pointer)?),
            None => {
                return Err(format!("unexpected `{slot}`: the options are `password=/POINTER` and a final `onboard`"));
            }
        },
        _ => {
            return Err(format!("too many words in `{line}`: expected `METHOD PATH [password=POINTER] [onboard]`"));
        }
    };
    if onboard {
        let plain_path = matches!(resource, Resource::Pattern(_));
        if !(plain_path && matches!(method, Method::Post | Method::Patch) && password.is_some()) {
            return Err(format!(
                "an `onboard` rule is `POST|PATCH /PATH password=POINTER onboard`: it admits only the new \
                 account's body, found `{line}`"
            ));
        }
        if password.as_deref().is_some_and(|p| p.contains(ACCOUNT_ID)) {
            return Err(format!("an `onboard` rule's pointer may not name `{ACCOUNT_ID}`: the account is new"));
        }
        return Ok(Rule { method, resource, password, onboard });
    }
    match (&method, &resource, &password) {
        (Method::Delete, Resource::Session, None) => {}
        (_, Resource::Session, _) => return Err(format!("`{SESSION}` is only for `DELETE {SESSION}`")),
        (Method::Patch, Resource::Account, Some(_)) => {}
        (_, Resource::Account, _) => {
            return Err(format!(
                "`{ACCOUNT}` is only for `PATCH {ACCOUNT} password=POINTER`: the target account's other \
                 properties (name, role, state) are not a plugin's to change"
            ));
        }
        (Method::Patch, Resource::SnmpUser, Some(_)) => {}
        (_, Resource::SnmpUser, _) => {
            return Err(format!(
                "`{SNMP_USER}` is only for `PATCH {SNMP_USER} password=POINTER`: a plugin may only make the account's \
                 SNMPv3 passphrases follow its password"
            ));
        }
        (Method::Patch, _, _) | (_, _, None) => {}
        (_, _, Some(_)) => return Err("a `password=` pointer is only allowed on a PATCH rule".into()),
    }
    Ok(Rule { method, resource, password, onboard })
}

fn parse_pattern(path: &str) -> Result<Vec<String>, String> {
    let Some(rest) = path.strip_prefix('/') else {
        return Err(format!("`{path}` is not an absolute path, `{ACCOUNT}` or `{SESSION}`"));
    };
    let segments: Vec<String> = rest.split('/').map(str::to_owned).collect();
    for (i, s) in segments.iter().enumerate() {
        match s.as_str() {
            "" => return Err(format!("`{path}` has an empty segment")),
            "." | ".." => return Err(format!("`{path}` has a `{s}` segment")),
            "**" if i + 1 != segments.len() => return Err(format!("`{path}`: `**` may only end a pattern")),
            s if s != "*" && s != "**" && s.contains('*') => {
                return Err(format!("`{path}`: `*` must be a whole segment"));
            }
            s if s.contains(['?', '#', '%', '{', '}']) => {
                return Err(format!("`{path}`: a pattern holds plain path segments only"));
            }
            _ => {}
        }
    }
    Ok(segments)
}

fn parse_pointer(pointer: &str) -> Result<String, String> {
    if !pointer.starts_with('/') || pointer.len() < 2 || pointer.split('/').skip(1).any(str::is_empty) {
        return Err(format!("`{pointer}` is not a JSON pointer to a member, e.g. `/Password`"));
    }
    if pointer.contains('~') {
        return Err(format!("`{pointer}`: escaped pointer segments are not supported"));
    }
    let without = pointer.replace(ACCOUNT_ID, "");
    if without.contains(['{', '}']) {
        return Err(format!("`{pointer}`: the only placeholder in a pointer is `{ACCOUNT_ID}`"));
    }
    Ok(pointer.to_owned())
}

impl Rule {
    /// Whether the rule's pattern covers `path` (normalised: no trailing `/`, no query).
    /// `{account}` and `{session}` rules match only what the call learned; see the guard.
    pub fn pattern_matches(&self, path: &str) -> bool {
        let Resource::Pattern(pattern) = &self.resource else {
            return false;
        };
        let segments: Vec<&str> = path.trim_start_matches('/').split('/').filter(|s| !s.is_empty()).collect();
        matches(pattern, &segments)
    }

    /// Whether this is a session login rule: a POST to a Redfish session collection.
    pub fn is_login(&self) -> bool {
        self.method == Method::Post
            && matches!(&self.resource, Resource::Pattern(p) if p.ends_with(&["SessionService".into(), "Sessions".into()]))
    }
}

fn matches(pattern: &[String], path: &[&str]) -> bool {
    match (pattern.first().map(String::as_str), path.first()) {
        (Some("**"), _) => true,
        (None, None) => true,
        (Some("*"), Some(_)) => matches(&pattern[1..], &path[1..]),
        (Some(literal), Some(segment)) if literal == *segment => matches(&pattern[1..], &path[1..]),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_baseline_round_trips() {
        let baseline = Manifest::baseline();
        assert_eq!(baseline.to_string(), BASELINE);
        assert_eq!(Manifest::parse(&baseline.to_string()).unwrap(), baseline);
        assert!(baseline.rules().iter().any(Rule::is_login));
    }

    #[test]
    fn patterns_match_segment_by_segment() {
        let m = Manifest::parse("GET /redfish/v1/**\nPATCH /redfish/v1/Managers/*/Attrs\n").unwrap();
        let (get, patch) = (&m.rules()[0], &m.rules()[1]);
        assert!(get.pattern_matches("/redfish/v1"));
        assert!(get.pattern_matches("/redfish/v1/AccountService/Accounts/2"));
        assert!(!get.pattern_matches("/redfish"));
        assert!(!get.pattern_matches("/redfish/v10/x"));
        assert!(patch.pattern_matches("/redfish/v1/Managers/1/Attrs"));
        assert!(!patch.pattern_matches("/redfish/v1/Managers/1/2/Attrs"));
        assert!(!patch.pattern_matches("/redfish/v1/Managers/Attrs"));
    }

    #[test]
    fn bad_manifests_name_the_line_and_the_mistake() {
        let cases = [
            ("GET /redfish/v1/**\nFETCH /x", 2, "unknown method"),
            ("PATCH {account}", 1, "only for `PATCH {account} password="),
            ("POST {account} password=/Password", 1, "only for `PATCH"),
            ("GET {session}", 1, "only for `DELETE {session}`"),
            ("PATCH {snmp-user}", 1, "only for `PATCH {snmp-user} password="),
            ("DELETE {snmp-user}", 1, "only for `PATCH {snmp-user} password="),
            ("GET /a/** password=/Password", 1, "only allowed on a PATCH"),
            ("GET /a/**/b", 1, "may only end"),
            ("GET a/b", 1, "not an absolute path"),
            ("GET /a/../b", 1, "`..` segment"),
            ("GET /a/b*", 1, "whole segment"),
            ("PATCH /a password=Password", 1, "JSON pointer"),
            ("PATCH /a password=/Users.{user}.Password", 1, "only placeholder"),
            ("PATCH /a password=/P extra", 1, "too many words"),
            ("POST /a onboard", 1, "an `onboard` rule is"),
            ("GET /a password=/P onboard", 1, "an `onboard` rule is"),
            ("PATCH {account} password=/Password onboard", 1, "an `onboard` rule is"),
            ("PATCH /a password=/Users.{account-id}.P onboard", 1, "the account is new"),
            ("PATCH /a onboard password=/P", 1, "too many words"),
            ("# nothing\n\n", 0, "no rule"),
        ];
        for (text, line, needle) in cases {
            let err = Manifest::parse(text).unwrap_err();
            assert_eq!(err.line, line, "{text:?}: {err}");
            assert!(err.message.contains(needle), "{text:?}: {err}");
        }
        let many: String = (0..=MAX_RULES).map(|i| format!("GET /r{i}\n")).collect();
        assert!(Manifest::parse(&many).unwrap_err().message.contains("more than"));
    }

    #[test]
    fn a_manifest_beyond_its_allowance_is_named_rule_by_rule() {
        let dell =
            "PATCH /redfish/v1/Managers/iDRAC.Embedded.1/Attributes password=/Attributes/Users.{account-id}.Password";
        let asks = Manifest::parse(&format!("{BASELINE}{dell}\nPOST /redfish/v1/AccountService/Accounts\n")).unwrap();
        let allowed = Manifest::baseline().with(&Manifest::parse(dell).unwrap());
        let beyond: Vec<String> = asks.beyond(&allowed).iter().map(|r| r.to_string()).collect();
        assert_eq!(beyond, ["POST /redfish/v1/AccountService/Accounts"]);
        assert!(Manifest::baseline().beyond(&allowed).is_empty());
    }

    #[test]
    fn onboard_rules_round_trip_and_differ_from_their_plain_twins() {
        let text = "POST /redfish/v1/AccountService/Accounts password=/Password onboard\n";
        let onboard = Manifest::parse(text).unwrap();
        assert!(onboard.rules()[0].onboard);
        assert_eq!(onboard.to_string(), text);
        // A profile granting the plain rule does not grant onboarding.
        let plain = Manifest::parse("POST /redfish/v1/AccountService/Accounts\n").unwrap();
        assert_eq!(onboard.beyond(&plain).len(), 1);
    }
}

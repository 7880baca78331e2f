//! The request guard: what a plugin may send, decided before anything is sent.
//!
//! Threat model: the BMC is honest, the plugin may be hostile. A hostile plugin holds secret
//! handles it cannot read, so the only way to learn a secret is to make the BMC react to one:
//! splice it next to a guess (a policy refusal that compares the two), into a path or another
//! account, or log in as someone else with it. The guard therefore lets a secret travel in
//! exactly three shapes, each fixed by the host and none mixing a secret with guest-chosen data:
//!
//! - Basic credentials of the login account (or, in a self-change, of the account with the new
//!   password);
//! - a session login: a POST to a declared session collection whose body is exactly
//!   `{"UserName": <that account>, "Password": <its secret>}`;
//! - a password change: a PATCH, in `change-password` only, whose body is exactly the member a
//!   manifest rule names (`password=/Password`) holding the new password, sent to the target
//!   account — a resource the BMC itself showed, in this call, to be the `ManagerAccount` named
//!   `target.account` — or to a declared vendor resource.
//!
//! Every other request must match a rule of the plugin's manifest ([`Manifest`]) and carry no
//! secret; `probe` and `verify` may only read, log in and log out.
//!
//! Onboarding (`onboard#enable-account`) is the one call that may create an account, and it may
//! do nothing else that writes: its only secret-bearing request besides the login is the new
//! account's body, exactly `{"UserName": <target.account>, <pointer>: <new-password>,
//! "RoleId": "Administrator", "Enabled": true}`, sent through a rule marked `onboard` — a POST to
//! a declared collection, or a PATCH of a resource the BMC showed in this call to be an empty
//! account slot or the target account. `onboard#disable-account`, run as the stamp account,
//! may send one write: `{"Enabled": false}` to the target (factory) account, as the BMC showed
//! it, through a rule marked `onboard`. Rules marked `onboard` serve no other call. Refusals name the rule that is
//! missing, never anything about a secret: the decision depends only on what the guest chose and
//! on names the host knows, so it answers no question about a secret's value.

use super::secrets::{SecretBindings, SecretName};
use crate::gateway::{Auth, Method, Part, Request};
use crate::runtime::capabilities::{ACCOUNT_ID, Manifest, Resource, Rule};
use crate::runtime::contract::{Target, untrusted};
use secrecy::SecretString;
use serde_json::Value;
use std::sync::Arc;

/// Most requests carrying a secret one call may send: a login, a change, a retry of the change,
/// a vendor fallback and a login with the new password, with one to spare. Each is one chance
/// to make a BMC react to a secret; a real plugin needs a handful.
pub const MAX_SECRET_REQUESTS: u32 = 6;

/// The export being called: what the call is allowed to do.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Call {
    /// `info`: no BMC.
    Info,
    /// `probe`: read, log in, log out.
    Probe,
    /// `verify`: read, log in, log out.
    Verify,
    /// `change-password`: everything the manifest declares.
    ChangePassword,
    /// `snmp#state`: read, log in, log out.
    SnmpState,
    /// `onboard#enable-account`: read, log in, log out, and set up the target account through
    /// an `onboard` rule (see the module).
    Onboard,
    /// `onboard#disable-account`: read, log in, log out, and disable the target account (the
    /// factory account) with a body of exactly `{"Enabled": false}` through an `onboard` rule.
    DisableAccount,
}

/// What kind of request the guard admitted: decides what the host does with its answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Admitted {
    /// Carries no secret in its body.
    Plain {
        /// The normalised path.
        path: String,
        /// The method.
        method: Method,
    },
    /// A session login.
    Login,
    /// A password change.
    PasswordChange,
}

/// The target account's resource, as the BMC showed it in this call.
#[derive(Clone, Debug)]
struct Pinned {
    path: String,
    id: String,
}

/// One call's guard.
pub struct Guard {
    manifest: Arc<Manifest>,
    call: Call,
    target: Option<Target>,
    bound: SecretBindings,
    account: Option<Pinned>,
    /// Resources the BMC showed, in this call, to be the target account's SNMPv3 user.
    snmp_users: Vec<String>,
    /// Every `ManagerAccount` the BMC showed in this call, with its latest `UserName`.
    accounts_seen: Vec<(String, String)>,
    sessions: Vec<String>,
    secret_requests: u32,
    credentials_used: Vec<(String, SecretName)>,
}

impl Guard {
    /// A guard for one call of `call` on `target`, holding the plugin to `manifest`.
    pub fn new(manifest: Arc<Manifest>, call: Call, target: Option<Target>, bound: SecretBindings) -> Guard {
        Guard {
            manifest,
            call,
            target,
            bound,
            account: None,
            snmp_users: Vec::new(),
            accounts_seen: Vec::new(),
            sessions: Vec::new(),
            secret_requests: 0,
            credentials_used: Vec::new(),
        }
    }

    /// Decides whether `request` may be sent; the error says which rule refuses it.
    pub fn admit(&mut self, request: &Request) -> Result<Admitted, String> {
        let (path, query) = normalise(&request.path)?;
        let shown = untrusted(&path, 200);
        let uses_credential = self.check_auth(&request.auth)?;
        let has_secret = request.body.iter().any(|p| matches!(p, Part::SecretJson(_)));
        if query.is_some() && request.method != Method::Get {
            return Err(format!("{} {shown}: only GET requests may carry a query", request.method));
        }
        let admitted = if has_secret {
            self.admit_secret_body(request, &path)?
        } else if self.call == Call::DisableAccount && request.method == Method::Patch && self.is_account(&path) {
            self.admit_disable(request, &path)?
        } else if request.method != Method::Get && self.is_account(&path) {
            // Renaming the target account (or changing its role) would let a plugin set up a
            // policy refusal that compares the password with a name of its choosing.
            return Err(format!(
                "{} {shown}: the target account is changed only by setting its new password",
                request.method
            ));
        } else {
            let rule = self
                .rule_for(request.method, &path)
                .ok_or_else(|| format!("{} {shown} is not in the plugin's capability manifest", request.method))?;
            if rule.password.is_some() {
                return Err(format!("{} {shown}: this rule only admits the new password, as declared", request.method));
            }
            self.check_call(request.method, rule, &shown)?;
            Admitted::Plain { path, method: request.method }
        };
        let secret_request = has_secret || uses_credential.as_ref().is_some_and(|c| !self.credentials_used.contains(c));
        if secret_request {
            if self.secret_requests >= MAX_SECRET_REQUESTS {
                return Err(format!(
                    "{} {shown}: this call already sent {MAX_SECRET_REQUESTS} requests carrying a password, the most \
                     one call may send",
                    request.method
                ));
            }
            self.secret_requests += 1;
        }
        if let Some(credential) = uses_credential
            && !self.credentials_used.contains(&credential)
        {
            self.credentials_used.push(credential);
        }
        Ok(admitted)
    }

    /// Learns from the BMC's answer to an admitted request: the target account's resource and
    /// the sessions this call created.
    pub fn observe(&mut self, admitted: &Admitted, status: u16, headers: &[(String, String)], body: &[u8]) {
        if !(200..300).contains(&status) {
            return;
        }
        match admitted {
            Admitted::Plain { path, method: Method::Get } => {
                let Some(target) = &self.target else { return };
                // Only an object: a derived struct would also read a JSON array by position.
                if !body.trim_ascii_start().starts_with(b"{") {
                    return;
                }
                let Ok(seen) = serde_json::from_slice::<Seen>(body) else { return };
                let is_account = seen.odata_type.as_deref().is_some_and(|t| {
                    t.trim_start_matches('#').starts_with("ManagerAccount.") && t.ends_with(".ManagerAccount")
                });
                let user_name = seen.user_name.as_deref();
                if let (true, Some(user)) = (is_account, user_name) {
                    self.accounts_seen.retain(|(seen, _)| seen != path);
                    self.accounts_seen.push((path.clone(), user.to_owned()));
                }
                if is_account && user_name == Some(target.account.as_str()) {
                    let id = seen.id.unwrap_or_else(|| path.rsplit('/').next().unwrap_or_default().to_owned());
                    self.account = Some(Pinned { path: path.clone(), id });
                }
                // An SNMPv3 user (HPE's `HpeSNMPUser`) is the account's by its `SecurityName`.
                let snmp_user = !is_account && seen.security_name.as_deref() == Some(target.account.as_str());
                if snmp_user && !self.snmp_users.contains(path) {
                    self.snmp_users.push(path.clone());
                }
            }
            Admitted::Login => {
                let location = headers.iter().find(|(k, _)| k == "location").map(|(_, v)| v.as_str());
                let id = serde_json::from_slice::<Value>(body)
                    .ok()
                    .and_then(|v| v.get("@odata.id").and_then(Value::as_str).map(str::to_owned));
                for uri in location.into_iter().map(str::to_owned).chain(id) {
                    let path = match reqwest::Url::parse(&uri) {
                        Ok(url) => url.path().to_owned(),
                        Err(_) => uri,
                    };
                    if let Ok((path, None)) = normalise(&path)
                        && !self.sessions.contains(&path)
                    {
                        self.sessions.push(path);
                    }
                }
            }
            _ => {}
        }
    }

    fn is_account(&self, path: &str) -> bool {
        self.account.as_ref().is_some_and(|a| a.path == path)
    }

    /// The first rule granting `method` on `path`.
    fn rule_for<'a>(&'a self, method: Method, path: &'a str) -> Option<&'a Rule> {
        self.rules_for(method, path).next()
    }

    /// Every rule granting `method` on `path`, in declaration order.
    fn rules_for<'a>(&'a self, method: Method, path: &'a str) -> impl Iterator<Item = &'a Rule> + 'a {
        // Onboarding rules exist for onboarding only: no other call may create an account,
        // whatever its manifest asks for.
        let onboarding = matches!(self.call, Call::Onboard | Call::DisableAccount);
        self.manifest.rules().iter().filter(move |rule| {
            rule.method == method
                && (!rule.onboard || onboarding)
                && match &rule.resource {
                    Resource::Pattern(_) => rule.pattern_matches(path),
                    Resource::Account => self.is_account(path),
                    Resource::SnmpUser => self.snmp_users.iter().any(|s| s == path),
                    Resource::Session => self.sessions.iter().any(|s| s == path),
                }
        })
    }

    /// `probe` and `verify` change nothing: they may read, log in and log out.
    fn check_call(&self, method: Method, rule: &Rule, shown: &str) -> Result<(), String> {
        let reading = method == Method::Get || rule.is_login() || rule.resource == Resource::Session;
        match self.call {
            Call::ChangePassword => Ok(()),
            Call::Info => Err("`info` has no BMC".into()),
            Call::Probe | Call::Verify | Call::SnmpState if reading => Ok(()),
            Call::Probe | Call::Verify | Call::SnmpState => Err(format!(
                "{method} {shown}: `{}` changes nothing; it may only read, log in and log out",
                match self.call {
                    Call::Probe => "probe",
                    Call::Verify => "verify",
                    _ => "snmp#state",
                }
            )),
            Call::Onboard | Call::DisableAccount if reading => Ok(()),
            Call::DisableAccount => Err(format!(
                "{method} {shown}: `onboard#disable-account` may only read, log in, log out and disable the target \
                 account"
            )),
            Call::Onboard => Err(format!(
                "{method} {shown}: `onboard#enable-account` may only read, log in, log out and set up the target \
                 account through an `onboard` rule"
            )),
        }
    }

    /// Which bound password a handle is, if it is one (anything else is a BMC-issued token).
    fn password(&self, secret: &Arc<SecretString>) -> Option<SecretName> {
        SecretName::ALL.into_iter().find(|n| self.bound.get(*n).is_some_and(|b| Arc::ptr_eq(b, secret)))
    }

    /// Whose credential `name` may be, in this call: the login account's password, and in a
    /// self-change the new password of the same account.
    fn may_use(&self, user: &str, name: SecretName) -> bool {
        let Some(target) = &self.target else { return false };
        match name {
            SecretName::LoginPassword => user == target.login_account,
            SecretName::NewPassword => {
                self.call == Call::ChangePassword && target.account == target.login_account && user == target.account
            }
        }
    }

    /// Checks the credentials; returns the password credential used, if any.
    fn check_auth(&self, auth: &Auth) -> Result<Option<(String, SecretName)>, String> {
        match auth {
            Auth::None => Ok(None),
            Auth::Session(token) => match self.password(token) {
                Some(name) => Err(format!("`{name}` is a password, not a session token")),
                None => Ok(None),
            },
            Auth::Basic { user, password } => {
                let Some(name) = self.password(password) else {
                    return Err("a session token cannot be used as a Basic password".into());
                };
                if !self.may_use(user, name) {
                    return Err(format!(
                        "`{name}` may not be sent as the password of `{}`: {}",
                        untrusted(user, 64),
                        self.whose(name)
                    ));
                }
                Ok(Some((user.clone(), name)))
            }
        }
    }

    fn whose(&self, name: SecretName) -> String {
        let Some(target) = &self.target else { return "this call has no target".into() };
        match name {
            SecretName::LoginPassword => format!("it is the password of `{}`", target.login_account),
            SecretName::NewPassword => format!(
                "it is set on `{}` by `change-password`, and used as a credential only after a self-change",
                target.account
            ),
        }
    }

    /// A body carrying a secret: a session login or a password change, exactly as declared.
    fn admit_secret_body(&self, request: &Request, path: &str) -> Result<Admitted, String> {
        let shown = untrusted(path, 200);
        let refuse = |why: &str| Err(format!("{} {shown}: {why}", request.method));
        let Some(shape) = Shape::of(&request.body) else {
            return refuse(
                "a body carrying a password must be one JSON object with the password once, as a whole string value",
            );
        };
        let [(pointer, secret)] = shape.secrets.as_slice() else {
            return refuse("a body may carry one password, once");
        };
        let Some(name) = self.password(secret) else {
            return refuse("a session token may only travel as `X-Auth-Token`");
        };
        let rule = self.rule_for(request.method, path);
        if request.method == Method::Post && rule.is_some_and(Rule::is_login) {
            let user = shape.value.get("UserName").and_then(Value::as_str);
            let exact = shape.value.as_object().is_some_and(|o| o.len() == 2) && pointer == "/Password";
            return match user {
                Some(user) if exact && self.may_use(user, name) => Ok(Admitted::Login),
                Some(user) if exact => {
                    refuse(&format!("`{name}` may not log in `{}`: {}", untrusted(user, 64), self.whose(name)))
                }
                _ => refuse("a session login body is exactly {\"UserName\": …, \"Password\": <password>}"),
            };
        }
        if self.call == Call::Onboard {
            return self.admit_onboarding(request, path, &shape, pointer, name);
        }
        if name != SecretName::NewPassword || self.call != Call::ChangePassword {
            return refuse(&format!(
                "`{name}` may only travel as a login credential here; only `change-password` sends `new-password` to \
                 an account"
            ));
        }
        let Some(rule) = rule else {
            return refuse(if request.method == Method::Patch && self.account.is_none() {
                "no resource of this call is the target account yet: read the account (its UserName) before \
                 changing its password"
            } else {
                "not in the plugin's capability manifest"
            });
        };
        let Some(declared) = &rule.password else {
            return refuse("this rule does not admit a password; declare it with `password=/POINTER`");
        };
        // Several rules may cover one resource with different members (an SNMPv3 user's
        // authentication and privacy passphrases): the body's member picks the rule.
        let mut expected = Vec::new();
        for rule in self.rules_for(request.method, path) {
            let Some(declared) = &rule.password else { continue };
            let member = match (declared.contains(ACCOUNT_ID), &self.account) {
                (false, _) => declared.clone(),
                (true, Some(account)) => declared.replace(ACCOUNT_ID, &account.id),
                (true, None) => continue,
            };
            if *pointer == member && shape.members == member.matches('/').count() {
                return Ok(Admitted::PasswordChange);
            }
            expected.push(member);
        }
        if expected.is_empty() && declared.contains(ACCOUNT_ID) {
            return refuse("the pointer names the target account's Id, which this call has not read");
        }
        let expected: Vec<String> = expected.iter().map(|m| format!("`{m}`")).collect();
        refuse(&format!("the body must be exactly the member {} holding the new password", expected.join(" or ")))
    }
}

impl Guard {
    /// The one write of `onboard#disable-account`: `{"Enabled": false}` to the target account.
    fn admit_disable(&self, request: &Request, path: &str) -> Result<Admitted, String> {
        let shown = untrusted(path, 200);
        let refuse = |why: &str| Err(format!("{} {shown}: {why}", request.method));
        let Some(target) = &self.target else { return refuse("this call has no target") };
        if target.account == target.login_account {
            return refuse("disabling never applies to the account the call logs in as");
        }
        if !self.rules_for(request.method, path).any(|r| r.onboard) {
            return refuse("no `onboard` rule of the plugin's capability manifest covers this request");
        }
        let text: Option<String> = request
            .body
            .iter()
            .map(|p| match p {
                Part::Text(t) => Some(t.as_str()),
                Part::SecretJson(_) => None,
            })
            .collect();
        let body = text.and_then(|t| serde_json::from_str::<Value>(&t).ok());
        if body != Some(serde_json::json!({"Enabled": false})) {
            return refuse("the body must be exactly {\"Enabled\": false}");
        }
        Ok(Admitted::Plain { path: path.to_owned(), method: request.method })
    }

    /// The new account's body in `onboard#enable-account` (see the module).
    fn admit_onboarding(
        &self,
        request: &Request,
        path: &str,
        shape: &Shape,
        pointer: &str,
        name: SecretName,
    ) -> Result<Admitted, String> {
        let shown = untrusted(path, 200);
        let refuse = |why: String| Err(format!("{} {shown}: {why}", request.method));
        let Some(target) = &self.target else { return refuse("this call has no target".into()) };
        if name != SecretName::NewPassword {
            return refuse(format!("`{name}` may only travel as a login credential here"));
        }
        if target.account == target.login_account {
            return refuse(format!(
                "onboarding never changes the login account `{}`",
                untrusted(&target.login_account, 64)
            ));
        }
        let declared: Vec<&str> =
            self.rules_for(request.method, path).filter(|r| r.onboard).filter_map(|r| r.password.as_deref()).collect();
        if declared.is_empty() {
            return refuse("no `onboard` rule of the plugin's capability manifest covers this request".into());
        }
        if request.method == Method::Patch {
            // A PATCH may only fill an empty slot or the target account, both as the BMC showed
            // them in this call: never the login account or anyone else's.
            let seen = self.accounts_seen.iter().find(|(p, _)| p == path).map(|(_, user)| user.as_str());
            match seen {
                Some("") => {}
                Some(user) if user == target.account => {}
                Some(_) => return refuse("this account slot belongs to another account".into()),
                None => {
                    return refuse(
                        "the BMC has not shown, in this call, that this resource is an empty account slot or the \
                         target account: read it first"
                            .into(),
                    );
                }
            }
        }
        let expected = format!(
            "the body must be exactly {{\"UserName\": \"{}\", <{}>: <new-password>, \"RoleId\": \"Administrator\", \
             \"Enabled\": true}}",
            untrusted(&target.account, 64),
            declared.join("|")
        );
        let at_declared = declared.iter().any(|d| *d == pointer && shape.members == 3 + d.matches('/').count());
        let value = &shape.value;
        let exact = at_declared
            && value.get("UserName").and_then(Value::as_str) == Some(target.account.as_str())
            && value.get("RoleId").and_then(Value::as_str) == Some("Administrator")
            && value.get("Enabled").and_then(Value::as_bool) == Some(true);
        if !exact {
            return refuse(expected);
        }
        Ok(Admitted::PasswordChange)
    }
}

/// A body with each secret replaced by an unguessable marker, parsed: where the secrets sit.
struct Shape {
    value: Value,
    /// JSON pointer and secret of every marker found as a whole string value.
    secrets: Vec<(String, Arc<SecretString>)>,
    /// How many members (object entries, at any depth) the body has.
    members: usize,
}

impl Shape {
    /// `None` when the body is not JSON, or a marker sits anywhere but as a whole string value
    /// (inside a longer string, in a key, twice).
    fn of(body: &[Part]) -> Option<Shape> {
        let mut nonce = [0u8; 16];
        getrandom::fill(&mut nonce).ok()?;
        let nonce = hex::encode(nonce);
        let mut text = String::new();
        let mut markers = Vec::new();
        for part in body {
            match part {
                Part::Text(t) => text.push_str(t),
                Part::SecretJson(secret) => {
                    let marker = format!("bmc-secret-{nonce}-{}", markers.len());
                    text.push('"');
                    text.push_str(&marker);
                    text.push('"');
                    markers.push((marker, secret.clone()));
                }
            }
        }
        // Each marker once in the text: a duplicate key would hide a second copy from the parse.
        if markers.iter().any(|(m, _)| text.matches(m.as_str()).count() != 1) {
            return None;
        }
        // A member named twice is read by the guard one way (serde keeps the last) and perhaps by
        // the BMC the other: a second `UserName` could put a guessed name beside the password.
        serde_json::from_str::<DistinctMembers>(&text).ok()?;
        let value: Value = serde_json::from_str(&text).ok()?;
        if !value.is_object() {
            return None;
        }
        let mut shape = Shape { value: Value::Null, secrets: Vec::new(), members: 0 };
        if !shape.walk(&value, String::new(), &markers, &nonce) || shape.secrets.len() != markers.len() {
            return None;
        }
        shape.value = value;
        Some(shape)
    }

    fn walk(&mut self, value: &Value, at: String, markers: &[(String, Arc<SecretString>)], nonce: &str) -> bool {
        match value {
            Value::String(s) => match markers.iter().find(|(m, _)| m == s) {
                Some((_, secret)) => {
                    self.secrets.push((at, secret.clone()));
                    true
                }
                None => !s.contains(nonce),
            },
            Value::Array(items) => {
                items.iter().enumerate().all(|(i, v)| self.walk(v, format!("{at}/{i}"), markers, nonce))
            }
            Value::Object(map) => map.iter().all(|(k, v)| {
                self.members += 1;
                !k.contains(nonce) && self.walk(v, format!("{at}/{k}"), markers, nonce)
            }),
            _ => true,
        }
    }
}

/// JSON that names no member twice in any object, at any depth (checked by parsing it).
struct DistinctMembers;

impl<'de> serde::Deserialize<'de> for DistinctMembers {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(DistinctVisitor)
    }
}

struct DistinctVisitor;

impl<'de> serde::de::Visitor<'de> for DistinctVisitor {
    type Value = DistinctMembers;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("JSON whose objects name each member once")
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<DistinctMembers, A::Error> {
        let mut names = std::collections::HashSet::new();
        while let Some(name) = map.next_key::<String>()? {
            if !names.insert(name) {
                return Err(serde::de::Error::custom("a member is named twice"));
            }
            map.next_value::<DistinctMembers>()?;
        }
        Ok(DistinctMembers)
    }

    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<DistinctMembers, A::Error> {
        while seq.next_element::<DistinctMembers>()?.is_some() {}
        Ok(DistinctMembers)
    }

    fn visit_bool<E>(self, _: bool) -> Result<DistinctMembers, E> {
        Ok(DistinctMembers)
    }

    fn visit_i64<E>(self, _: i64) -> Result<DistinctMembers, E> {
        Ok(DistinctMembers)
    }

    fn visit_u64<E>(self, _: u64) -> Result<DistinctMembers, E> {
        Ok(DistinctMembers)
    }

    fn visit_f64<E>(self, _: f64) -> Result<DistinctMembers, E> {
        Ok(DistinctMembers)
    }

    fn visit_str<E>(self, _: &str) -> Result<DistinctMembers, E> {
        Ok(DistinctMembers)
    }

    fn visit_unit<E>(self) -> Result<DistinctMembers, E> {
        Ok(DistinctMembers)
    }
}

/// A request path as the BMC will read it: dot segments resolved, no trailing `/`, and its query.
pub fn normalise(path: &str) -> Result<(String, Option<String>), String> {
    let url = reqwest::Url::parse(&format!("https://bmc.invalid{path}"))
        .map_err(|e| format!("`{}` is not a valid path: {e}", untrusted(path, 200)))?;
    let mut normal = url.path().to_owned();
    while normal.len() > 1 && normal.ends_with('/') {
        normal.pop();
    }
    Ok((normal, url.query().map(str::to_owned)))
}

/// The members of a GET's answer the guard learns from. The rest of the document is skipped
/// unread: every GET of a job passes through here, and building the whole tree was most of the
/// guard's cost. A member that is not a string counts as absent; a document that is not an
/// object, or names one of these members twice, teaches the guard nothing (it then admits less).
#[derive(serde::Deserialize)]
struct Seen {
    #[serde(rename = "@odata.type", default, deserialize_with = "string_or_none")]
    odata_type: Option<String>,
    #[serde(rename = "UserName", default, deserialize_with = "string_or_none")]
    user_name: Option<String>,
    #[serde(rename = "Id", default, deserialize_with = "string_or_none")]
    id: Option<String>,
    #[serde(rename = "SecurityName", default, deserialize_with = "string_or_none")]
    security_name: Option<String>,
}

fn string_or_none<'de, D: serde::Deserializer<'de>>(value: D) -> Result<Option<String>, D::Error> {
    use serde::Deserialize as _;
    Ok(match Value::deserialize(value)? {
        Value::String(s) => Some(s),
        _ => None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const ACCOUNT_URI: &str = "/redfish/v1/AccountService/Accounts/3";

    fn secret(s: &str) -> Arc<SecretString> {
        Arc::new(SecretString::from(s.to_owned()))
    }

    struct Setup {
        login: Arc<SecretString>,
        new: Arc<SecretString>,
        token: Arc<SecretString>,
    }

    fn guard(call: Call, manifest: &str, self_change: bool) -> (Guard, Setup) {
        let setup = Setup { login: secret("Old-Pass-1"), new: secret("New-Pass-2"), token: secret("tok") };
        let bound = SecretBindings::new()
            .bind(SecretName::LoginPassword, setup.login.clone())
            .bind(SecretName::NewPassword, setup.new.clone());
        let target = Target {
            address: "bmc".into(),
            account: "azsbmc".into(),
            login_account: if self_change { "azsbmc".into() } else { "admin".into() },
        };
        let manifest = Arc::new(Manifest::parse(manifest).unwrap());
        (Guard::new(manifest, call, Some(target), bound), setup)
    }

    fn request(method: Method, path: &str, auth: Auth, body: Vec<Part>) -> Request {
        Request { method, path: path.into(), headers: vec![], auth, body }
    }

    fn text(s: &str) -> Part {
        Part::Text(s.into())
    }

    fn basic(user: &str, password: &Arc<SecretString>) -> Auth {
        Auth::Basic { user: user.into(), password: password.clone() }
    }

    /// Shows the guard the target account, as the BMC would answer a GET of it.
    fn read_account(guard: &mut Guard, path: &str, user: &str) {
        let admitted = guard.admit(&request(Method::Get, path, Auth::None, vec![])).unwrap();
        let body = serde_json::json!({
            "@odata.type": "#ManagerAccount.v1_12_0.ManagerAccount",
            "@odata.id": path, "Id": path.rsplit('/').next(), "UserName": user,
        });
        guard.observe(&admitted, 200, &[], body.to_string().as_bytes());
    }

    fn password_patch(s: &Setup, path: &str) -> Request {
        request(
            Method::Patch,
            path,
            Auth::None,
            vec![text(r#"{"Password":"#), Part::SecretJson(s.new.clone()), text("}")],
        )
    }

    #[test]
    fn the_account_is_learned_from_its_members_whatever_else_the_document_holds() {
        let observe = |body: &str| {
            let (mut g, s) = guard(Call::ChangePassword, crate::runtime::capabilities::BASELINE, false);
            let admitted = g.admit(&request(Method::Get, ACCOUNT_URI, Auth::None, vec![])).unwrap();
            g.observe(&admitted, 200, &[], body.as_bytes());
            g.admit(&password_patch(&s, ACCOUNT_URI)).is_ok()
        };
        let account = r##""@odata.type":"#ManagerAccount.v1_12_0.ManagerAccount","Id":"3""##;
        assert!(observe(&format!(
            r#"{{{account},"UserName":"azsbmc","Links":{{"Role":[1,{{"x":null}}]}},"Oem":{{}}}}"#
        )));
        // Not a string, named twice, or not an object: nothing learned, so the change is refused.
        assert!(!observe(&format!(r#"{{{account},"UserName":["azsbmc"]}}"#)));
        assert!(!observe(&format!(r#"{{{account},"UserName":"azsbmc","UserName":"azsbmc"}}"#)));
        assert!(!observe(&format!(r#"[{{{account},"UserName":"azsbmc"}}]"#)));
        assert!(!observe(r##" ["#ManagerAccount.v1_12_0.ManagerAccount","azsbmc","3"]"##));
        assert!(!observe(r##"{"@odata.type":"#ManagerAccount.v1_12_0.Other","UserName":"azsbmc"}"##));
    }

    #[test]
    fn the_target_account_is_changed_only_once_the_bmc_has_shown_it() {
        let (mut g, s) = guard(Call::ChangePassword, crate::runtime::capabilities::BASELINE, false);
        let err = g.admit(&password_patch(&s, ACCOUNT_URI)).unwrap_err();
        assert!(err.contains("read the account"), "{err}");
        // Another account the BMC showed does not count.
        read_account(&mut g, "/redfish/v1/AccountService/Accounts/1", "Administrator");
        assert!(g.admit(&password_patch(&s, "/redfish/v1/AccountService/Accounts/1")).is_err());
        read_account(&mut g, ACCOUNT_URI, "azsbmc");
        assert_eq!(g.admit(&password_patch(&s, ACCOUNT_URI)), Ok(Admitted::PasswordChange));
        // Trailing slash and dot segments address the same resource.
        assert!(g.admit(&password_patch(&s, "/redfish/v1/AccountService/Accounts/x/../3/")).is_ok());
    }

    #[test]
    fn a_secret_travels_only_in_its_declared_shape() {
        let (mut g, s) = guard(Call::ChangePassword, crate::runtime::capabilities::BASELINE, false);
        read_account(&mut g, ACCOUNT_URI, "azsbmc");
        let body = |parts: Vec<Part>| request(Method::Patch, ACCOUNT_URI, Auth::None, parts);
        let new = || Part::SecretJson(s.new.clone());
        let refused = [
            // The substring oracle: a guess next to the secret.
            body(vec![text(r#"{"UserName":"guess","Password":"#), new(), text("}")]),
            // The secret in another property, or twice.
            body(vec![text(r#"{"UserName":"#), new(), text("}")]),
            body(vec![text(r#"{"Password":"#), new(), text(r#","Password":"#), new(), text("}")]),
            body(vec![text(r#"{"Password":"#), new(), text(r#","Password":"x"}"#)]),
            // Inside a longer string, or as a key.
            body(vec![text(r#"{"Password":"a"#), new(), text(r#""}"#)]),
            body(vec![text("{"), new(), text(r#":"x"}"#)]),
            // Not an object.
            body(vec![new()]),
            // The login password sent to the account.
            body(vec![text(r#"{"Password":"#), Part::SecretJson(s.login.clone()), text("}")]),
            // A token in a body.
            body(vec![text(r#"{"Password":"#), Part::SecretJson(s.token.clone()), text("}")]),
            // To a path that is not the account.
            request(
                Method::Patch,
                "/redfish/v1/AccountService/Accounts/1",
                Auth::None,
                vec![text(r#"{"Password":"#), new(), text("}")],
            ),
            // Creating an account with it.
            request(
                Method::Post,
                "/redfish/v1/AccountService/Accounts",
                Auth::None,
                vec![text(r#"{"UserName":"svc","Password":"#), new(), text("}")],
            ),
        ];
        for (i, r) in refused.iter().enumerate() {
            assert!(g.admit(r).is_err(), "case {i} was admitted");
        }
        // Other properties of the target account are not the plugin's to change.
        let rename = body(vec![text(r#"{"UserName":"x"}"#)]);
        assert!(g.admit(&rename).unwrap_err().contains("only by setting its new password"));
        // Even when the manifest grants PATCH on accounts in general.
        let (mut g, _) =
            guard(Call::ChangePassword, "GET /redfish/v1/**\nPATCH /redfish/v1/AccountService/Accounts/*\n", false);
        read_account(&mut g, ACCOUNT_URI, "azsbmc");
        assert!(g.admit(&rename).unwrap_err().contains("only by setting its new password"));
        let other = request(
            Method::Patch,
            "/redfish/v1/AccountService/Accounts/1",
            Auth::None,
            vec![text(r#"{"Enabled":true}"#)],
        );
        assert!(g.admit(&other).is_ok(), "granted by the manifest");
    }

    #[test]
    fn logins_are_for_the_login_account_only() {
        let (mut g, s) = guard(Call::Probe, crate::runtime::capabilities::BASELINE, false);
        let sessions = "/redfish/v1/SessionService/Sessions/";
        let login = |user: &str, secret: &Arc<SecretString>| {
            let user = serde_json::to_string(user).unwrap();
            request(
                Method::Post,
                sessions,
                Auth::None,
                vec![text(&format!(r#"{{"UserName":{user},"Password":"#)), Part::SecretJson(secret.clone()), text("}")],
            )
        };
        assert!(g.admit(&login("azsbmc", &s.login)).unwrap_err().contains("may not log in"));
        assert!(g.admit(&login("admin", &s.new)).is_err());
        // A second `UserName`, which a BMC may read instead of the last.
        let twice = request(
            Method::Post,
            sessions,
            Auth::None,
            vec![
                text(r#"{"UserName":"guess","UserName":"admin","Password":"#),
                Part::SecretJson(s.login.clone()),
                text("}"),
            ],
        );
        assert!(g.admit(&twice).unwrap_err().contains("one JSON object"));
        assert_eq!(g.admit(&login("admin", &s.login)), Ok(Admitted::Login));
        g.observe(
            &Admitted::Login,
            201,
            &[("location".into(), "https://bmc/redfish/v1/SessionService/Sessions/7".into())],
            b"{}",
        );
        assert!(g.admit(&request(Method::Delete, "/redfish/v1/SessionService/Sessions/7", Auth::None, vec![])).is_ok());
        let other = request(Method::Delete, "/redfish/v1/SessionService/Sessions/6", Auth::None, vec![]);
        assert!(g.admit(&other).unwrap_err().contains("not in the plugin's capability manifest"));
        // Basic: the same rule.
        let get = |auth| request(Method::Get, "/redfish/v1/Managers/1", auth, vec![]);
        assert!(g.admit(&get(basic("admin", &s.login))).is_ok());
        assert!(g.admit(&get(basic("guess", &s.login))).unwrap_err().contains("password of `admin`"));
        assert!(g.admit(&get(basic("azsbmc", &s.new))).is_err());
        assert!(g.admit(&get(Auth::Session(s.login.clone()))).is_err());
    }

    #[test]
    fn probe_and_verify_change_nothing() {
        let (mut g, s) = guard(Call::Verify, crate::runtime::capabilities::BASELINE, true);
        read_account(&mut g, ACCOUNT_URI, "azsbmc");
        assert!(g.admit(&password_patch(&s, ACCOUNT_URI)).is_err());
        let (mut g, _) = guard(Call::Probe, "GET /redfish/v1/**\nPOST /redfish/v1/Systems/1/Actions/Reset\n", true);
        let reset = request(Method::Post, "/redfish/v1/Systems/1/Actions/Reset", Auth::None, vec![text("{}")]);
        assert!(g.admit(&reset).unwrap_err().contains("changes nothing"));
    }

    #[test]
    fn a_self_change_may_prove_the_new_password_and_nothing_more() {
        let (mut g, s) = guard(Call::ChangePassword, crate::runtime::capabilities::BASELINE, true);
        let get = |auth| request(Method::Get, "/redfish/v1/Managers/1", auth, vec![]);
        assert!(g.admit(&get(basic("azsbmc", &s.new))).is_ok());
        let (mut g, s) = guard(Call::ChangePassword, crate::runtime::capabilities::BASELINE, false);
        assert!(g.admit(&get(basic("azsbmc", &s.new))).is_err());
        assert!(g.admit(&get(basic("admin", &s.new))).is_err());
    }

    #[test]
    fn vendor_password_members_follow_the_pinned_account() {
        let attrs = "/redfish/v1/Managers/iDRAC.Embedded.1/Oem/Dell/DellAttributes/iDRAC.Embedded.1";
        let manifest =
            format!("GET /redfish/v1/**\nPATCH {attrs} password=/Attributes/Users.{{account-id}}.Password\n");
        let (mut g, s) = guard(Call::ChangePassword, &manifest, true);
        let patch = |key: &str| {
            request(
                Method::Patch,
                attrs,
                Auth::None,
                vec![text(&format!(r#"{{"Attributes":{{"{key}":"#)), Part::SecretJson(s.new.clone()), text("}}")],
            )
        };
        assert!(g.admit(&patch("Users.2.Password")).unwrap_err().contains("has not read"));
        read_account(&mut g, "/redfish/v1/Managers/iDRAC.Embedded.1/Accounts/2", "azsbmc");
        assert_eq!(g.admit(&patch("Users.2.Password")), Ok(Admitted::PasswordChange));
        assert!(g.admit(&patch("Users.3.Password")).unwrap_err().contains("Users.2.Password"));
    }

    fn read_snmp_user(guard: &mut Guard, path: &str, security_name: &str) {
        let admitted = guard.admit(&request(Method::Get, path, Auth::None, vec![])).unwrap();
        let body = serde_json::json!({
            "@odata.type": "#HpeSNMPUser.v2_1_0.HpeSNMPUser", "@odata.id": path, "SecurityName": security_name,
        });
        guard.observe(&admitted, 200, &[], body.to_string().as_bytes());
    }

    #[test]
    fn snmp_passphrases_go_only_to_the_accounts_own_snmp_user_in_a_change() {
        let manifest = "GET /redfish/v1/**\nPATCH {snmp-user} password=/AuthPassphrase\n\
                        PATCH {snmp-user} password=/PrivacyPassphrase\n";
        let (mine, other) =
            ("/redfish/v1/Managers/1/SnmpService/SNMPUsers/1", "/redfish/v1/Managers/1/SnmpService/SNMPUsers/2");
        let patch = |s: &Setup, path: &str, member: &str| {
            let body = vec![text(&format!(r#"{{"{member}":"#)), Part::SecretJson(s.new.clone()), text("}")];
            request(Method::Patch, path, Auth::None, body)
        };
        let (mut g, s) = guard(Call::ChangePassword, manifest, true);
        assert!(g.admit(&patch(&s, mine, "AuthPassphrase")).is_err(), "not shown to be the account's yet");
        read_snmp_user(&mut g, mine, "azsbmc");
        read_snmp_user(&mut g, &format!("{other}/"), "someone-else");
        assert_eq!(g.admit(&patch(&s, mine, "AuthPassphrase")), Ok(Admitted::PasswordChange));
        assert_eq!(g.admit(&patch(&s, &format!("{mine}/"), "PrivacyPassphrase")), Ok(Admitted::PasswordChange));
        let err = g.admit(&patch(&s, mine, "SecurityName")).unwrap_err();
        assert!(err.contains("`/AuthPassphrase` or `/PrivacyPassphrase`"), "{err}");
        assert!(g.admit(&patch(&s, other, "AuthPassphrase")).is_err(), "another SNMPv3 user");
        let rename = request(Method::Patch, mine, Auth::None, vec![text(r#"{"SecurityName":"x"}"#)]);
        assert!(g.admit(&rename).unwrap_err().contains("only admits the new password"));
        let login = |s: &Setup| {
            let body = vec![text(r#"{"AuthPassphrase":"#), Part::SecretJson(s.login.clone()), text("}")];
            request(Method::Patch, mine, Auth::None, body)
        };
        assert!(g.admit(&login(&s)).unwrap_err().contains("only travel as a login credential"));

        // Reading the SNMPv3 state changes nothing, the passphrases included.
        let (mut g, s) = guard(Call::SnmpState, manifest, true);
        read_snmp_user(&mut g, mine, "azsbmc");
        assert!(g.admit(&patch(&s, mine, "AuthPassphrase")).is_err());
    }

    #[test]
    fn secret_bearing_requests_are_budgeted() {
        let (mut g, s) = guard(Call::ChangePassword, crate::runtime::capabilities::BASELINE, false);
        read_account(&mut g, ACCOUNT_URI, "azsbmc");
        // Reusing one Basic credential costs once.
        for _ in 0..10 {
            g.admit(&request(Method::Get, "/redfish/v1", basic("admin", &s.login), vec![])).unwrap();
        }
        for _ in 1..MAX_SECRET_REQUESTS {
            g.admit(&password_patch(&s, ACCOUNT_URI)).unwrap();
        }
        assert!(g.admit(&password_patch(&s, ACCOUNT_URI)).unwrap_err().contains("most one call may send"));
    }

    const ONBOARD_MANIFEST: &str = "GET /redfish/v1/**\nPOST /redfish/v1/SessionService/Sessions\nDELETE {session}\n\
                                    PATCH {account} password=/Password\n\
                                    POST /redfish/v1/AccountService/Accounts password=/Password onboard\n\
                                    PATCH /redfish/v1/AccountService/Accounts/* password=/Password onboard\n";
    const COLLECTION: &str = "/redfish/v1/AccountService/Accounts";

    fn new_account(s: &Setup, method: Method, path: &str, user: &str, role: &str, enabled: &str) -> Request {
        let head = format!(r#"{{"UserName":"{user}","RoleId":"{role}","Enabled":{enabled},"Password":"#);
        request(method, path, Auth::None, vec![text(&head), Part::SecretJson(s.new.clone()), text("}")])
    }

    #[test]
    fn onboarding_creates_exactly_the_target_account() {
        let (mut g, s) = guard(Call::Onboard, ONBOARD_MANIFEST, false);
        let post =
            |user: &str, role: &str, enabled: &str| new_account(&s, Method::Post, COLLECTION, user, role, enabled);
        assert_eq!(g.admit(&post("azsbmc", "Administrator", "true")), Ok(Admitted::PasswordChange));
        for (user, role, enabled) in
            [("svc", "Administrator", "true"), ("azsbmc", "Operator", "true"), ("azsbmc", "Administrator", "false")]
        {
            let err = g.admit(&post(user, role, enabled)).unwrap_err();
            assert!(err.contains("the body must be exactly"), "{user} {role} {enabled}: {err}");
        }
        // One more member, the password elsewhere, or the login password.
        let extra = request(
            Method::Post,
            COLLECTION,
            Auth::None,
            vec![
                text(r#"{"UserName":"azsbmc","RoleId":"Administrator","Enabled":true,"Locked":false,"Password":"#),
                Part::SecretJson(s.new.clone()),
                text("}"),
            ],
        );
        assert!(g.admit(&extra).is_err());
        let elsewhere = request(
            Method::Post,
            COLLECTION,
            Auth::None,
            vec![
                text(r#"{"UserName":"azsbmc","RoleId":"Administrator","Enabled":true,"Description":"#),
                Part::SecretJson(s.new.clone()),
                text("}"),
            ],
        );
        assert!(g.admit(&elsewhere).is_err());
        let renamed = request(
            Method::Post,
            COLLECTION,
            Auth::None,
            vec![
                text(
                    r#"{"UserName":"guess","RoleId":"Administrator","Enabled":true,"User\u004eame":"azsbmc","Password":"#,
                ),
                Part::SecretJson(s.new.clone()),
                text("}"),
            ],
        );
        assert!(g.admit(&renamed).is_err(), "a name given twice");
        let login = request(
            Method::Post,
            COLLECTION,
            Auth::None,
            vec![
                text(r#"{"UserName":"azsbmc","RoleId":"Administrator","Enabled":true,"Password":"#),
                Part::SecretJson(s.login.clone()),
                text("}"),
            ],
        );
        assert!(g.admit(&login).unwrap_err().contains("only travel as a login credential"));
        // Other writes, the target's password rule included, are not onboarding's.
        read_account(&mut g, ACCOUNT_URI, "azsbmc");
        assert!(g.admit(&password_patch(&s, ACCOUNT_URI)).is_err());
        let reset = request(Method::Delete, "/redfish/v1/AccountService/Accounts/1", Auth::None, vec![]);
        assert!(g.admit(&reset).is_err());
    }

    #[test]
    fn onboarding_fills_only_an_empty_slot_or_the_target_account() {
        let (mut g, s) = guard(Call::Onboard, ONBOARD_MANIFEST, false);
        let patch = |path: &str| new_account(&s, Method::Patch, path, "azsbmc", "Administrator", "true");
        let (slot, login, other) = (
            "/redfish/v1/AccountService/Accounts/4",
            "/redfish/v1/AccountService/Accounts/2",
            "/redfish/v1/AccountService/Accounts/5",
        );
        assert!(g.admit(&patch(slot)).unwrap_err().contains("read it first"));
        read_account(&mut g, slot, "");
        read_account(&mut g, login, "admin");
        read_account(&mut g, other, "monitor");
        assert_eq!(g.admit(&patch(slot)), Ok(Admitted::PasswordChange));
        assert!(g.admit(&patch(login)).unwrap_err().contains("belongs to another account"));
        assert!(g.admit(&patch(other)).unwrap_err().contains("belongs to another account"));
        read_account(&mut g, ACCOUNT_URI, "azsbmc");
        assert_eq!(g.admit(&patch(ACCOUNT_URI)), Ok(Admitted::PasswordChange));
        // The slot filled since: the BMC's latest answer counts.
        read_account(&mut g, slot, "someone");
        assert!(g.admit(&patch(slot)).is_err());
        // Logging in is the login account's, with its password only.
        let basic_new = request(Method::Get, "/redfish/v1", basic("azsbmc", &s.new), vec![]);
        assert!(g.admit(&basic_new).is_err());
        assert!(g.admit(&request(Method::Get, "/redfish/v1", basic("admin", &s.login), vec![])).is_ok());
    }

    #[test]
    fn onboard_rules_serve_no_other_call() {
        for call in [Call::ChangePassword, Call::Probe, Call::Verify, Call::SnmpState] {
            let (mut g, s) = guard(call, ONBOARD_MANIFEST, false);
            let slot = "/redfish/v1/AccountService/Accounts/4";
            read_account(&mut g, slot, "");
            for r in [
                new_account(&s, Method::Post, COLLECTION, "azsbmc", "Administrator", "true"),
                new_account(&s, Method::Patch, slot, "azsbmc", "Administrator", "true"),
            ] {
                assert!(g.admit(&r).is_err(), "{call:?} admitted {} {}", r.method, r.path);
            }
        }
        // Onboarding never sets up the account it logs in as.
        let (mut g, s) = guard(Call::Onboard, ONBOARD_MANIFEST, true);
        let post = new_account(&s, Method::Post, COLLECTION, "azsbmc", "Administrator", "true");
        assert!(g.admit(&post).unwrap_err().contains("never changes the login account"));
        // Without an `onboard` rule, nothing is created.
        let (mut g, s) = guard(Call::Onboard, "GET /redfish/v1/**\nPOST /redfish/v1/AccountService/Accounts\n", false);
        let post = new_account(&s, Method::Post, COLLECTION, "azsbmc", "Administrator", "true");
        assert!(g.admit(&post).unwrap_err().contains("no `onboard` rule"));
        let plain = request(Method::Post, COLLECTION, Auth::None, vec![text(r#"{"UserName":"x"}"#)]);
        assert!(g.admit(&plain).unwrap_err().contains("may only read"));
    }

    #[test]
    fn disabling_sends_enabled_false_to_the_target_account_only() {
        let (mut g, _) = guard(Call::DisableAccount, ONBOARD_MANIFEST, false);
        let (factory, other) = ("/redfish/v1/AccountService/Accounts/2", "/redfish/v1/AccountService/Accounts/5");
        let patch = |path: &str, body: &str| request(Method::Patch, path, Auth::None, vec![text(body)]);
        assert!(g.admit(&patch(factory, r#"{"Enabled":false}"#)).is_err(), "not shown yet");
        read_account(&mut g, factory, "azsbmc");
        read_account(&mut g, other, "monitor");
        assert!(g.admit(&patch(factory, r#"{"Enabled": false}"#)).is_ok());
        for body in [r#"{"Enabled":true}"#, r#"{"Enabled":false,"RoleId":"None"}"#, r#"{"UserName":"x"}"#, "[]"] {
            assert!(g.admit(&patch(factory, body)).is_err(), "{body}");
        }
        assert!(g.admit(&patch(other, r#"{"Enabled":false}"#)).is_err(), "another account");
        // Only with an `onboard` rule, and never in another call.
        let (mut g, _) = guard(Call::DisableAccount, crate::runtime::capabilities::BASELINE, false);
        read_account(&mut g, factory, "azsbmc");
        assert!(g.admit(&patch(factory, r#"{"Enabled":false}"#)).unwrap_err().contains("no `onboard` rule"));
        let (mut g, _) = guard(Call::ChangePassword, ONBOARD_MANIFEST, false);
        read_account(&mut g, factory, "azsbmc");
        assert!(g.admit(&patch(factory, r#"{"Enabled":false}"#)).is_err());
        // Never the account it logs in as.
        let (mut g, _) = guard(Call::DisableAccount, ONBOARD_MANIFEST, true);
        read_account(&mut g, factory, "azsbmc");
        assert!(g.admit(&patch(factory, r#"{"Enabled":false}"#)).unwrap_err().contains("logs in as"));
    }

    #[test]
    fn only_get_carries_a_query() {
        let (mut g, _) = guard(Call::ChangePassword, "GET /redfish/v1/**\nPOST /redfish/v1/x\n", false);
        assert!(g.admit(&request(Method::Get, "/redfish/v1/Managers/1?$select=Model", Auth::None, vec![])).is_ok());
        assert!(g.admit(&request(Method::Post, "/redfish/v1/x?a=b", Auth::None, vec![])).is_err());
        assert_eq!(normalise("/a/b/../c/").unwrap(), ("/a/c".into(), None));
    }
}

//! Redfish helpers every vendor needs: service root, sessions, account lookup by `UserName`,
//! ETags and `If-Match`, and `@Message.ExtendedInfo` decoding into typed errors.

use crate::http::{Auth, HttpError, JsonBody, Method, Request, Response};
use crate::{Bmc, PluginError, Secret};
use serde_json::Value;
use std::fmt;

/// The service root every Redfish service serves.
pub const SERVICE_ROOT: &str = "/redfish/v1/";
/// Where sessions live when the service root does not say.
pub const DEFAULT_SESSIONS: &str = "/redfish/v1/SessionService/Sessions";
/// Where the account service lives when the service root does not say.
pub const DEFAULT_ACCOUNT_SERVICE: &str = "/redfish/v1/AccountService";

/// The parts of the service root a plugin uses to identify a BMC.
#[derive(Clone, Debug)]
pub struct ServiceRoot {
    /// `Vendor` (Redfish 1.5+), e.g. `Dell`, `HPE`, `Lenovo`; empty when absent.
    pub vendor: String,
    /// `Product`, e.g. `Integrated Dell Remote Access Controller`; empty when absent.
    pub product: String,
    /// `RedfishVersion`.
    pub redfish_version: String,
    /// The keys under `Oem`, e.g. `["Dell"]`, `["Hpe"]`, `["Hp"]`, `["Lenovo"]`.
    pub oem: Vec<String>,
    /// `Links.Sessions`.
    pub sessions: String,
    /// `AccountService`.
    pub account_service: String,
    /// The whole document, for vendor-specific fields.
    pub body: Value,
}

impl ServiceRoot {
    /// Whether the root names this vendor, in `Vendor` or as an `Oem` key (case-insensitive).
    pub fn is_vendor(&self, names: &[&str]) -> bool {
        names.iter().any(|n| self.vendor.eq_ignore_ascii_case(n) || self.oem.iter().any(|k| k.eq_ignore_ascii_case(n)))
    }

    /// [`PluginError::Unsupported`] naming what this BMC is instead of `expected` (e.g.
    /// "a Dell iDRAC"), for a plugin pointed at the wrong hardware profile.
    pub fn not_mine(&self, expected: &str) -> PluginError {
        PluginError::Unsupported(format!(
            "this BMC is not {expected} (service root Vendor `{}`, Product `{}`, Oem {:?}); check the hardware profile",
            self.vendor, self.product, self.oem
        ))
    }
}

/// An entity tag as a BMC sent it, in any of the forms seen in the field: `"abc"`, `W/"abc"`, or
/// unquoted (some `@odata.etag` values).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ETag {
    weak: bool,
    opaque: String,
}

impl ETag {
    /// Parses a header or `@odata.etag` value; `None` for an empty one.
    pub fn parse(raw: &str) -> Option<ETag> {
        let raw = raw.trim();
        let (weak, rest) = match raw.strip_prefix("W/").or_else(|| raw.strip_prefix("w/")) {
            Some(rest) => (true, rest.trim()),
            None => (false, raw),
        };
        let opaque = rest.strip_prefix('"').and_then(|r| r.strip_suffix('"')).unwrap_or(rest);
        (!opaque.is_empty()).then(|| ETag { weak, opaque: opaque.to_owned() })
    }

    /// Whether the tag is weak (`W/`).
    pub fn is_weak(&self) -> bool {
        self.weak
    }

    /// The opaque tag without quotes or weakness marker.
    pub fn opaque(&self) -> &str {
        &self.opaque
    }

    /// The tag as an `If-Match` value: quoted, with `W/` kept (BMCs compare the string they sent).
    pub fn header_value(&self) -> String {
        if self.weak { format!("W/\"{}\"", self.opaque) } else { format!("\"{}\"", self.opaque) }
    }
}

impl fmt::Display for ETag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.header_value())
    }
}

/// What a PATCH sends as `If-Match`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum IfMatch {
    /// No `If-Match` header.
    None,
    /// The resource's tag.
    Tag(ETag),
    /// `*`: any current version (XCC accepts it when a tag is unknown).
    Any,
}

impl IfMatch {
    /// `Tag` if the resource had one, else `fallback`.
    pub fn from_resource(resource: &Resource, fallback: IfMatch) -> IfMatch {
        resource.etag.clone().map_or(fallback, IfMatch::Tag)
    }

    fn header_value(&self) -> Option<String> {
        match self {
            IfMatch::None => None,
            IfMatch::Tag(tag) => Some(tag.header_value()),
            IfMatch::Any => Some("*".into()),
        }
    }
}

/// A resource read with GET, with the ETag from the `ETag` header or, failing that, `@odata.etag`.
#[derive(Clone, Debug)]
pub struct Resource {
    /// The URI it was read from.
    pub uri: String,
    /// The JSON document.
    pub body: Value,
    /// Its entity tag, if the BMC gave one.
    pub etag: Option<ETag>,
}

/// One entry of `@Message.ExtendedInfo`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ExtendedInfo {
    /// e.g. `iLO.2.14.InvalidPasswordLength` or `Base.1.8.PropertyValueFormatError`.
    pub message_id: String,
    /// The human text, e.g. `A valid password must contain between 8 to 39 characters.`
    pub message: String,
    /// `Severity` / `MessageSeverity`, when present.
    pub severity: String,
    /// `Resolution`, when present.
    pub resolution: String,
    /// `MessageArgs` as strings.
    pub args: Vec<String>,
}

impl ExtendedInfo {
    /// The last segment of the MessageId (`InvalidPasswordLength`): stable across registry versions.
    pub fn key(&self) -> &str {
        self.message_id.rsplit('.').next().unwrap_or("")
    }

    /// The registry prefix (`iLO`, `Base`, `IDRAC`, ...).
    pub fn registry(&self) -> &str {
        self.message_id.split('.').next().unwrap_or("")
    }
}

impl fmt::Display for ExtendedInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.message_id.is_empty(), self.message.is_empty()) {
            (false, false) => write!(f, "{}: {}", self.message_id, self.message),
            // iLO sends no text, only the id and its arguments (the limits a password missed):
            // the arguments are all the operator gets.
            (false, true) if !self.args.is_empty() => write!(f, "{} ({})", self.message_id, self.args.join(", ")),
            (false, true) => f.write_str(&self.message_id),
            _ => f.write_str(&self.message),
        }
    }
}

/// Every `@Message.ExtendedInfo` entry of a body: under `error` (the Redfish error envelope, also
/// iLO's success envelope) and at the top level.
pub fn extended_info(body: &Value) -> Vec<ExtendedInfo> {
    let lists = [body.pointer("/error/@Message.ExtendedInfo"), body.get("@Message.ExtendedInfo")];
    let mut out = Vec::new();
    for item in lists.into_iter().flatten().filter_map(Value::as_array).flatten() {
        let text = |k: &str| item.get(k).and_then(Value::as_str).unwrap_or("").to_owned();
        let severity = match text("MessageSeverity") {
            s if s.is_empty() => text("Severity"),
            s => s,
        };
        let args = item
            .get("MessageArgs")
            .and_then(Value::as_array)
            .map(|a| a.iter().map(|v| v.as_str().map_or_else(|| v.to_string(), str::to_owned)).collect())
            .unwrap_or_default();
        out.push(ExtendedInfo {
            message_id: text("MessageId"),
            message: text("Message"),
            severity,
            resolution: text("Resolution"),
            args,
        });
    }
    // Some errors carry only the envelope's own code and message.
    if out.is_empty()
        && let Some(message) = body.pointer("/error/message").and_then(Value::as_str)
    {
        let message_id = body.pointer("/error/code").and_then(Value::as_str).unwrap_or("").to_owned();
        out.push(ExtendedInfo { message_id, message: message.to_owned(), ..Default::default() });
    }
    out
}

/// A Redfish call the BMC answered with an error status.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RedfishError {
    /// What was being done, e.g. `PATCH /redfish/v1/AccountService/Accounts/2`.
    pub call: String,
    /// The HTTP status.
    pub status: u16,
    /// The vendor's messages.
    pub messages: Vec<ExtendedInfo>,
}

impl RedfishError {
    /// Decodes an error response.
    pub fn from_response(call: impl Into<String>, response: &Response) -> Self {
        let messages = response.json().map(|b| extended_info(&b)).unwrap_or_default();
        RedfishError { call: call.into(), status: response.status, messages }
    }

    /// Whether any message has this MessageId key (last segment), e.g. `PasswordChangeRequired`.
    pub fn has(&self, key: &str) -> bool {
        self.messages.iter().any(|m| m.key() == key)
    }

    /// The generic mapping onto the contract's errors. Vendors refine it for their own MessageIds
    /// (lockout registries, reuse history) before falling back to this.
    pub fn into_plugin_error(self) -> PluginError {
        let text = self.to_string();
        let password_rule = self.messages.iter().any(|m| {
            let k = m.key();
            k.contains("Password") && !k.contains("PasswordChangeRequired")
                || (k.starts_with("PropertyValue") && m.args.iter().any(|a| a.contains("Password")))
        });
        // A session limit refuses the login before looking at the credential: not a failed
        // login (the host counts those against a lockout budget), but a busy BMC to try later.
        let busy = self.messages.iter().any(|m| m.key().starts_with("CreateLimitReached"));
        match self.status {
            _ if self.has("PasswordChangeRequired") => PluginError::PasswordChangeRequired(text),
            403 | 503 if busy => PluginError::Unreachable(format!(
                "{text} (the BMC's session limit is reached: the credential was not checked; try again later)"
            )),
            503 => PluginError::Unreachable(text),
            401 => PluginError::AuthFailed(text),
            403 if self.messages.iter().any(|m| m.key().contains("Lock")) => PluginError::LockedOut(text),
            403 => PluginError::AuthFailed(text),
            404 => PluginError::AccountNotFound(text),
            412 | 428 => PluginError::PreconditionFailed(text),
            400 if password_rule => PluginError::PolicyRejected(text),
            _ => PluginError::Protocol(text),
        }
    }
}

impl fmt::Display for RedfishError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} answered HTTP {}", self.call, self.status)?;
        for (i, m) in self.messages.iter().enumerate() {
            f.write_str(if i == 0 { ": " } else { "; " })?;
            write!(f, "{m}")?;
        }
        Ok(())
    }
}

/// How requests of a [`Redfish`] client authenticate.
#[derive(Debug)]
pub enum Credential {
    /// No credentials (service root only).
    None,
    /// HTTP Basic on every request.
    Basic {
        /// The user name.
        user: String,
        /// The password handle.
        password: Secret,
    },
    /// A session made with [`Redfish::login`].
    Session(Session),
}

/// A Redfish session: its token (a handle) and the URI to DELETE on logout.
#[derive(Debug)]
pub struct Session {
    /// The `X-Auth-Token`, held by the host.
    pub token: Secret,
    /// The session resource from `Location` (path only), if the BMC gave one.
    pub location: Option<String>,
}

/// A Redfish client over the BMC under work.
pub struct Redfish<'a> {
    bmc: &'a Bmc,
    credential: Credential,
}

fn path_of(uri: &str) -> String {
    // `Location` may be absolute (`https://bmc/redfish/v1/...`); the host takes paths only.
    match uri.find("://") {
        Some(i) => uri[i + 3..].find('/').map_or_else(|| "/".into(), |p| uri[i + 3 + p..].to_owned()),
        None => uri.to_owned(),
    }
}

impl<'a> Redfish<'a> {
    /// An unauthenticated client.
    pub fn anonymous(bmc: &'a Bmc) -> Self {
        Redfish { bmc, credential: Credential::None }
    }

    /// A client that sends HTTP Basic credentials with every request.
    pub fn basic(bmc: &'a Bmc, user: &str, password: Secret) -> Self {
        Redfish { bmc, credential: Credential::Basic { user: user.to_owned(), password } }
    }

    /// Creates a session (`POST` to `sessions`, usually [`DEFAULT_SESSIONS`]) and returns a client
    /// that uses its token. A 401 is [`PluginError::AuthFailed`]: never retry it with the same
    /// password, BMCs count failures (iLO delays, XCC locks out, iDRAC blocks the address).
    pub fn login(bmc: &'a Bmc, sessions: &str, user: &str, password: &Secret) -> Result<Self, PluginError> {
        let body = JsonBody::object().field("UserName", user).secret("Password", password);
        let request = Request::new(Method::Post, sessions).json(body);
        let response = send(bmc, &request)?;
        if !response.is_success() {
            return Err(RedfishError::from_response(format!("POST {sessions}"), &response).into_plugin_error());
        }
        let token = response.session_token.ok_or_else(|| {
            PluginError::Protocol(format!("POST {sessions} answered {} without X-Auth-Token", response.status))
        })?;
        let location = response.headers.iter().find(|(k, _)| k == "location").map(|(_, v)| path_of(v));
        Ok(Redfish { bmc, credential: Credential::Session(Session { token, location }) })
    }

    /// Ends the session, if any. A session the BMC already dropped (404, or 401 after the
    /// account's password changed) counts as ended.
    pub fn logout(self) -> Result<(), PluginError> {
        let Credential::Session(session) = &self.credential else {
            return Ok(());
        };
        let Some(location) = &session.location else {
            return Ok(());
        };
        let response = self.send(Method::Delete, location, None, &IfMatch::None)?;
        match response.status {
            200..=299 | 401 | 404 => Ok(()),
            _ => Err(RedfishError::from_response(format!("DELETE {location}"), &response).into_plugin_error()),
        }
    }

    /// The credential in use.
    pub fn credential(&self) -> &Credential {
        &self.credential
    }

    fn auth(&self) -> Auth<'_> {
        match &self.credential {
            Credential::None => Auth::None,
            Credential::Basic { user, password } => Auth::Basic { user, password },
            Credential::Session(s) => Auth::Session(&s.token),
        }
    }

    /// Sends a request with this client's credential and returns the answer, whatever its status.
    pub fn send(
        &self,
        method: Method,
        path: &str,
        body: Option<JsonBody<'_>>,
        if_match: &IfMatch,
    ) -> Result<Response, PluginError> {
        let mut request = Request::new(method, path).auth(self.auth());
        if let Some(tag) = if_match.header_value() {
            request = request.header("If-Match", tag);
        }
        if let Some(body) = body {
            request = request.json(body);
        }
        send(self.bmc, &request)
    }

    /// Reads the service root (no credentials needed).
    pub fn service_root(&self) -> Result<ServiceRoot, PluginError> {
        let body = self.get(SERVICE_ROOT)?.body;
        let text = |p: &str| body.pointer(p).and_then(Value::as_str).unwrap_or("").to_owned();
        let link = |p: &str, default: &str| match body.pointer(p).and_then(Value::as_str) {
            Some(v) if !v.is_empty() => path_of(v),
            _ => default.to_owned(),
        };
        Ok(ServiceRoot {
            vendor: text("/Vendor"),
            product: text("/Product"),
            redfish_version: text("/RedfishVersion"),
            oem: body.get("Oem").and_then(Value::as_object).map(|o| o.keys().cloned().collect()).unwrap_or_default(),
            sessions: link("/Links/Sessions/@odata.id", DEFAULT_SESSIONS),
            account_service: link("/AccountService/@odata.id", DEFAULT_ACCOUNT_SERVICE),
            body,
        })
    }

    /// GETs a resource; a non-2xx answer becomes a typed error.
    pub fn get(&self, path: &str) -> Result<Resource, PluginError> {
        let response = self.send(Method::Get, path, None, &IfMatch::None)?;
        if !response.is_success() {
            return Err(RedfishError::from_response(format!("GET {path}"), &response).into_plugin_error());
        }
        let body = response.json()?;
        let etag = response
            .header("etag")
            .and_then(ETag::parse)
            .or_else(|| body.get("@odata.etag").and_then(Value::as_str).and_then(ETag::parse));
        Ok(Resource { uri: path.to_owned(), body, etag })
    }

    /// PATCHes a resource. Returns the answer on 2xx (iLO reports success inside an `error`
    /// envelope: read it with [`extended_info`]); any other status is a [`RedfishError`] so the
    /// caller can refine the mapping (e.g. retry once after a 412).
    pub fn patch(
        &self,
        path: &str,
        body: JsonBody<'_>,
        if_match: &IfMatch,
    ) -> Result<Result<Response, RedfishError>, PluginError> {
        let response = self.send(Method::Patch, path, Some(body), if_match)?;
        if response.is_success() {
            Ok(Ok(response))
        } else {
            Ok(Err(RedfishError::from_response(format!("PATCH {path}"), &response)))
        }
    }

    /// Finds the account whose `UserName` is `user_name` (exact match) in the account collection.
    /// Works for fixed slots (Dell, Lenovo: empty slots have an empty `UserName`) and for variable
    /// ids (HPE, where the id is unrelated to the name); member URIs are used exactly as the BMC
    /// wrote them, trailing slash included.
    pub fn find_account(&self, account_service: &str, user_name: &str) -> Result<Resource, PluginError> {
        let service = self.get(account_service)?;
        let accounts = service
            .body
            .pointer("/Accounts/@odata.id")
            .and_then(Value::as_str)
            .map(path_of)
            .ok_or_else(|| PluginError::Protocol(format!("{account_service} has no Accounts link")))?;
        self.find_account_in(&accounts, user_name)
    }

    /// The account collection an account service links to (`Accounts`).
    pub fn accounts_of(&self, account_service: &str) -> Result<String, PluginError> {
        let service = self.get(account_service)?;
        service
            .body
            .pointer("/Accounts/@odata.id")
            .and_then(Value::as_str)
            .map(path_of)
            .ok_or_else(|| PluginError::Protocol(format!("{account_service} has no Accounts link")))
    }

    /// [`Redfish::find_account`] in a known account collection (e.g. iDRAC8/9's
    /// `/redfish/v1/Managers/iDRAC.Embedded.1/Accounts`).
    pub fn find_account_in(&self, accounts: &str, user_name: &str) -> Result<Resource, PluginError> {
        let collection = self.get(accounts)?;
        let members = collection.body.get("Members").and_then(Value::as_array).cloned().unwrap_or_default();
        let mut seen = Vec::new();
        for member in &members {
            let Some(uri) = member.get("@odata.id").and_then(Value::as_str).map(path_of) else {
                continue;
            };
            let account = if member.get("UserName").is_some() {
                Resource { uri, body: member.clone(), etag: None }
            } else {
                self.get(&uri)?
            };
            match account.body.get("UserName").and_then(Value::as_str) {
                Some(name) if name == user_name => {
                    // An expanded member carries no ETag of its own: read the resource itself.
                    return if account.etag.is_none() && member.get("UserName").is_some() {
                        self.get(&account.uri)
                    } else {
                        Ok(account)
                    };
                }
                Some(name) if !name.is_empty() => seen.push(name.to_owned()),
                _ => {}
            }
        }
        Err(PluginError::AccountNotFound(format!(
            "no account named `{user_name}` in {accounts} (accounts present: {})",
            if seen.is_empty() { "none".into() } else { seen.join(", ") }
        )))
    }
}

/// Where new accounts go on a BMC, for [`enable_account`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AccountSlots {
    /// Fixed slots (Dell iDRAC, Lenovo XCC): a new account fills the first empty slot (empty
    /// `UserName`) whose numeric `Id` is at least this, by a PATCH of the slot.
    Fixed {
        /// The lowest slot a new account may take (iDRAC reserves 1 and holds `root` in 2).
        first: u32,
    },
    /// A collection that creates (HPE iLO, plain Redfish): a POST to the collection.
    Created,
}

/// Onboarding the standard way: in the account collection `accounts`, sets up `target.account`
/// as an enabled Administrator with `new_password`. An existing account of that name is PATCHed
/// (outcome [`Onboarded::Updated`](crate::Onboarded::Updated)); otherwise, per `slots`, the first
/// empty slot is PATCHed or the collection gets a POST ([`Onboarded::Created`](crate::Onboarded::Created)).
/// Every member is read first, so the host sees which slots are empty and which is whose, and a
/// slot is PATCHed with the ETag it was read with. The
/// body is exactly what the host's guard admits in onboarding:
/// `{"UserName", "Password", "RoleId": "Administrator", "Enabled": true}`.
pub fn enable_account(
    client: &Redfish<'_>,
    accounts: &str,
    target: &crate::Target,
    new_password: &Secret,
    slots: AccountSlots,
) -> Result<crate::Onboarded, PluginError> {
    let collection = client.get(accounts)?;
    let members = collection.body.get("Members").and_then(Value::as_array).cloned().unwrap_or_default();
    let mut existing = None;
    let mut empty = None;
    for member in &members {
        let Some(uri) = member.get("@odata.id").and_then(Value::as_str).map(path_of) else {
            continue;
        };
        // Read each member itself, even from an expanded collection: the host learns which slot
        // is whose from the account's own resource.
        let account = client.get(&uri)?;
        let user = account.body.get("UserName").and_then(Value::as_str).unwrap_or("").to_owned();
        let id = account.body.get("Id").and_then(Value::as_str).and_then(|id| id.parse::<u32>().ok());
        if user == target.account {
            existing = Some(account);
            break;
        }
        let free = match (slots, id) {
            (AccountSlots::Fixed { first }, Some(id)) => user.is_empty() && id >= first,
            _ => false,
        };
        if free && empty.is_none() {
            empty = Some(account);
        }
    }
    let body = || {
        JsonBody::object()
            .field("UserName", &target.account)
            .secret("Password", new_password)
            .field("RoleId", "Administrator")
            .field("Enabled", true)
    };
    // A slot PATCH carries the slot's ETag where it had one (XCC requires `If-Match`).
    let patch = |account: Resource| (Method::Patch, IfMatch::from_resource(&account, IfMatch::None), account.uri);
    let ((method, if_match, path), outcome) = match (existing, empty, slots) {
        (Some(account), _, _) => (patch(account), crate::Onboarded::Updated),
        (None, Some(slot), _) => (patch(slot), crate::Onboarded::Created),
        (None, None, AccountSlots::Created) => {
            ((Method::Post, IfMatch::None, accounts.to_owned()), crate::Onboarded::Created)
        }
        (None, None, AccountSlots::Fixed { .. }) => {
            return Err(PluginError::Protocol(format!(
                "{accounts} has no empty account slot for `{}`: free one on the BMC first",
                target.account
            )));
        }
    };
    let response = client.send(method, &path, Some(body()), &if_match)?;
    if !response.is_success() {
        return Err(RedfishError::from_response(format!("{} {path}", method.as_str()), &response).into_plugin_error());
    }
    Ok(outcome)
}

/// Disabling the factory account after onboarding, the standard way: finds `target.account` in
/// the account collection `accounts` and PATCHes it with exactly `{"Enabled": false}` (with its
/// ETag as `If-Match` where it had one), the one write the host admits in that call.
pub fn disable_account(client: &Redfish<'_>, accounts: &str, target: &crate::Target) -> Result<(), PluginError> {
    let account = client.find_account_in(accounts, &target.account)?;
    let body = JsonBody::object().field("Enabled", false);
    let answer = client.patch(&account.uri, body, &IfMatch::from_resource(&account, IfMatch::None))?;
    answer.map(drop).map_err(RedfishError::into_plugin_error)
}

fn send(bmc: &Bmc, request: &Request<'_>) -> Result<Response, PluginError> {
    bmc.send(request).map_err(|e: HttpError| e.into_plugin_error(request.method, &request.path))
}

/// The SNMPv3 settings a `ManagerAccount` shows in its standard `SNMP` member (DSP8010
/// `ManagerAccount` v1.4 and later): `Ok(None)` when it has none. SNMPv3 counts as enabled when
/// `AccountTypes` lists `SNMP`, or, on a service without `AccountTypes`, when it authenticates.
/// A protocol name this SDK does not know is a `protocol` error naming it: guessing would let a
/// weak setting pass.
pub fn account_snmp(account: &Value) -> Result<Option<crate::SnmpV3>, PluginError> {
    use crate::{SnmpAuthentication, SnmpPrivacy, SnmpV3};
    let Some(snmp) = account.get("SNMP").filter(|s| s.is_object()) else { return Ok(None) };
    let name = |key: &str| snmp.get(key).and_then(Value::as_str).unwrap_or("None");
    let authentication = SnmpAuthentication::from_redfish(name("AuthenticationProtocol")).ok_or_else(|| {
        PluginError::Protocol(format!("unknown SNMP AuthenticationProtocol `{}`", name("AuthenticationProtocol")))
    })?;
    let privacy = SnmpPrivacy::from_redfish(name("EncryptionProtocol")).ok_or_else(|| {
        PluginError::Protocol(format!("unknown SNMP EncryptionProtocol `{}`", name("EncryptionProtocol")))
    })?;
    let enabled = match account.get("AccountTypes").and_then(Value::as_array) {
        Some(types) => types.iter().any(|t| t.as_str() == Some("SNMP")),
        None => authentication != SnmpAuthentication::None,
    };
    Ok(Some(SnmpV3 { enabled, authentication, privacy }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn etag_forms() {
        assert_eq!(ETag::parse("\"abc\"").unwrap().header_value(), "\"abc\"");
        assert_eq!(ETag::parse("W/\"abc\"").unwrap().header_value(), "W/\"abc\"");
        assert!(ETag::parse("W/\"abc\"").unwrap().is_weak());
        assert_eq!(ETag::parse("abc").unwrap().header_value(), "\"abc\"");
        assert_eq!(ETag::parse(" W/abc ").unwrap().header_value(), "W/\"abc\"");
        assert_eq!(ETag::parse(""), None);
        assert_eq!(ETag::parse("\"\""), None);
    }

    #[test]
    fn extended_info_in_error_envelope_and_top_level() {
        let body = json!({"error": {"code": "iLO.0.10.ExtendedInfo", "message": "See @Message.ExtendedInfo",
            "@Message.ExtendedInfo": [{"MessageId": "iLO.2.14.InvalidPasswordLength",
                "MessageArgs": [8, "39"], "Message": "A valid password must contain between 8 to 39 characters."}]}});
        let info = extended_info(&body);
        assert_eq!(info.len(), 1);
        assert_eq!(info[0].key(), "InvalidPasswordLength");
        assert_eq!(info[0].registry(), "iLO");
        assert_eq!(info[0].args, ["8", "39"]);
        let top = json!({"@Message.ExtendedInfo": [{"MessageId": "Base.1.8.Success", "Severity": "OK"}]});
        assert_eq!(extended_info(&top)[0].severity, "OK");
        let bare = json!({"error": {"code": "Base.1.0.GeneralError", "message": "boom"}});
        assert_eq!(extended_info(&bare)[0].to_string(), "Base.1.0.GeneralError: boom");
        // As real iLO answers: no text, the limits in the arguments.
        let ilo = json!({"error": {"code": "iLO.0.10.ExtendedInfo", "message": "See @Message.ExtendedInfo",
            "@Message.ExtendedInfo": [{"MessageId": "iLO.2.14.InvalidPasswordLength", "MessageArgs": [8, 39]}]}});
        assert_eq!(extended_info(&ilo)[0].to_string(), "iLO.2.14.InvalidPasswordLength (8, 39)");
    }

    fn error(status: u16, id: &str, args: &[&str]) -> PluginError {
        RedfishError {
            call: "PATCH /x".into(),
            status,
            messages: vec![ExtendedInfo {
                message_id: id.into(),
                message: "m".into(),
                args: args.iter().map(|s| s.to_string()).collect(),
                ..Default::default()
            }],
        }
        .into_plugin_error()
    }

    #[test]
    fn error_mapping() {
        assert_eq!(error(400, "iLO.2.14.InvalidPasswordComplexity", &[]).kind(), "policy-rejected");
        assert_eq!(error(400, "Base.1.8.PropertyValueFormatError", &["x", "Password"]).kind(), "policy-rejected");
        assert_eq!(error(400, "Base.1.8.PropertyValueFormatError", &["x", "UserName"]).kind(), "protocol");
        assert_eq!(error(403, "Base.1.8.PasswordChangeRequired", &[]).kind(), "password-change-required");
        assert_eq!(error(401, "Base.1.8.NoValidSession", &[]).kind(), "auth-failed");
        assert_eq!(error(403, "iLO.2.34.CreateLimitReachedForResource", &[]).kind(), "unreachable");
        assert_eq!(error(503, "Base.1.8.CreateLimitReachedForResource", &[]).kind(), "unreachable");
        assert_eq!(error(503, "Base.1.8.ServiceTemporarilyUnavailable", &[]).kind(), "unreachable");
        assert_eq!(error(403, "Base.1.8.InsufficientPrivilege", &[]).kind(), "auth-failed");
        assert_eq!(error(412, "Base.1.8.PreconditionFailed", &[]).kind(), "precondition-failed");
        assert_eq!(error(428, "Base.1.8.PreconditionRequired", &[]).kind(), "precondition-failed");
        let text = error(400, "iLO.2.14.InvalidPasswordLength", &[]).to_string();
        assert_eq!(text, "policy-rejected: PATCH /x answered HTTP 400: iLO.2.14.InvalidPasswordLength: m");
    }

    #[test]
    fn location_becomes_a_path() {
        assert_eq!(
            path_of("https://10.0.0.1/redfish/v1/SessionService/Sessions/3"),
            "/redfish/v1/SessionService/Sessions/3"
        );
        assert_eq!(path_of("/redfish/v1/x/"), "/redfish/v1/x/");
        assert_eq!(path_of("https://bmc"), "/");
    }

    #[test]
    fn account_snmp_reads_the_standard_member_and_refuses_an_unknown_protocol() {
        use crate::{SnmpAuthentication, SnmpPrivacy, SnmpV3};
        let account = serde_json::json!({"AccountTypes": ["Redfish", "SNMP"],
            "SNMP": {"AuthenticationProtocol": "HMAC_SHA96", "EncryptionProtocol": "CBC_DES"}});
        let expected =
            SnmpV3 { enabled: true, authentication: SnmpAuthentication::HmacSha96, privacy: SnmpPrivacy::CbcDes };
        assert_eq!(account_snmp(&account), Ok(Some(expected)));
        let off = serde_json::json!({"AccountTypes": ["Redfish"], "SNMP": {"AuthenticationProtocol": "HMAC_SHA96"}});
        assert_eq!(account_snmp(&off).unwrap().map(|s| (s.enabled, s.privacy)), Some((false, SnmpPrivacy::None)));
        assert_eq!(account_snmp(&serde_json::json!({"UserName": "x"})), Ok(None));
        let odd = serde_json::json!({"SNMP": {"AuthenticationProtocol": "HMAC_WHIRLPOOL"}});
        assert!(matches!(account_snmp(&odd), Err(PluginError::Protocol(m)) if m.contains("HMAC_WHIRLPOOL")));
    }
}

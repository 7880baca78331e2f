//! One simulated BMC: accounts, sessions, failed-login handling and the Redfish resources, as a
//! plain state machine. `handle` takes a request and returns the answer; the HTTP layer
//! (`server.rs`) only moves bytes, so every rule is unit-tested without sockets.

use crate::clock::LabClock;
use crate::persona::{AccountIds, EtagStyle, FailedLogins, IfMatchRule, Profile, SuccessShape, Vendor};
use crate::policy::{self, Violation};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::net::IpAddr;
use std::time::Duration;

/// A request as the state machine sees it.
#[derive(Clone, Debug)]
pub struct LabRequest {
    /// Method, upper case.
    pub method: String,
    /// Path without query.
    pub path: String,
    /// Query string (without `?`), possibly empty.
    pub query: String,
    /// Headers, lower-case names.
    pub headers: Vec<(String, String)>,
    /// Body.
    pub body: Vec<u8>,
    /// The client's address.
    pub peer: IpAddr,
}

impl LabRequest {
    /// A request without headers or body from 127.0.0.1 (for tests).
    pub fn new(method: &str, path_and_query: &str) -> Self {
        let (path, query) = path_and_query.split_once('?').unwrap_or((path_and_query, ""));
        LabRequest {
            method: method.into(),
            path: path.into(),
            query: query.into(),
            headers: Vec::new(),
            body: Vec::new(),
            peer: IpAddr::from([127, 0, 0, 1]),
        }
    }

    /// Adds a header.
    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.to_ascii_lowercase(), value.into()));
        self
    }

    /// Sets a JSON body.
    pub fn json(mut self, body: Value) -> Self {
        self.body = body.to_string().into_bytes();
        self.header("content-type", "application/json")
    }

    /// Adds HTTP Basic credentials.
    pub fn basic(self, user: &str, password: &str) -> Self {
        let token = base64(format!("{user}:{password}").as_bytes());
        self.header("authorization", &format!("Basic {token}"))
    }

    /// Adds a session token.
    pub fn token(self, token: &str) -> Self {
        self.header("x-auth-token", token)
    }

    fn get_header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }
}

/// An answer.
#[derive(Clone, Debug)]
pub struct LabResponse {
    /// Status.
    pub status: u16,
    /// Headers.
    pub headers: Vec<(String, String)>,
    /// JSON body (`Null`: none).
    pub body: Value,
    /// A non-JSON body with its content type (the OData `$metadata` document).
    pub text: Option<(&'static str, String)>,
    /// Hold the answer this long (iLO's login delay).
    pub delay: Duration,
}

impl LabResponse {
    fn json(status: u16, body: Value) -> Self {
        LabResponse { status, headers: Vec::new(), body, text: None, delay: Duration::ZERO }
    }

    fn empty(status: u16) -> Self {
        LabResponse::json(status, Value::Null)
    }

    fn with_header(mut self, name: &str, value: impl Into<String>) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }

    /// The first header of that name.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    /// The MessageIds in the body's `@Message.ExtendedInfo` (error envelope or top level).
    pub fn message_ids(&self) -> Vec<String> {
        let lists = [self.body.pointer("/error/@Message.ExtendedInfo"), self.body.get("@Message.ExtendedInfo")];
        lists
            .into_iter()
            .flatten()
            .filter_map(Value::as_array)
            .flatten()
            .filter_map(|m| m.get("MessageId").and_then(Value::as_str).map(str::to_owned))
            .collect()
    }
}

/// A message of `@Message.ExtendedInfo`.
fn message(id: &str, text: &str, args: &[&str], severity: &str, resolution: &str) -> Value {
    json!({"@odata.type": "#Message.v1_1_1.Message", "MessageId": id, "Message": text, "MessageArgs": args,
           "Severity": severity, "MessageSeverity": severity, "Resolution": resolution})
}

/// The Redfish error envelope.
fn error(status: u16, code: &str, messages: Vec<Value>) -> LabResponse {
    LabResponse::json(
        status,
        json!({"error": {"code": code, "message": "A general error has occurred. See ExtendedInfo for more information.",
                         "@Message.ExtendedInfo": messages}}),
    )
}

fn base64(data: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in data.chunks(3) {
        let b = [chunk[0], *chunk.get(1).unwrap_or(&0), *chunk.get(2).unwrap_or(&0)];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            out.push(if i <= chunk.len() { ALPHABET[(n >> (18 - 6 * i)) as usize & 63] as char } else { '=' });
        }
    }
    out
}

fn unbase64(text: &str) -> Option<Vec<u8>> {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let (mut bits, mut count, mut out) = (0u32, 0, Vec::new());
    for c in text.trim().bytes().filter(|c| *c != b'=') {
        bits = (bits << 6) | ALPHABET.iter().position(|a| *a == c)? as u32;
        count += 6;
        if count >= 8 {
            count -= 8;
            out.push((bits >> count) as u8);
        }
    }
    Some(out)
}

/// A salted password hash (the lab never keeps plaintext).
#[derive(Clone, PartialEq, Eq)]
pub struct PasswordHash([u8; 32]);

impl PasswordHash {
    fn of(salt: &[u8; 16], password: &str) -> Self {
        let mut h = Sha256::new();
        h.update(salt);
        h.update(password.as_bytes());
        PasswordHash(h.finalize().into())
    }

    /// Hex form, for introspection.
    pub fn hex(&self) -> String {
        hex::encode(self.0)
    }
}

impl std::fmt::Debug for PasswordHash {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "PasswordHash({}…)", &self.hex()[..12])
    }
}

/// One account.
#[derive(Clone, Debug)]
pub struct Account {
    /// Id (slot number or HPE id).
    pub id: u32,
    /// `UserName`; empty for a free slot.
    pub user: String,
    /// HPE's `Oem.Hpe.LoginName` (a description, not the login name).
    pub login_name: String,
    /// Current password hash.
    pub password: Option<PasswordHash>,
    /// `RoleId`.
    pub role: String,
    /// `Enabled`.
    pub enabled: bool,
    /// `PasswordChangeRequired`.
    pub change_required: bool,
    /// Dell's "default password must be changed" state (SWC1908).
    pub dell_default_password: bool,
    /// Failed logins since the last success.
    pub failures: u32,
    /// Locked until this lab time.
    pub locked_until: Option<Duration>,
    /// Previous password hashes, newest first.
    pub history: VecDeque<PasswordHash>,
    /// When the password last changed.
    pub changed_at: Option<Duration>,
    /// Bumped on every change (drives the ETag).
    pub version: u64,
}

#[derive(Clone, Debug)]
struct Session {
    id: u32,
    token: String,
    account: u32,
}

#[derive(Clone, Debug, Default)]
struct AddressRecord {
    failures: VecDeque<Duration>,
    blocked_until: Option<Duration>,
}

/// One line of the request log (no secrets: bodies are not kept).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LoggedRequest {
    /// Method.
    pub method: String,
    /// Path and query.
    pub path: String,
    /// `basic USER`, `session`, or `none`.
    pub auth: String,
    /// The status answered.
    pub status: u16,
}

/// A simulated BMC.
pub struct Bmc {
    profile: Profile,
    clock: LabClock,
    salt: [u8; 16],
    accounts: BTreeMap<u32, Account>,
    sessions: Vec<Session>,
    next_session: u32,
    next_account: u32,
    addresses: HashMap<IpAddr, AddressRecord>,
    log: VecDeque<LoggedRequest>,
    /// Session creation always fails with the persona's limit status (a fault).
    pub sessions_exhausted: bool,
    /// The account collection the current request addressed (iDRAC9 serves two): account URIs
    /// in the answer are written under it, as the firmware does.
    base: &'static str,
}

/// Request-log lines kept per BMC.
const LOG_LINES: usize = 1024;

enum Caller {
    Account(u32),
}

impl Bmc {
    /// A BMC of this persona with its default account holding `password`.
    pub fn new(profile: Profile, clock: LabClock, password: &str) -> Bmc {
        let mut salt = [0u8; 16];
        let seed = Sha256::digest(format!("{:?}{:?}", std::time::SystemTime::now(), std::thread::current().id()));
        salt.copy_from_slice(&seed[..16]);
        let mut bmc = Bmc {
            profile,
            clock,
            salt,
            accounts: BTreeMap::new(),
            sessions: Vec::new(),
            next_session: 1,
            next_account: 1,
            addresses: HashMap::new(),
            log: VecDeque::new(),
            sessions_exhausted: false,
            base: "",
        };
        bmc.base = bmc.profile.account_collections[0];
        if let AccountIds::Slots(n) = bmc.profile.account_ids {
            for id in 1..=n {
                bmc.accounts.insert(id, bmc.empty_slot(id));
            }
        }
        let (id, user) = bmc.profile.default_account;
        bmc.put_account(id, user, password, "Administrator");
        if bmc.profile.account_ids == AccountIds::Variable {
            bmc.next_account = id.max(1) + 11; // HPE ids are not dense: 1, 12, 13...
        }
        bmc
    }

    fn empty_slot(&self, id: u32) -> Account {
        Account {
            id,
            user: String::new(),
            login_name: String::new(),
            password: None,
            role: "None".into(),
            enabled: false,
            change_required: false,
            dell_default_password: false,
            failures: 0,
            locked_until: None,
            history: VecDeque::new(),
            changed_at: None,
            version: 1,
        }
    }

    /// Creates or replaces the account `id` (test and fleet set-up).
    pub fn put_account(&mut self, id: u32, user: &str, password: &str, role: &str) {
        let hash = PasswordHash::of(&self.salt, password);
        let account = Account {
            user: user.into(),
            login_name: format!("{user} (local)"),
            password: Some(hash),
            role: role.into(),
            enabled: true,
            ..self.empty_slot(id)
        };
        self.accounts.insert(id, account);
    }

    /// Adds an account with the next free id (slot or HPE id); returns the id.
    pub fn add_account(&mut self, user: &str, password: &str, role: &str) -> Option<u32> {
        let id = self.free_id()?;
        self.put_account(id, user, password, role);
        Some(id)
    }

    fn free_id(&mut self) -> Option<u32> {
        match self.profile.account_ids {
            AccountIds::Slots(_) => self.accounts.values().find(|a| a.user.is_empty() && a.id > 2).map(|a| a.id),
            AccountIds::Variable => {
                let id = self.next_account;
                self.next_account += 1;
                Some(id)
            }
        }
    }

    /// The persona profile.
    pub fn profile(&self) -> &Profile {
        &self.profile
    }

    /// The password rules, for set-up (the way an administrator changes them on the BMC).
    pub fn policy_mut(&mut self) -> &mut crate::persona::PolicyRules {
        &mut self.profile.policy
    }

    /// The lab clock.
    pub fn clock(&self) -> &LabClock {
        &self.clock
    }

    /// The account with this user name.
    pub fn account(&self, user: &str) -> Option<&Account> {
        self.accounts.values().find(|a| a.user == user && !a.user.is_empty())
    }

    /// Mutable access for test set-up (e.g. setting `change_required`).
    pub fn account_mut(&mut self, user: &str) -> Option<&mut Account> {
        self.accounts.values_mut().find(|a| a.user == user && !a.user.is_empty())
    }

    /// Whether `password` is the current password of `user`.
    pub fn password_is(&self, user: &str, password: &str) -> bool {
        self.account(user).and_then(|a| a.password.as_ref()) == Some(&PasswordHash::of(&self.salt, password))
    }

    /// Records `password` in the account's history, as if it had held it before: the reuse cycle
    /// then refuses it. False if there is no such account.
    pub fn remember_password(&mut self, user: &str, password: &str) -> bool {
        let hash = PasswordHash::of(&self.salt, password);
        match self.account_mut(user) {
            Some(account) => {
                account.history.push_front(hash);
                true
            }
            None => false,
        }
    }

    /// Open sessions.
    pub fn session_count(&self) -> usize {
        self.sessions.len()
    }

    /// Whether an address is blocked now (iDRAC).
    pub fn is_blocked(&self, peer: IpAddr) -> bool {
        self.addresses.get(&peer).and_then(|r| r.blocked_until).is_some_and(|t| t > self.clock.now())
    }

    /// The request log (oldest first; bounded).
    pub fn requests(&self) -> Vec<LoggedRequest> {
        self.log.iter().cloned().collect()
    }

    // ---- URIs and tags ------------------------------------------------------------------

    fn slash(&self, uri: String) -> String {
        if self.profile.trailing_slash { uri + "/" } else { uri }
    }

    fn collection(&self) -> &'static str {
        self.base
    }

    fn account_uri(&self, id: u32) -> String {
        self.slash(format!("{}/{id}", self.collection()))
    }

    fn etag(&self, account: &Account) -> String {
        let digest = Sha256::digest(format!("{}:{}:{}", account.id, account.version, self.profile.persona));
        match self.profile.etag {
            EtagStyle::DellWeak => format!("W/\"gen-{}\"", account.version),
            EtagStyle::HpeWeak => format!("W/\"{}\"", hex::encode_upper(&digest[..4])),
            EtagStyle::LenovoQuoted => format!("\"{} \"", hex::encode(&digest[..10])),
        }
    }

    fn account_json(&self, account: &Account) -> Value {
        let mut body = json!({
            "@odata.id": self.account_uri(account.id),
            "@odata.type": "#ManagerAccount.v1_12_0.ManagerAccount",
            "@odata.etag": self.etag(account),
            "Id": account.id.to_string(),
            "Name": "User Account",
            "UserName": account.user,
            "Password": null,
            "RoleId": account.role,
            "Enabled": account.enabled,
            "Locked": account.locked_until.is_some_and(|t| t > self.clock.now()),
            "PasswordChangeRequired": account.change_required,
            "AccountTypes": ["Redfish"],
        });
        if self.profile.persona.vendor() == Vendor::Hpe {
            body["Oem"] =
                json!({ self.profile.oem: {"LoginName": account.login_name, "Privileges": {"LoginPriv": true}} });
        }
        body
    }

    // ---- the request path ---------------------------------------------------------------

    /// Answers one request.
    pub fn handle(&mut self, request: &LabRequest) -> LabResponse {
        let response = match request.get_header("odata-version") {
            Some(v) if v.trim() != "4.0" => error(
                412,
                "Base.1.18.GeneralError",
                vec![message(
                    "Base.1.18.HeaderInvalid",
                    &format!("The header value '{v}' for OData-Version is not supported."),
                    &[v],
                    "Critical",
                    "Send OData-Version: 4.0.",
                )],
            ),
            _ if request.method == "HEAD" => {
                let mut get = request.clone();
                get.method = "GET".into();
                self.route(&get)
            }
            _ => self.route(request),
        };
        let response = self.standard_headers(request, response);
        let auth = match (request.get_header("authorization"), request.get_header("x-auth-token")) {
            (_, Some(_)) => "session".to_owned(),
            (Some(a), None) => basic_user(a).map_or_else(|| "basic ?".into(), |(u, _)| format!("basic {u}")),
            (None, None) => "none".into(),
        };
        self.record(request, auth, response.status);
        response
    }

    /// Logs a request the fault layer answered (or dropped: status 0) without the state machine.
    pub fn record_fault(&mut self, request: &LabRequest, status: u16) {
        self.record(request, "fault".into(), status);
    }

    fn record(&mut self, request: &LabRequest, auth: String, status: u16) {
        if self.log.len() == LOG_LINES {
            self.log.pop_front();
        }
        let path =
            if request.query.is_empty() { request.path.clone() } else { format!("{}?{}", request.path, request.query) };
        self.log.push_back(LoggedRequest { method: request.method.clone(), path, auth, status });
    }

    /// Headers every Redfish answer carries (DSP0266 "Response headers").
    fn standard_headers(&self, request: &LabRequest, mut response: LabResponse) -> LabResponse {
        response.headers.push(("OData-Version".into(), "4.0".into()));
        response.headers.push(("Cache-Control".into(), "no-cache".into()));
        let read = request.method == "GET" || request.method == "HEAD";
        if read && (200..300).contains(&response.status) {
            if response.header("allow").is_none() {
                response.headers.push(("Allow".into(), allowed_methods(request.path.trim_end_matches('/')).into()));
            }
            if let Some(kind) = response.body.get("@odata.type").and_then(Value::as_str) {
                let schema = kind.trim_start_matches('#').split('.').next().unwrap_or("");
                response.headers.push(("Link".into(), format!("</redfish/v1/Schemas/{schema}.json>; rel=describedby")));
            }
        }
        response
    }

    fn route(&mut self, request: &LabRequest) -> LabResponse {
        self.base = self.profile.account_collections[0];
        let path = request.path.trim_end_matches('/');
        // `POST .../Members` creates in the collection, as DSP0266 allows.
        let path = if request.method == "POST" { path.strip_suffix("/Members").unwrap_or(path) } else { path };
        let method = request.method.as_str();
        match (method, path) {
            ("GET", "/redfish") => return LabResponse::json(200, json!({"v1": "/redfish/v1/"})),
            ("GET", "/redfish/v1") => return self.service_root(),
            ("GET", "/redfish/v1/odata") => return self.odata_service_document(),
            ("GET", "/redfish/v1/$metadata") => return metadata_document(),
            ("POST", "/redfish/v1/SessionService/Sessions") => return self.login(request),
            _ => {}
        }
        let caller = match self.authenticate(request) {
            Ok(c) => c,
            Err(response) => return response,
        };
        let Caller::Account(caller_id) = caller;
        if self.accounts[&caller_id].change_required {
            let own = self.account_uri(caller_id);
            let own_path = own.trim_end_matches('/');
            let allowed = path == own_path && (method == "GET" || method == "PATCH");
            if !allowed {
                return self.change_required_error(caller_id);
            }
        }
        if let Some(rest) = path.strip_prefix("/redfish/v1/SessionService/Sessions/") {
            return self.session_resource(method, rest);
        }
        for collection in self.profile.account_collections {
            if path == *collection || path.strip_prefix(collection).is_some_and(|r| r.starts_with('/')) {
                self.base = collection;
            }
            if path == *collection {
                return self.account_collection(request, caller_id);
            }
            if let Some(id) = path.strip_prefix(collection).and_then(|r| r.strip_prefix('/')) {
                return self.account_resource(request, caller_id, id);
            }
        }
        match (method, path) {
            (
                m,
                "/redfish"
                | "/redfish/v1"
                | "/redfish/v1/odata"
                | "/redfish/v1/$metadata"
                | "/redfish/v1/SessionService"
                | "/redfish/v1/Managers"
                | "/redfish/v1/AccountService/Roles",
            ) if m != "GET" => self.method_not_allowed(path),
            ("GET", "/redfish/v1/AccountService/Roles") => {
                let members: Vec<Value> = ["Administrator", "Operator", "ReadOnly"]
                    .iter()
                    .map(|r| json!({"@odata.id": self.slash(format!("/redfish/v1/AccountService/Roles/{r}"))}))
                    .collect();
                LabResponse::json(
                    200,
                    json!({
                        "@odata.id": self.slash("/redfish/v1/AccountService/Roles".into()),
                        "@odata.type": "#RoleCollection.RoleCollection", "Name": "Roles",
                        "Members@odata.count": 3, "Members": members,
                    }),
                )
            }
            ("GET", p) if p.starts_with("/redfish/v1/AccountService/Roles/") => self.role(p),
            ("GET", "/redfish/v1/SessionService") => LabResponse::json(
                200,
                json!({"@odata.id": "/redfish/v1/SessionService", "@odata.type": "#SessionService.v1_1_8.SessionService", "Id": "SessionService", "Name": "Session Service", "ServiceEnabled": true, "SessionTimeout": 1800,
                       "Sessions": {"@odata.id": self.slash("/redfish/v1/SessionService/Sessions".into())}}),
            ),
            ("GET", "/redfish/v1/SessionService/Sessions") => {
                let members: Vec<Value> = self
                    .sessions
                    .iter()
                    .map(|s| json!({"@odata.id": self.slash(format!("/redfish/v1/SessionService/Sessions/{}", s.id))}))
                    .collect();
                LabResponse::json(
                    200,
                    json!({"@odata.id": self.slash("/redfish/v1/SessionService/Sessions".into()),
                    "@odata.type": "#SessionCollection.SessionCollection", "Name": "Session Collection",
                    "Members@odata.count": members.len(), "Members": members}),
                )
            }
            ("GET", "/redfish/v1/AccountService") => self.account_service(),
            ("PATCH", "/redfish/v1/AccountService") if !self.is_admin(caller_id) => self.insufficient_privilege(),
            ("PATCH", "/redfish/v1/AccountService") => self.patch_account_service(request),
            ("GET", "/redfish/v1/Managers") => LabResponse::json(
                200,
                json!({"@odata.id": "/redfish/v1/Managers", "@odata.type": "#ManagerCollection.ManagerCollection", "Name": "Manager Collection", "Members@odata.count": 1, "Members": [{"@odata.id": self.slash(format!("/redfish/v1/Managers/{}", self.profile.manager_id))}]}),
            ),
            ("GET", p) if p == format!("/redfish/v1/Managers/{}", self.profile.manager_id) => self.manager(request),
            ("PATCH", "/redfish/v1/Managers/iDRAC.Embedded.1/Oem/Dell/DellAttributes/iDRAC.Embedded.1")
                if self.profile.persona.vendor() == Vendor::Dell =>
            {
                self.dell_attributes(request, caller_id)
            }
            _ => self.not_found(&request.path),
        }
    }

    fn is_admin(&self, id: u32) -> bool {
        self.accounts.get(&id).is_some_and(|a| a.role == "Administrator")
    }

    fn insufficient_privilege(&self) -> LabResponse {
        error(
            403,
            "Base.1.18.GeneralError",
            vec![message(
                "Base.1.18.InsufficientPrivilege",
                "There are insufficient privileges for the account or credentials associated with the current session to perform the requested operation.",
                &[],
                "Critical",
                "Either abandon the operation or change the associated access rights and resubmit the request if the operation failed.",
            )],
        )
    }

    fn method_not_allowed(&self, path: &str) -> LabResponse {
        error(
            405,
            "Base.1.18.GeneralError",
            vec![message(
                "Base.1.18.OperationNotAllowed",
                "The HTTP method is not allowed on this resource.",
                &[],
                "Critical",
                "None.",
            )],
        )
        .with_header("Allow", allowed_methods(path))
    }

    fn odata_service_document(&self) -> LabResponse {
        let singleton = |name: &str, url: &str| json!({"name": name, "kind": "Singleton", "url": url});
        LabResponse::json(
            200,
            json!({
                "@odata.context": "/redfish/v1/$metadata",
                "value": [
                    singleton("Service", "/redfish/v1/"),
                    singleton("AccountService", "/redfish/v1/AccountService"),
                    singleton("SessionService", "/redfish/v1/SessionService"),
                    singleton("Sessions", "/redfish/v1/SessionService/Sessions"),
                    singleton("Managers", "/redfish/v1/Managers"),
                ]
            }),
        )
    }

    fn role(&self, path: &str) -> LabResponse {
        let id = path.rsplit('/').next().unwrap_or("");
        let privileges: &[&str] = match id {
            "Administrator" => &["Login", "ConfigureManager", "ConfigureUsers", "ConfigureSelf", "ConfigureComponents"],
            "Operator" => &["Login", "ConfigureSelf", "ConfigureComponents"],
            "ReadOnly" => &["Login", "ConfigureSelf"],
            _ => return self.not_found(path),
        };
        LabResponse::json(
            200,
            json!({"@odata.id": self.slash(format!("/redfish/v1/AccountService/Roles/{id}")),
            "@odata.type": "#Role.v1_3_1.Role", "Id": id, "Name": id, "RoleId": id, "IsPredefined": true,
            "AssignedPrivileges": privileges}),
        )
    }

    fn not_found(&self, path: &str) -> LabResponse {
        error(
            404,
            "Base.1.18.GeneralError",
            vec![message(
                "Base.1.18.ResourceNotFound",
                &format!("The requested resource of type ... named '{path}' was not found."),
                &[path],
                "Critical",
                "Provide a valid resource identifier and resubmit the request.",
            )],
        )
    }

    fn service_root(&self) -> LabResponse {
        let p = &self.profile;
        let oem = match p.persona.vendor() {
            Vendor::Dell => {
                json!({"Dell": {"@odata.type": "#DellServiceRoot.v1_0_0.DellServiceRoot", "ManagerMACAddress": "d0:94:66:00:00:01"}})
            }
            Vendor::Hpe => {
                json!({"Hpe": {"Manager": [{"ManagerType": p.manager_model, "ManagerFirmwareVersion": p.firmware}],
                                          "Sessions": {"LoginFailureDelay": 0}}})
            }
            Vendor::Lenovo => json!({"Lenovo": {"@odata.type": "#LenovoServiceRoot.v1_0_0.LenovoServiceRoot"}}),
        };
        LabResponse::json(
            200,
            json!({
                "@odata.id": "/redfish/v1/", "@odata.type": "#ServiceRoot.v1_16_0.ServiceRoot", "Id": "RootService",
                "Name": "Root Service", "RedfishVersion": p.redfish_version, "Vendor": p.vendor, "Product": p.product,
                "UUID": "4c4c4544-0000-0000-0000-000000000000",
                "AccountService": {"@odata.id": self.slash("/redfish/v1/AccountService".into())},
                "SessionService": {"@odata.id": self.slash("/redfish/v1/SessionService".into())},
                "Managers": {"@odata.id": self.slash("/redfish/v1/Managers".into())},
                "Links": {"Sessions": {"@odata.id": self.slash("/redfish/v1/SessionService/Sessions".into())}},
                "Oem": oem,
            }),
        )
    }

    fn manager(&self, request: &LabRequest) -> LabResponse {
        let p = &self.profile;
        let full = json!({"@odata.id": format!("/redfish/v1/Managers/{}", p.manager_id), "@odata.type": "#Manager.v1_19_0.Manager", "Name": "Manager", "Id": p.manager_id,
                          "Model": p.manager_model, "FirmwareVersion": p.firmware, "ManagerType": "BMC"});
        // `$select=Model` (iDRAC generation detection) returns just that property.
        if request.query.contains("$select=Model") {
            return LabResponse::json(200, json!({"@odata.id": full["@odata.id"], "Model": full["Model"]}));
        }
        LabResponse::json(200, full)
    }

    fn account_service(&self) -> LabResponse {
        let p = &self.profile;
        let (threshold, duration) = match p.failed_logins {
            FailedLogins::Lockout { threshold, duration } => (threshold, duration.as_secs()),
            _ => (0, 0),
        };
        let mut body = json!({
            "@odata.id": self.slash("/redfish/v1/AccountService".into()),
            "@odata.type": "#AccountService.v1_13_0.AccountService",
            "Id": "AccountService", "Name": "Account Service", "ServiceEnabled": true,
            "MinPasswordLength": p.policy.min_length, "MaxPasswordLength": p.policy.max_length,
            "AccountLockoutThreshold": threshold, "AccountLockoutDuration": duration,
            "Accounts": {"@odata.id": self.slash(self.collection().to_owned())},
            "Roles": {"@odata.id": self.slash("/redfish/v1/AccountService/Roles".into())},
        });
        match p.persona.vendor() {
            Vendor::Hpe => {
                body["Oem"] = json!({"Hpe": {"MinPasswordLength": p.policy.min_length,
                    "EnforcePasswordComplexity": p.policy.complexity != crate::persona::Complexity::None,
                    "AuthFailuresBeforeDelay": match p.failed_logins { FailedLogins::Delay { after, .. } => after, _ => 0 },
                    "AuthFailureDelayTimeSeconds": match p.failed_logins { FailedLogins::Delay { delay, .. } => delay.as_secs(), _ => 0 }}})
            }
            Vendor::Lenovo => {
                body["Oem"] = json!({"Lenovo": {"MinimumPasswordReuseCycle": p.policy.reuse_cycle,
                    "MinimumPasswordChangeIntervalHours": p.policy.min_change_interval_hours,
                    "ComplexPassword": p.policy.complexity != crate::persona::Complexity::None,
                    "PasswordChangeOnFirstAccess": false, "PasswordLength": p.policy.min_length}})
            }
            Vendor::Dell => {}
        }
        LabResponse::json(200, body)
    }

    /// The policy settings vendors expose as writable (used by tests and the validator).
    fn patch_account_service(&mut self, request: &LabRequest) -> LabResponse {
        let Ok(body) = serde_json::from_slice::<Value>(&request.body) else {
            return self.malformed();
        };
        if let Some(min) = body.get("MinPasswordLength").and_then(Value::as_u64) {
            self.profile.policy.min_length = min as u32;
        }
        if let Some(cycle) = body.pointer("/Oem/Lenovo/MinimumPasswordReuseCycle").and_then(Value::as_u64) {
            self.profile.policy.reuse_cycle = cycle as u32;
        }
        if let Some(hours) = body.pointer("/Oem/Lenovo/MinimumPasswordChangeIntervalHours").and_then(Value::as_u64) {
            self.profile.policy.min_change_interval_hours = hours as u32;
        }
        if let (Some(t), FailedLogins::Lockout { duration, .. }) =
            (body.get("AccountLockoutThreshold").and_then(Value::as_u64), self.profile.failed_logins)
        {
            self.profile.failed_logins = FailedLogins::Lockout { threshold: t as u32, duration };
        }
        self.account_service()
    }

    fn malformed(&self) -> LabResponse {
        error(
            400,
            "Base.1.18.GeneralError",
            vec![message(
                "Base.1.18.MalformedJSON",
                "The request body submitted was malformed JSON and could not be parsed by the receiving service.",
                &[],
                "Critical",
                "Ensure that the request body is valid JSON and resubmit the request.",
            )],
        )
    }

    // ---- authentication -----------------------------------------------------------------

    fn unauthorized(&self) -> LabResponse {
        let text = "The authentication credentials included with this request are missing or invalid.";
        error(
            401,
            "Base.1.18.GeneralError",
            vec![message(
                self.profile.unauthorized,
                text,
                &[],
                "Critical",
                "Attempt to ensure that the URI is correct and that the service has the appropriate credentials.",
            )],
        )
        .with_header("WWW-Authenticate", "Basic realm=\"RedfishService\"")
    }

    fn change_required_error(&self, id: u32) -> LabResponse {
        let uri = self.account_uri(id);
        error(
            403,
            "Base.1.18.GeneralError",
            vec![message(
                "Base.1.18.PasswordChangeRequired",
                "The password provided for this account must be changed before access is granted.  PATCH the Password property for this account located at the target URI '%1' to complete this process.",
                &[&uri],
                "Critical",
                "Change the password for this account using a PATCH to the Password property at the URI provided.",
            )],
        )
    }

    /// Checks a user name and password, counting failures the vendor's way.
    fn check_password(&mut self, user: &str, password: &str, peer: IpAddr) -> Result<u32, LabResponse> {
        let now = self.clock.now();
        if self.is_blocked(peer) {
            return Err(self.unauthorized());
        }
        let hash = PasswordHash::of(&self.salt, password);
        let Some(account) = self.accounts.values_mut().find(|a| a.user == user && !user.is_empty()) else {
            return Err(self.record_failure(None, peer, now));
        };
        if account.locked_until.is_some_and(|t| t > now) {
            // Locked accounts refuse even the right password (XCC, iLO 6).
            return Err(self.unauthorized());
        }
        if !account.enabled || account.password.as_ref() != Some(&hash) {
            let id = account.id;
            return Err(self.record_failure(Some(id), peer, now));
        }
        account.failures = 0;
        account.locked_until = None;
        Ok(account.id)
    }

    fn record_failure(&mut self, account: Option<u32>, peer: IpAddr, now: Duration) -> LabResponse {
        let mut response = self.unauthorized();
        match self.profile.failed_logins {
            FailedLogins::BlockAddress { threshold, window, penalty } => {
                let record = self.addresses.entry(peer).or_default();
                record.failures.push_back(now);
                while record.failures.front().is_some_and(|t| now.saturating_sub(*t) > window) {
                    record.failures.pop_front();
                }
                if record.failures.len() as u32 >= threshold {
                    record.blocked_until = Some(now + penalty);
                    record.failures.clear();
                }
            }
            FailedLogins::Delay { after, delay } => {
                if let Some(a) = account.and_then(|id| self.accounts.get_mut(&id)) {
                    a.failures += 1;
                    if a.failures > after {
                        response.delay = delay;
                        let text = format!("Login attempt delayed for {} seconds.", delay.as_secs());
                        let secs = delay.as_secs().to_string();
                        if let Some(list) =
                            response.body.pointer_mut("/error/@Message.ExtendedInfo").and_then(Value::as_array_mut)
                        {
                            list.push(message(
                                &format!("{}.LoginAttemptDelayedSeconds", self.profile.registry),
                                &text,
                                &[&secs],
                                "Warning",
                                "None.",
                            ));
                        }
                    }
                }
            }
            FailedLogins::Lockout { threshold, duration } => {
                if let Some(a) = account.and_then(|id| self.accounts.get_mut(&id)) {
                    a.failures += 1;
                    if threshold > 0 && a.failures >= threshold {
                        a.locked_until = Some(now + duration);
                        a.failures = 0;
                    }
                }
            }
        }
        response
    }

    fn authenticate(&mut self, request: &LabRequest) -> Result<Caller, LabResponse> {
        if let Some(token) = request.get_header("x-auth-token") {
            return self
                .sessions
                .iter()
                .find(|s| s.token == token)
                .map(|s| Caller::Account(s.account))
                .ok_or_else(|| self.unauthorized());
        }
        let Some((user, password)) = request.get_header("authorization").and_then(basic_user) else {
            return Err(self.unauthorized());
        };
        self.check_password(&user, &password, request.peer).map(Caller::Account)
    }

    fn login(&mut self, request: &LabRequest) -> LabResponse {
        let Ok(body) = serde_json::from_slice::<Value>(&request.body) else {
            return self.malformed();
        };
        let user = body.get("UserName").and_then(Value::as_str).unwrap_or("").to_owned();
        let password = body.get("Password").and_then(Value::as_str).unwrap_or("").to_owned();
        let id = match self.check_password(&user, &password, request.peer) {
            Ok(id) => id,
            Err(response) => return response,
        };
        if self.sessions_exhausted || self.sessions.len() >= self.profile.max_sessions {
            let (status, id) = self.profile.session_limit;
            return error(
                status,
                "Base.1.18.GeneralError",
                vec![message(
                    id,
                    "The session establishment failed due to the number of simultaneous sessions exceeding the limit of the implementation.",
                    &[],
                    "Critical",
                    "Reduce the number of other sessions before trying to establish the session or increase the limit of simultaneous sessions (if supported).",
                )],
            );
        }
        let session_id = self.next_session;
        self.next_session += 1;
        let digest = Sha256::digest(format!("{:?}{session_id}{}", self.salt, self.clock.now().as_nanos()));
        let token = hex::encode(&digest[..16]);
        self.sessions.push(Session { id: session_id, token: token.clone(), account: id });
        let location = self.slash(format!("/redfish/v1/SessionService/Sessions/{session_id}"));
        let mut body = json!({"@odata.id": location, "@odata.type": "#Session.v1_5_0.Session", "Id": session_id.to_string(),
                              "Name": "User Session", "UserName": user, "Password": null});
        if self.accounts[&id].change_required {
            body["@Message.ExtendedInfo"] = json!([message(
                "Base.1.18.PasswordChangeRequired",
                "The password provided for this account must be changed before access is granted.",
                &[&self.account_uri(id)],
                "Critical",
                "Change the password for this account using a PATCH to the Password property at the URI provided."
            )]);
        }
        LabResponse::json(201, body).with_header("X-Auth-Token", token).with_header("Location", location)
    }

    fn session_resource(&mut self, method: &str, rest: &str) -> LabResponse {
        let Ok(id) = rest.trim_end_matches('/').parse::<u32>() else {
            return self.not_found(rest);
        };
        let Some(index) = self.sessions.iter().position(|s| s.id == id) else {
            return self.not_found(rest);
        };
        match method {
            "GET" => {
                let s = &self.sessions[index];
                let user = self.accounts[&s.account].user.clone();
                LabResponse::json(
                    200,
                    json!({"@odata.id": self.slash(format!("/redfish/v1/SessionService/Sessions/{id}")),
                           "@odata.type": "#Session.v1_5_0.Session", "Name": "User Session",
                           "Id": id.to_string(), "UserName": user, "Password": null}),
                )
            }
            "DELETE" => {
                self.sessions.remove(index);
                match self.profile.logout_status {
                    204 => LabResponse::empty(204),
                    status => LabResponse::json(status, success_message()),
                }
            }
            _ => LabResponse::empty(405),
        }
    }

    // ---- accounts -----------------------------------------------------------------------

    fn account_collection(&mut self, request: &LabRequest, caller: u32) -> LabResponse {
        match request.method.as_str() {
            "GET" => {
                let expand = request.query.contains("$expand");
                let members: Vec<Value> = self
                    .accounts
                    .values()
                    .map(|a| if expand { self.account_json(a) } else { json!({"@odata.id": self.account_uri(a.id)}) })
                    .collect();
                LabResponse::json(
                    200,
                    json!({"@odata.id": self.slash(self.collection().to_owned()),
                    "@odata.type": "#ManagerAccountCollection.ManagerAccountCollection", "Name": "Accounts Collection",
                    "Members@odata.count": members.len(), "Members": members}),
                )
            }
            "POST" => self.create_account(request, caller),
            _ => LabResponse::empty(405),
        }
    }

    fn create_account(&mut self, request: &LabRequest, caller: u32) -> LabResponse {
        if !self.is_admin(caller) {
            return self.insufficient_privilege();
        }
        let Ok(body) = serde_json::from_slice::<Value>(&request.body) else {
            return self.malformed();
        };
        let (Some(user), Some(password)) =
            (body.get("UserName").and_then(Value::as_str), body.get("Password").and_then(Value::as_str))
        else {
            return error(
                400,
                "Base.1.18.GeneralError",
                vec![message(
                    "Base.1.18.PropertyMissing",
                    "The property UserName or Password is a required property and must be included in the request.",
                    &["Password"],
                    "Warning",
                    "Include the property in the request body.",
                )],
            );
        };
        if self.account(user).is_some() {
            return error(
                400,
                "Base.1.18.GeneralError",
                vec![message(
                    "Base.1.18.ResourceAlreadyExists",
                    "The requested resource already exists.",
                    &[],
                    "Critical",
                    "Do not repeat the create operation.",
                )],
            );
        }
        if let Err(v) = policy::check(&self.profile.policy, user, password) {
            return self.policy_error(v, password);
        }
        let role = body.get("RoleId").and_then(Value::as_str).unwrap_or("ReadOnly").to_owned();
        let Some(id) = self.add_account(user, password, &role) else {
            return error(
                400,
                "Base.1.18.GeneralError",
                vec![message(
                    "Base.1.18.CreateLimitReachedForResource",
                    "The create operation failed because the resource has reached the limit of possible resources.",
                    &[],
                    "Critical",
                    "Delete an account first.",
                )],
            );
        };
        if let Some(enabled) = body.get("Enabled").and_then(Value::as_bool) {
            self.accounts.get_mut(&id).expect("just added").enabled = enabled;
        }
        let uri = self.account_uri(id);
        LabResponse::json(201, self.account_json(&self.accounts[&id])).with_header("Location", uri)
    }

    fn account_resource(&mut self, request: &LabRequest, caller: u32, id: &str) -> LabResponse {
        let Some(id) = id.trim_end_matches('/').parse::<u32>().ok().filter(|id| self.accounts.contains_key(id)) else {
            return self.not_found(&request.path);
        };
        let change_required = self.accounts[&caller].change_required;
        match request.method.as_str() {
            "GET" if request.get_header("if-none-match") == Some(self.etag(&self.accounts[&id]).as_str()) => {
                LabResponse::empty(304).with_header("ETag", self.etag(&self.accounts[&id]))
            }
            "GET" => {
                let account = &self.accounts[&id];
                LabResponse::json(200, self.account_json(account))
                    .with_header("ETag", self.etag(account))
                    .with_header("Allow", "GET, HEAD, PATCH, DELETE")
            }
            "PATCH" => {
                if change_required && caller != id {
                    return self.change_required_error(caller);
                }
                // Changing another account takes ConfigureUsers (Administrator); one's own
                // password only ConfigureSelf.
                if caller != id && !self.is_admin(caller) {
                    return self.insufficient_privilege();
                }
                self.patch_account(request, caller, id)
            }
            "DELETE" if !self.is_admin(caller) => self.insufficient_privilege(),
            "DELETE" => {
                let slots = matches!(self.profile.account_ids, AccountIds::Slots(_));
                if slots {
                    let fresh = self.empty_slot(id);
                    self.accounts.insert(id, fresh);
                } else {
                    self.accounts.remove(&id);
                }
                self.sessions.retain(|s| s.account != id);
                LabResponse::json(200, success_message())
            }
            _ => LabResponse::empty(405),
        }
    }

    fn check_if_match(&self, request: &LabRequest, account: &Account) -> Result<(), LabResponse> {
        let current = self.etag(account);
        match request.get_header("if-match") {
            None if self.profile.if_match == IfMatchRule::Required => Err(error(
                428,
                "Base.1.18.GeneralError",
                vec![message(
                    "Base.1.18.PreconditionRequired",
                    "A precondition header or annotation is required to change this resource.",
                    &[],
                    "Critical",
                    "Try the request again with an If-Match header.",
                )],
            )),
            None => Ok(()),
            Some("*") => Ok(()),
            Some(tag) if tag.split(',').any(|t| t.trim() == current || t.trim_start() == current) => Ok(()),
            Some(_) => Err(stale_etag()),
        }
    }

    fn policy_error(&self, violation: Violation, password: &str) -> LabResponse {
        let registry = self.profile.registry;
        let (id, text, args): (String, String, Vec<String>) = match (self.profile.persona.vendor(), &violation) {
            (Vendor::Hpe, Violation::Length { min, max }) => (
                format!("{registry}.InvalidPasswordLength"),
                format!("A valid password must contain between {min} to {max} characters."),
                vec![min.to_string(), max.to_string()],
            ),
            (Vendor::Hpe, Violation::Complexity(_)) => (
                format!("{registry}.InvalidPasswordComplexity"),
                "A valid password must contain three of the following: uppercase, lowercase, numerals, and other."
                    .into(),
                vec![],
            ),
            // Dell and Lenovo publish no policy MessageIds (reference §7 q1, q5): the personas use
            // the Base registry's PropertyValueFormatError, which quotes the rejected value as
            // MessageArgs[0] the way the Base registry defines it, and a vendor-style text.
            (_, v) => (
                "Base.1.18.PropertyValueFormatError".into(),
                format!(
                    "The value for the property Password is not a format that the property can accept: {}.",
                    describe(v)
                ),
                vec![password.to_owned(), "Password".into()],
            ),
        };
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        error(
            400,
            "Base.1.18.GeneralError",
            vec![message(&id, &text, &args, "Warning", "Choose a password that meets the password policy.")],
        )
    }

    fn patch_account(&mut self, request: &LabRequest, caller: u32, id: u32) -> LabResponse {
        if let Err(response) = self.check_if_match(request, &self.accounts[&id]) {
            return response;
        }
        let Ok(Value::Object(body)) = serde_json::from_slice::<Value>(&request.body) else {
            return self.malformed();
        };
        const KNOWN: &[&str] =
            &["Password", "UserName", "RoleId", "Enabled", "Locked", "PasswordChangeRequired", "Oem", "AccountTypes"];
        if let Some(unknown) = body.keys().find(|k| !KNOWN.contains(&k.as_str()) && !k.starts_with("@odata.")) {
            return error(
                400,
                "Base.1.18.GeneralError",
                vec![message(
                    "Base.1.18.PropertyUnknown",
                    &format!("The property {unknown} is not in the list of valid properties for the resource."),
                    &[unknown],
                    "Warning",
                    "Remove the unknown property from the request body and resubmit the request if the operation failed.",
                )],
            );
        }
        if body.keys().all(|k| k.starts_with("@odata.")) {
            return error(
                400,
                "Base.1.18.GeneralError",
                vec![message(
                    "Base.1.18.NoOperation",
                    "The request body submitted contain no data to act upon and no changes to the resource took place.",
                    &[],
                    "Warning",
                    "Add properties in the JSON object and resubmit the request.",
                )],
            );
        }
        let now = self.clock.now();
        let new_user = body.get("UserName").and_then(Value::as_str).map(str::to_owned);
        if let Some(password) = body.get("Password").and_then(Value::as_str) {
            let account = &self.accounts[&id];
            if account.dell_default_password {
                return error(
                    400,
                    "Base.1.12.GeneralError",
                    vec![message(
                        "IDRAC.2.9.SWC1908",
                        "Unable to complete the operation because the default password is still in use and must be changed.",
                        &[],
                        "Critical",
                        "Change the password using the DellAttributes resource and retry the operation.",
                    )],
                );
            }
            let user = new_user.clone().unwrap_or_else(|| account.user.clone());
            if let Err(v) = self.check_history(account, password, now) {
                return self.policy_error(v, password);
            }
            if let Err(v) = policy::check(&self.profile.policy, &user, password) {
                return self.policy_error(v, password);
            }
        }
        // Every check passed: apply.
        let hash = body.get("Password").and_then(Value::as_str).map(|p| PasswordHash::of(&self.salt, p));
        let reuse = self.profile.policy.reuse_cycle as usize;
        let ends_sessions = self.profile.password_change_ends_sessions;
        let dell = self.profile.persona.vendor() == Vendor::Dell;
        let account = self.accounts.get_mut(&id).expect("checked above");
        if let Some(user) = new_user {
            account.user = user;
        }
        if let Some(role) = body.get("RoleId").and_then(Value::as_str) {
            account.role = role.into();
        }
        if let Some(enabled) = body.get("Enabled").and_then(Value::as_bool) {
            account.enabled = enabled;
        }
        if body.get("Locked").and_then(Value::as_bool) == Some(false) {
            account.locked_until = None;
            account.failures = 0;
        }
        // iDRAC accepts but does not honour PasswordChangeRequired on PATCH (reference §3.3,
        // dell/iDRAC-Redfish-Scripting#342).
        if let Some(flag) = body.get("PasswordChangeRequired").and_then(Value::as_bool).filter(|_| !dell) {
            account.change_required = flag;
        }
        let mut changed_password = false;
        if let Some(hash) = hash {
            if let Some(old) = account.password.take() {
                account.history.push_front(old);
                account.history.truncate(reuse.max(1));
            }
            account.password = Some(hash);
            account.changed_at = Some(now);
            account.change_required = false;
            changed_password = true;
        }
        if account.user.is_empty() {
            account.enabled = false;
            account.password = None;
        }
        account.version += 1;
        if changed_password && ends_sessions {
            // Tokens of the account die with its password (iDRAC documents it; the others are
            // modelled the same way so plugins re-authenticate).
            self.sessions.retain(|s| s.account != id);
        }
        let _ = caller;
        let account = &self.accounts[&id];
        match self.profile.success {
            SuccessShape::Dell => LabResponse::json(
                200,
                json!({"@Message.ExtendedInfo": [message("Base.1.18.Success",
                "The request completed successfully.", &[], "OK", "None")]}),
            ),
            SuccessShape::HpeEnvelope => LabResponse::json(
                200,
                json!({"error": {"code": "iLO.0.10.ExtendedInfo",
                "message": "See @Message.ExtendedInfo for more information.",
                "@Message.ExtendedInfo": [{"MessageId": "Base.1.17.AccountModified"}]}}),
            ),
            SuccessShape::Resource => {
                LabResponse::json(200, self.account_json(account)).with_header("ETag", self.etag(account))
            }
        }
    }

    fn check_history(&self, account: &Account, password: &str, now: Duration) -> Result<(), Violation> {
        let rules = &self.profile.policy;
        if rules.reuse_cycle > 0 {
            let hash = PasswordHash::of(&self.salt, password);
            let current = account.password.iter();
            if current.chain(account.history.iter()).take(rules.reuse_cycle as usize).any(|h| *h == hash) {
                return Err(Violation::Reused(rules.reuse_cycle));
            }
        }
        let interval = self.profile.min_change_interval();
        if !interval.is_zero() && account.changed_at.is_some_and(|t| now.saturating_sub(t) < interval) {
            return Err(Violation::TooSoon(rules.min_change_interval_hours));
        }
        Ok(())
    }

    fn dell_attributes(&mut self, request: &LabRequest, _caller: u32) -> LabResponse {
        let Ok(body) = serde_json::from_slice::<Value>(&request.body) else {
            return self.malformed();
        };
        let Some(password) = body.pointer("/Attributes/Users.2.Password").and_then(Value::as_str) else {
            return error(
                400,
                "Base.1.12.GeneralError",
                vec![message(
                    "Base.1.12.PropertyMissing",
                    "The property Attributes/Users.2.Password is a required property.",
                    &["Users.2.Password"],
                    "Warning",
                    "Include it.",
                )],
            );
        };
        let account = &self.accounts[&2];
        let user = account.user.clone();
        if let Err(v) = policy::check(&self.profile.policy, &user, password) {
            return self.policy_error(v, password);
        }
        let hash = PasswordHash::of(&self.salt, password);
        let account = self.accounts.get_mut(&2).expect("slot 2 exists");
        account.password = Some(hash);
        account.dell_default_password = false;
        account.version += 1;
        self.sessions.retain(|s| s.account != 2);
        LabResponse::json(
            200,
            json!({"@Message.ExtendedInfo": [message("Base.1.12.Success", "Successfully Completed Request", &[], "OK", "None")]}),
        )
    }
}

fn success_message() -> Value {
    json!({"@Message.ExtendedInfo": [message("Base.1.18.Success", "The request completed successfully.", &[], "OK", "None")]})
}

/// 500 `InternalError` (a fault; nothing applied).
pub fn internal_error() -> LabResponse {
    error(
        500,
        "Base.1.18.GeneralError",
        vec![message(
            "Base.1.18.InternalError",
            "The request failed due to an internal service error.  The service is still operational.",
            &[],
            "Critical",
            "Resubmit the request.  If the problem persists, consider resetting the service.",
        )],
    )
}

/// 412 `PreconditionFailed`: a stale tag, or (as a fault) a current one refused anyway.
pub fn stale_etag() -> LabResponse {
    error(
        412,
        "Base.1.18.GeneralError",
        vec![message(
            "Base.1.18.PreconditionFailed",
            "The ETag supplied did not match the ETag required to change this resource.",
            &[],
            "Critical",
            "Try the operation again using the appropriate ETag.",
        )],
    )
}

fn describe(v: &Violation) -> String {
    match v {
        Violation::Length { min, max } => format!("it must have {min} to {max} characters"),
        Violation::Complexity(rule) => format!("it must contain {rule}"),
        Violation::Repeats(n) => format!("no character may repeat more than {n} times in a row"),
        Violation::ContainsUserName => "it must not contain the user name, forward or reversed".into(),
        Violation::Reused(n) => format!("it was used within the last {n} passwords"),
        Violation::TooSoon(h) => format!("the password was changed less than {h} hours ago"),
    }
}

/// The methods a resource supports, for `Allow`.
fn allowed_methods(path: &str) -> &'static str {
    if path.contains("/Accounts/") && !path.ends_with("/Accounts") {
        "GET, HEAD, PATCH, DELETE"
    } else if path.ends_with("/Accounts") || path.ends_with("/Sessions") {
        "GET, HEAD, POST"
    } else if path.contains("/Sessions/") {
        "GET, HEAD, DELETE"
    } else if path.ends_with("/AccountService") {
        "GET, HEAD, PATCH"
    } else {
        "GET, HEAD"
    }
}

/// A minimal OData CSDL document naming the entity container (enough for clients that read it).
fn metadata_document() -> LabResponse {
    let xml = r#"<?xml version="1.0" encoding="UTF-8"?>
<edmx:Edmx xmlns:edmx="http://docs.oasis-open.org/odata/ns/edmx" Version="4.0">
  <edmx:Reference Uri="http://redfish.dmtf.org/schemas/v1/ServiceRoot_v1.xml">
    <edmx:Include Namespace="ServiceRoot"/>
    <edmx:Include Namespace="ServiceRoot.v1_16_0"/>
  </edmx:Reference>
  <edmx:Reference Uri="http://redfish.dmtf.org/schemas/v1/AccountService_v1.xml">
    <edmx:Include Namespace="AccountService"/>
  </edmx:Reference>
  <edmx:Reference Uri="http://redfish.dmtf.org/schemas/v1/ManagerAccount_v1.xml">
    <edmx:Include Namespace="ManagerAccount"/>
  </edmx:Reference>
  <edmx:Reference Uri="http://redfish.dmtf.org/schemas/v1/SessionService_v1.xml">
    <edmx:Include Namespace="SessionService"/>
  </edmx:Reference>
  <edmx:DataServices>
    <Schema xmlns="http://docs.oasis-open.org/odata/ns/edm" Namespace="Service">
      <EntityContainer Name="Service" Extends="ServiceRoot.v1_16_0.ServiceContainer"/>
    </Schema>
  </edmx:DataServices>
</edmx:Edmx>
"#;
    let mut response = LabResponse::json(200, Value::Null);
    response.text = Some(("application/xml;charset=utf-8", xml.to_owned()));
    response
}

fn basic_user(header: &str) -> Option<(String, String)> {
    let token = header.strip_prefix("Basic ").or_else(|| header.strip_prefix("basic "))?;
    let decoded = String::from_utf8(unbase64(token)?).ok()?;
    let (user, password) = decoded.split_once(':')?;
    Some((user.to_owned(), password.to_owned()))
}

//! One simulated BMC: accounts, sessions, failed-login handling and the Redfish resources, as a
//! plain state machine. [`Bmc::handle`] takes a request and returns the answer; the HTTP layer
//! (`server.rs`) only moves bytes, so every rule is tested without sockets
//! (`tests/persona_rules.rs`).
//!
//! The state lives here, with the dispatcher that routes a request to the code for its Redfish
//! concern (DSP0266 is the DMTF Redfish specification):
//!
//! - `wire`: [`LabRequest`] and [`LabResponse`], the headers every answer carries, ETags and
//!   `If-Match`, and the Redfish error envelope with its Base-registry messages.
//! - `auth`: HTTP Basic and sessions (`SessionService`), failed-login handling (address blocking,
//!   delays, lockouts), privilege checks and the `PasswordChangeRequired` gate.
//! - `accounts`: `AccountService`, accounts and roles, and password changes under the persona's
//!   policy.
//! - `service`: the version document, the service root, the OData service document,
//!   `$metadata` and the managers.
//! - `platform`: the read-only resources the service root links besides (systems, chassis,
//!   update, task and event services, registries, schemas, `NetworkProtocol`, iLO's
//!   `ResourceDirectory`).
//! - `dell`: Dell OEM: iDRAC's `DellAttributes` and its forced default-password change.
//! - `snmp`: each account's SNMPv3 settings as each vendor shows them (iLO's SNMPv3 users with
//!   passphrases of their own).
//! - `persist`: the accounts saved and restored across a lab's restart.

mod accounts;
mod auth;
mod dell;
mod persist;
mod platform;
mod service;
mod snmp;
mod wire;

pub use accounts::{Account, PasswordHash};
pub use persist::BmcSnapshot;
pub use snmp::{SnmpAuth, SnmpPrivacy, SnmpSetting, SnmpV3};
pub use wire::{LabRequest, LabResponse, internal_error, not_found, stale_etag};

use crate::clock::LabClock;
use crate::persona::{AccountIds, Profile, Vendor};
use auth::{AddressRecord, Caller, Session, basic_user};
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::net::IpAddr;
use wire::{method_not_allowed, standard_headers, unsupported_odata_version};

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
        match (bmc.profile.account_ids, bmc.profile.persona.vendor()) {
            (AccountIds::Variable, Vendor::Hpe) => bmc.next_account = id.max(1) + 11, // 1, 12, 13...
            (AccountIds::Variable, _) => bmc.next_account = id + 1,
            (AccountIds::Slots(_), _) => {}
        }
        bmc
    }

    /// The persona profile.
    pub fn profile(&self) -> &Profile {
        &self.profile
    }

    /// The lab clock.
    pub fn clock(&self) -> &LabClock {
        &self.clock
    }

    /// The request log (oldest first; bounded).
    pub fn requests(&self) -> Vec<LoggedRequest> {
        self.log.iter().cloned().collect()
    }

    // ---- the request path ---------------------------------------------------------------

    /// Answers one request.
    pub fn handle(&mut self, request: &LabRequest) -> LabResponse {
        let response = match request.get_header("odata-version") {
            Some(v) if v.trim() != "4.0" => unsupported_odata_version(v),
            _ if request.method == "HEAD" => {
                let mut get = request.clone();
                get.method = "GET".into();
                self.route(&get)
            }
            _ => self.route(request),
        };
        let mut response = standard_headers(request, self.in_dialect(request, response));
        if response.text.is_none() && !response.body.is_null() {
            response.headers.push(("Content-Type".into(), self.profile.json_media_type.into()));
        }
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

    /// The dispatcher: the unauthenticated documents and login first, then authentication and
    /// the `PasswordChangeRequired` gate, then the resources.
    fn route(&mut self, request: &LabRequest) -> LabResponse {
        self.base = self.profile.account_collections[0];
        let path = request.path.trim_end_matches('/');
        // `POST .../Members` creates in the collection, as DSP0266 allows.
        let path = if request.method == "POST" { path.strip_suffix("/Members").unwrap_or(path) } else { path };
        let method = request.method.as_str();
        match (method, path) {
            ("GET", "/redfish") => return service::versions(),
            ("GET", "/redfish/v1") => return self.service_root(),
            ("GET", "/redfish/v1/odata") => return service::odata_service_document(),
            ("GET", "/redfish/v1/$metadata") => return service::metadata_document(),
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
            return self.session_resource(request, rest);
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
        if let Some(response) = self.hpe_snmp(request, path, caller_id) {
            return response;
        }
        if let Some(body) = self.platform_resource(path) {
            return if method == "GET" { LabResponse::json(200, body) } else { method_not_allowed(path) };
        }
        match (method, path) {
            ("GET", "/redfish/v1/ResourceDirectory") if self.profile.persona.vendor() == Vendor::Hpe => {
                LabResponse::json(200, self.resource_directory())
            }
            (
                m,
                "/redfish"
                | "/redfish/v1"
                | "/redfish/v1/odata"
                | "/redfish/v1/$metadata"
                | "/redfish/v1/SessionService"
                | "/redfish/v1/Managers"
                | "/redfish/v1/AccountService/Roles",
            ) if m != "GET" => method_not_allowed(path),
            ("GET", "/redfish/v1/AccountService/Roles") => self.role_collection(),
            ("GET", p) if p.starts_with("/redfish/v1/AccountService/Roles/") => self.role(p),
            ("GET", "/redfish/v1/SessionService") => self.session_service(),
            ("GET", "/redfish/v1/SessionService/Sessions") => self.session_collection(),
            ("GET", "/redfish/v1/AccountService") => self.account_service(),
            ("PATCH", "/redfish/v1/AccountService") if !self.is_admin(caller_id) => self.insufficient_privilege(),
            ("PATCH", "/redfish/v1/AccountService") => self.patch_account_service(request),
            ("GET", "/redfish/v1/Managers") => self.manager_collection(),
            ("GET", p) if p == format!("/redfish/v1/Managers/{}", self.profile.manager_id) => self.manager(request),
            ("GET", dell::DELL_ATTRIBUTES) if self.profile.persona.vendor() == Vendor::Dell => {
                self.dell_attributes_get()
            }
            ("PATCH", dell::DELL_ATTRIBUTES) if self.profile.persona.vendor() == Vendor::Dell => {
                self.dell_attributes(request, caller_id)
            }
            _ => not_found(&request.path),
        }
    }
}

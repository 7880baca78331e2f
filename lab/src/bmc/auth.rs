//! Who is calling, and what they may do: HTTP Basic and session authentication, the
//! `SessionService` (login, the session collection, logout), failed-login handling the vendor's
//! way, privilege checks, and the `PasswordChangeRequired` gate.
//!
//! Failed logins are where the personas differ most: iDRAC blocks the client address, iLO 5
//! delays the answer, iLO 6 and XCC lock the account (`FailedLogins` in the persona). Every path
//! that checks a password goes through [`Bmc::check_password`], so Basic and session logins count
//! alike. Authentication comes before preconditions and resource checks, as DSP0266 orders them.

use super::Bmc;
use super::accounts::PasswordHash;
use super::wire::{LabRequest, LabResponse, error, malformed, message, not_found, success_message, unbase64};
use crate::persona::{FailedLogins, Vendor};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use std::collections::VecDeque;
use std::net::IpAddr;
use std::time::Duration;

/// An open session: its `X-Auth-Token` and the account it acts for.
#[derive(Clone, Debug)]
pub(super) struct Session {
    /// The id in its URI: the number on most BMCs; on iLO the user name and 24 hex digits
    /// (`admin0000000063bc4f87659ddce4`, HPE's "Managing iLO sessions").
    pub(super) name: String,
    pub(super) token: String,
    pub(super) account: u32,
}

/// Recent failed logins from one client address (the persona blocks addresses, not accounts).
#[derive(Clone, Debug, Default)]
pub(super) struct AddressRecord {
    failures: VecDeque<Duration>,
    blocked_until: Option<Duration>,
}

/// The authenticated caller of a request.
pub(super) enum Caller {
    Account(u32),
}

/// The user name and password of an `Authorization: Basic` header.
pub(super) fn basic_user(header: &str) -> Option<(String, String)> {
    let token = header.strip_prefix("Basic ").or_else(|| header.strip_prefix("basic "))?;
    let decoded = String::from_utf8(unbase64(token)?).ok()?;
    let (user, password) = decoded.split_once(':')?;
    Some((user.to_owned(), password.to_owned()))
}

impl Bmc {
    /// Open sessions.
    pub fn session_count(&self) -> usize {
        self.sessions.len()
    }

    /// Whether an address is blocked now (iDRAC).
    pub fn is_blocked(&self, peer: IpAddr) -> bool {
        self.addresses.get(&peer).and_then(|r| r.blocked_until).is_some_and(|t| t > self.clock.now())
    }

    pub(super) fn is_admin(&self, id: u32) -> bool {
        self.accounts.get(&id).is_some_and(|a| a.role == "Administrator")
    }

    pub(super) fn insufficient_privilege(&self) -> LabResponse {
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

    /// 401 with the persona's MessageId, worded as its registry words it: `AccessDenied` names
    /// the URI the client tried (Base registry `%1`), `NoValidSession` takes no argument.
    fn unauthorized(&self, uri: &str) -> LabResponse {
        let id = self.profile.unauthorized;
        let (text, args, resolution): (String, Vec<&str>, &str) = match id.rsplit('.').next().unwrap_or("") {
            "AccessDenied" => (
                format!("While attempting to establish a connection to '{uri}', the service denied access."),
                vec![uri],
                "Attempt to ensure that the URI is correct and that the service has the appropriate credentials.",
            ),
            "NoValidSession" => (
                "There is no valid session established with the implementation.".into(),
                vec![],
                "Establish a session before attempting any operations.",
            ),
            _ => (
                "The login was not successful, because the supplied credentials could not be authenticated.".into(),
                vec![],
                "Verify the login credentials.",
            ),
        };
        error(401, "Base.1.18.GeneralError", vec![message(id, &text, &args, "Critical", resolution)])
            .with_header("WWW-Authenticate", "Basic realm=\"RedfishService\"")
    }

    /// 403 `PasswordChangeRequired`, naming the account URI to PATCH in `MessageArgs[0]`.
    pub(super) fn change_required_error(&self, id: u32) -> LabResponse {
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
    fn check_password(&mut self, user: &str, password: &str, request: &LabRequest) -> Result<u32, LabResponse> {
        let (now, peer) = (self.clock.now(), request.peer);
        if self.is_blocked(peer) {
            return Err(self.unauthorized(&request.path));
        }
        let hash = PasswordHash::of(&self.salt, password);
        let Some(account) = self.accounts.values_mut().find(|a| a.user == user && !user.is_empty()) else {
            return Err(self.record_failure(None, request, now));
        };
        if account.locked_until.is_some_and(|t| t > now) {
            // Locked accounts refuse even the right password (XCC, iLO 6).
            return Err(self.unauthorized(&request.path));
        }
        if !account.enabled || account.password.as_ref() != Some(&hash) {
            let id = account.id;
            return Err(self.record_failure(Some(id), request, now));
        }
        account.failures = 0;
        account.locked_until = None;
        Ok(account.id)
    }

    fn record_failure(&mut self, account: Option<u32>, request: &LabRequest, now: Duration) -> LabResponse {
        let mut response = self.unauthorized(&request.path);
        match self.profile.failed_logins {
            FailedLogins::BlockAddress { threshold, window, penalty } => {
                let record = self.addresses.entry(request.peer).or_default();
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

    /// The caller of a request: a session token, or Basic credentials (checked and counted).
    pub(super) fn authenticate(&mut self, request: &LabRequest) -> Result<Caller, LabResponse> {
        if let Some(token) = request.get_header("x-auth-token") {
            return self
                .sessions
                .iter()
                .find(|s| s.token == token)
                .map(|s| Caller::Account(s.account))
                .ok_or_else(|| self.unauthorized(&request.path));
        }
        let Some((user, password)) = request.get_header("authorization").and_then(basic_user) else {
            return Err(self.unauthorized(&request.path));
        };
        self.check_password(&user, &password, request).map(Caller::Account)
    }

    /// `POST /redfish/v1/SessionService/Sessions`: 201 with `X-Auth-Token` and `Location`.
    pub(super) fn login(&mut self, request: &LabRequest) -> LabResponse {
        let Ok(body) = serde_json::from_slice::<Value>(&request.body) else {
            return malformed();
        };
        let user = body.get("UserName").and_then(Value::as_str).unwrap_or("").to_owned();
        let password = body.get("Password").and_then(Value::as_str).unwrap_or("").to_owned();
        let id = match self.check_password(&user, &password, request) {
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
        let name = match self.profile.persona.vendor() {
            Vendor::Hpe => {
                let digest = Sha256::digest(format!("{:?}{session_id}name", self.salt));
                format!("{user}{}", hex::encode(&digest[..12]))
            }
            _ => session_id.to_string(),
        };
        self.sessions.push(Session { name: name.clone(), token: token.clone(), account: id });
        let location = self.slash(format!("/redfish/v1/SessionService/Sessions/{name}"));
        // iLO answers with an absolute Location (HPE's documented example:
        // `https://{ip}/redfish/v1/SessionService/Sessions/{id}/`); the others with a path.
        let header = match (self.profile.persona.vendor(), request.get_header("host")) {
            (Vendor::Hpe, Some(host)) => format!("https://{host}{location}"),
            _ => location.clone(),
        };
        let mut body = json!({"@odata.id": location, "@odata.type": "#Session.v1_5_0.Session", "Id": name,
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
        LabResponse::json(201, body).with_header("X-Auth-Token", token).with_header("Location", header)
    }

    /// `/redfish/v1/SessionService`.
    pub(super) fn session_service(&self) -> LabResponse {
        LabResponse::json(
            200,
            json!({"@odata.id": "/redfish/v1/SessionService", "@odata.type": "#SessionService.v1_1_8.SessionService", "Id": "SessionService", "Name": "Session Service", "ServiceEnabled": true, "SessionTimeout": 1800,
                   "Sessions": {"@odata.id": self.slash("/redfish/v1/SessionService/Sessions".into())}}),
        )
    }

    /// `GET /redfish/v1/SessionService/Sessions`.
    pub(super) fn session_collection(&self) -> LabResponse {
        let members: Vec<Value> = self
            .sessions
            .iter()
            .map(|s| json!({"@odata.id": self.slash(format!("/redfish/v1/SessionService/Sessions/{}", s.name))}))
            .collect();
        LabResponse::json(
            200,
            json!({"@odata.id": self.slash("/redfish/v1/SessionService/Sessions".into()),
            "@odata.type": "#SessionCollection.SessionCollection", "Name": "Session Collection",
            "Members@odata.count": members.len(), "Members": members}),
        )
    }

    /// One session: `GET` it, or `DELETE` it to log out (the persona's logout status).
    pub(super) fn session_resource(&mut self, request: &LabRequest, rest: &str) -> LabResponse {
        let method = request.method.as_str();
        let name = rest.trim_end_matches('/');
        let Some(index) = self.sessions.iter().position(|s| s.name == name) else {
            return not_found(&request.path);
        };
        match method {
            "GET" => {
                let s = &self.sessions[index];
                let user = self.accounts[&s.account].user.clone();
                LabResponse::json(
                    200,
                    json!({"@odata.id": self.slash(format!("/redfish/v1/SessionService/Sessions/{name}")),
                           "@odata.type": "#Session.v1_5_0.Session", "Name": "User Session",
                           "Id": name, "UserName": user, "Password": null}),
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
}

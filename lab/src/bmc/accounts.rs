//! The `AccountService`: its accounts (slots or variable ids, one or two collections), roles, the
//! password-policy settings it exposes, and password changes checked against the persona's policy
//! (length, complexity, reuse cycle, minimum change interval) with the vendor's refusal messages.
//!
//! A password change is checked completely before anything is applied, so a refused PATCH leaves
//! the account exactly as it was; an applied one bumps the account's version, which moves its
//! ETag (the end of this module). The lab keeps salted hashes only, never a plaintext password.

use super::Bmc;
use super::snmp::{SnmpSetting, SnmpV3};
use super::wire::{LabRequest, LabResponse, error, malformed, message, not_found, stale_etag, success_message};
use crate::persona::{
    AccountIds, Complexity, EtagStyle, FailedLogins, IfMatchRule, Persona, PolicyRules, SuccessShape, Vendor,
};
use crate::policy::{self, Violation};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use std::collections::VecDeque;
use std::time::Duration;

/// A salted password hash (the lab never keeps plaintext).
#[derive(Clone, PartialEq, Eq)]
pub struct PasswordHash(pub(super) [u8; 32]);

impl PasswordHash {
    pub(super) fn of(salt: &[u8; 16], password: &str) -> Self {
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
    /// HPE's `Oem.Hpe.LoginName`: a free-text description, the user name unless edited.
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
    /// Its SNMPv3 settings.
    pub snmp: SnmpV3,
}

impl Bmc {
    pub(super) fn empty_slot(&self, id: u32) -> Account {
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
            snmp: SnmpV3::new(SnmpSetting::Off, &self.salt, ""),
        }
    }

    /// Creates or replaces the account `id` (test and fleet set-up).
    pub fn put_account(&mut self, id: u32, user: &str, password: &str, role: &str) {
        let hash = PasswordHash::of(&self.salt, password);
        let account = Account {
            user: user.into(),
            // iLO fills the GUI's free-text "Login Name" with the user name until someone edits it.
            login_name: user.into(),
            password: Some(hash),
            role: role.into(),
            enabled: true,
            snmp: SnmpV3::new(SnmpSetting::Ok, &self.salt, password),
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

    /// The password rules, for set-up (the way an administrator changes them on the BMC).
    pub fn policy_mut(&mut self) -> &mut PolicyRules {
        &mut self.profile.policy
    }

    /// The failed-login handling, for set-up (iLO's delay settings are an administrator's too).
    pub fn failed_logins_mut(&mut self) -> &mut FailedLogins {
        &mut self.profile.failed_logins
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

    // ---- URIs and representations -----------------------------------------------------

    /// The account collection the current request addressed.
    fn collection(&self) -> &'static str {
        self.base
    }

    pub(super) fn account_uri(&self, id: u32) -> String {
        self.slash(format!("{}/{id}", self.collection()))
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
            body["Oem"] = json!({ self.profile.oem: {"LoginName": account.login_name, "Privileges": hpe_privileges(&account.role)} });
        }
        self.account_snmp_json(account, &mut body);
        body
    }

    // ---- AccountService and roles -------------------------------------------------------

    /// `GET /redfish/v1/AccountService`, with the vendor's OEM policy properties.
    pub(super) fn account_service(&self) -> LabResponse {
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
                    "EnforcePasswordComplexity": p.policy.complexity != Complexity::None,
                    "AuthFailureLoggingThreshold": 3,
                    "AuthFailuresBeforeDelay": match p.failed_logins { FailedLogins::Delay { after, .. } => after, _ => 0 },
                    "AuthFailureDelayTimeSeconds": match p.failed_logins { FailedLogins::Delay { delay, .. } => delay.as_secs(), _ => 0 }}})
            }
            Vendor::Lenovo => {
                body["Oem"] = json!({"Lenovo": {"MinimumPasswordReuseCycle": p.policy.reuse_cycle,
                    "MinimumPasswordChangeIntervalHours": p.policy.min_change_interval_hours,
                    "ComplexPassword": p.policy.complexity != Complexity::None,
                    "PasswordChangeOnFirstAccess": false, "PasswordLength": p.policy.min_length}})
            }
            Vendor::Dell | Vendor::Generic => {}
        }
        // iLO 7 implements AccountService 1.15 and says whether Basic authentication is on (HPE's
        // iLO 7 resource definitions); the persona has it on, as iLO 5 and 6 always do.
        if p.persona == Persona::Ilo7 {
            body["@odata.type"] = json!("#AccountService.v1_15_0.AccountService");
            body["HTTPBasicAuth"] = json!("Enabled");
            body["LocalAccountAuth"] = json!("Enabled");
        }
        LabResponse::json(200, body)
    }

    /// The policy settings vendors expose as writable (used by tests and the validator).
    pub(super) fn patch_account_service(&mut self, request: &LabRequest) -> LabResponse {
        let Ok(body) = serde_json::from_slice::<Value>(&request.body) else {
            return malformed();
        };
        if let Some(min) = body.get("MinPasswordLength").and_then(Value::as_u64) {
            self.profile.policy.min_length = min as u32;
        }
        self.patch_hpe_account_service(&body);
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

    /// iLO's writable settings: complexity and the login delay (HPE's AccountService
    /// `Oem.Hpe` properties; also how tests shorten the 10 s delay).
    fn patch_hpe_account_service(&mut self, body: &Value) {
        let Some(hpe) = body.pointer("/Oem/Hpe").filter(|_| self.profile.persona.vendor() == Vendor::Hpe) else {
            return;
        };
        if let Some(min) = hpe.get("MinPasswordLength").and_then(Value::as_u64) {
            self.profile.policy.min_length = min as u32;
        }
        if let Some(on) = hpe.get("EnforcePasswordComplexity").and_then(Value::as_bool) {
            self.profile.policy.complexity = if on { Complexity::ThreeOfFour } else { Complexity::None };
        }
        if let FailedLogins::Delay { after, delay } = &mut self.profile.failed_logins {
            if let Some(n) = hpe.get("AuthFailuresBeforeDelay").and_then(Value::as_u64) {
                *after = n as u32;
            }
            if let Some(secs) = hpe.get("AuthFailureDelayTimeSeconds").and_then(Value::as_u64) {
                *delay = Duration::from_secs(secs);
            }
        }
    }

    /// `GET /redfish/v1/AccountService/Roles`: the three predefined roles.
    pub(super) fn role_collection(&self) -> LabResponse {
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

    /// One predefined role with the privileges DSP0266 assigns it.
    pub(super) fn role(&self, path: &str) -> LabResponse {
        let id = path.rsplit('/').next().unwrap_or("");
        let privileges: &[&str] = match id {
            "Administrator" => &["Login", "ConfigureManager", "ConfigureUsers", "ConfigureSelf", "ConfigureComponents"],
            "Operator" => &["Login", "ConfigureSelf", "ConfigureComponents"],
            "ReadOnly" => &["Login", "ConfigureSelf"],
            _ => return not_found(path),
        };
        LabResponse::json(
            200,
            json!({"@odata.id": self.slash(format!("/redfish/v1/AccountService/Roles/{id}")),
            "@odata.type": "#Role.v1_3_1.Role", "Id": id, "Name": id, "RoleId": id, "IsPredefined": true,
            "AssignedPrivileges": privileges}),
        )
    }

    // ---- the account collection and accounts --------------------------------------------

    pub(super) fn account_collection(&mut self, request: &LabRequest, caller: u32) -> LabResponse {
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
            return malformed();
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

    pub(super) fn account_resource(&mut self, request: &LabRequest, caller: u32, id: &str) -> LabResponse {
        let Some(id) = id.trim_end_matches('/').parse::<u32>().ok().filter(|id| self.accounts.contains_key(id)) else {
            return not_found(&request.path);
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

    // ---- password changes ---------------------------------------------------------------

    /// A password the policy refuses, answered with the vendor's message.
    pub(super) fn policy_error(&self, violation: Violation, password: &str) -> LabResponse {
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
            // The lab knows of no password-policy MessageId that Dell or Lenovo publish: the
            // personas use the Base registry's PropertyValueFormatError, which quotes the rejected
            // value as MessageArgs[0] the way the DMTF Base registry defines it, and a
            // vendor-style text.
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
            return malformed();
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
                return default_password_in_use();
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
        // iDRAC accepts but does not honour PasswordChangeRequired on PATCH (reported publicly
        // in dell/iDRAC-Redfish-Scripting#342).
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
            SuccessShape::Dell => self.dell_patch_success(account),
            SuccessShape::HpeEnvelope => LabResponse::json(
                200,
                json!({"error": {"code": "iLO.0.10.ExtendedInfo",
                "message": "See @Message.ExtendedInfo for more information.",
                "@Message.ExtendedInfo": [{"MessageId": "Base.1.17.AccountModified"}]}}),
            ),
            SuccessShape::Resource => {
                LabResponse::json(200, self.account_json(account)).with_header("ETag", self.etag(account))
            }
            SuccessShape::NoContent => LabResponse::empty(204).with_header("ETag", self.etag(account)),
        }
    }

    /// The reuse cycle and the minimum change interval (the checks that need the account's past).
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
}

/// The iLO privileges a role grants (HPE "User privileges" in the iLO user guide; Administrator
/// holds every one of them, ReadOnly only Login).
fn hpe_privileges(role: &str) -> Value {
    const ALL: [&str; 10] = [
        "HostBIOSConfigPriv",
        "HostNICConfigPriv",
        "HostStorageConfigPriv",
        "LoginPriv",
        "RemoteConsolePriv",
        "SystemRecoveryConfigPriv",
        "UserConfigPriv",
        "VirtualMediaPriv",
        "VirtualPowerAndResetPriv",
        "iLOConfigPriv",
    ];
    let granted = |privilege: &str| match role {
        "Administrator" => true,
        "Operator" => !matches!(privilege, "UserConfigPriv" | "iLOConfigPriv" | "SystemRecoveryConfigPriv"),
        _ => privilege == "LoginPriv",
    };
    Value::Object(ALL.iter().map(|p| ((*p).to_owned(), Value::Bool(granted(p)))).collect())
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

/// 400 `IDRAC.2.9.SWC1908`: the account's password PATCH is refused while the default password
/// is in use.
pub(super) fn default_password_in_use() -> LabResponse {
    error(
        400,
        "Base.1.12.GeneralError",
        vec![message(
            "IDRAC.2.9.SWC1908",
            "Unable to complete the operation because the default password is still in use and must be changed.",
            &[],
            "Critical",
            "Change the password using the DellAttributes resource and retry the operation.",
        )],
    )
}

// ---- ETags ----

impl Bmc {
    /// The account's ETag, in the vendor's format (the same value as its `@odata.etag`).
    pub(super) fn etag(&self, account: &Account) -> String {
        let digest = Sha256::digest(format!("{}:{}:{}", account.id, account.version, self.profile.persona));
        match self.profile.etag {
            EtagStyle::DellWeak => format!("W/\"gen-{}\"", account.version),
            EtagStyle::HpeWeak => format!("W/\"{}\"", hex::encode_upper(&digest[..4])),
            EtagStyle::LenovoQuoted => format!("\"{} \"", hex::encode(&digest[..10])),
            EtagStyle::Strong => format!("\"{}\"", hex::encode(&digest[..8])),
        }
    }

    /// The `If-Match` precondition of a change: required (428 without it) or optional per
    /// persona; `*` or the current tag passes, anything else is stale (412).
    pub(super) fn check_if_match(&self, request: &LabRequest, account: &Account) -> Result<(), LabResponse> {
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
}

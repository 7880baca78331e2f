//! Any BMC that manages accounts the way DMTF's Redfish specification (DSP0266) and schemas say:
//! OpenBMC, Supermicro, Cisco standalone CIMC and the like, bound to it explicitly by a hardware
//! profile (`generic-redfish`) — never chosen for a BMC on its own.
//!
//! It relies on nothing a vendor adds:
//! - the service root (read without credentials) must be Redfish and link an `AccountService`;
//!   a service that is not Redfish, or that has no account service, is `unsupported` before any
//!   credential is sent or, for an `AccountService` that answers 404, before any change;
//! - logins use the `SessionService` the root links (`Links.Sessions`), or HTTP Basic where the
//!   root links none; a refused credential is never retried;
//! - the account is the `ManagerAccount` whose `UserName` matches, in the collection the
//!   `AccountService` links;
//! - the password policy is what `AccountService` publishes (`MinPasswordLength`,
//!   `MaxPasswordLength`), within conservative defaults for what the standard cannot say
//!   (complexity, symbols); `AccountLockoutThreshold` and `AccountLockoutDuration` go to the log
//!   and into the message of a refused login;
//! - the change is `PATCH {"Password": …}` with `If-Match` when the account carried an ETag; a
//!   412 or 428 is answered by re-reading the account once and retrying with its current tag
//!   (`*` if it has none) — never more;
//! - 200 and 204 are success; 202 (a task the service may still run) is `ambiguous`, so the host
//!   checks what the BMC holds; errors are typed from the Base registry's messages.

use bmc_plugin_sdk::prelude::*;
use bmc_plugin_sdk::redfish::{
    AccountSlots, DEFAULT_SESSIONS, SERVICE_ROOT, account_snmp, disable_account, enable_account,
};

/// The generic Redfish plugin.
pub struct GenericRedfish;

/// The one family: the standard itself.
const FAMILY: &str = "Redfish";

/// What the standard does not publish, chosen so that a password the host generates within it
/// suits any service: three classes, symbols that need no quoting in any shell or form, and 20
/// characters at most (IPMI-enabled accounts on many BMCs stop there) unless the service says
/// otherwise.
fn default_policy() -> PasswordPolicy {
    PasswordPolicy {
        min_length: 8,
        max_length: 20,
        min_classes: 3,
        allowed_symbols: "-_.!+=@#%^*".into(),
        ..PasswordPolicy::default()
    }
}

/// The service root, if it is a Redfish one with an account service. A server error is the
/// service's trouble (`protocol`, or `unreachable` for a 503); any other answer that is not a
/// Redfish service root says this is not a Redfish BMC (`unsupported`).
fn identify(bmc: &Bmc) -> Result<ServiceRoot, PluginError> {
    let answer = Redfish::anonymous(bmc).send(Method::Get, SERVICE_ROOT, None, &IfMatch::None)?;
    if answer.status >= 500 {
        return Err(RedfishError::from_response(format!("GET {SERVICE_ROOT}"), &answer).into_plugin_error());
    }
    let body = match answer.json() {
        Ok(body) if answer.is_success() && body.get("RedfishVersion").is_some_and(Value::is_string) => body,
        _ => {
            return Err(PluginError::Unsupported(format!(
                "GET {SERVICE_ROOT} answered HTTP {} without a Redfish service root: not a Redfish BMC; check the \
                 hardware profile",
                answer.status
            )));
        }
    };
    let text = |name: &str| body.get(name).and_then(Value::as_str).unwrap_or("").to_owned();
    let link = |pointer: &str| body.pointer(pointer).and_then(Value::as_str).map(|uri| path_of(uri).to_owned());
    let Some(account_service) = link("/AccountService/@odata.id") else {
        return Err(PluginError::Unsupported(format!(
            "the Redfish service (Vendor `{}`, Product `{}`) links no AccountService: it does not manage accounts \
             over Redfish",
            text("Vendor"),
            text("Product")
        )));
    };
    Ok(ServiceRoot {
        vendor: text("Vendor"),
        product: text("Product"),
        redfish_version: text("RedfishVersion"),
        oem: body.get("Oem").and_then(Value::as_object).map(|o| o.keys().cloned().collect()).unwrap_or_default(),
        sessions: link("/Links/Sessions/@odata.id").unwrap_or_else(|| DEFAULT_SESSIONS.to_owned()),
        account_service,
        body,
    })
}

/// A refused login, with what the standard says failures lead to.
fn refused(e: PluginError) -> PluginError {
    match e {
        PluginError::AuthFailed(m) => PluginError::AuthFailed(format!(
            "{m} (Redfish services lock an account after AccountLockoutThreshold failures: do not retry this \
             credential)"
        )),
        other => other,
    }
}

/// A client for `user`: a session where the root links the session collection, else Basic.
fn connect<'a>(bmc: &'a Bmc, root: &ServiceRoot, user: &str, password: Secret) -> Result<Redfish<'a>, PluginError> {
    if root.body.pointer("/Links/Sessions/@odata.id").is_some() {
        Redfish::login(bmc, &root.sessions, user, &password).map_err(refused)
    } else {
        Ok(Redfish::basic(bmc, user, password))
    }
}

/// Proves a client's credential with one authenticated read (Basic checks nothing until then).
fn prove(client: &Redfish<'_>, root: &ServiceRoot) -> Result<(), PluginError> {
    client.get(&root.account_service).map(drop).map_err(|e| account_service_error(refused(e)))
}

/// A 404 on the linked `AccountService` is a service without account management.
fn account_service_error(e: PluginError) -> PluginError {
    match e {
        PluginError::AccountNotFound(m) => PluginError::Unsupported(format!(
            "{m} (the service root links an AccountService the service does not serve: it does not manage accounts \
             over Redfish)"
        )),
        other => other,
    }
}

/// The path of a link, which some services write as an absolute URL.
fn path_of(uri: &str) -> &str {
    match uri.find("://") {
        Some(i) => uri[i + 3..].find('/').map_or("/", |p| &uri[i + 3 + p..]),
        None => uri,
    }
}

/// The account service and the account named `user`.
fn find(client: &Redfish<'_>, root: &ServiceRoot, user: &str) -> Result<(Resource, Resource), PluginError> {
    let service = client.get(&root.account_service).map_err(|e| account_service_error(refused(e)))?;
    let accounts =
        service.body.pointer("/Accounts/@odata.id").and_then(Value::as_str).ok_or_else(|| {
            PluginError::Unsupported(format!("{} links no Accounts collection", root.account_service))
        })?;
    let account = client.find_account_in(path_of(accounts), user)?;
    Ok((service, account))
}

/// The policy `AccountService` publishes, within the defaults for what it cannot say.
fn live_policy(bmc: &Bmc, service: &Resource) -> PasswordPolicy {
    let mut policy = default_policy();
    let number = |name: &str| service.body.get(name).and_then(Value::as_u64).map(|n| n as u32);
    if let Some(min) = number("MinPasswordLength") {
        policy.min_length = min.max(1);
    }
    if let Some(max) = number("MaxPasswordLength").filter(|max| *max >= policy.min_length) {
        policy.max_length = max;
    }
    match (number("AccountLockoutThreshold"), number("AccountLockoutDuration")) {
        (Some(threshold), duration) if threshold > 0 => bmc.info(format!(
            "the service locks an account after {threshold} failed logins{}",
            duration.map(|s| format!(" for {s} s")).unwrap_or_default()
        )),
        _ => {}
    }
    policy
}

/// The firmware the first manager reports, else the Redfish version of the root.
fn firmware(client: &Redfish<'_>, root: &ServiceRoot) -> String {
    let managers = root.body.pointer("/Managers/@odata.id").and_then(Value::as_str).map(path_of);
    let first = managers
        .and_then(|m| client.get(m).ok())
        .and_then(|c| c.body.pointer("/Members/0/@odata.id").and_then(Value::as_str).map(|u| path_of(u).to_owned()));
    let version = first.and_then(|m| client.get(&m).ok()).and_then(|m| {
        m.body.get("FirmwareVersion").and_then(Value::as_str).filter(|v| !v.is_empty()).map(str::to_owned)
    });
    version.unwrap_or_else(|| format!("Redfish {}", root.redfish_version))
}

/// PATCHes the password, re-reading the account once after a 412 or 428.
fn patch_password(bmc: &Bmc, client: &Redfish<'_>, account: &Resource, new: &Secret) -> Result<(), PluginError> {
    let body = || JsonBody::object().secret("Password", new);
    let mut outcome = client.patch(&account.uri, body(), &IfMatch::from_resource(account, IfMatch::None))?;
    if let Err(e) = &outcome
        && (e.status == 412 || e.status == 428)
    {
        // Stale, or a tag the service requires: one fresh read, one retry, never a loop.
        bmc.warn(format!("{e}; re-reading the account and retrying once"));
        let fresh = client.get(&account.uri)?;
        outcome = client.patch(&account.uri, body(), &IfMatch::from_resource(&fresh, IfMatch::Any))?;
    }
    match outcome.map_err(RedfishError::into_plugin_error)? {
        answer if answer.status == 202 => Err(PluginError::Ambiguous(format!(
            "PATCH {} was accepted as a task (202) that may not have run yet; the password may or may not be changed",
            account.uri
        ))),
        _ => Ok(()),
    }
}

impl VendorPlugin for GenericRedfish {
    /// Plain Redfish, plus onboarding at the standard account collection.
    const CAPABILITIES: &'static str = concat!(
        "GET /redfish/v1/**\n",
        "POST /redfish/v1/SessionService/Sessions\n",
        "DELETE {session}\n",
        "PATCH {account} password=/Password\n",
        "POST /redfish/v1/AccountService/Accounts password=/Password onboard\n",
        "PATCH /redfish/v1/AccountService/Accounts/* password=/Password onboard\n",
    );

    fn info() -> PluginInfo {
        PluginInfo {
            id: "generic-redfish".into(),
            vendor: "DMTF".into(),
            product: "Redfish (DSP0266)".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            families: vec![FAMILY.into()],
            policy: default_policy(),
        }
    }

    fn probe(bmc: &Bmc, target: &Target) -> Result<ProbeResult, PluginError> {
        let root = identify(bmc)?;
        let client = connect(bmc, &root, &target.login_account, bmc.login_password()?)?;
        let result = find(&client, &root, &target.account).map(|(service, account)| ProbeResult {
            family: FAMILY.into(),
            firmware: firmware(&client, &root),
            account_uri: account.uri,
            policy: live_policy(bmc, &service),
        });
        client.logout()?;
        result
    }

    /// Plain Redfish creates accounts by a POST to the account collection (DSP0266, "Creating
    /// accounts"); an existing account is PATCHed and enabled.
    fn enable_account(bmc: &Bmc, target: &Target) -> Result<Onboarded, PluginError> {
        let root = identify(bmc)?;
        let client = connect(bmc, &root, &target.login_account, bmc.login_password()?)?;
        let outcome = client.accounts_of(&root.account_service).map_err(account_service_error).and_then(|accounts| {
            enable_account(&client, &accounts, target, &bmc.new_password()?, AccountSlots::Created)
        });
        let ended = client.logout();
        let outcome = outcome?;
        if let Err(e) = ended {
            bmc.warn(format!("the session did not end cleanly after onboarding: {e}"));
        }
        bmc.info(format!("`{}` set up ({outcome:?})", target.account));
        Ok(outcome)
    }

    /// Disables the factory account, logged in as the stamp account.
    fn disable_account(bmc: &Bmc, target: &Target) -> Result<(), PluginError> {
        let root = identify(bmc)?;
        let client = connect(bmc, &root, &target.login_account, bmc.login_password()?)?;
        let disabled = client
            .accounts_of(&root.account_service)
            .map_err(account_service_error)
            .and_then(|accounts| disable_account(&client, &accounts, target));
        let ended = client.logout();
        disabled?;
        ended
    }

    fn verify(bmc: &Bmc, target: &Target) -> Result<(), PluginError> {
        let root = identify(bmc)?;
        let client = connect(bmc, &root, &target.login_account, bmc.login_password()?)?;
        prove(&client, &root)?;
        client.logout()
    }

    fn change_password(bmc: &Bmc, target: &Target) -> Result<(), PluginError> {
        let root = identify(bmc)?;
        let client = connect(bmc, &root, &target.login_account, bmc.login_password()?)?;
        let new = bmc.new_password()?;
        let changed = find(&client, &root, &target.account).and_then(|(_, account)| {
            patch_password(bmc, &client, &account, &new)?;
            Ok(account)
        });
        // After a self-change the session may already be gone: logout tolerates that, and a
        // failed logout does not undo the change.
        let ended = client.logout();
        let account = changed?;
        bmc.info(format!("password of `{}` changed ({})", target.account, account.uri));
        if let Err(e) = ended {
            bmc.warn(format!("the session did not end cleanly after the change: {e}"));
        }
        if target.is_self_change() {
            let proof = connect(bmc, &root, &target.account, new).and_then(|c| {
                prove(&c, &root)?;
                c.logout()
            });
            proof.map_err(|e| {
                PluginError::Protocol(format!("the BMC accepted the new password but refused it at login: {e}"))
            })?;
        }
        Ok(())
    }

    /// The standard `ManagerAccount.SNMP` member (DSP8010 v1.4+), when the service shows it.
    fn snmp_state(bmc: &Bmc, target: &Target) -> Result<Option<SnmpV3>, PluginError> {
        let root = identify(bmc)?;
        let client = connect(bmc, &root, &target.login_account, bmc.login_password()?)?;
        let state = find(&client, &root, &target.account).and_then(|(_, account)| account_snmp(&account.body));
        client.logout()?;
        state
    }
}

bmc_plugin_sdk::register_plugin!(GenericRedfish);

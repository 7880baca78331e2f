//! Lenovo XCC, XCC2 and XCC3.
//!
//! What differs from plain Redfish (sources: Lenovo's XCC REST API pages at
//! pubs.lenovo.com/xcc-restapi, xcc2-restapi and xcc3-restapi, its account security policy
//! settings, and ansible/ansible#56050 for the 428):
//! - account changes require `If-Match` (428 without); the account's ETag is sent (header, or
//!   `@odata.etag`, or `*` when there is none), and a 428 or 412 is answered by re-reading the
//!   account once and retrying with its current tag — never more;
//! - the password policy is strict and stateful: complexity, no more than two identical
//!   characters in a row, not the user name, a reuse cycle (default 5) and a minimum change
//!   interval; `probe` reports them so the host can refuse a plan whose rollback would fail;
//! - five failed logins lock the account (the right password is then refused too): a refused
//!   credential is never retried. Logins use Basic, as Lenovo's own script does.

use bmc_plugin_sdk::prelude::*;
use bmc_plugin_sdk::redfish::{AccountSlots, account_snmp, disable_account, enable_account};

/// The XCC plugin.
pub struct Xcc;

const MANAGER: &str = "/redfish/v1/Managers/1";

fn default_policy() -> PasswordPolicy {
    PasswordPolicy {
        min_length: 8,
        max_length: 20,
        min_classes: 3,
        allowed_symbols: "~`!@#$%^&*()-+={}[]|:;\"'<>,?/._".into(),
        reuse_cycle: 5,
        min_change_interval_hours: 0,
        max_repeated_chars: 2,
        forbid_account_name: true,
    }
}

fn identify(bmc: &Bmc) -> Result<ServiceRoot, PluginError> {
    let root = Redfish::anonymous(bmc).service_root()?;
    if root.is_vendor(&["Lenovo"]) { Ok(root) } else { Err(root.not_mine("a Lenovo XCC")) }
}

fn refused(e: PluginError) -> PluginError {
    match e {
        PluginError::AuthFailed(m) => PluginError::AuthFailed(format!(
            "{m} (XCC locks the account after 5 failures by default, and then refuses even the right password: do not retry)"
        )),
        other => other,
    }
}

fn family(client: &Redfish<'_>) -> Result<(String, String), PluginError> {
    let manager = client.get(MANAGER).map_err(refused)?;
    let model = manager.body.get("Model").and_then(Value::as_str).unwrap_or("XCC");
    let family = ["XCC3", "XCC2"].into_iter().find(|f| model.contains(f)).unwrap_or("XCC").to_owned();
    let firmware = manager.body.get("FirmwareVersion").and_then(Value::as_str).unwrap_or("").to_owned();
    Ok((family, firmware))
}

fn live_policy(client: &Redfish<'_>, root: &ServiceRoot) -> PasswordPolicy {
    let mut policy = default_policy();
    let Ok(service) = client.get(&root.account_service) else { return policy };
    let number = |p: &str| service.body.pointer(p).and_then(Value::as_u64).map(|n| n as u32);
    if let Some(min) = number("/MinPasswordLength") {
        policy.min_length = min;
    }
    if let Some(max) = number("/MaxPasswordLength") {
        policy.max_length = max;
    }
    if let Some(cycle) = number("/Oem/Lenovo/MinimumPasswordReuseCycle") {
        policy.reuse_cycle = cycle;
    }
    if let Some(hours) = number("/Oem/Lenovo/MinimumPasswordChangeIntervalHours") {
        policy.min_change_interval_hours = hours;
    }
    if service.body.pointer("/Oem/Lenovo/ComplexPassword").and_then(Value::as_bool) == Some(false) {
        policy.min_classes = 0;
        policy.max_repeated_chars = 0;
        policy.forbid_account_name = false;
    }
    policy
}

impl VendorPlugin for Xcc {
    /// Plain Redfish, plus onboarding: an empty slot filled by PATCH.
    const CAPABILITIES: &'static str = concat!(
        "GET /redfish/v1/**\n",
        "POST /redfish/v1/SessionService/Sessions\n",
        "DELETE {session}\n",
        "PATCH {account} password=/Password\n",
        "PATCH /redfish/v1/AccountService/Accounts/* password=/Password onboard\n",
    );

    fn info() -> PluginInfo {
        PluginInfo {
            id: "lenovo-xcc".into(),
            vendor: "Lenovo".into(),
            product: "XClarity Controller".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            families: vec!["XCC".into(), "XCC2".into(), "XCC3".into()],
            policy: default_policy(),
        }
    }

    fn probe(bmc: &Bmc, target: &Target) -> Result<ProbeResult, PluginError> {
        let root = identify(bmc)?;
        let client = Redfish::basic(bmc, &target.login_account, bmc.login_password()?);
        let (family, firmware) = family(&client)?;
        let account = client.find_account(&root.account_service, &target.account)?;
        Ok(ProbeResult { family, firmware, account_uri: account.uri, policy: live_policy(&client, &root) })
    }

    /// XCC's accounts are 12 fixed slots (slot 1 holds `USERID`): a new account fills the first
    /// empty one, named, given its password and role and enabled in one PATCH (Lenovo's
    /// lenovo_create_bmc_user.py does the same).
    fn enable_account(bmc: &Bmc, target: &Target) -> Result<Onboarded, PluginError> {
        let root = identify(bmc)?;
        let client = Redfish::basic(bmc, &target.login_account, bmc.login_password()?);
        let accounts = client.accounts_of(&root.account_service).map_err(refused)?;
        let outcome =
            enable_account(&client, &accounts, target, &bmc.new_password()?, AccountSlots::Fixed { first: 2 })?;
        bmc.info(format!("`{}` set up ({outcome:?})", target.account));
        Ok(outcome)
    }

    /// Disables the factory account (`USERID`) in its slot, logged in as the stamp account.
    fn disable_account(bmc: &Bmc, target: &Target) -> Result<(), PluginError> {
        let root = identify(bmc)?;
        let client = Redfish::basic(bmc, &target.login_account, bmc.login_password()?);
        let accounts = client.accounts_of(&root.account_service).map_err(refused)?;
        disable_account(&client, &accounts, target)
    }

    fn verify(bmc: &Bmc, target: &Target) -> Result<(), PluginError> {
        identify(bmc)?;
        Redfish::basic(bmc, &target.login_account, bmc.login_password()?).get(MANAGER).map(drop).map_err(refused)
    }

    fn change_password(bmc: &Bmc, target: &Target) -> Result<(), PluginError> {
        let root = identify(bmc)?;
        let client = Redfish::basic(bmc, &target.login_account, bmc.login_password()?);
        let (family, _) = family(&client)?;
        let account = client.find_account(&root.account_service, &target.account)?;
        let new = bmc.new_password()?;
        let body = || JsonBody::object().secret("Password", &new);
        let mut outcome = client.patch(&account.uri, body(), &IfMatch::from_resource(&account, IfMatch::Any))?;
        if let Err(e) = &outcome
            && (e.status == 428 || e.status == 412)
        {
            // Required but missing, or stale (newer XCC can be strict, sometimes intermittently):
            // re-read once and retry with the current tag. Never loop.
            bmc.warn(format!("{family}: {e}; re-reading the account and retrying once"));
            let fresh = client.get(&account.uri)?;
            outcome = client.patch(&account.uri, body(), &IfMatch::from_resource(&fresh, IfMatch::Any))?;
        }
        outcome.map_err(|e| e.into_plugin_error())?;
        bmc.info(format!("{family}: password of `{}` changed ({})", target.account, account.uri));
        if target.is_self_change() {
            Redfish::basic(bmc, &target.account, new).get(MANAGER).map(drop).map_err(|e| {
                PluginError::Protocol(format!("XCC accepted the new password but refused it at login: {e}"))
            })?;
        }
        Ok(())
    }

    /// XCC keeps SNMPv3 per account, in the standard `ManagerAccount.SNMP` member; the account's
    /// password is its passphrase (an assumption: see the plugin README's SNMPv3 section).
    fn snmp_state(bmc: &Bmc, target: &Target) -> Result<Option<SnmpV3>, PluginError> {
        let root = identify(bmc)?;
        let client = Redfish::basic(bmc, &target.login_account, bmc.login_password()?);
        let account = client.find_account(&root.account_service, &target.account).map_err(refused)?;
        account_snmp(&account.body)
    }
}

bmc_plugin_sdk::register_plugin!(Xcc);

//! A plain-Redfish plugin: session login, account lookup by `UserName`, PATCH with the account's
//! ETag, and a re-login with the new password after a self-change. The host's round-trip tests
//! run it as a real component.

use bmc_plugin_sdk::prelude::*;
use bmc_plugin_sdk::redfish::ServiceRoot;

/// The guest.
pub struct Sample;

const POLICY: PasswordPolicy = PasswordPolicy {
    min_length: 8,
    max_length: 20,
    min_classes: 3,
    allowed_symbols: String::new(),
    reuse_cycle: 0,
    min_change_interval_hours: 0,
    max_repeated_chars: 0,
    forbid_account_name: false,
};

fn session<'a>(bmc: &'a Bmc, root: &ServiceRoot, user: &str, password: &Secret) -> Result<Redfish<'a>, PluginError> {
    Redfish::login(bmc, &root.sessions, user, password)
}

impl VendorPlugin for Sample {
    fn info() -> PluginInfo {
        PluginInfo {
            id: "sample".into(),
            vendor: "Sample".into(),
            product: "Standard Redfish".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            families: vec!["redfish".into()],
            policy: POLICY,
        }
    }

    fn probe(bmc: &Bmc, target: &Target) -> Result<ProbeResult, PluginError> {
        let root = Redfish::anonymous(bmc).service_root()?;
        let client = session(bmc, &root, &target.login_account, &bmc.login_password()?)?;
        let account = client.find_account(&root.account_service, &target.account)?;
        let service = client.get(&root.account_service)?;
        let mut policy = POLICY;
        if let Some(min) = service.body.get("MinPasswordLength").and_then(|v| v.as_u64()) {
            policy.min_length = min as u32;
        }
        if let Some(max) = service.body.get("MaxPasswordLength").and_then(|v| v.as_u64()) {
            policy.max_length = max as u32;
        }
        client.logout()?;
        Ok(ProbeResult { family: "redfish".into(), firmware: root.redfish_version, account_uri: account.uri, policy })
    }

    fn verify(bmc: &Bmc, target: &Target) -> Result<(), PluginError> {
        let root = Redfish::anonymous(bmc).service_root()?;
        session(bmc, &root, &target.login_account, &bmc.login_password()?)?.logout()
    }

    fn change_password(bmc: &Bmc, target: &Target) -> Result<(), PluginError> {
        let root = Redfish::anonymous(bmc).service_root()?;
        let client = session(bmc, &root, &target.login_account, &bmc.login_password()?)?;
        let account = client.find_account(&root.account_service, &target.account)?;
        let new = bmc.new_password()?;
        let body = JsonBody::object().secret("Password", &new);
        client
            .patch(&account.uri, body, &IfMatch::from_resource(&account, IfMatch::None))?
            .map_err(|e| e.into_plugin_error())?;
        bmc.info(format!("password of `{}` changed at {}", target.account, account.uri));
        if target.is_self_change() {
            // The old session died with the old password: prove the new one works.
            session(bmc, &root, &target.account, &new)?.logout()
        } else {
            client.logout()
        }
    }
}

register_plugin!(Sample);

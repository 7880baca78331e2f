//! HPE iLO 4, 5, 6 and 7.
//!
//! What differs from plain Redfish (sources: HPE's iLO Redfish documentation, "Managing iLO
//! users" in github.com/HPEDevCom/redfishdocs, and HPE's python-ilorest-library examples):
//! - iLO 4 speaks `Oem.Hp`, iLO 5 and later `Oem.Hpe`; the generation comes from
//!   `Oem.Hpe.Manager[0].ManagerType` on the service root;
//! - account ids are not slots: accounts are found by `UserName` — never by `Oem.Hpe.LoginName`,
//!   which is the GUI's free-text "User Name" — at URIs that may end with `/`;
//! - a successful PATCH answers 200 with the `error` envelope holding `AccountModified`;
//! - `InvalidPasswordLength` / `InvalidPasswordComplexity` are policy refusals, quoted verbatim;
//! - failed logins are delayed (iLO 5) or lock the account (iLO 6 when configured): a refused
//!   credential is never retried, and the delay the iLO announced is reported;
//! - SNMPv3 users are not accounts: they live under `Managers/1/SnmpService/SNMPUsers` with
//!   passphrases of their own (`AuthPassphrase`, `PrivacyPassphrase`). Azure Stack Hub needs the
//!   trap credential to equal the BMC credential, so the SNMPv3 user whose `SecurityName` is the
//!   account's name gets the new password as both passphrases in the same change (and so in the
//!   rollback, the same call with the passwords swapped).

use bmc_plugin_sdk::prelude::*;
use bmc_plugin_sdk::redfish::{AccountSlots, disable_account, enable_account, extended_info};

/// The iLO plugin.
pub struct Ilo;

/// iLO's SNMPv3 users (HPE's iLO 5/6 Redfish reference, `HpeSNMPUser`).
const SNMP_USERS: &str = "/redfish/v1/Managers/1/SnmpService/SNMPUsers";

/// The SNMPv3 user whose `SecurityName` is `account`, if any (read through `client`, which also
/// shows the host that the user is the account's).
fn snmp_user(client: &Redfish<'_>, account: &str) -> Result<Option<Resource>, PluginError> {
    let collection = client.get(SNMP_USERS)?;
    let members = collection.body.get("Members").and_then(Value::as_array).cloned().unwrap_or_default();
    for member in members {
        let Some(uri) = member.get("@odata.id").and_then(Value::as_str) else { continue };
        let user = client.get(uri)?;
        if user.body.get("SecurityName").and_then(Value::as_str) == Some(account) {
            return Ok(Some(user));
        }
    }
    Ok(None)
}

/// Makes the account's SNMPv3 passphrases the new password, one member per PATCH (each is one
/// manifest rule).
fn follow_snmp(bmc: &Bmc, client: &Redfish<'_>, target: &Target, new: &Secret) -> Result<(), PluginError> {
    let Some(user) = snmp_user(client, &target.account)? else {
        bmc.info(format!("no SNMPv3 user is named `{}`: no passphrase to change", target.account));
        return Ok(());
    };
    for member in ["AuthPassphrase", "PrivacyPassphrase"] {
        client.patch(&user.uri, JsonBody::object().secret(member, new), &IfMatch::None)?.map_err(|e| {
            PluginError::Protocol(format!("iLO refused the SNMPv3 {member} of `{}`: {e}", target.account))
        })?;
    }
    bmc.info(format!("SNMPv3 passphrases of `{}` changed ({})", target.account, user.uri));
    Ok(())
}

fn default_policy() -> PasswordPolicy {
    PasswordPolicy {
        min_length: 8,
        max_length: 39,
        min_classes: 3,
        allowed_symbols: "-_.!+=@#%^*()[]{}:,?/~".into(),
        ..PasswordPolicy::default()
    }
}

/// The iLO generation from the service root, or why this is not an iLO.
fn identify(bmc: &Bmc) -> Result<(ServiceRoot, String), PluginError> {
    let root = Redfish::anonymous(bmc).service_root()?;
    let family = if root.oem.iter().any(|k| k == "Hpe") {
        let kind = root.body.pointer("/Oem/Hpe/Manager/0/ManagerType").and_then(Value::as_str).unwrap_or("");
        match kind.split_whitespace().last() {
            Some(n @ ("5" | "6" | "7")) => format!("iLO{n}"),
            _ => "iLO5".to_owned(),
        }
    } else if root.oem.iter().any(|k| k == "Hp") {
        "iLO4".to_owned()
    } else {
        return Err(root.not_mine("an HPE iLO"));
    };
    Ok((root, family))
}

/// A refused login, with the delay or lockout the iLO announced.
fn refused(e: PluginError) -> PluginError {
    match e {
        PluginError::AuthFailed(m) if m.contains("LoginAttemptDelayed") => {
            PluginError::AuthFailed(format!("{m} (iLO now delays logins after failures: do not retry this credential)"))
        }
        PluginError::AuthFailed(m) => {
            PluginError::AuthFailed(format!("{m} (iLO may lock the account after repeated failures: do not retry)"))
        }
        other => other,
    }
}

fn login<'a>(bmc: &'a Bmc, root: &ServiceRoot, user: &str, password: &Secret) -> Result<Redfish<'a>, PluginError> {
    Redfish::login(bmc, &root.sessions, user, password).map_err(refused)
}

fn oem<'v>(body: &'v Value, family: &str) -> Option<&'v Value> {
    body.get("Oem").and_then(|o| o.get(if family == "iLO4" { "Hp" } else { "Hpe" }))
}

fn live_policy(client: &Redfish<'_>, root: &ServiceRoot, family: &str) -> PasswordPolicy {
    let mut policy = default_policy();
    if let Ok(service) = client.get(&root.account_service) {
        if let Some(oem) = oem(&service.body, family) {
            if let Some(min) = oem.get("MinPasswordLength").and_then(Value::as_u64) {
                policy.min_length = min as u32;
            }
            if oem.get("EnforcePasswordComplexity").and_then(Value::as_bool) == Some(false) {
                policy.min_classes = 0;
            }
        } else if let Some(min) = service.body.get("MinPasswordLength").and_then(Value::as_u64) {
            policy.min_length = min as u32;
        }
        if let Some(max) = service.body.get("MaxPasswordLength").and_then(Value::as_u64) {
            policy.max_length = (max as u32).min(39);
        }
    }
    policy
}

impl VendorPlugin for Ilo {
    /// Plain Redfish, plus the new password as each SNMPv3 passphrase of the account's own
    /// SNMPv3 user (`{snmp-user}`: the host pins it to the user the iLO showed, in the same call,
    /// to have the account's name as its `SecurityName`).
    const CAPABILITIES: &'static str = concat!(
        "GET /redfish/v1/**\n",
        "POST /redfish/v1/SessionService/Sessions\n",
        "DELETE {session}\n",
        "PATCH {account} password=/Password\n",
        "PATCH {snmp-user} password=/AuthPassphrase\n",
        "PATCH {snmp-user} password=/PrivacyPassphrase\n",
        // Onboarding creates the account in the collection, or enables an existing one.
        "POST /redfish/v1/AccountService/Accounts password=/Password onboard\n",
        "PATCH /redfish/v1/AccountService/Accounts/* password=/Password onboard\n",
    );

    fn info() -> PluginInfo {
        PluginInfo {
            id: "hpe-ilo".into(),
            vendor: "HPE".into(),
            product: "iLO".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            families: vec!["iLO4".into(), "iLO5".into(), "iLO6".into(), "iLO7".into()],
            policy: default_policy(),
        }
    }

    fn probe(bmc: &Bmc, target: &Target) -> Result<ProbeResult, PluginError> {
        let (root, family) = identify(bmc)?;
        let client = login(bmc, &root, &target.login_account, &bmc.login_password()?)?;
        let result = (|| {
            let account = client.find_account(&root.account_service, &target.account)?;
            let firmware = root
                .body
                .pointer(&format!(
                    "/Oem/{}/Manager/0/ManagerFirmwareVersion",
                    if family == "iLO4" { "Hp" } else { "Hpe" }
                ))
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_owned();
            Ok(ProbeResult {
                family: family.clone(),
                firmware,
                account_uri: account.uri,
                policy: live_policy(&client, &root, &family),
            })
        })();
        client.logout()?;
        result
    }

    /// iLO creates accounts by a POST to the collection (HPE's iLO RESTful API "Adding a user
    /// account"); its `RoleId` Administrator carries every privilege.
    fn enable_account(bmc: &Bmc, target: &Target) -> Result<Onboarded, PluginError> {
        let (root, family) = identify(bmc)?;
        let client = login(bmc, &root, &target.login_account, &bmc.login_password()?)?;
        let outcome = client.accounts_of(&root.account_service).and_then(|accounts| {
            enable_account(&client, &accounts, target, &bmc.new_password()?, AccountSlots::Created)
        });
        client.logout()?;
        let outcome = outcome?;
        bmc.info(format!("{family}: `{}` set up ({outcome:?})", target.account));
        Ok(outcome)
    }

    /// Disables the factory account (`Administrator`), logged in as the stamp account.
    fn disable_account(bmc: &Bmc, target: &Target) -> Result<(), PluginError> {
        let (root, _) = identify(bmc)?;
        let client = login(bmc, &root, &target.login_account, &bmc.login_password()?)?;
        let disabled =
            client.accounts_of(&root.account_service).and_then(|accounts| disable_account(&client, &accounts, target));
        client.logout()?;
        disabled
    }

    fn verify(bmc: &Bmc, target: &Target) -> Result<(), PluginError> {
        let (root, _) = identify(bmc)?;
        login(bmc, &root, &target.login_account, &bmc.login_password()?)?.logout()
    }

    fn change_password(bmc: &Bmc, target: &Target) -> Result<(), PluginError> {
        let (root, family) = identify(bmc)?;
        let client = login(bmc, &root, &target.login_account, &bmc.login_password()?)?;
        let account = client.find_account(&root.account_service, &target.account)?;
        let new = bmc.new_password()?;
        let answer = client
            .patch(&account.uri, JsonBody::object().secret("Password", &new), &IfMatch::None)?
            .map_err(|e| e.into_plugin_error())?;
        // Success arrives inside the `error` envelope; anything but AccountModified/Success there
        // is worth a line in the log, not a failure (the status is 2xx).
        let messages = extended_info(&answer.json().unwrap_or(Value::Null));
        if !messages.iter().any(|m| m.key() == "AccountModified" || m.key() == "Success") {
            bmc.warn(format!("{family}: PATCH succeeded without AccountModified: {messages:?}"));
        }
        bmc.info(format!("{family}: password of `{}` changed ({})", target.account, account.uri));
        if !target.is_self_change() {
            follow_snmp(bmc, &client, target, &new)?;
            return client.logout();
        }
        // After a self-change the session may already be gone: logout tolerates that.
        client.logout()?;
        let proof = login(bmc, &root, &target.account, &new).map_err(|e| {
            PluginError::Protocol(format!("iLO accepted the new password but refused it at login: {e}"))
        })?;
        follow_snmp(bmc, &proof, target, &new)?;
        proof.logout()
    }

    /// The SNMPv3 user named like the account: off when there is none.
    fn snmp_state(bmc: &Bmc, target: &Target) -> Result<Option<SnmpV3>, PluginError> {
        let (root, _) = identify(bmc)?;
        let client = login(bmc, &root, &target.login_account, &bmc.login_password()?)?;
        let user = snmp_user(&client, &target.account);
        client.logout()?;
        let Some(user) = user? else {
            return Ok(Some(SnmpV3 {
                enabled: false,
                authentication: SnmpAuthentication::None,
                privacy: SnmpPrivacy::None,
            }));
        };
        let text = |key: &str| user.body.get(key).and_then(Value::as_str).unwrap_or("None").to_owned();
        let authentication = match text("AuthProtocol").as_str() {
            "None" => SnmpAuthentication::None,
            "MD5" => SnmpAuthentication::HmacMd5,
            "SHA" => SnmpAuthentication::HmacSha96,
            "SHA256" => SnmpAuthentication::Hmac192Sha256,
            other => return Err(PluginError::Protocol(format!("unknown SNMPv3 AuthProtocol `{other}`"))),
        };
        let privacy = match text("PrivacyProtocol").as_str() {
            "None" => SnmpPrivacy::None,
            "DES" => SnmpPrivacy::CbcDes,
            "AES" => SnmpPrivacy::Cfb128Aes128,
            other => return Err(PluginError::Protocol(format!("unknown SNMPv3 PrivacyProtocol `{other}`"))),
        };
        Ok(Some(SnmpV3 { enabled: true, authentication, privacy }))
    }
}

bmc_plugin_sdk::register_plugin!(Ilo);

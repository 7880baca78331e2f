//! Dell iDRAC 8, 9 and 10.
//!
//! What differs from plain Redfish (sources: Dell's github.com/dell/iDRAC-Redfish-Scripting, its
//! account scripts and issues #295, #342, #346):
//! - the generation comes from the Manager's `Model` (`?$select=Model`): "12"/"13" iDRAC8,
//!   "14"/"15"/"16" iDRAC9, anything else iDRAC10;
//! - accounts are fixed slots, under `Managers/iDRAC.Embedded.1/Accounts` on iDRAC8/9 and
//!   `AccountService/Accounts` on iDRAC10, found by `UserName`;
//! - the PATCH needs no If-Match; a 412 (a stale tag sent by someone) is answered by re-reading
//!   the account once and sending its current tag;
//! - a forced default-password change refuses the PATCH with `SWC1908`; slot 2 then changes
//!   through `DellAttributes` (`Users.2.Password`);
//! - iDRAC blocks the client address after repeated failures, so a refused credential is never
//!   retried, and a self-change invalidates the caller's token (this plugin uses Basic auth and
//!   proves the change by authenticating with the new password).

use bmc_plugin_sdk::prelude::*;
use bmc_plugin_sdk::redfish::{AccountSlots, RedfishError, account_snmp, disable_account, enable_account};

/// The iDRAC plugin.
pub struct Idrac;

const MANAGER: &str = "/redfish/v1/Managers/iDRAC.Embedded.1";
const DELL_ATTRIBUTES: &str = "/redfish/v1/Managers/iDRAC.Embedded.1/Oem/Dell/DellAttributes/iDRAC.Embedded.1";

/// The iDRAC9 User's Guide's recommended characters (symbols part).
const SYMBOLS: &str = "'-!\"#$%&()*,./:;?@[\\]^_`{|}~+<=>";

fn default_policy() -> PasswordPolicy {
    PasswordPolicy {
        min_length: 1,
        max_length: 20,
        min_classes: 4,
        allowed_symbols: SYMBOLS.into(),
        ..PasswordPolicy::default()
    }
}

/// An iDRAC generation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Generation {
    /// 12G/13G.
    Idrac8,
    /// 14G-16G.
    Idrac9,
    /// 17G and later.
    Idrac10,
}

impl Generation {
    /// Dell's own rule (`get_server_generation` in ChangeIdracUserPasswordREDFISH.py).
    pub fn from_model(model: &str) -> Generation {
        if model.contains("12") || model.contains("13") {
            Generation::Idrac8
        } else if model.contains("14") || model.contains("15") || model.contains("16") {
            Generation::Idrac9
        } else {
            Generation::Idrac10
        }
    }

    fn name(self) -> &'static str {
        match self {
            Generation::Idrac8 => "iDRAC8",
            Generation::Idrac9 => "iDRAC9",
            Generation::Idrac10 => "iDRAC10",
        }
    }

    fn accounts(self) -> &'static str {
        match self {
            Generation::Idrac8 | Generation::Idrac9 => "/redfish/v1/Managers/iDRAC.Embedded.1/Accounts",
            Generation::Idrac10 => "/redfish/v1/AccountService/Accounts",
        }
    }
}

/// Refuses a BMC that is not an iDRAC, naming what it is.
fn identify(bmc: &Bmc) -> Result<ServiceRoot, PluginError> {
    let root = Redfish::anonymous(bmc).service_root()?;
    if root.is_vendor(&["Dell"]) { Ok(root) } else { Err(root.not_mine("a Dell iDRAC")) }
}

/// A refused credential, with what iDRAC does about repeated failures.
fn refused(e: PluginError) -> PluginError {
    match e {
        PluginError::AuthFailed(m) => PluginError::AuthFailed(format!(
            "{m} (iDRAC blocks the client address after repeated failures: do not retry this credential)"
        )),
        other => other,
    }
}

fn generation(client: &Redfish<'_>) -> Result<(Generation, String), PluginError> {
    let model = client.get(&format!("{MANAGER}?$select=Model")).map_err(refused)?;
    let model = model.body.get("Model").and_then(Value::as_str).unwrap_or("").to_owned();
    Ok((Generation::from_model(&model), model))
}

fn live_policy(client: &Redfish<'_>, root: &ServiceRoot) -> PasswordPolicy {
    let mut policy = default_policy();
    if let Ok(service) = client.get(&root.account_service) {
        if let Some(min) = service.body.get("MinPasswordLength").and_then(Value::as_u64) {
            policy.min_length = min as u32;
        }
        if let Some(max) = service.body.get("MaxPasswordLength").and_then(Value::as_u64) {
            policy.max_length = max as u32;
        }
    }
    policy
}

/// Proves a credential with one authenticated GET (never retried: iDRAC counts failures).
fn authenticate(bmc: &Bmc, user: &str, password: Secret) -> Result<(), PluginError> {
    Redfish::basic(bmc, user, password).get(MANAGER).map(drop).map_err(refused)
}

impl VendorPlugin for Idrac {
    /// Plain Redfish, plus the DellAttributes member of the account's own slot for the forced
    /// default-password change.
    const CAPABILITIES: &'static str = concat!(
        "GET /redfish/v1/**\n",
        "POST /redfish/v1/SessionService/Sessions\n",
        "DELETE {session}\n",
        "PATCH {account} password=/Password\n",
        "PATCH /redfish/v1/Managers/iDRAC.Embedded.1/Oem/Dell/DellAttributes/iDRAC.Embedded.1 ",
        "password=/Attributes/Users.{account-id}.Password\n",
        // Onboarding fills an empty slot (iDRAC8/9 under the Manager, iDRAC10 under AccountService).
        "PATCH /redfish/v1/Managers/iDRAC.Embedded.1/Accounts/* password=/Password onboard\n",
        "PATCH /redfish/v1/AccountService/Accounts/* password=/Password onboard\n",
    );

    fn info() -> PluginInfo {
        PluginInfo {
            id: "dell-idrac".into(),
            vendor: "Dell".into(),
            product: "iDRAC".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            families: vec!["iDRAC8".into(), "iDRAC9".into(), "iDRAC10".into()],
            policy: default_policy(),
        }
    }

    /// iDRAC's accounts are 16 fixed slots: slot 1 is reserved and slot 2 holds `root`, so a new
    /// account takes the first empty slot from 3 on, enabled as an Administrator in the same
    /// PATCH (as Dell's CreateDeleteIdracUsersREDFISH.py does).
    fn enable_account(bmc: &Bmc, target: &Target) -> Result<Onboarded, PluginError> {
        identify(bmc)?;
        let client = Redfish::basic(bmc, &target.login_account, bmc.login_password()?);
        let (generation, _model) = generation(&client)?;
        let outcome = enable_account(
            &client,
            generation.accounts(),
            target,
            &bmc.new_password()?,
            AccountSlots::Fixed { first: 3 },
        )
        .map_err(refused)?;
        bmc.info(format!("{}: `{}` set up ({outcome:?})", generation.name(), target.account));
        Ok(outcome)
    }

    /// Disables the factory account (`root`) in its slot, logged in as the stamp account.
    fn disable_account(bmc: &Bmc, target: &Target) -> Result<(), PluginError> {
        identify(bmc)?;
        let client = Redfish::basic(bmc, &target.login_account, bmc.login_password()?);
        let (generation, _model) = generation(&client)?;
        disable_account(&client, generation.accounts(), target).map_err(refused)
    }

    fn probe(bmc: &Bmc, target: &Target) -> Result<ProbeResult, PluginError> {
        let root = identify(bmc)?;
        let client = Redfish::basic(bmc, &target.login_account, bmc.login_password()?);
        let (generation, _model) = generation(&client)?;
        let firmware =
            client.get(MANAGER)?.body.get("FirmwareVersion").and_then(Value::as_str).unwrap_or("").to_owned();
        let account = client.find_account_in(generation.accounts(), &target.account)?;
        Ok(ProbeResult {
            family: generation.name().into(),
            firmware,
            account_uri: account.uri,
            policy: live_policy(&client, &root),
        })
    }

    fn verify(bmc: &Bmc, target: &Target) -> Result<(), PluginError> {
        identify(bmc)?;
        authenticate(bmc, &target.login_account, bmc.login_password()?)
    }

    fn change_password(bmc: &Bmc, target: &Target) -> Result<(), PluginError> {
        identify(bmc)?;
        let client = Redfish::basic(bmc, &target.login_account, bmc.login_password()?);
        let (generation, _) = generation(&client)?;
        let account = client.find_account_in(generation.accounts(), &target.account)?;
        let new = bmc.new_password()?;
        let body = || JsonBody::object().secret("Password", &new);
        let mut outcome = client.patch(&account.uri, body(), &IfMatch::None)?;
        if let Err(e) = &outcome
            && e.status == 412
        {
            // Someone sent a stale tag on our behalf (a proxy, an older firmware): re-read once.
            let fresh = client.get(&account.uri)?;
            outcome = client.patch(&account.uri, body(), &IfMatch::from_resource(&fresh, IfMatch::Any))?;
        }
        match outcome {
            Ok(_) => {}
            Err(e) if e.has("SWC1908") => forced_change(bmc, &client, &account, &new, e)?,
            Err(e) => return Err(e.into_plugin_error()),
        }
        bmc.info(format!("{}: password of `{}` changed ({})", generation.name(), target.account, account.uri));
        if target.is_self_change() {
            // The caller's old credential (and any token) died with the change: prove the new one.
            authenticate(bmc, &target.account, new).map_err(|e| {
                PluginError::Protocol(format!("iDRAC accepted the new password but refused it at login: {e}"))
            })?;
        }
        Ok(())
    }

    /// iDRAC keeps SNMPv3 per user and uses the user's password as its passphrase (Dell's
    /// iDRAC9 User's Guide, "Configuring SNMPv3 for users"), so a password change carries the
    /// passphrase along. The settings: the standard `ManagerAccount.SNMP` member where the
    /// firmware shows it, else the `Users.N.SNMPv3*` attributes of the account's slot.
    fn snmp_state(bmc: &Bmc, target: &Target) -> Result<Option<SnmpV3>, PluginError> {
        identify(bmc)?;
        let client = Redfish::basic(bmc, &target.login_account, bmc.login_password()?);
        let (generation, _) = generation(&client)?;
        let account = client.find_account_in(generation.accounts(), &target.account)?;
        if let Some(state) = account_snmp(&account.body)? {
            return Ok(Some(state));
        }
        let Some(slot) = account.body.get("Id").and_then(Value::as_str).map(str::to_owned) else {
            return Ok(None);
        };
        let attributes = client.get(DELL_ATTRIBUTES)?;
        let attribute = |name: &str| {
            attributes
                .body
                .pointer(&format!("/Attributes/Users.{slot}.{name}"))
                .and_then(Value::as_str)
                .map(str::to_owned)
        };
        let (Some(enable), Some(auth), Some(privacy)) =
            (attribute("SNMPv3Enable"), attribute("SNMPv3AuthenticationType"), attribute("SNMPv3PrivacyType"))
        else {
            return Ok(None);
        };
        let authentication = match auth.as_str() {
            "None" => SnmpAuthentication::None,
            "MD5" => SnmpAuthentication::HmacMd5,
            "SHA" => SnmpAuthentication::HmacSha96,
            "SHA256" => SnmpAuthentication::Hmac192Sha256,
            other => {
                return Err(PluginError::Protocol(format!("unknown Users.{slot}.SNMPv3AuthenticationType `{other}`")));
            }
        };
        let privacy = match privacy.as_str() {
            "None" => SnmpPrivacy::None,
            "DES" => SnmpPrivacy::CbcDes,
            "AES" => SnmpPrivacy::Cfb128Aes128,
            "AES256" => SnmpPrivacy::Cfb128Aes256,
            other => return Err(PluginError::Protocol(format!("unknown Users.{slot}.SNMPv3PrivacyType `{other}`"))),
        };
        Ok(Some(SnmpV3 { enabled: enable == "Enabled", authentication, privacy }))
    }
}

/// iDRAC refuses a normal PATCH while the factory password must be changed; slot 2 (`root`)
/// changes through the DellAttributes resource instead.
fn forced_change(
    bmc: &Bmc,
    client: &Redfish<'_>,
    account: &Resource,
    new: &Secret,
    e: RedfishError,
) -> Result<(), PluginError> {
    if account.body.get("Id").and_then(Value::as_str) != Some("2") {
        return Err(PluginError::PasswordChangeRequired(format!(
            "{e}; iDRAC only allows the forced default-password change on slot 2 (root) through DellAttributes"
        )));
    }
    bmc.warn("iDRAC demands the default password be changed first (SWC1908): using DellAttributes Users.2.Password");
    let body = JsonBody::object().nested("Attributes", |inner| inner.secret("Users.2.Password", new));
    client.patch(DELL_ATTRIBUTES, body, &IfMatch::None)?.map(drop).map_err(|e| e.into_plugin_error())
}

bmc_plugin_sdk::register_plugin!(Idrac);

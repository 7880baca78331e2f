//! SNMPv3 of each account, as each vendor shows it (sources in `lab/README.md`, "SNMPv3"):
//!
//! - Dell iDRAC: per user, in the `Users.N.SNMPv3Enable`, `Users.N.SNMPv3AuthenticationType` and
//!   `Users.N.SNMPv3PrivacyType` attributes of `DellAttributes`; the user's password is the
//!   SNMPv3 passphrase, so it follows every password change by itself.
//! - HPE iLO 5/6: SNMPv3 users of their own under `Managers/1/SnmpService/SNMPUsers`, tied to an
//!   account here by `SecurityName` (an assumption: iLO does not tie them, Azure Stack Hub's
//!   "same credential" rule does), with `AuthProtocol` (MD5, SHA, SHA256), `PrivacyProtocol`
//!   (DES, AES) and their own `AuthPassphrase` and `PrivacyPassphrase` (write-only, read back as
//!   `null`): a password change leaves them behind unless they are PATCHed too.
//! - Lenovo XCC and the DMTF-generic BMC: `ManagerAccount.SNMP` (`AuthenticationProtocol`,
//!   `EncryptionProtocol`, DSP8010 ManagerAccount v1.4+), enabled when `AccountTypes` holds
//!   `SNMP`; the passphrases follow the password (an assumption for XCC, see the README).

use super::Bmc;
use super::accounts::{Account, PasswordHash};
use super::wire::{LabRequest, LabResponse, error, malformed, message, not_found};
use crate::persona::Vendor;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

/// An SNMPv3 authentication protocol the personas offer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SnmpAuth {
    /// None.
    None,
    /// HMAC-MD5-96.
    Md5,
    /// HMAC-SHA-96.
    Sha,
}

/// An SNMPv3 privacy protocol the personas offer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SnmpPrivacy {
    /// None.
    None,
    /// CBC-DES.
    Des,
    /// CFB128-AES-128.
    Aes,
}

/// One account's SNMPv3 settings.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SnmpV3 {
    /// Whether the account has SNMPv3 (on iLO: whether an SNMPv3 user with its name exists).
    pub enabled: bool,
    /// Authentication.
    pub auth: SnmpAuth,
    /// Privacy.
    pub privacy: SnmpPrivacy,
    /// iLO's separate passphrases (salted hashes); other vendors use the password itself.
    pub auth_passphrase: Option<PasswordHash>,
    /// iLO's separate privacy passphrase.
    pub privacy_passphrase: Option<PasswordHash>,
}

/// The SNMPv3 cases a fleet spec can give a group's accounts (`snmp = "des"`).
#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum SnmpSetting {
    /// SHA authentication, AES privacy: what Azure Stack Hub needs (the default).
    #[default]
    Ok,
    /// SNMPv3 off for the account.
    Off,
    /// SHA authentication, DES privacy.
    Des,
    /// MD5 authentication, AES privacy.
    Md5,
}

impl SnmpV3 {
    /// The settings of `setting`, with passphrases equal to `password` (hashed with `salt`).
    pub(super) fn new(setting: SnmpSetting, salt: &[u8; 16], password: &str) -> SnmpV3 {
        let (enabled, auth, privacy) = match setting {
            SnmpSetting::Ok => (true, SnmpAuth::Sha, SnmpPrivacy::Aes),
            SnmpSetting::Off => (false, SnmpAuth::None, SnmpPrivacy::None),
            SnmpSetting::Des => (true, SnmpAuth::Sha, SnmpPrivacy::Des),
            SnmpSetting::Md5 => (true, SnmpAuth::Md5, SnmpPrivacy::Aes),
        };
        let passphrase = enabled.then(|| PasswordHash::of(salt, password));
        SnmpV3 { enabled, auth, privacy, auth_passphrase: passphrase.clone(), privacy_passphrase: passphrase }
    }
}

/// iLO's SNMPv3 user collection.
fn hpe_users(manager: &str) -> String {
    format!("/redfish/v1/Managers/{manager}/SnmpService/SNMPUsers")
}

impl Bmc {
    /// Gives the account `user` the SNMPv3 case `setting`, its passphrases equal to `password`
    /// (fleet set-up). False when there is no such account.
    pub fn set_snmp(&mut self, user: &str, setting: SnmpSetting, password: &str) -> bool {
        let snmp = SnmpV3::new(setting, &self.salt, password);
        let Some(account) = self.account_mut(user) else { return false };
        account.snmp = snmp;
        true
    }

    /// Whether iLO's separate SNMPv3 passphrases of `user` (authentication, privacy) are
    /// `password`; other vendors' passphrases are the password itself. For tests: the lab's
    /// state, never a login.
    pub fn snmp_passphrases_are(&self, user: &str, password: &str) -> (bool, bool) {
        let Some(account) = self.account(user) else { return (false, false) };
        let hash = PasswordHash::of(&self.salt, password);
        if self.profile.persona.vendor() != Vendor::Hpe {
            let same = account.password.as_ref() == Some(&hash);
            return (same, same);
        }
        (account.snmp.auth_passphrase.as_ref() == Some(&hash), account.snmp.privacy_passphrase.as_ref() == Some(&hash))
    }

    /// The `SNMP` member of a `ManagerAccount` (XCC, DMTF-generic) and its `AccountTypes`.
    pub(super) fn account_snmp_json(&self, account: &Account, body: &mut Value) {
        if !matches!(self.profile.persona.vendor(), Vendor::Lenovo | Vendor::Generic) {
            return;
        }
        let snmp = &account.snmp;
        let auth = match snmp.auth {
            SnmpAuth::None => "None",
            SnmpAuth::Md5 => "HMAC_MD5",
            SnmpAuth::Sha => "HMAC_SHA96",
        };
        let privacy = match snmp.privacy {
            SnmpPrivacy::None => "None",
            SnmpPrivacy::Des => "CBC_DES",
            SnmpPrivacy::Aes => "CFB128_AES128",
        };
        body["SNMP"] = json!({
            "AuthenticationProtocol": auth,
            "AuthenticationKey": null,
            "AuthenticationKeySet": snmp.enabled,
            "EncryptionProtocol": privacy,
            "EncryptionKey": null,
            "EncryptionKeySet": snmp.enabled && snmp.privacy != SnmpPrivacy::None,
        });
        if snmp.enabled {
            body["AccountTypes"] = json!(["Redfish", "SNMP"]);
        }
    }

    /// iDRAC's `Users.N.SNMPv3*` attributes.
    pub(super) fn dell_snmp_attributes(&self, account: &Account, attributes: &mut serde_json::Map<String, Value>) {
        let n = account.id;
        let snmp = &account.snmp;
        let auth = match snmp.auth {
            SnmpAuth::None => "None",
            SnmpAuth::Md5 => "MD5",
            SnmpAuth::Sha => "SHA",
        };
        let privacy = match snmp.privacy {
            SnmpPrivacy::None => "None",
            SnmpPrivacy::Des => "DES",
            SnmpPrivacy::Aes => "AES",
        };
        attributes.insert(format!("Users.{n}.SNMPv3Enable"), json!(if snmp.enabled { "Enabled" } else { "Disabled" }));
        attributes.insert(format!("Users.{n}.SNMPv3AuthenticationType"), json!(auth));
        attributes.insert(format!("Users.{n}.SNMPv3PrivacyType"), json!(privacy));
    }

    /// iLO's `SnmpService`, its `SNMPUsers` collection and members (one per account with
    /// SNMPv3, id = the account's id); `None` for any other path or vendor.
    pub(super) fn hpe_snmp(&mut self, request: &LabRequest, path: &str, caller: u32) -> Option<LabResponse> {
        if self.profile.persona.vendor() != Vendor::Hpe {
            return None;
        }
        let users = hpe_users(self.profile.manager_id);
        let service = users.strip_suffix("/SNMPUsers").expect("built above").to_owned();
        let method = request.method.as_str();
        if path == service && method == "GET" {
            return Some(LabResponse::json(
                200,
                json!({"@odata.id": self.slash(service.clone()), "@odata.type": "#HpeiLOSnmpService.v2_3_0.HpeiLOSnmpService",
                       "Id": "SnmpService", "Name": "SNMP Service", "SNMPv1Enabled": false,
                       "SNMPUsers": {"@odata.id": self.slash(users.clone())}}),
            ));
        }
        if path == users && method == "GET" {
            let members: Vec<Value> = self
                .accounts
                .values()
                .filter(|a| a.snmp.enabled && !a.user.is_empty())
                .map(|a| json!({"@odata.id": self.slash(format!("{users}/{}", a.id))}))
                .collect();
            return Some(LabResponse::json(
                200,
                json!({"@odata.id": self.slash(users.clone()), "@odata.type": "#HpeSNMPUserCollection.HpeSNMPUserCollection",
                       "Name": "SNMP Users", "Members@odata.count": members.len(), "Members": members}),
            ));
        }
        let id = path.strip_prefix(&users)?.strip_prefix('/')?;
        let account = id.parse::<u32>().ok().and_then(|id| self.accounts.get(&id)).filter(|a| a.snmp.enabled);
        let Some(account) = account else { return Some(not_found(&request.path)) };
        let id = account.id;
        match method {
            "GET" => Some(LabResponse::json(200, self.hpe_snmp_user(account, &users))),
            "PATCH" if !self.is_admin(caller) => Some(self.insufficient_privilege()),
            "PATCH" => Some(self.patch_hpe_snmp_user(request, id)),
            _ => Some(super::wire::method_not_allowed(path)),
        }
    }

    fn hpe_snmp_user(&self, account: &Account, users: &str) -> Value {
        let auth = match account.snmp.auth {
            SnmpAuth::None => "None",
            SnmpAuth::Md5 => "MD5",
            SnmpAuth::Sha => "SHA",
        };
        let privacy = match account.snmp.privacy {
            SnmpPrivacy::None => "None",
            SnmpPrivacy::Des => "DES",
            SnmpPrivacy::Aes => "AES",
        };
        json!({"@odata.id": self.slash(format!("{users}/{}", account.id)), "@odata.type": "#HpeSNMPUser.v2_1_0.HpeSNMPUser",
               "Id": account.id.to_string(), "SecurityName": account.user, "AuthProtocol": auth,
               "PrivacyProtocol": privacy, "AuthPassphrase": null, "PrivacyPassphrase": null, "UserEngineID": null})
    }

    /// iLO takes a passphrase of 8 to 49 characters (HPE's SNMPv3 user reference).
    fn patch_hpe_snmp_user(&mut self, request: &LabRequest, id: u32) -> LabResponse {
        let Ok(Value::Object(body)) = serde_json::from_slice::<Value>(&request.body) else {
            return malformed();
        };
        const KNOWN: &[&str] = &["AuthPassphrase", "PrivacyPassphrase"];
        let unknown = body.keys().find(|k| !KNOWN.contains(&k.as_str()));
        let bad_length = body.values().any(|v| v.as_str().is_none_or(|p| !(8..=49).contains(&p.chars().count())));
        if unknown.is_some() || bad_length || body.is_empty() {
            return error(
                400,
                "iLO.0.10.ExtendedInfo",
                vec![message(
                    "iLO.2.14.PropertyValueBadParam",
                    "The property value is not valid.",
                    &[],
                    "Warning",
                    "Give AuthPassphrase or PrivacyPassphrase, 8 to 49 characters.",
                )],
            );
        }
        let salt = self.salt;
        let account = self.accounts.get_mut(&id).expect("checked by the caller");
        if let Some(p) = body.get("AuthPassphrase").and_then(Value::as_str) {
            account.snmp.auth_passphrase = Some(PasswordHash::of(&salt, p));
        }
        if let Some(p) = body.get("PrivacyPassphrase").and_then(Value::as_str) {
            account.snmp.privacy_passphrase = Some(PasswordHash::of(&salt, p));
        }
        LabResponse::json(
            200,
            json!({"error": {"code": "iLO.0.10.ExtendedInfo", "message": "See @Message.ExtendedInfo for more information.",
                   "@Message.ExtendedInfo": [{"MessageId": "Base.1.17.Success"}]}}),
        )
    }
}

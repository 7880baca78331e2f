//! Dell OEM: iDRAC's forced change of the factory-default password.
//!
//! An iDRAC still holding its factory-default password refuses a standard `ManagerAccount`
//! password PATCH with `IDRAC.2.9.SWC1908` ("the default password is still in use and must be
//! changed"; seen publicly in dell/iDRAC-Redfish-Scripting#346). The way out is Dell's OEM
//! attribute resource (the refusal itself is the accounts module's, since it answers the standard
//! PATCH): a PATCH of `Users.2.Password` (the default `root` account, slot 2) on
//! `Managers/iDRAC.Embedded.1/Oem/Dell/DellAttributes/iDRAC.Embedded.1`, which this module serves
//! (GET lists the `Users.N.*` attributes, as Dell's `GetSetIdracLcSystemAttributesREDFISH.py`
//! reads them).
//!
//! The module also words iDRAC's account-PATCH success: 200, the new `ETag`, and the two messages
//! `Base.1.x.Success` and `IDRAC.2.x.SYS413` beside the resource's identity (a PATCH of
//! `AccountService/Accounts/3` captured in dell/iDRAC-Redfish-Scripting#342).

use super::Bmc;
use super::accounts::{Account, PasswordHash};
use super::wire::{BASE_REGISTRY, LabRequest, LabResponse, error, malformed, message};
use crate::policy;
use serde_json::{Value, json};

/// The iDRAC attribute resource that takes `Users.N.*` settings.
pub(super) const DELL_ATTRIBUTES: &str =
    "/redfish/v1/Managers/iDRAC.Embedded.1/Oem/Dell/DellAttributes/iDRAC.Embedded.1";

/// A message as iDRAC writes it: the registry entry with empty argument and related-property
/// lists (the capture in dell/iDRAC-Redfish-Scripting#342).
fn idrac_message(id: &str, text: &str, severity: &str, resolution: &str) -> Value {
    json!({"MessageId": id, "MessageArgs": [], "RelatedProperties": [], "Message": text, "Severity": severity,
           "Resolution": resolution})
}

/// iDRAC's privilege bitmask for a Redfish role (`Users.N.Privilege`: 511 is Administrator, as in
/// dell/iDRAC-Redfish-Scripting#105; 499 Operator and 1 ReadOnly per RACADM's documented values).
fn privilege_mask(role: &str) -> u32 {
    match role {
        "Administrator" => 511,
        "Operator" => 499,
        "ReadOnly" => 1,
        _ => 0,
    }
}

impl Bmc {
    /// 200 on a changed account: the `ETag` it now has, iDRAC's two success messages and the
    /// resource's identity, never the resource itself.
    pub(super) fn dell_patch_success(&self, account: &Account) -> LabResponse {
        let idrac = self.profile.registry;
        LabResponse::json(
            200,
            json!({
                "@Message.ExtendedInfo": [
                    idrac_message(&format!("{BASE_REGISTRY}.Success"), "The request completed successfully.", "OK", "None."),
                    idrac_message(&format!("{idrac}.SYS413"), "The operation successfully completed.", "Informational",
                                  "No response action is required."),
                ],
                "@odata.context": "/redfish/v1/$metadata#ManagerAccount.ManagerAccount",
                "@odata.id": self.account_uri(account.id),
                "@odata.type": "#ManagerAccount.v1_12_0.ManagerAccount",
                "Id": account.id.to_string(),
                "Name": "User Account",
            }),
        )
        .with_header("ETag", self.etag(account))
    }

    /// `GET` of [`DELL_ATTRIBUTES`]: the `Users.N.*` attributes of every slot (passwords null,
    /// as iDRAC never reads them back).
    pub(super) fn dell_attributes_get(&self) -> LabResponse {
        let mut attributes = serde_json::Map::new();
        for account in self.accounts.values() {
            let n = account.id;
            attributes.insert(format!("Users.{n}.UserName"), json!(account.user));
            attributes.insert(format!("Users.{n}.Password"), Value::Null);
            attributes.insert(format!("Users.{n}.Privilege"), json!(privilege_mask(&account.role)));
            attributes.insert(format!("Users.{n}.Enable"), json!(if account.enabled { "Enabled" } else { "Disabled" }));
            self.dell_snmp_attributes(account, &mut attributes);
        }
        LabResponse::json(
            200,
            json!({
                "@odata.context": "/redfish/v1/$metadata#DellAttributes.DellAttributes",
                "@odata.id": DELL_ATTRIBUTES,
                "@odata.type": "#DellAttributes.v1_0_0.DellAttributes",
                "AttributeRegistry": "ManagerAttributeRegistry.v1_0_0",
                "Attributes": attributes,
                "Description": "This schema provides the oem attributes",
                "Id": "iDRAC.Embedded.1",
                "Name": "OEMAttributeRegistry",
            }),
        )
    }

    /// `PATCH` of [`DELL_ATTRIBUTES`] with `Attributes/Users.2.Password`: sets the password of
    /// slot 2 under the persona's policy and clears the default-password state.
    pub(super) fn dell_attributes(&mut self, request: &LabRequest, _caller: u32) -> LabResponse {
        let Ok(body) = serde_json::from_slice::<Value>(&request.body) else {
            return malformed();
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

//! Dell OEM: iDRAC's forced change of the factory-default password.
//!
//! An iDRAC still holding its factory-default password refuses a standard `ManagerAccount`
//! password PATCH with `IDRAC.2.9.SWC1908` ("the default password is still in use and must be
//! changed"; seen publicly in dell/iDRAC-Redfish-Scripting#346). The way out is Dell's OEM
//! attribute resource (the refusal itself is the accounts module's, since it answers the standard
//! PATCH): a PATCH of `Users.2.Password` (the default `root` account, slot 2) on
//! `Managers/iDRAC.Embedded.1/Oem/Dell/DellAttributes/iDRAC.Embedded.1`, which this module serves.

use super::Bmc;
use super::accounts::PasswordHash;
use super::wire::{LabRequest, LabResponse, error, malformed, message};
use crate::policy;
use serde_json::{Value, json};

/// The iDRAC attribute resource that takes `Users.N.*` settings.
pub(super) const DELL_ATTRIBUTES: &str =
    "/redfish/v1/Managers/iDRAC.Embedded.1/Oem/Dell/DellAttributes/iDRAC.Embedded.1";

impl Bmc {
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

//! A BMC's accounts saved and restored, so a lab restarted from its saved state finds every
//! account as it left it — as a real BMC keeps its accounts across a reboot. Only salted hashes
//! are saved (with the BMC's salt), never a password; so are each account's SNMPv3 settings (iLO's
//! separate passphrases as salted hashes too). Sessions, failed-login counts, lockouts,
//! blocked addresses and settings changed over Redfish are not kept: a reboot clears them too.

use super::Bmc;
use super::accounts::{Account, PasswordHash};
use super::snmp::{SnmpAuth, SnmpPrivacy, SnmpV3};
use serde::{Deserialize, Serialize};

/// The saved accounts of one BMC.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct BmcSnapshot {
    /// The BMC's salt, hex.
    salt: String,
    accounts: Vec<SavedAccount>,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
struct SavedAccount {
    id: u32,
    user: String,
    login_name: String,
    /// Salted SHA-256, hex.
    password: Option<String>,
    role: String,
    enabled: bool,
    change_required: bool,
    dell_default_password: bool,
    /// Previous hashes, newest first.
    history: Vec<String>,
    version: u64,
    /// Absent in a state saved before the lab kept SNMPv3: the account keeps the spec's setting.
    #[serde(default)]
    snmp: Option<SavedSnmp>,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
struct SavedSnmp {
    enabled: bool,
    auth: SnmpAuth,
    privacy: SnmpPrivacy,
    /// Salted SHA-256, hex (iLO only).
    auth_passphrase: Option<String>,
    privacy_passphrase: Option<String>,
}

fn hash_from_hex(text: &str) -> Result<PasswordHash, String> {
    let bytes = hex::decode(text).map_err(|e| format!("a password hash is not hex: {e}"))?;
    let bytes: [u8; 32] = bytes.try_into().map_err(|_| "a password hash is not 32 bytes".to_owned())?;
    Ok(PasswordHash(bytes))
}

impl Bmc {
    /// Every account, free slots included (for introspection).
    pub fn accounts(&self) -> impl Iterator<Item = &Account> {
        self.accounts.values()
    }

    /// Its accounts, to save.
    pub fn snapshot(&self) -> BmcSnapshot {
        let accounts = self
            .accounts
            .values()
            .map(|a| SavedAccount {
                id: a.id,
                user: a.user.clone(),
                login_name: a.login_name.clone(),
                password: a.password.as_ref().map(PasswordHash::hex),
                role: a.role.clone(),
                enabled: a.enabled,
                change_required: a.change_required,
                dell_default_password: a.dell_default_password,
                history: a.history.iter().map(PasswordHash::hex).collect(),
                version: a.version,
                snmp: Some(SavedSnmp {
                    enabled: a.snmp.enabled,
                    auth: a.snmp.auth,
                    privacy: a.snmp.privacy,
                    auth_passphrase: a.snmp.auth_passphrase.as_ref().map(PasswordHash::hex),
                    privacy_passphrase: a.snmp.privacy_passphrase.as_ref().map(PasswordHash::hex),
                }),
            })
            .collect();
        BmcSnapshot { salt: hex::encode(self.salt), accounts }
    }

    /// Replaces its accounts with saved ones. Nothing changes if the snapshot is malformed.
    pub fn restore(&mut self, snapshot: &BmcSnapshot) -> Result<(), String> {
        let salt = hex::decode(&snapshot.salt).map_err(|e| format!("the salt is not hex: {e}"))?;
        let salt: [u8; 16] = salt.try_into().map_err(|_| "the salt is not 16 bytes".to_owned())?;
        let mut accounts = std::collections::BTreeMap::new();
        for saved in &snapshot.accounts {
            let empty = self.empty_slot(saved.id);
            let snmp = match &saved.snmp {
                Some(snmp) => SnmpV3 {
                    enabled: snmp.enabled,
                    auth: snmp.auth,
                    privacy: snmp.privacy,
                    auth_passphrase: snmp.auth_passphrase.as_deref().map(hash_from_hex).transpose()?,
                    privacy_passphrase: snmp.privacy_passphrase.as_deref().map(hash_from_hex).transpose()?,
                },
                None => self.accounts.get(&saved.id).map_or(empty.snmp.clone(), |a| a.snmp.clone()),
            };
            let account = Account {
                user: saved.user.clone(),
                login_name: saved.login_name.clone(),
                password: saved.password.as_deref().map(hash_from_hex).transpose()?,
                role: saved.role.clone(),
                enabled: saved.enabled,
                change_required: saved.change_required,
                dell_default_password: saved.dell_default_password,
                history: saved.history.iter().map(|h| hash_from_hex(h)).collect::<Result<_, _>>()?,
                version: saved.version,
                snmp,
                ..empty
            };
            accounts.insert(saved.id, account);
        }
        self.salt = salt;
        self.next_account = self.next_account.max(accounts.keys().max().map_or(1, |id| id + 1));
        self.accounts = accounts;
        self.sessions.clear();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use crate::clock::LabClock;
    use crate::persona::Persona;

    #[test]
    fn a_restored_bmc_keeps_each_account_s_snmpv3_settings_and_passphrases() {
        use crate::bmc::SnmpSetting;
        let clock = LabClock::default();
        let mut before = super::Bmc::new(Persona::Ilo6.profile(), clock.clone(), "First-Pass-1");
        before.add_account("azsbmc", "Rotated-Pass-2", "Administrator").unwrap();
        assert!(before.set_snmp("azsbmc", SnmpSetting::Des, "Trap-Pass-3"));
        let text = serde_json::to_string(&before.snapshot()).unwrap();
        assert!(!text.contains("Trap-Pass-3"), "hashes only");

        // A fresh BMC (as a restarted lab builds it from its spec) takes the saved settings, not
        // the spec's.
        let mut after = super::Bmc::new(Persona::Ilo6.profile(), clock, "First-Pass-1");
        after.add_account("azsbmc", "Rotated-Pass-2", "Administrator").unwrap();
        after.restore(&serde_json::from_str(&text).unwrap()).unwrap();
        let snmp = &after.account("azsbmc").unwrap().snmp;
        assert_eq!((snmp.enabled, snmp.privacy), (true, crate::bmc::SnmpPrivacy::Des));
        assert_eq!(after.snmp_passphrases_are("azsbmc", "Trap-Pass-3"), (true, true));
    }

    #[test]
    fn a_restored_bmc_holds_the_saved_passwords_and_history() {
        let clock = LabClock::default();
        let mut before = super::Bmc::new(Persona::Xcc2.profile(), clock.clone(), "First-Pass-1");
        before.add_account("azsbmc", "Rotated-Pass-2", "Administrator").unwrap();
        before.remember_password("azsbmc", "Older-Pass-3");
        let saved = before.snapshot();
        let text = serde_json::to_string(&saved).unwrap();
        assert!(!text.contains("Rotated-Pass-2") && !text.contains("First-Pass-1"), "hashes only");

        let mut after = super::Bmc::new(Persona::Xcc2.profile(), clock, "Other-Start-9");
        after.restore(&serde_json::from_str(&text).unwrap()).unwrap();
        assert!(after.password_is("azsbmc", "Rotated-Pass-2") && after.password_is("USERID", "First-Pass-1"));
        assert!(!after.password_is("USERID", "Other-Start-9"));
        assert_eq!(after.account("azsbmc").unwrap().history.len(), 1);
        assert_eq!(after.snapshot(), saved);
    }
}

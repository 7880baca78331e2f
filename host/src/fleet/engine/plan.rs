//! What a preflighted run will do, shown before it does it: per BMC the profile, the plugin that
//! will hold its credentials, how its certificate is trusted and when it changes; and the PEP
//! call that ends the run. `--dry-run` prints it; a run on a terminal asks about it first.

use super::bmcs::{Bmc, Shared, lock};
use crate::pep::PepReport;
use serde::Serialize;

/// A preflighted run's plan.
#[derive(Clone, Debug, Serialize)]
pub struct Plan {
    /// The stamp.
    pub stamp: String,
    /// The BMC account rotated on every BMC.
    pub account: String,
    /// Per BMC, in the order of the inventory.
    pub bmcs: Vec<PlannedBmc>,
    /// The PEP endpoint that answered the check, and the call the run will make.
    pub pep: Option<PlannedPep>,
}

/// One BMC in a plan.
#[derive(Clone, Debug, Serialize)]
pub struct PlannedBmc {
    /// Inventory name.
    pub name: String,
    /// Address.
    pub address: String,
    /// Hardware profile.
    pub profile: String,
    /// `id@version` of the plugin that changes it.
    pub plugin: String,
    /// The plugin file's SHA-256 the profile pins, if it pins one.
    pub plugin_sha256: Option<String>,
    /// How its certificate is trusted.
    pub tls: String,
    /// Controller family and firmware, from preflight.
    pub family: String,
    /// Firmware, from preflight.
    pub firmware: String,
    /// When it changes.
    pub order: ChangeOrder,
}

/// When a BMC changes in a run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ChangeOrder {
    /// With the first batch: it can go back to the old password if the run rolls back.
    First,
    /// After every other BMC holds the new password: it cannot go back (a reuse cycle or a
    /// minimum change interval).
    Last,
}

/// The PEP step of a plan.
#[derive(Clone, Debug, Serialize)]
pub struct PlannedPep {
    /// The ERCS endpoint that answered the check.
    pub endpoint: String,
    /// The call the run will make, the password shown as `<SecureString>`.
    pub call: String,
}

impl Plan {
    pub(crate) fn of(stamp: &str, account: &str, bmcs: &[Shared<Bmc>], pep: Option<&PepReport>) -> Plan {
        let bmcs = bmcs
            .iter()
            .map(|b| {
                let b = lock(b);
                let (info, profile) = (&b.member.plugin.info, &b.member.profile);
                PlannedBmc {
                    name: b.name().to_owned(),
                    address: b.member.entry.endpoint.to_string(),
                    profile: profile.name.clone(),
                    plugin: format!("{}@{}", info.id, info.version),
                    plugin_sha256: profile.plugin_sha256.clone(),
                    tls: b.member.entry.tls.to_string(),
                    family: b.family.clone(),
                    firmware: b.firmware.clone(),
                    order: if b.rollback_safe() { ChangeOrder::First } else { ChangeOrder::Last },
                }
            })
            .collect();
        let pep = pep.map(|p| PlannedPep { endpoint: p.endpoint.clone(), call: p.call.clone() });
        Plan { stamp: stamp.to_owned(), account: account.to_owned(), bmcs, pep }
    }

    /// The BMCs that change last, because they cannot go back.
    pub fn last(&self) -> impl Iterator<Item = &PlannedBmc> {
        self.bmcs.iter().filter(|b| b.order == ChangeOrder::Last)
    }
}

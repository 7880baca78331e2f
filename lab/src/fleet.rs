//! Fleet specs (what to simulate) and inventories (what the orchestrator reads back).
//!
//! A spec:
//!
//! ```toml
//! stamp = "lab"              # the stamp name written to the inventory
//! password = "Lab-Start-1"   # initial password of every account (lab only; never in inventories)
//! user = "azsbmc"            # the rotation account, created on every BMC (default: none)
//!
//! [fleet]                    # shorthand: persona = count
//! dell-idrac9 = 8
//! hpe-ilo5 = 4
//!
//! [[group]]                  # or groups, with their own password and faults
//! persona = "lenovo-xcc2"
//! count = 2
//! faults = { latency_ms = 20, apply_then_drop = ["PATCH /Accounts/ x1"] }
//! policy = { reuse_cycle = 5, min_change_interval_hours = 24 }
//!
//! [[accounts]]               # more accounts on every BMC
//! user = "monitor"
//! role = "ReadOnly"
//!
//! [[group]]                  # a node being added to the stamp: factory credentials only
//! persona = "dell-idrac9"
//! count = 1
//! new_node = true
//! password = "calvin"        # the factory password of the persona's default account
//! ```
//!
//! The inventory the lab writes (format agreed with the orchestrator; no secret in it):
//!
//! ```toml
//! stamp = "lab"
//! bmc_user = "azsbmc"
//!
//! [[bmc]]
//! name = "dell-idrac9-01"
//! address = "127.0.0.1:40123"
//! persona = "dell-idrac9"
//! profile = "dell-poweredge-r640"
//! tls = "sha256:3f…"
//! ```

use crate::bmc::SnmpSetting;
use crate::clock::LabClock;
use crate::faults::Faults;
use crate::https::{Listener, loopback_address};
use crate::persona::Persona;
use crate::server::{BmcSetup, SimulatedBmc};
use crate::tls::TlsIdentity;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

impl<'de> Deserialize<'de> for Persona {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let name = String::deserialize(d)?;
        name.parse().map_err(serde::de::Error::custom)
    }
}

/// A group of identical BMCs.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Group {
    /// The persona.
    pub persona: Persona,
    /// How many.
    pub count: u32,
    /// Overrides the spec's password.
    pub password: Option<String>,
    /// Faults of every BMC of the group.
    #[serde(default)]
    pub faults: Faults,
    /// Password-policy settings of every BMC of the group.
    #[serde(default)]
    pub policy: PolicySettings,
    /// The rotation account's SNMPv3 case on every BMC of the group: `ok` (SHA and AES, the
    /// default), `off`, `des` or `md5`. One BMC per group makes it per BMC.
    #[serde(default)]
    pub snmp: SnmpSetting,
    /// A node being added to the stamp (`bmc-rotate onboard`): its BMC has only the persona's
    /// factory account (`root`, `Administrator`, `USERID`, `admin`) with the group's `password`,
    /// and none of the spec's accounts, the rotation account included.
    #[serde(default)]
    pub new_node: bool,
}

/// Password-policy settings a spec may change (as an administrator would on the BMC).
#[derive(Clone, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct PolicySettings {
    /// Fewest characters.
    pub min_length: Option<u32>,
    /// Most characters.
    pub max_length: Option<u32>,
    /// Previous passwords refused.
    pub reuse_cycle: Option<u32>,
    /// Hours between two changes.
    pub min_change_interval_hours: Option<u32>,
}

impl PolicySettings {
    fn apply(&self, rules: &mut crate::persona::PolicyRules) {
        let set = |field: &mut u32, value: Option<u32>| {
            if let Some(v) = value {
                *field = v;
            }
        };
        set(&mut rules.min_length, self.min_length);
        set(&mut rules.max_length, self.max_length);
        set(&mut rules.reuse_cycle, self.reuse_cycle);
        set(&mut rules.min_change_interval_hours, self.min_change_interval_hours);
    }
}

/// An extra account created on every BMC.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct AccountSpec {
    /// `UserName`.
    pub user: String,
    /// `RoleId` (default `ReadOnly`).
    #[serde(default = "read_only")]
    pub role: String,
    /// Its password (default: the spec's).
    pub password: Option<String>,
}

fn read_only() -> String {
    "ReadOnly".into()
}

/// What a lab simulates.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct FleetSpec {
    /// The stamp name for the inventory.
    #[serde(default = "default_stamp")]
    pub stamp: String,
    /// Initial password of every account.
    pub password: String,
    /// The rotation account created on every BMC, if any.
    pub user: Option<String>,
    /// More accounts created on every BMC.
    #[serde(default)]
    pub accounts: Vec<AccountSpec>,
    /// Shorthand groups: persona name to count.
    #[serde(default)]
    pub fleet: BTreeMap<Persona, u32>,
    /// Detailed groups.
    #[serde(default)]
    pub group: Vec<Group>,
    /// The stamp's PEP answers `Test-AzureStack` with this test failed (e.g.
    /// `AzsInfraRoleSummary`): not ready for secret rotation. Unset, every test passes.
    #[serde(default)]
    pub pep_not_ready: Option<String>,
}

fn default_stamp() -> String {
    "lab".into()
}

impl FleetSpec {
    /// Parses a spec; errors name the line, the field and what was expected.
    pub fn parse(text: &str) -> Result<FleetSpec, String> {
        let spec: FleetSpec = toml::from_str(text).map_err(|e| e.to_string())?;
        if let Some(i) = spec.group.iter().position(|g| g.new_node && g.password.is_none()) {
            return Err(format!(
                "group {}: a `new_node` group needs its own `password`, the factory password of its BMCs (a new node \
                 does not have the stamp's)",
                i + 1
            ));
        }
        if spec.fleet.is_empty() && spec.group.is_empty() {
            return Err(
                "the spec simulates no BMC: add a `[fleet]` table (e.g. `dell-idrac9 = 2`) or a `[[group]]`".into()
            );
        }
        Ok(spec)
    }

    /// Reads and parses a spec file; errors start with the file name.
    pub fn load(path: &Path) -> Result<FleetSpec, String> {
        let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
        FleetSpec::parse(&text).map_err(|e| format!("{}: {e}", path.display()))
    }

    /// Every group, the shorthand ones first.
    pub fn groups(&self) -> Vec<Group> {
        let mut groups: Vec<Group> = self
            .fleet
            .iter()
            .map(|(persona, count)| Group {
                persona: *persona,
                count: *count,
                password: None,
                faults: Faults::default(),
                policy: PolicySettings::default(),
                snmp: SnmpSetting::Ok,
                new_node: false,
            })
            .collect();
        groups.extend(self.group.iter().cloned());
        groups
    }
}

/// One inventory entry.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct InventoryBmc {
    /// Name in the fleet.
    pub name: String,
    /// `host:port`.
    pub address: String,
    /// The simulated persona.
    pub persona: String,
    /// The hardware profile the orchestrator should use.
    pub profile: String,
    /// TLS policy: the certificate pin.
    pub tls: String,
}

/// The inventory the lab writes for its fleet.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct Inventory {
    /// Stamp name.
    pub stamp: String,
    /// The BMC account every BMC shares, if the spec created one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bmc_user: Option<String>,
    /// The BMCs.
    pub bmc: Vec<InventoryBmc>,
}

impl Persona {
    /// The hardware profile bmc-rotate ships for a server with this BMC.
    pub fn hardware_profile(self) -> &'static str {
        match self {
            Persona::Idrac9 => "dell-poweredge-r640",
            Persona::Idrac10 => "dell-poweredge-r770",
            Persona::Ilo5 => "hpe-proliant-dl380-gen10",
            Persona::Ilo6 => "hpe-proliant-dl380-gen11",
            Persona::Ilo7 => "hpe-proliant-dl380-gen12",
            Persona::Xcc1 => "lenovo-thinksystem-sr650",
            Persona::Xcc2 => "lenovo-thinksystem-sr650-v3",
            Persona::Xcc3 => "lenovo-thinksystem-sr650-v4",
            // Named, never discovered: a generic BMC is rotated by the generic plugin only where
            // the inventory says so.
            Persona::DmtfGeneric => "generic-redfish",
        }
    }
}

/// Gives the BMC of this name (and loopback address) the identity it presents.
pub type IdentitySource<'a> = &'a mut dyn FnMut(&str, IpAddr) -> anyhow::Result<TlsIdentity>;

/// A running fleet: every BMC on one listening socket, each at its own loopback address
/// (`127.0.0.1`, `127.0.0.2`, … in spec order; see [`crate::https`]) on the listener's port.
pub struct Lab {
    spec: FleetSpec,
    clock: LabClock,
    changes: Arc<AtomicU64>,
    bmcs: Vec<SimulatedBmc>,
    listener: Arc<Listener>,
}

impl Lab {
    /// Starts every BMC of the spec on a free port, each with a fresh certificate.
    pub async fn start(spec: FleetSpec) -> anyhow::Result<Lab> {
        Lab::start_with(spec, 0, &mut |name, ip| TlsIdentity::self_signed(&[name, &ip.to_string()])).await
    }

    /// Starts every BMC of the spec on `port` (0: a free one), with the identities `identity`
    /// gives: the same spec, port and identities give the same inventory.
    pub async fn start_with(spec: FleetSpec, port: u16, identity: IdentitySource<'_>) -> anyhow::Result<Lab> {
        let listener = Listener::loopback(port).await?;
        let clock = LabClock::default();
        let changes = Arc::new(AtomicU64::new(0));
        let mut bmcs = Vec::new();
        // Numbering runs on across the groups of one persona: names key the inventory and the
        // `--certs-out` files, so two groups must not both start at `-01`.
        let mut numbered: HashMap<Persona, u32> = HashMap::new();
        for group in spec.groups() {
            let password = group.password.clone().unwrap_or_else(|| spec.password.clone());
            for _ in 0..group.count {
                let n = numbered.entry(group.persona).or_default();
                *n += 1;
                let name = format!("{}-{:02}", group.persona.name(), *n);
                let ip = IpAddr::V4(loopback_address(bmcs.len()));
                let setup = BmcSetup {
                    name: &name,
                    persona: group.persona,
                    password: &password,
                    faults: group.faults.clone(),
                    clock: clock.clone(),
                    changes: changes.clone(),
                };
                let bmc = SimulatedBmc::serve(&listener, ip, identity(&name, ip)?, setup)?;
                {
                    let mut state = bmc.state();
                    group.policy.apply(state.policy_mut());
                    // A new node keeps its factory state: the default account only, as the
                    // persona created it.
                    if !group.new_node {
                        let rotation = spec.user.iter().map(|u| (u.as_str(), "Administrator", password.as_str()));
                        let extra = spec
                            .accounts
                            .iter()
                            .map(|a| (a.user.as_str(), a.role.as_str(), a.password.as_deref().unwrap_or(&password)));
                        for (user, role, pw) in rotation.chain(extra) {
                            if state.account(user).is_none() && state.add_account(user, pw, role).is_none() {
                                anyhow::bail!("{name}: no free account slot for `{user}`");
                            }
                        }
                        let rotation_user =
                            spec.user.as_deref().unwrap_or(state.profile().default_account.1).to_owned();
                        state.set_snmp(&rotation_user, group.snmp, &password);
                    }
                }
                bmcs.push(bmc);
            }
        }
        Ok(Lab { spec, clock, changes, bmcs, listener })
    }

    /// The port every BMC is on.
    pub fn port(&self) -> u16 {
        self.listener.port()
    }

    /// How many requests that may have changed a BMC (anything but GET and HEAD) were answered.
    pub fn changes(&self) -> u64 {
        self.changes.load(Ordering::Relaxed)
    }

    /// The spec the lab runs.
    pub fn spec(&self) -> &FleetSpec {
        &self.spec
    }

    /// The BMCs, in spec order.
    pub fn bmcs(&self) -> &[SimulatedBmc] {
        &self.bmcs
    }

    /// The BMC with this name.
    pub fn bmc(&self, name: &str) -> Option<&SimulatedBmc> {
        self.bmcs.iter().find(|b| b.name() == name)
    }

    /// The clock every BMC shares.
    pub fn clock(&self) -> &LabClock {
        &self.clock
    }

    /// The inventory of this fleet.
    pub fn inventory(&self) -> Inventory {
        Inventory {
            stamp: self.spec.stamp.clone(),
            bmc_user: self.spec.user.clone(),
            bmc: self
                .bmcs
                .iter()
                .map(|b| InventoryBmc {
                    name: b.name().to_owned(),
                    address: b.addr().to_string(),
                    persona: b.persona().name().to_owned(),
                    profile: b.persona().hardware_profile().to_owned(),
                    tls: b.pin(),
                })
                .collect(),
        }
    }

    /// The inventory as TOML, with a header comment.
    pub fn inventory_toml(&self) -> String {
        let body = toml::to_string(&self.inventory()).expect("inventory serialises");
        format!("# Written by bmc-lab for the fleet it serves. No password is ever written here.\n{body}")
    }

    /// A table of names, personas, addresses and certificate fingerprints.
    pub fn table(&self) -> String {
        let mut out = format!("{:<20} {:<14} {:<22} {}\n", "NAME", "PERSONA", "ADDRESS", "CERTIFICATE SHA-256");
        for b in &self.bmcs {
            out.push_str(&format!(
                "{:<20} {:<14} {:<22} {}\n",
                b.name(),
                b.persona().name(),
                b.addr(),
                hex::encode(b.sha256())
            ));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shorthand_and_groups() {
        let spec = FleetSpec::parse(
            r#"
            password = "Lab-Start-1"
            user = "azsbmc"
            [fleet]
            dell-idrac9 = 2
            hpe-ilo5 = 1
            [[group]]
            persona = "lenovo-xcc2"
            count = 1
            faults = { latency_ms = 5, apply_then_drop = ["PATCH /Accounts/ x1"] }
            "#,
        )
        .unwrap();
        let groups = spec.groups();
        assert_eq!(groups.len(), 3);
        assert_eq!(groups[2].faults.apply_then_drop[0].times, Some(1));
    }

    #[test]
    fn errors_name_line_and_field() {
        let err = FleetSpec::parse("password = \"x\"\n[fleet]\ndell-idrac7 = 2\n").unwrap_err();
        assert!(err.contains("line 3") && err.contains("unknown persona `dell-idrac7`"), "{err}");
        let err = FleetSpec::parse("password = \"x\"\n[[group]]\npersona = \"hpe-ilo5\"\ncount = 1\nfault = {}\n")
            .unwrap_err();
        assert!(err.contains("line 5") && err.contains("unknown field `fault`"), "{err}");
        let err = FleetSpec::parse("[fleet]\nhpe-ilo5 = 1\n").unwrap_err();
        assert!(err.contains("missing field `password`"), "{err}");
        let err = FleetSpec::parse("password = \"x\"\n").unwrap_err();
        assert!(err.contains("simulates no BMC"), "{err}");
        let err = FleetSpec::parse("password = \"x\"\n[[group]]\npersona = \"hpe-ilo5\"\ncount = 1\nnew_node = true\n")
            .unwrap_err();
        assert!(err.contains("group 1") && err.contains("factory password"), "{err}");
    }
}

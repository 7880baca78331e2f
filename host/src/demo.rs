//! A whole stamp on loopback — simulated BMCs of every vendor plus a privileged-endpoint
//! simulator — with the inventory bmc-rotate reads for it: what `bmc-rotate demo` runs, and what
//! the end-to-end tests and the fleet benchmark drive.

use crate::fleet::engine::PepStep;
use crate::pep::native::NativeClient;
use crate::pep::{PepEndpoint, PepTarget};
use bmc_lab::pep::{PepConfig, PepSimulator};
use bmc_lab::{FleetSpec, Lab};
use secrecy::SecretString;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

/// The lab's CloudAdmin password (lab only).
pub const LAB_CLOUDADMIN_PASSWORD: &str = "Cloud-Adm1n-Lab!";

/// The whole PEP step against the lab: on loopback it takes seconds, so a stuck simulator fails
/// a test in minutes rather than after the operator's 30.
pub const LAB_PEP_DEADLINE: Duration = Duration::from_secs(120);

/// Simulated BMCs, a PEP and the inventory file naming them.
pub struct StampLab {
    /// The BMCs.
    pub lab: Lab,
    /// The privileged endpoint (shared with the introspection endpoint, when one is served).
    pub pep: Arc<PepSimulator>,
    /// The inventory written for them.
    pub inventory: PathBuf,
}

impl StampLab {
    /// Starts the fleet `spec` describes and a PEP, and writes `dir/inventory.toml`.
    pub async fn start(spec: FleetSpec, pep: PepConfig, dir: &Path) -> anyhow::Result<StampLab> {
        let not_ready = spec.pep_not_ready.clone();
        let lab = Lab::start(spec).await?;
        let pep = Arc::new(PepSimulator::start(pep).await?);
        pep.set_faults(bmc_lab::pep::PepFaults { not_ready, ..Default::default() });
        std::fs::create_dir_all(dir)?;
        let inventory = dir.join("inventory.toml");
        let stamp = StampLab { lab, pep, inventory };
        std::fs::write(&stamp.inventory, stamp.inventory_toml())?;
        Ok(stamp)
    }

    /// The inventory: the lab's BMCs (pinned certificates) and the PEP's endpoints.
    pub fn inventory_toml(&self) -> String {
        let endpoints: Vec<String> = self.pep.addrs().iter().map(|a| format!("\"{a}\"")).collect();
        format!(
            "{}\n[pep]\nendpoints = [{}]\ncloudadmin = '{}'\n",
            self.lab.inventory_toml(),
            endpoints.join(", "),
            self.pep.account()
        )
    }

    /// The PEP step against this lab's simulator, logging in as CloudAdmin with `password`.
    pub fn pep_step(&self, password: &str) -> PepStep<NativeClient> {
        let endpoints =
            self.pep.addrs().iter().map(|a| PepEndpoint { host: a.ip().to_string(), port: a.port(), tls: None });
        let password = SecretString::from(password.to_owned());
        PepStep {
            client: NativeClient,
            target: PepTarget::new(endpoints.collect(), self.pep.account(), password, LAB_PEP_DEADLINE),
            close: None,
            readiness: false,
        }
    }

    /// Serves the lab's introspection endpoint on a free loopback port: what the BMCs and the PEP
    /// hold, asked without logging in (`bmc_lab::introspect::IntrospectClient`).
    pub async fn introspection(&self) -> anyhow::Result<bmc_lab::introspect::Introspection> {
        let bind = std::net::SocketAddr::from(([127, 0, 0, 1], 0));
        bmc_lab::introspect::Introspection::serve(bind, self.lab.bmcs(), Some(self.pep.clone())).await
    }

    /// How many BMCs accept `password` for `user`.
    pub fn holding(&self, user: &str, password: &str) -> usize {
        self.lab.bmcs().iter().filter(|b| b.state().password_is(user, password)).count()
    }
}

/// A mixed fleet: two of each vendor generation the lab simulates.
pub fn mixed_fleet(user: &str, password: &str, per_persona: u32) -> FleetSpec {
    let personas = bmc_lab::Persona::ALL.iter().map(|p| format!("{} = {per_persona}", p.name())).collect::<Vec<_>>();
    let text =
        format!("stamp = \"demo\"\npassword = \"{password}\"\nuser = \"{user}\"\n[fleet]\n{}\n", personas.join("\n"));
    FleetSpec::parse(&text).expect("the demo fleet spec parses")
}

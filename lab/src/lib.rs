//! bmc-lab: Redfish BMC simulators that bmc-rotate's tests, benchmarks and demo run against.
//!
//! - [`persona`]: what makes each vendor family behave as it does (iDRAC9/10, iLO5/6, XCC2/3).
//! - [`bmc`]: one BMC as a state machine (accounts, sessions, ETags, policies, lockouts).
//! - [`server`]: a BMC behind a real HTTPS listener, with [`faults`] injected.
//! - [`fleet`]: fleet specs in, running labs and inventories out.
//! - [`pep`]: the privileged endpoint (WinRM + NTLM + PSRP, JEA NoLanguage semantics).
//! - [`https`], [`tls`]: the shared transport (loopback TLS, one listening socket for a whole
//!   fleet, fresh or saved certificates).
//! - [`stamp`]: a fleet and a PEP with their inventory and secrets in one directory, restartable.
//! - [`introspect`]: what a lab's accounts hold, asked without logging in.
//! - [`reach`]: the self-check that a large fleet is served and reachable.

pub mod bmc;
pub mod clock;
pub mod faults;
pub mod fleet;
pub mod https;
pub mod introspect;
pub mod pep;
pub mod persona;
pub mod policy;
pub mod reach;
pub mod server;
pub mod stamp;
pub mod tls;

pub use clock::LabClock;
pub use faults::Faults;
pub use fleet::{FleetSpec, Inventory, Lab};
pub use https::HttpsServer;
pub use persona::Persona;
pub use server::SimulatedBmc;
pub use tls::TlsIdentity;

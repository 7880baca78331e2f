//! bmc-lab: Redfish BMC simulators that bmc-rotate's tests, benchmarks and demo run against.
//!
//! - [`persona`]: what makes each vendor family behave as it does (iDRAC9/10, iLO5/6, XCC2/3).
//! - [`bmc`]: one BMC as a state machine (accounts, sessions, ETags, policies, lockouts).
//! - [`server`]: a BMC behind a real HTTPS listener, with [`faults`] injected.
//! - [`fleet`]: fleet specs in, running labs and inventories out.
//! - [`pep`]: the privileged endpoint (WinRM + NTLM + PSRP, JEA NoLanguage semantics).
//! - [`https`], [`tls`]: the shared transport (loopback TLS with fresh certificates).

pub mod bmc;
pub mod clock;
pub mod faults;
pub mod fleet;
pub mod https;
pub mod pep;
pub mod persona;
pub mod policy;
pub mod server;
pub mod tls;

pub use clock::LabClock;
pub use faults::Faults;
pub use fleet::{FleetSpec, Inventory, Lab};
pub use https::HttpsServer;
pub use persona::Persona;
pub use server::SimulatedBmc;
pub use tls::TlsIdentity;

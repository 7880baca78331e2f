//! bmc-rotate: rotates BMC passwords across an Azure Stack Hub fleet through sandboxed vendor
//! plugins, then hands the new credential to the privileged endpoint.
//!
//! - [`gateway`]: the only path from a plugin to the network.
//! - [`runtime`]: the wasm engine, plugin loading and the per-job sandbox.
//! - [`cli`]: the command line.
//! - [`files`]: bounded, type-checked reads of every file the tool is given.
//! - [`paths`]: where files go when the operator does not say.
//! - [`suite`]: what a conformance run (`plugin test`) reports, and the run against a real BMC.
//!
//! The `lab` feature (on by default) adds [`demo`] and [`conformance`], which run the lab's
//! simulators in-process; a production build turns it off (`--no-default-features`).

pub mod cli;
#[cfg(feature = "lab")]
pub mod conformance;
#[cfg(feature = "lab")]
pub mod demo;
pub mod files;
pub mod fleet;
pub mod gateway;
pub mod paths;
pub mod pep;
pub mod platform;
#[cfg(feature = "lab")]
pub mod plugin_build;
pub mod runtime;
pub mod secrets;
pub mod suite;

//! bmc-rotate: rotates BMC passwords across an Azure Stack Hub fleet through sandboxed vendor
//! plugins, then hands the new credential to the privileged endpoint.
//!
//! - [`gateway`]: the only path from a plugin to the network.
//! - [`runtime`]: the wasm engine, plugin loading and the per-job sandbox.
//! - [`cli`]: the command line.

pub mod cli;
pub mod conformance;
pub mod demo;
pub mod fleet;
pub mod gateway;
pub mod pep;
pub mod plugin_build;
pub mod runtime;
pub mod secrets;

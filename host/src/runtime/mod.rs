//! The plugin runtime: wasmtime engine, plugin loading with version and import checks, and the
//! per-job sandbox (fresh store, memory limit, deadline, deny-all WASI, host imports).
//!
//! - [`config`]: settings shared by every job.
//! - [`engine`]: the engine, the linker and plugin loading.
//! - [`capabilities`]: a plugin's declared requests, enforced by the `http` import.
//! - [`metadata`]: what is read from a plugin's bytes before compiling.
//! - [`signature`]: minisign signatures of plugin files, checked before compiling.
//! - [`wit`]: the contract versions and the seam between them and the host.
//! - [`host`]: the host imports, one file per interface, version-independent.
//! - `job`: the store data of one call; `limits`: its memory budget; `plugin`: a loaded plugin
//!   and its calls.

mod cache;
pub mod capabilities;
pub mod config;
pub mod contract;
mod engine;
pub mod host;
mod job;
mod limits;
pub mod metadata;
mod plugin;
pub mod signature;
pub mod wit;

pub use cache::ArtifactCache;
pub use config::{EPOCH_TICK, RuntimeConfig};
pub use contract::{
    ErrorKind, PasswordPolicy, PluginError, PluginInfo, ProbeResult, SnmpAuthentication, SnmpPrivacy, SnmpV3, Target,
};
pub use engine::{LoadError, Runtime, plugin_files, read_plugin};
pub use host::log::{GuestLogLine, Level};
pub use host::secrets::{SecretBindings, SecretName};
pub use plugin::{CallContext, CallError, Outcome, Plugin};

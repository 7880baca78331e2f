//! The plugin runtime: wasmtime engine, plugin loading with version and import checks, and the
//! per-job sandbox (fresh store, memory limit, deadline, deny-all WASI, host imports).

mod bindings;
mod cache;
pub mod contract;
mod engine;
pub mod metadata;
mod plugin;
mod state;

pub use cache::ArtifactCache;
pub use contract::{ErrorKind, PasswordPolicy, PluginError, PluginInfo, ProbeResult, Target};
pub use engine::{EPOCH_TICK, LoadError, Runtime, RuntimeConfig};
pub use plugin::{CallContext, CallError, Outcome, Plugin};
pub use state::{GuestLogLine, SecretBindings};

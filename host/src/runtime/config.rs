//! Sandbox settings shared by every job, and the epoch tick that bounds guest execution.

use super::host::clock::{SystemClock, WallClock};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// How often the epoch advances. Guests yield to the executor at every tick and are stopped at
/// the first tick past their deadline, so this is also the deadline's resolution.
pub const EPOCH_TICK: Duration = Duration::from_millis(10);

/// Sandbox settings shared by every job.
#[derive(Clone, Debug)]
pub struct RuntimeConfig {
    /// Where compiled plugins are cached; `None` disables the cache.
    pub cache_dir: Option<PathBuf>,
    /// Linear memory a job may use.
    pub max_memory: usize,
    /// Wall-clock budget of one plugin call.
    pub call_budget: Duration,
    /// The wall clock guests see through the `clock` import.
    pub clock: Arc<dyn WallClock>,
}

impl Default for RuntimeConfig {
    fn default() -> Self {
        RuntimeConfig {
            cache_dir: crate::paths::plugin_cache(),
            max_memory: 64 << 20,
            call_budget: Duration::from_secs(300),
            clock: Arc::new(SystemClock),
        }
    }
}

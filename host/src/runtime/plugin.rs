//! A loaded plugin and its calls. Each call runs in a fresh store (fresh memory, fresh handle
//! table) that is dropped afterwards, so nothing a guest does survives into the next job.

use super::bindings::VendorPluginPre;
use super::contract::{PluginError, PluginInfo, ProbeResult, Target};
use super::engine::{EPOCH_TICK, RuntimeConfig};
use super::metadata::Metadata;
use super::state::{GuestLogLine, JobState, SecretBindings};
use crate::gateway::Gateway;
use std::sync::Arc;
use std::time::{Duration, Instant};
use wasmtime::{Store, UpdateDeadline};

/// Time allowed past the budget before the host gives up on a call that does not yield (a host
/// import stuck beyond its own timeout); epochs normally stop the guest first.
const GRACE: Duration = Duration::from_secs(2);

/// Why a plugin call failed.
#[derive(Debug, thiserror::Error)]
pub enum CallError {
    /// The plugin ran and returned a typed error.
    #[error("{0}")]
    Plugin(PluginError),
    /// The call ran past its wall-clock budget and was stopped.
    #[error("the plugin did not finish within its {0:?} budget and was stopped")]
    Deadline(Duration),
    /// The guest tried to grow its memory past the limit.
    #[error(
        "the plugin exceeded its memory limit of {limit_mib} MiB (it asked for {requested_mib} MiB) and was stopped"
    )]
    Memory {
        /// The limit.
        limit_mib: usize,
        /// What was asked for.
        requested_mib: usize,
    },
    /// The guest panicked; the text is the panic message the SDK reported.
    #[error("the plugin panicked: {0}")]
    Panic(String),
    /// Any other trap.
    #[error("the plugin crashed: {0}")]
    Trap(String),
}

impl CallError {
    /// The typed plugin error, if that is what this is.
    pub fn plugin_error(&self) -> Option<&PluginError> {
        match self {
            CallError::Plugin(e) => Some(e),
            _ => None,
        }
    }
}

/// Everything a call needs besides the target: where HTTP goes and which secrets are bound.
#[derive(Clone, Default)]
pub struct CallContext {
    /// The BMC's gateway; `None` denies HTTP.
    pub gateway: Option<Arc<Gateway>>,
    /// Secrets bound for this call.
    pub secrets: SecretBindings,
    /// Overrides the runtime's call budget.
    pub budget: Option<Duration>,
}

/// The result of a call, with what the guest logged.
pub struct Outcome<T> {
    /// What the call returned.
    pub result: Result<T, CallError>,
    /// The guest's log lines (scrubbed, bounded).
    pub log: Vec<GuestLogLine>,
    /// Wall-clock time of the call, instantiation included.
    pub elapsed: Duration,
}

enum Export<'a> {
    Info,
    Probe(&'a Target),
    Verify(&'a Target),
    ChangePassword(&'a Target),
}

enum Returned {
    Info(PluginInfo),
    Probe(Result<ProbeResult, PluginError>),
    Unit(Result<(), PluginError>),
}

/// A plugin, compiled and pre-instantiated.
pub struct Plugin {
    pre: VendorPluginPre<JobState>,
    config: RuntimeConfig,
    /// Where it was loaded from.
    pub origin: String,
    /// SHA-256 of its bytes, hex.
    pub sha256: String,
    /// What was read from its bytes.
    pub metadata: Metadata,
    /// What its `info` export returned at load time.
    pub info: PluginInfo,
    /// Whether the compiled code came from the disk cache.
    pub from_cache: bool,
}

impl Plugin {
    pub(crate) async fn new(
        pre: VendorPluginPre<JobState>,
        config: RuntimeConfig,
        origin: String,
        sha256: String,
        metadata: Metadata,
        from_cache: bool,
    ) -> Result<Plugin, String> {
        // `info` runs before the plugin has a name: its log lines are attributed to the file.
        let info = call(&pre, &config, &origin, CallContext::default(), Export::Info)
            .await
            .map(|r| match r {
                Returned::Info(i) => Ok(i),
                _ => unreachable!("info returns info"),
            })
            .result
            .map_err(|e| format!("its `info` export failed: {e}"))?;
        if info.id.is_empty() {
            return Err("its `info` export returned an empty id".into());
        }
        let plugin = Plugin { pre, config, origin, sha256, metadata, info, from_cache };
        Ok(plugin)
    }

    /// Calls `info` (no BMC, no secrets).
    pub async fn call_info(&self) -> Outcome<PluginInfo> {
        self.call(CallContext::default(), Export::Info).await.map(|r| match r {
            Returned::Info(i) => Ok(i),
            _ => unreachable!("info returns info"),
        })
    }

    /// Calls `probe`.
    pub async fn probe(&self, ctx: CallContext, target: &Target) -> Outcome<ProbeResult> {
        self.call(ctx, Export::Probe(target)).await.map(|r| match r {
            Returned::Probe(p) => p.map_err(CallError::Plugin),
            _ => unreachable!("probe returns a probe result"),
        })
    }

    /// Calls `verify`.
    pub async fn verify(&self, ctx: CallContext, target: &Target) -> Outcome<()> {
        self.call(ctx, Export::Verify(target)).await.map(unit)
    }

    /// Calls `change-password`.
    pub async fn change_password(&self, ctx: CallContext, target: &Target) -> Outcome<()> {
        self.call(ctx, Export::ChangePassword(target)).await.map(unit)
    }

    async fn call(&self, ctx: CallContext, export: Export<'_>) -> Outcome<Returned> {
        call(&self.pre, &self.config, &self.info.id, ctx, export).await
    }
}

/// One export call in a fresh store, with the deadline and memory limit in force.
async fn call(
    pre: &VendorPluginPre<JobState>,
    config: &RuntimeConfig,
    plugin: &str,
    ctx: CallContext,
    export: Export<'_>,
) -> Outcome<Returned> {
    let started = Instant::now();
    let budget = ctx.budget.unwrap_or(config.call_budget);
    let state = JobState::new(plugin, ctx.gateway, ctx.secrets, budget, config.max_memory);
    let mut store = Store::new(pre.engine(), state);
    store.limiter(|state| &mut state.limits);
    store.set_epoch_deadline(1);
    store.epoch_deadline_callback(|mut ctx| {
        if Instant::now() >= ctx.data().deadline {
            ctx.data_mut().deadline_hit = true;
            Err(wasmtime::Error::msg("deadline exceeded"))
        } else {
            Ok(UpdateDeadline::Yield(1))
        }
    });

    let run = async {
        let instance = pre.instantiate_async(&mut store).await?;
        let returned = match export {
            Export::Info => Returned::Info(instance.call_info(&mut store).await?.into()),
            Export::Probe(t) => {
                Returned::Probe(instance.call_probe(&mut store, &t.into()).await?.map(Into::into).map_err(Into::into))
            }
            Export::Verify(t) => Returned::Unit(instance.call_verify(&mut store, &t.into()).await?.map_err(Into::into)),
            Export::ChangePassword(t) => {
                Returned::Unit(instance.call_change_password(&mut store, &t.into()).await?.map_err(Into::into))
            }
        };
        wasmtime::Result::Ok(returned)
    };
    let result = match tokio::time::timeout(budget + GRACE + EPOCH_TICK, run).await {
        Ok(Ok(returned)) => Ok(returned),
        Ok(Err(trap)) => Err(classify(trap, store.data(), budget, config.max_memory)),
        Err(_elapsed) => Err(CallError::Deadline(budget)),
    };
    let log = std::mem::take(&mut store.data_mut().log);
    Outcome { result, log, elapsed: started.elapsed() }
}

impl<T> Outcome<T> {
    fn map<U>(self, f: impl FnOnce(T) -> Result<U, CallError>) -> Outcome<U> {
        Outcome { result: self.result.and_then(f), log: self.log, elapsed: self.elapsed }
    }
}

fn unit(r: Returned) -> Result<(), CallError> {
    match r {
        Returned::Unit(u) => u.map_err(CallError::Plugin),
        _ => unreachable!("verify and change-password return unit"),
    }
}

/// Turns a trap into the error an operator can act on, using what the store recorded.
fn classify(trap: wasmtime::Error, state: &JobState, budget: Duration, max_memory: usize) -> CallError {
    if state.deadline_hit {
        return CallError::Deadline(budget);
    }
    if let Some(requested) = state.limits.refused {
        return CallError::Memory { limit_mib: max_memory >> 20, requested_mib: requested.div_ceil(1 << 20) };
    }
    if let Some(panic) = &state.panic_message {
        let text = panic.strip_prefix("plugin panicked at ").unwrap_or(panic);
        return CallError::Panic(text.to_owned());
    }
    CallError::Trap(format!("{trap:#}"))
}

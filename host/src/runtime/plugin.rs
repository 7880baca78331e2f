//! A loaded plugin and its calls. Each call runs in a fresh store (fresh memory, fresh handle
//! table) that is dropped afterwards, so nothing a guest does survives into the next job.

use super::capabilities::Manifest;
use super::config::{EPOCH_TICK, RuntimeConfig};
use super::contract::{ErrorKind, Onboarded, PluginError, PluginInfo, ProbeResult, SnmpV3, Target};
use super::host::guard::Call;
use super::host::http::Ended;
use super::host::log::GuestLogLine;
use super::host::secrets::SecretBindings;
use super::job::{JobSpec, JobState};
use super::metadata::Metadata;
use super::wit::{Answer, Guest, GuestPre};
use crate::gateway::Outbound;
use std::future::Future;
use std::pin::Pin;
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
    /// The BMC's answer held a secret of the job; the host ended the call before the plugin
    /// could read it. A change may have been applied.
    #[error("{0}")]
    SecretEchoed(String),
    /// The BMC presented another certificate than its `sha256:` pin; nothing more was sent. Its
    /// own kind, never `unreachable`: it may be an attack, and the pin must not be updated
    /// without checking the certificate.
    #[error("{0}")]
    CertificateChanged(String),
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
    pub gateway: Option<Arc<dyn Outbound>>,
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
    /// Log lines past the per-call cap, counted and not written.
    pub log_suppressed: u64,
}

type BoxedAnswer<'a, T> = Pin<Box<dyn Future<Output = Answer<T>> + Send + 'a>>;

/// One of the plugin's exports, called on a live guest. Each is a type of its own, so a call
/// returns exactly what its export returns.
trait Export {
    type Output;

    /// Which export this is: what the call may do.
    const CALL: Call;

    /// The call's target, if it has one.
    fn target(&self) -> Option<&Target> {
        None
    }

    /// Boxed: an opaque future here would have to be proven `Send` for every lifetime the
    /// fleet's concurrent jobs borrow with, which the compiler cannot yet do (rust#100013).
    fn call<'a>(self, guest: &'a Guest, store: &'a mut Store<JobState>) -> BoxedAnswer<'a, Self::Output>
    where
        Self: 'a;
}

struct Info;
struct Probe<'t>(&'t Target);
struct Verify<'t>(&'t Target);
struct ChangePassword<'t>(&'t Target);

impl Export for Info {
    type Output = PluginInfo;

    const CALL: Call = Call::Info;

    fn call<'a>(self, guest: &'a Guest, store: &'a mut Store<JobState>) -> BoxedAnswer<'a, PluginInfo>
    where
        Self: 'a,
    {
        Box::pin(guest.info(store))
    }
}

impl Export for Probe<'_> {
    type Output = ProbeResult;

    const CALL: Call = Call::Probe;

    fn target(&self) -> Option<&Target> {
        Some(self.0)
    }

    fn call<'a>(self, guest: &'a Guest, store: &'a mut Store<JobState>) -> BoxedAnswer<'a, ProbeResult>
    where
        Self: 'a,
    {
        Box::pin(guest.probe(store, self.0))
    }
}

impl Export for Verify<'_> {
    type Output = ();

    const CALL: Call = Call::Verify;

    fn target(&self) -> Option<&Target> {
        Some(self.0)
    }

    fn call<'a>(self, guest: &'a Guest, store: &'a mut Store<JobState>) -> BoxedAnswer<'a, ()>
    where
        Self: 'a,
    {
        Box::pin(guest.verify(store, self.0))
    }
}

impl Export for ChangePassword<'_> {
    type Output = ();

    const CALL: Call = Call::ChangePassword;

    fn target(&self) -> Option<&Target> {
        Some(self.0)
    }

    fn call<'a>(self, guest: &'a Guest, store: &'a mut Store<JobState>) -> BoxedAnswer<'a, ()>
    where
        Self: 'a,
    {
        Box::pin(guest.change_password(store, self.0))
    }
}

struct SnmpState<'t>(&'t Target);

impl Export for SnmpState<'_> {
    type Output = Option<SnmpV3>;

    const CALL: Call = Call::SnmpState;

    fn target(&self) -> Option<&Target> {
        Some(self.0)
    }

    fn call<'a>(self, guest: &'a Guest, store: &'a mut Store<JobState>) -> BoxedAnswer<'a, Option<SnmpV3>>
    where
        Self: 'a,
    {
        Box::pin(guest.snmp_state(store, self.0))
    }
}

struct EnableAccount<'t>(&'t Target);

impl Export for EnableAccount<'_> {
    type Output = Onboarded;

    const CALL: Call = Call::Onboard;

    fn target(&self) -> Option<&Target> {
        Some(self.0)
    }

    fn call<'a>(self, guest: &'a Guest, store: &'a mut Store<JobState>) -> BoxedAnswer<'a, Onboarded>
    where
        Self: 'a,
    {
        Box::pin(guest.enable_account(store, self.0))
    }
}

struct DisableAccount<'t>(&'t Target);

impl Export for DisableAccount<'_> {
    type Output = ();

    const CALL: Call = Call::DisableAccount;

    fn target(&self) -> Option<&Target> {
        Some(self.0)
    }

    fn call<'a>(self, guest: &'a Guest, store: &'a mut Store<JobState>) -> BoxedAnswer<'a, ()>
    where
        Self: 'a,
    {
        Box::pin(guest.disable_account(store, self.0))
    }
}

/// A plugin, compiled and pre-instantiated.
pub struct Plugin {
    pre: GuestPre,
    config: RuntimeConfig,
    /// Where it was loaded from.
    pub origin: String,
    /// SHA-256 of its bytes, hex.
    pub sha256: String,
    /// What was read from its bytes.
    pub metadata: Metadata,
    /// Its capability manifest, shared by its calls.
    capabilities: Arc<Manifest>,
    /// What its `info` export returned at load time.
    pub info: PluginInfo,
    /// Whether the compiled code came from the disk cache.
    pub from_cache: bool,
}

impl Plugin {
    pub(crate) async fn new(
        pre: GuestPre,
        config: RuntimeConfig,
        origin: String,
        sha256: String,
        metadata: Metadata,
        from_cache: bool,
    ) -> Result<Plugin, String> {
        // `info` runs before the plugin has a name: its log lines are attributed to the file.
        let capabilities = Arc::new(metadata.capabilities.clone());
        let info = call(&pre, &config, (&origin, &capabilities), CallContext::default(), Info)
            .await
            .result
            .map_err(|e| format!("its `info` export failed: {e}"))?;
        if info.id.is_empty() {
            return Err("its `info` export returned an empty id".into());
        }
        let plugin = Plugin { pre, config, origin, sha256, metadata, capabilities, info, from_cache };
        Ok(plugin)
    }

    /// Calls `info` (no BMC, no secrets).
    pub async fn call_info(&self) -> Outcome<PluginInfo> {
        self.call(CallContext::default(), Info).await
    }

    /// Calls `probe`.
    pub async fn probe(&self, ctx: CallContext, target: &Target) -> Outcome<ProbeResult> {
        self.call(ctx, Probe(target)).await
    }

    /// Calls `verify`.
    pub async fn verify(&self, ctx: CallContext, target: &Target) -> Outcome<()> {
        self.call(ctx, Verify(target)).await
    }

    /// Calls `change-password`.
    pub async fn change_password(&self, ctx: CallContext, target: &Target) -> Outcome<()> {
        self.call(ctx, ChangePassword(target)).await
    }

    /// Whether the plugin exports the optional `snmp` interface (built with an SDK that has it).
    pub fn reports_snmp(&self) -> bool {
        self.pre.reports_snmp()
    }

    /// Calls `snmp#state`: `Ok(None)` when the BMC does not show the state. Not to be called
    /// when [`Plugin::reports_snmp`] is false (the answer would be `None` without a call).
    pub async fn snmp_state(&self, ctx: CallContext, target: &Target) -> Outcome<Option<SnmpV3>> {
        self.call(ctx, SnmpState(target)).await
    }

    /// Whether the plugin exports the optional `onboard` interface (built with SDK 0.2.1 or later).
    pub fn onboards(&self) -> bool {
        self.pre.onboards()
    }

    /// Calls `onboard#enable-account`: creates or enables `target.account` with `new-password`,
    /// logged in as the factory account `target.login_account` with `login-password`. A plugin
    /// without the export answers `unsupported`.
    pub async fn enable_account(&self, ctx: CallContext, target: &Target) -> Outcome<Onboarded> {
        self.call(ctx, EnableAccount(target)).await
    }

    /// Calls `onboard#disable-account`: disables the factory account `target.account`, logged in
    /// as the stamp account `target.login_account` with `login-password`.
    pub async fn disable_account(&self, ctx: CallContext, target: &Target) -> Outcome<()> {
        self.call(ctx, DisableAccount(target)).await
    }

    async fn call<E: Export>(&self, ctx: CallContext, export: E) -> Outcome<E::Output> {
        call(&self.pre, &self.config, (&self.info.id, &self.capabilities), ctx, export).await
    }
}

/// One export call in a fresh store, with the deadline and memory limit in force.
async fn call<E: Export>(
    pre: &GuestPre,
    config: &RuntimeConfig,
    (plugin, capabilities): (&str, &Arc<Manifest>),
    ctx: CallContext,
    export: E,
) -> Outcome<E::Output> {
    let started = Instant::now();
    let budget = ctx.budget.unwrap_or(config.call_budget);
    let state = JobState::new(JobSpec {
        plugin: plugin.to_owned(),
        outbound: ctx.gateway,
        secrets: ctx.secrets,
        budget,
        max_memory: config.max_memory,
        clock: config.clock.clone(),
        call: E::CALL,
        target: export.target().cloned(),
        capabilities: capabilities.clone(),
    });
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
        let guest = pre.instantiate(&mut store).await?;
        export.call(&guest, &mut store).await
    };
    let result = match tokio::time::timeout(budget + GRACE + EPOCH_TICK, run).await {
        Ok(Ok(answer)) => answer.map_err(CallError::Plugin),
        Ok(Err(trap)) => Err(classify(trap, store.data(), budget, config.max_memory)),
        Err(_elapsed) => Err(CallError::Deadline(budget)),
    };
    let log = &mut store.data_mut().log;
    log.report_suppressed();
    Outcome { result, log: std::mem::take(&mut log.lines), elapsed: started.elapsed(), log_suppressed: log.suppressed }
}

/// Turns a trap into the error an operator can act on, using what the store recorded.
fn classify(trap: wasmtime::Error, state: &JobState, budget: Duration, max_memory: usize) -> CallError {
    match state.ended() {
        Some(ended @ Ended::PolicyRejected { .. }) => {
            return CallError::Plugin(PluginError { kind: ErrorKind::PolicyRejected, message: ended.to_string() });
        }
        Some(ended @ Ended::SecretEchoed { .. }) => return CallError::SecretEchoed(ended.to_string()),
        Some(ended @ Ended::CertificateChanged { .. }) => return CallError::CertificateChanged(ended.to_string()),
        None => {}
    }
    if state.deadline_hit {
        return CallError::Deadline(budget);
    }
    if let Some(requested) = state.limits.refused {
        return CallError::Memory { limit_mib: max_memory >> 20, requested_mib: requested.div_ceil(1 << 20) };
    }
    if let Some(panic) = &state.log.panic_message {
        let text = panic.strip_prefix("plugin panicked at ").unwrap_or(panic);
        return CallError::Panic(text.to_owned());
    }
    CallError::Trap(format!("{trap:#}"))
}

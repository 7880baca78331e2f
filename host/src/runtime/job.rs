//! The store data of one job (one plugin call against one BMC): the contexts of the host
//! imports, the deny-all WASI context, the memory budget and the deadline, and the projections
//! that hand each import its view.

use super::capabilities::Manifest;
use super::contract::Target;
use super::host::clock::{ClockCtx, WallClock};
use super::host::guard::{Call, Guard};
use super::host::http::{Ended, HttpCtx, HttpView};
use super::host::log::{LogCtx, LogView};
use super::host::secrets::{SecretBindings, SecretsView};
use super::limits::JobLimits;
use crate::gateway::Outbound;
use crate::gateway::echo::EchoDetector;
use crate::gateway::redact::Redactor;
use std::sync::Arc;
use std::time::{Duration, Instant};
use wasmtime::component::ResourceTable;
use wasmtime_wasi::{WasiCtx, WasiCtxBuilder, WasiCtxView, WasiView};

/// What a job knows: its BMC, its secrets, its limits and what the guest did.
pub struct JobState {
    table: ResourceTable,
    wasi: WasiCtx,
    pub(crate) limits: JobLimits,
    /// Every secret of the job, and every form of it the host has sent: scrubbed from logs.
    redactor: Redactor,
    /// The same secrets, searched for in every answer before the guest may read it.
    detector: EchoDetector,
    secrets: SecretBindings,
    http: HttpCtx,
    pub(crate) log: LogCtx,
    clock: ClockCtx,
    pub(crate) deadline: Instant,
    pub(crate) deadline_hit: bool,
}

/// How one job is set up.
pub struct JobSpec {
    /// The plugin's id (or its file, before it has one), for logs.
    pub plugin: String,
    /// Where HTTP goes; `None` denies it.
    pub outbound: Option<Arc<dyn Outbound>>,
    /// The secrets bound for the call.
    pub secrets: SecretBindings,
    /// Wall-clock budget.
    pub budget: Duration,
    /// Linear memory the guest may use.
    pub max_memory: usize,
    /// The wall clock the guest sees.
    pub clock: Arc<dyn WallClock>,
    /// The export called: what the call may do.
    pub call: Call,
    /// The BMC and accounts of the call, if it has them.
    pub target: Option<Target>,
    /// The plugin's capability manifest.
    pub capabilities: Arc<Manifest>,
}

impl JobState {
    /// A job as `spec` describes it, its deadline counted from now.
    pub fn new(spec: JobSpec) -> Self {
        let deadline = Instant::now() + spec.budget;
        let mut redactor = Redactor::new();
        let mut detector = EchoDetector::new();
        // Each automaton built once for all the job's secrets: this runs for every plugin call.
        redactor.add_secrets(spec.secrets.secrets().map(|s| &**s));
        detector.add_secrets(spec.secrets.secrets().map(|s| &**s));
        let guard = Guard::new(spec.capabilities, spec.call, spec.target, spec.secrets.clone());
        let http = HttpCtx::new(&spec.plugin, spec.outbound, deadline, guard);
        let log = LogCtx::new(&spec.plugin, http.bmc());
        let mut wasi = WasiCtxBuilder::new();
        wasi.allow_tcp(false).allow_udp(false).allow_ip_name_lookup(false);
        JobState {
            table: ResourceTable::new(),
            wasi: wasi.build(),
            limits: JobLimits::new(spec.max_memory),
            redactor,
            detector,
            secrets: spec.secrets,
            http,
            log,
            clock: ClockCtx::new(spec.clock, deadline),
            deadline,
            deadline_hit: false,
        }
    }

    /// The `secrets` import's view.
    pub(crate) fn secrets(&mut self) -> SecretsView<'_> {
        SecretsView { bound: &self.secrets, table: &mut self.table }
    }

    /// The `http` import's view.
    pub(crate) fn http(&mut self) -> HttpView<'_> {
        HttpView {
            ctx: &mut self.http,
            table: &mut self.table,
            redactor: &mut self.redactor,
            detector: &mut self.detector,
            limits: &mut self.limits,
        }
    }

    /// Why the host ended the call from inside an import, if it did.
    pub(crate) fn ended(&self) -> Option<&Ended> {
        self.http.ended.as_ref()
    }

    /// The `log` import's view.
    pub(crate) fn log(&mut self) -> LogView<'_> {
        LogView { ctx: &mut self.log, redactor: &self.redactor, limits: &mut self.limits }
    }

    /// The `clock` import's view.
    pub(crate) fn clock(&mut self) -> &ClockCtx {
        &self.clock
    }
}

impl WasiView for JobState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView { ctx: &mut self.wasi, table: &mut self.table }
    }
}

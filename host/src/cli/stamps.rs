//! `rotate`, `resume` and `status` across several stamps. Each stamp is its own command —
//! its own lock, journal, PEP, secrets and new password — exactly as one stamp runs it; this
//! module only chooses the order: for `rotate` a canary stamp alone first, then the others a few
//! at a time, and no new stamp once too many have failed; for `resume` every stamp, a few at a
//! time. Every stamp is resolved (inventory, plugins, secrets, lock) before any BMC of any stamp
//! is contacted, so a typo in the tenth inventory costs nothing on the first.

use super::pep::{PepArgs, StampArgs};
use super::progress::Display;
use super::rotate::{
    Ended, ResumeArgs, ResumePlan, ResumeTarget, RotateArgs, RotatePlan, Sources, Standing, run_plan, run_resume,
};
use super::{CliError, CmdResult, Output, RunOutput, exit, render};
use crate::fleet::cancel::Cancel;
use crate::fleet::inventory::Inventory;
use crate::secrets::{STAMP, SecretSource};
use std::collections::{BTreeSet, HashMap};
use std::future::Future;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use tokio::task::JoinSet;

/// The stamps a rotation works on, and how to reach their privileged endpoints.
#[derive(Debug, clap::Args)]
pub struct StampsArgs {
    /// A stamp's inventory; its `[pep]` table names the ERCS VMs and the CloudAdmin account.
    /// Repeat it to rotate several stamps, each on its own (then secret sources, --journal and
    /// --password-out may name the stamp: env:CA_{stamp}, file:/secrets/{stamp}/cloudadmin).
    #[arg(long, value_name = "FILE", required_unless_present = "inventories")]
    pub inventory: Vec<PathBuf>,
    /// Rotate the stamp of every `*.toml` inventory in DIR.
    #[arg(long, value_name = "DIR", conflicts_with = "inventory")]
    pub inventories: Option<PathBuf>,
    /// With several stamps: how many rotate at once, after the canary.
    #[arg(long, value_name = "N", default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..=256))]
    pub stamp_concurrency: u16,
    /// With several stamps: the one rotated first, alone (default: the first). If it fails, no
    /// other stamp starts.
    #[arg(long, value_name = "STAMP")]
    pub canary: Option<String>,
    /// With several stamps: start no new stamp once this many have failed.
    #[arg(long, value_name = "K", default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..))]
    pub max_failed_stamps: u32,
    /// How to reach the privileged endpoints.
    #[command(flatten)]
    pub pep: PepArgs,
}

/// The runs `status` shows.
#[derive(Debug, clap::Args)]
pub struct StatusArgs {
    /// The run's journal. With --inventory: a path naming the stamp ({stamp}), or none for each
    /// stamp's last run in the audit log.
    #[arg(long, value_name = "FILE", required_unless_present_any = ["inventory", "inventories"])]
    pub journal: Option<PathBuf>,
    /// A stamp's inventory (repeatable): show its last run, or the run of --journal.
    #[arg(long, value_name = "FILE")]
    pub inventory: Vec<PathBuf>,
    /// Show the stamp of every `*.toml` inventory in DIR.
    #[arg(long, value_name = "DIR", conflicts_with = "inventory")]
    pub inventories: Option<PathBuf>,
    /// The audit log that names each stamp's last run.
    /// [default: $XDG_STATE_HOME/bmc-rotate/audit.jsonl]
    #[arg(long, value_name = "FILE")]
    pub audit_log: Option<PathBuf>,
}

/// The inventory files, in the order given (a directory's sorted by name).
fn inventory_files(inventory: &[PathBuf], inventories: Option<&Path>) -> Result<Vec<PathBuf>, CliError> {
    let Some(dir) = inventories else { return Ok(inventory.to_vec()) };
    let entries =
        std::fs::read_dir(dir).map_err(|e| CliError::bad_input(format!("--inventories {}: {e}", dir.display())))?;
    let mut files: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "toml") && p.is_file())
        .collect();
    files.sort();
    if files.is_empty() {
        return Err(CliError::bad_input(format!("--inventories {}: no *.toml inventory in it", dir.display())));
    }
    Ok(files)
}

/// Each inventory with its stamp's name; a stamp named twice is refused (it would be worked on
/// twice at once, against its own lock).
fn stamps_of(files: &[PathBuf]) -> Result<Vec<(PathBuf, String)>, CliError> {
    let mut seen = BTreeSet::new();
    let mut stamps = Vec::new();
    for file in files {
        let name = Inventory::load(file).map_err(CliError::bad_input)?.stamp;
        if !seen.insert(name.clone()) {
            return Err(CliError::bad_input(format!(
                "{}: stamp {name} is named by another inventory too; each stamp is worked on once",
                file.display()
            )));
        }
        stamps.push((file.clone(), name));
    }
    Ok(stamps)
}

/// A path with `{stamp}` filled in.
fn path_for(path: &Path, stamp: &str) -> PathBuf {
    PathBuf::from(path.to_string_lossy().replace(STAMP, stamp))
}

/// A stamp's run: the `--journal` given (`{stamp}` filled in); else the journal of a run that
/// never ended normally (a crash, a kill: it wrote no audit record, but its record stays in the
/// stamp's lock); else its last `rotate` or `resume` in the audit log. `None` when none names a
/// journal that exists.
fn journal_of(template: Option<&Path>, stamp: &str, audit_log: Option<&Path>) -> Option<PathBuf> {
    if let Some(template) = template {
        return Some(path_for(template, stamp)).filter(|j| j.exists());
    }
    let crashed = crate::paths::locks()
        .and_then(|dir| crate::fleet::lock::left_behind(&dir, stamp))
        .and_then(|holder| holder.journal)
        .map(PathBuf::from);
    let last = || audit_log.and_then(|log| crate::fleet::audit::last_run(log, stamp)).and_then(|entry| entry.journal);
    crashed.filter(|j| j.exists()).or_else(last).filter(|j| j.exists())
}

/// Why a stamp has no run to show or resume.
fn no_run(stamp: &str, template: Option<&Path>, audit_log: Option<&Path>) -> String {
    match (template, audit_log) {
        (Some(template), _) => {
            format!(
                "stamp {stamp}: no journal at {}: no run of it changed anything",
                path_for(template, stamp).display()
            )
        }
        (None, Some(log)) => {
            format!("stamp {stamp}: no unfinished run in its lock and no run in the audit log {}", log.display())
        }
        (None, None) => format!("stamp {stamp}: no unfinished run in its lock and no audit log; give --journal"),
    }
}

/// Secret sources that name the stamp, checked for two stamps landing on one variable:
/// `env:CA_{stamp}` of stamps `east-1` and `east.1` is the same variable, and one stamp would log
/// in with the other's secret.
#[derive(Default)]
struct Variables(HashMap<String, String>);

impl Variables {
    fn claim(&mut self, given: &SecretSource, stamp: &str) -> Result<(), CliError> {
        if let SecretSource::Env(variable) = given.for_stamp(stamp)
            && given.names_stamp()
            && let Some(other) = self.0.insert(variable.clone(), stamp.to_owned())
            && other != stamp
        {
            return Err(CliError::bad_input(format!(
                "stamps {other} and {stamp} both read the environment variable {variable} (a variable name holds \
                 only upper-case letters, digits and _): rename a stamp or use file:…/{STAMP}/…"
            )));
        }
        Ok(())
    }
}

/// Prompts and stdin cannot tell the stamps apart.
fn refuse_prompts(sources: &[(&str, Option<&SecretSource>)]) -> Result<(), CliError> {
    for (flag, source) in sources {
        if let Some(SecretSource::Prompt | SecretSource::Stdin) = source {
            return Err(CliError::bad_input(format!(
                "{flag}: with several stamps, give env:VAR or file:PATH (they may name the stamp: env:VAR_{STAMP}, \
                 file:/secrets/{STAMP}/FILE); prompts and stdin cannot tell the stamps apart"
            )));
        }
    }
    Ok(())
}

/// One file per stamp: a path given for several must name the stamp.
fn refuse_shared_paths(paths: &[(&str, Option<&PathBuf>)]) -> Result<(), CliError> {
    for (flag, path) in paths {
        if let Some(path) = path
            && !path.to_string_lossy().contains(STAMP)
        {
            return Err(CliError::bad_input(format!(
                "{flag} {}: with several stamps, the path must name the stamp ({STAMP}): one file per stamp",
                path.display()
            )));
        }
    }
    Ok(())
}

/// `rotate`: one stamp as always, or several.
pub async fn rotate(
    stamps: StampsArgs,
    args: RotateArgs,
    sources: Sources,
    output: RunOutput,
    cache_dir: Option<PathBuf>,
) -> CmdResult {
    let files = inventory_files(&stamps.inventory, stamps.inventories.as_deref())?;
    if let [one] = files.as_slice() {
        let stamp = StampArgs { inventory: one.clone(), pep: stamps.pep };
        return super::rotate::rotate(stamp, args, sources, output, cache_dir).await;
    }
    check_for_many(&args, &stamps.pep)?;
    let mut plans = Vec::new();
    let mut variables = Variables::default();
    for (file, name) in stamps_of(&files)? {
        let (stamp, stamp_args) = for_stamp(&file, &name, &stamps.pep, &args);
        let templated = [Some(&stamps.pep.cloudadmin_password), Some(&args.bmc_password)]
            .into_iter()
            .chain([args.new_password.as_ref(), args.transcripts_password.as_ref()]);
        for given in templated.flatten() {
            variables.claim(given, &name)?;
        }
        let plan = RotatePlan::resolve(&stamp, &stamp_args, &sources, cache_dir.clone())
            .await
            .map_err(|e| in_stamp(&name, e))?;
        plans.push((name, plan));
    }
    let order: Vec<String> = plans.iter().map(|(name, _)| name.clone()).collect();
    if let Some(canary) = &stamps.canary {
        let Some(at) = plans.iter().position(|(name, _)| name == canary) else {
            return Err(CliError::bad_input(format!(
                "--canary {canary}: no such stamp; the inventories name {}",
                order.join(", ")
            )));
        };
        let first = plans.remove(at);
        plans.insert(0, first);
    }
    // One stop for all: a signal stops every stamp from starting anything new.
    let cancel = Cancel::new();
    for (_, plan) in &mut plans {
        plan.options.cancel = cancel.clone();
    }
    let schedule = Schedule {
        canary: true,
        stamp_concurrency: stamps.stamp_concurrency as usize,
        max_failed: Some(stamps.max_failed_stamps),
        journals: plans.iter().map(|(_, p)| p.journal.clone()).collect(),
        cancel,
    };
    let ends = run_stamps(plans, run_plan, schedule, output).await?;
    Ok(conclude(ends, &order, output))
}

/// `resume`: one stamp as always, or several, each from its own journal.
pub async fn resume(args: ResumeArgs, sources: Sources, output: RunOutput, cache_dir: Option<PathBuf>) -> CmdResult {
    let files = inventory_files(&args.inventory, args.inventories.as_deref())?;
    let audit_log = sources.audit_log.clone().or_else(crate::paths::audit_log);
    let target = |journal: PathBuf, inventory: Option<PathBuf>, stamp: &str| ResumeTarget {
        journal,
        inventory,
        bmc_password: args.bmc_password.for_stamp(stamp),
        new_password: args.new_password.for_stamp(stamp),
        pep: PepArgs { cloudadmin_password: args.pep.cloudadmin_password.for_stamp(stamp), ..args.pep.clone() },
    };
    match files.as_slice() {
        [] => {
            let journal = args.journal.clone().expect("clap requires --journal without --inventory");
            let target = target(journal, None, "");
            return super::rotate::resume(target, args, sources, output, cache_dir).await;
        }
        [one] => {
            let stamp = Inventory::load(one).map_err(CliError::bad_input)?.stamp;
            // A journal named for one stamp must exist: a typo is bad input, not "nothing to do".
            let journal = match &args.journal {
                Some(journal) => Some(path_for(journal, &stamp)),
                None => journal_of(None, &stamp, audit_log.as_deref()),
            };
            let Some(journal) = journal else {
                return Err(CliError::nothing_to_do(no_run(&stamp, None, audit_log.as_deref()))
                    .with_hint("give the run's --journal"));
            };
            let target = target(journal, Some(one.clone()), &stamp);
            return super::rotate::resume(target, args, sources, output, cache_dir).await;
        }
        _ => {}
    }
    refuse_prompts(&[
        ("--bmc-password", Some(&args.bmc_password)),
        ("--new-password", Some(&args.new_password)),
        ("--cloudadmin-password", Some(&args.pep.cloudadmin_password)),
    ])?;
    refuse_shared_paths(&[("--journal", args.journal.as_ref())])?;
    let cancel = Cancel::new();
    let mut plans = Vec::new();
    let mut nothing = Vec::new();
    let mut variables = Variables::default();
    let stamps = stamps_of(&files)?;
    let order: Vec<String> = stamps.iter().map(|(_, name)| name.clone()).collect();
    for (file, name) in stamps {
        for given in [&args.bmc_password, &args.new_password, &args.pep.cloudadmin_password] {
            variables.claim(given, &name)?;
        }
        let Some(journal) = journal_of(args.journal.as_deref(), &name, audit_log.as_deref()) else {
            let why = no_run(&name, args.journal.as_deref(), audit_log.as_deref());
            nothing.push((name, StampEnd::Ended(Ended::NothingToResume(format!("{why}: nothing to resume")))));
            continue;
        };
        match ResumePlan::resolve(&target(journal, Some(file), &name), &args, &sources, cache_dir.clone()).await {
            Ok(mut plan) => {
                plan.options.cancel = cancel.clone();
                plans.push((name, plan));
            }
            // A run that already converged: said, and the other stamps go on.
            Err(e) if e.code == exit::OK => {
                nothing.push((name, StampEnd::Ended(Ended::NothingToResume(e.messages.join("; ")))));
            }
            Err(e) => return Err(in_stamp(&name, e)),
        }
    }
    for (name, end) in &nothing {
        finished(name, end, output);
    }
    // Every stamp converges: one that fails leaves the others no worse off, and stopping them
    // would leave their BMCs split between two passwords.
    let schedule = Schedule {
        canary: false,
        stamp_concurrency: args.stamp_concurrency as usize,
        max_failed: None,
        journals: plans.iter().map(|(_, p)| p.journal.clone()).collect(),
        cancel,
    };
    let mut ends = run_stamps(plans, run_resume, schedule, output).await?;
    ends.extend(nothing);
    Ok(conclude(ends, &order, output))
}

/// `status`: one journal as always, or the last run of each stamp given.
pub fn status(args: StatusArgs, output: Output) -> CmdResult {
    let files = inventory_files(&args.inventory, args.inventories.as_deref())?;
    let audit_log = args.audit_log.clone().or_else(crate::paths::audit_log);
    match (files.as_slice(), &args.journal) {
        ([], journal) => {
            let journal = journal.as_deref().expect("clap requires --journal without --inventory");
            return super::rotate::status(journal, output);
        }
        // A journal named for one stamp must exist: a typo is bad input, not "no run".
        ([one], Some(journal)) => {
            let stamp = Inventory::load(one).map_err(CliError::bad_input)?.stamp;
            return super::rotate::status(&path_for(journal, &stamp), output);
        }
        _ => {}
    }
    let mut ends = Vec::new();
    let many = files.len() > 1;
    if many {
        refuse_shared_paths(&[("--journal", args.journal.as_ref())])?;
    }
    for (_, name) in stamps_of(&files)? {
        let end = match journal_of(args.journal.as_deref(), &name, audit_log.as_deref()) {
            None => StampEnd::Ended(StatusEnd::NoRun(no_run(&name, args.journal.as_deref(), audit_log.as_deref()))),
            Some(journal) => match Standing::read(&journal) {
                Ok(standing) => StampEnd::Ended(StatusEnd::Run(standing)),
                Err(e) => StampEnd::Failed(e),
            },
        };
        ends.push((name, end));
    }
    if !many && let Some((_, end)) = ends.pop() {
        return match end {
            StampEnd::Ended(StatusEnd::Run(standing)) => {
                standing.print(output);
                Ok(ExitCode::from(standing.code()))
            }
            StampEnd::Ended(StatusEnd::NoRun(why)) => Err(CliError::nothing_to_do(why)),
            StampEnd::Failed(e) => Err(e),
            StampEnd::NotStarted(_) => unreachable!("status starts every stamp"),
        };
    }
    let output = match output {
        Output::Table => RunOutput::Table,
        Output::Json => RunOutput::Json,
    };
    for (name, end) in &ends {
        finished(name, end, output);
    }
    let order: Vec<String> = ends.iter().map(|(name, _)| name.clone()).collect();
    Ok(conclude(ends, &order, output))
}

/// An error of one stamp among several, its lines naming the stamp.
fn in_stamp(stamp: &str, e: CliError) -> CliError {
    CliError { messages: e.messages.iter().map(|m| format!("stamp {stamp}: {m}")).collect(), ..e }
}

/// What one stamp's command ended with, as the output of several shows it.
pub(super) trait StampResult: Send + 'static {
    /// The stamp's exit code.
    fn code(&self) -> u8;
    /// One word for the summary.
    fn outcome(&self) -> String;
    /// The journal, or what there is to say, for the summary.
    fn detail(&self) -> String;
    /// The end as one JSON value.
    fn to_json(&self) -> serde_json::Value;
    /// The stamp's own report, as one stamp's command prints it.
    fn print(&self, output: RunOutput);
}

impl StampResult for Ended {
    fn code(&self) -> u8 {
        Ended::code(self)
    }

    fn outcome(&self) -> String {
        match self {
            Ended::Report { report, .. } | Ended::Resumed { report, .. } => report.outcome.as_str().to_owned(),
            Ended::AlreadyDone(_) => "already-done".into(),
            Ended::NothingToResume(_) => "nothing-to-resume".into(),
        }
    }

    fn detail(&self) -> String {
        match self {
            Ended::Report { journal: Some(journal), .. } | Ended::Resumed { journal, .. } => {
                format!("journal {}", journal.display())
            }
            Ended::Report { journal: None, .. } => String::new(),
            Ended::AlreadyDone(note) | Ended::NothingToResume(note) => note.clone(),
        }
    }

    fn to_json(&self) -> serde_json::Value {
        Ended::to_json(self)
    }

    fn print(&self, output: RunOutput) {
        Ended::print(self, output)
    }
}

/// What `status` found for one stamp.
enum StatusEnd {
    /// Its run, as the journal tells it.
    Run(Standing),
    /// No run to show, and why.
    NoRun(String),
}

impl StampResult for StatusEnd {
    fn code(&self) -> u8 {
        match self {
            StatusEnd::Run(standing) => standing.code(),
            StatusEnd::NoRun(_) => exit::OK,
        }
    }

    fn outcome(&self) -> String {
        match self {
            StatusEnd::Run(standing) if !standing.state.converged() => "needs-resume".into(),
            StatusEnd::Run(standing) => standing.state.finished.map_or("converged", |f| f.as_str()).to_owned(),
            StatusEnd::NoRun(_) => "no-run".into(),
        }
    }

    fn detail(&self) -> String {
        match self {
            StatusEnd::Run(standing) => format!("journal {}", standing.journal.display()),
            StatusEnd::NoRun(why) => why.clone(),
        }
    }

    fn to_json(&self) -> serde_json::Value {
        match self {
            StatusEnd::Run(standing) => serde_json::json!({
                "status": standing.state,
                "journal": standing.journal.to_string_lossy(),
            }),
            StatusEnd::NoRun(why) => serde_json::json!({ "status": null, "note": why }),
        }
    }

    fn print(&self, output: RunOutput) {
        match (self, output) {
            (StatusEnd::Run(standing), RunOutput::Table) => standing.print(Output::Table),
            (StatusEnd::NoRun(why), RunOutput::Table) => println!("{why}"),
            _ => println!("{}", self.to_json()),
        }
    }
}

/// How one stamp ended, in a command over several.
pub(super) enum StampEnd<T> {
    /// It ran (or found nothing to do).
    Ended(T),
    /// It stopped with an error before or during the run.
    Failed(CliError),
    /// It never started: the canary or too many stamps failed, or the operator stopped the run.
    NotStarted(&'static str),
}

impl<T: StampResult> StampEnd<T> {
    fn code(&self) -> u8 {
        match self {
            StampEnd::Ended(ended) => ended.code(),
            StampEnd::Failed(e) => e.code,
            StampEnd::NotStarted(_) => exit::FAILED,
        }
    }

    fn outcome(&self) -> String {
        match self {
            StampEnd::Ended(ended) => ended.outcome(),
            StampEnd::Failed(_) => "failed".into(),
            StampEnd::NotStarted(_) => "not-started".into(),
        }
    }

    fn detail(&self) -> String {
        match self {
            StampEnd::Ended(ended) => ended.detail(),
            StampEnd::Failed(e) => e.messages.join("; "),
            StampEnd::NotStarted(why) => (*why).to_owned(),
        }
    }

    fn to_json(&self) -> serde_json::Value {
        match self {
            StampEnd::Ended(ended) => ended.to_json(),
            _ => serde_json::json!({ "report": null, "error": self.detail() }),
        }
    }
}

/// In what order stamps run.
struct Schedule {
    /// The first stamp runs alone; if it fails, no other starts.
    canary: bool,
    /// How many stamps run at once.
    stamp_concurrency: usize,
    /// Start no new stamp once this many have failed.
    max_failed: Option<u32>,
    /// Every stamp's journal, for the signal watcher's last words.
    journals: Vec<PathBuf>,
    /// Set by a signal: no stamp starts after it.
    cancel: Cancel,
}

/// Runs every stamp's resolved plan through `run` (one stamp's own code path), in the order
/// the schedule sets, printing each stamp's end as it comes. Returns every stamp's end, those
/// never started included.
async fn run_stamps<P, T, Fut>(
    plans: Vec<(String, P)>,
    run: fn(P, Arc<Display>) -> Fut,
    schedule: Schedule,
    output: RunOutput,
) -> Result<Vec<(String, StampEnd<T>)>, CliError>
where
    P: Send + 'static,
    T: StampResult,
    Fut: Future<Output = Result<T, CliError>> + Send + 'static,
{
    let Schedule { canary, stamp_concurrency, max_failed, journals, cancel } = schedule;
    let events = output == RunOutput::Jsonl;
    let watcher = Display::for_stamp("all", events);
    let _signals = super::signals::watch(cancel.clone(), journals, watcher).map_err(CliError::failed)?;
    let mut ends: Vec<(String, StampEnd<T>)> = Vec::new();
    let mut queue = plans.into_iter();
    let mut failed = 0u32;
    let mut running = Running { set: JoinSet::new(), names: HashMap::new() };
    let start = |running: &mut Running<T>, (name, plan): (String, P)| {
        let display = Display::for_stamp(&name, events);
        let task = running.set.spawn(async move {
            match run(plan, display).await {
                Ok(ended) => StampEnd::Ended(ended),
                Err(e) => StampEnd::Failed(e),
            }
        });
        running.names.insert(task.id(), name);
    };
    // The canary alone: the others wait for its answer.
    let mut canary_failed = false;
    if canary && let Some(first) = queue.next() {
        start(&mut running, first);
        if let Some((name, end)) = running.join().await {
            canary_failed = end.code() != exit::OK;
            failed += u32::from(canary_failed);
            finished(&name, &end, output);
            ends.push((name, end));
        }
    }
    loop {
        let stop = if canary_failed {
            Some("the canary stamp failed")
        } else if max_failed.is_some_and(|max| failed >= max) {
            Some("too many stamps failed (--max-failed-stamps)")
        } else if cancel.is_cancelled() {
            Some("interrupted")
        } else {
            None
        };
        if stop.is_none()
            && running.set.len() < stamp_concurrency
            && let Some(next) = queue.next()
        {
            start(&mut running, next);
            continue;
        }
        if let Some(why) = stop {
            ends.extend(queue.by_ref().map(|(name, _)| (name, StampEnd::NotStarted(why))));
        }
        let Some((name, end)) = running.join().await else { break };
        failed += u32::from(end.code() != exit::OK);
        finished(&name, &end, output);
        ends.push((name, end));
    }
    Ok(ends)
}

/// The summary of every stamp, in the order given, and the worst stamp's exit code.
fn conclude<T: StampResult>(mut ends: Vec<(String, StampEnd<T>)>, order: &[String], output: RunOutput) -> ExitCode {
    ends.sort_by_key(|(name, _)| order.iter().position(|o| o == name));
    summary(&ends, output);
    let worst = ends.iter().map(|(_, end)| end.code()).max().unwrap_or(exit::OK);
    ExitCode::from(worst)
}

/// The stamps under way.
struct Running<T> {
    set: JoinSet<StampEnd<T>>,
    names: HashMap<tokio::task::Id, String>,
}

impl<T: StampResult> Running<T> {
    /// The next stamp to end. A panic in one stamp's run is a bug; it is reported as that
    /// stamp's failure and the others still end.
    async fn join(&mut self) -> Option<(String, StampEnd<T>)> {
        let (id, end) = match self.set.join_next_with_id().await? {
            Ok((id, end)) => (id, end),
            Err(e) => (e.id(), StampEnd::Failed(CliError::failed(format!("the stamp's run panicked: {e}")))),
        };
        Some((self.names.remove(&id).unwrap_or_default(), end))
    }
}

/// What works for one stamp but not for several, refused before anything is read.
fn check_for_many(args: &RotateArgs, pep: &PepArgs) -> Result<(), CliError> {
    if !args.yes && !args.dry_run {
        return Err(CliError::bad_input(
            "several stamps are rotated without asking each: review them with --dry-run, then give --yes",
        ));
    }
    // Neither --new-password nor --generate-password: rotate would prompt for the new one.
    let prompt = SecretSource::Prompt;
    let new_password = match (&args.new_password, args.generate_password) {
        (Some(source), _) => Some(source),
        (None, true) => None,
        (None, false) => Some(&prompt),
    };
    refuse_prompts(&[
        ("--bmc-password", Some(&args.bmc_password)),
        ("--new-password", new_password),
        ("--cloudadmin-password", Some(&pep.cloudadmin_password)),
        ("--transcripts-password", args.transcripts_password.as_ref()),
    ])?;
    refuse_shared_paths(&[("--journal", args.journal.as_ref()), ("--password-out", args.password_out.as_ref())])
}

/// One stamp's arguments: `{stamp}` filled in wherever it may stand.
fn for_stamp(file: &Path, stamp: &str, pep: &PepArgs, args: &RotateArgs) -> (StampArgs, RotateArgs) {
    let path = |p: &Option<PathBuf>| p.as_deref().map(|p| path_for(p, stamp));
    let mut pep = pep.clone();
    pep.cloudadmin_password = pep.cloudadmin_password.for_stamp(stamp);
    let args = RotateArgs {
        bmc_password: args.bmc_password.for_stamp(stamp),
        new_password: args.new_password.as_ref().map(|s| s.for_stamp(stamp)),
        transcripts_password: args.transcripts_password.as_ref().map(|s| s.for_stamp(stamp)),
        journal: path(&args.journal),
        password_out: path(&args.password_out),
        ..args.clone()
    };
    (StampArgs { inventory: file.to_owned(), pep }, args)
}

/// A stamp's end as soon as it comes: its report (tables, JSON lines), or nothing yet (one JSON
/// document is printed whole at the end).
fn finished<T: StampResult>(stamp: &str, end: &StampEnd<T>, output: RunOutput) {
    match output {
        RunOutput::Json => {}
        RunOutput::Jsonl => {
            let mut line = end.to_json();
            line["event"] = "end".into();
            line["stamp"] = stamp.into();
            line["exit_code"] = end.code().into();
            println!("{line}");
        }
        RunOutput::Table => {
            println!("== stamp {stamp}");
            match end {
                StampEnd::Ended(ended) => ended.print(RunOutput::Table),
                other => println!("{}: {}", other.outcome(), other.detail()),
            }
            println!();
        }
    }
}

/// The summary of every stamp.
fn summary<T: StampResult>(ends: &[(String, StampEnd<T>)], output: RunOutput) {
    match output {
        RunOutput::Table => {
            let rows: Vec<Vec<String>> = ends
                .iter()
                .map(|(stamp, end)| vec![stamp.clone(), end.outcome(), end.code().to_string(), end.detail()])
                .collect();
            print!("{}", render::table_fit(&["STAMP", "OUTCOME", "EXIT", "DETAIL"], &rows, render::terminal_width()));
        }
        RunOutput::Json => {
            let stamps: Vec<serde_json::Value> = ends
                .iter()
                .map(|(stamp, end)| {
                    let mut value = end.to_json();
                    value["stamp"] = stamp.as_str().into();
                    value["outcome"] = end.outcome().into();
                    value["exit_code"] = end.code().into();
                    value
                })
                .collect();
            let json = serde_json::json!({ "stamps": stamps });
            println!("{}", serde_json::to_string_pretty(&json).expect("serialisable"));
        }
        RunOutput::Jsonl => {
            let stamps: Vec<serde_json::Value> = ends
                .iter()
                .map(|(stamp, end)| {
                    serde_json::json!({ "stamp": stamp, "outcome": end.outcome(), "exit_code": end.code() })
                })
                .collect();
            println!("{}", serde_json::json!({ "event": "summary", "stamps": stamps }));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stamp_fills_in_its_name_and_nothing_else_changes() {
        let pep = PepArgs {
            cloudadmin_password: "env:CA_{stamp}".parse().unwrap(),
            pep_client: super::super::pep::PepClientKind::Native,
            pep_deadline: std::time::Duration::from_secs(60),
        };
        assert_eq!(pep.cloudadmin_password.for_stamp("east-1.a"), SecretSource::Env("CA_EAST_1_A".into()));
        let file: SecretSource = "file:/s/{stamp}/bmc".parse().unwrap();
        assert_eq!(file.for_stamp("east-1"), SecretSource::File("/s/east-1/bmc".into()));
        let plain: SecretSource = "env:SAME".parse().unwrap();
        assert_eq!(plain.for_stamp("east-1"), plain);
    }
}

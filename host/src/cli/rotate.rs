//! `bmc-rotate rotate`, `resume` and `status`: the operator's commands around the fleet run.

use super::args::SecretSourceParser;
use super::escrow::{EscrowArgs, notify_end};
use super::pep::{PepArgs, StampArgs, client};
use super::progress::Display;
use super::{CliError, CmdResult, Output, RunOutput, exit, read_secret, render};
use crate::fleet::audit::{self, AuditEntry};
use crate::fleet::cancel::Cancel;
use crate::fleet::engine::{
    self, PepStep, Plan, Preflight, ResumeError, ResumeOptions, RotationOptions, RunOutcome, RunReport, RunSecrets,
    RunState, SnmpMode,
};
use crate::fleet::escrow::{Escrow, RunInfo};
use crate::fleet::inventory::{Inventory, PepSettings};
use crate::fleet::journal;
use crate::fleet::lock::StampLock;
use crate::fleet::members::{self, Member};
use crate::gateway::Limits;
use crate::paths;
use crate::pep::AnyClient;
use crate::runtime::{Runtime, RuntimeConfig};
use crate::secrets::{SecretReader, SecretSource};
use clap::ValueEnum;
use secrecy::{ExposeSecret, SecretString};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

/// What a failed PEP step does to the BMCs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum OnPepFailure {
    /// Return every BMC to the old password, so BMCs and Azure Stack agree (exit code 3).
    Rollback,
    /// Keep the new password on the BMCs and end needing `resume` (exit code 4).
    Keep,
}

/// Where plugins and profiles come from.
#[derive(Debug, clap::Args)]
pub struct Sources {
    /// The plugin directory (`*.wasm`).
    /// [default: PREFIX/lib/bmc-rotate/plugins beside the binary, and $XDG_DATA_HOME/bmc-rotate/plugins]
    #[arg(long, env = "BMC_ROTATE_PLUGIN_DIR", value_name = "DIR")]
    pub plugin_dir: Option<PathBuf>,
    /// The user profile directory (adds to and overrides the built-in profiles).
    /// [default: $XDG_CONFIG_HOME/bmc-rotate/profiles]
    #[arg(long, env = "BMC_ROTATE_PROFILE_DIR", value_name = "DIR")]
    pub profile_dir: Option<PathBuf>,
    /// Append a record of the run to this audit log (JSON lines, mode 0600).
    /// [default: $XDG_STATE_HOME/bmc-rotate/audit.jsonl]
    #[arg(long, value_name = "FILE")]
    pub audit_log: Option<PathBuf>,
    /// BMCs worked on at once (1 to 512).
    #[arg(long, default_value_t = 16, value_parser = clap::value_parser!(u16).range(1..=512))]
    pub concurrency: u16,
}

/// `rotate`'s own options.
#[derive(Clone, Debug, clap::Args)]
pub struct RotateArgs {
    /// Where to read the password every BMC holds now: prompt, env:VAR, file:PATH or stdin.
    #[arg(long, value_name = "SOURCE", default_value = "prompt", value_parser = SecretSourceParser)]
    pub bmc_password: SecretSource,
    /// Where to read the new BMC password (asked twice when prompted).
    #[arg(long, value_name = "SOURCE", value_parser = SecretSourceParser, conflicts_with = "generate_password")]
    pub new_password: Option<SecretSource>,
    /// Generate the new password: random, as long as every BMC and Azure Stack allow (≤ 16),
    /// from characters safe everywhere. Needs --password-out.
    #[arg(long, requires = "password_out")]
    pub generate_password: bool,
    /// Where to write the generated password before anything changes: a new file (mode 0600),
    /// or `-` for this terminal (never stdout).
    #[arg(long, value_name = "FILE")]
    pub password_out: Option<PathBuf>,
    /// Plan and preflight only: probe and verify every BMC, check the new password against every
    /// policy, change nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Rotate without asking. Without a terminal to ask on, a run needs it; a dry run never asks.
    #[arg(long, short = 'y')]
    pub yes: bool,
    /// What a failed PEP step does to the BMCs.
    #[arg(long, value_enum, default_value_t = OnPepFailure::Rollback)]
    pub on_pep_failure: OnPepFailure,
    /// What the rotation account's SNMPv3 state does when it would break Azure Stack Hub's
    /// hardware alerts (off, DES privacy, MD5 authentication, or not reported by the plugin):
    /// `require` stops preflight naming each BMC and the fix; `warn` goes on and reports it.
    #[arg(long, value_enum, default_value_t = SnmpMode::Require)]
    pub snmp: SnmpMode,
    /// The run's journal (created; never overwritten).
    /// [default: $XDG_STATE_HOME/bmc-rotate/journals/STAMP-TIME.jsonl]
    #[arg(long, value_name = "FILE")]
    pub journal: Option<PathBuf>,
    /// Where to read the transcript share's password (when the inventory names a share).
    #[arg(long, value_name = "SOURCE", value_parser = SecretSourceParser)]
    pub transcripts_password: Option<SecretSource>,
    #[command(flatten)]
    pub escrow: EscrowArgs,
    /// Before changing anything, run the PEP's `Test-AzureStack -Group SecretRotationReadiness`
    /// and show its result; a failure stops the run with nothing changed. It runs the stamp's
    /// health tests and may take minutes: raise --pep-deadline if needed.
    #[arg(long)]
    pub pep_readiness: bool,
}

/// Everything loaded from disk before any BMC is contacted.
struct Loaded {
    inventory: Inventory,
    members: Vec<Member>,
}

async fn load(inventory: &Path, sources: &Sources, cache_dir: Option<PathBuf>) -> Result<Loaded, CliError> {
    let (inventory, members) =
        load_members(inventory, sources.plugin_dir.clone(), sources.profile_dir.clone(), cache_dir).await?;
    Ok(Loaded { inventory, members })
}

/// The inventory and its members (profiles, plugins from `plugin_dir` or the default
/// directories), printing the inventory's warnings: what every command that works on a stamp's
/// BMCs loads before contacting one.
pub(super) async fn load_members(
    inventory: &Path,
    plugin_dir: Option<PathBuf>,
    profile_dir: Option<PathBuf>,
    cache_dir: Option<PathBuf>,
) -> Result<(Inventory, Vec<Member>), CliError> {
    let dirs = plugin_dir.map_or_else(paths::plugin_dirs, |dir| vec![dir]);
    if dirs.is_empty() {
        return Err(CliError::bad_input("no plugin directory: give --plugin-dir"));
    }
    let dirs: Vec<&Path> = dirs.iter().map(PathBuf::as_path).collect();
    let runtime = Runtime::new(RuntimeConfig { cache_dir, ..RuntimeConfig::default() })
        .map_err(|e| CliError::failed(format!("cannot start the plugin runtime: {e:#}")))?;
    let profile_dir = profile_dir.or_else(paths::profiles);
    let (inventory, members) = members::load(inventory, profile_dir.as_deref(), &dirs, &runtime, Limits::default())
        .await
        .map_err(|errors| CliError { code: exit::BAD_INPUT, messages: errors, hint: None })?;
    for warning in &inventory.warnings {
        eprintln!("warning: {warning}");
    }
    Ok((inventory, members))
}

fn read(reader: &mut SecretReader, source: &SecretSource, what: &str) -> Result<Arc<SecretString>, CliError> {
    read_secret(reader, source, what).map(Arc::new)
}

/// The new password from its source; a prompt asks twice.
fn read_new(reader: &mut SecretReader, source: &SecretSource) -> Result<Arc<SecretString>, CliError> {
    let new = read(reader, source, "the new BMC password")?;
    if *source == SecretSource::Prompt {
        let again = read(reader, source, "the new BMC password (again)")?;
        if again.expose_secret() != new.expose_secret() {
            return Err(CliError::bad_input("the two new passwords differ"));
        }
    }
    Ok(new)
}

/// The PEP step from the inventory's `[pep]` table and the operator's secrets.
fn pep_step(
    settings: &PepSettings,
    pep: &PepArgs,
    reader: &mut SecretReader,
    transcripts_password: Option<&SecretSource>,
) -> Result<PepStep<AnyClient>, CliError> {
    let target = super::pep::target(settings, pep, reader)?;
    let close = super::pep::transcript_share(settings, transcripts_password, reader)?;
    let client = client(pep.pep_client).map_err(CliError::bad_input)?;
    Ok(PepStep { client, target, close, readiness: false })
}

/// Writes a generated password where the operator asked, before anything changes.
pub(super) fn save_generated(out: &Path, password: &SecretString) -> Result<(), String> {
    if out == Path::new("-") {
        let (input, output) = crate::platform::open_terminal()
            .map_err(|e| format!("--password-out -: no terminal to show the password on ({e})"))?;
        let width = crate::platform::terminal_width(&output);
        return show_until_stored(&output, std::io::BufReader::new(&input), password, width)
            .map_err(|e| format!("the terminal: {e}"));
    }
    let mut file = crate::platform::owner_only(std::fs::OpenOptions::new().write(true).create_new(true))
        .open(out)
        .map_err(|e| format!("cannot create {} for the generated password: {e}", out.display()))?;
    crate::platform::make_private(&file).map_err(|e| format!("cannot make {} private: {e}", out.display()))?;
    writeln!(file, "{}", password.expose_secret())
        .and_then(|()| file.sync_all())
        .map_err(|e| format!("{}: {e}", out.display()))
}

/// Shows the password, waits for Enter (the operator stores it meanwhile), then clears it from
/// the screen, so it does not stay in view above the run. `width` is the terminal's, to count the
/// rows a long line wrapped onto.
fn show_until_stored(
    mut out: impl Write,
    mut input: impl std::io::BufRead,
    password: &SecretString,
    width: Option<usize>,
) -> std::io::Result<()> {
    let shown = zeroize::Zeroizing::new(format!("generated BMC password: {}", password.expose_secret()));
    let prompt = "store it now, then press Enter: ";
    write!(out, "{}\n{prompt}", shown.as_str())?;
    out.flush()?;
    let mut line = zeroize::Zeroizing::new(String::new());
    input.read_line(&mut line)?;
    // Enter left the cursor below the prompt: up over the prompt's rows and the password's, to
    // the start of the password's first row, then erase to the end of the screen.
    let rows = |text: &str| width.map_or(1, |w| text.chars().count().div_ceil(w.max(1)).max(1));
    write!(out, "\x1b[{}A\r\x1b[J", rows(&shown) + rows(prompt))?;
    out.flush()
}

/// Appends to the audit log; a log that cannot be written is a warning, not a reason to hide
/// what the run did.
fn audit(path: Option<&Path>, entry: &AuditEntry) {
    if let Some(path) = path
        && let Err(e) = audit::append(path, entry)
    {
        eprintln!("warning: {e}");
    }
}

pub(super) fn exit_code(outcome: RunOutcome) -> u8 {
    match outcome {
        RunOutcome::Rotated | RunOutcome::DryRun => exit::OK,
        RunOutcome::PreflightFailed => exit::FAILED,
        RunOutcome::RolledBack => exit::ROLLED_BACK,
        RunOutcome::NeedsResume | RunOutcome::Interrupted => exit::NEEDS_RESUME,
    }
}

/// The exit code of a run the operator stopped, and the line that says what to do: 4 when a BMC
/// may hold another password than before (the journal leads `resume` from there), 1 when none
/// changed.
fn interrupted(report: &RunReport, journal: Option<&Path>) -> u8 {
    let changed = report.bmcs.iter().filter(|b| b.holds != journal::Which::Old).count();
    match journal {
        Some(journal) if changed > 0 || report.bmcs.iter().any(|b| b.result == engine::BmcResult::Converged) => {
            eprintln!(
                "interrupted: {changed} BMCs changed, run: bmc-rotate resume --journal {}",
                crate::fleet::lock::printable(&journal.to_string_lossy())
            );
            exit::NEEDS_RESUME
        }
        _ => {
            eprintln!("interrupted: no BMC was changed");
            exit::FAILED
        }
    }
}

/// A dry run's end: the plan, then the preflight's report.
fn print_with_plan(report: &RunReport, plan: &Plan, output: RunOutput) {
    match output {
        RunOutput::Json => {
            let json = serde_json::json!({ "report": report, "plan": plan, "journal": null });
            println!("{}", serde_json::to_string_pretty(&json).expect("serialisable"));
        }
        RunOutput::Jsonl => {
            println!("{}", serde_json::json!({ "event": "end", "report": report, "plan": plan, "journal": null }));
        }
        RunOutput::Table => {
            println!("{}", super::plan::render(plan));
            print(report, None, output);
        }
    }
}

pub(super) fn print(report: &RunReport, journal: Option<&Path>, output: RunOutput) {
    // Lossy: a path need not be UTF-8, and serde refuses one that is not.
    let journal = journal.map(|j| j.to_string_lossy());
    match output {
        RunOutput::Json => {
            let json = serde_json::json!({ "report": report, "journal": journal });
            println!("{}", serde_json::to_string_pretty(&json).expect("serialisable"));
        }
        RunOutput::Jsonl => {
            println!("{}", serde_json::json!({ "event": "end", "report": report, "journal": journal }));
        }
        RunOutput::Table => {
            let rows: Vec<Vec<String>> = report
                .bmcs
                .iter()
                .map(|b| {
                    vec![
                        b.name.clone(),
                        b.vendor.clone(),
                        b.family.clone(),
                        b.result.as_str().to_owned(),
                        // A BMC preflight could not log in to: what it holds was never verified.
                        if b.result == engine::BmcResult::PreflightFailed && b.holds == journal::Which::Unknown {
                            "-".to_owned()
                        } else {
                            engine::name(b.holds).to_owned()
                        },
                        format!("{:.1}s", b.duration.as_secs_f64()),
                        b.error.clone().unwrap_or_default(),
                    ]
                })
                .collect();
            let header = ["BMC", "VENDOR", "FAMILY", "RESULT", "HOLDS", "TIME", "ERROR"];
            print!("{}", render::table_fit(&header, &rows, render::terminal_width()));
            println!();
            for note in &report.notes {
                println!("- {note}");
            }
            if let Some(pep) = &report.pep {
                println!("- PEP: {} on {}", pep.call, pep.endpoint);
            }
            if let Some(journal) = journal {
                println!("- journal: {journal}");
            }
            println!("outcome: {} ({:.1}s)", report.outcome.as_str(), report.elapsed.as_secs_f64());
        }
    }
}

/// A rotation with every argument checked and every secret read: [`RotatePlan::resolve`] does
/// all that may fail on bad input before the first BMC is contacted, so an operator who typed
/// something wrong learns it at once, with nothing changed and no journal written.
pub(super) struct RotatePlan {
    inventory: Inventory,
    members: Vec<Member>,
    secrets: RunSecrets,
    pep: PepStep<AnyClient>,
    pub(super) options: RotationOptions,
    pub(super) journal: PathBuf,
    dry_run: bool,
    /// Rotate without asking.
    yes: bool,
    /// Where a generated password goes; `None` when the operator gave the new one.
    password_out: Option<PathBuf>,
    audit_log: Option<PathBuf>,
    /// Where the new password is escrowed before the first change.
    escrow: Option<Escrow>,
    /// The stamp's lock, held until the command ends.
    _lock: StampLock,
}

impl RotatePlan {
    /// Loads the inventory, profiles and plugins, settles where the journal, audit log and a
    /// generated password go, and reads the secrets (stdin order: current BMC password, new BMC
    /// password, CloudAdmin password, transcript share password).
    pub(super) async fn resolve(
        stamp: &StampArgs,
        args: &RotateArgs,
        sources: &Sources,
        cache_dir: Option<PathBuf>,
    ) -> Result<RotatePlan, CliError> {
        // The journal records the inventory's path as JSON text, which must be UTF-8.
        let real = std::fs::canonicalize(&stamp.inventory).unwrap_or_else(|_| stamp.inventory.clone());
        if stamp.inventory.to_str().is_none() || real.to_str().is_none() {
            return Err(CliError::bad_input(format!(
                "--inventory {}: the path is not UTF-8, and the run's journal records it; rename the file or link to \
                 it from a UTF-8 path",
                real.display()
            )));
        }
        let escrow = args.escrow.escrow()?;
        if let Some(warning) = escrow.as_ref().and_then(Escrow::warning) {
            eprintln!("warning: {warning}");
        }
        let Loaded { inventory, members } = load(&stamp.inventory, sources, cache_dir).await?;
        // Before any secret is read or BMC contacted: a command line reused in a script (a dry
        // run's, say) must not rotate a fleet because nobody was there to be asked.
        if !args.dry_run && !args.yes && !super::plan::has_terminal() {
            return Err(CliError::bad_input(format!(
                "rotate changes every BMC of stamp {} and Azure Stack, and asks first: with no terminal to ask on, \
                 give --yes (or --dry-run to see the plan)",
                inventory.stamp
            )));
        }
        let share = inventory.pep.as_ref().and_then(|p| p.transcripts.as_ref());
        if args.transcripts_password.is_some() && share.is_none() {
            return Err(CliError::bad_input(
                "--transcripts-password needs `transcripts` in the inventory's [pep] table",
            ));
        }
        if args.pep_readiness && stamp.pep.pep_client != super::pep::PepClientKind::Native {
            return Err(CliError::bad_input(
                "--pep-readiness runs with the native PEP client only: drop --pep-client or give --pep-client native",
            ));
        }
        let Some(settings) = &inventory.pep else {
            return Err(CliError::bad_input(format!(
                "{}: no [pep] table; a rotation ends by storing the password in Azure Stack Hub, so the inventory \
                 needs `endpoints` and `cloudadmin` (see host/inventory.example.toml)",
                inventory.path.display()
            )));
        };
        let Some(journal) = args.journal.clone().or_else(|| paths::journal(&inventory.stamp, journal::now_ms())) else {
            return Err(CliError::bad_input("no place for the journal: give --journal"));
        };
        // Both files are created only once preflight passes; refuse now what would fail then.
        if journal.exists() {
            return Err(CliError::bad_input(format!(
                "the journal {} exists: a journal is never overwritten; give a new --journal",
                journal.display()
            )));
        }
        if let Some(out) = args.password_out.as_deref().filter(|o| *o != Path::new("-") && o.exists()) {
            return Err(CliError::bad_input(format!(
                "{} exists: --password-out never overwrites a file",
                out.display()
            )));
        }
        // A dry run takes the lock too: its logins with the current password would fail on BMCs
        // another run has just changed.
        let lock = super::lock_stamp(&inventory, "rotate", Some(&journal))?;
        let mut reader = SecretReader::default();
        let old = read(&mut reader, &args.bmc_password, "the current BMC password")?;
        let new = match (&args.new_password, args.generate_password) {
            (_, true) => None,
            (Some(source), false) => Some(read_new(&mut reader, source)?),
            (None, false) => Some(read_new(&mut reader, &SecretSource::Prompt)?),
        };
        let mut pep = pep_step(settings, &stamp.pep, &mut reader, args.transcripts_password.as_ref())?;
        pep.readiness = args.pep_readiness;
        let options = RotationOptions {
            concurrency: sources.concurrency as usize,
            rollback_on_pep_failure: args.on_pep_failure == OnPepFailure::Rollback,
            cancel: Cancel::new(),
            ledger: crate::fleet::ledger::Ledger::new(),
            snmp: args.snmp,
        };
        let password_out = if args.generate_password {
            Some(args.password_out.clone().expect("clap requires --password-out"))
        } else {
            None
        };
        Ok(RotatePlan {
            inventory,
            members,
            secrets: RunSecrets { old, new },
            pep,
            options,
            journal,
            dry_run: args.dry_run,
            yes: args.yes,
            password_out,
            audit_log: sources.audit_log.clone().or_else(paths::audit_log),
            escrow,
            _lock: lock,
        })
    }
}

/// `rotate` of one stamp (several go through [`super::stamps`]).
pub async fn rotate(
    stamp: StampArgs,
    args: RotateArgs,
    sources: Sources,
    output: RunOutput,
    cache_dir: Option<PathBuf>,
) -> CmdResult {
    let plan = RotatePlan::resolve(&stamp, &args, &sources, cache_dir).await?;
    let display = if output == RunOutput::Jsonl { Display::events() } else { Display::new() };
    let _signals = super::signals::watch(plan.options.cancel.clone(), vec![plan.journal.clone()], display.clone())
        .map_err(CliError::failed)?;
    let ended = run_plan(plan, display.clone()).await;
    drop(display);
    let ended = ended?;
    ended.print(output);
    Ok(ExitCode::from(ended.code()))
}

/// How one stamp's rotation ended, for the caller to print.
pub(super) enum Ended {
    /// The run, or the dry run with its plan, ended with this report.
    Report {
        /// The report.
        report: Box<RunReport>,
        /// A dry run's plan.
        plan: Option<Plan>,
        /// The run's journal, once one was written.
        journal: Option<PathBuf>,
    },
    /// The stamp's last run already did this: nothing was contacted.
    AlreadyDone(String),
    /// A resume ended with this report.
    Resumed {
        /// The report.
        report: Box<RunReport>,
        /// The run's journal.
        journal: PathBuf,
    },
    /// A resume found nothing to converge: nothing was contacted.
    NothingToResume(String),
}

impl Ended {
    /// The exit code this end means (an interrupted run also says what to run next, on stderr).
    pub(super) fn code(&self) -> u8 {
        match self {
            Ended::AlreadyDone(_) | Ended::NothingToResume(_) => exit::OK,
            Ended::Resumed { report, journal } if report.outcome == RunOutcome::Interrupted => {
                // A resume stopped part way always leaves work for the next one.
                interrupted(report, Some(journal));
                exit::NEEDS_RESUME
            }
            Ended::Resumed { report, .. } => exit_code(report.outcome),
            Ended::Report { report, journal, .. } if report.outcome == RunOutcome::Interrupted => {
                interrupted(report, journal.as_deref())
            }
            Ended::Report { report, .. } => exit_code(report.outcome),
        }
    }

    /// Prints the end in the chosen form.
    pub(super) fn print(&self, output: RunOutput) {
        match self {
            Ended::AlreadyDone(done) | Ended::NothingToResume(done) => match output {
                RunOutput::Table => println!("{done}"),
                RunOutput::Json => println!("{}", serde_json::json!({ "report": null, "note": done })),
                RunOutput::Jsonl => println!("{}", serde_json::json!({ "event": "end", "report": null, "note": done })),
            },
            Ended::Report { report, plan: Some(plan), .. } => print_with_plan(report, plan, output),
            Ended::Report { report, plan: None, journal } => print(report, journal.as_deref(), output),
            Ended::Resumed { report, journal } => print(report, Some(journal), output),
        }
    }

    /// The end as one JSON value (several stamps' output).
    pub(super) fn to_json(&self) -> serde_json::Value {
        match self {
            Ended::AlreadyDone(done) | Ended::NothingToResume(done) => {
                serde_json::json!({ "report": null, "note": done })
            }
            Ended::Resumed { report, journal } => {
                serde_json::json!({ "report": report, "journal": journal.to_string_lossy() })
            }
            Ended::Report { report, plan, journal } => serde_json::json!({
                "report": report,
                "plan": plan,
                "journal": journal.as_ref().map(|j| j.to_string_lossy()),
            }),
        }
    }
}

/// Runs one resolved rotation to its end: the last-run check, preflight, the plan (and a dry
/// run's end), the question, escrow, the run, the audit record. Prints nothing of its own end.
pub(super) async fn run_plan(plan: RotatePlan, display: Arc<Display>) -> Result<Ended, CliError> {
    let RotatePlan {
        inventory,
        members,
        secrets,
        pep,
        options,
        journal: journal_path,
        dry_run,
        yes,
        password_out,
        audit_log,
        escrow,
        _lock,
    } = plan;
    let names: Vec<String> = members.iter().map(|m| m.entry.name.clone()).collect();
    let audit_log = audit_log.as_deref();
    if let Some(done) = last_run(audit_log, &inventory, &secrets)? {
        return Ok(Ended::AlreadyDone(done));
    }
    let old = secrets.old.clone();
    let observer: Arc<dyn engine::Observer> = display.clone();
    let ended = |report: RunReport, plan: Option<Plan>, journal: Option<PathBuf>| {
        audit(
            audit_log,
            &AuditEntry::now("rotate", &inventory.stamp, names.clone(), report.outcome.as_str(), journal.clone()),
        );
        Ok(Ended::Report { report: Box::new(report), plan, journal })
    };
    let preflighted = match engine::preflight(members, &inventory.stamp, secrets, Some(pep), &options, observer).await {
        Preflight::Passed(preflighted) => preflighted,
        Preflight::Stopped(report) => return ended(report, None, None),
    };
    let plan = preflighted.plan();
    if dry_run {
        return ended(preflighted.dry_run(), Some(plan), None);
    }
    if !yes {
        match display.suspend(|| super::plan::confirm_on_terminal(&plan)) {
            Ok(true) => {}
            Ok(false) => {
                audit(audit_log, &AuditEntry::now("rotate", &inventory.stamp, names, "declined", None));
                return Err(CliError::failed("not confirmed: nothing was changed"));
            }
            Err(e) => return Err(CliError::failed(format!("{e}; nothing was changed"))),
        }
    }
    let saved = match &password_out {
        Some(out) => display.suspend(|| save_generated(out, preflighted.new_password())),
        None => Ok(()),
    };
    // The questions above block this one thread: a Ctrl-C typed meanwhile is seen only now that
    // the signal watcher gets to run, and must stop the run before its first change.
    tokio::task::yield_now().await;
    if options.cancel.is_cancelled() {
        audit(audit_log, &AuditEntry::now("rotate", &inventory.stamp, names, "interrupted", None));
        return Err(CliError::failed("interrupted before any change: nothing was changed"));
    }
    // The journal exists from here on: the run is resumable from its first change.
    let started = saved.and_then(|()| {
        let new = preflighted.new_password().expose_secret();
        journal::start_run(&journal_path, &inventory, old.expose_secret(), new, options.rollback_on_pep_failure)
    });
    let run = RunInfo { stamp: &inventory.stamp, bmc_user: &inventory.bmc_user };
    let escrowed = match started {
        Ok(journal) => match &escrow {
            Some(escrow) => escrow_new(escrow, run, preflighted.new_password(), journal).await,
            None => Ok(journal),
        },
        Err(e) => Err(e),
    };
    let journal = match escrowed {
        Ok(journal) => journal,
        Err(e) => {
            let journal = journal_path.exists().then(|| journal_path.clone());
            audit(audit_log, &AuditEntry::now("rotate", &inventory.stamp, names, "failed", journal));
            return Err(CliError::failed(format!("{e}; nothing was changed")));
        }
    };
    match preflighted.execute(journal).await {
        Ok(mut report) => {
            notify_end(escrow.as_ref(), run, &mut report).await;
            ended(report, None, Some(journal_path))
        }
        Err(e) if !journal::any_change(&journal_path) => {
            // No `changing` record is durable (each change is recorded before it is sent):
            // nothing was changed.
            audit(audit_log, &AuditEntry::now("rotate", &inventory.stamp, names, "failed", Some(journal_path)));
            Err(CliError::failed(format!("{e}; nothing was changed")))
        }
        Err(e) => {
            // The journal could not be written: stop; it records everything up to here.
            let entry = AuditEntry::now("rotate", &inventory.stamp, names, "stopped", Some(journal_path.clone()));
            audit(audit_log, &entry);
            Err(CliError::new(
                exit::NEEDS_RESUME,
                format!("{e}; the run stopped. `bmc-rotate status --journal {}` shows where", journal_path.display()),
            ))
        }
    }
}

/// Hands the new password to the escrow command and records that it did (no secret): a failure
/// leaves a journal without any change, so nothing needs converging.
async fn escrow_new(
    escrow: &Escrow,
    run: RunInfo<'_>,
    new: &SecretString,
    mut journal: journal::Journal,
) -> Result<journal::Journal, String> {
    escrow.store(run, new).await.map_err(|e| format!("escrow: {e}"))?;
    journal.write(journal::Record::Escrowed)?;
    Ok(journal)
}

/// What the stamp's last run, as the audit log names it, says about this one — before any BMC
/// is contacted, so a mistake costs no failed login: a run that did not finish must be resumed
/// first (its BMCs may hold two passwords); a current password that run replaced would be
/// refused by every BMC; and the same rotation again has nothing to do (returned as the line to
/// print). A log or journal that cannot be read tells nothing, and the run proceeds.
fn last_run(audit_log: Option<&Path>, inventory: &Inventory, secrets: &RunSecrets) -> Result<Option<String>, CliError> {
    let stamp = inventory.stamp.as_str();
    let Some(entry) = audit_log.and_then(|log| audit::last_run(log, stamp)) else {
        return Ok(None);
    };
    let Some(path) = entry.journal else { return Ok(None) };
    let Ok(state) = journal::read_all(&path).and_then(|contents| engine::state_of(&contents)) else {
        return Ok(None);
    };
    // A run stopped before its first change left nothing to resume.
    if !journal::any_change(&path) {
        return Ok(None);
    }
    // The same account on the same BMCs, not just the same stamp name (a rebuilt stamp, a lab,
    // may reuse it).
    if state.bmc_user != inventory.bmc_user {
        return Ok(None);
    }
    let addresses = inventory.bmcs.iter().map(|b| crate::fleet::inventory::canonical_address(&b.endpoint));
    if state.bmcs_sha256.as_deref() != Some(crate::fleet::lock::address_digest(addresses).as_str()) {
        return Ok(None);
    }
    let shown = crate::fleet::lock::printable(&path.to_string_lossy());
    if !state.converged() {
        return Err(CliError::bad_input(format!(
            "the last run on stamp {stamp} did not finish (journal {shown}): its BMCs may hold two passwords. \
             Converge it first with `bmc-rotate resume --journal {shown}`; nothing was contacted"
        )));
    }
    let given_new = secrets.new.as_ref().and_then(|new| state.is(journal::Which::New, new));
    if state.finished == Some(RunOutcome::Rotated) && state.is(journal::Which::Old, &secrets.old) == Some(true) {
        if given_new == Some(true) {
            return Ok(Some(format!(
                "this rotation already happened: the last run on stamp {stamp} (journal {shown}) set this new \
                 password on every BMC and Azure Stack; nothing to do"
            )));
        }
        return Err(CliError::bad_input(format!(
            "the current password given is the one the last run on stamp {stamp} replaced (journal {shown}): \
             every BMC would refuse it. Give that run's new password as the current one; nothing was contacted"
        )));
    }
    Ok(None)
}

/// `resume`'s options.
#[derive(Debug, clap::Args)]
pub struct ResumeArgs {
    /// The run's journal. With --inventory and no --journal: the stamp's last run in the audit
    /// log. With several stamps, a path naming the stamp ({stamp}) or none.
    #[arg(long, value_name = "FILE", required_unless_present_any = ["inventory", "inventories"])]
    pub journal: Option<PathBuf>,
    /// The inventory (default: the one the run recorded). Repeat it to resume several stamps,
    /// each from its own journal (then secret sources may name the stamp: env:OLD_{stamp}).
    #[arg(long, value_name = "FILE")]
    pub inventory: Vec<PathBuf>,
    /// Resume the stamp of every `*.toml` inventory in DIR.
    #[arg(long, value_name = "DIR", conflicts_with = "inventory")]
    pub inventories: Option<PathBuf>,
    /// With several stamps: how many resume at once.
    #[arg(long, value_name = "N", default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..=256))]
    pub stamp_concurrency: u16,
    /// Where to read the run's old BMC password: prompt, env:VAR, file:PATH or stdin.
    #[arg(long, value_name = "SOURCE", default_value = "prompt", value_parser = SecretSourceParser)]
    pub bmc_password: SecretSource,
    /// Where to read the run's new BMC password.
    #[arg(long, value_name = "SOURCE", default_value = "prompt", value_parser = SecretSourceParser)]
    pub new_password: SecretSource,
    /// Resume although the inventory's stamp or BMC addresses are not the ones the run recorded
    /// (the same BMCs, re-addressed); the differences are listed in the report.
    #[arg(long)]
    pub allow_inventory_change: bool,
    #[command(flatten)]
    pub pep: PepArgs,
    /// The run's escrow command, told how the resume ended (the password was escrowed by
    /// `rotate`; nothing is stored again).
    #[command(flatten)]
    pub escrow: EscrowArgs,
}

/// One stamp's resume: its journal, inventory and secret sources, `{stamp}` filled in.
pub(super) struct ResumeTarget {
    /// The run's journal.
    pub journal: PathBuf,
    /// The inventory, when not the one the run recorded.
    pub inventory: Option<PathBuf>,
    /// The run's old BMC password.
    pub bmc_password: SecretSource,
    /// The run's new BMC password.
    pub new_password: SecretSource,
    /// The stamp's PEP and CloudAdmin password.
    pub pep: PepArgs,
}

/// A resume with the journal read, the fleet loaded and the secrets checked against the
/// journal's fingerprints, before any BMC is contacted.
pub(super) struct ResumePlan {
    inventory: Inventory,
    members: Vec<Member>,
    old: Arc<SecretString>,
    new: Arc<SecretString>,
    pep: Option<PepStep<AnyClient>>,
    audit_log: Option<PathBuf>,
    pub(super) options: ResumeOptions,
    pub(super) journal: PathBuf,
    escrow: Option<Escrow>,
    /// The stamp's lock, held until the command ends.
    _lock: StampLock,
}

impl ResumePlan {
    /// Stdin order: old BMC password, new BMC password, CloudAdmin password. A run that already
    /// converged is [`CliError::nothing_to_do`].
    pub(super) async fn resolve(
        target: &ResumeTarget,
        args: &ResumeArgs,
        sources: &Sources,
        cache_dir: Option<PathBuf>,
    ) -> Result<ResumePlan, CliError> {
        let escrow = args.escrow.escrow()?;
        let journal_path = &target.journal;
        let contents = journal::read_all(journal_path).map_err(CliError::bad_input)?;
        let state = match (engine::state_of(&contents), &target.inventory) {
            (Ok(state), _) => state,
            (Err(e), None) => {
                return Err(CliError::bad_input(format!(
                    "{}: {e}; give --inventory to resume from the inventory and what each BMC holds",
                    journal_path.display()
                )));
            }
            // Recovery: filled in from the inventory below.
            (Err(_), Some(path)) => {
                let recovery = engine::Recovery { stamp: String::new(), inventory: path.clone() };
                RunState::recovered(&recovery, "", Vec::new(), &contents)
            }
        };
        // Said before the fleet is loaded or a secret asked for: typing three passwords only to
        // hear there was nothing to do is the dead end this avoids.
        if let Some(outcome) = state.finished.filter(|_| state.converged()) {
            return Err(CliError::nothing_to_do(format!(
                "the run in {} already ended `{}` (stamp {}): nothing to resume",
                journal_path.display(),
                outcome.as_str(),
                state.stamp
            ))
            .with_hint(format!("`bmc-rotate status --journal {}` shows what each BMC holds", journal_path.display())));
        }
        let inventory_path = target.inventory.clone().unwrap_or_else(|| state.inventory.clone());
        let Loaded { inventory, members } = load(&inventory_path, sources, cache_dir).await?;
        let recovery = state.recovered.then(|| engine::Recovery {
            stamp: inventory.stamp.clone(),
            inventory: std::fs::canonicalize(&inventory.path).unwrap_or_else(|_| inventory.path.clone()),
        });
        let lock = super::lock_stamp(&inventory, "resume", Some(journal_path))?;
        let mut reader = SecretReader::default();
        let old = read(&mut reader, &target.bmc_password, "the run's old BMC password")?;
        let new = read(&mut reader, &target.new_password, "the run's new BMC password")?;
        state.check_secrets(&old, &new).map_err(CliError::bad_input)?;
        // Resume may change direction, so the PEP may need telling whatever the journal says now.
        let pep = match &inventory.pep {
            Some(settings) if !state.converged() => Some(pep_step(settings, &target.pep, &mut reader, None)?),
            _ => None,
        };
        let audit_log = sources.audit_log.clone().or_else(paths::audit_log);
        let options = ResumeOptions {
            recovery,
            allow_inventory_change: args.allow_inventory_change,
            ..ResumeOptions::new(&inventory.stamp, sources.concurrency as usize)
        };
        Ok(ResumePlan {
            inventory,
            members,
            old,
            new,
            pep,
            audit_log,
            options,
            journal: journal_path.clone(),
            escrow,
            _lock: lock,
        })
    }
}

/// `resume` of one stamp (several go through [`super::stamps`]).
pub async fn resume(
    target: ResumeTarget,
    args: ResumeArgs,
    sources: Sources,
    output: RunOutput,
    cache_dir: Option<PathBuf>,
) -> CmdResult {
    let plan = ResumePlan::resolve(&target, &args, &sources, cache_dir).await?;
    let display = if output == RunOutput::Jsonl { Display::events() } else { Display::new() };
    let _signals = super::signals::watch(plan.options.cancel.clone(), vec![plan.journal.clone()], display.clone())
        .map_err(CliError::failed)?;
    let ended = run_resume(plan, display.clone()).await;
    drop(display);
    let ended = ended?;
    ended.print(output);
    Ok(ExitCode::from(ended.code()))
}

/// Runs one resolved resume to its end and records it in the audit log. Prints nothing of its
/// own end.
pub(super) async fn run_resume(plan: ResumePlan, display: Arc<Display>) -> Result<Ended, CliError> {
    let ResumePlan { inventory, members, old, new, pep, audit_log, options, journal: journal_path, escrow, _lock } =
        plan;
    let names: Vec<String> = members.iter().map(|m| m.entry.name.clone()).collect();
    let result = engine::resume(&journal_path, members, old, new, pep, display, &options).await;
    let journal = Some(journal_path.clone());
    let mut report = match result {
        Ok(report) => report,
        Err(ResumeError::BadInput(e)) => return Err(CliError::bad_input(e)),
        Err(ResumeError::Preflight(e)) => {
            audit(
                audit_log.as_deref(),
                &AuditEntry::now("resume", &inventory.stamp, names, "preflight-failed", journal),
            );
            return Err(CliError::failed(e));
        }
        Err(ResumeError::Stopped(e)) => {
            audit(audit_log.as_deref(), &AuditEntry::now("resume", &inventory.stamp, names, "stopped", journal));
            return Err(CliError::new(exit::NEEDS_RESUME, e));
        }
    };
    let run = RunInfo { stamp: &inventory.stamp, bmc_user: &inventory.bmc_user };
    notify_end(escrow.as_ref(), run, &mut report).await;
    let entry = AuditEntry::now("resume", &inventory.stamp, names, report.outcome.as_str(), journal);
    audit(audit_log.as_deref(), &entry);
    Ok(Ended::Resumed { report: Box::new(report), journal: journal_path })
}

/// Where one run stands, from its journal alone.
pub(super) struct Standing {
    /// The run as its journal tells it.
    pub state: Box<RunState>,
    /// The journal.
    pub journal: PathBuf,
}

impl Standing {
    /// Reads the journal; one that cannot be read is bad input.
    pub(super) fn read(journal: &Path) -> Result<Standing, CliError> {
        let state = journal::read_all(journal).and_then(|contents| engine::state_of(&contents)).map_err(|e| {
            CliError::bad_input(format!(
                "{}: {e}; `resume --inventory` can still converge the stamp",
                journal.display()
            ))
        })?;
        Ok(Standing { state: Box::new(state), journal: journal.to_owned() })
    }

    /// 0 if the run converged, 4 if it needs `resume`.
    pub(super) fn code(&self) -> u8 {
        if self.state.converged() { exit::OK } else { exit::NEEDS_RESUME }
    }

    /// Prints the run's standing.
    pub(super) fn print(&self, output: Output) {
        let Standing { state, journal } = self;
        match output {
            Output::Json => println!("{}", serde_json::to_string_pretty(state).expect("serialisable")),
            Output::Table => {
                // The lockout ledger beside what each BMC holds: failed logins the journal
                // records, and what the last command left of its budget.
                let rows: Vec<Vec<String>> = state
                    .bmcs
                    .iter()
                    .zip(&state.ledger)
                    .map(|((b, w), l)| {
                        vec![
                            b.clone(),
                            engine::name(*w).to_owned(),
                            l.failed_logins.to_string(),
                            format!("{} of {}", l.budget_left, crate::fleet::ledger::BUDGET),
                        ]
                    })
                    .collect();
                print!("{}", render::table(&["BMC", "HOLDS", "FAILED LOGINS", "BUDGET LEFT (LAST COMMAND)"], &rows));
                println!();
                let pairs = [
                    ("stamp", state.stamp.clone()),
                    ("run", state.run.clone()),
                    ("inventory", state.inventory.display().to_string()),
                    ("heading for", format!("the {} password", engine::name(state.target))),
                    ("azure stack", format!("stores the {} password", engine::name(state.pep))),
                    ("escrowed", if state.escrowed { "yes" } else { "no" }.to_owned()),
                    ("finished", state.finished.map_or("no", RunOutcome::as_str).to_owned()),
                    ("consistent", state.inconsistent.clone().unwrap_or_else(|| "yes".into())),
                    ("records", state.records.to_string()),
                    ("damage", state.damage.clone().unwrap_or_else(|| "none".into())),
                ];
                print!("{}", render::fields(&pairs));
                if !state.converged() {
                    println!("next: bmc-rotate resume --journal {}", journal.display());
                }
            }
        }
    }
}

/// `status` of one journal.
pub fn status(journal: &Path, output: Output) -> CmdResult {
    let standing = Standing::read(journal)?;
    standing.print(output);
    Ok(ExitCode::from(standing.code()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_password_shown_on_the_terminal_is_cleared_once_stored() {
        let mut screen = Vec::new();
        show_until_stored(&mut screen, &b"\n"[..], &SecretString::from("Gen-Pass_123x"), None).unwrap();
        let screen = String::from_utf8(screen).unwrap();
        let (shown, cleared) = screen.split_once("press Enter: ").unwrap();
        assert!(shown.contains("Gen-Pass_123x"), "{shown}");
        assert_eq!(cleared, "\x1b[2A\r\x1b[J", "both lines erased after Enter");
        // On a narrow terminal the password's line (37 characters) wraps onto three rows of 15,
        // the prompt's (32) onto three: all six are erased.
        let mut screen = Vec::new();
        show_until_stored(&mut screen, &b"\n"[..], &SecretString::from("Gen-Pass_123x"), Some(15)).unwrap();
        assert!(String::from_utf8(screen).unwrap().ends_with("\x1b[6A\r\x1b[J"));
    }
}

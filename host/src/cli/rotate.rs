//! `bmc-rotate rotate`, `resume` and `status`: the operator's commands around the fleet run.

use super::args::SecretSourceParser;
use super::pep::{PepArgs, client};
use super::progress::Display;
use super::{Output, exit, fail, read_secret, render};
use crate::fleet::audit::{self, AuditEntry};
use crate::fleet::inventory::Inventory;
use crate::fleet::journal::{self, Journal};
use crate::fleet::members::{self, Member};
use crate::fleet::profiles::Profiles;
use crate::fleet::resume::{self, ResumeError, RunState};
use crate::fleet::rotation::Observer as _;
use crate::fleet::rotation::{self, PepStep, RotationOptions, RunOutcome, RunReport, RunSecrets};
use crate::gateway::Limits;
use crate::pep::AnyClient;
use crate::runtime::{Runtime, RuntimeConfig};
use crate::secrets::{SecretReader, SecretSource};
use clap::ValueEnum;
use secrecy::{ExposeSecret, SecretString};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

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
    /// [default: $XDG_DATA_HOME/bmc-rotate/plugins]
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
#[derive(Debug, clap::Args)]
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
    /// What a failed PEP step does to the BMCs.
    #[arg(long, value_enum, default_value_t = OnPepFailure::Rollback)]
    pub on_pep_failure: OnPepFailure,
    /// The run's journal (created; never overwritten).
    /// [default: $XDG_STATE_HOME/bmc-rotate/journals/STAMP-TIME.jsonl]
    #[arg(long, value_name = "FILE")]
    pub journal: Option<PathBuf>,
    /// Where to read the transcript share's password (when the inventory names a share).
    #[arg(long, value_name = "SOURCE", value_parser = SecretSourceParser)]
    pub transcripts_password: Option<SecretSource>,
}

/// Everything loaded from disk before any BMC is contacted.
struct Loaded {
    inventory: Inventory,
    members: Vec<Member>,
}

async fn load(inventory: &Path, sources: &Sources, cache_dir: Option<PathBuf>) -> Result<Loaded, u8> {
    let Some(dir) = sources.plugin_dir.clone().or_else(super::plugins::default_plugin_dir) else {
        return Err(fail(exit::BAD_INPUT, "no plugin directory: give --plugin-dir"));
    };
    let runtime = Runtime::new(RuntimeConfig { cache_dir, ..RuntimeConfig::default() })
        .map_err(|e| fail(exit::FAILED, format!("cannot start the plugin runtime: {e:#}")))?;
    let profile_dir = sources.profile_dir.clone().or_else(Profiles::default_dir);
    let (inventory, members) = members::load(inventory, profile_dir.as_deref(), &dir, &runtime, Limits::default())
        .await
        .map_err(|errors| {
            for e in errors {
                eprintln!("error: {e}");
            }
            exit::BAD_INPUT
        })?;
    for warning in &inventory.warnings {
        eprintln!("warning: {warning}");
    }
    Ok(Loaded { inventory, members })
}

fn read(reader: &mut SecretReader, source: &SecretSource, what: &str) -> Result<Arc<SecretString>, u8> {
    read_secret(reader, source, what).map(Arc::new)
}

/// The new password from its source; a prompt asks twice.
fn read_new(reader: &mut SecretReader, source: &SecretSource) -> Result<Arc<SecretString>, u8> {
    let new = read(reader, source, "the new BMC password")?;
    if *source == SecretSource::Prompt {
        let again = read(reader, source, "the new BMC password (again)")?;
        if again.expose_secret() != new.expose_secret() {
            return Err(fail(exit::BAD_INPUT, "the two new passwords differ"));
        }
    }
    Ok(new)
}

/// The PEP step from the inventory's `[pep]` table and the operator's secrets.
fn pep_step(
    inventory: &Inventory,
    pep: &PepArgs,
    reader: &mut SecretReader,
    transcripts_password: Option<&SecretSource>,
) -> Result<Option<PepStep<AnyClient>>, u8> {
    let Some(settings) = &inventory.pep else { return Ok(None) };
    let target = super::pep::target(settings, pep, reader)?;
    let close = super::pep::transcript_share(settings, transcripts_password, reader)?;
    let client = client(pep.pep_client).map_err(|e| fail(exit::BAD_INPUT, e))?;
    Ok(Some(PepStep { client, target, close }))
}

fn default_journal(stamp: &str) -> Option<PathBuf> {
    let ms = journal::now_ms();
    audit::state_dir().map(|d| d.join("journals").join(format!("{stamp}-{ms}.jsonl")))
}

/// Writes a generated password where the operator asked, before anything changes.
pub(super) fn save_generated(out: &Path, password: &SecretString) -> Result<(), String> {
    if out == Path::new("-") {
        let mut tty = std::fs::OpenOptions::new()
            .write(true)
            .open("/dev/tty")
            .map_err(|e| format!("--password-out -: no terminal to show the password on ({e})"))?;
        return writeln!(tty, "generated BMC password (store it now): {}", password.expose_secret())
            .map_err(|e| format!("/dev/tty: {e}"));
    }
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(out)
        .map_err(|e| format!("cannot create {} for the generated password: {e}", out.display()))?;
    writeln!(file, "{}", password.expose_secret())
        .and_then(|()| file.sync_all())
        .map_err(|e| format!("{}: {e}", out.display()))
}

fn audit_log(sources: &Sources, entry: &AuditEntry) {
    let path = sources.audit_log.clone().or_else(|| audit::state_dir().map(|d| d.join("audit.jsonl")));
    if let Some(path) = path
        && let Err(e) = audit::append(&path, entry)
    {
        eprintln!("warning: {e}");
    }
}

pub(super) fn exit_code(outcome: RunOutcome) -> u8 {
    match outcome {
        RunOutcome::Rotated | RunOutcome::DryRun => exit::OK,
        RunOutcome::PreflightFailed => exit::FAILED,
        RunOutcome::RolledBack => exit::ROLLED_BACK,
        RunOutcome::NeedsResume => exit::NEEDS_RESUME,
    }
}

pub(super) fn print(report: &RunReport, journal: Option<&Path>, output: Output) {
    match output {
        Output::Json => {
            let json = serde_json::json!({ "report": report, "journal": journal });
            println!("{}", serde_json::to_string_pretty(&json).expect("serialisable"));
        }
        Output::Table => {
            let rows: Vec<Vec<String>> = report
                .bmcs
                .iter()
                .map(|b| {
                    vec![
                        b.name.clone(),
                        b.vendor.clone(),
                        b.family.clone(),
                        b.result.clone(),
                        rotation::name(b.holds).to_owned(),
                        format!("{:.1}s", b.duration.as_secs_f64()),
                        b.error.clone().unwrap_or_default(),
                    ]
                })
                .collect();
            print!("{}", render::table(&["BMC", "VENDOR", "FAMILY", "RESULT", "HOLDS", "TIME", "ERROR"], &rows));
            println!();
            for note in &report.notes {
                println!("- {note}");
            }
            if let Some(pep) = &report.pep {
                println!("- PEP: {} on {}", pep.call, pep.endpoint);
            }
            if let Some(journal) = journal {
                println!("- journal: {}", journal.display());
            }
            println!("outcome: {} ({:.1}s)", report.outcome.as_str(), report.elapsed.as_secs_f64());
        }
    }
}

/// `rotate`.
pub async fn rotate(
    pep: PepArgs,
    args: RotateArgs,
    sources: Sources,
    output: Output,
    cache_dir: Option<PathBuf>,
) -> u8 {
    let Loaded { inventory, members } = match load(&pep.inventory, &sources, cache_dir).await {
        Ok(loaded) => loaded,
        Err(code) => return code,
    };
    if args.transcripts_password.is_some() && inventory.pep.as_ref().and_then(|p| p.transcripts.as_ref()).is_none() {
        return fail(exit::BAD_INPUT, "--transcripts-password needs `transcripts` in the inventory's [pep] table");
    }
    if inventory.pep.is_none() {
        return fail(
            exit::BAD_INPUT,
            format!(
                "{}: no [pep] table; a rotation ends by storing the password in Azure Stack Hub, so the inventory \
                 needs `endpoints` and `cloudadmin` (see host/inventory.example.toml)",
                inventory.path.display()
            ),
        );
    }
    let Some(journal_path) = args.journal.clone().or_else(|| default_journal(&inventory.stamp)) else {
        return fail(exit::BAD_INPUT, "no place for the journal: give --journal");
    };
    // Both files are created only once preflight passes; refuse now what would fail then.
    if journal_path.exists() {
        return fail(
            exit::BAD_INPUT,
            format!(
                "the journal {} exists: a journal is never overwritten; give a new --journal",
                journal_path.display()
            ),
        );
    }
    if let Some(out) = args.password_out.as_deref().filter(|o| *o != Path::new("-") && o.exists()) {
        return fail(exit::BAD_INPUT, format!("{} exists: --password-out never overwrites a file", out.display()));
    }
    let mut reader = SecretReader::default();
    let secrets = (|| {
        let old = read(&mut reader, &args.bmc_password, "the current BMC password")?;
        let new = match (&args.new_password, args.generate_password) {
            (_, true) => None,
            (Some(source), false) => Some(read_new(&mut reader, source)?),
            (None, false) => Some(read_new(&mut reader, &SecretSource::Prompt)?),
        };
        let step = pep_step(&inventory, &pep, &mut reader, args.transcripts_password.as_ref())?;
        Ok::<_, u8>((RunSecrets { old, new }, step))
    })();
    let (secrets, step) = match secrets {
        Ok(s) => s,
        Err(code) => return code,
    };
    let options = RotationOptions {
        concurrency: sources.concurrency as usize,
        dry_run: args.dry_run,
        rollback_on_pep_failure: args.on_pep_failure == OnPepFailure::Rollback,
    };
    let names: Vec<String> = members.iter().map(|m| m.entry.name.clone()).collect();
    let old_for_journal = secrets.old.clone();
    let display = Display::new();
    let before_change = |new: &SecretString| -> Result<Journal, String> {
        if args.generate_password {
            let out = args.password_out.as_deref().expect("clap requires --password-out");
            display.suspend(|| save_generated(out, new))?;
        }
        let journal = journal::start_run(
            &journal_path,
            &inventory,
            old_for_journal.expose_secret(),
            new.expose_secret(),
            options.rollback_on_pep_failure,
        )?;
        display.note(&format!("journal: {}", journal.path().display()));
        Ok(journal)
    };
    let result =
        rotation::rotate(members, &inventory.stamp, secrets, step, &options, before_change, display.clone()).await;
    drop(display);
    let (report, journal) = match result {
        Ok(done) => done,
        Err(e) if !journal_path.exists() => {
            // Before the first change (the journal is created first): nothing was changed.
            let code = fail(exit::FAILED, format!("{e}; nothing was changed"));
            audit_log(&sources, &AuditEntry::now("rotate", &inventory.stamp, names, "failed", None));
            return code;
        }
        Err(e) => {
            // The journal could not be written: stop; it records everything up to here.
            let code = fail(
                exit::NEEDS_RESUME,
                format!("{e}; the run stopped. `bmc-rotate status --journal {}` shows where", journal_path.display()),
            );
            audit_log(&sources, &AuditEntry::now("rotate", &inventory.stamp, names, "stopped", Some(journal_path)));
            return code;
        }
    };
    audit_log(&sources, &AuditEntry::now("rotate", &inventory.stamp, names, report.outcome.as_str(), journal.clone()));
    print(&report, journal.as_deref(), output);
    exit_code(report.outcome)
}

/// `resume`'s options.
#[derive(Debug, clap::Args)]
pub struct ResumeArgs {
    /// The run's journal.
    #[arg(long, value_name = "FILE")]
    pub journal: PathBuf,
    /// The inventory (default: the one the run recorded).
    #[arg(long, value_name = "FILE")]
    pub inventory: Option<PathBuf>,
    /// Where to read the run's old BMC password: prompt, env:VAR, file:PATH or stdin.
    #[arg(long, value_name = "SOURCE", default_value = "prompt", value_parser = SecretSourceParser)]
    pub bmc_password: SecretSource,
    /// Where to read the run's new BMC password.
    #[arg(long, value_name = "SOURCE", default_value = "prompt", value_parser = SecretSourceParser)]
    pub new_password: SecretSource,
    /// Where to read the CloudAdmin password (needed only if the PEP must be told).
    #[arg(long, value_name = "SOURCE", default_value = "prompt", value_parser = SecretSourceParser)]
    pub cloudadmin_password: SecretSource,
    /// The client that talks to the privileged endpoint.
    #[arg(long, value_enum, default_value_t = super::pep::PepClientKind::Native)]
    pub pep_client: super::pep::PepClientKind,
    /// How long the PEP step may take in all.
    #[arg(long, value_name = "DURATION", default_value = "30m", value_parser = super::args::parse_duration)]
    pub pep_deadline: Duration,
}

/// `resume`.
pub async fn resume(args: ResumeArgs, sources: Sources, output: Output, cache_dir: Option<PathBuf>) -> u8 {
    let lines = match journal::read(&args.journal) {
        Ok(lines) => lines,
        Err(e) => return fail(exit::BAD_INPUT, e),
    };
    let state = match resume::state(&lines) {
        Ok(state) => state,
        Err(e) => return fail(exit::BAD_INPUT, format!("{}: {e}", args.journal.display())),
    };
    let inventory_path = args.inventory.clone().unwrap_or_else(|| state.inventory.clone());
    let Loaded { inventory, members } = match load(&inventory_path, &sources, cache_dir).await {
        Ok(loaded) => loaded,
        Err(code) => return code,
    };
    let mut reader = SecretReader::default();
    let pep_args = PepArgs {
        inventory: inventory_path,
        cloudadmin_password: args.cloudadmin_password.clone(),
        pep_client: args.pep_client,
        pep_deadline: args.pep_deadline,
    };
    let secrets = (|| {
        let old = read(&mut reader, &args.bmc_password, "the run's old BMC password")?;
        let new = read(&mut reader, &args.new_password, "the run's new BMC password")?;
        state.check_secrets(&old, &new).map_err(|e| fail(exit::BAD_INPUT, e))?;
        // Resume may change direction, so the PEP may need telling whatever the journal says now.
        let step = if state.converged() { None } else { pep_step(&inventory, &pep_args, &mut reader, None)? };
        Ok::<_, u8>((old, new, step))
    })();
    let (old, new, step) = match secrets {
        Ok(s) => s,
        Err(code) => return code,
    };
    let names: Vec<String> = members.iter().map(|m| m.entry.name.clone()).collect();
    let display = Display::new();
    let result = resume::resume(&args.journal, members, old, new, step, display.clone()).await;
    drop(display);
    let report = match result {
        Ok(report) => report,
        Err(ResumeError::BadInput(e)) => return fail(exit::BAD_INPUT, e),
        Err(ResumeError::Stopped(e)) => {
            audit_log(
                &sources,
                &AuditEntry::now("resume", &inventory.stamp, names, "stopped", Some(args.journal.clone())),
            );
            return fail(exit::NEEDS_RESUME, e);
        }
    };
    audit_log(
        &sources,
        &AuditEntry::now("resume", &inventory.stamp, names, report.outcome.as_str(), Some(args.journal.clone())),
    );
    print(&report, Some(&args.journal), output);
    exit_code(report.outcome)
}

/// `status`.
pub fn status(journal: &Path, output: Output) -> u8 {
    let state: RunState = match journal::read(journal).and_then(|lines| resume::state(&lines)) {
        Ok(state) => state,
        Err(e) => return fail(exit::BAD_INPUT, e),
    };
    let code = if state.converged() { exit::OK } else { exit::NEEDS_RESUME };
    match output {
        Output::Json => println!("{}", serde_json::to_string_pretty(&state).expect("serialisable")),
        Output::Table => {
            let rows: Vec<Vec<String>> =
                state.bmcs.iter().map(|(b, w)| vec![b.clone(), rotation::name(*w).to_owned()]).collect();
            print!("{}", render::table(&["BMC", "HOLDS"], &rows));
            println!();
            let pairs = [
                ("stamp", state.stamp.clone()),
                ("run", state.run.clone()),
                ("inventory", state.inventory.display().to_string()),
                ("heading for", format!("the {} password", rotation::name(state.target))),
                ("azure stack", format!("stores the {} password", rotation::name(state.pep))),
                ("finished", state.finished.clone().unwrap_or_else(|| "no".into())),
                ("records", state.records.to_string()),
            ];
            print!("{}", render::fields(&pairs));
            if !state.converged() {
                println!("next: bmc-rotate resume --journal {}", journal.display());
            }
        }
    }
    code
}

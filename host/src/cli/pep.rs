//! `bmc-rotate pep check|set-credential`: the PEP step on its own.

use super::args::{SecretSourceParser, parse_duration};
use super::{CliError, CmdResult, Output, exit, read_secret, render};
use crate::fleet::inventory::{Inventory, PepSettings};
use crate::pep::native::NativeClient;
use crate::pep::powershell::PowerShellClient;
use crate::pep::{
    AnyClient, BmcCredential, PepAction, PepError, PepEvent, PepReport, PepRequest, PepTarget, Progress,
    TranscriptShare, run,
};
use crate::secrets::{SecretReader, SecretSource};
use clap::ValueEnum;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

/// Which client talks to the privileged endpoint.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum PepClientKind {
    /// WinRM + NTLM + PSRP from Rust; needs nothing installed.
    Native,
    /// `pwsh` or `powershell.exe` on PATH, with the documented New-PSSession procedure.
    Powershell,
}

/// How to reach the privileged endpoint: every command that may touch it (`rotate`, `resume`,
/// `pep check`, `pep set-credential`) flattens this one declaration.
#[derive(Clone, Debug, clap::Args)]
pub struct PepArgs {
    /// Where to read the CloudAdmin password: prompt, env:VAR, file:PATH (mode 0600) or stdin.
    /// Read only when the PEP must be told.
    #[arg(long, value_name = "SOURCE", default_value = "prompt", value_parser = SecretSourceParser)]
    pub cloudadmin_password: SecretSource,
    /// The client that talks to the privileged endpoint.
    #[arg(long, value_enum, default_value_t = PepClientKind::Native)]
    pub pep_client: PepClientKind,
    /// How long the PEP step may take in all, failover included (`90s`, `30m`, `1h`).
    /// Set-BmcCredential can run for many minutes.
    #[arg(long, value_name = "DURATION", default_value = "30m", value_parser = parse_duration)]
    pub pep_deadline: Duration,
}

/// The stamp a command works on, and how to reach its privileged endpoint.
#[derive(Debug, clap::Args)]
pub struct StampArgs {
    /// The stamp's inventory; its `[pep]` table names the ERCS VMs and the CloudAdmin account.
    #[arg(long, value_name = "FILE")]
    pub inventory: PathBuf,
    /// How to reach the privileged endpoint.
    #[command(flatten)]
    pub pep: PepArgs,
}

/// One line for a PEP event.
pub fn describe_event(event: PepEvent) -> String {
    match event {
        PepEvent::Connecting(endpoint) => format!("connecting to {endpoint}"),
        PepEvent::SessionOpen(endpoint) => format!("session open on {endpoint} (NTLM, sealed, session key exchanged)"),
        PepEvent::Detected(cmdlet) => format!("found {}", cmdlet.name()),
        PepEvent::Invoking(call) => format!("running {call}"),
        PepEvent::Waiting(elapsed) => format!("still running after {}s", elapsed.as_secs()),
        PepEvent::Record(text) => text,
        PepEvent::FailingOver { endpoint, reason } => format!("{endpoint} failed ({reason}); trying the next ERCS VM"),
    }
}

/// Prints the PEP step's progress on stderr, one line per event.
pub fn progress_lines() -> Progress {
    Arc::new(|event| eprintln!("pep: {}", describe_event(event)))
}

fn load(args: &StampArgs) -> Result<Inventory, CliError> {
    let inventory = Inventory::load(&args.inventory).map_err(CliError::bad_input)?;
    inventory.pep().map_err(CliError::bad_input)?;
    for warning in &inventory.warnings {
        eprintln!("warning: {warning}");
    }
    Ok(inventory)
}

/// The PEP target the inventory's `[pep]` table names, with the CloudAdmin password read.
pub(super) fn target(settings: &PepSettings, args: &PepArgs, reader: &mut SecretReader) -> Result<PepTarget, CliError> {
    let password = read_secret(reader, &args.cloudadmin_password, "the CloudAdmin password")?;
    Ok(PepTarget::new(settings.endpoints.clone(), settings.cloudadmin.clone(), password, args.pep_deadline))
}

/// The transcript hand-off the inventory names, if any, with the share's password read from
/// `source` (the prompt by default).
pub(super) fn transcript_share(
    settings: &PepSettings,
    source: Option<&SecretSource>,
    reader: &mut SecretReader,
) -> Result<Option<TranscriptShare>, CliError> {
    let Some((path, user)) = &settings.transcripts else { return Ok(None) };
    let source = source.cloned().unwrap_or(SecretSource::Prompt);
    let password = read_secret(reader, &source, &format!("the password of {user} (transcript share)"))?;
    Ok(Some(TranscriptShare { path: path.clone(), user: user.clone(), password }))
}

/// The client `kind` names. The native client's RSA key pair starts generating now, on a thread
/// of its own, so the step's first session finds it ready.
pub fn client(kind: PepClientKind) -> Result<AnyClient, PepError> {
    Ok(match kind {
        PepClientKind::Native => {
            // The thread runs on when its handle is dropped.
            drop(bmc_winrm::psrp::crypto::ClientKey::prepare());
            AnyClient::Native(NativeClient)
        }
        PepClientKind::Powershell => AnyClient::PowerShell(PowerShellClient::discover()?),
    })
}

/// Runs the step with the chosen client.
pub async fn execute(
    kind: PepClientKind,
    target: &PepTarget,
    request: &PepRequest,
    progress: &Progress,
) -> Result<PepReport, PepError> {
    run(&client(kind)?, target, request, progress).await
}

/// Shows the step's result. JSON carries a failure in the document itself; a table leaves it to
/// the one error path.
fn report(result: Result<PepReport, PepError>, output: Output) -> CmdResult {
    let code = match &result {
        Ok(_) => exit::OK,
        Err(PepError::BadInput(_)) => exit::BAD_INPUT,
        Err(e) if e.outcome_unknown() => exit::NEEDS_RESUME,
        Err(_) => exit::FAILED,
    };
    match (output, result) {
        (Output::Json, result) => {
            let json = match result {
                Ok(report) => serde_json::json!({ "status": "ok", "report": report }),
                Err(e) => serde_json::json!({
                    "status": "failed",
                    "error": e.to_string(),
                    "outcome_unknown": e.outcome_unknown(),
                }),
            };
            println!("{}", serde_json::to_string_pretty(&json).expect("serialisable"));
            Ok(ExitCode::from(code))
        }
        (Output::Table, Ok(report)) => {
            print!("{}", describe(&report));
            Ok(ExitCode::SUCCESS)
        }
        (Output::Table, Err(e)) if e.outcome_unknown() => Err(CliError::new(code, e)
            .with_hint("run the same command again; storing the same credential twice is harmless")),
        (Output::Table, Err(e)) => Err(CliError::new(code, e)),
    }
}

fn describe(report: &PepReport) -> String {
    let mut pairs = vec![
        ("endpoint", report.endpoint.clone()),
        ("cmdlet", report.cmdlet.as_ref().map_or("-".into(), |c| c.name().to_owned())),
        ("call", report.call.clone()),
        ("stored", if report.stored { "yes".into() } else { "no (nothing was changed)".into() }),
        ("elapsed", format!("{:.1}s", report.elapsed.as_secs_f64())),
    ];
    if report.transcripts_closed {
        pairs.push(("transcripts", "handed over by Close-PrivilegedEndpoint".into()));
    }
    for (endpoint, reason) in &report.failed_over {
        pairs.push(("failed over", format!("{endpoint}: {reason}")));
    }
    for line in &report.output {
        pairs.push(("output", line.trim().to_owned()));
    }
    for line in &report.warnings {
        pairs.push(("warning", line.clone()));
    }
    render::fields(&pairs)
}

/// `pep check`.
pub async fn check(args: StampArgs, output: Output) -> CmdResult {
    let inventory = load(&args)?;
    let settings = inventory.pep.as_ref().expect("load checked the [pep] table");
    let target = target(settings, &args.pep, &mut SecretReader::default())?;
    let request = PepRequest {
        action: PepAction::Check { bmc_user: Some(inventory.bmc_user.clone()), readiness: false },
        close: None,
    };
    report(execute(args.pep.pep_client, &target, &request, &progress_lines()).await, output)
}

/// `pep set-credential`.
pub async fn set_credential(
    args: StampArgs,
    new_password: SecretSource,
    update_bmcs: bool,
    transcripts_password: Option<SecretSource>,
    output: Output,
) -> CmdResult {
    let inventory = load(&args)?;
    let settings = inventory.pep.as_ref().expect("load checked the [pep] table");
    if transcripts_password.is_some() && settings.transcripts.is_none() {
        return Err(CliError::bad_input(
            "--transcripts-password needs `transcripts` and `transcripts_user` in the inventory's [pep] table",
        ));
    }
    let _lock = super::lock_stamp(&inventory, "pep set-credential", None)?;
    // Stdin order: new BMC password, CloudAdmin password, share password.
    let mut reader = SecretReader::default();
    let new = read_secret(&mut reader, &new_password, "the new BMC password")?;
    let target = target(settings, &args.pep, &mut reader)?;
    let close = transcript_share(settings, transcripts_password.as_ref(), &mut reader)?;
    let request = PepRequest {
        action: PepAction::SetCredential(BmcCredential {
            user: Some(inventory.bmc_user.clone()),
            password: new,
            bypass_bmc_update: !update_bmcs,
        }),
        close,
    };
    report(execute(args.pep.pep_client, &target, &request, &progress_lines()).await, output)
}

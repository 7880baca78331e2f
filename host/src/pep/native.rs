//! The native PEP client: WinRM + NTLM sealing + PSRP from Rust, no PowerShell needed. One
//! session per attempt: detect the cmdlet with `Get-Command <name> -Syntax`, call it as a command
//! object with the password as a SecureString, optionally hand the transcripts over with
//! `Close-PrivilegedEndpoint`, and delete the shell.

use super::session::Session;
use super::transport::{Connection, TransportError};
use super::{
    Cmdlet, Parameter, PepAction, PepClient, PepEndpoint, PepError, PepEvent, PepReport, PepRequest, PepTarget,
    Progress,
};
use bmc_winrm::psrp::clixml::{Arg, Command};
use secrecy::ExposeSecret;
use std::time::{Duration, Instant};
use zeroize::Zeroizing;

/// The native WinRM/PSRP client (the default).
#[derive(Clone, Debug, Default)]
pub struct NativeClient;

impl PepClient for NativeClient {
    async fn attempt(
        &self,
        endpoint: &PepEndpoint,
        target: &PepTarget,
        request: &PepRequest,
        deadline: Instant,
        progress: &Progress,
    ) -> Result<PepReport, PepError> {
        let name = endpoint.to_string();
        progress(PepEvent::Connecting(name.clone()));
        // A Receive long-poll may legitimately take the whole operation timeout.
        let read_timeout = target.operation_timeout + Duration::from_secs(10);
        let connection =
            Connection::open(endpoint, &target.user, &target.password, target.connect_timeout, read_timeout)
                .await
                .map_err(|error| match error {
                    TransportError::Refused => {
                        PepError::AuthFailed { endpoint: name.clone(), user: target.user.clone() }
                    }
                    TransportError::Protocol(reason) => PepError::Protocol { endpoint: name.clone(), reason },
                    TransportError::CertificateChanged { pinned, presented } => {
                        PepError::CertificateChanged { endpoint: name.clone(), pinned, presented }
                    }
                    TransportError::Connect(reason) | TransportError::Broken(reason) => {
                        PepError::Unreachable { endpoint: name.clone(), reason }
                    }
                })?;
        tracing::info!(endpoint = %name, user = %target.user, "authenticated to the privileged endpoint");
        let mut session = Session::open(connection, name.clone(), endpoint.url(), target.operation_timeout).await?;
        session.exchange_keys().await?;
        tracing::info!(endpoint = %name, "runspace pool open, session key exchanged");
        progress(PepEvent::SessionOpen(name.clone()));
        let limit = target.deadline;
        let mut report = PepReport { endpoint: name.clone(), ..PepReport::default() };
        let outcome = work(&mut session, target, request, &mut report, deadline, limit, progress).await;
        if outcome.is_err() || !report.transcripts_closed {
            session.close().await;
        }
        outcome.map(|()| report)
    }
}

async fn work(
    session: &mut Session,
    target: &PepTarget,
    request: &PepRequest,
    report: &mut PepReport,
    deadline: Instant,
    limit: Duration,
    progress: &Progress,
) -> Result<(), PepError> {
    let cmdlet = detect(session, target, deadline, limit, progress).await?;
    tracing::info!(endpoint = %session.name(), cmdlet = cmdlet.name(), "credential cmdlet detected");
    progress(PepEvent::Detected(cmdlet.clone()));
    report.cmdlet = Some(cmdlet.clone());
    match &request.action {
        PepAction::Check { bmc_user, readiness } => {
            if *readiness {
                report.readiness = Some(check_readiness(session, deadline, limit, progress).await?);
            }
            report.call = cmdlet.render(bmc_user.as_deref(), true);
            if cmdlet == Cmdlet::SetBmcPassword && bmc_user.is_some() {
                report.warnings.push(
                    "this stamp only has Set-BmcPassword: the BMC user name cannot be changed through the PEP".into(),
                );
            }
        }
        PepAction::SetCredential(credential) => {
            let (user, bypass) = (credential.user.as_deref(), credential.bypass_bmc_update);
            report.call = cmdlet.render(user, bypass);
            let args = cmdlet
                .parameters(user, bypass)
                .into_iter()
                .map(|(name, value)| {
                    let value = match value {
                        Parameter::Password => {
                            Arg::Secure(Zeroizing::new(credential.password.expose_secret().to_owned()))
                        }
                        Parameter::Text(text) => Arg::Str(text),
                        Parameter::Switch => Arg::Bool(true),
                    };
                    (name.to_owned(), value)
                })
                .collect();
            tracing::info!(endpoint = %session.name(), call = %report.call, "invoking");
            progress(PepEvent::Invoking(report.call.clone()));
            let command = Command { name: cmdlet.name().into(), args };
            // Once the call is sent, a broken exchange leaves the store's state unknown.
            let result = session.invoke(&command, deadline, limit, progress).await.map_err(|e| match e {
                PepError::Protocol { endpoint, reason } => {
                    PepError::Interrupted { endpoint, during: format!("{} was running", cmdlet.name()), reason }
                }
                other => other,
            })?;
            report.output = result.output.clone();
            report.warnings.extend(result.warnings.iter().cloned());
            report.verbose = result.verbose.clone();
            if !result.succeeded() {
                return Err(PepError::Rejected {
                    endpoint: report.endpoint.clone(),
                    cmdlet: cmdlet.name().into(),
                    errors: result.error_texts(),
                });
            }
            report.stored = true;
        }
    }
    if let Some(share) = &request.close {
        let command = Command {
            name: "Close-PrivilegedEndpoint".into(),
            args: vec![
                ("TranscriptsPathDestination".into(), Arg::Str(share.path.clone())),
                (
                    "Credential".into(),
                    Arg::Credential {
                        user: share.user.clone(),
                        password: Zeroizing::new(share.password.expose_secret().to_owned()),
                    },
                ),
            ],
        };
        // The credential is already stored: a failed hand-off is reported, not fatal.
        match session.invoke(&command, deadline, limit, progress).await {
            Ok(result) if result.succeeded() => report.transcripts_closed = true,
            Ok(result) => report.warnings.push(format!(
                "Close-PrivilegedEndpoint failed, transcripts stay on the PEP: {}",
                result.error_texts().join("; ")
            )),
            Err(error) => report.warnings.push(format!("Close-PrivilegedEndpoint: {error}")),
        }
    }
    Ok(())
}

/// `Test-AzureStack -Group SecretRotationReadiness`, as a command object: its verdict, whichever
/// it is (the caller decides what a failure stops).
async fn check_readiness(
    session: &mut Session,
    deadline: Instant,
    limit: Duration,
    progress: &Progress,
) -> Result<super::Readiness, PepError> {
    let (name, parameter, group) = super::READINESS_CALL;
    let command = Command { name: name.into(), args: vec![(parameter.into(), Arg::Str(group.into()))] };
    let call = format!("{name} -{parameter} {group}");
    tracing::info!(endpoint = %session.name(), call = %call, "invoking");
    progress(PepEvent::Invoking(call.clone()));
    let result = session.invoke(&command, deadline, limit, progress).await?;
    let returned_true = result.output.last().is_some_and(|o| o.trim().eq_ignore_ascii_case("true"));
    let mut records = result.warnings.clone();
    records.extend(result.verbose.iter().cloned());
    Ok(super::Readiness {
        call,
        passed: result.succeeded() && returned_true,
        errors: if result.succeeded() { Vec::new() } else { result.error_texts() },
        output: result.output,
        records,
    })
}

/// `Get-Command <name> -Syntax` for each cmdlet generation, newest first.
async fn detect(
    session: &mut Session,
    target: &PepTarget,
    deadline: Instant,
    limit: Duration,
    progress: &Progress,
) -> Result<Cmdlet, PepError> {
    for name in ["Set-BmcCredential", "Set-BmcPassword"] {
        let command = Command {
            name: "Get-Command".into(),
            args: vec![("Name".into(), Arg::Str(name.into())), ("Syntax".into(), Arg::Bool(true))],
        };
        let result = session.invoke(&command, deadline, limit, progress).await?;
        if !result.succeeded() || result.output.is_empty() {
            continue;
        }
        let syntax = result.output.join("\n");
        return Ok(match name {
            "Set-BmcCredential" => Cmdlet::SetBmcCredential {
                bmc_user: syntax.contains("-BmcUser"),
                bypass_bmc_update: syntax.contains("-BypassBMCUpdate"),
            },
            _ => Cmdlet::SetBmcPassword,
        });
    }
    Err(PepError::NoCmdlet { endpoint: session.name().to_owned(), user: target.user.clone() })
}

//! The PowerShell fallback (`--pep-client powershell`): the documented `New-PSSession
//! -ConfigurationName PrivilegedEndpoint` + `Invoke-Command` procedure, run by `pwsh` or Windows
//! PowerShell on a jump host. The script travels as `-EncodedCommand` and holds no secret; every
//! secret goes over stdin, one per line, and becomes a SecureString at once. The script answers
//! with one JSON line that maps onto the same report and errors as the native client.
//!
//! The child gets a cleared environment plus [`INHERITED_ENV`] (what PowerShell needs to start
//! and find its modules), so a secret given as `env:VAR` stays in this process. A TLS policy
//! other than the system's trust store (a `sha256:` pin, a CA file, `insecure`) cannot be
//! expressed to `New-PSSession`, so it is refused before anything is started or sent.

use super::{
    Cmdlet, PepAction, PepClient, PepEndpoint, PepError, PepEvent, PepReport, PepRequest, PepTarget, Progress,
};
use crate::gateway::TlsPolicy;
use base64::Engine as _;
use secrecy::ExposeSecret;
use std::ffi::OsString;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::Instant;
use tokio::io::AsyncWriteExt;
use zeroize::Zeroizing;

/// Runs the PEP step through a PowerShell executable.
#[derive(Clone, Debug)]
pub struct PowerShellClient {
    /// `pwsh`, `powershell.exe`, or a path.
    pub executable: PathBuf,
}

impl PowerShellClient {
    /// The first of `pwsh` and `powershell.exe` found on `PATH`.
    pub fn discover() -> Result<PowerShellClient, PepError> {
        let path = std::env::var_os("PATH").unwrap_or_default();
        for dir in std::env::split_paths(&path) {
            for name in ["pwsh", "pwsh.exe", "powershell.exe"] {
                let candidate = dir.join(name);
                if candidate.is_file() {
                    return Ok(PowerShellClient { executable: candidate });
                }
            }
        }
        Err(PepError::Client(
            "--pep-client powershell needs `pwsh` or `powershell.exe` on PATH (PowerShell 7 on Linux also needs \
             the PSWSMan module for NTLM); or use the native client, the default"
                .into(),
        ))
    }
}

/// The variables the child inherits, if set here; everything else is cleared. None of them is
/// meant to carry a secret (proxy variables, which can hold a password, are not passed: the PEP
/// is on the stamp's network).
pub const INHERITED_ENV: &[&str] = &[
    // Where the OS and PowerShell find programs and shared libraries.
    "PATH",
    // Home and per-user data: .NET and pwsh keep their config, module cache and CurrentUser
    // modules (e.g. PSWSMan, which NTLM on Linux needs) there (Unix: HOME and the XDG base
    // directories; Windows: the profile folders).
    "HOME",
    "XDG_CONFIG_HOME",
    "XDG_DATA_HOME",
    "XDG_CACHE_HOME",
    "USERPROFILE",
    "HOMEDRIVE",
    "HOMEPATH",
    "APPDATA",
    "LOCALAPPDATA",
    // .NET's temporary directory.
    "TMPDIR",
    "TEMP",
    "TMP",
    // Windows: networking and .NET fail without SystemRoot; the default module path is built
    // from the program folders.
    "SystemRoot",
    "windir",
    "SystemDrive",
    "ProgramFiles",
    "ProgramData",
    // Where the operator installed modules.
    "PSModulePath",
    // Text encoding of stdin/stdout (the session's culture is set to en-US by the script).
    "LANG",
    "LC_ALL",
    "LC_CTYPE",
    // pwsh on hosts without ICU starts only in invariant-globalization mode.
    "DOTNET_SYSTEM_GLOBALIZATION_INVARIANT",
    // A non-default OpenSSL trust store for `-UseSSL` on Linux.
    "SSL_CERT_FILE",
    "SSL_CERT_DIR",
    // `powershell.exe` started from WSL reaches Windows through the interop socket.
    "WSL_INTEROP",
    "WSL_DISTRO_NAME",
];

/// Set in the child whatever the parent has: no telemetry or update check (the child holds
/// secrets and needs no network beyond the PEP).
pub const FIXED_ENV: &[(&str, &str)] = &[("POWERSHELL_TELEMETRY_OPTOUT", "1"), ("POWERSHELL_UPDATECHECK", "Off")];

/// Variable names are case-insensitive on Windows only.
fn same_name(name: &OsString, wanted: &str) -> bool {
    if cfg!(windows) { name.to_str().is_some_and(|n| n.eq_ignore_ascii_case(wanted)) } else { name == wanted }
}

/// The child's whole environment, from this process's.
fn child_environment(parent: impl IntoIterator<Item = (OsString, OsString)>) -> Vec<(OsString, OsString)> {
    let mut env: Vec<(OsString, OsString)> = parent
        .into_iter()
        .filter(|(name, _)| INHERITED_ENV.iter().any(|allowed| same_name(name, allowed)))
        .filter(|(name, _)| !FIXED_ENV.iter().any(|(fixed, _)| same_name(name, fixed)))
        .collect();
    env.extend(FIXED_ENV.iter().map(|(name, value)| (OsString::from(name), OsString::from(value))));
    env
}

/// Refuses, before anything is started, a TLS policy the PowerShell client would silently
/// replace with the system's trust store.
fn check_tls(target: &PepTarget) -> Result<(), PepError> {
    for endpoint in &target.endpoints {
        let Some(policy) = &endpoint.tls else { continue };
        let unsupported = match policy {
            TlsPolicy::SystemRoots => continue,
            TlsPolicy::PinnedSha256(_) => "pins the certificate",
            TlsPolicy::CaFile(_) => "trusts only the given CA for the certificate",
            TlsPolicy::Insecure => "skips the check of the certificate",
        };
        return Err(PepError::BadInput(format!(
            "[pep] tls = \"{policy}\" {unsupported} of {endpoint}, which the PowerShell client cannot honour \
             (New-PSSession -UseSSL checks certificates against the system's trust store only); nothing was sent. \
             Use the native client (`--pep-client native`, the default), which enforces it"
        )));
    }
    Ok(())
}

/// A PowerShell single-quoted literal.
fn literal(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}

/// The script for one attempt. Secrets are read from stdin in this order: CloudAdmin password,
/// new BMC password (set-credential only), share password (transcripts only).
fn script(endpoint: &PepEndpoint, target: &PepTarget, request: &PepRequest) -> String {
    let (set, user, bypass) = match &request.action {
        PepAction::Check { bmc_user, .. } => (false, bmc_user.clone(), true),
        PepAction::SetCredential(c) => (true, c.user.clone(), c.bypass_bmc_update),
    };
    let ssl = if endpoint.tls.is_some() { " -UseSSL" } else { "" };
    let mut s = String::new();
    s.push_str("$ErrorActionPreference = 'Stop'\n$ProgressPreference = 'SilentlyContinue'\n");
    s.push_str("function Out-Result($r) { [Console]::Out.WriteLine(($r | ConvertTo-Json -Compress -Depth 4)) }\n");
    s.push_str(
        "function Read-Secret { ConvertTo-SecureString -String ([Console]::In.ReadLine()) -AsPlainText -Force }\n",
    );
    s.push_str("$cloud = Read-Secret\n");
    if set {
        s.push_str("$new = Read-Secret\n");
    }
    if request.close.is_some() {
        s.push_str("$sharePw = Read-Secret\n");
    }
    s.push_str(&format!(
        "$cred = New-Object System.Management.Automation.PSCredential({}, $cloud)\n",
        literal(&target.user)
    ));
    s.push_str(&format!(
        "$opt = New-PSSessionOption -Culture en-US -UICulture en-US -OperationTimeout {}\n",
        target.operation_timeout.as_millis()
    ));
    s.push_str(&format!(
        concat!(
            "try {{ $s = New-PSSession -ComputerName {} -Port {}{} -ConfigurationName PrivilegedEndpoint -Credential $cred -SessionOption $opt }}\n",
            "catch {{ $stage = if ($_.Exception.Message -match 'Access is denied|logon failure|401') {{ 'auth' }} ",
            "elseif ($_.Exception.Message -match 'session configuration') {{ 'not-pep' }} else {{ 'connect' }}; ",
            "Out-Result @{{ status = 'error'; stage = $stage; message = $_.Exception.Message }}; exit 0 }}\n"
        ),
        literal(&endpoint.host),
        endpoint.port,
        ssl
    ));
    s.push_str("$r = @{ status = 'ok'; output = @(); warnings = @(); stored = $false; closed = $false }\n");
    s.push_str("try {\n");
    s.push_str(concat!(
        "  $syntax = Invoke-Command -Session $s -ScriptBlock { Get-Command -Name Set-BmcCredential -Syntax } -ErrorAction SilentlyContinue\n",
        "  if ($syntax) { $r.cmdlet = 'Set-BmcCredential'; $r.bmc_user = [bool]($syntax -match '-BmcUser'); $r.bypass = [bool]($syntax -match '-BypassBMCUpdate') }\n",
        "  elseif (Invoke-Command -Session $s -ScriptBlock { Get-Command -Name Set-BmcPassword -Syntax } -ErrorAction SilentlyContinue) { $r.cmdlet = 'Set-BmcPassword' }\n",
        "  else { $r.status = 'error'; $r.stage = 'no-cmdlet'; Out-Result $r; exit 0 }\n",
    ));
    if set {
        let user = user.as_deref().map(literal).unwrap_or_else(|| "$null".into());
        s.push_str(&format!(
            concat!(
                "  $user = {user}; $bypass = {bypass}; $withUser = $r.bmc_user -and $user; $withBypass = $r.bypass -and $bypass\n",
                // Only a single command with `$using:` values converts to a command object;
                // splatting or logic inside the block would go as script text, which JEA refuses.
                "  $out = if ($r.cmdlet -eq 'Set-BmcPassword') {{ Invoke-Command -Session $s -ScriptBlock {{ Set-BmcPassword -BmcPassword $using:new }} -WarningVariable w }}\n",
                "  elseif ($withUser -and $withBypass) {{ Invoke-Command -Session $s -ScriptBlock {{ Set-BmcCredential -BmcPassword $using:new -BmcUser $using:user -BypassBMCUpdate }} -WarningVariable w }}\n",
                "  elseif ($withUser) {{ Invoke-Command -Session $s -ScriptBlock {{ Set-BmcCredential -BmcPassword $using:new -BmcUser $using:user }} -WarningVariable w }}\n",
                "  elseif ($withBypass) {{ Invoke-Command -Session $s -ScriptBlock {{ Set-BmcCredential -BmcPassword $using:new -BypassBMCUpdate }} -WarningVariable w }}\n",
                "  else {{ Invoke-Command -Session $s -ScriptBlock {{ Set-BmcCredential -BmcPassword $using:new }} -WarningVariable w }}\n",
                "  $r.output = @($out | ForEach-Object {{ \"$_\" }}); $r.warnings = @($w | ForEach-Object {{ \"$_\" }}); $r.stored = $true\n",
            ),
            user = user,
            bypass = if bypass { "$true" } else { "$false" },
        ));
    }
    if let Some(share) = &request.close {
        s.push_str(&format!(
            concat!(
                "  try {{ $shareCred = New-Object System.Management.Automation.PSCredential({}, $sharePw)\n",
                "    Invoke-Command -Session $s -ScriptBlock {{ Close-PrivilegedEndpoint -TranscriptsPathDestination $using:path -Credential $using:shareCred }}; $r.closed = $true }}\n",
                "  catch {{ $r.warnings += \"Close-PrivilegedEndpoint: $($_.Exception.Message)\" }}\n"
            ),
            literal(&share.user)
        ));
        s = s.replace("$using:path", &literal(&share.path));
    }
    s.push_str(concat!(
        "} catch { $r.status = 'error'; $r.message = $_.Exception.Message\n",
        "  $r.stage = if (-not $r.cmdlet) { 'detect' } ",
        "elseif ($_.FullyQualifiedErrorId -match 'PSSessionStateBroken|JobFailure|PSRemotingTransport|RemoteException') { 'interrupted' } ",
        "else { 'rejected' } }\n"
    ));
    s.push_str("finally { Remove-PSSession -Session $s -ErrorAction SilentlyContinue }\nOut-Result $r\n");
    s
}

#[derive(serde::Deserialize, Default)]
#[serde(default)]
struct Answer {
    status: String,
    stage: String,
    message: String,
    cmdlet: Option<String>,
    bmc_user: bool,
    bypass: bool,
    output: Vec<String>,
    warnings: Vec<String>,
    stored: bool,
    closed: bool,
}

fn encoded(script: &str) -> String {
    let utf16: Vec<u8> = script.encode_utf16().flat_map(u16::to_le_bytes).collect();
    base64::engine::general_purpose::STANDARD.encode(utf16)
}

impl PepClient for PowerShellClient {
    async fn attempt(
        &self,
        endpoint: &PepEndpoint,
        target: &PepTarget,
        request: &PepRequest,
        deadline: Instant,
        progress: &Progress,
    ) -> Result<PepReport, PepError> {
        check_tls(target)?;
        // Never skipped in silence: a readiness check the operator asked for that did not run
        // would read as passed.
        if let PepAction::Check { readiness: true, .. } = request.action {
            return Err(PepError::BadInput(
                "the PEP readiness check (--pep-readiness) runs with the native client only: use --pep-client native"
                    .into(),
            ));
        }
        let name = endpoint.to_string();
        progress(PepEvent::Connecting(name.clone()));
        let mut child = tokio::process::Command::new(&self.executable)
            .env_clear()
            .envs(child_environment(std::env::vars_os()))
            .args(["-NoLogo", "-NoProfile", "-NonInteractive", "-EncodedCommand"])
            .arg(encoded(&script(endpoint, target, request)))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| PepError::Client(format!("cannot start {}: {e}", self.executable.display())))?;
        let mut secrets = Zeroizing::new(String::new());
        secrets.push_str(target.password.expose_secret());
        secrets.push('\n');
        if let PepAction::SetCredential(credential) = &request.action {
            secrets.push_str(credential.password.expose_secret());
            secrets.push('\n');
        }
        if let Some(share) = &request.close {
            secrets.push_str(share.password.expose_secret());
            secrets.push('\n');
        }
        let mut stdin = child.stdin.take().expect("piped");
        stdin.write_all(secrets.as_bytes()).await.map_err(|e| PepError::Client(format!("PowerShell stdin: {e}")))?;
        drop(stdin);
        let left = deadline.saturating_duration_since(Instant::now());
        let output = match tokio::time::timeout(left, child.wait_with_output()).await {
            Ok(output) => output.map_err(|e| PepError::Client(format!("PowerShell: {e}")))?,
            Err(_) => {
                return Err(PepError::DeadlineExceeded {
                    endpoint: name,
                    during: "PowerShell was running".into(),
                    limit: target.deadline,
                });
            }
        };
        let stdout = String::from_utf8_lossy(&output.stdout);
        let answer: Answer =
            stdout.lines().rev().find_map(|line| serde_json::from_str(line.trim()).ok()).ok_or_else(|| {
                let stderr = String::from_utf8_lossy(&output.stderr);
                if let PepAction::SetCredential(_) = &request.action {
                    // It may have died after the cmdlet ran.
                    return PepError::Interrupted {
                        endpoint: name.clone(),
                        during: "PowerShell was running".into(),
                        reason: format!(
                            "{} ended with {} and no result line",
                            self.executable.display(),
                            output.status
                        ),
                    };
                }
                PepError::Client(format!(
                    "PowerShell ({}) ended with {} and no result line; stderr: {}",
                    self.executable.display(),
                    output.status,
                    stderr.lines().take(5).collect::<Vec<_>>().join(" / ")
                ))
            })?;
        interpret(answer, name, target, request)
    }
}

fn interpret(
    answer: Answer,
    endpoint: String,
    target: &PepTarget,
    request: &PepRequest,
) -> Result<PepReport, PepError> {
    let cmdlet = match answer.cmdlet.as_deref() {
        Some("Set-BmcCredential") => {
            Some(Cmdlet::SetBmcCredential { bmc_user: answer.bmc_user, bypass_bmc_update: answer.bypass })
        }
        Some("Set-BmcPassword") => Some(Cmdlet::SetBmcPassword),
        _ => None,
    };
    if answer.status != "ok" {
        let reason = answer.message;
        return Err(match answer.stage.as_str() {
            "auth" => PepError::AuthFailed { endpoint, user: target.user.clone() },
            "not-pep" => PepError::NotAPep { endpoint, reason },
            "connect" => PepError::Unreachable { endpoint, reason },
            "no-cmdlet" => PepError::NoCmdlet { endpoint, user: target.user.clone() },
            "rejected" => PepError::Rejected {
                endpoint,
                cmdlet: cmdlet.as_ref().map_or("the cmdlet", Cmdlet::name).into(),
                errors: vec![reason],
            },
            _ => PepError::Interrupted { endpoint, during: "PowerShell was running".into(), reason },
        });
    }
    let cmdlet = cmdlet.ok_or_else(|| PepError::Client("PowerShell reported success without a cmdlet".into()))?;
    let call = match &request.action {
        PepAction::Check { bmc_user, .. } => cmdlet.render(bmc_user.as_deref(), true),
        PepAction::SetCredential(c) => cmdlet.render(c.user.as_deref(), c.bypass_bmc_update),
    };
    Ok(PepReport {
        endpoint,
        cmdlet: Some(cmdlet),
        call,
        stored: answer.stored,
        output: answer.output,
        warnings: answer.warnings,
        transcripts_closed: answer.closed,
        ..PepReport::default()
    })
}

// The stand-in `pwsh` is a shell script.
#[cfg(all(test, unix))]
mod tests;

//! What the simulated PEP's commands do. JEA NoLanguage rules: a pipeline is command objects
//! only (script text fails with `ScriptsNotAllowed`, as `Command.CreateCommandProcessor` does),
//! only the RestrictedRemoteServer defaults and the PEP's own cmdlets are visible, and
//! `Set-BmcCredential` applies Azure Stack's rules (≤ 16 characters) before storing anything.

use super::shell::Shell;
use super::{PepPersona, Shared, StoredCredential};
use bmc_winrm::psrp::PipelineState;
use bmc_winrm::psrp::message::{Guid, MessageType};
use bmc_winrm::psrp::server::{self, ErrorSpec, Invocation, Value};
use std::sync::Arc;
use zeroize::Zeroizing;

const DEFAULT_COMMANDS: [&str; 8] = [
    "Clear-Host",
    "Exit-PSSession",
    "Get-Command",
    "Get-FormatData",
    "Get-Help",
    "Measure-Object",
    "Out-Default",
    "Select-Object",
];
const MAX_CHARS: usize = 16;

fn visible(persona: PepPersona) -> Vec<&'static str> {
    let credential = match persona {
        PepPersona::Current => "Set-BmcCredential",
        PepPersona::Pre1907 => "Set-BmcPassword",
    };
    let mut all = DEFAULT_COMMANDS.to_vec();
    all.extend([credential, "Close-PrivilegedEndpoint", "Get-AzureStackStampInformation", "Test-AzureStack"]);
    all.sort_unstable();
    all
}

/// The `Get-Command -Syntax` text (an assumption: its exact shape was not seen on a real stamp).
fn syntax(name: &str) -> String {
    let body = match name {
        "Set-BmcCredential" => "[-BmcPassword] <securestring> [[-BmcUser] <string>] [-BypassBMCUpdate] [-AsJob]",
        "Set-BmcPassword" => "[-BmcPassword] <securestring> [-AsJob]",
        "Close-PrivilegedEndpoint" => "[[-TranscriptsPathDestination] <Object>] [[-Credential] <Object>] [-AsJob]",
        "Get-Command" => "[[-Name] <string[]>] [-Module <string[]>] [-CommandType <CommandTypes>] [-Syntax]",
        "Test-AzureStack" => "[-Group <Object>] [-Include <Object>] [-Ignore <Object>] [-DetailedResults] [-AsJob]",
        _ => "[-AsJob]",
    };
    format!("\r\n{name} {body} [<CommonParameters>]\r\n")
}

/// One pipeline's output channel.
struct Pipeline<'a> {
    shell: &'a Shell,
    id: Guid,
}

impl Pipeline<'_> {
    fn output(&self, text: &str) {
        self.shell.emit(Some(self.id), MessageType::PIPELINE_OUTPUT, server::output_string(text));
    }

    fn verbose(&self, text: &str) {
        self.shell.emit(Some(self.id), MessageType::VERBOSE_RECORD, server::informational(text));
    }

    fn warning(&self, text: &str) {
        self.shell.emit(Some(self.id), MessageType::WARNING_RECORD, server::informational(text));
    }

    fn error(&self, spec: &ErrorSpec<'_>) {
        self.shell.emit(Some(self.id), MessageType::ERROR_RECORD, server::error_record(spec));
    }

    fn end(&self, state: PipelineState, error: Option<&ErrorSpec<'_>>, cut: bool) {
        self.shell.emit(Some(self.id), MessageType::PIPELINE_STATE, server::pipeline_state(state, error));
        self.shell.finish(self.id, cut);
    }

    fn fail(&self, spec: &ErrorSpec<'_>) {
        self.end(PipelineState::Failed, Some(spec), false);
    }
}

fn not_found(name: &str) -> String {
    format!(
        "The term '{name}' is not recognized as the name of a cmdlet, function, script file, or operable program. \
         Check the spelling of the name, or if a path was included, verify that the path is correct and try again."
    )
}

fn not_found_spec<'a>(message: &'a str, name: &'a str) -> ErrorSpec<'a> {
    ErrorSpec {
        message,
        error_id: "CommandNotFoundException",
        category: 13,
        reason: "CommandNotFoundException",
        target: name,
        exception_type: "System.Management.Automation.CommandNotFoundException",
    }
}

fn binding<'a>(message: &'a str, error_id: &'a str, target: &'a str) -> ErrorSpec<'a> {
    ErrorSpec {
        message,
        error_id,
        category: 5,
        reason: "ParameterBindingException",
        target,
        exception_type: "System.Management.Automation.ParameterBindingException",
    }
}

/// The binder's refusal of a value it cannot convert to the parameter's type.
fn transformation<'a>(message: &'a str, error_id: &'a str) -> ErrorSpec<'a> {
    ErrorSpec {
        message,
        error_id,
        category: 6,
        reason: "ParameterBindingArgumentTransformationException",
        target: "BmcPassword",
        exception_type: "System.Management.Automation.ParameterBindingArgumentTransformationException",
    }
}

/// Arguments by (case-insensitive) name; positional ones get the names in `positions`.
fn named(invocation: &Invocation, positions: &[&str]) -> Vec<(String, Value)> {
    let mut positional = positions.iter();
    invocation
        .args
        .iter()
        .filter_map(|(name, value)| match name {
            Some(n) => Some((n.trim_start_matches('-').to_owned(), value.clone())),
            None => positional.next().map(|n| ((*n).to_owned(), value.clone())),
        })
        .collect()
}

fn render(invocation: &Invocation) -> String {
    let mut line = format!("PS> {}", invocation.name);
    for (name, value) in &invocation.args {
        if let Some(name) = name {
            line.push_str(&format!(" -{name}"));
        }
        match value {
            Value::Str(s) => line.push_str(&format!(" '{s}'")),
            Value::Secure(_) => line.push_str(" <SecureString>"),
            Value::Credential { user, .. } => line.push_str(&format!(" <PSCredential {user}>")),
            Value::Bool(b) => line.push_str(if *b { ":$true" } else { ":$false" }),
            Value::Nil => {}
            Value::Other(tag) => line.push_str(&format!(" <{tag}>")),
        }
    }
    line
}

/// Runs a CREATE_PIPELINE's commands and reports through the shell's queue.
pub(crate) async fn run(shell: Arc<Shell>, shared: Arc<Shared>, id: Guid, data: String) {
    let pipeline = Pipeline { shell: &shell, id };
    let invocations = match server::pipeline(&data) {
        Ok(invocations) if !invocations.is_empty() => invocations,
        _ => {
            let spec = ErrorSpec {
                message: "The pipeline could not be read.",
                error_id: "InvalidPipeline",
                category: 17,
                reason: "ParseException",
                target: "",
                exception_type: "System.Management.Automation.ParseException",
            };
            return pipeline.fail(&spec);
        }
    };
    let invocation = &invocations[0];
    {
        let line = render(invocation);
        let mut records = shared.records.lock().expect("records");
        records.received.push(line.clone());
        records.transcript.push(line);
    }
    if let Some(script) = invocations.iter().find(|i| i.is_script) {
        let spec = ErrorSpec {
            message: "The syntax is not supported by this runspace. This can occur if the runspace is in no-language mode.",
            error_id: "ScriptsNotAllowed",
            category: 17,
            reason: "ParseException",
            target: &script.name,
            exception_type: "System.Management.Automation.ParseException",
        };
        return pipeline.fail(&spec);
    }
    let persona = shared.config.persona;
    let name = visible(persona).into_iter().find(|v| v.eq_ignore_ascii_case(&invocation.name));
    let Some(name) = name else {
        let message = not_found(&invocation.name);
        return pipeline.fail(&not_found_spec(&message, &invocation.name));
    };
    match name {
        "Get-Command" => get_command(&pipeline, invocation, persona),
        "Set-BmcCredential" | "Set-BmcPassword" => set_credential(&pipeline, invocation, name, &shell, &shared).await,
        "Close-PrivilegedEndpoint" => close(&pipeline, invocation, &shell, &shared),
        "Test-AzureStack" => test_azure_stack(&pipeline, invocation, &shared),
        "Get-AzureStackStampInformation" => {
            pipeline.output(r#"{"StampVersion":"1.2406.0.8","DeploymentID":"00000000-0000-4000-8000-00000000a25c","RegionName":"lab"}"#);
            pipeline.end(PipelineState::Completed, None, false);
        }
        _ => pipeline.end(PipelineState::Completed, None, false),
    }
}

/// The tests of the `SecretRotationReadiness` group, as Microsoft Learn ("Validate Azure Stack Hub
/// system state", Groups) lists them.
const SECRET_ROTATION_READINESS: [&str; 9] = [
    "AzsAcsSummary",
    "AzsDefenderSummary",
    "AzsHostingInfraSummary",
    "AzsInfraCapacity",
    "AzsInfraRoleSummary",
    "AzsPortalAPISummary",
    "AzsSFRoleSummary",
    "AzsStorageSvcsSummary",
    "AzsStoreSummary",
];

/// `Test-AzureStack [-Group G]`: one line per test, then `$true`, or `$false` with an error
/// record for the test the `not_ready` fault names. The line shapes are the simulator's own
/// (an assumption: a real stamp's console output was not seen); only the Boolean is relied on.
fn test_azure_stack(pipeline: &Pipeline<'_>, invocation: &Invocation, shared: &Shared) {
    let args = named(invocation, &[]);
    let group = args.iter().find(|(n, _)| n.eq_ignore_ascii_case("Group")).map(|(_, v)| match v {
        Value::Str(s) => s.clone(),
        _ => String::new(),
    });
    let group = group.unwrap_or_else(|| "Default".into());
    if !["Default", "UpdateReadiness", "SecretRotationReadiness"].iter().any(|g| g.eq_ignore_ascii_case(&group)) {
        let message = format!(
            "Cannot validate argument on parameter 'Group'. The argument \"{group}\" does not belong to the set \
             \"Default,UpdateReadiness,SecretRotationReadiness\"."
        );
        return pipeline.fail(&binding(&message, "ParameterArgumentValidationError,Test-AzureStack", "Group"));
    }
    let failing = shared.faults().not_ready;
    for test in SECRET_ROTATION_READINESS {
        let verdict = if failing.as_deref() == Some(test) { "FAIL" } else { "PASS" };
        pipeline.verbose(&format!("Test-AzureStack {group}: {test} {verdict}"));
    }
    match failing {
        Some(test) => {
            let message = format!("{test} reported a fault: the stamp is not ready for secret rotation");
            let spec = ErrorSpec {
                message: &message,
                error_id: "TestAzureStackFailed,Test-AzureStack",
                category: 7,
                reason: "InvalidOperationException",
                target: &test,
                exception_type: "System.InvalidOperationException",
            };
            pipeline.error(&spec);
            pipeline.output("False");
        }
        None => pipeline.output("True"),
    }
    pipeline.end(PipelineState::Completed, None, false);
}

fn get_command(pipeline: &Pipeline<'_>, invocation: &Invocation, persona: PepPersona) {
    let args = named(invocation, &["Name"]);
    let wanted = args.iter().find(|(n, _)| n.eq_ignore_ascii_case("Name")).and_then(|(_, v)| match v {
        Value::Str(s) => Some(s.clone()),
        _ => None,
    });
    let as_syntax = args.iter().any(|(n, v)| n.eq_ignore_ascii_case("Syntax") && !matches!(v, Value::Bool(false)));
    let commands = visible(persona);
    match wanted {
        None => commands.iter().for_each(|c| pipeline.output(c)),
        Some(wanted) => match commands.iter().find(|c| c.eq_ignore_ascii_case(&wanted)) {
            Some(found) => pipeline.output(&if as_syntax { syntax(found) } else { (*found).to_owned() }),
            // Get-Command reports a missing name as a non-terminating error.
            None => pipeline.error(&not_found_spec(&not_found(&wanted), &wanted)),
        },
    }
    pipeline.end(PipelineState::Completed, None, false);
}

async fn set_credential(
    pipeline: &Pipeline<'_>,
    invocation: &Invocation,
    cmdlet: &str,
    shell: &Shell,
    shared: &Shared,
) {
    let allowed: &[&str] = match cmdlet {
        "Set-BmcCredential" => &["BmcPassword", "BmcUser", "BypassBMCUpdate", "AsJob"],
        _ => &["BmcPassword", "AsJob"],
    };
    let args = named(invocation, &allowed[..allowed.len() - 1]);
    if let Some((unknown, _)) = args.iter().find(|(n, _)| !allowed.iter().any(|a| a.eq_ignore_ascii_case(n))) {
        let message = format!("A parameter cannot be found that matches parameter name '{unknown}'.");
        return pipeline.fail(&binding(&message, &format!("NamedParameterNotFound,{cmdlet}"), unknown));
    }
    let get = |name: &str| args.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.clone());
    let password = match get("BmcPassword") {
        None => {
            let message = "Cannot process command because of one or more missing mandatory parameters: BmcPassword.";
            return pipeline.fail(&binding(message, &format!("MissingMandatoryParameter,{cmdlet}"), "BmcPassword"));
        }
        Some(Value::Secure(encrypted)) => {
            let key = shell.with_state(|s| s.key.clone());
            let Some(key) = key else {
                let message = "A SecureString arrived before the session key exchange (MS-PSRP 2.2.5.1.24).";
                return pipeline.fail(&binding(message, "SessionKeyNotExchanged", "BmcPassword"));
            };
            match key.decrypt_secure_string(&encrypted) {
                Ok(plain) => plain,
                Err(_) => {
                    let message = "The SecureString cannot be decrypted with the session key.";
                    return pipeline.fail(&binding(message, "SecureStringDecryptionFailed", "BmcPassword"));
                }
            }
        }
        Some(Value::Str(plain)) => {
            // PowerShell's parameter binder quotes the value it could not convert: a password
            // sent as a plain string comes back in clear in the error record (and the transcript).
            let message = format!(
                "Cannot process argument transformation on parameter 'BmcPassword'. Cannot convert the \"{plain}\" \
                 value of type \"System.String\" to type \"System.Security.SecureString\"."
            );
            return pipeline.fail(&transformation(&message, &format!("ParameterArgumentTransformationError,{cmdlet}")));
        }
        Some(other) => {
            let message = format!(
                "Cannot process argument transformation on parameter 'BmcPassword'. Cannot convert the value of \
                 type \"{}\" to type \"System.Security.SecureString\".",
                match other {
                    Value::Bool(_) | Value::Nil => "System.Management.Automation.SwitchParameter",
                    Value::Credential { .. } => "System.Management.Automation.PSCredential",
                    _ => "System.Object",
                }
            );
            return pipeline.fail(&transformation(&message, &format!("ParameterArgumentTransformationError,{cmdlet}")));
        }
    };
    let user = match get("BmcUser") {
        Some(Value::Str(user)) => Some(user),
        Some(Value::Nil) | None => None,
        Some(_) => {
            let message = "Cannot bind parameter 'BmcUser': a string is expected.";
            return pipeline.fail(&binding(message, &format!("CannotConvertArgumentNoMessage,{cmdlet}"), "BmcUser"));
        }
    };
    let bypass = matches!(get("BypassBMCUpdate"), Some(Value::Bool(true) | Value::Nil));
    let too_long = |what: &str, chars: usize| {
        format!("The BMC {what} has {chars} characters; Azure Stack Hub accepts at most {MAX_CHARS}.")
    };
    let password_chars = password.chars().count();
    let user_chars = user.as_deref().map_or(0, |u| u.chars().count());
    if password_chars > MAX_CHARS || password_chars == 0 || user_chars > MAX_CHARS {
        let message = if user_chars > MAX_CHARS {
            too_long("user name", user_chars)
        } else {
            too_long("password", password_chars)
        };
        let spec = ErrorSpec {
            message: &message,
            error_id: &format!("InvalidBmcCredential,{cmdlet}"),
            category: 5,
            reason: "ArgumentException",
            target: "BmcPassword",
            exception_type: "System.ArgumentException",
        };
        return pipeline.fail(&spec);
    }
    let faults = shared.faults();
    pipeline.verbose("Validating the new BMC credential.");
    if let Some(delay) = faults.slow_cmdlet {
        tokio::time::sleep(delay).await;
    }
    if let Some(text) = &faults.error_record {
        let spec = ErrorSpec {
            message: text,
            error_id: &format!("BmcCredentialUpdateFailed,{cmdlet}"),
            category: 7,
            reason: "InvalidOperationException",
            target: "BMC",
            exception_type: "System.InvalidOperationException",
        };
        pipeline.error(&spec);
        return pipeline.end(PipelineState::Completed, None, false);
    }
    let cut = {
        let mut guard = shared.faults.lock().expect("faults");
        let cut = guard.drop_mid_pipeline > 0;
        guard.drop_mid_pipeline = guard.drop_mid_pipeline.saturating_sub(1);
        cut
    };
    {
        let mut records = shared.records.lock().expect("records");
        records.store_count += 1;
        records.stored = Some(StoredCredential {
            user: user.clone(),
            password: Zeroizing::new(password.to_string()),
            bypass_bmc_update: bypass,
            cmdlet: cmdlet.to_owned(),
            ercs: shell.ercs,
        });
    }
    if !bypass && cmdlet == "Set-BmcCredential" {
        pipeline.warning("The simulator does not push credentials to BMCs; only the internal store was updated.");
    }
    pipeline.verbose("Updated the BMC credential in the Azure Stack Hub internal store.");
    pipeline.output("The BMC credential has been updated.");
    pipeline.end(PipelineState::Completed, None, cut);
}

fn close(pipeline: &Pipeline<'_>, invocation: &Invocation, shell: &Shell, shared: &Shared) {
    let args = named(invocation, &["TranscriptsPathDestination", "Credential"]);
    let get = |name: &str| args.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.clone());
    let destination = match get("TranscriptsPathDestination") {
        Some(Value::Str(path)) => path,
        _ => {
            let message =
                "Close-PrivilegedEndpoint needs -TranscriptsPathDestination, a share reachable from the ERCS VMs.";
            return pipeline.fail(&binding(
                message,
                "MissingTranscriptsPath,Close-PrivilegedEndpoint",
                "TranscriptsPathDestination",
            ));
        }
    };
    let credential = match get("Credential") {
        Some(Value::Credential { user, password }) => {
            let key = shell.with_state(|s| s.key.clone());
            let decrypted = key.and_then(|k| k.decrypt_secure_string(&password).ok());
            decrypted.filter(|p| !p.is_empty()).map(|_| user)
        }
        _ => None,
    };
    let Some(user) = credential else {
        let message = "Access to the path is denied: -Credential must be a PSCredential for the share.";
        return pipeline.fail(&binding(message, "TranscriptShareAccessDenied,Close-PrivilegedEndpoint", &destination));
    };
    {
        let mut records = shared.records.lock().expect("records");
        records.transcript.clear();
        records.transferred.push((destination.clone(), user));
    }
    shell.with_state(|s| s.closing = true);
    pipeline.output(&format!("Transcripts copied to {destination} and removed from the privileged endpoint."));
    pipeline.end(PipelineState::Completed, None, false);
}

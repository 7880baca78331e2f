//! The privileged-endpoint (PEP) step: telling Azure Stack Hub the new BMC credential with
//! `Set-BmcCredential` (or `Set-BmcPassword` on pre-1907 stamps).
//!
//! A [`PepClient`] makes one attempt against one ERCS endpoint; [`run`] owns what every client
//! shares: input checks, the overall deadline and failover across the (up to three) ERCS VMs.
//! Two clients: [`native::NativeClient`] (WinRM + NTLM sealing + PSRP, no PowerShell needed) and
//! [`powershell::PowerShellClient`] (a `pwsh`/`powershell.exe` subprocess for Windows jump hosts).
//! The wire protocols live in the sans-IO `bmc-winrm` crate, shared with the lab's simulator.

pub mod endpoint;
pub mod native;
pub mod powershell;
mod session;
mod transport;

pub use endpoint::PepEndpoint;

use secrecy::{ExposeSecret, SecretString};
use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Azure Stack's limit on the BMC user name and password (ASD-rotate, ≥ 1910).
pub const MAX_CREDENTIAL_CHARS: usize = 16;

/// WS-Man `OperationTimeout` of every PEP session: one Receive long-poll waits this long before
/// the client asks again, so a cmdlet that runs for minutes never looks like a dead connection.
pub const OPERATION_TIMEOUT: Duration = Duration::from_secs(20);

/// Connecting to one ERCS VM (TCP, TLS, NTLM) gives up after this and the next VM is tried.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(15);

/// Who connects to the PEP, where, and for how long.
pub struct PepTarget {
    /// The ERCS VMs, tried in order.
    pub endpoints: Vec<PepEndpoint>,
    /// The CloudAdmin account, `DOMAIN\user`.
    pub user: String,
    /// Its password.
    pub password: SecretString,
    /// The whole PEP step, failover included, ends by then (the cmdlet may run for minutes).
    pub deadline: Duration,
    /// WS-Man `OperationTimeout`: how long one Receive long-poll may wait.
    pub operation_timeout: Duration,
    /// Connecting to one endpoint (TCP + authentication) gives up after this.
    pub connect_timeout: Duration,
}

impl PepTarget {
    /// A target with the standard per-connection timeouts; `deadline` bounds the whole step.
    pub fn new(endpoints: Vec<PepEndpoint>, user: String, password: SecretString, deadline: Duration) -> PepTarget {
        PepTarget {
            endpoints,
            user,
            password,
            deadline,
            operation_timeout: OPERATION_TIMEOUT,
            connect_timeout: CONNECT_TIMEOUT,
        }
    }
}

/// The credential every BMC now holds, for Azure Stack's store.
pub struct BmcCredential {
    /// `-BmcUser`: passed when the stamp's cmdlet has the parameter.
    pub user: Option<String>,
    /// `-BmcPassword`, sent as a SecureString.
    pub password: SecretString,
    /// `-BypassBMCUpdate`: only the internal store is updated (bmc-rotate already changed the BMCs).
    pub bypass_bmc_update: bool,
}

/// Where `Close-PrivilegedEndpoint` copies the session transcripts.
pub struct TranscriptShare {
    /// `-TranscriptsPathDestination`, a share reachable from the ERCS VMs.
    pub path: String,
    /// The share's account, `DOMAIN\user`.
    pub user: String,
    /// Its password (sent inside a PSCredential).
    pub password: SecretString,
}

/// What the PEP step should do.
pub enum PepAction {
    /// Connect, authenticate, detect the cmdlet and say what a rotation would call for this BMC
    /// user name. Changes nothing.
    Check {
        /// The BMC user name a rotation would pass.
        bmc_user: Option<String>,
        /// Also run [`READINESS_CALL`] and report its verdict.
        readiness: bool,
    },
    /// Store the new BMC credential.
    SetCredential(BmcCredential),
}

/// An action and the optional transcript hand-off at the end of the session.
pub struct PepRequest {
    /// What to do.
    pub action: PepAction,
    /// `Close-PrivilegedEndpoint` after the action, if set.
    pub close: Option<TranscriptShare>,
}

/// Microsoft's readiness check before a secret rotation ("Rotate secrets in Azure Stack Hub",
/// Preparation; the group in "Validate Azure Stack Hub system state", Groups): `$true` when no
/// test of the group found a fault.
pub const READINESS_CALL: (&str, &str, &str) = ("Test-AzureStack", "Group", "SecretRotationReadiness");

/// What `Test-AzureStack -Group SecretRotationReadiness` said.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct Readiness {
    /// The call, as a command line.
    pub call: String,
    /// It returned `$true` with no error record.
    pub passed: bool,
    /// Its output objects, as text.
    pub output: Vec<String>,
    /// Its error records (the faults it found), readable.
    pub errors: Vec<String>,
    /// Its warning, verbose and information records (one line per test).
    pub records: Vec<String>,
}

impl Readiness {
    /// One line for the report.
    pub fn summary(&self) -> String {
        let verdict = if self.passed { "passed" } else { "FAILED" };
        let mut line = format!("{} {verdict}", self.call);
        if !self.errors.is_empty() {
            line.push_str(&format!(": {}", self.errors.join("; ")));
        }
        line
    }
}

/// The BMC credential cmdlet a stamp offers (`Get-Command <name> -Syntax`).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case", tag = "cmdlet")]
pub enum Cmdlet {
    /// Builds 1907 and later.
    SetBmcCredential {
        /// The syntax lists `-BmcUser`.
        bmc_user: bool,
        /// The syntax lists `-BypassBMCUpdate`.
        bypass_bmc_update: bool,
    },
    /// Older builds: password only, the user name cannot change.
    SetBmcPassword,
}

impl Cmdlet {
    /// The cmdlet's name.
    pub fn name(&self) -> &'static str {
        match self {
            Cmdlet::SetBmcCredential { .. } => "Set-BmcCredential",
            Cmdlet::SetBmcPassword => "Set-BmcPassword",
        }
    }

    /// The parameters this cmdlet gets for a BMC user name and the bypass wish: `-BmcUser` and
    /// `-BypassBMCUpdate` only where the stamp's syntax has them.
    pub fn parameters(&self, user: Option<&str>, bypass: bool) -> Vec<(&'static str, Parameter)> {
        let mut params = vec![("BmcPassword", Parameter::Password)];
        if let Cmdlet::SetBmcCredential { bmc_user, bypass_bmc_update } = self {
            if let (true, Some(user)) = (bmc_user, user) {
                params.push(("BmcUser", Parameter::Text(user.to_owned())));
            }
            if *bypass_bmc_update && bypass {
                params.push(("BypassBMCUpdate", Parameter::Switch));
            }
        }
        params
    }

    /// A readable command line; the password shows as `<SecureString>`.
    pub fn render(&self, user: Option<&str>, bypass: bool) -> String {
        let mut line = self.name().to_owned();
        for (name, value) in self.parameters(user, bypass) {
            match value {
                Parameter::Password => line.push_str(&format!(" -{name} <SecureString>")),
                Parameter::Text(t) => line.push_str(&format!(" -{name} '{}'", t.replace('\'', "''"))),
                Parameter::Switch => line.push_str(&format!(" -{name}")),
            }
        }
        line
    }
}

/// A parameter of the credential call.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Parameter {
    /// The new BMC password (a SecureString on the wire).
    Password,
    /// A plain string.
    Text(String),
    /// A switch.
    Switch,
}

/// What the PEP said and did.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct PepReport {
    /// The endpoint that answered.
    pub endpoint: String,
    /// The cmdlet found.
    pub cmdlet: Option<Cmdlet>,
    /// The call, password redacted (for `check`: the call a rotation would make).
    pub call: String,
    /// The call ran and completed without an error record.
    pub stored: bool,
    /// Output objects, as text.
    pub output: Vec<String>,
    /// Warning records.
    pub warnings: Vec<String>,
    /// Verbose and information records.
    pub verbose: Vec<String>,
    /// Transcripts handed to the share by `Close-PrivilegedEndpoint`.
    pub transcripts_closed: bool,
    /// The readiness check's verdict, when a check asked for it.
    pub readiness: Option<Readiness>,
    /// Endpoints that failed before this one, with why.
    pub failed_over: Vec<(String, String)>,
    /// Wall time of the whole step (JSON: `elapsed_ms`).
    #[serde(rename = "elapsed_ms", serialize_with = "millis")]
    pub elapsed: Duration,
}

/// Serialises a duration as whole milliseconds (reports and JSON output).
pub(crate) fn millis<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_u64(d.as_millis() as u64)
}

/// Why the PEP step failed. Every message names the endpoint and says what to do.
#[derive(Debug, thiserror::Error)]
pub enum PepError {
    /// The request cannot be sent as given (nothing was contacted).
    #[error("{0}")]
    BadInput(String),
    /// No connection (refused, unreachable, timed out before authenticating).
    #[error("cannot reach the privileged endpoint at {endpoint}: {reason}")]
    Unreachable {
        /// The endpoint.
        endpoint: String,
        /// Why.
        reason: String,
    },
    /// The HTTPS listener presented another certificate than `[pep] tls` pins: nothing was sent
    /// to it. Possibly someone in the middle, so never reported as merely unreachable.
    #[error(
        "the privileged endpoint at {endpoint} presented a TLS certificate other than the one pinned by `tls` under \
         [pep] in the inventory: pinned sha256:{}, presented sha256:{}. Nothing was sent to it. This can be an \
         attack: verify the certificate of the ERCS VM's WinRM HTTPS listener out of band before updating the pin",
        hex::encode(pinned),
        hex::encode(presented)
    )]
    CertificateChanged {
        /// The endpoint.
        endpoint: String,
        /// The pin.
        pinned: [u8; 32],
        /// The SHA-256 of the certificate presented.
        presented: [u8; 32],
    },
    /// The endpoint answered but is not a PEP (no `PrivilegedEndpoint` configuration).
    #[error("{endpoint} is not a privileged endpoint: {reason} — check the ERCS VM addresses in the inventory")]
    NotAPep {
        /// The endpoint.
        endpoint: String,
        /// The service's answer.
        reason: String,
    },
    /// The CloudAdmin credential was refused. Never retried elsewhere: the account could lock.
    #[error(
        "the privileged endpoint at {endpoint} refused the credential of {user}: check the CloudAdmin user name \
         (DOMAIN\\user) and password. Not retried on the other ERCS VMs, so the account does not lock out"
    )]
    AuthFailed {
        /// The endpoint.
        endpoint: String,
        /// The account.
        user: String,
    },
    /// Neither `Set-BmcCredential` nor `Set-BmcPassword` is visible to the account.
    #[error(
        "the privileged endpoint at {endpoint} offers neither Set-BmcCredential nor Set-BmcPassword to {user}: \
         is this an Azure Stack Hub PEP, and is the account CloudAdmin?"
    )]
    NoCmdlet {
        /// The endpoint.
        endpoint: String,
        /// The account.
        user: String,
    },
    /// The cmdlet ran and reported an error: the store was not updated.
    #[error("{cmdlet} failed on {endpoint}: {}", errors.join("; "))]
    Rejected {
        /// The endpoint.
        endpoint: String,
        /// The cmdlet.
        cmdlet: String,
        /// The error records, readable.
        errors: Vec<String>,
    },
    /// The connection broke while the cmdlet may have been running: outcome unknown.
    #[error(
        "the connection to {endpoint} broke while {during}: {reason}; whether the credential was stored is unknown"
    )]
    Interrupted {
        /// The endpoint.
        endpoint: String,
        /// What was under way.
        during: String,
        /// Why.
        reason: String,
    },
    /// The overall deadline passed.
    #[error(
        "the PEP step did not finish within {limit:?} (last endpoint {endpoint}, {during}); raise --pep-deadline if the stamp is slow"
    )]
    DeadlineExceeded {
        /// The endpoint in use.
        endpoint: String,
        /// What was under way.
        during: String,
        /// The deadline.
        limit: Duration,
    },
    /// The endpoint broke the protocol.
    #[error("protocol error with {endpoint}: {reason}")]
    Protocol {
        /// The endpoint.
        endpoint: String,
        /// What was wrong.
        reason: String,
    },
    /// The client itself cannot run (e.g. no PowerShell installed).
    #[error("{0}")]
    Client(String),
    /// Every endpoint failed with an error that allowed trying the next.
    #[error("every privileged endpoint failed: {}", .0.iter().map(|e| e.to_string()).collect::<Vec<_>>().join(" | "))]
    AllEndpointsFailed(Vec<PepError>),
}

impl PepError {
    /// Another ERCS VM may succeed where this one failed. Refused credentials and cmdlet errors
    /// are the same on every VM; a broken connection is retried elsewhere because storing the
    /// same credential twice is harmless; a changed certificate is the one VM's (the others are
    /// checked against the pin too, and nothing secret went to this one).
    pub fn try_next_endpoint(&self) -> bool {
        matches!(
            self,
            PepError::Unreachable { .. }
                | PepError::CertificateChanged { .. }
                | PepError::NotAPep { .. }
                | PepError::Interrupted { .. }
                | PepError::Protocol { .. }
        )
    }

    /// The credential may or may not be stored: the caller must find out before rolling back.
    pub fn outcome_unknown(&self) -> bool {
        match self {
            PepError::Interrupted { .. } | PepError::DeadlineExceeded { .. } => true,
            PepError::AllEndpointsFailed(all) => all.iter().any(PepError::outcome_unknown),
            _ => false,
        }
    }
}

/// Progress of the PEP step, for a status line (never carries a secret).
#[derive(Clone, Debug)]
pub enum PepEvent {
    /// Connecting and authenticating to an endpoint.
    Connecting(String),
    /// The runspace pool is open and the session key exchanged.
    SessionOpen(String),
    /// The cmdlet was found.
    Detected(Cmdlet),
    /// The call was sent.
    Invoking(String),
    /// Still waiting for the cmdlet.
    Waiting(Duration),
    /// A warning, verbose or information record.
    Record(String),
    /// Trying the next endpoint.
    FailingOver {
        /// The endpoint that failed.
        endpoint: String,
        /// Why.
        reason: String,
    },
}

/// Where progress goes.
pub type Progress = Arc<dyn Fn(PepEvent) + Send + Sync>;

/// A progress sink that drops everything.
pub fn quiet() -> Progress {
    Arc::new(|_| {})
}

/// One attempt at the PEP step against one endpoint.
pub trait PepClient: Send + Sync {
    /// Runs `request` against `endpoint`. The caller enforces the overall deadline.
    fn attempt(
        &self,
        endpoint: &PepEndpoint,
        target: &PepTarget,
        request: &PepRequest,
        deadline: Instant,
        progress: &Progress,
    ) -> impl Future<Output = Result<PepReport, PepError>> + Send;
}

fn check_input(target: &PepTarget, request: &PepRequest) -> Result<(), PepError> {
    if target.endpoints.is_empty() {
        return Err(PepError::BadInput("no privileged endpoint address: give up to three ERCS VM addresses".into()));
    }
    if !target.user.contains('\\') && !target.user.contains('@') {
        return Err(PepError::BadInput(format!(
            "CloudAdmin user `{}` has no domain: expected DOMAIN\\user, e.g. AZURESTACK\\CloudAdmin",
            target.user
        )));
    }
    if let PepAction::SetCredential(credential) = &request.action {
        let chars = credential.password.expose_secret().chars().count();
        if credential.password.expose_secret().chars().any(char::is_control) {
            return Err(PepError::BadInput(
                "the new BMC password contains a control character (a line break?); BMCs and Azure Stack Hub \
                 need printable characters"
                    .into(),
            ));
        }
        if chars == 0 || chars > MAX_CREDENTIAL_CHARS {
            return Err(PepError::BadInput(format!(
                "the new BMC password has {chars} characters; Azure Stack Hub accepts 1 to {MAX_CREDENTIAL_CHARS}"
            )));
        }
        if let Some(user) = &credential.user {
            let chars = user.chars().count();
            if chars == 0 || chars > MAX_CREDENTIAL_CHARS {
                return Err(PepError::BadInput(format!(
                    "BMC user `{user}` has {chars} characters; Azure Stack Hub accepts 1 to {MAX_CREDENTIAL_CHARS}"
                )));
            }
        }
    }
    Ok(())
}

/// Runs the PEP step: checks the input, then tries each endpoint in order until one succeeds or
/// an error says the others would fail the same way, all within `target.deadline`.
pub async fn run<C: PepClient>(
    client: &C,
    target: &PepTarget,
    request: &PepRequest,
    progress: &Progress,
) -> Result<PepReport, PepError> {
    check_input(target, request)?;
    let started = Instant::now();
    let mut failures = Vec::new();
    for endpoint in &target.endpoints {
        let Some(left) = target.deadline.checked_sub(started.elapsed()) else { break };
        // The client watches the deadline itself (to say what was under way); this is the backstop.
        let backstop = left + Duration::from_secs(1);
        let attempt = client.attempt(endpoint, target, request, started + target.deadline, progress);
        let attempt = tokio::time::timeout(backstop, attempt);
        let error = match attempt.await {
            Ok(Ok(mut report)) => {
                report.failed_over =
                    failures.iter().map(|(e, err): &(String, PepError)| (e.clone(), err.to_string())).collect();
                report.elapsed = started.elapsed();
                return Ok(report);
            }
            Ok(Err(error)) => error,
            Err(_) => {
                return Err(PepError::DeadlineExceeded {
                    endpoint: endpoint.to_string(),
                    during: "the session was open".into(),
                    limit: target.deadline,
                });
            }
        };
        if !error.try_next_endpoint() {
            // An earlier endpoint may have stored the credential before its connection broke:
            // then the step's outcome is unknown, whatever this endpoint said.
            if failures.iter().any(|(_, e): &(String, PepError)| e.outcome_unknown()) {
                failures.push((endpoint.to_string(), error));
                return Err(PepError::AllEndpointsFailed(failures.into_iter().map(|(_, e)| e).collect()));
            }
            return Err(error);
        }
        progress(PepEvent::FailingOver { endpoint: endpoint.to_string(), reason: error.to_string() });
        failures.push((endpoint.to_string(), error));
    }
    match failures.len() {
        0 => Err(PepError::DeadlineExceeded {
            endpoint: target.endpoints[0].to_string(),
            during: "waiting to start".into(),
            limit: target.deadline,
        }),
        1 => Err(failures.pop().expect("one").1),
        _ => Err(PepError::AllEndpointsFailed(failures.into_iter().map(|(_, e)| e).collect())),
    }
}

impl fmt::Display for PepAction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PepAction::Check { .. } => f.write_str("check"),
            PepAction::SetCredential(_) => f.write_str("set-credential"),
        }
    }
}

/// Either client, chosen at run time (`--pep-client`).
pub enum AnyClient {
    /// The native client.
    Native(native::NativeClient),
    /// The PowerShell subprocess.
    PowerShell(powershell::PowerShellClient),
}

impl PepClient for AnyClient {
    async fn attempt(
        &self,
        endpoint: &PepEndpoint,
        target: &PepTarget,
        request: &PepRequest,
        deadline: Instant,
        progress: &Progress,
    ) -> Result<PepReport, PepError> {
        match self {
            AnyClient::Native(client) => client.attempt(endpoint, target, request, deadline, progress).await,
            AnyClient::PowerShell(client) => client.attempt(endpoint, target, request, deadline, progress).await,
        }
    }
}

#[cfg(test)]
mod tests;

//! A privileged-endpoint (PEP) simulator: up to three "ERCS VMs", each a WinRM HTTP listener on
//! loopback that authenticates NTLM, raw or inside SPNEGO (no Kerberos), refuses unsealed bodies
//! with HTTP 500, serves one
//! session configuration (`PrivilegedEndpoint`) and behaves like a JEA NoLanguage endpoint:
//! command objects only (script text fails with `ScriptsNotAllowed`), a fixed set of visible
//! commands, and the Azure Stack rules on `Set-BmcCredential`; `Close-PrivilegedEndpoint` ends
//! the runspace pool. It records the credential it was given (decrypted) and every command line
//! it received so tests can assert the end state and what crossed the wire. Sources: Microsoft's "Use the privileged
//! endpoint in Azure Stack Hub" and "Rotate secrets" pages, JEA's NoLanguage mode, and the
//! MS-PSRP/MS-WSMV specifications; the simulator is checked against the pypsrp client.
//!
//! - `http`: connections, the NTLM handshake and message sealing.
//! - `shell`: WS-Man shell operations and the PSRP runspace pool and pipelines.
//! - `jea`: what the endpoint's commands do.

mod http;
mod jea;
mod shell;

use crate::tls::TlsIdentity;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::net::TcpSocket;
use tokio::task::JoinHandle;
use zeroize::Zeroizing;

/// Which generation of Azure Stack Hub the endpoint imitates.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum PepPersona {
    /// Builds 1907 and later: `Set-BmcCredential -BmcPassword [-BmcUser] [-BypassBMCUpdate]`.
    #[default]
    Current,
    /// Builds before 1907: `Set-BmcPassword -BmcPassword` only.
    Pre1907,
}

impl std::str::FromStr for PepPersona {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "current" => Ok(PepPersona::Current),
            "pre-1907" => Ok(PepPersona::Pre1907),
            other => Err(format!("unknown PEP persona `{other}`: expected `current` or `pre-1907`")),
        }
    }
}

/// Faults to inject. They can be changed while the simulator runs.
#[derive(Clone, Debug, Default)]
pub struct PepFaults {
    /// ERCS VMs (0-based) that drop every connection, as a VM that is down or unreachable.
    pub down: Vec<usize>,
    /// `Set-BmcCredential`/`Set-BmcPassword` run this long before answering.
    pub slow_cmdlet: Option<Duration>,
    /// The cmdlet writes this error record and stores nothing.
    pub error_record: Option<String>,
    /// The next this-many credential calls store the credential, then the connection drops
    /// before the client sees the result (the ambiguous case).
    pub drop_mid_pipeline: u32,
    /// `Test-AzureStack` reports this test (e.g. `AzsInfraRoleSummary`) failed and returns
    /// `$false`: the stamp is not ready for secret rotation.
    pub not_ready: Option<String>,
}

/// How to start the simulator.
#[derive(Clone, Debug)]
pub struct PepConfig {
    /// NetBIOS domain of the CloudAdmin account (`AZURESTACK`).
    pub domain: String,
    /// The CloudAdmin user name.
    pub user: String,
    /// Its password.
    pub password: Zeroizing<String>,
    /// The stamp generation.
    pub persona: PepPersona,
    /// How many ERCS VMs (1 to 3).
    pub endpoints: usize,
    /// VM name prefix (`AzS` gives `AzS-ERCS01`).
    pub prefix: String,
    /// Listen with HTTPS (WinRM's 5986 listener) instead of HTTP; bodies are then protected by
    /// TLS and not sealed, as on Windows.
    pub https: bool,
}

impl Default for PepConfig {
    fn default() -> Self {
        PepConfig {
            domain: "AZURESTACK".into(),
            user: "CloudAdmin".into(),
            password: Zeroizing::new("Cloud-Adm1n-Lab!".into()),
            persona: PepPersona::Current,
            endpoints: 3,
            prefix: "AzS".into(),
            https: false,
        }
    }
}

/// The BMC credential the simulator holds, as `Set-BmcCredential` left it.
#[derive(Clone, Debug)]
pub struct StoredCredential {
    /// `-BmcUser`, if given.
    pub user: Option<String>,
    /// The decrypted `-BmcPassword`.
    pub password: Zeroizing<String>,
    /// `-BypassBMCUpdate` was set.
    pub bypass_bmc_update: bool,
    /// The cmdlet used.
    pub cmdlet: String,
    /// The ERCS VM (0-based) that took it.
    pub ercs: usize,
}

/// One request the simulator answered (for assertions; never holds a body).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PepLogEntry {
    /// The ERCS VM (0-based).
    pub ercs: usize,
    /// `auth`, `Create`, `Command`, `Receive`, ... or `dropped`.
    pub action: String,
    /// HTTP status.
    pub status: u16,
    /// What it was about: a refused user, a command name, a locale.
    pub detail: String,
}

#[derive(Default)]
struct Records {
    stored: Option<StoredCredential>,
    /// Every credential call that reached the store, in order (a retry after a drop adds one).
    store_count: u32,
    transcript: Vec<String>,
    /// Every pipeline's first command as it arrived; never cleared.
    received: Vec<String>,
    transferred: Vec<(String, String)>,
    log: Vec<PepLogEntry>,
}

pub(crate) struct Shared {
    config: PepConfig,
    faults: Mutex<PepFaults>,
    records: Mutex<Records>,
    shells: Mutex<HashMap<bmc_winrm::psrp::message::Guid, Arc<shell::Shell>>>,
}

impl Shared {
    fn log(&self, ercs: usize, action: impl Into<String>, status: u16, detail: impl Into<String>) {
        let entry = PepLogEntry { ercs, action: action.into(), status, detail: detail.into() };
        self.records.lock().expect("records").log.push(entry);
    }

    fn faults(&self) -> PepFaults {
        self.faults.lock().expect("faults").clone()
    }

    fn computer(&self, ercs: usize) -> String {
        format!("{}-ERCS{:02}", self.config.prefix, ercs + 1)
    }
}

/// A running PEP simulator. Dropping it stops every listener.
pub struct PepSimulator {
    shared: Arc<Shared>,
    addrs: Vec<SocketAddr>,
    identities: Vec<TlsIdentity>,
    tasks: Vec<JoinHandle<()>>,
}

impl Drop for PepSimulator {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

impl PepSimulator {
    /// Starts `config.endpoints` listeners on `127.0.0.1`, each on a free port.
    pub async fn start(config: PepConfig) -> anyhow::Result<PepSimulator> {
        Self::start_on(config, &[]).await
    }

    /// Starts listeners on the given addresses (port 0 = any free port); missing ones default to
    /// `127.0.0.1:0`.
    pub async fn start_on(config: PepConfig, binds: &[SocketAddr]) -> anyhow::Result<PepSimulator> {
        anyhow::ensure!((1..=3).contains(&config.endpoints), "a stamp has 1 to 3 ERCS VMs, not {}", config.endpoints);
        let shared =
            Arc::new(Shared { config, faults: Mutex::default(), records: Mutex::default(), shells: Mutex::default() });
        let mut addrs = Vec::new();
        let mut tasks = Vec::new();
        let mut identities = Vec::new();
        for ercs in 0..shared.config.endpoints {
            let bind = binds.get(ercs).copied().unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 0)));
            let listener = crate::https::bind_when_free(bind.port(), || {
                let socket = if bind.is_ipv4() { TcpSocket::new_v4()? } else { TcpSocket::new_v6()? };
                // As `TcpListener::bind` does: a restarted PEP rebinds over its old connections.
                #[cfg(unix)]
                socket.set_reuseaddr(true)?;
                socket.bind(bind)?;
                socket.listen(1024)
            })
            .await?;
            addrs.push(listener.local_addr()?);
            let tls = if shared.config.https {
                let identity = TlsIdentity::self_signed(&[&shared.computer(ercs)])?;
                let acceptor = tokio_rustls::TlsAcceptor::from(identity.server_config()?);
                identities.push(identity);
                Some(acceptor)
            } else {
                None
            };
            tasks.push(tokio::spawn(http::serve(listener, tls, ercs, shared.clone())));
        }
        Ok(PepSimulator { shared, addrs, identities, tasks })
    }

    /// The listeners, ERCS01 first.
    pub fn addrs(&self) -> &[SocketAddr] {
        &self.addrs
    }

    /// With `https`: each listener's certificate pin (`sha256:HEX`), ERCS01 first.
    pub fn pins(&self) -> Vec<String> {
        self.identities.iter().map(TlsIdentity::pin).collect()
    }

    /// `DOMAIN\user` of the CloudAdmin account.
    pub fn account(&self) -> String {
        format!("{}\\{}", self.shared.config.domain, self.shared.config.user)
    }

    /// Replaces the injected faults.
    pub fn set_faults(&self, faults: PepFaults) {
        *self.shared.faults.lock().expect("faults") = faults;
    }

    /// The credential held now.
    pub fn stored(&self) -> Option<StoredCredential> {
        self.shared.records.lock().expect("records").stored.clone()
    }

    /// How many credential calls reached the store.
    pub fn store_count(&self) -> u32 {
        self.shared.records.lock().expect("records").store_count
    }

    /// Pre-seeds the stored credential (the state before a rotation).
    pub fn set_stored(&self, user: Option<&str>, password: &str) {
        let mut records = self.shared.records.lock().expect("records");
        records.stored = Some(StoredCredential {
            user: user.map(str::to_owned),
            password: Zeroizing::new(password.to_owned()),
            bypass_bmc_update: true,
            cmdlet: "seed".into(),
            ercs: 0,
        });
    }

    /// The session transcript lines not yet handed over (SecureStrings shown as `<SecureString>`).
    pub fn transcript(&self) -> Vec<String> {
        self.shared.records.lock().expect("records").transcript.clone()
    }

    /// Every command line received since the start, `Close-PrivilegedEndpoint` included, as the
    /// transcript shows it: a SecureString as `<SecureString>`, a plain string as its text.
    pub fn received(&self) -> Vec<String> {
        self.shared.records.lock().expect("records").received.clone()
    }

    /// Transcripts handed over by `Close-PrivilegedEndpoint`: `(destination, share user)`.
    pub fn transferred(&self) -> Vec<(String, String)> {
        self.shared.records.lock().expect("records").transferred.clone()
    }

    /// Every request answered so far.
    pub fn log(&self) -> Vec<PepLogEntry> {
        self.shared.records.lock().expect("records").log.clone()
    }

    /// Open shells (runspace pools) across all ERCS VMs.
    pub fn open_shells(&self) -> usize {
        self.shared.shells.lock().expect("shells").len()
    }
}

#[cfg(test)]
mod auth_tests;
#[cfg(test)]
mod client_tests;
#[cfg(test)]
mod tests;

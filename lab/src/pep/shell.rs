//! WS-Man shell operations and the PSRP runspace pool behind them: Create opens the pool,
//! Send carries the public key (and long pipelines), Command starts a pipeline whose commands
//! run in `jea`, Receive long-polls for output up to the client's OperationTimeout, Signal and
//! Delete close pipelines and pools. After `Close-PrivilegedEndpoint` the pool is gone: once its
//! answer is delivered the shell no longer exists, and any other request on it faults as for an
//! unknown shell.

use super::{Shared, jea};
use bmc_winrm::psrp::RunspaceState;
use bmc_winrm::psrp::clixml;
use bmc_winrm::psrp::crypto::{SessionKey, public_key_from_blob};
use bmc_winrm::psrp::fragment::{Defragmenter, Fragmenter};
use bmc_winrm::psrp::message::{Destination, Guid, Message, MessageType};
use bmc_winrm::psrp::server;
use bmc_winrm::wsman::PRIVILEGED_ENDPOINT;
use bmc_winrm::wsman::service::{self, Action, Request};
use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::watch;

/// What the HTTP layer should do with a request.
pub(crate) enum Outcome {
    /// HTTP status and SOAP text (sealed by the caller).
    Answer(u16, String),
    /// Cut the connection.
    Cut,
}

/// Output waiting for a Receive, per pipeline (`None` = the pool itself).
#[derive(Default)]
struct Queue {
    blobs: VecDeque<Vec<u8>>,
    /// The pipeline reached a final state: its last Receive reports `Done`.
    finished: bool,
    /// Drop the connection instead of delivering this queue's next output.
    cut_before_delivery: bool,
}

pub(crate) struct State {
    defragmenter: Defragmenter,
    fragmenter: Fragmenter,
    pub(crate) key: Option<SessionKey>,
    queues: HashMap<Option<Guid>, Queue>,
    /// `Close-PrivilegedEndpoint` ended the session.
    pub(crate) closing: bool,
}

pub(crate) struct Shell {
    pub(crate) pool: Guid,
    pub(crate) owner: String,
    pub(crate) ercs: usize,
    state: Mutex<State>,
    changed: watch::Sender<u64>,
}

impl Shell {
    pub(crate) fn with_state<T>(&self, f: impl FnOnce(&mut State) -> T) -> T {
        f(&mut self.state.lock().expect("shell state"))
    }

    /// Queues one PSRP message for the pool (`pipeline` None) or a pipeline.
    pub(crate) fn emit(&self, pipeline: Option<Guid>, kind: MessageType, data: String) {
        self.with_state(|state| {
            let message = Message {
                destination: Destination::Client,
                kind,
                rpid: self.pool,
                pid: pipeline.unwrap_or(Guid::NIL),
                data: data.into_bytes(),
            };
            let blob = state.fragmenter.wire(&message);
            state.queues.entry(pipeline).or_default().blobs.push_back(blob);
        });
        self.changed.send_modify(|n| *n += 1);
    }

    /// Marks a pipeline finished (after its PIPELINE_STATE was emitted).
    pub(crate) fn finish(&self, pipeline: Guid, cut_before_delivery: bool) {
        self.with_state(|state| {
            let queue = state.queues.entry(Some(pipeline)).or_default();
            queue.finished = true;
            queue.cut_before_delivery = cut_before_delivery;
        });
        self.changed.send_modify(|n| *n += 1);
    }
}

const SHELL_NOT_FOUND: &str =
    "The request for the Windows Remote Shell with ShellId failed because the shell was not found on the server.";

fn fault(request: &Request, subcode: &str, code: u32, reason: &str) -> Outcome {
    Outcome::Answer(500, service::fault(&request.message_id, subcode, code, reason))
}

/// Handles one unsealed SOAP request from an authenticated `user`.
pub(crate) async fn process(soap: &str, ercs: usize, user: &str, shared: &Arc<Shared>) -> Outcome {
    let request = match service::request(soap) {
        Ok(request) => request,
        Err(error) => {
            shared.log(ercs, "malformed", 400, error.clone());
            return Outcome::Answer(400, service::fault("", "w:SchemaValidationError", 2_150_858_817, &error));
        }
    };
    let action = format!("{:?}", request.action);
    let outcome = dispatch(&request, ercs, user, shared).await;
    let status = match &outcome {
        Outcome::Answer(status, _) => *status,
        Outcome::Cut => 0,
    };
    let detail = match (&request.action, &request.locale) {
        (Action::Create, locale) => format!("locale {}", locale.as_deref().unwrap_or("none")),
        _ => String::new(),
    };
    shared.log(ercs, if status == 0 { "dropped".to_owned() } else { action }, status, detail);
    outcome
}

async fn dispatch(request: &Request, ercs: usize, user: &str, shared: &Arc<Shared>) -> Outcome {
    if request.action == Action::Create {
        return create(request, ercs, user, shared);
    }
    let Some(pool) = request.shell else {
        return fault(request, "w:InvalidSelectors", 2_150_858_843, "The request has no ShellId selector.");
    };
    let shell = shared.shells.lock().expect("shells").get(&pool).cloned();
    let Some(shell) = shell.filter(|s| s.owner == user && s.ercs == ercs) else {
        return fault(request, "w:InvalidSelectors", 2_150_858_843, SHELL_NOT_FOUND);
    };
    let closing = shell.with_state(|s| s.closing);
    if closing && !(request.action == Action::Receive && request.command.is_some()) {
        return fault(request, "w:InvalidSelectors", 2_150_858_843, SHELL_NOT_FOUND);
    }
    match &request.action {
        Action::Send | Action::Command => input(request, &shell, shared).await,
        Action::Receive => receive(request, &shell, shared).await,
        Action::Signal => {
            if let Some(pipeline) = request.command {
                shell.with_state(|s| s.queues.remove(&Some(pipeline)));
            }
            Outcome::Answer(200, service::acknowledged(request))
        }
        Action::Delete => {
            shared.shells.lock().expect("shells").remove(&pool);
            Outcome::Answer(200, service::acknowledged(request))
        }
        Action::Create => unreachable!("handled above"),
        Action::Other(uri) => {
            fault(request, "a:ActionNotSupported", 2_150_858_750, &format!("unsupported action {uri}"))
        }
    }
}

fn create(request: &Request, ercs: usize, user: &str, shared: &Arc<Shared>) -> Outcome {
    if request.resource_uri != PRIVILEGED_ENDPOINT {
        let name = request.resource_uri.rsplit('/').next().unwrap_or_default();
        return fault(
            request,
            "w:InvalidResourceURI",
            2_150_858_811,
            &format!(
                "The WS-Management service cannot process the request. Cannot find the {name} session configuration in the WSMan: drive on the {} computer.",
                shared.computer(ercs)
            ),
        );
    }
    let Some(pool) = request.shell else {
        return fault(request, "w:InvalidParameter", 2_150_858_843, "Create without a ShellId");
    };
    let (changed, _) = watch::channel(0);
    let shell = Arc::new(Shell {
        pool,
        owner: user.to_owned(),
        ercs,
        state: Mutex::new(State {
            defragmenter: Defragmenter::default(),
            fragmenter: Fragmenter::new(32 * 1024),
            key: None,
            queues: HashMap::new(),
            closing: false,
        }),
        changed,
    });
    let messages = match messages(&shell, &request.payload) {
        Ok(messages) => messages,
        Err(error) => return fault(request, "w:InvalidParameter", 2_150_858_843, &error),
    };
    let kinds: Vec<MessageType> = messages.iter().map(|m| m.kind).collect();
    if kinds != [MessageType::SESSION_CAPABILITY, MessageType::INIT_RUNSPACEPOOL] {
        return fault(
            request,
            "w:InvalidParameter",
            2_150_858_843,
            "creationXml must hold SESSION_CAPABILITY and INIT_RUNSPACEPOOL",
        );
    }
    shell.emit(None, MessageType::SESSION_CAPABILITY, clixml::session_capability());
    shell.emit(None, MessageType::APPLICATION_PRIVATE_DATA, server::application_private_data());
    shell.emit(None, MessageType::RUNSPACEPOOL_STATE, server::runspace_pool_state(RunspaceState::Opened));
    shared.shells.lock().expect("shells").insert(pool, shell);
    Outcome::Answer(200, service::created(request, "http://localhost:5985/wsman", pool))
}

fn messages(shell: &Shell, payload: &[u8]) -> Result<Vec<Message>, String> {
    shell.with_state(|state| state.defragmenter.messages(payload).map_err(|e| e.to_string()))
}

async fn input(request: &Request, shell: &Arc<Shell>, shared: &Arc<Shared>) -> Outcome {
    let messages = match messages(shell, &request.payload) {
        Ok(messages) => messages,
        Err(error) => return fault(request, "w:InvalidParameter", 2_150_858_843, &error),
    };
    for message in messages {
        match message.kind {
            MessageType::PUBLIC_KEY => {
                let data = String::from_utf8_lossy(&message.data);
                let blob = clixml::parse(&data)
                    .ok()
                    .and_then(|root| clixml::Clixml::string(&root, "PublicKey"))
                    .and_then(|b| base64_decode(&b));
                let Some(public) = blob.and_then(|b| public_key_from_blob(&b).ok()) else {
                    return fault(request, "w:InvalidParameter", 2_150_858_843, "PUBLIC_KEY is not a PUBLICKEYBLOB");
                };
                let key = SessionKey::generate();
                let Ok(wrapped) = key.wrap_for(&public) else {
                    return fault(request, "w:InternalError", 2_150_858_843, "cannot wrap the session key");
                };
                shell.with_state(|s| s.key = Some(key));
                shell.emit(None, MessageType::ENCRYPTED_SESSION_KEY, clixml::encrypted_session_key(&wrapped));
            }
            MessageType::CREATE_PIPELINE => {
                let data = String::from_utf8_lossy(&message.data).into_owned();
                let pipeline = message.pid;
                shell.with_state(|s| {
                    s.queues.entry(Some(pipeline)).or_default();
                });
                tokio::spawn(jea::run(shell.clone(), shared.clone(), pipeline, data));
            }
            _ => {}
        }
    }
    match request.action {
        Action::Command => {
            let command = request.command.unwrap_or_else(Guid::random);
            Outcome::Answer(200, service::command_started(request, command))
        }
        _ => Outcome::Answer(200, service::acknowledged(request)),
    }
}

fn base64_decode(text: &str) -> Option<Vec<u8>> {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.decode(text.trim()).ok()
}

async fn receive(request: &Request, shell: &Arc<Shell>, shared: &Shared) -> Outcome {
    // Hold the poll as WinRM does, but never longer than a minute in the lab.
    let wait = request.operation_timeout.unwrap_or(Duration::from_secs(20)).min(Duration::from_secs(60));
    let deadline = tokio::time::Instant::now() + wait;
    let mut changes = shell.changed.subscribe();
    loop {
        let ready = shell.with_state(|state| {
            let closing = state.closing;
            let queue = state.queues.get_mut(&request.command)?;
            if queue.cut_before_delivery {
                queue.cut_before_delivery = false;
                return Some(Err(()));
            }
            // A closing session answers once, with everything: that answer is its last.
            if !queue.finished && (queue.blobs.is_empty() || closing) {
                return None;
            }
            let blobs: Vec<Vec<u8>> = queue.blobs.drain(..).collect();
            Some(Ok((blobs, queue.finished)))
        });
        match ready {
            Some(Err(())) => return Outcome::Cut,
            Some(Ok((blobs, done))) => {
                if done && shell.with_state(|s| s.closing) {
                    // Close-PrivilegedEndpoint's answer is out: the session ends with it.
                    shared.shells.lock().expect("shells").remove(&shell.pool);
                }
                return Outcome::Answer(200, service::received(request, &blobs, done));
            }
            None => {}
        }
        if request.command.is_some() && shell.with_state(|s| !s.queues.contains_key(&request.command)) {
            return fault(request, "w:InvalidSelectors", 2_150_858_843, "The pipeline is not running.");
        }
        if tokio::time::timeout_at(deadline, changes.changed()).await.is_err() {
            return Outcome::Answer(500, service::timed_out(request));
        }
    }
}

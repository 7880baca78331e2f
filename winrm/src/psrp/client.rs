//! The client's half of a PSRP conversation over WS-Man shell operations, without I/O: a
//! [`Session`] says which envelope to send next ([`Session::poll_request`]), is fed the answer
//! ([`Session::handle_answer`], or [`Session::handle_no_answer`] when the exchange failed) and
//! reports what happened as [`Event`]s. The caller owns the connection, the clock (every call
//! that needs the time takes `now`) and the random source (the session draws its GUIDs from the
//! generator it was given; the RSA key pair is the process's one, [`ClientKey::process_key`]).
//!
//! The conversation (MS-PSRP 3.1.4, 3.1.5; shell operations per MS-WSMV 3.1.4.1):
//! - opening: Create carries SESSION_CAPABILITY and INIT_RUNSPACEPOOL, then pool-level Receives
//!   until RUNSPACEPOOL_STATE says Opened;
//! - the session-key exchange a SecureString needs (MS-PSRP 3.1.5.4.3): Send PUBLIC_KEY, then
//!   Receives until ENCRYPTED_SESSION_KEY (a PUBLIC_KEY_REQUEST is answered the same way);
//! - each pipeline: Command with the first CREATE_PIPELINE fragment, Send for the rest, Receives
//!   until a final PIPELINE_STATE (a `TimedOut` fault only means "nothing yet"), then a Terminate
//!   Signal;
//! - closing: Delete.
//!
//! Signal and Delete are best effort: their answers, faults and failures change nothing.

use super::PsrpError;
use super::clixml::{self, Clixml, Command, ErrorInfo};
use super::crypto::{ClientKey, SessionKey};
use super::fragment::{Defragmenter, Fragmenter};
use super::message::{Destination, Guid, Message, MessageType};
use super::{PipelineState, RunspaceState};
use crate::wsman::{self, Endpoint, Operation};
use base64::Engine as _;
use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

pub use rsa::rand_core::{self, CryptoRng, CryptoRngCore, OsRng, RngCore};

/// WinRM's default MaxEnvelopeSize.
pub const MAX_ENVELOPE: u32 = 153_600;
/// Fragments stay well below [`MAX_ENVELOPE`] once base64-encoded.
pub const MAX_FRAGMENT: usize = 96 * 1024;

/// Where the session talks to and its limits.
#[derive(Clone, Debug)]
pub struct Config {
    /// `http://host:5985/wsman`.
    pub url: String,
    /// The session configuration URI.
    pub resource_uri: String,
    /// WS-Man `OperationTimeout`: how long one Receive long-poll may wait.
    pub operation_timeout: Duration,
    /// `MaxEnvelopeSize` announced.
    pub max_envelope: u32,
    /// The largest PSRP fragment sent, header included.
    pub max_fragment: usize,
}

impl Config {
    /// The privileged endpoint's configuration at `url`, with WinRM's default sizes.
    pub fn privileged_endpoint(url: impl Into<String>, operation_timeout: Duration) -> Config {
        Config {
            url: url.into(),
            resource_uri: wsman::PRIVILEGED_ENDPOINT.into(),
            operation_timeout,
            max_envelope: MAX_ENVELOPE,
            max_fragment: MAX_FRAGMENT,
        }
    }
}

/// One envelope to send.
pub struct Request {
    /// The SOAP text. It may carry SecureStrings: never log it.
    pub soap: String,
    /// `Create`, `Command`, `Send`, `Receive`, `Signal` or `Delete`.
    pub operation: &'static str,
    /// What was under way, for the caller's error messages (`Set-BmcCredential was running`).
    pub during: String,
    /// Signal and Delete: if the exchange fails, call [`Session::handle_no_answer`] and go on.
    pub best_effort: bool,
}

impl std::fmt::Debug for Request {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Request")
            .field("operation", &self.operation)
            .field("during", &self.during)
            .field("best_effort", &self.best_effort)
            .field("soap_bytes", &self.soap.len())
            .finish()
    }
}

/// Everything a pipeline sent back.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PipelineResult {
    /// The final state (Completed, Failed, Stopped...).
    pub state: PipelineState,
    /// Output objects, as text.
    pub output: Vec<String>,
    /// Error records.
    pub errors: Vec<ErrorInfo>,
    /// Warning records.
    pub warnings: Vec<String>,
    /// Verbose, debug and information records.
    pub verbose: Vec<String>,
    /// The error that ended a failed pipeline.
    pub failure: Option<ErrorInfo>,
}

impl PipelineResult {
    /// Completed and no error record: a cmdlet that refuses part of its work writes a
    /// non-terminating error record and its pipeline still completes.
    pub fn succeeded(&self) -> bool {
        self.state == PipelineState::Completed && self.errors.is_empty() && self.failure.is_none()
    }

    /// Every error, readable.
    pub fn error_texts(&self) -> Vec<String> {
        let mut all: Vec<String> = self.errors.iter().map(ToString::to_string).collect();
        all.extend(self.failure.iter().map(ToString::to_string));
        if all.is_empty() && !self.succeeded() {
            all.push(format!("the pipeline ended in state {} without an error record", self.state.code()));
        }
        all
    }
}

/// What the session reports, in the order it happened.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    /// The runspace pool is Opened.
    Opened,
    /// The session key arrived: SecureStrings can be sent.
    KeyExchanged,
    /// A message for the running pipeline arrived (its type only: data may be secret).
    PipelineMessage(MessageType),
    /// A Receive for the running pipeline timed out: still running after this long.
    Waiting(Duration),
    /// A warning record's text.
    Warning(String),
    /// A verbose, debug or information record's text.
    Record(String),
    /// The pipeline ended and was closed.
    Finished(PipelineResult),
    /// The shell was deleted (or the attempt failed, which is the same to the client).
    Closed,
}

/// Why the conversation cannot go on.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ClientError {
    /// The endpoint refused to open the runspace pool, or closed it: it is not the endpoint
    /// configuration asked for, or it does not let this account in.
    #[error("{0}")]
    PoolRefused(String),
    /// The endpoint's answers broke WS-Man or PSRP.
    #[error("{0}")]
    Protocol(String),
    /// The command cannot be sent as given (nothing was sent).
    #[error("{0}")]
    Command(String),
    /// The pipeline's deadline passed before it ended.
    #[error("the deadline passed while {during}")]
    DeadlineExceeded {
        /// What was under way.
        during: String,
    },
}

fn protocol(reason: impl Into<String>) -> ClientError {
    ClientError::Protocol(reason.into())
}

impl From<PsrpError> for ClientError {
    fn from(error: PsrpError) -> Self {
        ClientError::Protocol(error.to_string())
    }
}

/// An operation waiting to be sent; owns what [`Operation`] borrows.
#[derive(Debug)]
enum Pending {
    Create { creation_xml: String },
    Command { pipeline: Guid, arguments: String },
    Send { pipeline: Option<Guid>, stream: String },
    Receive { pipeline: Option<Guid> },
    Signal { pipeline: Guid },
    Delete,
}

impl Pending {
    fn name(&self) -> &'static str {
        match self {
            Pending::Create { .. } => "Create",
            Pending::Command { .. } => "Command",
            Pending::Send { .. } => "Send",
            Pending::Receive { .. } => "Receive",
            Pending::Signal { .. } => "Signal",
            Pending::Delete => "Delete",
        }
    }
}

/// A request sent and not yet answered.
#[derive(Debug)]
struct Outstanding {
    message_id: Guid,
    kind: Kind,
    during: String,
}

/// What an answer is for: decides how its faults read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Create,
    PublicKey,
    PoolReceive,
    Command,
    PipelineSend,
    PipelineReceive,
    Signal,
    Delete,
}

impl Kind {
    fn best_effort(self) -> bool {
        matches!(self, Kind::Signal | Kind::Delete)
    }
}

/// A pipeline under way.
struct Pipeline {
    id: Guid,
    name: String,
    during: String,
    started: Instant,
    deadline: Instant,
    result: PipelineResult,
    ended: bool,
}

/// What the session is doing.
enum Phase {
    /// Nothing: ready for [`Session::exchange_keys`], [`Session::invoke`] or [`Session::close`].
    Idle,
    Opening {
        opened: bool,
    },
    KeyExchange,
    Pipeline(Box<Pipeline>),
    Closing,
    Closed,
    /// An error ended the conversation; only [`Session::close`] is left.
    Failed,
}

/// One runspace pool, from Create to Delete.
pub struct Session<R> {
    rng: R,
    endpoint: Endpoint,
    pool: Guid,
    fragmenter: Fragmenter,
    defragmenter: Defragmenter,
    client_key: Option<Arc<ClientKey>>,
    key: Option<SessionKey>,
    phase: Phase,
    queue: VecDeque<(Pending, Kind, String)>,
    outstanding: Option<Outstanding>,
    /// Messages of the last Receive not yet acted on: a PUBLIC_KEY_REQUEST pauses them while the
    /// key is sent, as a client that answers it in line does.
    inbox: VecDeque<Message>,
    /// The last Receive reported `CommandState/Done`.
    inbox_done: bool,
    events: VecDeque<Event>,
}

impl<R> std::fmt::Debug for Session<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("pool", &self.pool)
            .field("idle", &self.outstanding.is_none())
            .finish_non_exhaustive()
    }
}

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// Text of one output object: a string as is, anything else by its `ToString`.
pub fn object_text(data: &[u8]) -> String {
    let text = String::from_utf8_lossy(data);
    let Ok(root) = clixml::parse(&text) else { return text.into_owned() };
    let Some(object) = root.children.first() else { return String::new() };
    match object.tag.as_str() {
        "S" => clixml::decode_string(&object.text),
        _ => object
            .children
            .iter()
            .find(|c| c.tag == "ToString")
            .map(|t| clixml::decode_string(&t.text))
            .unwrap_or_else(|| clixml::decode_string(object.text.trim())),
    }
}

/// Text of a warning, verbose, debug or information record.
pub fn record_text(data: &[u8]) -> String {
    let text = String::from_utf8_lossy(data);
    match clixml::parse(&text) {
        Ok(root) => root.string("InformationalRecord_Message").unwrap_or_else(|| object_text(data)),
        Err(_) => text.into_owned(),
    }
}

impl<R: CryptoRngCore> Session<R> {
    /// A session that starts by opening a runspace pool: the first request is the Create.
    /// `rng` supplies every GUID; the session-key exchange uses [`ClientKey::process_key`].
    pub fn new(config: Config, mut rng: R) -> Session<R> {
        let session_id = guid(&mut rng);
        let pool = guid(&mut rng);
        let endpoint = Endpoint {
            url: config.url,
            resource_uri: config.resource_uri,
            session_id,
            max_envelope: config.max_envelope,
            operation_timeout: config.operation_timeout,
        };
        let mut session = Session {
            rng,
            endpoint,
            pool,
            fragmenter: Fragmenter::new(config.max_fragment),
            defragmenter: Defragmenter::default(),
            client_key: None,
            key: None,
            phase: Phase::Opening { opened: false },
            queue: VecDeque::new(),
            outstanding: None,
            inbox: VecDeque::new(),
            inbox_done: false,
            events: VecDeque::new(),
        };
        let mut creation = session.wire(MessageType::SESSION_CAPABILITY, Guid::NIL, clixml::session_capability());
        creation.extend(session.wire(MessageType::INIT_RUNSPACEPOOL, Guid::NIL, clixml::init_runspace_pool()));
        session.queue.push_back((
            Pending::Create { creation_xml: b64(&creation) },
            Kind::Create,
            "opening the session".into(),
        ));
        session
    }

    /// The runspace pool id (the ShellId).
    pub fn pool(&self) -> Guid {
        self.pool
    }

    /// The session key was exchanged: SecureStrings can be sent.
    pub fn has_session_key(&self) -> bool {
        self.key.is_some()
    }

    /// Nothing under way: the last activity finished (or failed) and no request is pending.
    pub fn is_idle(&self) -> bool {
        matches!(self.phase, Phase::Idle | Phase::Closed | Phase::Failed) && self.outstanding.is_none()
    }

    fn wire(&mut self, kind: MessageType, pipeline: Guid, data: String) -> Vec<u8> {
        let message =
            Message { destination: Destination::Server, kind, rpid: self.pool, pid: pipeline, data: data.into_bytes() };
        self.fragmenter.wire(&message)
    }

    fn ready(&self, what: &str) -> Result<(), ClientError> {
        let busy = match (&self.phase, &self.outstanding) {
            (Phase::Idle, None) => return Ok(()),
            (Phase::Opening { .. }, _) => "opening",
            (Phase::KeyExchange, _) => "exchanging keys",
            (Phase::Pipeline(_), _) | (Phase::Idle, Some(_)) => "running a pipeline",
            (Phase::Closing | Phase::Closed, _) => "closed",
            (Phase::Failed, _) => "failed",
        };
        Err(ClientError::Command(format!("cannot {what}: the session is {busy}")))
    }

    /// Starts the session-key exchange (MS-PSRP 3.1.5.4.3); [`Event::KeyExchanged`] ends it.
    pub fn exchange_keys(&mut self) -> Result<(), ClientError> {
        self.ready("exchange keys")?;
        self.phase = Phase::KeyExchange;
        self.queue_public_key()
    }

    fn queue_public_key(&mut self) -> Result<(), ClientError> {
        if self.client_key.is_none() {
            self.client_key = Some(ClientKey::process_key()?);
        }
        let blob = self.client_key.as_ref().expect("just set").public_key_blob();
        let stream = b64(&self.wire(MessageType::PUBLIC_KEY, Guid::NIL, clixml::public_key(&blob)));
        self.queue.push_back((
            Pending::Send { pipeline: None, stream },
            Kind::PublicKey,
            "sending the public key".into(),
        ));
        Ok(())
    }

    /// Starts a pipeline of one command; [`Event::Finished`] carries its result. Receives stop
    /// with [`ClientError::DeadlineExceeded`] once `deadline` has passed. Returns the pipeline id.
    pub fn invoke(&mut self, command: &Command, now: Instant, deadline: Instant) -> Result<Guid, ClientError> {
        self.ready("start a pipeline")?;
        let pipeline = guid(&mut self.rng);
        let data =
            clixml::create_pipeline(command, self.key.as_ref()).map_err(|e| ClientError::Command(e.to_string()))?;
        let message = Message {
            destination: Destination::Server,
            kind: MessageType::CREATE_PIPELINE,
            rpid: self.pool,
            pid: pipeline,
            data: data.into_bytes(),
        };
        let during = format!("{} was running", command.name);
        for (i, fragment) in self.fragmenter.fragment(&message.encode()).iter().enumerate() {
            let mut out = Vec::new();
            fragment.encode(&mut out);
            let blob = b64(&out);
            let (pending, kind) = match i {
                0 => (Pending::Command { pipeline, arguments: blob }, Kind::Command),
                _ => (Pending::Send { pipeline: Some(pipeline), stream: blob }, Kind::PipelineSend),
            };
            self.queue.push_back((pending, kind, during.clone()));
        }
        self.phase = Phase::Pipeline(Box::new(Pipeline {
            id: pipeline,
            name: command.name.clone(),
            during,
            started: now,
            deadline,
            result: PipelineResult::default(),
            ended: false,
        }));
        Ok(pipeline)
    }

    /// Deletes the shell, whatever the session was doing (also after an error). Best effort: the
    /// endpoint may already have closed it; [`Event::Closed`] follows either way.
    pub fn close(&mut self) {
        self.queue.clear();
        self.inbox.clear();
        self.outstanding = None;
        self.phase = Phase::Closing;
        self.queue.push_back((Pending::Delete, Kind::Delete, "closing the session".into()));
    }

    /// The next envelope to send, or `None` while an answer is awaited or nothing is under way.
    /// Fails when a pipeline's deadline has passed at `now`.
    pub fn poll_request(&mut self, now: Instant) -> Result<Option<Request>, ClientError> {
        if self.outstanding.is_some() {
            return Ok(None);
        }
        let (pending, kind, during) = match self.queue.pop_front() {
            Some(next) => next,
            None => match self.next_receive(now)? {
                Some(next) => next,
                None => return Ok(None),
            },
        };
        let shell = self.pool;
        let op = match &pending {
            Pending::Create { creation_xml } => Operation::Create { shell, creation_xml },
            Pending::Command { pipeline, arguments } => Operation::Command { shell, command: *pipeline, arguments },
            Pending::Send { pipeline, stream } => Operation::Send { shell, command: *pipeline, stream },
            Pending::Receive { pipeline } => Operation::Receive { shell, command: *pipeline },
            Pending::Signal { pipeline } => {
                Operation::Signal { shell, command: *pipeline, code: wsman::SIGNAL_TERMINATE }
            }
            Pending::Delete => Operation::Delete { shell },
        };
        let message_id = guid(&mut self.rng);
        let soap = wsman::envelope_with_id(&self.endpoint, &op, message_id);
        let request =
            Request { soap, operation: pending.name(), during: during.clone(), best_effort: kind.best_effort() };
        self.outstanding = Some(Outstanding { message_id, kind, during });
        Ok(Some(request))
    }

    /// With nothing queued: the Receive the phase waits on, or `None` when the phase is done.
    fn next_receive(&mut self, now: Instant) -> Result<Option<(Pending, Kind, String)>, ClientError> {
        let receive = |pipeline, kind, during: &str| Some((Pending::Receive { pipeline }, kind, during.to_owned()));
        match &mut self.phase {
            Phase::Opening { opened: true } => {
                self.phase = Phase::Idle;
                self.events.push_back(Event::Opened);
                Ok(None)
            }
            Phase::Opening { opened: false } => Ok(receive(None, Kind::PoolReceive, "opening the runspace pool")),
            Phase::KeyExchange if self.key.is_some() => {
                self.phase = Phase::Idle;
                self.events.push_back(Event::KeyExchanged);
                Ok(None)
            }
            Phase::KeyExchange => Ok(receive(None, Kind::PoolReceive, "exchanging the session key")),
            Phase::Pipeline(pipeline) if !pipeline.ended => {
                if now >= pipeline.deadline {
                    let during = pipeline.during.clone();
                    self.phase = Phase::Failed;
                    return Err(ClientError::DeadlineExceeded { during });
                }
                Ok(receive(Some(pipeline.id), Kind::PipelineReceive, &pipeline.during))
            }
            Phase::Pipeline(_) | Phase::Idle | Phase::Closing | Phase::Closed | Phase::Failed => Ok(None),
        }
    }

    /// The answer to the last request: HTTP `status` and the SOAP text. An error ends the
    /// conversation (only [`Session::close`] is left).
    pub fn handle_answer(&mut self, now: Instant, status: u16, soap: &str) -> Result<(), ClientError> {
        let Some(outstanding) = self.outstanding.take() else {
            return Err(protocol("an answer to no request"));
        };
        let result = self.answer(now, &outstanding, status, soap);
        if outstanding.kind.best_effort() {
            self.settle(outstanding.kind);
            return Ok(());
        }
        result.inspect_err(|_| self.phase = Phase::Failed)
    }

    /// The last request got no answer (the exchange failed). A best-effort request is settled
    /// as if answered; any other leaves the session failed.
    pub fn handle_no_answer(&mut self) {
        if let Some(outstanding) = self.outstanding.take() {
            match outstanding.kind.best_effort() {
                true => self.settle(outstanding.kind),
                false => self.phase = Phase::Failed,
            }
        }
    }

    /// The next event, oldest first.
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// A Signal or Delete is done, however it went.
    fn settle(&mut self, kind: Kind) {
        match kind {
            Kind::Signal => {
                if let Phase::Pipeline(pipeline) = std::mem::replace(&mut self.phase, Phase::Idle) {
                    self.events.push_back(Event::Finished(pipeline.result));
                }
            }
            Kind::Delete => {
                self.phase = Phase::Closed;
                self.events.push_back(Event::Closed);
            }
            _ => {}
        }
    }

    fn answer(&mut self, now: Instant, outstanding: &Outstanding, status: u16, soap: &str) -> Result<(), ClientError> {
        let during = &outstanding.during;
        if soap.trim().is_empty() {
            return Err(protocol(format!("{during}: HTTP {status} without a SOAP answer")));
        }
        let root = match wsman::answer(soap).map_err(|e| protocol(format!("{during}: {e}")))? {
            Ok(root) => root,
            Err(fault) => return self.fault(now, outstanding, fault),
        };
        let expected = format!("uuid:{}", outstanding.message_id.to_string().to_uppercase());
        if let Some(relates) = root.find("RelatesTo").map(|r| r.text.trim())
            && !relates.eq_ignore_ascii_case(&expected)
        {
            return Err(protocol(format!("{during}: answer relates to {relates}, not to {expected}")));
        }
        if outstanding.kind == Kind::Create {
            let shell = wsman::created_shell(&root).unwrap_or_default();
            if Guid::parse(&shell) != Some(self.pool) {
                return Err(protocol(format!("Create answered ShellId `{shell}`, not the pool id")));
            }
        }
        let received = wsman::received(&root).map_err(|e| protocol(format!("{during}: {e}")))?;
        match outstanding.kind {
            Kind::PoolReceive | Kind::PipelineReceive => {
                self.inbox.extend(self.defragmenter.messages(&received.stdout)?);
                self.inbox_done = received.done;
                self.process()
            }
            // The key went out: carry on with the messages its request interrupted.
            Kind::PublicKey => self.process(),
            Kind::Create | Kind::Command | Kind::PipelineSend | Kind::Signal | Kind::Delete => Ok(()),
        }
    }

    fn fault(&mut self, now: Instant, outstanding: &Outstanding, fault: wsman::Fault) -> Result<(), ClientError> {
        let during = &outstanding.during;
        match outstanding.kind {
            Kind::Create => Err(ClientError::PoolRefused(fault.reason)),
            Kind::PoolReceive if fault.is_timeout() => Ok(()),
            Kind::PipelineReceive if fault.is_timeout() => {
                if let Phase::Pipeline(pipeline) = &self.phase {
                    self.events.push_back(Event::Waiting(now.saturating_duration_since(pipeline.started)));
                }
                Ok(())
            }
            Kind::PoolReceive | Kind::PipelineReceive => Err(protocol(format!("{during}: {}", fault.reason))),
            Kind::PublicKey => Err(protocol(format!("sending the public key: {}", fault.reason))),
            Kind::Command | Kind::PipelineSend => {
                let name = match &self.phase {
                    Phase::Pipeline(pipeline) => pipeline.name.as_str(),
                    _ => "the command",
                };
                let verb = if outstanding.kind == Kind::Command { "starting" } else { "sending" };
                Err(protocol(format!("{verb} {name}: {}", fault.reason)))
            }
            Kind::Signal | Kind::Delete => Ok(()),
        }
    }

    /// Acts on the received messages, in order.
    fn process(&mut self) -> Result<(), ClientError> {
        if matches!(self.phase, Phase::Pipeline(_)) {
            return self.process_pipeline();
        }
        while let Some(message) = self.inbox.pop_front() {
            let data = String::from_utf8_lossy(&message.data).into_owned();
            match message.kind {
                MessageType::RUNSPACEPOOL_STATE => {
                    let (state, error) = clixml::runspace_state(&data)?;
                    match state {
                        RunspaceState::Opened => {
                            if let Phase::Opening { opened } = &mut self.phase {
                                *opened = true;
                            }
                        }
                        RunspaceState::Closed | RunspaceState::Broken => {
                            let why = error.map(|e| e.to_string()).unwrap_or_else(|| format!("state {}", state.code()));
                            return Err(ClientError::PoolRefused(format!("the runspace pool closed: {why}")));
                        }
                        _ => {}
                    }
                }
                MessageType::ENCRYPTED_SESSION_KEY => {
                    let root = clixml::parse(&data)?;
                    let blob = root
                        .string("EncryptedSessionKey")
                        .ok_or_else(|| protocol("ENCRYPTED_SESSION_KEY without a key"))?;
                    let blob = base64::engine::general_purpose::STANDARD
                        .decode(blob.trim())
                        .map_err(|e| protocol(format!("session key: {e}")))?;
                    let client = self.client_key.as_ref().ok_or_else(|| protocol("a session key nobody asked for"))?;
                    self.key = Some(client.decrypt_session_key(&blob)?);
                }
                MessageType::PUBLIC_KEY_REQUEST => {
                    // The rest of the batch waits until the key is sent.
                    return self.queue_public_key();
                }
                MessageType::RUNSPACEPOOL_HOST_CALL => {
                    return Err(protocol("the endpoint asked the (null) host for input"));
                }
                _ => {}
            }
        }
        Ok(())
    }

    fn process_pipeline(&mut self) -> Result<(), ClientError> {
        let Phase::Pipeline(pipeline) = &mut self.phase else { unreachable!("checked by the caller") };
        let result = &mut pipeline.result;
        while let Some(message) = self.inbox.pop_front() {
            self.events.push_back(Event::PipelineMessage(message.kind));
            let data = String::from_utf8_lossy(&message.data).into_owned();
            match message.kind {
                MessageType::PIPELINE_OUTPUT => result.output.push(object_text(&message.data)),
                MessageType::ERROR_RECORD => {
                    let root = clixml::parse(&data)?;
                    let record = root.children.first().cloned().unwrap_or_default();
                    result.errors.push(clixml::error_info(&record));
                }
                MessageType::WARNING_RECORD => {
                    let text = record_text(&message.data);
                    self.events.push_back(Event::Warning(text.clone()));
                    result.warnings.push(text);
                }
                MessageType::VERBOSE_RECORD | MessageType::DEBUG_RECORD | MessageType::INFORMATION_RECORD => {
                    let text = record_text(&message.data);
                    self.events.push_back(Event::Record(text.clone()));
                    result.verbose.push(text);
                }
                MessageType::PIPELINE_STATE => {
                    let (state, error) = clixml::pipeline_state(&data)?;
                    if state.is_final() {
                        result.state = state;
                        result.failure = error;
                        pipeline.ended = true;
                    }
                }
                MessageType::PIPELINE_HOST_CALL => {
                    return Err(protocol(format!("{} asked the (null) host for input", pipeline.name)));
                }
                _ => {}
            }
        }
        if self.inbox_done && !pipeline.ended {
            return Err(protocol(format!("{}: the command ended without a pipeline state", pipeline.during)));
        }
        if pipeline.ended {
            // Its result is in hand: the Signal only frees the pipeline on the server.
            let id = pipeline.id;
            self.queue.push_back((Pending::Signal { pipeline: id }, Kind::Signal, "closing the pipeline".into()));
        }
        Ok(())
    }
}

fn guid<R: CryptoRngCore>(rng: &mut R) -> Guid {
    let mut bytes = [0u8; 16];
    rng.fill_bytes(&mut bytes);
    Guid::from_random_bytes(bytes)
}

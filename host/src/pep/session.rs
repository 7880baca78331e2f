//! A PSRP runspace pool on the PEP over one authenticated connection: open (Create + Receive
//! until Opened), session-key exchange, pipelines of one command object each (Command, Receive
//! long-polls with `TimedOut` retried, Signal), and Delete. Sequence: pep-protocol.md §4.

use super::transport::{Connection, TransportError};
use super::{PepError, PepEvent, Progress};
use base64::Engine as _;
use bmc_winrm::psrp::clixml::{self, Clixml, Command, ErrorInfo};
use bmc_winrm::psrp::crypto::{ClientKey, SessionKey};
use bmc_winrm::psrp::fragment::{Defragmenter, Fragmenter};
use bmc_winrm::psrp::message::{Destination, Guid, Message, MessageType};
use bmc_winrm::wsman::{self, Endpoint, Operation};
use std::time::{Duration, Instant};

/// WinRM's default MaxEnvelopeSize; fragments stay well below it once base64-encoded.
const MAX_ENVELOPE: u32 = 153_600;
const MAX_FRAGMENT: usize = 96 * 1024;

const RUNSPACE_OPENED: i32 = 2;
const PIPELINE_COMPLETED: i32 = 4;

/// Everything a pipeline sent back.
#[derive(Debug, Default)]
pub(crate) struct PipelineResult {
    /// Final PipelineState (4 Completed, 5 Failed, 3 Stopped).
    pub state: i32,
    pub output: Vec<String>,
    pub errors: Vec<ErrorInfo>,
    pub warnings: Vec<String>,
    pub verbose: Vec<String>,
    /// The error that ended a failed pipeline.
    pub failure: Option<ErrorInfo>,
}

impl PipelineResult {
    /// Success rule (pep-protocol.md §8.3): Completed and no error record.
    pub fn succeeded(&self) -> bool {
        self.state == PIPELINE_COMPLETED && self.errors.is_empty() && self.failure.is_none()
    }

    /// Every error, readable.
    pub fn error_texts(&self) -> Vec<String> {
        let mut all: Vec<String> = self.errors.iter().map(ToString::to_string).collect();
        all.extend(self.failure.iter().map(ToString::to_string));
        if all.is_empty() && !self.succeeded() {
            all.push(format!("the pipeline ended in state {} without an error record", self.state));
        }
        all
    }
}

pub(crate) struct Session {
    connection: Connection,
    name: String,
    wsman: Endpoint,
    pool: Guid,
    fragmenter: Fragmenter,
    defragmenter: Defragmenter,
    client_key: Option<ClientKey>,
    key: Option<SessionKey>,
}

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// Text of one output object: a string as is, anything else by its `ToString`.
fn object_text(data: &[u8]) -> String {
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

fn record_text(data: &[u8]) -> String {
    let text = String::from_utf8_lossy(data);
    match clixml::parse(&text) {
        Ok(root) => root.string("InformationalRecord_Message").unwrap_or_else(|| object_text(data)),
        Err(_) => text.into_owned(),
    }
}

impl Session {
    /// The endpoint, for messages.
    pub(crate) fn name(&self) -> &str {
        &self.name
    }

    fn error(&self, during: &str, error: TransportError) -> PepError {
        let endpoint = self.name.clone();
        match error {
            TransportError::Connect(reason) => PepError::Unreachable { endpoint, reason },
            TransportError::Refused => PepError::Protocol { endpoint, reason: "re-authentication was demanded".into() },
            TransportError::Protocol(reason) => PepError::Protocol { endpoint, reason: format!("{during}: {reason}") },
            TransportError::Broken(reason) => PepError::Interrupted { endpoint, during: during.into(), reason },
        }
    }

    fn protocol(&self, reason: impl Into<String>) -> PepError {
        PepError::Protocol { endpoint: self.name.clone(), reason: reason.into() }
    }

    /// Sends one operation; `Ok(Err(fault))` for a WS-Man fault.
    async fn call(
        &mut self,
        op: &Operation<'_>,
        during: &str,
    ) -> Result<Result<wsman::Received, wsman::Fault>, PepError> {
        let (id, soap) = wsman::envelope(&self.wsman, op);
        let operation = op_name(op);
        // Sizes and statuses only: SOAP bodies carry SecureStrings and are never logged.
        tracing::trace!(endpoint = %self.name, operation, bytes = soap.len(), "WS-Man request");
        let answer = match self.connection.exchange(&soap).await {
            Ok(answer) => answer,
            Err(error) => {
                tracing::debug!(endpoint = %self.name, operation, ?error, "WS-Man exchange failed");
                return Err(self.error(during, error));
            }
        };
        tracing::debug!(endpoint = %self.name, operation, status = answer.status, bytes = answer.soap.len(), "WS-Man answer");
        if answer.soap.trim().is_empty() {
            return Err(self.protocol(format!("{during}: HTTP {} without a SOAP answer", answer.status)));
        }
        let root = match wsman::answer(&answer.soap).map_err(|e| self.protocol(format!("{during}: {e}")))? {
            Ok(root) => root,
            Err(fault) => return Ok(Err(fault)),
        };
        let expected = format!("uuid:{}", id.to_string().to_uppercase());
        if let Some(relates) = root.find("RelatesTo").map(|r| r.text.trim())
            && !relates.eq_ignore_ascii_case(&expected)
        {
            return Err(self.protocol(format!("{during}: answer relates to {relates}, not to {expected}")));
        }
        if op_is_create(op) {
            let shell = wsman::created_shell(&root).unwrap_or_default();
            if Guid::parse(&shell) != Some(self.pool) {
                return Err(self.protocol(format!("Create answered ShellId `{shell}`, not the pool id")));
            }
        }
        wsman::received(&root).map(Ok).map_err(|e| self.protocol(format!("{during}: {e}")))
    }

    fn fragments(&mut self, kind: MessageType, pipeline: Guid, data: String) -> Vec<u8> {
        let message =
            Message { destination: Destination::Server, kind, rpid: self.pool, pid: pipeline, data: data.into_bytes() };
        self.fragmenter.wire(&message)
    }

    fn messages(&mut self, stdout: &[u8]) -> Result<Vec<Message>, PepError> {
        self.defragmenter.messages(stdout).map_err(|e| self.protocol(e.to_string()))
    }

    /// Creates the runspace pool and waits until it is Opened.
    pub(crate) async fn open(
        connection: Connection,
        name: String,
        url: String,
        operation_timeout: Duration,
    ) -> Result<Session, PepError> {
        let wsman = Endpoint {
            url,
            resource_uri: wsman::PRIVILEGED_ENDPOINT.into(),
            session_id: Guid::random(),
            max_envelope: MAX_ENVELOPE,
            operation_timeout,
        };
        let pool = Guid::random();
        let mut session = Session {
            connection,
            name,
            wsman,
            pool,
            fragmenter: Fragmenter::new(MAX_FRAGMENT),
            defragmenter: Defragmenter::default(),
            client_key: None,
            key: None,
        };
        let mut creation = session.fragments(MessageType::SESSION_CAPABILITY, Guid::NIL, clixml::session_capability());
        creation.extend(session.fragments(MessageType::INIT_RUNSPACEPOOL, Guid::NIL, clixml::init_runspace_pool()));
        let creation = b64(&creation);
        if let Err(fault) =
            session.call(&Operation::Create { shell: pool, creation_xml: &creation }, "opening the session").await?
        {
            return Err(PepError::NotAPep { endpoint: session.name.clone(), reason: fault.reason });
        }
        session.pool_until(Until::Opened, "opening the runspace pool").await?;
        Ok(session)
    }

    /// Polls pool-level output until `done` holds.
    async fn pool_until(&mut self, until: Until, during: &str) -> Result<(), PepError> {
        let mut opened = false;
        loop {
            match until {
                Until::Opened if opened => return Ok(()),
                Until::SessionKey if self.key.is_some() => return Ok(()),
                _ => {}
            }
            let answer = self.call(&Operation::Receive { shell: self.pool, command: None }, during).await?;
            let received = match answer {
                Ok(received) => received,
                Err(fault) if fault.is_timeout() => continue,
                Err(fault) => return Err(self.protocol(format!("{during}: {}", fault.reason))),
            };
            for message in self.messages(&received.stdout)? {
                let data = String::from_utf8_lossy(&message.data).into_owned();
                match message.kind {
                    MessageType::RUNSPACEPOOL_STATE => {
                        let (s, error) =
                            clixml::state(&data, "RunspaceState").map_err(|e| self.protocol(e.to_string()))?;
                        match s {
                            RUNSPACE_OPENED => opened = true,
                            3 | 5 => {
                                let why = error.map(|e| e.to_string()).unwrap_or_else(|| format!("state {s}"));
                                return Err(PepError::NotAPep {
                                    endpoint: self.name.clone(),
                                    reason: format!("the runspace pool closed: {why}"),
                                });
                            }
                            _ => {}
                        }
                    }
                    MessageType::ENCRYPTED_SESSION_KEY => {
                        let root = clixml::parse(&data).map_err(|e| self.protocol(e.to_string()))?;
                        let blob = root
                            .string("EncryptedSessionKey")
                            .ok_or_else(|| self.protocol("ENCRYPTED_SESSION_KEY without a key"))?;
                        let blob = base64::engine::general_purpose::STANDARD
                            .decode(blob.trim())
                            .map_err(|e| self.protocol(format!("session key: {e}")))?;
                        let client =
                            self.client_key.as_ref().ok_or_else(|| self.protocol("a session key nobody asked for"))?;
                        self.key = Some(client.decrypt_session_key(&blob).map_err(|e| self.protocol(e.to_string()))?);
                    }
                    MessageType::PUBLIC_KEY_REQUEST => self.send_public_key().await?,
                    MessageType::RUNSPACEPOOL_HOST_CALL => {
                        return Err(self.protocol("the endpoint asked the (null) host for input"));
                    }
                    _ => {}
                }
            }
        }
    }

    async fn send_public_key(&mut self) -> Result<(), PepError> {
        if self.client_key.is_none() {
            self.client_key = Some(ClientKey::generate().map_err(|e| self.protocol(e.to_string()))?);
        }
        let blob = self.client_key.as_ref().expect("just set").public_key_blob();
        let stream = b64(&self.fragments(MessageType::PUBLIC_KEY, Guid::NIL, clixml::public_key(&blob)));
        match self
            .call(&Operation::Send { shell: self.pool, command: None, stream: &stream }, "sending the public key")
            .await?
        {
            Ok(_) => Ok(()),
            Err(fault) => Err(self.protocol(format!("sending the public key: {}", fault.reason))),
        }
    }

    /// The session-key exchange a SecureString needs (MS-PSRP 3.1.5.4.3).
    pub(crate) async fn exchange_keys(&mut self) -> Result<(), PepError> {
        self.send_public_key().await?;
        self.pool_until(Until::SessionKey, "exchanging the session key").await
    }

    /// Runs one command and collects every stream until the pipeline ends.
    pub(crate) async fn invoke(
        &mut self,
        command: &Command,
        deadline: Instant,
        limit: Duration,
        progress: &Progress,
    ) -> Result<PipelineResult, PepError> {
        let during = format!("{} was running", command.name);
        let pipeline = Guid::random();
        let data = clixml::create_pipeline(command, self.key.as_ref()).map_err(|e| PepError::Client(e.to_string()))?;
        let fragments = {
            let message = Message {
                destination: Destination::Server,
                kind: MessageType::CREATE_PIPELINE,
                rpid: self.pool,
                pid: pipeline,
                data: data.into_bytes(),
            };
            self.fragmenter.fragment(&message.encode())
        };
        let mut blobs = fragments.iter().map(|f| {
            let mut out = Vec::new();
            f.encode(&mut out);
            b64(&out)
        });
        let first = blobs.next().expect("at least one fragment");
        let started = Instant::now();
        if let Err(fault) =
            self.call(&Operation::Command { shell: self.pool, command: pipeline, arguments: &first }, &during).await?
        {
            return Err(self.protocol(format!("starting {}: {}", command.name, fault.reason)));
        }
        for blob in blobs {
            if let Err(fault) = self
                .call(&Operation::Send { shell: self.pool, command: Some(pipeline), stream: &blob }, &during)
                .await?
            {
                return Err(self.protocol(format!("sending {}: {}", command.name, fault.reason)));
            }
        }
        let mut result = PipelineResult::default();
        let mut ended = false;
        while !ended {
            if Instant::now() >= deadline {
                return Err(PepError::DeadlineExceeded { endpoint: self.name.clone(), during, limit });
            }
            let answer = self.call(&Operation::Receive { shell: self.pool, command: Some(pipeline) }, &during).await?;
            let received = match answer {
                Ok(received) => received,
                Err(fault) if fault.is_timeout() => {
                    progress(PepEvent::Waiting(started.elapsed()));
                    continue;
                }
                Err(fault) => return Err(self.protocol(format!("{during}: {}", fault.reason))),
            };
            for message in self.messages(&received.stdout)? {
                tracing::trace!(endpoint = %self.name, kind = format_args!("{:#010x}", message.kind.0), "PSRP message");
                let data = String::from_utf8_lossy(&message.data).into_owned();
                match message.kind {
                    MessageType::PIPELINE_OUTPUT => result.output.push(object_text(&message.data)),
                    MessageType::ERROR_RECORD => {
                        let root = clixml::parse(&data).map_err(|e| self.protocol(e.to_string()))?;
                        let record = root.children.first().cloned().unwrap_or_default();
                        result.errors.push(clixml::error_info(&record));
                    }
                    MessageType::WARNING_RECORD => {
                        let text = record_text(&message.data);
                        progress(PepEvent::Record(format!("WARNING: {text}")));
                        result.warnings.push(text);
                    }
                    MessageType::VERBOSE_RECORD | MessageType::DEBUG_RECORD | MessageType::INFORMATION_RECORD => {
                        let text = record_text(&message.data);
                        progress(PepEvent::Record(text.clone()));
                        result.verbose.push(text);
                    }
                    MessageType::PIPELINE_STATE => {
                        let (state, error) =
                            clixml::state(&data, "PipelineState").map_err(|e| self.protocol(e.to_string()))?;
                        if state >= 3 {
                            result.state = state;
                            result.failure = error;
                            ended = true;
                        }
                    }
                    MessageType::PIPELINE_HOST_CALL => {
                        return Err(self.protocol(format!("{} asked the (null) host for input", command.name)));
                    }
                    _ => {}
                }
            }
            if received.done && !ended {
                return Err(self.protocol(format!("{during}: the command ended without a pipeline state")));
            }
        }
        // Close the pipeline; its result is already in hand, so a failure here changes nothing.
        let _ = self
            .call(
                &Operation::Signal { shell: self.pool, command: pipeline, code: wsman::SIGNAL_TERMINATE },
                "closing the pipeline",
            )
            .await;
        Ok(result)
    }

    /// Deletes the shell (closes the runspace pool). Best effort: the PEP may already have
    /// closed it (after `Close-PrivilegedEndpoint`).
    pub(crate) async fn close(mut self) {
        let _ = self.call(&Operation::Delete { shell: self.pool }, "closing the session").await;
    }
}

/// What a pool-level Receive loop waits for.
#[derive(Clone, Copy)]
enum Until {
    Opened,
    SessionKey,
}

fn op_name(op: &Operation<'_>) -> &'static str {
    match op {
        Operation::Create { .. } => "Create",
        Operation::Command { .. } => "Command",
        Operation::Send { .. } => "Send",
        Operation::Receive { .. } => "Receive",
        Operation::Signal { .. } => "Signal",
        Operation::Delete { .. } => "Delete",
    }
}

fn op_is_create(op: &Operation<'_>) -> bool {
    matches!(op, Operation::Create { .. })
}

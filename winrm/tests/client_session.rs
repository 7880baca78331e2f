//! `psrp::client::Session` against an in-memory endpoint built from this crate's service side
//! (`wsman::service`, `psrp::server`): whole conversations and their failures, no sockets, a
//! test clock and a seeded random source.

use base64::Engine as _;
use bmc_winrm::psrp::PipelineState;
use bmc_winrm::psrp::client::{ClientError, Config, CryptoRng, Event, PipelineResult, RngCore, Session, rand_core};
use bmc_winrm::psrp::clixml::{self, Arg, Clixml, Command};
use bmc_winrm::psrp::crypto::{SessionKey, public_key_from_blob};
use bmc_winrm::psrp::fragment::{Defragmenter, Fragmenter};
use bmc_winrm::psrp::message::{Destination, Guid, Message, MessageType};
use bmc_winrm::psrp::server::{self, ErrorSpec, Value};
use bmc_winrm::wsman::service::{self, Action, Request};
use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};
use zeroize::Zeroizing;

/// SplitMix64: deterministic, and enough for tests (the marker trait is a lie kept to tests).
struct TestRng(u64);

impl RngCore for TestRng {
    fn next_u32(&mut self) -> u32 {
        self.next_u64() as u32
    }

    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn fill_bytes(&mut self, dest: &mut [u8]) {
        for chunk in dest.chunks_mut(8) {
            chunk.copy_from_slice(&self.next_u64().to_le_bytes()[..chunk.len()]);
        }
    }

    fn try_fill_bytes(&mut self, dest: &mut [u8]) -> Result<(), rand_core::Error> {
        self.fill_bytes(dest);
        Ok(())
    }
}

impl CryptoRng for TestRng {}

/// How the endpoint misbehaves.
#[derive(Default)]
struct Script {
    /// Pipeline Receives answered with `TimedOut` before any output.
    timeouts: u32,
    /// Create is refused with this fault reason.
    refuse_create: Option<&'static str>,
    /// The pool asks for the public key before reporting Opened (a PowerShell 2 server).
    request_key_on_open: bool,
    /// Pipeline Receives report `Done` without ever sending PIPELINE_STATE.
    done_without_state: bool,
    /// Answers relate to a message id of their own.
    wrong_relates_to: bool,
}

#[derive(Default)]
struct Queue {
    blobs: VecDeque<Vec<u8>>,
    finished: bool,
}

/// The endpoint: one runspace pool, scripted commands.
struct Endpoint {
    script: Script,
    pool: Option<Guid>,
    defragmenter: Defragmenter,
    fragmenter: Fragmenter,
    key: Option<SessionKey>,
    queues: HashMap<Option<Guid>, Queue>,
    /// The decrypted `-BmcPassword` and the `-BmcUser` of the last Set-BmcCredential.
    stored: Option<(String, Option<String>)>,
    /// Every action received, in order.
    actions: Vec<Action>,
}

impl Endpoint {
    fn new(script: Script) -> Endpoint {
        Endpoint {
            script,
            pool: None,
            defragmenter: Defragmenter::default(),
            fragmenter: Fragmenter::new(32 * 1024),
            key: None,
            queues: HashMap::new(),
            stored: None,
            actions: Vec::new(),
        }
    }

    fn emit(&mut self, pipeline: Option<Guid>, kind: MessageType, data: String) {
        let message = Message {
            destination: Destination::Client,
            kind,
            rpid: self.pool.expect("a pool"),
            pid: pipeline.unwrap_or(Guid::NIL),
            data: data.into_bytes(),
        };
        let blob = self.fragmenter.wire(&message);
        self.queues.entry(pipeline).or_default().blobs.push_back(blob);
    }

    fn end(&mut self, pipeline: Guid, state: PipelineState, error: Option<&ErrorSpec<'_>>) {
        if !self.script.done_without_state {
            self.emit(Some(pipeline), MessageType::PIPELINE_STATE, server::pipeline_state(state, error));
        }
        self.queues.entry(Some(pipeline)).or_default().finished = true;
    }

    /// Answers one request envelope: HTTP status and SOAP.
    fn handle(&mut self, soap: &str) -> (u16, String) {
        let request = service::request(soap).expect("a well-formed request");
        self.actions.push(request.action.clone());
        let (status, answer) = self.answer(&request);
        if self.script.wrong_relates_to {
            return (status, answer.replace(&request.message_id, "uuid:00000000-0000-4000-8000-000000000000"));
        }
        (status, answer)
    }

    fn answer(&mut self, request: &Request) -> (u16, String) {
        match request.action {
            Action::Create => {
                if let Some(reason) = self.script.refuse_create {
                    return (500, service::fault(&request.message_id, "w:InvalidResourceURI", 2_150_858_811, reason));
                }
                let pool = request.shell.expect("a ShellId");
                self.pool = Some(pool);
                let kinds: Vec<MessageType> =
                    self.defragmenter.messages(&request.payload).unwrap().iter().map(|m| m.kind).collect();
                assert_eq!(kinds, [MessageType::SESSION_CAPABILITY, MessageType::INIT_RUNSPACEPOOL]);
                self.emit(None, MessageType::SESSION_CAPABILITY, clixml::session_capability());
                if self.script.request_key_on_open {
                    self.emit(None, MessageType::PUBLIC_KEY_REQUEST, "<S></S>".into());
                }
                self.emit(None, MessageType::APPLICATION_PRIVATE_DATA, server::application_private_data());
                let opened = server::runspace_pool_state(bmc_winrm::psrp::RunspaceState::Opened);
                self.emit(None, MessageType::RUNSPACEPOOL_STATE, opened);
                (200, service::created(request, "http://endpoint/wsman", pool))
            }
            Action::Send | Action::Command => {
                for message in self.defragmenter.messages(&request.payload).unwrap() {
                    let data = String::from_utf8(message.data).unwrap();
                    match message.kind {
                        MessageType::PUBLIC_KEY => {
                            let blob = clixml::parse(&data).unwrap().string("PublicKey").unwrap();
                            let blob = base64::engine::general_purpose::STANDARD.decode(blob).unwrap();
                            let key = SessionKey::generate();
                            let wrapped = key.wrap_for(&public_key_from_blob(&blob).unwrap()).unwrap();
                            self.key = Some(key);
                            self.emit(
                                None,
                                MessageType::ENCRYPTED_SESSION_KEY,
                                clixml::encrypted_session_key(&wrapped),
                            );
                        }
                        MessageType::CREATE_PIPELINE => self.run(message.pid, &data),
                        other => panic!("unexpected {other:?}"),
                    }
                }
                match request.action {
                    Action::Command => (200, service::command_started(request, request.command.unwrap())),
                    _ => (200, service::acknowledged(request)),
                }
            }
            Action::Receive => {
                if request.command.is_some() && self.script.timeouts > 0 {
                    self.script.timeouts -= 1;
                    return (500, service::timed_out(request));
                }
                let queue = self.queues.entry(request.command).or_default();
                if queue.blobs.is_empty() && !queue.finished {
                    return (500, service::timed_out(request));
                }
                let blobs: Vec<Vec<u8>> = queue.blobs.drain(..).collect();
                (200, service::received(request, &blobs, queue.finished))
            }
            Action::Signal => {
                self.queues.remove(&request.command);
                (200, service::acknowledged(request))
            }
            Action::Delete => {
                self.pool = None;
                (200, service::acknowledged(request))
            }
            Action::Other(_) => panic!("unexpected action"),
        }
    }

    fn run(&mut self, pipeline: Guid, data: &str) {
        let invocation = server::pipeline(data).unwrap().remove(0);
        let arg = |name: &str| invocation.args.iter().find(|(n, _)| n.as_deref() == Some(name)).map(|(_, v)| v.clone());
        match invocation.name.as_str() {
            "Get-Command" => {
                let Some(Value::Str(name)) = arg("Name") else { panic!("Get-Command without -Name") };
                assert_eq!(arg("Syntax"), Some(Value::Bool(true)));
                let syntax =
                    format!("\r\n{name} [-BmcPassword] <securestring> [[-BmcUser] <string>] [-BypassBMCUpdate]\r\n");
                self.emit(Some(pipeline), MessageType::PIPELINE_OUTPUT, server::output_string(&syntax));
                self.end(pipeline, PipelineState::Completed, None);
            }
            "Set-BmcCredential" => {
                let Some(Value::Secure(sealed)) = arg("BmcPassword") else { panic!("no SecureString") };
                let password = self.key.as_ref().unwrap().decrypt_secure_string(&sealed).unwrap();
                let user = match arg("BmcUser") {
                    Some(Value::Str(user)) => Some(user),
                    _ => None,
                };
                self.stored = Some((password.to_string(), user));
                self.emit(Some(pipeline), MessageType::VERBOSE_RECORD, server::informational("Updating the store"));
                self.emit(Some(pipeline), MessageType::WARNING_RECORD, server::informational("BMCs not updated"));
                self.emit(Some(pipeline), MessageType::PIPELINE_OUTPUT, server::output_string("done"));
                self.end(pipeline, PipelineState::Completed, None);
            }
            "Write-Error" => {
                let spec = spec("written, not thrown", "WriteError");
                self.emit(Some(pipeline), MessageType::ERROR_RECORD, server::error_record(&spec));
                self.end(pipeline, PipelineState::Completed, None);
            }
            name => {
                let message = format!("The term '{name}' is not recognized as the name of a cmdlet");
                self.end(pipeline, PipelineState::Failed, Some(&spec(&message, "CommandNotFoundException")));
            }
        }
    }
}

fn spec<'a>(message: &'a str, error_id: &'a str) -> ErrorSpec<'a> {
    ErrorSpec {
        message,
        error_id,
        category: 13,
        reason: error_id,
        target: "",
        exception_type: "System.Management.Automation.RuntimeException",
    }
}

/// The client, the endpoint and a test clock that moves a second per exchange.
struct Pair {
    client: Session<TestRng>,
    endpoint: Endpoint,
    now: Instant,
    operations: Vec<&'static str>,
}

impl Pair {
    fn new(script: Script) -> Pair {
        let config = Config::privileged_endpoint("http://endpoint:5985/wsman", Duration::from_secs(20));
        Pair {
            client: Session::new(config, TestRng(7)),
            endpoint: Endpoint::new(script),
            now: Instant::now(),
            operations: Vec::new(),
        }
    }

    /// Exchanges until the client has nothing to send; returns the events.
    fn drive(&mut self) -> Result<Vec<Event>, ClientError> {
        let mut events = Vec::new();
        let result = loop {
            let request = match self.client.poll_request(self.now) {
                Ok(Some(request)) => request,
                Ok(None) => break Ok(()),
                Err(error) => break Err(error),
            };
            self.operations.push(request.operation);
            let (status, soap) = self.endpoint.handle(&request.soap);
            self.now += Duration::from_secs(1);
            if let Err(error) = self.client.handle_answer(self.now, status, &soap) {
                break Err(error);
            }
            events.extend(std::iter::from_fn(|| self.client.poll_event()));
        };
        // Finishing a phase is noticed when asked for the next request.
        events.extend(std::iter::from_fn(|| self.client.poll_event()));
        result.map(|()| events)
    }

    fn open(&mut self) {
        assert_eq!(self.drive().unwrap(), [Event::Opened]);
        self.client.exchange_keys().unwrap();
        assert_eq!(self.drive().unwrap(), [Event::KeyExchanged]);
    }

    fn invoke(&mut self, command: &Command, deadline: Instant) -> Result<(PipelineResult, Vec<Event>), ClientError> {
        self.client.invoke(command, self.now, deadline)?;
        let mut events = self.drive()?;
        let Some(Event::Finished(result)) = events.pop() else { panic!("no Finished event last in {events:?}") };
        Ok((result, events))
    }

    fn far(&self) -> Instant {
        self.now + Duration::from_secs(3600)
    }
}

fn command(name: &str, args: Vec<(&str, Arg)>) -> Command {
    Command { name: name.into(), args: args.into_iter().map(|(n, a)| (n.to_owned(), a)).collect() }
}

fn set_bmc_credential(password: &str) -> Command {
    command(
        "Set-BmcCredential",
        vec![
            ("BmcPassword", Arg::Secure(Zeroizing::new(password.into()))),
            ("BmcUser", Arg::Str("bmcadmin".into())),
            ("BypassBMCUpdate", Arg::Bool(true)),
        ],
    )
}

#[test]
fn a_whole_conversation_opens_exchanges_keys_runs_two_pipelines_and_closes() {
    let mut pair = Pair::new(Script::default());
    pair.open();
    assert!(pair.client.has_session_key());
    assert_eq!(pair.operations, ["Create", "Receive", "Send", "Receive"]);

    let get_command =
        command("Get-Command", vec![("Name", Arg::Str("Set-BmcCredential".into())), ("Syntax", Arg::Bool(true))]);
    let (result, events) = pair.invoke(&get_command, pair.far()).unwrap();
    assert!(result.succeeded(), "{result:?}");
    assert!(result.output.join("\n").contains("[[-BmcUser] <string>]"), "{result:?}");
    assert_eq!(
        events,
        [Event::PipelineMessage(MessageType::PIPELINE_OUTPUT), Event::PipelineMessage(MessageType::PIPELINE_STATE)]
    );

    let (result, events) = pair.invoke(&set_bmc_credential("N3w-Bmc-Pass!"), pair.far()).unwrap();
    assert!(result.succeeded(), "{result:?}");
    assert_eq!(result.state, PipelineState::Completed);
    assert_eq!(pair.endpoint.stored, Some(("N3w-Bmc-Pass!".into(), Some("bmcadmin".into()))));
    assert_eq!(
        (result.output, result.verbose, result.warnings.clone()),
        (vec!["done".to_owned()], vec!["Updating the store".to_owned()], vec!["BMCs not updated".to_owned()])
    );
    let visible: Vec<&Event> = events.iter().filter(|e| !matches!(e, Event::PipelineMessage(_))).collect();
    assert_eq!(visible, [&Event::Record("Updating the store".into()), &Event::Warning("BMCs not updated".into())]);

    pair.client.close();
    assert_eq!(pair.drive().unwrap(), [Event::Closed]);
    assert!(pair.client.is_idle());
    assert_eq!(
        pair.operations[4..],
        ["Command", "Receive", "Signal", "Command", "Receive", "Signal", "Delete"],
        "each pipeline is signalled once it ended"
    );
    assert_eq!(pair.endpoint.pool, None, "the shell was deleted");
    assert_eq!(pair.endpoint.actions.len(), pair.operations.len(), "every request reached the endpoint");
}

#[test]
fn a_pipeline_that_fails_or_writes_an_error_record_does_not_succeed() {
    let mut pair = Pair::new(Script::default());
    pair.open();
    let (result, _) = pair.invoke(&command("Invoke-Expression", vec![]), pair.far()).unwrap();
    assert_eq!(result.state, PipelineState::Failed);
    assert!(!result.succeeded());
    let failure = result.failure.clone().unwrap();
    assert_eq!(failure.error_id, "CommandNotFoundException");
    assert!(result.error_texts()[0].contains("'Invoke-Expression' is not recognized"), "{result:?}");

    let (result, _) = pair.invoke(&command("Write-Error", vec![]), pair.far()).unwrap();
    assert_eq!(result.state, PipelineState::Completed);
    assert!(!result.succeeded(), "an error record fails a completed pipeline");
    assert_eq!(result.error_texts(), ["written, not thrown (WriteError)"]);
    let stopped = PipelineResult { state: PipelineState::Stopped, ..PipelineResult::default() };
    assert_eq!(stopped.error_texts(), ["the pipeline ended in state 3 without an error record"]);
}

#[test]
fn timed_out_receives_report_waiting_until_the_deadline_stops_the_pipeline() {
    let mut pair = Pair::new(Script { timeouts: 3, ..Script::default() });
    pair.open();
    let started = pair.now;
    let (result, events) = pair.invoke(&set_bmc_credential("Pw-1"), pair.far()).unwrap();
    assert!(result.succeeded());
    let waits: Vec<Duration> =
        events.iter().filter_map(|e| if let Event::Waiting(d) = e { Some(*d) } else { None }).collect();
    // The Command took a second, then each TimedOut Receive another.
    assert_eq!(waits, [2, 3, 4].map(Duration::from_secs));
    assert!(pair.now > started);

    pair.endpoint.script.timeouts = 100;
    let deadline = pair.now + Duration::from_secs(5);
    let error = pair.invoke(&set_bmc_credential("Pw-2"), deadline).unwrap_err();
    assert_eq!(error, ClientError::DeadlineExceeded { during: "Set-BmcCredential was running".into() });
    assert!(pair.now >= deadline);
    assert!(pair.client.exchange_keys().is_err(), "a failed session only closes");
    pair.client.close();
    assert_eq!(pair.drive().unwrap(), [Event::Closed]);
    assert_eq!(pair.operations.last(), Some(&"Delete"));
}

#[test]
fn a_secure_string_without_a_session_key_is_refused_before_anything_is_sent() {
    let mut pair = Pair::new(Script::default());
    assert_eq!(pair.drive().unwrap(), [Event::Opened]);
    let sent = pair.operations.len();
    let error = pair.client.invoke(&set_bmc_credential("Pw-1"), pair.now, pair.far()).unwrap_err();
    assert!(matches!(&error, ClientError::Command(m) if m.contains("no session key")), "{error:?}");
    assert_eq!(pair.client.poll_request(pair.now).unwrap().map(|r| r.operation), None);
    assert_eq!(pair.operations.len(), sent);
    pair.client.exchange_keys().unwrap();
    pair.drive().unwrap();
    assert!(pair.invoke(&set_bmc_credential("Pw-1"), pair.far()).unwrap().0.succeeded(), "the session goes on");
}

#[test]
fn a_public_key_request_is_answered_before_the_rest_of_its_batch() {
    let mut pair = Pair::new(Script { request_key_on_open: true, ..Script::default() });
    assert_eq!(pair.drive().unwrap(), [Event::Opened]);
    assert_eq!(pair.operations, ["Create", "Receive", "Send"]);
    pair.client.exchange_keys().unwrap();
    assert_eq!(pair.drive().unwrap(), [Event::KeyExchanged]);
    assert!(pair.invoke(&set_bmc_credential("Pw-1"), pair.far()).unwrap().0.succeeded());
    assert_eq!(pair.endpoint.stored.unwrap().0, "Pw-1", "both sides hold the same key");
}

#[test]
fn refusals_and_broken_answers_end_the_session() {
    let mut pair =
        Pair::new(Script { refuse_create: Some("Cannot find the session configuration"), ..Script::default() });
    assert_eq!(pair.drive().unwrap_err(), ClientError::PoolRefused("Cannot find the session configuration".into()));
    assert_eq!(pair.client.poll_request(pair.now).unwrap().map(|r| r.operation), None);

    let mut pair = Pair::new(Script { wrong_relates_to: true, ..Script::default() });
    let error = pair.drive().unwrap_err();
    assert!(
        matches!(&error, ClientError::Protocol(m) if m.starts_with("opening the session: answer relates to")),
        "{error:?}"
    );

    let mut pair = Pair::new(Script { done_without_state: true, ..Script::default() });
    pair.open();
    let error = pair
        .invoke(&command("Get-Command", vec![("Name", Arg::Str("x".into())), ("Syntax", Arg::Bool(true))]), pair.far());
    assert_eq!(
        error.unwrap_err(),
        ClientError::Protocol("Get-Command was running: the command ended without a pipeline state".into())
    );

    let mut pair = Pair::new(Script::default());
    pair.client.poll_request(pair.now).unwrap().unwrap();
    let error = pair.client.handle_answer(pair.now, 500, " ").unwrap_err();
    assert_eq!(error, ClientError::Protocol("opening the session: HTTP 500 without a SOAP answer".into()));

    let mut pair = Pair::new(Script::default());
    pair.open();
    pair.client.invoke(&command("Anything", vec![]), pair.now, pair.far()).unwrap();
    let start = pair.client.poll_request(pair.now).unwrap().unwrap();
    assert!(pair.client.poll_request(pair.now).unwrap().is_none(), "one request at a time");
    let (status, soap) = pair.endpoint.handle(&start.soap);
    pair.client.handle_answer(pair.now, status, &soap).unwrap();
    let receive = pair.client.poll_request(pair.now).unwrap().unwrap();
    assert_eq!(receive.operation, "Receive");
    let fault = service::fault("uuid:x", "w:InvalidSelectors", 2_150_858_843, "The pipeline is not running.");
    assert_eq!(
        pair.client.handle_answer(pair.now, 500, &fault).unwrap_err(),
        ClientError::Protocol("Anything was running: The pipeline is not running.".into())
    );
}

#[test]
fn signal_and_delete_are_best_effort_and_nothing_else_is() {
    let mut pair = Pair::new(Script::default());
    pair.open();
    pair.client.invoke(&command("Write-Error", vec![]), pair.now, pair.far()).unwrap();
    for expected in ["Command", "Receive"] {
        let request = pair.client.poll_request(pair.now).unwrap().unwrap();
        assert_eq!((request.operation, request.best_effort), (expected, false));
        let (status, soap) = pair.endpoint.handle(&request.soap);
        pair.client.handle_answer(pair.now, status, &soap).unwrap();
    }
    let signal = pair.client.poll_request(pair.now).unwrap().unwrap();
    assert_eq!(
        (signal.operation, signal.best_effort, signal.during.as_str()),
        ("Signal", true, "closing the pipeline")
    );
    pair.client.handle_no_answer();
    let events: Vec<Event> = std::iter::from_fn(|| pair.client.poll_event()).collect();
    assert!(matches!(events.last(), Some(Event::Finished(r)) if r.errors.len() == 1), "{events:?}");

    pair.client.invoke(&command("Get-Command", vec![]), pair.now, pair.far()).unwrap();
    let request = pair.client.poll_request(pair.now).unwrap().unwrap();
    assert_eq!(request.during, "Get-Command was running");
    pair.client.handle_no_answer();
    assert!(pair.client.poll_request(pair.now).unwrap().is_none(), "a lost Command ends the session");
    pair.client.close();
    let delete = pair.client.poll_request(pair.now).unwrap().unwrap();
    assert_eq!((delete.operation, delete.best_effort), ("Delete", true));
    pair.client.handle_answer(pair.now, 500, "").unwrap();
    assert_eq!(pair.client.poll_event(), Some(Event::Closed));
}

#[test]
fn the_same_seed_gives_the_same_envelopes() {
    let config = Config::privileged_endpoint("http://endpoint:5985/wsman", Duration::from_secs(20));
    let now = Instant::now();
    let first = |seed| Session::new(config.clone(), TestRng(seed)).poll_request(now).unwrap().unwrap().soap;
    assert_eq!(first(1), first(1));
    assert_ne!(first(1), first(2));
    let session = Session::new(config.clone(), TestRng(1));
    let request = service::request(&first(1)).unwrap();
    assert_eq!(request.shell, Some(session.pool()));
    assert!(!request.payload.is_empty());
}

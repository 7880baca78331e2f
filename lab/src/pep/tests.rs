//! The simulator's WS-Man + PSRP + JEA behaviour, driven at the SOAP level (no sockets, no
//! NTLM): what a client that breaks the PEP's rules gets back.

use super::shell::{Outcome, process};
use super::*;
use base64::Engine as _;
use bmc_winrm::psrp::clixml::{self, Arg, Command};
use bmc_winrm::psrp::crypto::ClientKey;
use bmc_winrm::psrp::fragment::{Defragmenter, Fragmenter};
use bmc_winrm::psrp::message::{Destination, Guid, Message, MessageType};
use bmc_winrm::wsman::{self, Endpoint, Operation};

const USER: &str = r"AZURESTACK\CloudAdmin";

struct Client {
    shared: Arc<Shared>,
    endpoint: Endpoint,
    pool: Guid,
    fragmenter: Fragmenter,
    defragmenter: Defragmenter,
    key: Option<bmc_winrm::psrp::crypto::SessionKey>,
}

fn shared(persona: PepPersona) -> Arc<Shared> {
    Arc::new(Shared {
        config: PepConfig { persona, ..PepConfig::default() },
        faults: Mutex::default(),
        records: Mutex::default(),
        shells: Mutex::default(),
    })
}

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

impl Client {
    fn new(shared: Arc<Shared>, resource_uri: &str) -> Client {
        Client {
            shared,
            endpoint: Endpoint {
                url: "http://127.0.0.1:5985/wsman".into(),
                resource_uri: resource_uri.into(),
                session_id: Guid::random(),
                max_envelope: 153_600,
                operation_timeout: Duration::from_secs(1),
            },
            pool: Guid::random(),
            fragmenter: Fragmenter::new(32 * 1024),
            defragmenter: Defragmenter::default(),
            key: None,
        }
    }

    async fn call(&self, op: Operation<'_>) -> (u16, String) {
        let (_, soap) = wsman::envelope(&self.endpoint, &op);
        match process(&soap, 0, USER, &self.shared).await {
            Outcome::Answer(status, answer) => (status, answer),
            Outcome::Cut => panic!("connection cut"),
        }
    }

    fn fragments(&mut self, kind: MessageType, pid: Guid, data: String) -> String {
        let message = Message { destination: Destination::Server, kind, rpid: self.pool, pid, data: data.into_bytes() };
        b64(&self.fragmenter.wire(&message))
    }

    /// Receives until a message of `until` arrives; returns every message seen.
    async fn receive(&mut self, command: Option<Guid>, until: MessageType) -> Vec<Message> {
        let mut seen = Vec::new();
        for _ in 0..20 {
            let (status, answer) = self.call(Operation::Receive { shell: self.pool, command }).await;
            assert!(status == 200 || status == 500, "{answer}");
            let Ok(root) = wsman::answer(&answer).unwrap() else { continue };
            let received = wsman::received(&root).unwrap();
            seen.extend(self.defragmenter.messages(&received.stdout).unwrap());
            if seen.iter().any(|m| m.kind == until) {
                return seen;
            }
        }
        panic!("no {until:?} in {seen:?}");
    }

    async fn open(&mut self) -> (u16, String) {
        let mut creation = self.fragments(MessageType::SESSION_CAPABILITY, Guid::NIL, clixml::session_capability());
        let init = self.fragments(MessageType::INIT_RUNSPACEPOOL, Guid::NIL, clixml::init_runspace_pool());
        let bytes = [
            base64::engine::general_purpose::STANDARD.decode(&creation).unwrap(),
            base64::engine::general_purpose::STANDARD.decode(&init).unwrap(),
        ]
        .concat();
        creation = b64(&bytes);
        let answer = self.call(Operation::Create { shell: self.pool, creation_xml: &creation }).await;
        if answer.0 == 200 {
            self.receive(None, MessageType::RUNSPACEPOOL_STATE).await;
        }
        answer
    }

    async fn exchange_keys(&mut self) {
        let client = ClientKey::generate().unwrap();
        let stream = self.fragments(MessageType::PUBLIC_KEY, Guid::NIL, clixml::public_key(&client.public_key_blob()));
        assert_eq!(self.call(Operation::Send { shell: self.pool, command: None, stream: &stream }).await.0, 200);
        let messages = self.receive(None, MessageType::ENCRYPTED_SESSION_KEY).await;
        let data = String::from_utf8(messages.last().unwrap().data.clone()).unwrap();
        let blob = clixml::Clixml::string(&clixml::parse(&data).unwrap(), "EncryptedSessionKey").unwrap();
        let blob = base64::engine::general_purpose::STANDARD.decode(blob).unwrap();
        self.key = Some(client.decrypt_session_key(&blob).unwrap());
    }

    /// Runs a pipeline (CLIXML as given) and returns its final state and error text.
    async fn run_raw(&mut self, pipeline_xml: String) -> (i32, String) {
        let pipeline = Guid::random();
        let arguments = self.fragments(MessageType::CREATE_PIPELINE, pipeline, pipeline_xml);
        let (status, answer) =
            self.call(Operation::Command { shell: self.pool, command: pipeline, arguments: &arguments }).await;
        assert_eq!(status, 200, "{answer}");
        let messages = self.receive(Some(pipeline), MessageType::PIPELINE_STATE).await;
        let mut errors = Vec::new();
        let mut state = 0;
        for m in messages {
            let data = String::from_utf8(m.data).unwrap();
            match m.kind {
                MessageType::ERROR_RECORD => errors.push(server::decode_error(&data).unwrap().to_string()),
                MessageType::PIPELINE_STATE => {
                    let (s, error) = clixml::state(&data, "PipelineState").unwrap();
                    state = s;
                    errors.extend(error.map(|e| e.to_string()));
                }
                _ => {}
            }
        }
        (state, errors.join("; "))
    }

    async fn run(&mut self, name: &str, args: Vec<(String, Arg)>) -> (i32, String) {
        let xml = clixml::create_pipeline(&Command { name: name.into(), args }, self.key.as_ref()).unwrap();
        self.run_raw(xml).await
    }
}

use bmc_winrm::psrp::server;
use zeroize::Zeroizing;

fn secure(text: &str) -> Arg {
    Arg::Secure(Zeroizing::new(text.into()))
}

#[tokio::test]
async fn script_text_and_hidden_commands_are_refused_like_jea_nolanguage() {
    let mut client = Client::new(shared(PepPersona::Current), bmc_winrm::wsman::PRIVILEGED_ENDPOINT);
    assert_eq!(client.open().await.0, 200);
    let xml = clixml::create_pipeline(&Command { name: "Get-Process; whoami".into(), args: vec![] }, None).unwrap();
    let (state, error) =
        client.run_raw(xml.replace(r#"<B N="IsScript">false</B>"#, r#"<B N="IsScript">true</B>"#)).await;
    assert_eq!(state, 5);
    assert!(error.contains("no-language mode") && error.contains("ScriptsNotAllowed"), "{error}");

    let (state, error) = client.run("Invoke-Expression", vec![("Command".into(), Arg::Str("whoami".into()))]).await;
    assert_eq!(state, 5);
    assert!(
        error.contains("'Invoke-Expression' is not recognized") && error.contains("CommandNotFoundException"),
        "{error}"
    );

    let (state, error) = client.run("Set-BmcPassword", vec![("BmcPassword".into(), Arg::Str("x".into()))]).await;
    assert!(state == 5 && error.contains("not recognized"), "a current stamp has no Set-BmcPassword: {error}");
}

#[tokio::test]
async fn set_bmc_credential_enforces_types_lengths_and_the_key_exchange() {
    let shared = shared(PepPersona::Current);
    let mut client = Client::new(shared.clone(), bmc_winrm::wsman::PRIVILEGED_ENDPOINT);
    client.open().await;

    // A SecureString before the key exchange: encrypt with a key the server never saw.
    client.key = Some(bmc_winrm::psrp::crypto::SessionKey::generate());
    let (state, error) = client.run("Set-BmcCredential", vec![("BmcPassword".into(), secure("Early-Pw-1"))]).await;
    assert!(state == 5 && error.contains("before the session key exchange"), "{error}");

    client.exchange_keys().await;
    let (state, error) =
        client.run("Set-BmcCredential", vec![("BmcPassword".into(), Arg::Str("Plain-Pw-1".into()))]).await;
    // PowerShell's binder echoes the value it could not convert: why a client must never send one.
    assert_eq!(state, 5);
    assert!(
        error.contains(
            "Cannot process argument transformation on parameter 'BmcPassword'. Cannot convert the \"Plain-Pw-1\" \
             value of type \"System.String\" to type \"System.Security.SecureString\"."
        ) && error.contains("ParameterArgumentTransformationError,Set-BmcCredential"),
        "{error}"
    );
    let received = shared.records.lock().unwrap().received.clone();
    assert!(received.iter().any(|l| l == "PS> Set-BmcCredential -BmcPassword 'Plain-Pw-1'"), "{received:?}");
    let (state, error) =
        client.run("Set-BmcCredential", vec![("BmcPassword".into(), secure("Seventeen-Chars-1"))]).await;
    assert!(state == 5 && error.contains("at most 16"), "{error}");
    let long_user =
        vec![("BmcPassword".into(), secure("Ok-Pw-1")), ("BmcUser".into(), Arg::Str("a-seventeen-chars".into()))];
    let (state, error) = client.run("Set-BmcCredential", long_user).await;
    assert!(state == 5 && error.contains("user name has 17"), "{error}");
    let (state, error) = client.run("Set-BmcCredential", vec![("BmcPasword".into(), secure("Ok-Pw-1"))]).await;
    assert!(state == 5 && error.contains("'BmcPasword'"), "{error}");
    let (state, error) = client.run("Set-BmcCredential", vec![("BmcUser".into(), Arg::Str("u".into()))]).await;
    assert!(state == 5 && error.contains("missing mandatory parameters: BmcPassword"), "{error}");
    assert!(shared.records.lock().unwrap().stored.is_none(), "nothing was stored by a refused call");

    let (state, error) =
        client.run("Set-BmcCredential", vec![("BmcPassword".into(), secure("Good-Pw-16chars!"))]).await;
    assert_eq!((state, error.as_str()), (4, ""));
    let stored = shared.records.lock().unwrap().stored.clone().unwrap();
    assert_eq!((stored.password.as_str(), stored.user, stored.bypass_bmc_update), ("Good-Pw-16chars!", None, false));
}

#[tokio::test]
async fn only_the_privileged_endpoint_configuration_exists() {
    let mut client =
        Client::new(shared(PepPersona::Current), "http://schemas.microsoft.com/powershell/Microsoft.PowerShell");
    let (status, answer) = client.open().await;
    assert_eq!(status, 500);
    let fault = wsman::answer(&answer).unwrap().unwrap_err();
    assert!(fault.reason.contains("Cannot find the Microsoft.PowerShell session configuration"), "{fault:?}");
    assert!(fault.reason.contains("AzS-ERCS01"), "{fault:?}");
}

#[tokio::test]
async fn a_pre_1907_stamp_offers_set_bmc_password_only() {
    let shared = shared(PepPersona::Pre1907);
    let mut client = Client::new(shared.clone(), bmc_winrm::wsman::PRIVILEGED_ENDPOINT);
    client.open().await;
    client.exchange_keys().await;
    let (state, error) = client.run("Set-BmcCredential", vec![("BmcPassword".into(), secure("Pw-1"))]).await;
    assert!(state == 5 && error.contains("not recognized"), "{error}");
    let with_user = vec![("BmcPassword".into(), secure("Pw-1")), ("BmcUser".into(), Arg::Str("u".into()))];
    let (state, error) = client.run("Set-BmcPassword", with_user).await;
    assert!(state == 5 && error.contains("'BmcUser'"), "Set-BmcPassword has no -BmcUser: {error}");
    assert_eq!(client.run("Set-BmcPassword", vec![("BmcPassword".into(), secure("Pw-1"))]).await.0, 4);
    assert_eq!(shared.records.lock().unwrap().stored.as_ref().unwrap().cmdlet, "Set-BmcPassword");
}

#[tokio::test]
async fn close_privileged_endpoint_ends_the_runspace_pool() {
    let shared = shared(PepPersona::Current);
    let mut client = Client::new(shared.clone(), bmc_winrm::wsman::PRIVILEGED_ENDPOINT);
    client.open().await;
    client.exchange_keys().await;
    let credential = Arg::Credential { user: r"HLH\ops".into(), password: Zeroizing::new("Share-Pw-9".into()) };
    let args =
        vec![("TranscriptsPathDestination".into(), Arg::Str(r"\\hlh\t".into())), ("Credential".into(), credential)];
    let (state, error) = client.run("Close-PrivilegedEndpoint", args).await;
    assert_eq!((state, error.as_str()), (4, ""));
    assert!(shared.shells.lock().unwrap().is_empty(), "the pool ended with the cmdlet's answer");

    // Anything further on the pool faults as for a shell that no longer exists.
    let pipeline = Guid::random();
    let xml = clixml::create_pipeline(&Command { name: "Get-Command".into(), args: vec![] }, None).unwrap();
    let arguments = client.fragments(MessageType::CREATE_PIPELINE, pipeline, xml);
    let pool = client.pool;
    for op in [
        Operation::Command { shell: pool, command: pipeline, arguments: &arguments },
        Operation::Receive { shell: pool, command: None },
        Operation::Signal { shell: pool, command: pipeline, code: wsman::SIGNAL_TERMINATE },
        Operation::Delete { shell: pool },
    ] {
        let (status, answer) = client.call(op).await;
        let fault = wsman::answer(&answer).unwrap().unwrap_err();
        assert_eq!(status, 500);
        assert!(fault.reason.contains("shell was not found"), "{fault:?}");
    }
    assert_eq!(shared.records.lock().unwrap().transferred, [(r"\\hlh\t".to_owned(), r"HLH\ops".to_owned())]);
}

//! bmc-rotate's own PSRP client (`psrp::client::Session`) against the simulator, at the SOAP
//! level (no sockets, no NTLM): the runspace pools one process opens share one RSA key pair.

use super::shell::{Outcome, process};
use super::*;
use base64::Engine as _;
use bmc_winrm::psrp::client::{Config, Event, OsRng, Session};
use bmc_winrm::psrp::clixml::{self, Arg, Clixml, Command};
use bmc_winrm::psrp::fragment::Defragmenter;
use bmc_winrm::psrp::message::MessageType;
use bmc_winrm::wsman::service;
use std::time::Instant;

const USER: &str = r"AZURESTACK\CloudAdmin";

/// What one stretch of a conversation produced.
#[derive(Default)]
struct Drive {
    events: Vec<Event>,
    /// The PUBLICKEYBLOB of every PUBLIC_KEY message the client sent.
    public_keys: Vec<Vec<u8>>,
}

/// Sends every request `session` has to the simulator and feeds it the answers, until it waits
/// for nothing.
async fn drive(session: &mut Session<OsRng>, shared: &Arc<Shared>) -> Drive {
    let mut seen = Drive::default();
    while let Some(request) = session.poll_request(Instant::now()).unwrap() {
        if request.operation == "Send" {
            let payload = service::request(&request.soap).unwrap().payload;
            for message in Defragmenter::default().messages(&payload).unwrap() {
                if message.kind == MessageType::PUBLIC_KEY {
                    let root = clixml::parse(&String::from_utf8(message.data).unwrap()).unwrap();
                    let blob = root.string("PublicKey").unwrap();
                    seen.public_keys.push(base64::engine::general_purpose::STANDARD.decode(blob).unwrap());
                }
            }
        }
        let Outcome::Answer(status, answer) = process(&request.soap, 0, USER, shared).await else {
            panic!("the simulator cut the connection during {}", request.during);
        };
        session.handle_answer(Instant::now(), status, &answer).unwrap();
    }
    seen.events.extend(std::iter::from_fn(|| session.poll_event()));
    seen
}

#[tokio::test]
async fn two_pools_of_one_process_send_one_public_key_and_each_decrypts_its_secure_string() {
    let shared = Arc::new(Shared {
        config: PepConfig::default(),
        faults: Mutex::default(),
        records: Mutex::default(),
        shells: Mutex::default(),
    });
    let mut public_keys = Vec::new();
    for password in ["First-Pool-Pw-1", "Second-Pool-Pw2"] {
        let config = Config::privileged_endpoint("http://127.0.0.1:5985/wsman", Duration::from_secs(1));
        let mut session = Session::new(config, OsRng);
        assert_eq!(drive(&mut session, &shared).await.events, [Event::Opened]);

        session.exchange_keys().unwrap();
        let exchange = drive(&mut session, &shared).await;
        assert_eq!(exchange.events, [Event::KeyExchanged]);
        assert_eq!(exchange.public_keys.len(), 1, "one PUBLIC_KEY per pool");
        public_keys.extend(exchange.public_keys);

        let secret = Arg::Secure(Zeroizing::new(password.into()));
        let command = Command { name: "Set-BmcCredential".into(), args: vec![("BmcPassword".into(), secret)] };
        let now = Instant::now();
        session.invoke(&command, now, now + Duration::from_secs(30)).unwrap();
        let events = drive(&mut session, &shared).await.events;
        let Some(Event::Finished(result)) = events.last() else { panic!("the pipeline did not finish: {events:?}") };
        assert!(result.succeeded(), "{:?}", result.error_texts());
        let stored = shared.records.lock().unwrap().stored.clone().unwrap();
        assert_eq!(stored.password.as_str(), password, "the PEP decrypted this pool's SecureString");

        session.close();
        assert_eq!(drive(&mut session, &shared).await.events, [Event::Closed]);
    }
    assert_eq!(public_keys[0].len(), 276);
    assert_eq!(public_keys[0], public_keys[1], "the second pool reused the first pool's key pair");
    assert_eq!(shared.records.lock().unwrap().store_count, 2);
}

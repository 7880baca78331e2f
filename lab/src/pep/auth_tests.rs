//! The listener's HTTP layer over a real loopback socket: NTLM inside SPNEGO as Windows and
//! pyspnego send it (mechListMIC and the RC4 reset after it), and the refusal of unsealed SOAP.

use super::{PepConfig, PepSimulator};
use base64::Engine as _;
use bmc_winrm::ntlm::{self, Sealer};
use bmc_winrm::psrp::message::Guid;
use bmc_winrm::sealing;
use bmc_winrm::spnego::{self, NTLM_OID, NegState, NegTokenInit, NegTokenResp, Token};
use bmc_winrm::wsman::{self, Endpoint, Operation};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::{self, SendRequest};
use hyper_util::rt::TokioIo;
use std::time::Duration;
use zeroize::Zeroizing;

/// `1.2.840.113554.1.2.2`, Kerberos: offered first by a domain-joined Windows client.
const KERBEROS_OID: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x12, 0x01, 0x02, 0x02];

struct Answer {
    status: u16,
    /// The token in `WWW-Authenticate: Negotiate <token>`, if any.
    token: Option<Vec<u8>>,
    content_type: String,
    body: Vec<u8>,
}

struct Conn {
    sender: SendRequest<Full<Bytes>>,
    url: String,
}

impl Conn {
    async fn open(sim: &PepSimulator) -> Conn {
        let addr = sim.addrs()[0];
        let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
        let (sender, driver) = http1::handshake(TokioIo::new(tcp)).await.unwrap();
        tokio::spawn(driver);
        Conn { sender, url: format!("http://{addr}/wsman") }
    }

    async fn post(&mut self, authorization: Option<&[u8]>, content_type: &str, body: Vec<u8>) -> Answer {
        let mut request = hyper::Request::post(&self.url).header(hyper::header::HOST, "ercs01");
        if let Some(token) = authorization {
            let value = format!("Negotiate {}", base64::engine::general_purpose::STANDARD.encode(token));
            request = request.header(hyper::header::AUTHORIZATION, value);
        }
        if !content_type.is_empty() {
            request = request.header(hyper::header::CONTENT_TYPE, content_type);
        }
        let response = self.sender.send_request(request.body(Full::new(Bytes::from(body))).unwrap()).await.unwrap();
        let header = |name| response.headers().get(name).and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
        let token = header(hyper::header::WWW_AUTHENTICATE)
            .strip_prefix("Negotiate ")
            .map(|t| base64::engine::general_purpose::STANDARD.decode(t).unwrap());
        let (status, content_type) = (response.status().as_u16(), header(hyper::header::CONTENT_TYPE));
        let body = response.into_body().collect().await.unwrap().to_bytes().to_vec();
        Answer { status, token, content_type, body }
    }

    /// A sealed Receive on a shell that does not exist: its fault comes back sealed.
    async fn sealed_request(&mut self, sealer: &mut Sealer) -> Answer {
        let endpoint = Endpoint {
            url: self.url.clone(),
            resource_uri: wsman::PRIVILEGED_ENDPOINT.into(),
            session_id: Guid::random(),
            max_envelope: 153_600,
            operation_timeout: Duration::from_secs(1),
        };
        let (_, soap) = wsman::envelope(&endpoint, &Operation::Receive { shell: Guid::random(), command: None });
        self.post(None, sealing::CONTENT_TYPE, sealing::seal(sealer, soap.as_bytes())).await
    }
}

fn client() -> ntlm::Client {
    ntlm::Client::new("CloudAdmin", "AZURESTACK", Zeroizing::new(PepConfig::default().password.to_string()), "JUMP")
}

fn resp(token: &[u8]) -> NegTokenResp {
    match spnego::parse(token).unwrap() {
        Token::Resp(resp) => resp,
        Token::Init(init) => panic!("a NegTokenInit from the server: {init:?}"),
    }
}

fn mech_list_der(mechs: &[&[u8]]) -> Vec<u8> {
    match spnego::parse(&NegTokenInit::encode(mechs, None)).unwrap() {
        Token::Init(init) => init.mech_types_der,
        Token::Resp(_) => unreachable!(),
    }
}

/// Runs SPNEGO up to the AUTHENTICATE: returns the client's AUTHENTICATE and sealer.
async fn challenge(conn: &mut Conn) -> (Vec<u8>, Sealer) {
    let mut ntlm = client();
    let answer = conn.post(Some(&NegTokenInit::encode(&[NTLM_OID], Some(&ntlm.negotiate()))), "", Vec::new()).await;
    assert_eq!(answer.status, 401);
    let first = resp(&answer.token.expect("a NegTokenResp"));
    assert_eq!(first.neg_state, Some(NegState::AcceptIncomplete));
    assert_eq!(first.supported_mech.as_deref(), Some(NTLM_OID));
    ntlm.authenticate(&first.response_token.expect("the CHALLENGE")).unwrap()
}

async fn final_leg(conn: &mut Conn, authenticate: Vec<u8>, mic: Option<[u8; 16]>) -> Answer {
    let token = NegTokenResp {
        response_token: Some(authenticate),
        mech_list_mic: mic.map(|m| m.to_vec()),
        ..NegTokenResp::default()
    };
    conn.post(Some(&token.encode()), "", Vec::new()).await
}

fn fault_text(sealer: &mut Sealer, answer: &Answer) -> String {
    assert!(answer.content_type.starts_with("multipart/encrypted"), "{}", answer.content_type);
    String::from_utf8(sealing::unseal(sealer, &answer.body).unwrap().to_vec()).unwrap()
}

#[tokio::test]
async fn spnego_wrapped_ntlm_authenticates_with_mech_list_mics_both_ways() {
    let sim = PepSimulator::start(PepConfig { endpoints: 1, ..PepConfig::default() }).await.unwrap();
    let mut conn = Conn::open(&sim).await;
    let (authenticate, mut sealer) = challenge(&mut conn).await;
    let list = mech_list_der(&[NTLM_OID]);
    let mic = sealer.sign(&list);
    sealer.reset_outgoing();
    let answer = final_leg(&mut conn, authenticate, Some(mic)).await;
    assert_eq!(answer.status, 200);
    let done = resp(&answer.token.expect("the final NegTokenResp"));
    assert_eq!(done.neg_state, Some(NegState::AcceptCompleted));
    sealer.verify(&list, &done.mech_list_mic.expect("the server's mechListMIC")).unwrap();
    sealer.reset_incoming();

    let answer = conn.sealed_request(&mut sealer).await;
    assert_eq!(answer.status, 500);
    assert!(fault_text(&mut sealer, &answer).contains("shell was not found"), "sealed both ways after the reset");
    assert!(sim.log().iter().any(|e| e.action == "auth" && e.status == 200 && e.detail == r"AZURESTACK\CloudAdmin"));
}

#[tokio::test]
async fn a_missing_or_wrong_mech_list_mic_is_refused() {
    let sim = PepSimulator::start(PepConfig { endpoints: 1, ..PepConfig::default() }).await.unwrap();
    // The AUTHENTICATE carries an NTLM MIC (the CHALLENGE has a timestamp): a mechListMIC must follow.
    let mut conn = Conn::open(&sim).await;
    let (authenticate, _) = challenge(&mut conn).await;
    assert_eq!(final_leg(&mut conn, authenticate, None).await.status, 401);

    // A MIC over another mechanism list: a downgrade of the negotiation.
    let mut conn = Conn::open(&sim).await;
    let (authenticate, mut sealer) = challenge(&mut conn).await;
    let mic = sealer.sign(&mech_list_der(&[NTLM_OID, KERBEROS_OID]));
    assert_eq!(final_leg(&mut conn, authenticate, Some(mic)).await.status, 401);
    let refusals: Vec<String> = sim.log().into_iter().filter(|e| e.status == 401).map(|e| e.detail).collect();
    assert!(refusals.iter().any(|d| d.contains("mechListMIC missing")), "{refusals:?}");
    assert!(refusals.iter().any(|d| d.contains("mechListMIC: ") && d.contains("does not verify")), "{refusals:?}");
}

#[tokio::test]
async fn a_client_that_skips_the_rc4_reset_cannot_seal() {
    let sim = PepSimulator::start(PepConfig { endpoints: 1, ..PepConfig::default() }).await.unwrap();
    let mut conn = Conn::open(&sim).await;
    let (authenticate, mut sealer) = challenge(&mut conn).await;
    let mic = sealer.sign(&mech_list_der(&[NTLM_OID]));
    assert_eq!(final_leg(&mut conn, authenticate, Some(mic)).await.status, 200);
    // No reset_outgoing: the RC4 stream goes on from the MIC, the server's restarted.
    assert_eq!(conn.sealed_request(&mut sealer).await.status, 400);
}

#[tokio::test]
async fn ntlm_behind_another_first_mechanism_is_negotiated_with_request_mic() {
    let sim = PepSimulator::start(PepConfig { endpoints: 1, ..PepConfig::default() }).await.unwrap();
    let mut conn = Conn::open(&sim).await;
    let mechs = [KERBEROS_OID, NTLM_OID];
    let answer = conn.post(Some(&NegTokenInit::encode(&mechs, Some(b"kerberos AP-REQ"))), "", Vec::new()).await;
    assert_eq!(answer.status, 401);
    let first = resp(&answer.token.unwrap());
    assert_eq!(
        (first.neg_state, first.supported_mech.as_deref(), first.response_token),
        (Some(NegState::RequestMic), Some(NTLM_OID), None)
    );
    let mut ntlm = client();
    let negotiate = NegTokenResp { response_token: Some(ntlm.negotiate()), ..NegTokenResp::default() };
    let answer = conn.post(Some(&negotiate.encode()), "", Vec::new()).await;
    let second = resp(&answer.token.unwrap());
    assert_eq!((answer.status, second.neg_state, second.supported_mech), (401, Some(NegState::AcceptIncomplete), None));
    let (authenticate, mut sealer) = ntlm.authenticate(&second.response_token.unwrap()).unwrap();
    let list = mech_list_der(&mechs);
    let mic = sealer.sign(&list);
    sealer.reset_outgoing();
    let answer = final_leg(&mut conn, authenticate, Some(mic)).await;
    assert_eq!(answer.status, 200);
    sealer.verify(&list, &resp(&answer.token.unwrap()).mech_list_mic.unwrap()).unwrap();
}

#[tokio::test]
async fn raw_ntlm_in_negotiate_still_works_and_unsealed_soap_gets_http_500() {
    let sim = PepSimulator::start(PepConfig { endpoints: 1, ..PepConfig::default() }).await.unwrap();
    let mut conn = Conn::open(&sim).await;
    let mut ntlm = client();
    let answer = conn.post(Some(&ntlm.negotiate()), "", Vec::new()).await;
    assert_eq!(answer.status, 401);
    let challenge = answer.token.unwrap();
    assert!(challenge.starts_with(b"NTLMSSP\0\x02"), "raw NTLM is answered raw");
    let (authenticate, mut sealer) = ntlm.authenticate(&challenge).unwrap();
    let answer = conn.post(Some(&authenticate), "", Vec::new()).await;
    assert_eq!((answer.status, answer.token), (200, None));

    // Authenticated, but the SOAP is in clear: AllowUnencrypted=false answers 500, not 400.
    let endpoint = Endpoint {
        url: conn.url.clone(),
        resource_uri: wsman::PRIVILEGED_ENDPOINT.into(),
        session_id: Guid::random(),
        max_envelope: 153_600,
        operation_timeout: Duration::from_secs(1),
    };
    let (_, soap) = wsman::envelope(&endpoint, &Operation::Receive { shell: Guid::random(), command: None });
    let answer = conn.post(None, "application/soap+xml;charset=UTF-8", soap.into_bytes()).await;
    assert_eq!(answer.status, 500);
    let fault = wsman::answer(&String::from_utf8(answer.body).unwrap()).unwrap().unwrap_err();
    assert!(fault.reason.contains("AllowUnencrypted"), "{fault:?}");
    assert!(sim.log().iter().any(|e| e.action == "refused" && e.status == 500));
    // The connection's security context survives the refusal.
    let answer = conn.sealed_request(&mut sealer).await;
    assert!(answer.status == 500 && fault_text(&mut sealer, &answer).contains("shell was not found"));
}

//! One ERCS VM's WinRM listener: HTTP/1.1 keep-alive connections, each authenticated once with
//! NTLM inside `Negotiate` (the security context belongs to the connection), then only sealed
//! `multipart/encrypted` bodies, as a WinRM service with `AllowUnencrypted=false` demands. On the
//! HTTPS listener TLS protects the bodies, so plain SOAP is accepted there (as on Windows).
//!
//! `Negotiate` carries NTLM either raw or wrapped in SPNEGO (what Windows and pyspnego send).
//! With SPNEGO the simulator checks what a Windows acceptor checks: NTLM must be offered; the
//! client's mechListMIC must verify over the mechanism list it sent, and must be there when the
//! AUTHENTICATE carries an NTLM MIC or NTLM was not the client's first choice; the answer carries
//! the server's own mechListMIC. Both directions then restart their RC4 stream while the sequence
//! numbers go on (MS-SPNG 3.3.5.1), so a client that skips the reset cannot read or write the
//! first sealed message.

use super::Shared;
use super::shell::{self, Outcome};
use base64::Engine as _;
use bmc_winrm::ntlm::{Accepted, Acceptor, Sealer};
use bmc_winrm::sealing;
use bmc_winrm::spnego::{self, NTLM_OID, NegState, NegTokenResp, Token};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode, header};
use hyper_util::rt::TokioIo;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;
use zeroize::Zeroizing;

/// Per-connection security context.
#[derive(Default)]
struct Connection {
    acceptor: Option<Acceptor>,
    sealer: Option<Sealer>,
    user: Option<String>,
    /// Set when the handshake is wrapped in SPNEGO.
    spnego: Option<Spnego>,
}

/// What SPNEGO's last leg needs from its first.
struct Spnego {
    /// The client's `MechTypeList` as it sent it: what both mechListMICs sign.
    mech_types_der: Vec<u8>,
    /// NTLM was not the client's first choice: a mechListMIC is then mandatory (RFC 4178 5).
    mic_required: bool,
}

/// The connection is cut (hyper closes it when the service fails).
#[derive(Debug)]
pub(crate) struct Cut;

impl std::fmt::Display for Cut {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("connection cut by an injected fault")
    }
}

impl std::error::Error for Cut {}

trait Io: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send {}
impl<T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send> Io for T {}

pub(crate) async fn serve(listener: TcpListener, tls: Option<TlsAcceptor>, ercs: usize, shared: Arc<Shared>) {
    loop {
        let (stream, _) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(_) => {
                tokio::time::sleep(Duration::from_millis(20)).await;
                continue;
            }
        };
        if shared.faults().down.contains(&ercs) {
            shared.log(ercs, "dropped", 0, "ERCS VM down");
            drop(stream);
            continue;
        }
        let (shared, tls) = (shared.clone(), tls.clone());
        tokio::spawn(async move {
            let stream: Box<dyn Io> = match tls {
                None => Box::new(stream),
                Some(acceptor) => match acceptor.accept(stream).await {
                    Ok(tls) => Box::new(tls),
                    Err(error) => {
                        shared.log(ercs, "tls", 0, error.to_string());
                        return;
                    }
                },
            };
            let connection = Arc::new(Mutex::new(Connection::default()));
            let service = hyper::service::service_fn(move |request| {
                let (shared, connection) = (shared.clone(), connection.clone());
                async move { handle(request, ercs, shared, connection).await }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .keep_alive(true)
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

fn reply(status: StatusCode, headers: &[(header::HeaderName, String)], body: Vec<u8>) -> Response<Full<Bytes>> {
    let mut response = Response::builder().status(status);
    for (name, value) in headers {
        response = response.header(name, value);
    }
    response.body(Full::new(Bytes::from(body))).expect("valid response")
}

fn challenge_header(token: Option<&[u8]>) -> Vec<(header::HeaderName, String)> {
    let value = match token {
        Some(token) => format!("Negotiate {}", base64::engine::general_purpose::STANDARD.encode(token)),
        None => "Negotiate".into(),
    };
    vec![(header::WWW_AUTHENTICATE, value)]
}

async fn handle(
    request: Request<Incoming>,
    ercs: usize,
    shared: Arc<Shared>,
    connection: Arc<Mutex<Connection>>,
) -> Result<Response<Full<Bytes>>, Cut> {
    if request.method() != hyper::Method::POST || request.uri().path() != "/wsman" {
        shared.log(ercs, "other", 404, format!("{} {}", request.method(), request.uri().path()));
        return Ok(reply(StatusCode::NOT_FOUND, &[], Vec::new()));
    }
    let authorization = request.headers().get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()).map(str::to_owned);
    let content_type =
        request.headers().get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
    let body = match request.into_body().collect().await {
        Ok(body) => body.to_bytes(),
        Err(_) => return Err(Cut),
    };
    if let Some(authorization) = authorization {
        return Ok(authenticate(&authorization, ercs, &shared, &connection));
    }
    let user = connection.lock().expect("connection").user.clone();
    let Some(user) = user else {
        shared.log(ercs, "auth", 401, "no Authorization header");
        return Ok(reply(StatusCode::UNAUTHORIZED, &challenge_header(None), Vec::new()));
    };
    let sealed = content_type.starts_with("multipart/encrypted");
    if !sealed && !shared.config.https {
        // Field reports (pywinrm, winrm4j, Metasploit against AllowUnencrypted=false) see HTTP 500;
        // the fault text is the simulator's own.
        shared.log(ercs, "refused", 500, "unencrypted body (AllowUnencrypted=false)");
        let fault = bmc_winrm::wsman::service::fault(
            "",
            "w:AccessDenied",
            5,
            "The WinRM service refuses unencrypted messages: AllowUnencrypted is false on this listener.",
        );
        let plain = "application/soap+xml;charset=UTF-8".to_owned();
        return Ok(reply(StatusCode::INTERNAL_SERVER_ERROR, &[(header::CONTENT_TYPE, plain)], fault.into_bytes()));
    }
    let soap = if sealed {
        let mut state = connection.lock().expect("connection");
        let sealer = state.sealer.as_mut().expect("authenticated connections have a sealer");
        match sealing::unseal(sealer, &body) {
            Ok(soap) => soap,
            Err(error) => {
                shared.log(ercs, "refused", 400, error.to_string());
                return Ok(reply(StatusCode::BAD_REQUEST, &[], error.to_string().into_bytes()));
            }
        }
    } else {
        body.to_vec()
    };
    let soap = Zeroizing::new(String::from_utf8_lossy(&soap).into_owned());
    let (status, answer) = match shell::process(&soap, ercs, &user, &shared).await {
        Outcome::Answer(status, answer) => (status, answer),
        Outcome::Cut => return Err(Cut),
    };
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::OK);
    if !sealed {
        let plain = "application/soap+xml;charset=UTF-8".to_owned();
        return Ok(reply(status, &[(header::CONTENT_TYPE, plain)], answer.into_bytes()));
    }
    let answer = {
        let mut state = connection.lock().expect("connection");
        sealing::seal(state.sealer.as_mut().expect("sealer"), answer.as_bytes())
    };
    Ok(reply(status, &[(header::CONTENT_TYPE, sealing::CONTENT_TYPE.into())], answer))
}

/// One leg of the handshake: raw NTLM (a new NEGOTIATE restarts it and drops the old context)
/// or SPNEGO around it.
fn authenticate(
    authorization: &str,
    ercs: usize,
    shared: &Shared,
    connection: &Mutex<Connection>,
) -> Response<Full<Bytes>> {
    let token = authorization
        .strip_prefix("Negotiate ")
        .or_else(|| authorization.strip_prefix("NTLM "))
        .and_then(|t| base64::engine::general_purpose::STANDARD.decode(t.trim()).ok());
    let Some(token) = token else {
        shared.log(ercs, "auth", 401, "no Negotiate token");
        return reply(StatusCode::UNAUTHORIZED, &challenge_header(None), Vec::new());
    };
    let mut state = connection.lock().expect("connection");
    if token.starts_with(b"NTLMSSP\0") {
        if state.spnego.is_some() {
            // NTLM unwrapped halfway through a SPNEGO exchange: start over, as Windows would.
            *state = Connection::default();
            shared.log(ercs, "auth", 401, "raw NTLM in the middle of a SPNEGO exchange");
            return refused(StatusCode::UNAUTHORIZED);
        }
        return match ntlm_leg(&token, ercs, shared, &mut state) {
            Leg::Challenge(challenge) => {
                reply(StatusCode::UNAUTHORIZED, &challenge_header(Some(&challenge)), Vec::new())
            }
            Leg::Accepted(_) => reply(StatusCode::OK, &[], Vec::new()),
            Leg::Refused(status) => refused(status),
        };
    }
    match spnego::parse(&token) {
        Ok(Token::Init(init)) => {
            *state = Connection::default();
            if let Some(mic) = &init.mech_list_mic {
                shared.log(ercs, "auth", 401, format!("a mechListMIC ({} bytes) before any key exists", mic.len()));
                return refused(StatusCode::UNAUTHORIZED);
            }
            let Some(position) = init.mech_types.iter().position(|m| m == NTLM_OID) else {
                shared.log(ercs, "auth", 401, "SPNEGO without NTLM (Kerberos is not simulated)");
                return refused(StatusCode::UNAUTHORIZED);
            };
            state.spnego = Some(Spnego { mech_types_der: init.mech_types_der, mic_required: position != 0 });
            if position != 0 {
                // The optimistic token belongs to another mechanism: ask for NTLM's NEGOTIATE.
                shared.log(ercs, "auth", 401, "NTLM chosen over the client's first mechanism");
                let resp = NegTokenResp {
                    neg_state: Some(NegState::RequestMic),
                    supported_mech: Some(NTLM_OID.to_vec()),
                    ..NegTokenResp::default()
                };
                return spnego_reply(StatusCode::UNAUTHORIZED, resp);
            }
            let Some(negotiate) = init.mech_token else {
                shared.log(ercs, "auth", 401, "NegTokenInit without NTLM's NEGOTIATE");
                return refused(StatusCode::UNAUTHORIZED);
            };
            spnego_leg(&negotiate, Some(NTLM_OID.to_vec()), None, ercs, shared, &mut state)
        }
        Ok(Token::Resp(resp)) => {
            if state.spnego.is_none() {
                shared.log(ercs, "auth", 401, "NegTokenResp without a NegTokenInit on this connection");
                return refused(StatusCode::UNAUTHORIZED);
            }
            let Some(inner) = resp.response_token else {
                shared.log(ercs, "auth", 401, "NegTokenResp without an NTLM token");
                return refused(StatusCode::UNAUTHORIZED);
            };
            spnego_leg(&inner, None, resp.mech_list_mic, ercs, shared, &mut state)
        }
        Err(error) => {
            shared.log(ercs, "auth", 400, error.to_string());
            reply(StatusCode::BAD_REQUEST, &[], Vec::new())
        }
    }
}

/// The NTLM leg inside SPNEGO, and the mechListMIC once NTLM is done.
fn spnego_leg(
    token: &[u8],
    supported_mech: Option<Vec<u8>>,
    client_mic: Option<Vec<u8>>,
    ercs: usize,
    shared: &Shared,
    state: &mut Connection,
) -> Response<Full<Bytes>> {
    let spnego = state.spnego.take().expect("checked by the caller");
    match ntlm_leg(token, ercs, shared, state) {
        Leg::Challenge(challenge) => {
            state.spnego = Some(spnego);
            let resp = NegTokenResp {
                neg_state: Some(NegState::AcceptIncomplete),
                supported_mech,
                response_token: Some(challenge),
                mech_list_mic: None,
            };
            spnego_reply(StatusCode::UNAUTHORIZED, resp)
        }
        Leg::Accepted(ntlm_mic) => {
            let sealer = state.sealer.as_mut().expect("an accepted leg leaves a sealer");
            let server_mic = match client_mic {
                Some(mic) => {
                    if let Err(error) = sealer.verify(&spnego.mech_types_der, &mic) {
                        *state = Connection::default();
                        shared.log(ercs, "auth", 401, format!("mechListMIC: {error}"));
                        return refused(StatusCode::UNAUTHORIZED);
                    }
                    sealer.reset_incoming();
                    let answer = sealer.sign(&spnego.mech_types_der);
                    sealer.reset_outgoing();
                    Some(answer.to_vec())
                }
                None if ntlm_mic || spnego.mic_required => {
                    *state = Connection::default();
                    shared.log(
                        ercs,
                        "auth",
                        401,
                        "mechListMIC missing (the NTLM MIC or the mechanism choice needs it)",
                    );
                    return refused(StatusCode::UNAUTHORIZED);
                }
                None => None,
            };
            let how = if server_mic.is_some() { "mechListMIC verified both ways" } else { "no mechListMIC" };
            shared.log(ercs, "spnego", 200, how);
            let resp = NegTokenResp {
                neg_state: Some(NegState::AcceptCompleted),
                mech_list_mic: server_mic,
                ..NegTokenResp::default()
            };
            spnego_reply(StatusCode::OK, resp)
        }
        Leg::Refused(status) => refused(status),
    }
}

/// Where an NTLM message left the handshake.
enum Leg {
    /// The CHALLENGE for a NEGOTIATE.
    Challenge(Vec<u8>),
    /// The AUTHENTICATE verified; `true` when it carried a MIC.
    Accepted(bool),
    /// Refused with this status (logged).
    Refused(StatusCode),
}

fn refused(status: StatusCode) -> Response<Full<Bytes>> {
    match status {
        StatusCode::UNAUTHORIZED => reply(status, &challenge_header(None), Vec::new()),
        _ => reply(status, &[], Vec::new()),
    }
}

fn spnego_reply(status: StatusCode, resp: NegTokenResp) -> Response<Full<Bytes>> {
    reply(status, &challenge_header(Some(&resp.encode())), Vec::new())
}

/// One NTLM message (raw or unwrapped from SPNEGO).
fn ntlm_leg(token: &[u8], ercs: usize, shared: &Shared, state: &mut Connection) -> Leg {
    let kind = token.get(8..12).map(|b| u32::from_le_bytes(b.try_into().expect("4 bytes")));
    match kind {
        Some(1) => {
            let spnego = state.spnego.take();
            *state = Connection { spnego, ..Connection::default() };
            match Acceptor::challenge(token, &shared.config.domain, &shared.computer(ercs)) {
                Ok((acceptor, challenge)) => {
                    state.acceptor = Some(acceptor);
                    shared.log(ercs, "auth", 401, "challenge");
                    Leg::Challenge(challenge)
                }
                Err(error) => {
                    shared.log(ercs, "auth", 400, error.to_string());
                    Leg::Refused(StatusCode::BAD_REQUEST)
                }
            }
        }
        Some(3) => {
            let Some(acceptor) = state.acceptor.take() else {
                shared.log(ercs, "auth", 401, "AUTHENTICATE without NEGOTIATE");
                return Leg::Refused(StatusCode::UNAUTHORIZED);
            };
            let config = &shared.config;
            let accepted = acceptor.accept(token, |domain, user| {
                let known = user.eq_ignore_ascii_case(&config.user)
                    && (domain.is_empty() || domain.eq_ignore_ascii_case(&config.domain));
                known.then(|| config.password.clone())
            });
            match accepted {
                Ok(Accepted { domain, user, sealer, mic }) => {
                    let account = format!("{}\\{}", domain.to_uppercase(), user);
                    shared.log(ercs, "auth", 200, account.clone());
                    state.sealer = Some(sealer);
                    state.user = Some(account);
                    Leg::Accepted(mic)
                }
                Err(error) => {
                    shared.log(ercs, "auth", 401, error.to_string());
                    Leg::Refused(StatusCode::UNAUTHORIZED)
                }
            }
        }
        other => {
            shared.log(ercs, "auth", 400, format!("unexpected NTLM message type {other:?}"));
            Leg::Refused(StatusCode::BAD_REQUEST)
        }
    }
}

//! One ERCS VM's WinRM listener: HTTP/1.1 keep-alive connections, each authenticated once with
//! NTLM inside `Negotiate` (the security context belongs to the connection), then only sealed
//! `multipart/encrypted` bodies, as a WinRM service with `AllowUnencrypted=false` demands. On the
//! HTTPS listener TLS protects the bodies, so plain SOAP is accepted there (as on Windows).

use super::Shared;
use super::shell::{self, Outcome};
use base64::Engine as _;
use bmc_winrm::ntlm::{Acceptor, Sealer};
use bmc_winrm::sealing;
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
        shared.log(ercs, "refused", 400, "unencrypted body (AllowUnencrypted=false)");
        return Ok(reply(
            StatusCode::BAD_REQUEST,
            &[],
            b"unencrypted messages are refused: the service has AllowUnencrypted=false".to_vec(),
        ));
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

/// One leg of the NTLM handshake. A new NEGOTIATE restarts it (and drops the old context).
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
    let Some(token) = token.filter(|t| t.starts_with(b"NTLMSSP\0") && t.len() >= 12) else {
        shared.log(ercs, "auth", 401, "not an NTLM token (Kerberos/SPNEGO are not simulated)");
        return reply(StatusCode::UNAUTHORIZED, &challenge_header(None), Vec::new());
    };
    let mut state = connection.lock().expect("connection");
    match u32::from_le_bytes(token[8..12].try_into().expect("4 bytes")) {
        1 => {
            *state = Connection::default();
            match Acceptor::challenge(&token, &shared.config.domain, &shared.computer(ercs)) {
                Ok((acceptor, challenge)) => {
                    state.acceptor = Some(acceptor);
                    shared.log(ercs, "auth", 401, "challenge");
                    reply(StatusCode::UNAUTHORIZED, &challenge_header(Some(&challenge)), Vec::new())
                }
                Err(error) => {
                    shared.log(ercs, "auth", 400, error.to_string());
                    reply(StatusCode::BAD_REQUEST, &[], Vec::new())
                }
            }
        }
        3 => {
            let Some(acceptor) = state.acceptor.take() else {
                shared.log(ercs, "auth", 401, "AUTHENTICATE without NEGOTIATE");
                return reply(StatusCode::UNAUTHORIZED, &challenge_header(None), Vec::new());
            };
            let config = &shared.config;
            let accepted = acceptor.accept(&token, |domain, user| {
                let known = user.eq_ignore_ascii_case(&config.user)
                    && (domain.is_empty() || domain.eq_ignore_ascii_case(&config.domain));
                known.then(|| config.password.clone())
            });
            match accepted {
                Ok((domain, user, sealer)) => {
                    let account = format!("{}\\{}", domain.to_uppercase(), user);
                    shared.log(ercs, "auth", 200, account.clone());
                    state.sealer = Some(sealer);
                    state.user = Some(account);
                    reply(StatusCode::OK, &[], Vec::new())
                }
                Err(error) => {
                    shared.log(ercs, "auth", 401, error.to_string());
                    reply(StatusCode::UNAUTHORIZED, &challenge_header(None), Vec::new())
                }
            }
        }
        other => {
            shared.log(ercs, "auth", 400, format!("unexpected NTLM message type {other}"));
            reply(StatusCode::BAD_REQUEST, &[], Vec::new())
        }
    }
}

//! The gateway against real loopback HTTPS servers: no wasm involved.

use axum::Router;
use axum::body::Bytes;
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use axum::routing::{any, get};
use bmc_lab::HttpsServer;
use bmc_rotate::gateway::{Auth, Endpoint, Failure, Gateway, Limits, Method, Part, Request, TlsPolicy};
use secrecy::SecretString;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Answers with what it received, as a BMC that echoes would.
async fn echo(headers: HeaderMap, body: Bytes) -> impl IntoResponse {
    let header = |n: &str| headers.get(n).map(|v| v.to_str().unwrap_or("").to_owned());
    let reply = serde_json::json!({
        "authorization": header("authorization"),
        "x-auth-token": header("x-auth-token"),
        "if-match": header("if-match"),
        "accept-encoding": header("accept-encoding"),
        "body": String::from_utf8_lossy(&body),
    });
    ([("x-auth-token", "tok-123456"), ("set-cookie", "sid=1"), ("etag", "W/\"7\"")], axum::Json(reply))
}

fn router() -> Router {
    Router::new()
        .route("/echo", any(echo))
        .route("/redirect", get(|| async { (StatusCode::FOUND, [("location", "https://elsewhere.example/steal")]) }))
        .route("/big", get(|| async { vec![b'x'; 2 << 20] }))
        .route(
            "/partial",
            get(|| async {
                (StatusCode::PARTIAL_CONTENT, [("content-range", "bytes 0-3/16"), ("x-real", "kept")], "Abcd")
            }),
        )
        .route("/gzip", get(|| async { ([("content-encoding", "gzip")], vec![0x1f_u8, 0x8b, 8, 0]) }))
        .route(
            "/slow",
            get(|| async {
                tokio::time::sleep(Duration::from_secs(30)).await;
                "late"
            }),
        )
}

async fn server() -> HttpsServer {
    HttpsServer::start_local(router()).await.unwrap()
}

fn pinned(server: &HttpsServer) -> Gateway {
    gateway(server, TlsPolicy::PinnedSha256(server.sha256()), Limits::default())
}

fn gateway(server: &HttpsServer, tls: TlsPolicy, limits: Limits) -> Gateway {
    Gateway::pinned(Endpoint::new("127.0.0.1", server.addr().port()), server.addr(), tls, limits).unwrap()
}

fn get_(path: &str) -> Request {
    Request { method: Method::Get, path: path.into(), headers: vec![], auth: Auth::None, body: vec![] }
}

fn secret(s: &str) -> Arc<SecretString> {
    Arc::new(SecretString::from(s.to_owned()))
}

fn json(body: &[u8]) -> serde_json::Value {
    serde_json::from_slice(body).unwrap()
}

/// A server that answers every request with the client's address: one port per connection.
async fn peer_server() -> HttpsServer {
    let handler: bmc_lab::https::Handler = Arc::new(|_request, peer: std::net::SocketAddr| {
        Box::pin(async move { Ok(axum::response::Response::new(axum::body::Body::from(peer.to_string()))) })
    });
    let identity = bmc_lab::TlsIdentity::self_signed(&[]).unwrap();
    HttpsServer::serve(handler, identity, std::net::SocketAddr::from(([127, 0, 0, 1], 0))).await.unwrap()
}

#[tokio::test]
async fn a_resting_gateway_closes_its_connection_only_when_the_fleet_is_too_large_to_keep_them() {
    let server = peer_server().await;
    for close in [false, true] {
        let limits = Limits { close_when_resting: close, ..Limits::default() };
        let g = gateway(&server, TlsPolicy::PinnedSha256(server.sha256()), limits);
        let peer = |response: bmc_rotate::gateway::Response| String::from_utf8(response.body).unwrap();
        let first = peer(g.send(&get_("/a"), None).await.unwrap());
        assert_eq!(peer(g.send(&get_("/b"), None).await.unwrap()), first, "one connection within a phase");
        g.rest();
        assert_eq!(g.is_resting(), close);
        let next = peer(g.send(&get_("/c"), None).await.unwrap());
        assert_eq!(next != first, close, "a new connection after a rest only when closing ({first} then {next})");
        assert!(!g.is_resting());
    }
}

#[tokio::test]
async fn pinned_certificate_is_accepted_and_a_different_one_refused() {
    let server = server().await;
    let ok = pinned(&server).send(&get_("/echo"), None).await.unwrap();
    assert_eq!(ok.status, 200);

    // Its own kind, with both digests: a changed certificate is not a dead BMC.
    let wrong = gateway(&server, TlsPolicy::PinnedSha256([7; 32]), Limits::default());
    match wrong.send(&get_("/echo"), None).await {
        Err(Failure::CertificateChanged { pinned, presented }) => {
            assert_eq!((pinned, presented), ([7; 32], server.sha256()));
            let message = bmc_rotate::gateway::certificate_changed(&pinned, &presented);
            assert!(message.starts_with(&format!("certificate changed: pinned {}, presented ", "07".repeat(32))));
            assert!(message.contains("this can be an attack"), "{message}");
        }
        other => panic!("expected a changed certificate, got {:?}", other.map(|r| r.status)),
    }
}

#[tokio::test]
async fn an_observing_gateway_accepts_any_certificate_and_records_it() {
    let server = server().await;
    let endpoint = Endpoint::new("localhost", server.addr().port());
    let observer = Gateway::observe(endpoint, server.addr(), Limits::default()).unwrap();
    assert_eq!(observer.presented_certificate(), None, "no handshake yet");
    assert_eq!(observer.send(&get_("/echo"), None).await.unwrap().status, 200);
    let der = observer.presented_certificate().expect("the certificate seen");
    assert_eq!(bmc_rotate::gateway::fingerprint(&der), server.sha256());
}

#[tokio::test]
async fn ca_file_insecure_and_system_roots() {
    let server = server().await;
    let ca =
        std::env::temp_dir().join(format!("bmc-rotate-test-ca-{}-{}.pem", std::process::id(), server.addr().port()));
    std::fs::write(&ca, server.identity().cert_pem()).unwrap();
    let via_ca = gateway(&server, TlsPolicy::CaFile(ca.clone()), Limits::default()).send(&get_("/echo"), None).await;
    std::fs::remove_file(&ca).ok();
    assert_eq!(via_ca.unwrap().status, 200);

    let insecure = gateway(&server, TlsPolicy::Insecure, Limits::default()).send(&get_("/echo"), None).await;
    assert_eq!(insecure.unwrap().status, 200);

    // A self-signed BMC certificate is not trusted by the system store.
    let system = gateway(&server, TlsPolicy::SystemRoots, Limits::default()).send(&get_("/echo"), None).await;
    match system {
        Err(Failure::Connect(why)) => {
            assert!(why.starts_with("cannot connect to ") && why.contains("UnknownIssuer"), "{why}")
        }
        other => panic!("{:?}", other.err()),
    }
}

#[tokio::test]
async fn the_address_is_pinned_without_any_lookup() {
    let server = server().await;
    // `.invalid` never resolves (RFC 6761): the request can only succeed through the pin.
    let endpoint = Endpoint::new("bmc.invalid", server.addr().port());
    let gw =
        Gateway::pinned(endpoint, server.addr(), TlsPolicy::PinnedSha256(server.sha256()), Limits::default()).unwrap();
    assert_eq!(gw.send(&get_("/echo"), None).await.unwrap().status, 200);
    assert!(Gateway::connect(Endpoint::new("bmc.invalid", 443), TlsPolicy::Insecure, Limits::default()).await.is_err());
}

#[tokio::test]
async fn redirects_are_returned_not_followed() {
    let server = server().await;
    let answer = pinned(&server).send(&get_("/redirect"), None).await.unwrap();
    assert_eq!(answer.status, 302);
    assert!(answer.headers.iter().any(|(k, v)| k == "location" && v.contains("elsewhere")));
}

#[tokio::test]
async fn other_hosts_and_absolute_urls_are_denied() {
    let server = server().await;
    let gw = pinned(&server);
    for path in ["https://elsewhere.example/x", "//elsewhere.example/x", "echo", "/a b"] {
        assert!(matches!(gw.send(&get_(path), None).await, Err(Failure::Denied(_))), "{path}");
    }
    let mut smuggle = get_("/echo");
    smuggle.headers.push(("Authorization".into(), "Basic Zm9vOmJhcg==".into()));
    assert!(matches!(gw.send(&smuggle, None).await, Err(Failure::Denied(_))));
}

#[tokio::test]
async fn secrets_are_spliced_escaped_and_tokens_captured() {
    let server = server().await;
    let password = r#"Pa"ss\wörd€1"#;
    let request = Request {
        method: Method::Patch,
        path: "/echo".into(),
        headers: vec![("If-Match".into(), "W/\"7\"".into())],
        auth: Auth::Basic { user: "root".into(), password: secret("calvin") },
        body: vec![Part::Text(r#"{"Password":"#.into()), Part::SecretJson(secret(password)), Part::Text("}".into())],
    };
    let answer = pinned(&server).send(&request, None).await.unwrap();
    let echoed = json(&answer.body);
    assert_eq!(echoed["authorization"], "Basic cm9vdDpjYWx2aW4=");
    assert_eq!(echoed["if-match"], "W/\"7\"");
    let sent: serde_json::Value = serde_json::from_str(echoed["body"].as_str().unwrap()).unwrap();
    assert_eq!(sent["Password"], password);
    // The token is a secret now, not a header.
    assert!(answer.headers.iter().all(|(k, _)| k != "x-auth-token" && k != "set-cookie"));
    assert_eq!(secrecy::ExposeSecret::expose_secret(&answer.session_token.unwrap()), "tok-123456");
    assert!(answer.headers.iter().any(|(k, v)| k == "etag" && v == "W/\"7\""));

    let session = Request { auth: Auth::Session(secret("tok-123456")), ..get_("/echo") };
    let echoed = json(&pinned(&server).send(&session, None).await.unwrap().body);
    assert_eq!(echoed["x-auth-token"], "tok-123456");
}

#[tokio::test]
async fn no_length_encoding_or_range_side_channel_reaches_the_guest() {
    let server = server().await;
    let gateway = pinned(&server);
    // The host asks for identity encoding itself, and a guest may not ask for anything else.
    let echoed = json(&gateway.send(&get_("/echo"), None).await.unwrap().body);
    assert_eq!(echoed["accept-encoding"], "identity");
    for (name, value) in [("Accept-Encoding", "gzip"), ("Range", "bytes=0-3"), ("Expect", "100-continue")] {
        let request = Request { headers: vec![(name.into(), value.into())], ..get_("/echo") };
        match gateway.send(&request, None).await {
            Err(Failure::Denied(m)) => assert!(m.contains("may not be set"), "{name}: {m}"),
            other => panic!("{name} was sent: {:?}", other.map(|r| r.status)),
        }
    }
    // Lengths and ranges of the wire never reach the guest; other headers do.
    let partial = gateway.send(&get_("/partial"), None).await.unwrap();
    let names: Vec<&str> = partial.headers.iter().map(|(k, _)| k.as_str()).collect();
    assert!(!names.contains(&"content-length") && !names.contains(&"content-range"), "{names:?}");
    assert!(names.contains(&"x-real"), "{names:?}");
    // An encoded answer is discarded whole: the redactor could not see into it.
    match gateway.send(&get_("/gzip"), None).await {
        Err(Failure::NoResponse(m)) => assert!(m.contains("Content-Encoding `gzip`"), "{m}"),
        other => panic!("a gzip answer was accepted: {:?}", other.map(|r| r.status)),
    }
}

#[tokio::test]
async fn response_size_is_capped() {
    let server = server().await;
    let limits = Limits { max_response_bytes: 1 << 20, ..Limits::default() };
    match gateway(&server, TlsPolicy::PinnedSha256(server.sha256()), limits).send(&get_("/big"), None).await {
        Err(Failure::TooLarge(m)) => assert!(m.contains("limit is 1048576 bytes"), "{m}"),
        other => panic!("expected TooLarge, got {:?}", other.map(|r| r.status)),
    }
}

#[tokio::test]
async fn a_hanging_bmc_times_out_as_no_response() {
    let server = server().await;
    let limits = Limits { request_timeout: Duration::from_millis(300), ..Limits::default() };
    let started = Instant::now();
    let result = gateway(&server, TlsPolicy::PinnedSha256(server.sha256()), limits).send(&get_("/slow"), None).await;
    assert!(matches!(result, Err(Failure::NoResponse(_))), "{:?}", result.map(|r| r.status));
    assert!(started.elapsed() < Duration::from_secs(10));
}

#[tokio::test]
async fn the_job_deadline_bounds_each_request() {
    let server = server().await;
    let gw = pinned(&server);
    let spent = Instant::now();
    assert!(matches!(gw.send(&get_("/echo"), Some(spent)).await, Err(Failure::Denied(m)) if m.contains("deadline")));
    let soon = Instant::now() + Duration::from_millis(300);
    assert!(matches!(gw.send(&get_("/slow"), Some(soon)).await, Err(Failure::NoResponse(_))));
}

#[tokio::test]
async fn nothing_listening_is_a_connect_failure() {
    let free = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    let gw =
        Gateway::pinned(Endpoint::new("127.0.0.1", free.port()), free, TlsPolicy::Insecure, Limits::default()).unwrap();
    match gw.send(&get_("/echo"), None).await {
        // The operator's words, not reqwest's wrapping around the URL.
        Err(Failure::Connect(why)) => {
            assert_eq!(why, format!("cannot connect to 127.0.0.1:{} (connection refused)", free.port()))
        }
        other => panic!("{:?}", other.err()),
    }
}

#[test]
fn traces_never_show_credentials_or_secret_bodies() {
    let ((), out) = bmc_tests::traced(|| {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        runtime.block_on(async {
            let server = server().await;
            let gw = pinned(&server);
            let request = Request {
                method: Method::Post,
                path: "/echo".into(),
                headers: vec![],
                auth: Auth::Basic { user: "root".into(), password: secret("Canary-Basic-42") },
                body: vec![
                    Part::Text("{\"Password\":".into()),
                    Part::SecretJson(secret("Canary-Body-42")),
                    Part::Text("}".into()),
                ],
            };
            gw.send(&request, None).await.unwrap();
            gw.send(&Request { auth: Auth::Session(secret("Canary-Token-42")), ..get_("/echo") }, None).await.unwrap();
        })
    });
    assert!(out.contains("request") && out.contains("/echo") && out.contains("<redacted>"), "nothing traced: {out}");
    for canary in ["Canary-Basic-42", "Canary-Body-42", "Canary-Token-42", "cm9vdDpDYW5hcnktQmFzaWMtNDI=", "tok-123456"]
    {
        assert!(!out.contains(canary), "`{canary}` leaked into traces:\n{out}");
    }
}

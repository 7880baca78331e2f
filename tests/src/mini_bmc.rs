//! A minimal standard Redfish BMC: service root, sessions, an account service with fixed slots,
//! ETags and optional `If-Match`, and sessions that die when their account's password changes.
//! Plus `/echo`, which reflects requests back, for the secret-leak tests. The vendor personas
//! live in `bmc-lab`; this one only has to be standard.

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get, patch, post};
use bmc_lab::HttpsServer;
use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

struct Account {
    id: u32,
    user: String,
    password: String,
    version: u64,
}

#[derive(Default)]
struct Inner {
    accounts: Vec<Account>,
    sessions: HashMap<String, String>,
    next_session: u32,
    requests: Vec<String>,
}

type Shared = Arc<Mutex<Inner>>;

/// A running mini BMC.
pub struct MiniBmc {
    server: HttpsServer,
    state: Shared,
}

const ACCOUNTS: &str = "/redfish/v1/AccountService/Accounts";

fn error(status: StatusCode, id: &str, message: &str) -> Response {
    (
        status,
        Json(json!({"error": {"code": "Base.1.12.GeneralError", "message": message,
        "@Message.ExtendedInfo": [{"MessageId": id, "Message": message}]}})),
    )
        .into_response()
}

fn authenticate(state: &Inner, headers: &HeaderMap) -> Option<String> {
    if let Some(token) = headers.get("x-auth-token").and_then(|v| v.to_str().ok()) {
        return state.sessions.get(token).cloned();
    }
    let basic = headers.get("authorization")?.to_str().ok()?.strip_prefix("Basic ")?;
    let decoded = decode_base64(basic)?;
    let (user, password) = decoded.split_once(':')?;
    state.accounts.iter().find(|a| a.user == user && a.password == password).map(|a| a.user.clone())
}

fn decode_base64(text: &str) -> Option<String> {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut bits = 0u32;
    let mut count = 0;
    let mut out = Vec::new();
    for c in text.bytes().filter(|c| *c != b'=') {
        bits = (bits << 6) | ALPHABET.iter().position(|a| *a == c)? as u32;
        count += 6;
        if count >= 8 {
            count -= 8;
            out.push((bits >> count) as u8);
        }
    }
    String::from_utf8(out).ok()
}

async fn root() -> Json<Value> {
    Json(json!({"@odata.id": "/redfish/v1/", "RedfishVersion": "1.15.0", "Vendor": "Mini",
        "Links": {"Sessions": {"@odata.id": "/redfish/v1/SessionService/Sessions"}},
        "AccountService": {"@odata.id": "/redfish/v1/AccountService"}}))
}

async fn login(State(state): State<Shared>, body: Bytes) -> Response {
    let mut s = state.lock().unwrap();
    s.requests.push("POST session".into());
    let Ok(body) = serde_json::from_slice::<Value>(&body) else {
        return error(StatusCode::BAD_REQUEST, "Base.1.12.MalformedJSON", "malformed JSON");
    };
    let (user, password) = (body["UserName"].as_str().unwrap_or(""), body["Password"].as_str().unwrap_or(""));
    if !s.accounts.iter().any(|a| a.user == user && a.password == password && !user.is_empty()) {
        return error(StatusCode::UNAUTHORIZED, "Base.1.12.NoValidSession", "Invalid username or password");
    }
    s.next_session += 1;
    let (id, token) = (s.next_session, format!("mini-token-{}-{}", s.next_session, user.len()));
    s.sessions.insert(token.clone(), user.to_owned());
    let location = format!("/redfish/v1/SessionService/Sessions/{id}");
    (StatusCode::CREATED, [("x-auth-token", token), ("location", location)], Json(json!({"Id": id.to_string()})))
        .into_response()
}

async fn logout(State(state): State<Shared>, headers: HeaderMap) -> Response {
    let mut s = state.lock().unwrap();
    match headers.get("x-auth-token").and_then(|v| v.to_str().ok()) {
        Some(token) if s.sessions.remove(token).is_some() => StatusCode::NO_CONTENT.into_response(),
        _ => error(StatusCode::UNAUTHORIZED, "Base.1.12.NoValidSession", "no session"),
    }
}

async fn account_service(State(state): State<Shared>, headers: HeaderMap) -> Response {
    if authenticate(&state.lock().unwrap(), &headers).is_none() {
        return error(StatusCode::UNAUTHORIZED, "Base.1.12.NoValidSession", "authentication required");
    }
    Json(json!({"MinPasswordLength": 8, "MaxPasswordLength": 20, "Accounts": {"@odata.id": ACCOUNTS}})).into_response()
}

async fn account_collection(State(state): State<Shared>, headers: HeaderMap) -> Response {
    let s = state.lock().unwrap();
    if authenticate(&s, &headers).is_none() {
        return error(StatusCode::UNAUTHORIZED, "Base.1.12.NoValidSession", "authentication required");
    }
    let members: Vec<Value> = s.accounts.iter().map(|a| json!({"@odata.id": format!("{ACCOUNTS}/{}", a.id)})).collect();
    Json(json!({"Members": members})).into_response()
}

async fn account(State(state): State<Shared>, Path(id): Path<u32>, headers: HeaderMap) -> Response {
    let s = state.lock().unwrap();
    if authenticate(&s, &headers).is_none() {
        return error(StatusCode::UNAUTHORIZED, "Base.1.12.NoValidSession", "authentication required");
    }
    let Some(a) = s.accounts.iter().find(|a| a.id == id) else {
        return error(StatusCode::NOT_FOUND, "Base.1.12.ResourceMissingAtURI", "no such account");
    };
    let etag = format!("W/\"{}\"", a.version);
    let body = json!({"@odata.type": "#ManagerAccount.v1_12_0.ManagerAccount", "@odata.id": format!("{ACCOUNTS}/{}", a.id),
        "Id": a.id.to_string(), "UserName": a.user, "Password": null});
    ([("etag", etag)], Json(body)).into_response()
}

async fn change(State(state): State<Shared>, Path(id): Path<u32>, headers: HeaderMap, body: Bytes) -> Response {
    let mut s = state.lock().unwrap();
    let Some(actor) = authenticate(&s, &headers) else {
        return error(StatusCode::UNAUTHORIZED, "Base.1.12.NoValidSession", "authentication required");
    };
    s.requests.push(format!("PATCH account {id} by {actor}"));
    let if_match = headers.get("if-match").and_then(|v| v.to_str().ok()).map(str::to_owned);
    let Ok(body) = serde_json::from_slice::<Value>(&body) else {
        return error(StatusCode::BAD_REQUEST, "Base.1.12.MalformedJSON", "malformed JSON");
    };
    let Some(account) = s.accounts.iter_mut().find(|a| a.id == id) else {
        return error(StatusCode::NOT_FOUND, "Base.1.12.ResourceMissingAtURI", "no such account");
    };
    if let Some(tag) = if_match
        && tag != "*"
        && tag != format!("W/\"{}\"", account.version)
    {
        return error(StatusCode::PRECONDITION_FAILED, "Base.1.12.PreconditionFailed", "stale ETag");
    }
    let Some(password) = body["Password"].as_str() else {
        return error(StatusCode::BAD_REQUEST, "Base.1.12.PropertyMissing", "Password is required");
    };
    if !(8..=20).contains(&password.chars().count()) {
        return error(
            StatusCode::BAD_REQUEST,
            "Mini.1.0.InvalidPasswordLength",
            "A password must have 8 to 20 characters.",
        );
    }
    account.password = password.to_owned();
    account.version += 1;
    let user = account.user.clone();
    s.sessions.retain(|_, u| *u != user);
    Json(json!({"@Message.ExtendedInfo": [{"MessageId": "Base.1.12.Success"}]})).into_response()
}

/// Reflects the request (body, credentials) and issues a token, as a careless BMC might.
async fn echo(headers: HeaderMap, body: Bytes) -> Response {
    let header = |n: &str| headers.get(n).and_then(|v| v.to_str().ok()).unwrap_or("").to_owned();
    let reply = json!({"body": String::from_utf8_lossy(&body), "authorization": header("authorization"),
        "x-auth-token": header("x-auth-token")});
    ([("x-auth-token", "echo-token-0001"), ("x-seen-authorization", header("authorization").as_str())], Json(reply))
        .into_response()
}

/// The encodings `/echo/{encoding}` applies to the Basic password it received.
pub const ENCODINGS: &[&str] = &["raw", "json-twice", "percent", "html", "base64", "base64-in-stream", "upper"];

/// Reflects the Basic password it received in one encoding, inside a JSON document: how a
/// careless BMC might quote what it was sent.
async fn echo_encoded(Path(encoding): Path<String>, headers: HeaderMap) -> Response {
    use base64::Engine as _;
    let basic = headers.get("authorization").and_then(|v| v.to_str().ok()).and_then(|v| v.strip_prefix("Basic "));
    let Some(password) = basic.and_then(decode_base64).and_then(|d| d.split_once(':').map(|(_, p)| p.to_owned()))
    else {
        return error(StatusCode::UNAUTHORIZED, "Base.1.12.NoValidSession", "Basic credentials required");
    };
    let b64 = base64::engine::general_purpose::STANDARD;
    let value = match encoding.as_str() {
        "raw" => password,
        "json-twice" => serde_json::to_string(&serde_json::to_string(&password).unwrap()).unwrap(),
        "percent" => password.bytes().map(|b| format!("%{b:02X}")).collect(),
        "html" => password.chars().map(|c| format!("&#{};", c as u32)).collect(),
        "base64" => b64.encode(&password),
        "base64-in-stream" => b64.encode(format!("x{password}yz")),
        "upper" => password.to_ascii_uppercase(),
        _ => return error(StatusCode::NOT_FOUND, "Base.1.12.ResourceMissingAtURI", "no such encoding"),
    };
    Json(json!({"Message": format!("you sent {value}")})).into_response()
}

impl MiniBmc {
    /// Starts a BMC with these `(user, password)` accounts in slots 1, 2, ...
    pub async fn start(accounts: &[(&str, &str)]) -> MiniBmc {
        let state: Shared = Arc::default();
        state.lock().unwrap().accounts = accounts
            .iter()
            .enumerate()
            .map(|(i, (u, p))| Account { id: i as u32 + 1, user: u.to_string(), password: p.to_string(), version: 1 })
            .collect();
        let router = axum::Router::new()
            .route("/redfish/v1/", get(root))
            .route("/redfish/v1/SessionService/Sessions", post(login))
            .route("/redfish/v1/SessionService/Sessions/{id}", axum::routing::delete(logout))
            .route("/redfish/v1/AccountService", get(account_service))
            .route(ACCOUNTS, get(account_collection))
            .route(&format!("{ACCOUNTS}/{{id}}"), get(account).merge(patch(change)))
            .route("/echo", any(echo))
            .route("/echo/{encoding}", any(echo_encoded))
            .with_state(state.clone());
        MiniBmc { server: HttpsServer::start_local(router).await.expect("mini BMC"), state }
    }

    /// The server.
    pub fn server(&self) -> &HttpsServer {
        &self.server
    }

    /// The current password of `user`.
    pub fn password_of(&self, user: &str) -> Option<String> {
        self.state.lock().unwrap().accounts.iter().find(|a| a.user == user).map(|a| a.password.clone())
    }

    /// Open sessions.
    pub fn session_count(&self) -> usize {
        self.state.lock().unwrap().sessions.len()
    }

    /// Logins and PATCHes seen, in order.
    pub fn requests(&self) -> Vec<String> {
        self.state.lock().unwrap().requests.clone()
    }
}

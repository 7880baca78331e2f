//! The introspection endpoint: what tests and rehearsals ask a running lab instead of logging in
//! to its BMCs (a login attempt with a wrong password would count as a failed login, and lock
//! accounts or block addresses on its own).
//!
//! Plain HTTP on a loopback address only, off unless asked for (`--introspect 127.0.0.1:PORT`).
//! It answers whether an account holds a password **given to it** (yes or no: it never returns
//! a password), and shows what the BMC's failed-login handling did. Nothing it does reaches the
//! BMC's request log or failed-login counters. Every answer is JSON:
//!
//! | Request | Answer |
//! |---|---|
//! | `GET /bmcs` | `[{"name", "persona", "address"}]` |
//! | `GET /bmcs/NAME` | `name`, `persona`, `address`, `sessions`, `refused_logins` (401 answers in the request log, which keeps 1024 lines), `loopback_blocked` (iDRAC's block of `127.0.0.1`), `accounts`: `[{"id", "user", "role", "enabled", "failures", "locked", "change_required"}]` |
//! | `POST /bmcs/NAME/holds` `{"user", "password"}` | `{"holds": bool}` |
//! | `POST /fleet/holds` `{"user", "password"}` | `{"total", "holding", "not_holding": [names]}` |
//! | `GET /pep` | `{"stored": bool, "user", "store_count"}` |
//! | `POST /pep/holds` `{"password"}` | `{"stored": bool, "holds": bool}` |
//!
//! Anyone on this host who can reach the port can test passwords against the lab's accounts:
//! that is what it is for, and why it only ever listens on loopback.

use crate::bmc::Bmc;
use crate::pep::PepSimulator;
use crate::server::SimulatedBmc;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{Value, json};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use zeroize::Zeroizing;

/// One BMC as introspection sees it.
struct View {
    name: String,
    persona: &'static str,
    address: SocketAddr,
    state: Arc<Mutex<Bmc>>,
}

struct Target {
    bmcs: Vec<View>,
    by_name: HashMap<String, usize>,
    pep: Option<Arc<PepSimulator>>,
}

/// A candidate credential (the password is wiped when the request is done).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Candidate {
    #[serde(default)]
    user: Option<String>,
    password: String,
}

impl Drop for Candidate {
    fn drop(&mut self) {
        zeroize::Zeroize::zeroize(&mut self.password);
    }
}

/// A running introspection endpoint. Dropping it stops it.
pub struct Introspection {
    addr: SocketAddr,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Introspection {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Introspection {
    /// Serves introspection of `bmcs` (and `pep`) on `bind`, which must be a loopback address.
    pub async fn serve(
        bind: SocketAddr,
        bmcs: &[SimulatedBmc],
        pep: Option<Arc<PepSimulator>>,
    ) -> anyhow::Result<Introspection> {
        anyhow::ensure!(
            bind.ip().is_loopback(),
            "introspection listens on loopback only (127.0.0.1:PORT or [::1]:PORT), not {}",
            bind.ip()
        );
        let bmcs: Vec<View> = bmcs
            .iter()
            .map(|b| View {
                name: b.name().to_owned(),
                persona: b.persona().name(),
                address: b.addr(),
                state: b.state_handle(),
            })
            .collect();
        let by_name = bmcs.iter().enumerate().map(|(i, b)| (b.name.clone(), i)).collect();
        let target = Arc::new(Target { bmcs, by_name, pep });
        let router = Router::new()
            .route("/bmcs", get(list))
            .route("/bmcs/{name}", get(bmc))
            .route("/bmcs/{name}/holds", post(bmc_holds))
            .route("/fleet/holds", post(fleet_holds))
            .route("/pep", get(pep_state))
            .route("/pep/holds", post(pep_holds))
            .with_state(target);
        let listener = tokio::net::TcpListener::bind(bind)
            .await
            .map_err(|e| anyhow::anyhow!("cannot listen for introspection on {bind}: {e}"))?;
        let addr = listener.local_addr()?;
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, router).await;
        });
        Ok(Introspection { addr, task })
    }

    /// Where it listens.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }
}

type Answer = Result<Json<Value>, (StatusCode, String)>;

fn find<'a>(target: &'a Target, name: &str) -> Result<&'a View, (StatusCode, String)> {
    target.by_name.get(name).map(|&i| &target.bmcs[i]).ok_or((StatusCode::NOT_FOUND, format!("no BMC named {name}")))
}

fn user_of(candidate: &Candidate) -> Result<&str, (StatusCode, String)> {
    candidate.user.as_deref().ok_or((StatusCode::BAD_REQUEST, "`user` is needed: whose password to check".into()))
}

async fn list(State(target): State<Arc<Target>>) -> Json<Value> {
    let bmcs: Vec<Value> = target
        .bmcs
        .iter()
        .map(|b| json!({"name": b.name, "persona": b.persona, "address": b.address.to_string()}))
        .collect();
    Json(Value::Array(bmcs))
}

async fn bmc(State(target): State<Arc<Target>>, Path(name): Path<String>) -> Answer {
    let view = find(&target, &name)?;
    let state = view.state.lock().expect("BMC state poisoned");
    let now = state.clock().now();
    let accounts: Vec<Value> = state
        .accounts()
        .filter(|a| !a.user.is_empty())
        .map(|a| {
            json!({"id": a.id, "user": a.user, "role": a.role, "enabled": a.enabled, "failures": a.failures,
                "locked": a.locked_until.is_some_and(|t| t > now), "change_required": a.change_required})
        })
        .collect();
    let refused = state.requests().iter().filter(|r| r.status == 401).count();
    Ok(Json(json!({
        "name": view.name, "persona": view.persona, "address": view.address.to_string(),
        "sessions": state.session_count(), "refused_logins": refused,
        "loopback_blocked": state.is_blocked(std::net::Ipv4Addr::LOCALHOST.into()),
        "accounts": accounts,
    })))
}

async fn bmc_holds(
    State(target): State<Arc<Target>>,
    Path(name): Path<String>,
    Json(candidate): Json<Candidate>,
) -> Answer {
    let view = find(&target, &name)?;
    let holds = view.state.lock().expect("BMC state poisoned").password_is(user_of(&candidate)?, &candidate.password);
    Ok(Json(json!({"holds": holds})))
}

async fn fleet_holds(State(target): State<Arc<Target>>, Json(candidate): Json<Candidate>) -> Answer {
    let user = user_of(&candidate)?;
    let not_holding: Vec<&str> = target
        .bmcs
        .iter()
        .filter(|b| !b.state.lock().expect("BMC state poisoned").password_is(user, &candidate.password))
        .map(|b| b.name.as_str())
        .collect();
    let total = target.bmcs.len();
    Ok(Json(json!({"total": total, "holding": total - not_holding.len(), "not_holding": not_holding})))
}

fn the_pep(target: &Target) -> Result<&PepSimulator, (StatusCode, String)> {
    target.pep.as_deref().ok_or((StatusCode::NOT_FOUND, "this lab runs no privileged endpoint".into()))
}

async fn pep_state(State(target): State<Arc<Target>>) -> Answer {
    let pep = the_pep(&target)?;
    let stored = pep.stored();
    Ok(Json(json!({
        "stored": stored.is_some(),
        "user": stored.as_ref().and_then(|s| s.user.clone()),
        "store_count": pep.store_count(),
    })))
}

async fn pep_holds(State(target): State<Arc<Target>>, Json(candidate): Json<Candidate>) -> Answer {
    let stored = the_pep(&target)?.stored();
    let holds = stored.as_ref().is_some_and(|s| s.password.as_str() == candidate.password.as_str());
    Ok(Json(json!({"stored": stored.is_some(), "holds": holds})))
}

/// How many BMCs of a fleet hold a password.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
pub struct FleetHolding {
    /// BMCs in the lab.
    pub total: usize,
    /// BMCs whose account holds the password.
    pub holding: usize,
    /// The names of the others.
    pub not_holding: Vec<String>,
}

/// A client of the introspection endpoint, for tests and rehearsal scripts: one HTTP/1.1
/// request per connection, nothing but the endpoint's JSON in and out.
#[derive(Clone, Debug)]
pub struct IntrospectClient {
    addr: SocketAddr,
}

impl IntrospectClient {
    /// A client of the endpoint at `addr`.
    pub fn new(addr: SocketAddr) -> IntrospectClient {
        IntrospectClient { addr }
    }

    /// Whether `user` on the BMC `bmc` holds `password`.
    pub async fn holds(&self, bmc: &str, user: &str, password: &str) -> anyhow::Result<bool> {
        let path = format!("/bmcs/{bmc}/holds");
        let answer = self.call("POST", &path, Some(json!({"user": user, "password": password}))).await?;
        flag(&answer, "holds")
    }

    /// How many BMCs' `user` holds `password`, and which do not.
    pub async fn fleet_holding(&self, user: &str, password: &str) -> anyhow::Result<FleetHolding> {
        let answer = self.call("POST", "/fleet/holds", Some(json!({"user": user, "password": password}))).await?;
        Ok(serde_json::from_value(answer)?)
    }

    /// Whether the privileged endpoint holds `password` as the BMC credential (`None`: it holds
    /// none).
    pub async fn pep_holds(&self, password: &str) -> anyhow::Result<Option<bool>> {
        let answer = self.call("POST", "/pep/holds", Some(json!({"password": password}))).await?;
        Ok(flag(&answer, "stored")?.then_some(flag(&answer, "holds")?))
    }

    /// A BMC's state: accounts with failures and locks, refused logins, the address block.
    pub async fn bmc(&self, bmc: &str) -> anyhow::Result<Value> {
        self.call("GET", &format!("/bmcs/{bmc}"), None).await
    }

    /// One request; the answer's JSON, or an error with its status and text.
    pub async fn call(&self, method: &str, path: &str, body: Option<Value>) -> anyhow::Result<Value> {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let body = Zeroizing::new(body.map(|b| b.to_string()).unwrap_or_default());
        let head = format!(
            "{method} {path} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
            self.addr,
            body.len()
        );
        let mut stream = tokio::net::TcpStream::connect(self.addr)
            .await
            .map_err(|e| anyhow::anyhow!("cannot reach the lab's introspection at {}: {e}", self.addr))?;
        stream.write_all(head.as_bytes()).await?;
        stream.write_all(body.as_bytes()).await?;
        let mut answer = Vec::new();
        stream.read_to_end(&mut answer).await?;
        let text = String::from_utf8_lossy(&answer);
        let (head, body) = text.split_once("\r\n\r\n").ok_or_else(|| anyhow::anyhow!("not an HTTP answer"))?;
        let status = head.split(' ').nth(1).unwrap_or("?");
        anyhow::ensure!(status == "200", "introspection {method} {path}: {status}: {body}");
        Ok(serde_json::from_str(body)?)
    }
}

fn flag(answer: &Value, field: &str) -> anyhow::Result<bool> {
    answer[field].as_bool().ok_or_else(|| anyhow::anyhow!("introspection answered no `{field}`: {answer}"))
}

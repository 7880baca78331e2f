//! A simulated BMC on the network: the state machine behind a real HTTPS listener, with faults.

use crate::bmc::{Bmc, LabRequest};
use crate::clock::LabClock;
use crate::faults::{Action, FaultState, Faults};
use crate::https::{DropConnection, Handler, Listener, SiteHandle};
use crate::persona::Persona;
use crate::tls::TlsIdentity;
use axum::body::Body;
use http::{Request, Response};
use http_body_util::{BodyExt, Limited};
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

/// Largest request body a simulated BMC reads.
const MAX_BODY: usize = 64 * 1024;

/// One simulated BMC, serving.
pub struct SimulatedBmc {
    name: String,
    persona: Persona,
    state: Arc<Mutex<Bmc>>,
    faults: Arc<Mutex<FaultState>>,
    identity: TlsIdentity,
    site: SiteHandle,
}

/// How a BMC is set up, besides where it is served.
pub struct BmcSetup<'a> {
    /// Its name in the fleet.
    pub name: &'a str,
    /// Its persona.
    pub persona: Persona,
    /// The default account's password.
    pub password: &'a str,
    /// Faults from the start.
    pub faults: Faults,
    /// The clock it shares with its fleet.
    pub clock: LabClock,
    /// Counts requests that may have changed the state of any BMC that shares it (every method
    /// but GET and HEAD), so a lab that saves its state knows when to.
    pub changes: Arc<AtomicU64>,
}

impl SimulatedBmc {
    /// Starts `persona` on `bind` with its default account holding `password`, on a listener
    /// of its own.
    pub async fn start(
        name: &str,
        persona: Persona,
        password: &str,
        faults: Faults,
        clock: LabClock,
        bind: SocketAddr,
    ) -> anyhow::Result<SimulatedBmc> {
        let listener = Listener::bind(bind).await?;
        let identity = TlsIdentity::self_signed(&[name])?;
        let setup = BmcSetup { name, persona, password, faults, clock, changes: Arc::default() };
        SimulatedBmc::serve(&listener, bind.ip(), identity, setup)
    }

    /// Serves a BMC at `ip` on `listener` (one of a fleet), presenting `identity`.
    pub fn serve(
        listener: &Arc<Listener>,
        ip: IpAddr,
        identity: TlsIdentity,
        setup: BmcSetup<'_>,
    ) -> anyhow::Result<SimulatedBmc> {
        let down = setup.faults.down;
        let state = Arc::new(Mutex::new(Bmc::new(setup.persona.profile(), setup.clock, setup.password)));
        let faults = Arc::new(Mutex::new(FaultState::new(setup.faults)));
        let handler = handler(state.clone(), faults.clone(), setup.changes);
        let site = listener.add(ip, &identity, handler)?;
        site.set_down(down);
        Ok(SimulatedBmc { name: setup.name.to_owned(), persona: setup.persona, state, faults, identity, site })
    }

    /// Starts on a free loopback port with the persona's default account and no faults.
    pub async fn start_local(persona: Persona, password: &str) -> anyhow::Result<SimulatedBmc> {
        let bind = SocketAddr::from(([127, 0, 0, 1], 0));
        SimulatedBmc::start(persona.name(), persona, password, Faults::default(), LabClock::default(), bind).await
    }

    /// The BMC's name in the fleet.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Its persona.
    pub fn persona(&self) -> Persona {
        self.persona
    }

    /// Where it listens.
    pub fn addr(&self) -> SocketAddr {
        self.site.addr()
    }

    /// Its certificate's SHA-256 (pin it with `sha256:<hex>`).
    pub fn sha256(&self) -> [u8; 32] {
        self.identity.sha256
    }

    /// The TLS pin in bmc-rotate's policy syntax.
    pub fn pin(&self) -> String {
        self.identity.pin()
    }

    /// The certificate, PEM.
    pub fn cert_pem(&self) -> &str {
        self.identity.cert_pem()
    }

    /// The identity it presents (certificate and key).
    pub fn identity(&self) -> &TlsIdentity {
        &self.identity
    }

    /// The state machine, for introspection and set-up (accounts, lockouts, request log).
    pub fn state(&self) -> MutexGuard<'_, Bmc> {
        self.state.lock().expect("BMC state poisoned")
    }

    /// The state machine itself, shared, for a test that changes it from elsewhere while a run is
    /// under way (an administrator changing a password out of band, say).
    pub fn state_handle(&self) -> Arc<Mutex<Bmc>> {
        self.state.clone()
    }

    /// Replaces the faults (takes effect on the next request).
    pub fn set_faults(&self, faults: Faults) {
        self.site.set_down(faults.down);
        *self.faults.lock().expect("fault state poisoned") = FaultState::new(faults);
    }
}

fn handler(state: Arc<Mutex<Bmc>>, faults: Arc<Mutex<FaultState>>, changes: Arc<AtomicU64>) -> Handler {
    Arc::new(move |request: Request<hyper::body::Incoming>, peer: SocketAddr| {
        let (state, faults, changes) = (state.clone(), faults.clone(), changes.clone());
        Box::pin(async move {
            let (parts, body) = request.into_parts();
            let Ok(body) = Limited::new(body, MAX_BODY).collect().await.map(|b| b.to_bytes()) else {
                return Err(DropConnection);
            };
            let lab = LabRequest {
                method: parts.method.as_str().to_owned(),
                path: parts.uri.path().to_owned(),
                query: parts.uri.query().unwrap_or("").to_owned(),
                headers: parts
                    .headers
                    .iter()
                    .map(|(k, v)| (k.as_str().to_owned(), String::from_utf8_lossy(v.as_bytes()).into_owned()))
                    .collect(),
                body: body.to_vec(),
                peer: peer.ip(),
            };
            let (action, latency) = {
                let mut f = faults.lock().expect("fault state poisoned");
                let action = f.decide(&lab.method, &lab.path, parts.headers.contains_key("if-match"));
                let exhausted = f.faults.session_limit;
                state.lock().expect("BMC state poisoned").sessions_exhausted = exhausted;
                (action, f.latency())
            };
            if !latency.is_zero() {
                tokio::time::sleep(latency).await;
            }
            let fault = |status| state.lock().expect("BMC state poisoned").record_fault(&lab, status);
            let answer = match action {
                Action::Hang => {
                    fault(0);
                    std::future::pending().await
                }
                Action::Reset => {
                    fault(0);
                    return Err(DropConnection);
                }
                Action::Error500 => {
                    fault(500);
                    state.lock().expect("BMC state poisoned").in_dialect(&lab, crate::bmc::internal_error())
                }
                Action::NotFound => {
                    fault(404);
                    state.lock().expect("BMC state poisoned").in_dialect(&lab, crate::bmc::not_found(&lab.path))
                }
                Action::Stale412 => {
                    fault(412);
                    state.lock().expect("BMC state poisoned").in_dialect(&lab, crate::bmc::stale_etag())
                }
                Action::Serve | Action::ApplyThenDrop => state.lock().expect("BMC state poisoned").handle(&lab),
            };
            // Counted once applied, so a lab that saves on a new count saves the change.
            if lab.method != "GET" && lab.method != "HEAD" {
                changes.fetch_add(1, Ordering::Relaxed);
            }
            if action == Action::ApplyThenDrop {
                return Err(DropConnection);
            }
            if !answer.delay.is_zero() {
                tokio::time::sleep(answer.delay).await;
            }
            let mut response = Response::builder().status(answer.status);
            for (k, v) in &answer.headers {
                response = response.header(k, v);
            }
            let head = lab.method == "HEAD";
            let body = match (&answer.text, answer.body.is_null()) {
                (Some((content_type, text)), _) => {
                    response = response.header("content-type", *content_type);
                    if head { Body::empty() } else { Body::from(text.clone()) }
                }
                (None, true) => Body::empty(),
                (None, false) => {
                    if answer.header("content-type").is_none() {
                        response = response.header("content-type", "application/json; charset=utf-8");
                    }
                    if head { Body::empty() } else { Body::from(answer.body.to_string()) }
                }
            };
            Ok(response.body(body).expect("valid response"))
        })
    })
}

//! A scripted mock host: runs plugin logic natively under `cargo test`.
//!
//! The test writes the transcript the plugin should produce (method, path, optional header and
//! body checks) and the answers the BMC gives; the mock fails the test on the first request that
//! differs, and records every request with secrets shown by name (`<secret:new-password>`), so a
//! test can assert exactly where each secret went.
//!
//! ```
//! use bmc_plugin_sdk::prelude::*;
//! use bmc_plugin_sdk::testing::{MockHost, Reply};
//! use serde_json::json;
//!
//! let host = MockHost::new().bind(LOGIN_PASSWORD);
//! host.expect(Method::Get, "/redfish/v1/").reply(Reply::json(200, json!({"Vendor": "Acme"})));
//! let bmc = host.bmc();
//! let root = Redfish::anonymous(&bmc).service_root().unwrap();
//! assert_eq!(root.vendor, "Acme");
//! host.assert_done();
//! ```

use crate::http::{Auth, BodyPart, HttpError, Method, Request, Response};
use crate::plugin::{Backend, Level};
use crate::secret::Repr;
use crate::{Bmc, Secret};
use std::cell::RefCell;
use std::collections::VecDeque;
use std::rc::Rc;

/// A scripted BMC answer.
#[derive(Clone, Debug)]
pub struct Reply {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
    session_token: Option<String>,
}

impl Reply {
    /// An answer with a JSON body.
    pub fn json(status: u16, body: serde_json::Value) -> Self {
        Reply {
            status,
            headers: vec![("content-type".into(), "application/json".into())],
            body: body.to_string().into_bytes(),
            session_token: None,
        }
    }

    /// An answer without a body.
    pub fn empty(status: u16) -> Self {
        Reply { status, headers: Vec::new(), body: Vec::new(), session_token: None }
    }

    /// Adds a header (the name is lower-cased, as the host does).
    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.to_ascii_lowercase(), value.into()));
        self
    }

    /// Returns an `X-Auth-Token`; the plugin receives it as a secret shown as `<secret:session:TOKEN>`.
    pub fn session_token(mut self, token: &str) -> Self {
        self.session_token = Some(token.into());
        self
    }
}

/// A request as the plugin sent it, secrets shown by name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RecordedRequest {
    /// The method.
    pub method: Method,
    /// The path.
    pub path: String,
    /// The plugin's own headers.
    pub headers: Vec<(String, String)>,
    /// `none`, `basic USER <secret:NAME>` or `session <secret:session:TOKEN>`.
    pub auth: String,
    /// The body, each spliced secret shown as `<secret:NAME>`.
    pub body: String,
}

impl RecordedRequest {
    /// The first header of that name (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }
}

struct Step {
    method: Method,
    path: String,
    headers: Vec<(String, Option<String>)>,
    body_contains: Vec<String>,
    auth: Option<String>,
    outcome: Result<Reply, HttpError>,
}

#[derive(Default)]
struct State {
    bound: Vec<String>,
    script: VecDeque<Step>,
    requests: Vec<RecordedRequest>,
    logs: Vec<(Level, String)>,
    now_ms: u64,
}

/// The scripted host. Cheap to clone: clones share the transcript.
#[derive(Clone, Default)]
pub struct MockHost {
    state: Rc<RefCell<State>>,
}

/// One expected request, being described. Finish it with [`Expectation::reply`] or
/// [`Expectation::fail`].
#[must_use = "an expectation does nothing until it gets a reply"]
pub struct Expectation<'a> {
    host: &'a MockHost,
    step: Step,
}

impl Expectation<'_> {
    /// The request must carry this header with this value (case-insensitive name).
    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.step.headers.push((name.into(), Some(value.into())));
        self
    }

    /// The request must not carry this header.
    pub fn no_header(mut self, name: &str) -> Self {
        self.step.headers.push((name.into(), None));
        self
    }

    /// The rendered body must contain this text (secrets rendered as `<secret:NAME>`).
    pub fn body_contains(mut self, text: &str) -> Self {
        self.step.body_contains.push(text.into());
        self
    }

    /// The rendered auth must be exactly this (`none`, `basic USER <secret:NAME>`, `session ...`).
    pub fn auth(mut self, auth: &str) -> Self {
        self.step.auth = Some(auth.into());
        self
    }

    /// The BMC answers with `reply`.
    pub fn reply(mut self, reply: Reply) {
        self.step.outcome = Ok(reply);
        self.host.state.borrow_mut().script.push_back(self.step);
    }

    /// The host reports a transport failure instead of an answer.
    pub fn fail(mut self, error: HttpError) {
        self.step.outcome = Err(error);
        self.host.state.borrow_mut().script.push_back(self.step);
    }
}

impl MockHost {
    /// A host with no secrets bound and an empty transcript.
    pub fn new() -> Self {
        MockHost::default()
    }

    /// Binds a secret name (e.g. `login-password`), as the real host does per call.
    pub fn bind(self, name: &str) -> Self {
        self.state.borrow_mut().bound.push(name.into());
        self
    }

    /// Expects the next request to be `method path`.
    pub fn expect(&self, method: Method, path: &str) -> Expectation<'_> {
        Expectation {
            host: self,
            step: Step {
                method,
                path: path.into(),
                headers: Vec::new(),
                body_contains: Vec::new(),
                auth: None,
                outcome: Err(HttpError::Denied("no reply scripted".into())),
            },
        }
    }

    /// The [`Bmc`] handle to pass to the plugin.
    pub fn bmc(&self) -> Bmc {
        Bmc::new(Box::new(self.clone()))
    }

    /// Every request the plugin sent, in order.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.state.borrow().requests.clone()
    }

    /// Every log line the plugin wrote.
    pub fn logs(&self) -> Vec<(Level, String)> {
        self.state.borrow().logs.clone()
    }

    /// Milliseconds the plugin slept in total (the mock clock advances instead of waiting).
    pub fn slept_ms(&self) -> u64 {
        self.state.borrow().now_ms
    }

    /// Panics if part of the transcript was not used.
    #[track_caller]
    pub fn assert_done(&self) {
        let state = self.state.borrow();
        if let Some(next) = state.script.front() {
            panic!(
                "the plugin stopped before the transcript ended: {} more step(s), next `{} {}`",
                state.script.len(),
                next.method.as_str(),
                next.path
            );
        }
    }
}

fn render_secret(secret: &Secret) -> String {
    match &secret.0 {
        Repr::Mock(label) => format!("<secret:{label}>"),
        Repr::Host(_) => panic!("a real host secret reached the MockHost"),
    }
}

fn render(request: &Request<'_>) -> RecordedRequest {
    let auth = match request.auth {
        Auth::None => "none".to_owned(),
        Auth::Basic { user, password } => format!("basic {user} {}", render_secret(password)),
        Auth::Session(token) => format!("session {}", render_secret(token)),
    };
    let body = request
        .body
        .iter()
        .map(|part| match part {
            BodyPart::Text(t) => t.clone(),
            BodyPart::SecretJsonString(s) => render_secret(s),
        })
        .collect();
    RecordedRequest { method: request.method, path: request.path.clone(), headers: request.headers.clone(), auth, body }
}

impl Backend for MockHost {
    fn secret(&self, name: &str) -> Result<Secret, String> {
        let state = self.state.borrow();
        if state.bound.iter().any(|n| n == name) {
            Ok(Secret(Repr::Mock(name.into())))
        } else {
            Err(format!("`{name}` is not bound for this call (bound: {})", state.bound.join(", ")))
        }
    }

    fn send(&self, request: &Request<'_>) -> Result<Response, HttpError> {
        let recorded = render(request);
        let mut state = self.state.borrow_mut();
        state.requests.push(recorded.clone());
        let Some(step) = state.script.pop_front() else {
            panic!("unexpected request after the transcript ended: {} {}", recorded.method.as_str(), recorded.path);
        };
        assert!(
            step.method == recorded.method && step.path == recorded.path,
            "expected `{} {}`, the plugin sent `{} {}`",
            step.method.as_str(),
            step.path,
            recorded.method.as_str(),
            recorded.path
        );
        for (name, want) in &step.headers {
            assert_eq!(
                recorded.header(name),
                want.as_deref(),
                "header `{name}` of `{} {}`",
                recorded.method.as_str(),
                recorded.path
            );
        }
        for text in &step.body_contains {
            assert!(
                recorded.body.contains(text),
                "body of `{} {}` lacks `{text}`: {}",
                recorded.method.as_str(),
                recorded.path,
                recorded.body
            );
        }
        if let Some(auth) = &step.auth {
            assert_eq!(&recorded.auth, auth, "auth of `{} {}`", recorded.method.as_str(), recorded.path);
        }
        let reply = step.outcome?;
        Ok(Response {
            status: reply.status,
            headers: reply.headers,
            body: reply.body,
            session_token: reply.session_token.map(|t| Secret(Repr::Mock(format!("session:{t}")))),
        })
    }

    fn log(&self, level: Level, message: &str) {
        self.state.borrow_mut().logs.push((level, message.into()));
    }

    fn now_ms(&self) -> u64 {
        self.state.borrow().now_ms
    }

    fn sleep_ms(&self, ms: u32) {
        self.state.borrow_mut().now_ms += u64::from(ms);
    }
}

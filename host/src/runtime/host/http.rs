//! `http`: the guest's requests to the one BMC of its job, through an [`Outbound`] (the
//! gateway), with the job's request budget. Every request passes the [`Guard`] first (the
//! plugin's capability manifest and the secret placement rules); every answer is searched for
//! the job's secrets before the guest may read it, and one that holds a secret ends the call
//! instead ([`Ended`]): the guest never reads an answer from which something was removed, so
//! neither a rewrite nor its length can tell it anything. A session token the BMC issues becomes
//! a handle, never text.

use super::guard::{Admitted, Guard};
use super::secrets::SecretHandle;
use crate::gateway::echo::EchoDetector;
use crate::gateway::redact::Redactor;
use crate::gateway::{self, Failure, Outbound, Request};
use crate::runtime::contract::untrusted;
use crate::runtime::limits::JobLimits;
use secrecy::ExposeSecret;
use serde_json::Value;
use std::sync::Arc;
use std::time::Instant;
use wasmtime::component::{Resource, ResourceTable};

/// A job's HTTP state: where requests go, how many are left, what the guard has learned.
pub struct HttpCtx {
    outbound: Option<Arc<dyn Outbound>>,
    requests_left: u32,
    deadline: Instant,
    plugin: String,
    guard: Guard,
    /// Why the host ended the call, if it did.
    pub(crate) ended: Option<Ended>,
}

impl HttpCtx {
    /// HTTP for `plugin` through `outbound` (none: every request is denied), until `deadline`,
    /// every request checked by `guard`.
    pub fn new(plugin: &str, outbound: Option<Arc<dyn Outbound>>, deadline: Instant, guard: Guard) -> HttpCtx {
        let requests_left = outbound.as_ref().map_or(0, |o| o.max_requests_per_job());
        HttpCtx { outbound, requests_left, deadline, plugin: plugin.to_owned(), guard, ended: None }
    }

    /// The BMC, as shown in logs; `-` when the job has none.
    pub fn bmc(&self) -> String {
        self.outbound.as_ref().map_or_else(|| "-".to_owned(), |o| o.bmc())
    }
}

/// Why a request produced no answer: a refusal the guest is told about (the contract's
/// `http-error`), or a trap that ends the guest (a stale handle, a full resource table, an
/// answer holding a secret).
#[derive(Debug)]
pub enum SendError {
    /// No answer, for a reason the guest may act on.
    Failed(Failure),
    /// The guest broke the contract, or must not go on; the call traps.
    Trap(wasmtime::Error),
}

impl From<Failure> for SendError {
    fn from(failure: Failure) -> Self {
        SendError::Failed(failure)
    }
}

impl From<wasmtime::Error> for SendError {
    fn from(trap: wasmtime::Error) -> Self {
        SendError::Trap(trap)
    }
}

/// Why the host ended a call from inside `send`: the BMC's answer held a secret, or the BMC
/// is not the one pinned.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Ended {
    /// The answer to a password change refused it and quoted the value (Dell's and Lenovo's
    /// `PropertyValueFormatError`): a policy refusal, the value withheld. The vendor's messages
    /// go to the operator, never to the plugin.
    #[error("the BMC refused the new password (HTTP {status}): {messages} [the value it quoted is withheld]")]
    PolicyRejected {
        /// The HTTP status.
        status: u16,
        /// The answer's Redfish messages, each secret in them replaced; a message in which a
        /// secret is still recognisable is reduced to its id.
        messages: String,
    },
    /// Any other answer holding a secret.
    #[error(
        "the BMC's answer to {request} (HTTP {status}) contained a secret of this job; the call was ended before the \
         plugin could read it"
    )]
    SecretEchoed {
        /// Method and path of the request.
        request: String,
        /// The HTTP status.
        status: u16,
    },
    /// The BMC presented another certificate than its pin. Ended rather than told to the plugin:
    /// a plugin would report it as `unreachable`, and the operator must see it for what it is.
    #[error("{}", gateway::certificate_changed(pinned, presented))]
    CertificateChanged {
        /// The pin.
        pinned: [u8; 32],
        /// The SHA-256 of the certificate presented.
        presented: [u8; 32],
    },
}

/// The BMC's answer as the guest receives it.
pub struct Reply {
    /// HTTP status.
    pub status: u16,
    /// Headers.
    pub headers: Vec<(String, String)>,
    /// Body.
    pub body: Vec<u8>,
    /// The session token the BMC issued, as a handle.
    pub session_token: Option<Resource<SecretHandle>>,
}

/// The `http` import over one job's HTTP state, resource table, and the secrets it must keep
/// out of the guest's reach (searched in answers) and out of logs (scrubbed).
pub struct HttpView<'a> {
    pub(crate) ctx: &'a mut HttpCtx,
    pub(crate) table: &'a mut ResourceTable,
    pub(crate) redactor: &'a mut Redactor,
    pub(crate) detector: &'a mut EchoDetector,
    pub(crate) limits: &'a mut JobLimits,
}

impl HttpView<'_> {
    /// The secret behind a handle the guest passed in a request.
    pub fn secret(&self, handle: &Resource<SecretHandle>) -> wasmtime::Result<Arc<secrecy::SecretString>> {
        super::secrets::resolve(self.table, handle)
    }

    /// Sends one request and returns the answer, or ends the call if the answer holds a secret.
    pub async fn request(&mut self, request: Request) -> Result<Reply, SendError> {
        let Some(outbound) = self.ctx.outbound.clone() else {
            return Err(Failure::Denied("this call has no BMC: HTTP is not available".into()).into());
        };
        if let Some(ended) = &self.ctx.ended {
            return Err(wasmtime::Error::msg(ended.to_string()).into());
        }
        if self.ctx.requests_left == 0 {
            return Err(Failure::Denied(format!(
                "request limit reached: a job may send at most {} requests",
                outbound.max_requests_per_job()
            ))
            .into());
        }
        self.ctx.requests_left -= 1;
        // Sizes first: nothing the guest chose may cost the host more than these bounds.
        gateway::request::check_sizes(&request).map_err(Failure::Denied)?;
        let admitted = self.ctx.guard.admit(&request).map_err(Failure::Forbidden)?;
        if let gateway::Auth::Basic { user, password } = &request.auth {
            self.keep_form(gateway::request::basic_token(user, password).as_bytes())?;
        }
        let inbound = match outbound.send(&request, Some(self.ctx.deadline)).await {
            Err(Failure::CertificateChanged { pinned, presented }) => {
                return Err(self.end_with(Ended::CertificateChanged { pinned, presented }, outbound.as_ref()));
            }
            sent => sent?,
        };
        // The token joins the job's secrets before the answer is searched: a body repeating it
        // is an echo like any other.
        let session_token = match inbound.session_token {
            Some(token) => {
                let held = self.held();
                self.redactor.add_session_token(&token);
                self.detector.add_session_token(&token);
                self.limits.charge(self.held() - held + token.expose_secret().len())?;
                Some(self.table.push(SecretHandle(Arc::new(token))).map_err(wasmtime::Error::from)?)
            }
            None => None,
        };
        let echoed = self.detector.found_in(&inbound.body)
            || inbound
                .headers
                .iter()
                .any(|(k, v)| self.detector.found_in(k.as_bytes()) || self.detector.found_in(v.as_bytes()));
        if echoed {
            return Err(self.end(&request, &admitted, inbound.status, &inbound.body, outbound.as_ref()));
        }
        self.ctx.guard.observe(&admitted, inbound.status, &inbound.headers, &inbound.body);
        Ok(Reply { status: inbound.status, headers: inbound.headers, body: inbound.body, session_token })
    }

    fn held(&self) -> usize {
        self.redactor.held_bytes() + self.detector.held_bytes()
    }

    /// Keeps a form of a secret the host built (the Basic credential), for search and scrub.
    fn keep_form(&mut self, form: &[u8]) -> Result<(), SendError> {
        let held = self.held();
        self.redactor.add_form(form);
        self.detector.add_form(form);
        self.limits.charge(self.held() - held)?;
        Ok(())
    }

    /// Ends the call: records why, and traps so the guest never reads the answer.
    fn end(
        &mut self,
        request: &Request,
        admitted: &Admitted,
        status: u16,
        body: &[u8],
        bmc: &dyn Outbound,
    ) -> SendError {
        let ended = if *admitted == Admitted::PasswordChange && (400..500).contains(&status) {
            Ended::PolicyRejected { status, messages: refusal(body, self.redactor, self.detector) }
        } else {
            let (path, _) = super::guard::normalise(&request.path).unwrap_or_default();
            Ended::SecretEchoed { request: format!("{} {}", request.method, untrusted(&path, 200)), status }
        };
        self.end_with(ended, bmc)
    }

    /// Ends the call for `ended`.
    fn end_with(&mut self, ended: Ended, bmc: &dyn Outbound) -> SendError {
        tracing::warn!(plugin = %self.ctx.plugin, bmc = %bmc.bmc(), "{ended}");
        let trap = wasmtime::Error::msg(ended.to_string());
        self.ctx.ended = Some(ended);
        SendError::Trap(trap)
    }
}

/// The Redfish messages of a refusal, for the operator: each `MessageId` with its `Message`,
/// secrets scrubbed; a message in which the detector still finds a secret (an encoding the
/// scrubber does not undo) keeps only its id.
fn refusal(body: &[u8], redactor: &Redactor, detector: &EchoDetector) -> String {
    fn collect(value: &Value, out: &mut Vec<(String, String)>) {
        match value {
            Value::Object(map) => {
                if let Some(id) = map.get("MessageId").and_then(Value::as_str) {
                    let message = map.get("Message").and_then(Value::as_str).unwrap_or_default();
                    out.push((id.to_owned(), message.to_owned()));
                }
                map.values().for_each(|v| collect(v, out));
            }
            Value::Array(items) => items.iter().for_each(|v| collect(v, out)),
            _ => {}
        }
    }
    let mut messages = Vec::new();
    if let Ok(value) = serde_json::from_slice::<Value>(body) {
        collect(&value, &mut messages);
    }
    let shown: Vec<String> = messages
        .iter()
        .take(4)
        .filter(|(id, _)| !detector.found_in(id.as_bytes()))
        .map(|(id, message)| {
            let message = redactor.scrub_str(message);
            if message.is_empty() || detector.found_in(message.as_bytes()) {
                untrusted(id, 128)
            } else {
                format!("{}: {}", untrusted(id, 128), untrusted(&message, 512))
            }
        })
        .collect();
    if shown.is_empty() { "no Redfish message".to_owned() } else { shown.join("; ") }
}

#[cfg(test)]
mod tests {
    //! The import called as a guest would call it, against a scripted BMC: no wasm, no socket.

    use super::*;
    use crate::gateway::{Auth, Method, Part, Response};
    use crate::runtime::capabilities::Manifest;
    use crate::runtime::contract::Target;
    use crate::runtime::host::guard::Call;
    use crate::runtime::host::secrets::{SecretBindings, SecretName, SecretsView};
    use secrecy::{ExposeSecret, SecretString};
    use std::future::Future;
    use std::pin::Pin;
    use std::sync::atomic::{AtomicU32, Ordering};
    use std::time::Duration;

    const PASSWORD: &str = r#"Old"Pass\1ü"#;
    const NEW: &str = "NewPass-2xyz";
    const TOKEN: &str = "Tok-Secret-99";
    const ACCOUNT: &str = "/redfish/v1/AccountService/Accounts/3";

    /// A BMC that reflects what it is sent: the body as it went on the wire and the credentials
    /// it received, and issues a session token in a header. `/leak-token` repeats the token in
    /// its body; a PATCH of the account is refused quoting the value, as Dell and Lenovo do.
    #[derive(Default)]
    struct EchoBmc {
        sent: AtomicU32,
    }

    impl Outbound for EchoBmc {
        fn bmc(&self) -> String {
            "echo".into()
        }

        fn max_requests_per_job(&self) -> u32 {
            4
        }

        fn send<'a>(
            &'a self,
            request: &'a Request,
            _deadline: Option<Instant>,
        ) -> Pin<Box<dyn Future<Output = Result<Response, Failure>> + Send + 'a>> {
            self.sent.fetch_add(1, Ordering::Relaxed);
            let auth = match &request.auth {
                Auth::None => String::new(),
                Auth::Basic { user, password } => {
                    format!("Basic {}", gateway::request::basic_token(user, password).as_str())
                }
                Auth::Session(token) => token.expose_secret().to_owned(),
            };
            let wire = String::from_utf8_lossy(&gateway::request::splice(&request.body)).into_owned();
            let (status, body) = match (request.method, request.path.as_str()) {
                (Method::Get, ACCOUNT) => (
                    200,
                    serde_json::json!({"@odata.type": "#ManagerAccount.v1_12_0.ManagerAccount", "Id": "3", "UserName": "azsbmc"}),
                ),
                (Method::Patch, ACCOUNT) => (
                    400,
                    serde_json::json!({"error": {"@Message.ExtendedInfo": [{
                        "MessageId": "Base.1.8.PropertyValueFormatError",
                        "Message": format!("The value {wire} for the property Password is of a different format"),
                    }]}}),
                ),
                (_, "/leak-token") => (200, serde_json::json!({ "token": TOKEN })),
                _ => (200, serde_json::json!({ "echo": wire, "auth": auth })),
            };
            let response = Response {
                status,
                headers: vec![("x-seen".into(), if auth.is_empty() { "-".into() } else { "auth".into() })],
                body: body.to_string().into_bytes(),
                session_token: Some(SecretString::from(TOKEN.to_owned())),
            };
            Box::pin(async move { Ok(response) })
        }
    }

    struct Job {
        http: HttpCtx,
        table: ResourceTable,
        redactor: Redactor,
        detector: EchoDetector,
        limits: JobLimits,
        bound: SecretBindings,
    }

    impl Job {
        fn new(outbound: Option<Arc<dyn Outbound>>) -> Job {
            let bound = SecretBindings::new()
                .bind(SecretName::LoginPassword, Arc::new(SecretString::from(PASSWORD.to_owned())))
                .bind(SecretName::NewPassword, Arc::new(SecretString::from(NEW.to_owned())));
            let mut redactor = Redactor::new();
            let mut detector = EchoDetector::new();
            bound.secrets().for_each(|s| {
                redactor.add_secret(s);
                detector.add_secret(s);
            });
            let manifest =
                Manifest::parse(&format!("{}POST /echo\nGET /leak-token\n", crate::runtime::capabilities::BASELINE));
            let target = Target { address: "echo".into(), account: "azsbmc".into(), login_account: "root".into() };
            let guard = Guard::new(Arc::new(manifest.unwrap()), Call::ChangePassword, Some(target), bound.clone());
            let http = HttpCtx::new("test", outbound, Instant::now() + Duration::from_secs(30), guard);
            Job { http, table: ResourceTable::new(), redactor, detector, limits: JobLimits::new(64 << 20), bound }
        }

        fn view(&mut self) -> HttpView<'_> {
            HttpView {
                ctx: &mut self.http,
                table: &mut self.table,
                redactor: &mut self.redactor,
                detector: &mut self.detector,
                limits: &mut self.limits,
            }
        }

        fn secret(&mut self, name: SecretName) -> Arc<SecretString> {
            let handle =
                SecretsView { bound: &self.bound, table: &mut self.table }.get(name.as_str()).unwrap().unwrap();
            self.view().secret(&handle).unwrap()
        }
    }

    fn request(method: Method, path: &str, auth: Auth, body: Vec<Part>) -> Request {
        Request { method, path: path.into(), headers: vec![], auth, body }
    }

    fn post(path: &str, auth: Auth) -> Request {
        request(Method::Post, path, auth, vec![Part::Text("{}".into())])
    }

    fn ended(answer: Result<Reply, SendError>) -> String {
        match answer {
            Err(SendError::Trap(trap)) => trap.to_string(),
            Err(SendError::Failed(f)) => panic!("expected the call to end, got {f:?}"),
            Ok(reply) => panic!("expected the call to end, got HTTP {}", reply.status),
        }
    }

    #[tokio::test]
    async fn without_a_bmc_http_is_denied() {
        let mut job = Job::new(None);
        let answer = job.view().request(post("/echo", Auth::None)).await;
        assert!(matches!(answer, Err(SendError::Failed(Failure::Denied(m))) if m.contains("no BMC")));
    }

    #[tokio::test]
    async fn an_echoed_credential_ends_the_call_and_no_answer_is_read_after_it() {
        let bmc = Arc::new(EchoBmc::default());
        let mut job = Job::new(Some(bmc.clone()));
        let login = job.secret(SecretName::LoginPassword);
        let answer = job.view().request(post("/echo", Auth::Basic { user: "root".into(), password: login })).await;
        let text = ended(answer);
        assert!(text.contains("POST /echo") && text.contains("contained a secret"), "{text}");
        assert!(!text.contains(PASSWORD), "{text}");
        assert!(matches!(job.http.ended, Some(Ended::SecretEchoed { status: 200, .. })));
        // The call is over: nothing more is sent.
        ended(job.view().request(post("/echo", Auth::None)).await);
        assert_eq!(bmc.sent.load(Ordering::Relaxed), 1);
    }

    #[tokio::test]
    async fn an_issued_token_repeated_in_the_body_ends_the_call() {
        let mut job = Job::new(Some(Arc::new(EchoBmc::default())));
        // Without an echo the token comes back as a handle that works as a credential.
        let answer = job.view().request(post("/echo", Auth::None)).await.unwrap();
        let token = job.view().secret(&answer.session_token.expect("token handle")).unwrap();
        assert_eq!(token.expose_secret(), TOKEN);
        assert!(!String::from_utf8_lossy(&answer.body).contains(TOKEN));
        let text = ended(job.view().request(request(Method::Get, "/leak-token", Auth::None, vec![])).await);
        assert!(text.contains("GET /leak-token"), "{text}");
    }

    #[tokio::test]
    async fn a_refusal_quoting_the_new_password_is_a_policy_refusal_with_the_value_withheld() {
        let mut job = Job::new(Some(Arc::new(EchoBmc::default())));
        let new = job.secret(SecretName::NewPassword);
        job.view().request(request(Method::Get, ACCOUNT, Auth::None, vec![])).await.unwrap();
        let body = vec![Part::Text(r#"{"Password":"#.into()), Part::SecretJson(new), Part::Text("}".into())];
        let text = ended(job.view().request(request(Method::Patch, ACCOUNT, Auth::None, body)).await);
        assert!(!text.contains(NEW), "{text}");
        let Some(Ended::PolicyRejected { status: 400, messages }) = &job.http.ended else {
            panic!("expected a policy refusal, got {:?}", job.http.ended)
        };
        assert!(messages.starts_with("Base.1.8.PropertyValueFormatError: The value "), "{messages}");
        assert!(messages.contains("<redacted>") && !messages.contains(NEW), "{messages}");
    }

    #[tokio::test]
    async fn a_forbidden_request_is_refused_before_sending() {
        let bmc = Arc::new(EchoBmc::default());
        let mut job = Job::new(Some(bmc.clone()));
        let new = job.secret(SecretName::NewPassword);
        let body = vec![
            Part::Text(r#"{"UserName":"guess","Password":"#.into()),
            Part::SecretJson(new),
            Part::Text("}".into()),
        ];
        let answer =
            job.view().request(request(Method::Post, "/redfish/v1/AccountService/Accounts", Auth::None, body)).await;
        assert!(matches!(answer, Err(SendError::Failed(Failure::Forbidden(_)))));
        let answer = job.view().request(request(Method::Delete, ACCOUNT, Auth::None, vec![])).await;
        assert!(matches!(answer, Err(SendError::Failed(Failure::Forbidden(m))) if m.contains("capability manifest")));
        assert_eq!(bmc.sent.load(Ordering::Relaxed), 0);
    }

    #[tokio::test]
    async fn oversized_requests_are_refused_before_the_host_keeps_anything() {
        let bmc = Arc::new(EchoBmc::default());
        let mut job = Job::new(Some(bmc.clone()));
        let password = job.secret(SecretName::LoginPassword);
        let held = job.redactor.held_bytes() + job.detector.held_bytes();
        let user = "u".repeat(2 << 20);
        let answer = job.view().request(post("/echo", Auth::Basic { user, password })).await;
        assert!(matches!(answer, Err(SendError::Failed(Failure::Denied(m))) if m.contains("user name")));
        assert_eq!(job.redactor.held_bytes() + job.detector.held_bytes(), held, "nothing kept for a refused request");
        assert_eq!(job.limits.host_bytes(), 0);
        assert_eq!(bmc.sent.load(Ordering::Relaxed), 0);
    }

    #[tokio::test]
    async fn what_the_host_keeps_for_the_guest_is_charged_to_its_budget() {
        let mut job = Job::new(Some(Arc::new(EchoBmc::default())));
        job.limits = JobLimits::new(16);
        let password = job.secret(SecretName::LoginPassword);
        let answer = job.view().request(post("/echo", Auth::Basic { user: "root".into(), password })).await;
        assert!(ended(answer).contains("memory limit"));
    }

    #[tokio::test]
    async fn requests_per_job_are_capped_before_sending() {
        let bmc = Arc::new(EchoBmc::default());
        let mut job = Job::new(Some(bmc.clone()));
        for _ in 0..4 {
            assert!(job.view().request(post("/echo", Auth::None)).await.is_ok());
        }
        let fifth = job.view().request(post("/echo", Auth::None)).await;
        assert!(matches!(fifth, Err(SendError::Failed(Failure::Denied(m))) if m.contains("at most 4 requests")));
        assert_eq!(bmc.sent.load(Ordering::Relaxed), 4);
    }
}

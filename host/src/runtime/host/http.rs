//! `http`: the guest's requests to the one BMC of its job, through an [`Outbound`] (the
//! gateway), with the job's request budget, and answers scrubbed of every secret of the job
//! before the guest reads them. A session token the BMC issues becomes a handle, never text.

use super::secrets::SecretHandle;
use crate::gateway::redact::Redactor;
use crate::gateway::{self, Failure, Outbound, Request};
use crate::runtime::limits::JobLimits;
use secrecy::ExposeSecret;
use std::sync::Arc;
use std::time::Instant;
use wasmtime::component::{Resource, ResourceTable};

/// A job's HTTP state: where requests go and how many are left.
pub struct HttpCtx {
    outbound: Option<Arc<dyn Outbound>>,
    requests_left: u32,
    deadline: Instant,
    plugin: String,
}

impl HttpCtx {
    /// HTTP for `plugin` through `outbound` (none: every request is denied), until `deadline`.
    pub fn new(plugin: &str, outbound: Option<Arc<dyn Outbound>>, deadline: Instant) -> HttpCtx {
        let requests_left = outbound.as_ref().map_or(0, |o| o.max_requests_per_job());
        HttpCtx { outbound, requests_left, deadline, plugin: plugin.to_owned() }
    }

    /// The BMC, as shown in logs; `-` when the job has none.
    pub fn bmc(&self) -> String {
        self.outbound.as_ref().map_or_else(|| "-".to_owned(), |o| o.bmc())
    }
}

/// Why a request produced no answer: a refusal the guest is told about (the contract's
/// `http-error`), or a trap that ends the guest (a stale handle, a full resource table).
#[derive(Debug)]
pub enum SendError {
    /// No answer, for a reason the guest may act on.
    Failed(Failure),
    /// The guest broke the contract; the call traps.
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

/// The BMC's answer as the guest receives it.
pub struct Reply {
    /// HTTP status.
    pub status: u16,
    /// Headers, scrubbed.
    pub headers: Vec<(String, String)>,
    /// Body, scrubbed.
    pub body: Vec<u8>,
    /// The session token the BMC issued, as a handle.
    pub session_token: Option<Resource<SecretHandle>>,
}

/// The `http` import over one job's HTTP state, resource table and redactor.
pub struct HttpView<'a> {
    pub(crate) ctx: &'a mut HttpCtx,
    pub(crate) table: &'a mut ResourceTable,
    pub(crate) redactor: &'a mut Redactor,
    pub(crate) limits: &'a mut JobLimits,
}

impl HttpView<'_> {
    /// The secret behind a handle the guest passed in a request.
    pub fn secret(&self, handle: &Resource<SecretHandle>) -> wasmtime::Result<Arc<secrecy::SecretString>> {
        super::secrets::resolve(self.table, handle)
    }

    /// Sends one request and returns the scrubbed answer.
    pub async fn request(&mut self, request: Request) -> Result<Reply, SendError> {
        let Some(outbound) = self.ctx.outbound.clone() else {
            return Err(Failure::Denied("this call has no BMC: HTTP is not available".into()).into());
        };
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
        if let gateway::Auth::Basic { user, password } = &request.auth {
            let held = self.redactor.held_bytes();
            self.redactor.add_form(gateway::request::basic_token(user, password).as_bytes());
            self.limits.charge(self.redactor.held_bytes() - held)?;
        }
        let inbound = outbound.send(&request, Some(self.ctx.deadline)).await?;
        let session_token = match inbound.session_token {
            Some(token) => {
                let held = self.redactor.held_bytes();
                self.redactor.add_secret(&token);
                self.limits.charge(self.redactor.held_bytes() - held + token.expose_secret().len())?;
                Some(self.table.push(SecretHandle(Arc::new(token))).map_err(wasmtime::Error::from)?)
            }
            None => None,
        };
        // Scrub after capturing the token, so a body repeating the token is scrubbed too.
        let mut body = inbound.body;
        if self.redactor.scrub(&mut body) {
            tracing::warn!(plugin = %self.ctx.plugin, bmc = %outbound.bmc(), "the BMC echoed a secret; it was redacted before the plugin saw it");
        }
        let headers = inbound.headers.into_iter().map(|(k, v)| (k, self.redactor.scrub_str(&v))).collect();
        Ok(Reply { status: inbound.status, headers, body, session_token })
    }
}

#[cfg(test)]
mod tests {
    //! The import called as a guest would call it, against a scripted BMC: no wasm, no socket.

    use super::*;
    use crate::gateway::{Auth, Method, Part, Response};
    use crate::runtime::host::secrets::{SecretBindings, SecretName, SecretsView};
    use secrecy::{ExposeSecret, SecretString};
    use std::future::Future;
    use std::pin::Pin;
    use std::sync::atomic::{AtomicU32, Ordering};
    use std::time::Duration;

    const PASSWORD: &str = r#"Old"Pass\1ü"#;
    const TOKEN: &str = "Tok-Secret-99";

    /// A BMC that reflects everything: the request body as it would go on the wire, the
    /// credentials it received, and a token it issues (in a header and in its own body).
    #[derive(Default)]
    struct EchoBmc {
        sent: AtomicU32,
    }

    impl Outbound for EchoBmc {
        fn bmc(&self) -> String {
            "echo".into()
        }

        fn max_requests_per_job(&self) -> u32 {
            2
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
            let wire = gateway::request::splice(&request.body);
            let body = format!(
                r#"{{"echo":{},"auth":"{auth}","issued":"{TOKEN}"}}"#,
                serde_json::to_string(&String::from_utf8_lossy(&wire)).unwrap()
            );
            let response = Response {
                status: 200,
                headers: vec![("x-echo-auth".into(), auth)],
                body: body.into_bytes(),
                session_token: Some(SecretString::from(TOKEN.to_owned())),
            };
            Box::pin(async move { Ok(response) })
        }
    }

    struct Job {
        http: HttpCtx,
        table: ResourceTable,
        redactor: Redactor,
        limits: JobLimits,
        bound: SecretBindings,
    }

    impl Job {
        fn new(outbound: Option<Arc<dyn Outbound>>) -> Job {
            let bound = SecretBindings::new()
                .bind(SecretName::LoginPassword, Arc::new(SecretString::from(PASSWORD.to_owned())))
                .bind(SecretName::NewPassword, Arc::new(SecretString::from("NewPass-2".to_owned())));
            let mut redactor = Redactor::new();
            bound.secrets().for_each(|s| redactor.add_secret(s));
            let http = HttpCtx::new("test", outbound, Instant::now() + Duration::from_secs(30));
            Job { http, table: ResourceTable::new(), redactor, limits: JobLimits::new(64 << 20), bound }
        }

        fn view(&mut self) -> HttpView<'_> {
            HttpView {
                ctx: &mut self.http,
                table: &mut self.table,
                redactor: &mut self.redactor,
                limits: &mut self.limits,
            }
        }

        fn secret(&mut self, name: SecretName) -> Arc<SecretString> {
            let handle =
                SecretsView { bound: &self.bound, table: &mut self.table }.get(name.as_str()).unwrap().unwrap();
            self.view().secret(&handle).unwrap()
        }
    }

    fn post(path: &str, auth: Auth, body: Vec<Part>) -> Request {
        Request { method: Method::Post, path: path.into(), headers: vec![], auth, body }
    }

    #[tokio::test]
    async fn without_a_bmc_http_is_denied() {
        let mut job = Job::new(None);
        let answer = job.view().request(post("/x", Auth::None, vec![])).await;
        assert!(matches!(answer, Err(SendError::Failed(Failure::Denied(m))) if m.contains("no BMC")));
    }

    #[tokio::test]
    async fn echoed_secrets_never_reach_the_guest() {
        let mut job = Job::new(Some(Arc::new(EchoBmc::default())));
        let login = job.secret(SecretName::LoginPassword);
        let new = job.secret(SecretName::NewPassword);
        let body = vec![
            Part::Text("{\"a\":".into()),
            Part::SecretJson(login.clone()),
            Part::Text(",\"b\":".into()),
            Part::SecretJson(new),
            Part::Text("}".into()),
        ];
        let auth = Auth::Basic { user: "root".into(), password: login };
        let answer = job.view().request(post("/echo", auth, body)).await.unwrap();
        let text = String::from_utf8(answer.body.clone()).unwrap();
        let basic = gateway::request::basic_token("root", &SecretString::from(PASSWORD.to_owned()));
        for leak in [PASSWORD, r#"Old\"Pass\\1ü"#, "NewPass-2", TOKEN, basic.as_str()] {
            assert!(!text.contains(leak), "`{leak}` reached the guest: {text}");
            assert!(answer.headers.iter().all(|(_, v)| !v.contains(leak)), "`{leak}` in headers");
        }
        assert!(text.contains("<redacted>"), "{text}");
        // The token came back as a handle that works as a credential, and is scrubbed when echoed.
        let token = answer.session_token.expect("token handle");
        let token = job.view().secret(&token).unwrap();
        assert_eq!(token.expose_secret(), TOKEN);
        let again = job.view().request(post("/echo", Auth::Session(token), vec![])).await.unwrap();
        let text = String::from_utf8(again.body).unwrap();
        assert!(text.contains(r#""auth":"<redacted>""#), "{text}");
    }

    #[tokio::test]
    async fn oversized_requests_are_refused_before_the_host_keeps_anything() {
        let bmc = Arc::new(EchoBmc::default());
        let mut job = Job::new(Some(bmc.clone()));
        let password = job.secret(SecretName::LoginPassword);
        let held = job.redactor.held_bytes();
        let user = "u".repeat(2 << 20);
        let answer = job.view().request(post("/echo", Auth::Basic { user, password }, vec![])).await;
        assert!(matches!(answer, Err(SendError::Failed(Failure::Denied(m))) if m.contains("user name")));
        assert_eq!(job.redactor.held_bytes(), held, "no needle was added for a refused request");
        assert_eq!(job.limits.host_bytes(), 0);
        assert_eq!(bmc.sent.load(Ordering::Relaxed), 0);
    }

    #[tokio::test]
    async fn what_the_host_keeps_for_the_guest_is_charged_to_its_budget() {
        let mut job = Job::new(Some(Arc::new(EchoBmc::default())));
        job.limits = JobLimits::new(16);
        let password = job.secret(SecretName::LoginPassword);
        let answer = job.view().request(post("/echo", Auth::Basic { user: "root".into(), password }, vec![])).await;
        match answer {
            Err(SendError::Trap(trap)) => assert!(trap.to_string().contains("memory limit"), "{trap}"),
            Err(SendError::Failed(f)) => panic!("expected a trap, got {f:?}"),
            Ok(_) => panic!("expected a trap, got an answer"),
        }
    }

    #[tokio::test]
    async fn requests_per_job_are_capped_before_sending() {
        let bmc = Arc::new(EchoBmc::default());
        let mut job = Job::new(Some(bmc.clone()));
        for _ in 0..2 {
            assert!(job.view().request(post("/echo", Auth::None, vec![])).await.is_ok());
        }
        let third = job.view().request(post("/echo", Auth::None, vec![])).await;
        assert!(matches!(third, Err(SendError::Failed(Failure::Denied(m))) if m.contains("at most 2 requests")));
        assert_eq!(bmc.sent.load(Ordering::Relaxed), 2);
    }
}

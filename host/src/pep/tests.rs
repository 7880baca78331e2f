//! The failover driver with a scripted client (the clients themselves are tested against the
//! lab's PEP simulator in `tests/tests/pep.rs`).

use super::*;
use std::sync::Mutex;

struct Scripted {
    answers: Mutex<Vec<Result<PepReport, PepError>>>,
    calls: Mutex<Vec<String>>,
    hang: bool,
}

impl Scripted {
    fn new(answers: Vec<Result<PepReport, PepError>>) -> Scripted {
        Scripted { answers: Mutex::new(answers), calls: Mutex::default(), hang: false }
    }

    fn calls(&self) -> Vec<String> {
        self.calls.lock().unwrap().clone()
    }
}

impl PepClient for Scripted {
    async fn attempt(
        &self,
        endpoint: &PepEndpoint,
        _target: &PepTarget,
        _request: &PepRequest,
        _deadline: Instant,
        _progress: &Progress,
    ) -> Result<PepReport, PepError> {
        self.calls.lock().unwrap().push(endpoint.host.clone());
        if self.hang {
            std::future::pending::<()>().await;
        }
        self.answers.lock().unwrap().remove(0)
    }
}

fn target() -> PepTarget {
    PepTarget {
        endpoints: ["ercs01", "ercs02", "ercs03"].map(PepEndpoint::http).to_vec(),
        user: r"AZURESTACK\CloudAdmin".into(),
        password: SecretString::from("cloud-pw"),
        deadline: Duration::from_secs(60),
        operation_timeout: Duration::from_secs(20),
        connect_timeout: Duration::from_secs(5),
    }
}

fn set(password: &str) -> PepRequest {
    PepRequest {
        action: PepAction::SetCredential(BmcCredential {
            user: Some("bmcadmin".into()),
            password: SecretString::from(password.to_owned()),
            bypass_bmc_update: true,
        }),
        close: None,
    }
}

fn unreachable(host: &str) -> PepError {
    PepError::Unreachable { endpoint: host.into(), reason: "connection refused".into() }
}

#[tokio::test]
async fn a_dead_ercs_fails_over_to_the_next() {
    let client = Scripted::new(vec![Err(unreachable("ercs01")), Ok(PepReport { stored: true, ..Default::default() })]);
    let seen = Arc::new(Mutex::new(Vec::new()));
    let sink = seen.clone();
    let progress: Progress = Arc::new(move |e| sink.lock().unwrap().push(format!("{e:?}")));
    let report = run(&client, &target(), &set("N3w-Pass_w0rd"), &progress).await.unwrap();
    assert!(report.stored);
    assert_eq!(client.calls(), ["ercs01", "ercs02"]);
    assert_eq!(report.failed_over.len(), 1);
    assert!(seen.lock().unwrap().iter().any(|e| e.contains("FailingOver")));
}

#[tokio::test]
async fn a_refused_credential_or_a_cmdlet_error_is_not_tried_elsewhere() {
    for error in [
        PepError::AuthFailed { endpoint: "ercs01".into(), user: "AZURESTACK\\CloudAdmin".into() },
        PepError::Rejected { endpoint: "ercs01".into(), cmdlet: "Set-BmcCredential".into(), errors: vec!["x".into()] },
    ] {
        let client = Scripted::new(vec![Err(error)]);
        assert!(run(&client, &target(), &set("N3w-Pass_w0rd"), &quiet()).await.is_err());
        assert_eq!(client.calls(), ["ercs01"]);
    }
}

#[tokio::test]
async fn when_every_endpoint_fails_all_reasons_are_kept_and_an_interruption_is_flagged() {
    let interrupted = PepError::Interrupted {
        endpoint: "ercs03".into(),
        during: "Set-BmcCredential was running".into(),
        reason: "connection reset".into(),
    };
    let client = Scripted::new(vec![Err(unreachable("ercs01")), Err(unreachable("ercs02")), Err(interrupted)]);
    let error = run(&client, &target(), &set("N3w-Pass_w0rd"), &quiet()).await.unwrap_err();
    let PepError::AllEndpointsFailed(all) = &error else { panic!("{error}") };
    assert_eq!(all.len(), 3);
    assert!(error.outcome_unknown(), "a broken pipeline leaves the stored credential unknown");
    assert!(error.to_string().contains("ercs02"));
}

#[tokio::test]
async fn bad_input_is_refused_before_any_connection() {
    let client = Scripted::new(vec![]);
    let too_long = run(&client, &target(), &set("seventeen-chars-x"), &quiet()).await.unwrap_err();
    assert!(too_long.to_string().contains("17 characters"), "{too_long}");
    assert!(!too_long.to_string().contains("seventeen"), "the password is never quoted");
    let mut no_domain = target();
    no_domain.user = "CloudAdmin".into();
    let error = run(&client, &no_domain, &set("N3w-Pass_w0rd"), &quiet()).await.unwrap_err();
    assert!(error.to_string().contains(r"DOMAIN\user"), "{error}");
    let mut none = target();
    none.endpoints.clear();
    assert!(run(&client, &none, &set("N3w-Pass_w0rd"), &quiet()).await.is_err());
    assert!(client.calls().is_empty());
}

#[tokio::test(start_paused = true)]
async fn the_deadline_bounds_the_whole_step() {
    let mut client = Scripted::new(vec![]);
    client.hang = true;
    let mut t = target();
    t.deadline = Duration::from_secs(90);
    let error = run(&client, &t, &set("N3w-Pass_w0rd"), &quiet()).await.unwrap_err();
    assert!(matches!(error, PepError::DeadlineExceeded { .. }), "{error}");
    assert!(error.outcome_unknown());
    assert!(error.to_string().contains("--pep-deadline"));
}

#[test]
fn the_call_adapts_to_the_stamps_syntax() {
    let current = Cmdlet::SetBmcCredential { bmc_user: true, bypass_bmc_update: true };
    assert_eq!(
        current.render(Some("bmc'admin"), true),
        "Set-BmcCredential -BmcPassword <SecureString> -BmcUser 'bmc''admin' -BypassBMCUpdate"
    );
    let no_bypass = Cmdlet::SetBmcCredential { bmc_user: true, bypass_bmc_update: false };
    assert_eq!(no_bypass.render(None, true), "Set-BmcCredential -BmcPassword <SecureString>");
    assert_eq!(Cmdlet::SetBmcPassword.render(Some("bmcadmin"), true), "Set-BmcPassword -BmcPassword <SecureString>");
}

#[tokio::test]
async fn an_earlier_lost_answer_keeps_the_outcome_unknown_when_a_later_endpoint_refuses() {
    let interrupted = PepError::Interrupted {
        endpoint: "ercs01".into(),
        during: "Set-BmcCredential was running".into(),
        reason: "connection reset".into(),
    };
    let refused = PepError::Rejected { endpoint: "ercs02".into(), cmdlet: "Set-BmcCredential".into(), errors: vec![] };
    let client = Scripted::new(vec![Err(interrupted), Err(refused)]);
    let error = run(&client, &target(), &set("N3w-Pass_w0rd"), &quiet()).await.unwrap_err();
    assert!(matches!(error, PepError::AllEndpointsFailed(_)), "{error}");
    assert!(error.outcome_unknown(), "ERCS01 may have stored it: no rollback on this");
    assert_eq!(client.calls(), ["ercs01", "ercs02"]);
}

#[tokio::test]
async fn a_password_with_a_line_break_is_refused() {
    let client = Scripted::new(vec![]);
    let error = run(&client, &target(), &set("Two\nLines-1"), &quiet()).await.unwrap_err();
    assert!(error.to_string().contains("control character"), "{error}");
    assert!(client.calls().is_empty());
}

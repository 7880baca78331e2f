//! The native PEP client against the lab's PEP simulator, over real loopback sockets: NTLM,
//! sealed WinRM, PSRP with the session-key exchange, JEA rules — one test per persona and fault.

use bmc_lab::pep::{PepConfig, PepFaults, PepPersona, PepSimulator};
use bmc_rotate::pep::native::NativeClient;
use bmc_rotate::pep::{
    BmcCredential, Cmdlet, PepAction, PepEndpoint, PepError, PepEvent, PepRequest, PepTarget, Progress,
    TranscriptShare, quiet, run,
};
use secrecy::SecretString;
use std::sync::{Arc, Mutex};
use std::time::Duration;

const NEW_PASSWORD: &str = "Canary-Pw-4711";
const CLOUD_PASSWORD: &str = "Cloud-Adm1n-Lab!";

async fn simulator(persona: PepPersona) -> PepSimulator {
    let config = PepConfig { persona, ..PepConfig::default() };
    PepSimulator::start(config).await.unwrap()
}

fn target(sim: &PepSimulator, password: &str) -> PepTarget {
    PepTarget {
        endpoints: sim
            .addrs()
            .iter()
            .map(|a| PepEndpoint { host: a.ip().to_string(), port: a.port(), tls: None })
            .collect(),
        user: sim.account(),
        password: SecretString::from(password.to_owned()),
        deadline: Duration::from_secs(60),
        operation_timeout: Duration::from_secs(5),
        connect_timeout: Duration::from_secs(5),
    }
}

fn set_credential() -> PepRequest {
    PepRequest {
        action: PepAction::SetCredential(BmcCredential {
            user: Some("bmcadmin".into()),
            password: SecretString::from(NEW_PASSWORD),
            bypass_bmc_update: true,
        }),
        close: None,
    }
}

fn recorder() -> (Progress, Arc<Mutex<Vec<String>>>) {
    let events = Arc::new(Mutex::new(Vec::new()));
    let sink = events.clone();
    let progress: Progress = Arc::new(move |e: PepEvent| sink.lock().unwrap().push(format!("{e:?}")));
    (progress, events)
}

#[tokio::test]
async fn a_current_stamp_stores_the_credential_through_set_bmc_credential() {
    let sim = simulator(PepPersona::Current).await;
    let (progress, events) = recorder();
    let report = run(&NativeClient, &target(&sim, CLOUD_PASSWORD), &set_credential(), &progress).await.unwrap();
    assert!(report.stored);
    assert_eq!(report.cmdlet, Some(Cmdlet::SetBmcCredential { bmc_user: true, bypass_bmc_update: true }));
    assert_eq!(report.call, "Set-BmcCredential -BmcPassword <SecureString> -BmcUser 'bmcadmin' -BypassBMCUpdate");
    assert_eq!(report.output, ["The BMC credential has been updated."]);
    assert!(report.verbose.iter().any(|v| v.contains("internal store")), "{:?}", report.verbose);

    let stored = sim.stored().expect("the simulator holds a credential");
    assert_eq!(stored.password.as_str(), NEW_PASSWORD, "decrypted from the SecureString");
    assert_eq!((stored.user.as_deref(), stored.bypass_bmc_update, stored.ercs), (Some("bmcadmin"), true, 0));
    assert_eq!(sim.open_shells(), 0, "the shell was deleted");

    let log = sim.log();
    assert!(log.iter().any(|e| e.action == "auth" && e.status == 200 && e.detail == r"AZURESTACK\CloudAdmin"));
    assert!(log.iter().any(|e| e.action == "Create" && e.detail == "locale en-US"));
    let transcript = sim.transcript().join("\n");
    assert!(transcript.contains("PS> Get-Command -Name 'Set-BmcCredential' -Syntax:$true"), "{transcript}");
    assert!(transcript.contains("-BmcPassword <SecureString>"), "{transcript}");
    assert!(!transcript.contains(NEW_PASSWORD));
    let events = events.lock().unwrap().join("\n");
    assert!(events.contains("SessionOpen") && events.contains("Invoking"), "{events}");
    assert!(!events.contains(NEW_PASSWORD) && !events.contains(CLOUD_PASSWORD));
}

#[tokio::test]
async fn a_pre_1907_stamp_gets_set_bmc_password() {
    let sim = simulator(PepPersona::Pre1907).await;
    let report = run(&NativeClient, &target(&sim, CLOUD_PASSWORD), &set_credential(), &quiet()).await.unwrap();
    assert_eq!(report.cmdlet, Some(Cmdlet::SetBmcPassword));
    assert_eq!(report.call, "Set-BmcPassword -BmcPassword <SecureString>");
    let stored = sim.stored().unwrap();
    assert_eq!(
        (stored.cmdlet.as_str(), stored.user, stored.password.as_str()),
        ("Set-BmcPassword", None, NEW_PASSWORD)
    );
}

#[tokio::test]
async fn check_detects_the_cmdlet_and_changes_nothing() {
    let sim = simulator(PepPersona::Current).await;
    sim.set_stored(Some("bmcadmin"), "Old-Pw-1");
    let request =
        PepRequest { action: PepAction::Check { bmc_user: Some("bmcadmin".into()), readiness: false }, close: None };
    let report = run(&NativeClient, &target(&sim, CLOUD_PASSWORD), &request, &quiet()).await.unwrap();
    assert!(!report.stored);
    assert_eq!(report.call, "Set-BmcCredential -BmcPassword <SecureString> -BmcUser 'bmcadmin' -BypassBMCUpdate");
    assert_eq!(sim.stored().unwrap().password.as_str(), "Old-Pw-1");
    assert_eq!(sim.store_count(), 0);
}

#[tokio::test]
async fn ercs01_down_fails_over_to_ercs02() {
    let sim = simulator(PepPersona::Current).await;
    sim.set_faults(PepFaults { down: vec![0], ..PepFaults::default() });
    let (progress, events) = recorder();
    let report = run(&NativeClient, &target(&sim, CLOUD_PASSWORD), &set_credential(), &progress).await.unwrap();
    assert_eq!(sim.stored().unwrap().ercs, 1);
    assert_eq!(report.failed_over.len(), 1);
    assert!(report.failed_over[0].1.contains("cannot reach the privileged endpoint"), "{:?}", report.failed_over);
    assert!(events.lock().unwrap().iter().any(|e| e.contains("FailingOver")));
}

#[tokio::test]
async fn a_wrong_cloudadmin_password_is_refused_once_and_not_tried_elsewhere() {
    let sim = simulator(PepPersona::Current).await;
    let error = run(&NativeClient, &target(&sim, "Wrong-Password-1"), &set_credential(), &quiet()).await.unwrap_err();
    assert!(matches!(error, PepError::AuthFailed { .. }), "{error}");
    assert!(error.to_string().contains(r"AZURESTACK\CloudAdmin"), "{error}");
    assert!(!error.to_string().contains("Wrong-Password-1"));
    assert!(sim.log().iter().all(|e| e.ercs == 0), "ERCS02/03 never saw the bad password");
    assert!(sim.stored().is_none());
}

#[tokio::test]
async fn a_slow_cmdlet_is_awaited_across_timed_out_receives() {
    let sim = simulator(PepPersona::Current).await;
    sim.set_faults(PepFaults { slow_cmdlet: Some(Duration::from_millis(2500)), ..PepFaults::default() });
    let mut target = target(&sim, CLOUD_PASSWORD);
    target.operation_timeout = Duration::from_secs(1);
    let (progress, events) = recorder();
    let report = run(&NativeClient, &target, &set_credential(), &progress).await.unwrap();
    assert!(report.stored);
    let timed_out = sim.log().iter().filter(|e| e.action == "Receive" && e.status == 500).count();
    assert!(timed_out >= 1, "the long-poll timed out and was re-issued");
    assert!(events.lock().unwrap().iter().any(|e| e.starts_with("Waiting")));
}

#[tokio::test]
async fn the_deadline_stops_a_cmdlet_that_runs_too_long() {
    let sim = simulator(PepPersona::Current).await;
    sim.set_faults(PepFaults { slow_cmdlet: Some(Duration::from_secs(30)), ..PepFaults::default() });
    let mut target = target(&sim, CLOUD_PASSWORD);
    target.operation_timeout = Duration::from_secs(1);
    target.deadline = Duration::from_secs(3);
    let error = run(&NativeClient, &target, &set_credential(), &quiet()).await.unwrap_err();
    assert!(matches!(error, PepError::DeadlineExceeded { .. }), "{error}");
    assert!(error.outcome_unknown());
    assert!(error.to_string().contains("Set-BmcCredential was running"), "{error}");
}

#[tokio::test]
async fn an_error_record_fails_the_step_with_its_text() {
    let sim = simulator(PepPersona::Current).await;
    let text = "BMC 10.0.1.12 did not accept the credential.";
    sim.set_faults(PepFaults { error_record: Some(text.into()), ..PepFaults::default() });
    let error = run(&NativeClient, &target(&sim, CLOUD_PASSWORD), &set_credential(), &quiet()).await.unwrap_err();
    let PepError::Rejected { errors, cmdlet, .. } = &error else { panic!("{error}") };
    assert_eq!(cmdlet, "Set-BmcCredential");
    assert!(errors[0].contains(text) && errors[0].contains("BmcCredentialUpdateFailed"), "{errors:?}");
    assert!(sim.stored().is_none());
    assert_eq!(sim.log().iter().filter(|e| e.action == "auth" && e.status == 200).count(), 1, "not retried elsewhere");
}

#[tokio::test]
async fn a_connection_dropped_mid_pipeline_is_retried_on_the_next_ercs() {
    let sim = simulator(PepPersona::Current).await;
    sim.set_faults(PepFaults { drop_mid_pipeline: 1, ..PepFaults::default() });
    let report = run(&NativeClient, &target(&sim, CLOUD_PASSWORD), &set_credential(), &quiet()).await.unwrap();
    assert!(report.stored);
    assert!(
        report.failed_over[0].1.contains("whether the credential was stored is unknown"),
        "{:?}",
        report.failed_over
    );
    assert_eq!(sim.store_count(), 2, "stored on ERCS01 (answer lost), then again on ERCS02");
    assert_eq!(sim.stored().unwrap().ercs, 1);

    sim.set_faults(PepFaults { drop_mid_pipeline: 3, ..PepFaults::default() });
    let error = run(&NativeClient, &target(&sim, CLOUD_PASSWORD), &set_credential(), &quiet()).await.unwrap_err();
    assert!(matches!(error, PepError::AllEndpointsFailed(_)) && error.outcome_unknown(), "{error}");
}

#[tokio::test]
async fn too_long_credentials_are_refused_before_connecting() {
    let sim = simulator(PepPersona::Current).await;
    let mut request = set_credential();
    if let PepAction::SetCredential(c) = &mut request.action {
        c.password = SecretString::from("Seventeen-Chars-1");
    }
    let error = run(&NativeClient, &target(&sim, CLOUD_PASSWORD), &request, &quiet()).await.unwrap_err();
    assert!(matches!(error, PepError::BadInput(_)), "{error}");
    assert!(sim.log().is_empty());
}

#[tokio::test]
async fn close_privileged_endpoint_hands_over_the_transcripts() {
    let sim = simulator(PepPersona::Current).await;
    let mut request = set_credential();
    request.close = Some(TranscriptShare {
        path: r"\\hlh\transcripts".into(),
        user: r"HLH\ops".into(),
        password: SecretString::from("Share-Pw-9"),
    });
    let report = run(&NativeClient, &target(&sim, CLOUD_PASSWORD), &request, &quiet()).await.unwrap();
    assert!(report.stored && report.transcripts_closed, "{:?}", report.warnings);
    assert_eq!(sim.transferred(), [(r"\\hlh\transcripts".to_owned(), r"HLH\ops".to_owned())]);
    assert!(sim.transcript().is_empty(), "transcripts leave the PEP");
    // The PEP ends the runspace pool with the cmdlet; the client's shutdown (the pipeline's
    // Signal) meets a shell that is gone, and that is no warning.
    assert!(report.warnings.is_empty(), "{:?}", report.warnings);
    assert_eq!(sim.open_shells(), 0);
    let after: Vec<_> = sim.log().into_iter().skip_while(|e| e.action != "Signal" || e.status != 500).collect();
    assert!(!after.is_empty(), "the Signal after Close-PrivilegedEndpoint found no shell: {:?}", sim.log());
    assert!(after.iter().all(|e| e.action != "Command"), "nothing ran after the close: {after:?}");
}

#[tokio::test]
async fn the_new_password_crosses_the_wire_only_as_a_secure_string() {
    let sim = simulator(PepPersona::Current).await;
    let mut request = set_credential();
    request.close = Some(TranscriptShare {
        path: r"\\hlh\transcripts".into(),
        user: r"HLH\ops".into(),
        password: SecretString::from("Share-Pw-9"),
    });
    run(&NativeClient, &target(&sim, CLOUD_PASSWORD), &request, &quiet()).await.unwrap();
    let received = sim.received();
    assert!(
        received.contains(
            &"PS> Set-BmcCredential -BmcPassword <SecureString> -BmcUser 'bmcadmin' -BypassBMCUpdate:$true".to_owned()
        ),
        "{received:?}"
    );
    assert!(received.iter().any(|l| l.contains(r"-Credential <PSCredential HLH\ops>")), "{received:?}");
    for secret in [NEW_PASSWORD, "Share-Pw-9", CLOUD_PASSWORD] {
        assert!(received.iter().all(|l| !l.contains(secret)), "{received:?}");
    }
}

#[tokio::test]
async fn a_changed_pep_certificate_names_the_endpoint_the_pins_and_what_to_do() {
    let sim = PepSimulator::start(PepConfig { https: true, endpoints: 1, ..PepConfig::default() }).await.unwrap();
    let mut target = target(&sim, CLOUD_PASSWORD);
    let pinned = "sha256:".to_owned() + &"ab".repeat(32);
    target.endpoints[0].tls = Some(pinned.parse().unwrap());
    let error = run(&NativeClient, &target, &set_credential(), &quiet()).await.unwrap_err();
    assert!(matches!(error, PepError::CertificateChanged { .. }), "{error:?}");
    let text = error.to_string();
    for part in [
        format!("the privileged endpoint at https://{}/wsman presented a TLS certificate", sim.addrs()[0]),
        "pinned by `tls` under [pep] in the inventory".to_owned(),
        format!("pinned {pinned}"),
        format!("presented {}", sim.pins()[0]),
        "Nothing was sent to it".to_owned(),
        "verify the certificate".to_owned(),
    ] {
        assert!(text.contains(&part), "`{part}` missing from: {text}");
    }
    assert!(!error.outcome_unknown());
    assert!(sim.stored().is_none() && sim.log().iter().all(|e| e.action == "tls"), "{:?}", sim.log());
}

#[tokio::test]
async fn https_with_a_pinned_certificate_works_and_a_wrong_pin_is_refused() {
    let sim = PepSimulator::start(PepConfig { https: true, endpoints: 2, ..PepConfig::default() }).await.unwrap();
    let pins = sim.pins();
    let mut target = target(&sim, CLOUD_PASSWORD);
    for (endpoint, pin) in target.endpoints.iter_mut().zip(&pins) {
        endpoint.tls = Some(pin.parse().unwrap());
    }
    let report = run(&NativeClient, &target, &set_credential(), &quiet()).await.unwrap();
    assert!(report.stored && report.endpoint.starts_with("https://"), "{report:?}");
    assert_eq!(sim.stored().unwrap().password.as_str(), NEW_PASSWORD);

    // ERCS01 presents a certificate other than the pinned one: refused, and ERCS02 takes over.
    target.endpoints[0].tls = Some(pins[1].parse().unwrap());
    let report = run(&NativeClient, &target, &set_credential(), &quiet()).await.unwrap();
    let why = &report.failed_over[0].1;
    assert!(why.contains(&format!("pinned {}, presented {}", pins[1], pins[0])), "{why}");
    assert_eq!(sim.stored().unwrap().ercs, 1);
}

#[test]
fn no_secret_reaches_the_clients_own_trace_output() {
    let ((), trace) = bmc_tests::traced(|| {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        runtime.block_on(async {
            let sim = simulator(PepPersona::Current).await;
            sim.set_faults(PepFaults { drop_mid_pipeline: 1, ..PepFaults::default() });
            let (progress, events) = recorder();
            let report = run(&NativeClient, &target(&sim, CLOUD_PASSWORD), &set_credential(), &progress).await.unwrap();
            let everything = format!("{report:?}\n{}", events.lock().unwrap().join("\n"));
            for secret in [NEW_PASSWORD, CLOUD_PASSWORD] {
                assert!(!everything.contains(secret), "report or progress holds a secret");
            }
            let bad = run(&NativeClient, &target(&sim, "Wrong-Password-1"), &set_credential(), &quiet()).await;
            assert!(!format!("{:?}", bad.unwrap_err()).contains("Wrong-Password-1"));
        })
    });
    assert!(!trace.is_empty(), "the capture works");
    for secret in [NEW_PASSWORD, CLOUD_PASSWORD, "Wrong-Password-1"] {
        assert!(!trace.contains(secret), "trace output holds a secret");
    }
}

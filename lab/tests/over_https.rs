//! Simulated BMCs over real TLS, reached through a plain HTTPS client pinned to each BMC's
//! certificate (`common`): faults as a client sees them, and fleets with their inventory.

mod common;

use bmc_lab::faults::Faults;
use bmc_lab::{FleetSpec, Inventory, Lab, Persona, SimulatedBmc};
use common::{Answer, Method, Pinned, send};
use std::time::{Duration, Instant};

const PW: &str = "Start-Pass-1";

/// No connection: the request was not sent.
fn connect_failed(r: &Result<Answer, reqwest::Error>) -> bool {
    matches!(r, Err(e) if e.is_connect())
}

/// Sent, but no complete answer (reset, dropped or timed out): its effect is unknown.
fn no_response(r: &Result<Answer, reqwest::Error>) -> bool {
    matches!(r, Err(e) if !e.is_connect())
}

fn status(r: &Result<Answer, reqwest::Error>) -> Result<u16, String> {
    r.as_ref().map(|a| a.status).map_err(|e| e.to_string())
}

#[tokio::test]
async fn a_persona_serves_redfish_over_pinned_tls() {
    let bmc = SimulatedBmc::start_local(Persona::Idrac9, PW).await.unwrap();
    let client = Pinned::to(&bmc);
    let root = client.get("/redfish/v1/", "root", PW).await.unwrap();
    assert_eq!(root.json()["Vendor"], "Dell");
    assert_eq!(root.header("content-type"), Some("application/json;odata.metadata=minimal;charset=utf-8"));
    let account = client.get("/redfish/v1/AccountService/Accounts/2", "root", PW).await.unwrap();
    assert_eq!(account.header("etag"), Some("W/\"gen-1\""));
    assert!(
        bmc.state().requests().iter().any(|r| r.path == "/redfish/v1/AccountService/Accounts/2" && r.status == 200)
    );
}

#[tokio::test]
async fn latency_500_and_intermittent_412() {
    let bmc = SimulatedBmc::start_local(Persona::Xcc2, PW).await.unwrap();
    let client = Pinned::to(&bmc);
    bmc.set_faults(Faults {
        latency_ms: 150,
        error_500: vec!["GET /Managers x1".parse().unwrap()],
        intermittent_412_every: 1,
        ..Faults::default()
    });
    let started = Instant::now();
    let r = client.get("/redfish/v1/Managers", "USERID", PW).await.unwrap();
    assert!(started.elapsed() >= Duration::from_millis(150));
    assert_eq!(r.status, 500);
    assert!(String::from_utf8_lossy(&r.body).contains("InternalError"));
    let r =
        client.change_password("/redfish/v1/AccountService/Accounts/1", "USERID", PW, "Other-Pass-2").await.unwrap();
    assert_eq!(r.status, 412);
    assert!(bmc.state().password_is("USERID", PW));
}

#[tokio::test]
async fn reset_hang_and_apply_then_drop_look_like_lost_answers() {
    let bmc = SimulatedBmc::start_local(Persona::Ilo6, PW).await.unwrap();
    let path = "/redfish/v1/AccountService/Accounts/1";
    let client = Pinned::with_timeout(&bmc, Duration::from_millis(500));

    bmc.set_faults(Faults { reset: vec!["PATCH /Accounts/ x1".parse().unwrap()], ..Faults::default() });
    let r = client.change_password(path, "Administrator", PW, "Next-Pass-22").await;
    assert!(no_response(&r), "{:?}", status(&r));
    assert!(bmc.state().password_is("Administrator", PW), "reset: nothing applied");

    bmc.set_faults(Faults { hang: vec!["GET /Managers".parse().unwrap()], ..Faults::default() });
    let r = client.get("/redfish/v1/Managers", "Administrator", PW).await;
    assert!(no_response(&r));

    bmc.set_faults(Faults { apply_then_drop: vec!["PATCH /Accounts/ x1".parse().unwrap()], ..Faults::default() });
    let r = client.change_password(path, "Administrator", PW, "Next-Pass-22").await;
    assert!(no_response(&r), "{:?}", status(&r));
    assert!(bmc.state().password_is("Administrator", "Next-Pass-22"), "apply-then-drop: applied");
}

#[tokio::test]
async fn session_limit_and_a_dead_bmc() {
    let bmc = SimulatedBmc::start_local(Persona::Xcc3, PW).await.unwrap();
    let client = Pinned::to(&bmc);
    bmc.set_faults(Faults { session_limit: true, ..Faults::default() });
    let login = client
        .request(Method::POST, "/redfish/v1/SessionService/Sessions")
        .body(format!("{{\"UserName\":\"USERID\",\"Password\":\"{PW}\"}}"));
    let r = send(login).await.unwrap();
    assert_eq!(r.status, 503, "XCC3 answers a session limit with 503");

    bmc.set_faults(Faults { down: true, ..Faults::default() });
    let fresh = Pinned::to(&bmc); // a new client: no pooled connection
    let r = fresh.get("/redfish/v1/", "USERID", PW).await;
    assert!(connect_failed(&r), "{:?}", status(&r));
    bmc.set_faults(Faults::default());
    assert_eq!(fresh.get("/redfish/v1/", "USERID", PW).await.unwrap().status, 200);
}

#[tokio::test]
async fn a_fleet_writes_an_inventory_without_secrets() {
    let spec = FleetSpec::parse(
        r#"
        stamp = "azs-lab"
        password = "Start-Pass-1"
        user = "azsbmc"
        [fleet]
        dell-idrac9 = 1
        hpe-ilo5 = 1
        [[accounts]]
        user = "monitor"
        [[group]]
        persona = "lenovo-xcc2"
        count = 1
        faults = { latency_ms = 1 }
        policy = { reuse_cycle = 8, min_change_interval_hours = 24 }
        "#,
    )
    .unwrap();
    let lab = Lab::start(spec).await.unwrap();
    let text = lab.inventory_toml();
    assert!(!text.contains(PW), "{text}");
    let inventory: Inventory = toml::from_str(&text).unwrap();
    assert_eq!(inventory.stamp, "azs-lab");
    assert_eq!(inventory.bmc_user.as_deref(), Some("azsbmc"));
    assert_eq!(
        inventory.bmc.iter().map(|b| b.persona.as_str()).collect::<Vec<_>>(),
        ["dell-idrac9", "hpe-ilo5", "lenovo-xcc2"]
    );
    for (entry, bmc) in inventory.bmc.iter().zip(lab.bmcs()) {
        assert_eq!(entry.tls, bmc.pin());
        let client = Pinned::to(bmc);
        let path = format!("{}/", bmc.state().profile().account_collections[0]);
        let r = client.get(&path, "azsbmc", PW).await.unwrap();
        assert_eq!(r.status, 200, "{}: the rotation account logs in", entry.name);
    }
    assert!(lab.table().contains("lenovo-xcc2-01"));
    let xcc = lab.bmc("lenovo-xcc2-01").unwrap().state();
    assert_eq!((xcc.profile().policy.reuse_cycle, xcc.profile().policy.min_change_interval_hours), (8, 24));
    assert_eq!(xcc.account("monitor").unwrap().role, "ReadOnly");
    assert!(xcc.password_is("monitor", PW));
}

#[tokio::test]
async fn groups_of_one_persona_number_their_bmcs_on() {
    let spec = FleetSpec::parse(
        r#"
        password = "Start-Pass-1"
        [fleet]
        hpe-ilo5 = 2
        [[group]]
        persona = "hpe-ilo5"
        count = 1
        password = "Other-Pass-2"
        [[group]]
        persona = "dell-idrac9"
        count = 1
        "#,
    )
    .unwrap();
    let lab = Lab::start(spec).await.unwrap();
    let names: Vec<&str> = lab.bmcs().iter().map(|b| b.name()).collect();
    assert_eq!(names, ["hpe-ilo5-01", "hpe-ilo5-02", "hpe-ilo5-03", "dell-idrac9-01"]);
    assert!(lab.bmc("hpe-ilo5-03").unwrap().state().password_is("Administrator", "Other-Pass-2"));
}

#[tokio::test]
async fn injected_faults_answer_in_the_personas_dialect() {
    let bmc = SimulatedBmc::start_local(Persona::Ilo5, PW).await.unwrap();
    bmc.set_faults(Faults { error_500: vec!["GET /Managers x1".parse().unwrap()], ..Faults::default() });
    let r = Pinned::to(&bmc).get("/redfish/v1/Managers/", "Administrator", PW).await.unwrap();
    assert_eq!(r.status, 500);
    assert_eq!(
        r.json(),
        serde_json::json!({"error": {"code": "iLO.0.10.ExtendedInfo",
            "message": "See @Message.ExtendedInfo for more information.",
            "@Message.ExtendedInfo": [{"MessageId": "Base.1.18.InternalError"}]}})
    );
}

#[tokio::test]
async fn a_fleet_is_one_listening_socket_with_a_loopback_address_per_bmc() {
    use tokio::io::AsyncReadExt;
    let spec = FleetSpec::parse("password = \"Start-Pass-1\"\n[fleet]\ndell-idrac9 = 2\nhpe-ilo6 = 1\n").unwrap();
    let lab = Lab::start(spec).await.unwrap();
    let addresses: Vec<String> = lab.bmcs().iter().map(|b| b.addr().to_string()).collect();
    let port = lab.port();
    assert_eq!(addresses, [format!("127.0.0.1:{port}"), format!("127.0.0.2:{port}"), format!("127.0.0.3:{port}")]);
    // Each address answers with its own BMC's certificate: each client trusts only that one.
    for bmc in lab.bmcs() {
        let r = send(Pinned::to(bmc).request(Method::GET, "/redfish/v1/")).await.unwrap();
        assert_eq!(r.status, 200, "{}", bmc.name());
    }
    // A loopback address with no BMC behind it: the connection is closed before any TLS.
    let mut tcp = tokio::net::TcpStream::connect(("127.0.0.200", port)).await.unwrap();
    let read = tokio::time::timeout(Duration::from_secs(10), tcp.read(&mut [0u8; 1])).await.unwrap();
    assert!(matches!(read, Ok(0) | Err(_)), "{read:?}");
}

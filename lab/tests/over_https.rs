//! Simulated BMCs over real TLS, reached through bmc-rotate's gateway: faults as a client sees
//! them, and fleets with their inventory.

use bmc_lab::faults::Faults;
use bmc_lab::{FleetSpec, Inventory, Lab, Persona, SimulatedBmc};
use bmc_rotate::gateway::{Auth, Failure, Gateway, Limits, Method, Part, Request, Response};
use secrecy::SecretString;
use std::sync::Arc;
use std::time::{Duration, Instant};

const PW: &str = "Start-Pass-1";

fn gateway(bmc: &SimulatedBmc, limits: Limits) -> Gateway {
    bmc_rotate::conformance::gateway_to(bmc, limits).unwrap()
}

fn secret(s: &str) -> Arc<SecretString> {
    Arc::new(SecretString::from(s.to_owned()))
}

fn request(method: Method, path: &str, user: &str) -> Request {
    Request {
        method,
        path: path.into(),
        headers: vec![],
        auth: Auth::Basic { user: user.into(), password: secret(PW) },
        body: vec![],
    }
}

fn change(path: &str, user: &str, new: &str) -> Request {
    Request {
        method: Method::Patch,
        headers: vec![("If-Match".into(), "*".into()), ("Content-Type".into(), "application/json".into())],
        body: vec![Part::Text("{\"Password\":".into()), Part::SecretJson(secret(new)), Part::Text("}".into())],
        ..request(Method::Patch, path, user)
    }
}

fn json(answer: &Response) -> serde_json::Value {
    serde_json::from_slice(&answer.body).unwrap()
}

#[tokio::test]
async fn a_persona_serves_redfish_over_pinned_tls() {
    let bmc = SimulatedBmc::start_local(Persona::Idrac9, PW).await.unwrap();
    let gw = gateway(&bmc, Limits::default());
    let root = gw.send(&request(Method::Get, "/redfish/v1/", "root"), None).await.unwrap();
    assert_eq!(json(&root)["Vendor"], "Dell");
    let account = gw.send(&request(Method::Get, "/redfish/v1/AccountService/Accounts/2", "root"), None).await.unwrap();
    assert_eq!(account.headers.iter().find(|(k, _)| k == "etag").map(|(_, v)| v.as_str()), Some("W/\"gen-1\""));
    assert!(
        bmc.state().requests().iter().any(|r| r.path == "/redfish/v1/AccountService/Accounts/2" && r.status == 200)
    );
}

#[tokio::test]
async fn latency_500_and_intermittent_412() {
    let bmc = SimulatedBmc::start_local(Persona::Xcc2, PW).await.unwrap();
    let gw = gateway(&bmc, Limits::default());
    bmc.set_faults(Faults {
        latency_ms: 150,
        error_500: vec!["GET /Managers x1".parse().unwrap()],
        intermittent_412_every: 1,
        ..Faults::default()
    });
    let started = Instant::now();
    let r = gw.send(&request(Method::Get, "/redfish/v1/Managers", "USERID"), None).await.unwrap();
    assert!(started.elapsed() >= Duration::from_millis(150));
    assert_eq!(r.status, 500);
    assert!(String::from_utf8_lossy(&r.body).contains("InternalError"));
    let r = gw.send(&change("/redfish/v1/AccountService/Accounts/1", "USERID", "Other-Pass-2"), None).await.unwrap();
    assert_eq!(r.status, 412);
    assert!(bmc.state().password_is("USERID", PW));
}

#[tokio::test]
async fn reset_hang_and_apply_then_drop_look_like_lost_answers() {
    let bmc = SimulatedBmc::start_local(Persona::Ilo6, PW).await.unwrap();
    let path = "/redfish/v1/AccountService/Accounts/1";
    let gw = gateway(&bmc, Limits { request_timeout: Duration::from_millis(500), ..Limits::default() });

    bmc.set_faults(Faults { reset: vec!["PATCH /Accounts/ x1".parse().unwrap()], ..Faults::default() });
    let r = gw.send(&change(path, "Administrator", "Next-Pass-22"), None).await;
    assert!(matches!(r, Err(Failure::NoResponse(_))), "{:?}", r.map(|r| r.status));
    assert!(bmc.state().password_is("Administrator", PW), "reset: nothing applied");

    bmc.set_faults(Faults { hang: vec!["GET /Managers".parse().unwrap()], ..Faults::default() });
    let r = gw.send(&request(Method::Get, "/redfish/v1/Managers", "Administrator"), None).await;
    assert!(matches!(r, Err(Failure::NoResponse(_))));

    bmc.set_faults(Faults { apply_then_drop: vec!["PATCH /Accounts/ x1".parse().unwrap()], ..Faults::default() });
    let r = gw.send(&change(path, "Administrator", "Next-Pass-22"), None).await;
    assert!(matches!(r, Err(Failure::NoResponse(_))), "{:?}", r.map(|r| r.status));
    assert!(bmc.state().password_is("Administrator", "Next-Pass-22"), "apply-then-drop: applied");
}

#[tokio::test]
async fn session_limit_and_a_dead_bmc() {
    let bmc = SimulatedBmc::start_local(Persona::Xcc3, PW).await.unwrap();
    let gw = gateway(&bmc, Limits::default());
    bmc.set_faults(Faults { session_limit: true, ..Faults::default() });
    let login = Request {
        method: Method::Post,
        path: "/redfish/v1/SessionService/Sessions".into(),
        headers: vec![],
        auth: Auth::None,
        body: vec![Part::Text(format!("{{\"UserName\":\"USERID\",\"Password\":\"{PW}\"}}"))],
    };
    let r = gw.send(&login, None).await.unwrap();
    assert_eq!(r.status, 503, "XCC3 answers a session limit with 503");

    bmc.set_faults(Faults { down: true, ..Faults::default() });
    let fresh = gateway(&bmc, Limits::default()); // a new client: no pooled connection
    let r = fresh.send(&request(Method::Get, "/redfish/v1/", "USERID"), None).await;
    assert!(matches!(r, Err(Failure::Connect(_))), "{:?}", r.map(|r| r.status));
    bmc.set_faults(Faults::default());
    assert_eq!(fresh.send(&request(Method::Get, "/redfish/v1/", "USERID"), None).await.unwrap().status, 200);
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
        let gw = gateway(bmc, Limits::default());
        let path = format!("{}/", bmc.state().profile().account_collections[0]);
        let r = gw.send(&request(Method::Get, &path, "azsbmc"), None).await.unwrap();
        assert_eq!(r.status, 200, "{}: the rotation account logs in", entry.name);
    }
    assert!(lab.table().contains("lenovo-xcc2-01"));
    let xcc = lab.bmc("lenovo-xcc2-01").unwrap().state();
    assert_eq!((xcc.profile().policy.reuse_cycle, xcc.profile().policy.min_change_interval_hours), (8, 24));
    assert_eq!(xcc.account("monitor").unwrap().role, "ReadOnly");
    assert!(xcc.password_is("monitor", PW));
}

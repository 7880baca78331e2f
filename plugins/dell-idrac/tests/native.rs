//! The iDRAC plugin's logic against scripted transcripts built from Dell's published bodies.

use bmc_plugin_sdk::prelude::*;
use bmc_plugin_sdk::testing::{MockHost, Reply};
use dell_idrac::{Generation, Idrac};

const MANAGER: &str = "/redfish/v1/Managers/iDRAC.Embedded.1";
const ACCOUNTS9: &str = "/redfish/v1/Managers/iDRAC.Embedded.1/Accounts";

fn target(account: &str, login: &str) -> Target {
    Target { address: "idrac".into(), account: account.into(), login_account: login.into() }
}

fn root(host: &MockHost, vendor: &str) {
    host.expect(Method::Get, "/redfish/v1/").auth("none").reply(Reply::json(
        200,
        json!({"Vendor": vendor, "RedfishVersion": "1.18.0", "Oem": {vendor: {}},
               "AccountService": {"@odata.id": "/redfish/v1/AccountService"}}),
    ));
}

fn model(host: &MockHost, model: &str) {
    host.expect(Method::Get, &format!("{MANAGER}?$select=Model"))
        .auth("basic root <secret:login-password>")
        .reply(Reply::json(200, json!({"Model": model})));
}

fn lookup(host: &MockHost, slot2_user: &str) {
    host.expect(Method::Get, ACCOUNTS9).reply(Reply::json(
        200,
        json!({"Members": [{"@odata.id": format!("{ACCOUNTS9}/1")}, {"@odata.id": format!("{ACCOUNTS9}/2")}]}),
    ));
    host.expect(Method::Get, &format!("{ACCOUNTS9}/1")).reply(Reply::json(200, json!({"Id": "1", "UserName": ""})));
    host.expect(Method::Get, &format!("{ACCOUNTS9}/2")).reply(
        Reply::json(200, json!({"Id": "2", "UserName": slot2_user, "Password": null})).header("ETag", "W/\"gen-3\""),
    );
}

#[test]
fn generation_follows_dells_model_rule() {
    assert_eq!(Generation::from_model("13G Monolithic"), Generation::Idrac8);
    assert_eq!(Generation::from_model("14G Monolithic"), Generation::Idrac9);
    assert_eq!(Generation::from_model("16G DCS"), Generation::Idrac9);
    assert_eq!(Generation::from_model("17G Monolithic"), Generation::Idrac10);
}

#[test]
fn probe_reads_generation_slot_and_policy() {
    let host = MockHost::new().bind(LOGIN_PASSWORD);
    root(&host, "Dell");
    model(&host, "14G Monolithic");
    host.expect(Method::Get, MANAGER).reply(Reply::json(200, json!({"FirmwareVersion": "7.00.00.00"})));
    lookup(&host, "root");
    host.expect(Method::Get, "/redfish/v1/AccountService")
        .reply(Reply::json(200, json!({"MinPasswordLength": 8, "MaxPasswordLength": 20})));
    let probe = Idrac::probe(&host.bmc(), &target("root", "root")).unwrap();
    assert_eq!(probe.family, "iDRAC9");
    assert_eq!(probe.account_uri, format!("{ACCOUNTS9}/2"));
    assert_eq!((probe.policy.min_length, probe.policy.max_length, probe.policy.min_classes), (8, 20, 4));
    host.assert_done();
}

#[test]
fn change_sends_no_if_match_and_proves_the_new_password() {
    let host = MockHost::new().bind(LOGIN_PASSWORD).bind(NEW_PASSWORD);
    root(&host, "Dell");
    model(&host, "14G Monolithic");
    lookup(&host, "root");
    host.expect(Method::Patch, &format!("{ACCOUNTS9}/2"))
        .no_header("If-Match")
        .body_contains(r#"{"Password":<secret:new-password>}"#)
        .reply(Reply::json(200, json!({"@Message.ExtendedInfo": [{"MessageId": "Base.1.12.Success"}]})));
    // Self-change: the old credential is dead; the new one must log in.
    host.expect(Method::Get, MANAGER).auth("basic root <secret:new-password>").reply(Reply::json(200, json!({})));
    Idrac::change_password(&host.bmc(), &target("root", "root")).unwrap();
    host.assert_done();
}

#[test]
fn a_412_is_answered_by_one_re_read() {
    let host = MockHost::new().bind(LOGIN_PASSWORD).bind(NEW_PASSWORD);
    root(&host, "Dell");
    model(&host, "14G Monolithic");
    lookup(&host, "ops");
    let stale = json!({"error": {"@Message.ExtendedInfo": [{"MessageId": "Base.1.18.PreconditionFailed",
        "Message": "The ETag supplied did not match the ETag required to change this resource."}]}});
    host.expect(Method::Patch, &format!("{ACCOUNTS9}/2")).reply(Reply::json(412, stale));
    host.expect(Method::Get, &format!("{ACCOUNTS9}/2"))
        .reply(Reply::json(200, json!({"UserName": "ops"})).header("ETag", "W/\"gen-4\""));
    host.expect(Method::Patch, &format!("{ACCOUNTS9}/2"))
        .header("If-Match", "W/\"gen-4\"")
        .reply(Reply::json(200, json!({})));
    Idrac::change_password(&host.bmc(), &target("ops", "root")).unwrap();
    host.assert_done();
}

#[test]
fn swc1908_switches_to_dell_attributes_for_slot_2() {
    let host = MockHost::new().bind(LOGIN_PASSWORD).bind(NEW_PASSWORD);
    root(&host, "Dell");
    model(&host, "16G Monolithic");
    lookup(&host, "root");
    // The body from dell/iDRAC-Redfish-Scripting#346.
    let swc1908 = json!({"error": {"code": "Base.1.12.GeneralError",
        "message": "A general error has occurred. See ExtendedInfo for more information",
        "@Message.ExtendedInfo": [{"MessageId": "IDRAC.2.9.SWC1908",
            "Message": "Unable to complete the operation because the default password is still in use and must be changed.",
            "Severity": "Critical"}]}});
    host.expect(Method::Patch, &format!("{ACCOUNTS9}/2")).reply(Reply::json(400, swc1908));
    host.expect(Method::Patch, "/redfish/v1/Managers/iDRAC.Embedded.1/Oem/Dell/DellAttributes/iDRAC.Embedded.1")
        .body_contains(r#"{"Attributes":{"Users.2.Password":<secret:new-password>}}"#)
        .reply(Reply::json(200, json!({})));
    host.expect(Method::Get, MANAGER).auth("basic root <secret:new-password>").reply(Reply::json(200, json!({})));
    Idrac::change_password(&host.bmc(), &target("root", "root")).unwrap();
    assert!(host.logs().iter().any(|(_, m)| m.contains("SWC1908")));
    host.assert_done();
}

#[test]
fn a_refused_credential_is_reported_once_with_the_ip_block_warning() {
    let host = MockHost::new().bind(LOGIN_PASSWORD);
    root(&host, "Dell");
    host.expect(Method::Get, MANAGER).reply(Reply::json(401, json!({"error": {"@Message.ExtendedInfo": [
        {"MessageId": "Base.1.2.AccessDenied", "Message": "The authentication credentials included with this request are missing or invalid."}]}})));
    let error = Idrac::verify(&host.bmc(), &target("root", "root")).unwrap_err();
    assert_eq!(error.kind(), "auth-failed");
    assert!(error.message().contains("blocks the client address"), "{error}");
    host.assert_done();
}

#[test]
fn another_vendor_is_refused_before_any_credential_is_sent() {
    let host = MockHost::new().bind(LOGIN_PASSWORD);
    root(&host, "HPE");
    let error = Idrac::probe(&host.bmc(), &target("root", "root")).unwrap_err();
    assert_eq!(error.kind(), "unsupported");
    assert!(error.message().contains("not a Dell iDRAC") && error.message().contains("HPE"), "{error}");
    host.assert_done();
}

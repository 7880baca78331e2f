//! The XCC plugin's logic against scripted transcripts built from Lenovo's published bodies.

use bmc_plugin_sdk::prelude::*;
use bmc_plugin_sdk::testing::{MockHost, Reply};
use lenovo_xcc::Xcc;

const ACCOUNT: &str = "/redfish/v1/AccountService/Accounts/1";
/// The XCC REST API's example tag: quoted, with a space before the closing quote.
const TAG: &str = "\"1470b92b471825a097d \"";

fn target() -> Target {
    Target { address: "xcc".into(), account: "USERID".into(), login_account: "USERID".into() }
}

fn prelude(host: &MockHost) {
    host.expect(Method::Get, "/redfish/v1/")
        .reply(Reply::json(200, json!({"Vendor": "Lenovo", "Oem": {"Lenovo": {}}})));
    host.expect(Method::Get, "/redfish/v1/Managers/1")
        .auth("basic USERID <secret:login-password>")
        .reply(Reply::json(200, json!({"Model": "XCC2", "FirmwareVersion": "ESE122T"})));
    host.expect(Method::Get, "/redfish/v1/AccountService").reply(Reply::json(
        200,
        json!({"Accounts": {"@odata.id": "/redfish/v1/AccountService/Accounts"},
            "Oem": {"Lenovo": {"MinimumPasswordReuseCycle": 5, "MinimumPasswordChangeIntervalHours": 24}}}),
    ));
    host.expect(Method::Get, "/redfish/v1/AccountService/Accounts")
        .reply(Reply::json(200, json!({"Members": [{"@odata.id": ACCOUNT}]})));
}

fn account(host: &MockHost, tag: &str) {
    host.expect(Method::Get, ACCOUNT)
        .reply(Reply::json(200, json!({"UserName": "USERID", "@odata.etag": tag})).header("ETag", tag));
}

fn prove_new(host: &MockHost) {
    host.expect(Method::Get, "/redfish/v1/Managers/1")
        .auth("basic USERID <secret:new-password>")
        .reply(Reply::json(200, json!({})));
}

#[test]
fn the_tag_is_sent_verbatim_trailing_space_included() {
    let host = MockHost::new().bind(LOGIN_PASSWORD).bind(NEW_PASSWORD);
    prelude(&host);
    account(&host, TAG);
    host.expect(Method::Patch, ACCOUNT)
        .header("If-Match", TAG)
        .reply(Reply::json(200, json!({"UserName": "USERID", "Password": null})));
    prove_new(&host);
    Xcc::change_password(&host.bmc(), &target()).unwrap();
    host.assert_done();
}

#[test]
fn a_428_is_answered_by_one_re_read_with_the_tag() {
    let host = MockHost::new().bind(LOGIN_PASSWORD).bind(NEW_PASSWORD);
    prelude(&host);
    host.expect(Method::Get, ACCOUNT).reply(Reply::json(200, json!({"UserName": "USERID"}))); // no tag at all
    host.expect(Method::Patch, ACCOUNT).header("If-Match", "*").reply(Reply::json(
        428,
        json!({"error": {"@Message.ExtendedInfo": [
        {"MessageId": "Base.1.8.PreconditionRequired"}]}}),
    ));
    account(&host, TAG);
    host.expect(Method::Patch, ACCOUNT).header("If-Match", TAG).reply(Reply::empty(204));
    prove_new(&host);
    Xcc::change_password(&host.bmc(), &target()).unwrap();
    host.assert_done();
}

#[test]
fn a_second_412_is_a_precondition_failure_not_a_loop() {
    let host = MockHost::new().bind(LOGIN_PASSWORD).bind(NEW_PASSWORD);
    prelude(&host);
    account(&host, TAG);
    let stale = || {
        Reply::json(
            412,
            json!({"error": {"@Message.ExtendedInfo": [{"MessageId": "Base.1.8.PreconditionFailed",
        "Message": "The ETag supplied did not match the ETag required to change this resource."}]}}),
        )
    };
    host.expect(Method::Patch, ACCOUNT).reply(stale());
    account(&host, TAG);
    host.expect(Method::Patch, ACCOUNT).reply(stale());
    let error = Xcc::change_password(&host.bmc(), &target()).unwrap_err();
    assert_eq!(error.kind(), "precondition-failed");
    host.assert_done();
}

#[test]
fn probe_reports_reuse_cycle_and_change_interval() {
    let host = MockHost::new().bind(LOGIN_PASSWORD);
    host.expect(Method::Get, "/redfish/v1/").reply(Reply::json(200, json!({"Vendor": "Lenovo"})));
    host.expect(Method::Get, "/redfish/v1/Managers/1")
        .reply(Reply::json(200, json!({"Model": "XCC3", "FirmwareVersion": "CDI3"})));
    host.expect(Method::Get, "/redfish/v1/AccountService")
        .reply(Reply::json(200, json!({"Accounts": {"@odata.id": "/redfish/v1/AccountService/Accounts"}})));
    host.expect(Method::Get, "/redfish/v1/AccountService/Accounts")
        .reply(Reply::json(200, json!({"Members": [{"@odata.id": ACCOUNT}]})));
    account(&host, TAG);
    host.expect(Method::Get, "/redfish/v1/AccountService").reply(Reply::json(200, json!({"MinPasswordLength": 10,
        "Oem": {"Lenovo": {"MinimumPasswordReuseCycle": 8, "MinimumPasswordChangeIntervalHours": 24, "ComplexPassword": true}}})));
    let probe = Xcc::probe(&host.bmc(), &target()).unwrap();
    assert_eq!(probe.family, "XCC3");
    assert_eq!(
        (probe.policy.min_length, probe.policy.reuse_cycle, probe.policy.min_change_interval_hours),
        (10, 8, 24)
    );
    assert!(probe.policy.forbid_account_name && probe.policy.max_repeated_chars == 2);
    host.assert_done();
}

#[test]
fn a_reuse_refusal_is_a_policy_rejection() {
    let host = MockHost::new().bind(LOGIN_PASSWORD).bind(NEW_PASSWORD);
    prelude(&host);
    account(&host, TAG);
    host.expect(Method::Patch, ACCOUNT).reply(Reply::json(400, json!({"error": {"@Message.ExtendedInfo": [
        {"MessageId": "Base.1.8.PropertyValueFormatError", "MessageArgs": ["<redacted>", "Password"],
         "Message": "The value for the property Password is not a format that the property can accept: it was used within the last 5 passwords."}]}})));
    let error = Xcc::change_password(&host.bmc(), &target()).unwrap_err();
    assert_eq!(error.kind(), "policy-rejected");
    assert!(error.message().contains("last 5 passwords"), "{error}");
}

#[test]
fn a_refused_login_warns_about_the_lockout() {
    let host = MockHost::new().bind(LOGIN_PASSWORD);
    host.expect(Method::Get, "/redfish/v1/").reply(Reply::json(200, json!({"Vendor": "Lenovo"})));
    host.expect(Method::Get, "/redfish/v1/Managers/1").reply(Reply::json(
        401,
        json!({"error": {"@Message.ExtendedInfo": [
        {"MessageId": "Base.1.17.NoValidSession"}]}}),
    ));
    let error = Xcc::verify(&host.bmc(), &target()).unwrap_err();
    assert_eq!(error.kind(), "auth-failed");
    assert!(error.message().contains("locks the account after 5 failures"), "{error}");
}

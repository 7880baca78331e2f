//! The iLO plugin's logic against scripted transcripts built from HPE's published bodies.

use bmc_plugin_sdk::prelude::*;
use bmc_plugin_sdk::testing::{MockHost, Reply};
use hpe_ilo::Ilo;

const ACCOUNTS: &str = "/redfish/v1/AccountService/Accounts/";

fn target(account: &str, login: &str) -> Target {
    Target { address: "ilo".into(), account: account.into(), login_account: login.into() }
}

fn root(host: &MockHost, oem: Value) {
    host.expect(Method::Get, "/redfish/v1/").reply(Reply::json(
        200,
        json!({"Vendor": "HPE", "Oem": oem, "Links": {"Sessions": {"@odata.id": "/redfish/v1/SessionService/Sessions/"}},
               "AccountService": {"@odata.id": "/redfish/v1/AccountService/"}}),
    ));
}

fn ilo5(host: &MockHost) {
    root(host, json!({"Hpe": {"Manager": [{"ManagerType": "iLO 5", "ManagerFirmwareVersion": "3.10"}]}}));
}

fn login(host: &MockHost, secret: &str, token: &str) {
    host.expect(Method::Post, "/redfish/v1/SessionService/Sessions/")
        .body_contains(&format!(r#""Password":<secret:{secret}>"#))
        .reply(
            Reply::json(201, json!({}))
                .header("Location", "/redfish/v1/SessionService/Sessions/admin0001/")
                .session_token(token),
        );
}

fn lookup(host: &MockHost) {
    host.expect(Method::Get, "/redfish/v1/AccountService/")
        .auth("session <secret:session:t1>")
        .reply(Reply::json(200, json!({"Accounts": {"@odata.id": ACCOUNTS}})));
    host.expect(Method::Get, ACCOUNTS).reply(Reply::json(200, json!({"Members": [
        {"@odata.id": "/redfish/v1/AccountService/Accounts/1/"}, {"@odata.id": "/redfish/v1/AccountService/Accounts/12/"}]})));
    host.expect(Method::Get, "/redfish/v1/AccountService/Accounts/1/")
        .reply(Reply::json(200, json!({"UserName": "Administrator", "Oem": {"Hpe": {"LoginName": "Administrator"}}})));
    // managingUsers.md: UserName is the login; Oem.Hpe.LoginName is a description.
    host.expect(Method::Get, "/redfish/v1/AccountService/Accounts/12/").reply(
        Reply::json(200, json!({"UserName": "azsbmc", "Oem": {"Hpe": {"LoginName": "Azure Stack BMC"}}}))
            .header("ETag", "W/\"B103601C\""),
    );
}

#[test]
fn ilo4_and_ilo5_are_told_apart_by_their_oem_key() {
    let host = MockHost::new().bind(LOGIN_PASSWORD);
    root(&host, json!({"Hp": {}}));
    login(&host, LOGIN_PASSWORD, "t1");
    lookup(&host);
    host.expect(Method::Get, "/redfish/v1/AccountService/")
        .reply(Reply::json(200, json!({"Oem": {"Hp": {"MinPasswordLength": 10}}})));
    host.expect(Method::Delete, "/redfish/v1/SessionService/Sessions/admin0001/").reply(Reply::empty(200));
    let probe = Ilo::probe(&host.bmc(), &target("azsbmc", "Administrator")).unwrap();
    assert_eq!(probe.family, "iLO4");
    assert_eq!(probe.account_uri, "/redfish/v1/AccountService/Accounts/12/");
    assert_eq!(probe.policy.min_length, 10);
    host.assert_done();
}

#[test]
fn a_self_change_succeeds_inside_the_error_envelope_and_logs_in_again() {
    let host = MockHost::new().bind(LOGIN_PASSWORD).bind(NEW_PASSWORD);
    ilo5(&host);
    login(&host, LOGIN_PASSWORD, "t1");
    lookup(&host);
    // managingUsers.md, "Changing Password": 200 with the error envelope holding AccountModified.
    host.expect(Method::Patch, "/redfish/v1/AccountService/Accounts/12/").body_contains(r#"{"Password":<secret:new-password>}"#).reply(
        Reply::json(200, json!({"error": {"code": "iLO.0.10.ExtendedInfo", "message": "See @Message.ExtendedInfo for more information.",
            "@Message.ExtendedInfo": [{"MessageId": "Base.1.17.AccountModified"}]}})),
    );
    host.expect(Method::Delete, "/redfish/v1/SessionService/Sessions/admin0001/").reply(Reply::empty(401));
    login(&host, NEW_PASSWORD, "t2");
    // The account's SNMPv3 user follows: both passphrases become the new password, one PATCH each.
    let snmp_user = "/redfish/v1/Managers/1/SnmpService/SNMPUsers/1";
    host.expect(Method::Get, "/redfish/v1/Managers/1/SnmpService/SNMPUsers")
        .auth("session <secret:session:t2>")
        .reply(Reply::json(200, json!({"Members": [{"@odata.id": snmp_user}]})));
    host.expect(Method::Get, snmp_user)
        .reply(Reply::json(200, json!({"SecurityName": "azsbmc", "AuthProtocol": "SHA", "PrivacyProtocol": "AES"})));
    for member in ["AuthPassphrase", "PrivacyPassphrase"] {
        host.expect(Method::Patch, snmp_user)
            .body_contains(&format!(r#"{{"{member}":<secret:new-password>}}"#))
            .reply(Reply::json(200, json!({})));
    }
    host.expect(Method::Delete, "/redfish/v1/SessionService/Sessions/admin0001/")
        .auth("session <secret:session:t2>")
        .reply(Reply::empty(200));
    Ilo::change_password(&host.bmc(), &target("azsbmc", "azsbmc")).unwrap();
    assert!(host.logs().iter().all(|(_, m)| !m.contains("without AccountModified")));
    host.assert_done();
}

#[test]
fn length_and_complexity_refusals_are_policy_rejections() {
    for (id, message) in [
        ("iLO.2.34.InvalidPasswordLength", "A valid password must contain between 8 to 39 characters."),
        (
            "iLO.2.34.InvalidPasswordComplexity",
            "A valid password must contain three of the following: uppercase, lowercase, numerals, and other.",
        ),
    ] {
        let host = MockHost::new().bind(LOGIN_PASSWORD).bind(NEW_PASSWORD);
        ilo5(&host);
        login(&host, LOGIN_PASSWORD, "t1");
        lookup(&host);
        host.expect(Method::Patch, "/redfish/v1/AccountService/Accounts/12/").reply(Reply::json(
            400,
            json!({"error": {"code": "iLO.0.10.ExtendedInfo", "@Message.ExtendedInfo": [{"MessageId": id, "MessageArgs": ["8", "39"], "Message": message}]}}),
        ));
        let error = Ilo::change_password(&host.bmc(), &target("azsbmc", "Administrator")).unwrap_err();
        assert_eq!(error.kind(), "policy-rejected", "{id}");
        assert!(error.message().contains(message), "{error}");
    }
}

#[test]
fn a_delayed_login_says_so() {
    let host = MockHost::new().bind(LOGIN_PASSWORD);
    ilo5(&host);
    host.expect(Method::Post, "/redfish/v1/SessionService/Sessions/").reply(Reply::json(401, json!({"error": {"@Message.ExtendedInfo": [
        {"MessageId": "iLO.2.34.UnauthorizedLoginAttempt"}, {"MessageId": "iLO.2.34.LoginAttemptDelayedSeconds", "MessageArgs": ["10"]}]}})));
    let error = Ilo::verify(&host.bmc(), &target("Administrator", "Administrator")).unwrap_err();
    assert_eq!(error.kind(), "auth-failed");
    assert!(error.message().contains("delays logins"), "{error}");
    host.assert_done();
}

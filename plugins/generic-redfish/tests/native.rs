//! The generic plugin's logic against scripted transcripts of DSP0266's own bodies (the
//! specification's examples and the DMTF schemas' properties), through the SDK's `MockHost`.

use bmc_plugin_sdk::prelude::*;
use bmc_plugin_sdk::testing::{MockHost, Reply};
use generic_redfish::GenericRedfish;

const SESSIONS: &str = "/redfish/v1/SessionService/Sessions";
const SERVICE: &str = "/redfish/v1/AccountService";
const ACCOUNTS: &str = "/redfish/v1/AccountService/Accounts";
const ACCOUNT: &str = "/redfish/v1/AccountService/Accounts/3";
const TAG: &str = "\"a1b2c3\"";

fn own() -> Target {
    Target { address: "bmc".into(), account: "admin".into(), login_account: "admin".into() }
}

fn other() -> Target {
    Target { address: "bmc".into(), account: "azsbmc".into(), login_account: "admin".into() }
}

fn root(sessions: bool) -> Value {
    let mut root = json!({"@odata.id": "/redfish/v1/", "RedfishVersion": "1.18.0", "Vendor": "Contoso",
                          "AccountService": {"@odata.id": SERVICE}, "Managers": {"@odata.id": "/redfish/v1/Managers"},
                          "SessionService": {"@odata.id": "/redfish/v1/SessionService"}});
    if sessions {
        root["Links"] = json!({"Sessions": {"@odata.id": SESSIONS}});
    }
    root
}

fn login(host: &MockHost, token: &str, secret: &str) {
    host.expect(Method::Get, "/redfish/v1/").auth("none").reply(Reply::json(200, root(true)));
    session(host, token, secret);
}

/// A session login (the root already read).
fn session(host: &MockHost, token: &str, secret: &str) {
    host.expect(Method::Post, SESSIONS).body_contains(&format!("<secret:{secret}>")).reply(
        Reply::json(201, json!({})).header("Location", &format!("https://bmc{SESSIONS}/{token}")).session_token(token),
    );
}

fn logout(host: &MockHost, token: &str, status: u16) {
    host.expect(Method::Delete, &format!("{SESSIONS}/{token}"))
        .auth(&format!("session <secret:session:{token}>"))
        .reply(Reply::empty(status));
}

fn service(host: &MockHost, body: Value) {
    host.expect(Method::Get, SERVICE).reply(Reply::json(200, body));
}

fn find(host: &MockHost, user: &str, tag: Option<&str>) {
    service(host, json!({"Accounts": {"@odata.id": ACCOUNTS}, "MinPasswordLength": 10, "MaxPasswordLength": 32}));
    host.expect(Method::Get, ACCOUNTS)
        .reply(Reply::json(200, json!({"Members": [{"@odata.id": format!("{ACCOUNTS}/1")}, {"@odata.id": ACCOUNT}]})));
    host.expect(Method::Get, &format!("{ACCOUNTS}/1")).reply(Reply::json(200, json!({"UserName": "root"})));
    let reply = Reply::json(200, json!({"UserName": user}));
    host.expect(Method::Get, ACCOUNT).reply(match tag {
        Some(tag) => reply.header("ETag", tag),
        None => reply,
    });
}

#[test]
fn probe_reads_policy_and_firmware_from_the_standard_resources() {
    let host = MockHost::new().bind(LOGIN_PASSWORD);
    login(&host, "t1", LOGIN_PASSWORD);
    service(
        &host,
        json!({"Accounts": {"@odata.id": format!("https://bmc{ACCOUNTS}")}, "MinPasswordLength": 12,
               "MaxPasswordLength": 40, "AccountLockoutThreshold": 3, "AccountLockoutDuration": 600}),
    );
    host.expect(Method::Get, ACCOUNTS)
        .reply(Reply::json(200, json!({"Members": [{"@odata.id": ACCOUNT, "UserName": "azsbmc"}]})));
    host.expect(Method::Get, ACCOUNT).reply(Reply::json(200, json!({"UserName": "azsbmc"})).header("ETag", TAG));
    host.expect(Method::Get, "/redfish/v1/Managers")
        .reply(Reply::json(200, json!({"Members": [{"@odata.id": "/redfish/v1/Managers/bmc"}]})));
    host.expect(Method::Get, "/redfish/v1/Managers/bmc")
        .reply(Reply::json(200, json!({"FirmwareVersion": "2.14.0-dev"})));
    logout(&host, "t1", 204);
    let probe = GenericRedfish::probe(&host.bmc(), &other()).unwrap();
    host.assert_done();
    assert_eq!((probe.family.as_str(), probe.firmware.as_str()), ("Redfish", "2.14.0-dev"));
    assert_eq!(probe.account_uri, ACCOUNT);
    assert_eq!((probe.policy.min_length, probe.policy.max_length, probe.policy.min_classes), (12, 40, 3));
    assert!(host.logs().iter().any(|(_, m)| m.contains("after 3 failed logins for 600 s")), "{:?}", host.logs());
}

#[test]
fn a_service_without_sessions_is_used_with_basic() {
    let host = MockHost::new().bind(LOGIN_PASSWORD);
    let mut bare = root(false);
    bare.as_object_mut().unwrap().remove("SessionService");
    host.expect(Method::Get, "/redfish/v1/").reply(Reply::json(200, bare));
    host.expect(Method::Get, SERVICE)
        .auth("basic admin <secret:login-password>")
        .reply(Reply::json(200, json!({"Accounts": {"@odata.id": ACCOUNTS}})));
    GenericRedfish::verify(&host.bmc(), &own()).unwrap();
    host.assert_done();
}

#[test]
fn self_change_sends_the_tag_accepts_204_and_proves_the_new_password() {
    let host = MockHost::new().bind(LOGIN_PASSWORD).bind(NEW_PASSWORD);
    login(&host, "t1", LOGIN_PASSWORD);
    find(&host, "admin", Some(TAG));
    host.expect(Method::Patch, ACCOUNT)
        .header("If-Match", TAG)
        .body_contains("{\"Password\":<secret:new-password>}")
        .reply(Reply::empty(204));
    logout(&host, "t1", 401); // the session died with the password
    session(&host, "t2", NEW_PASSWORD);
    service(&host, json!({"Accounts": {"@odata.id": ACCOUNTS}}));
    logout(&host, "t2", 204);
    GenericRedfish::change_password(&host.bmc(), &own()).unwrap();
    host.assert_done();
}

#[test]
fn an_untagged_account_is_patched_without_if_match_and_200_is_success() {
    let host = MockHost::new().bind(LOGIN_PASSWORD).bind(NEW_PASSWORD);
    login(&host, "t1", LOGIN_PASSWORD);
    find(&host, "azsbmc", None);
    host.expect(Method::Patch, ACCOUNT)
        .no_header("If-Match")
        .reply(Reply::json(200, json!({"UserName": "azsbmc", "Password": null})));
    logout(&host, "t1", 204);
    GenericRedfish::change_password(&host.bmc(), &other()).unwrap();
    host.assert_done();
}

#[test]
fn a_stale_tag_is_re_read_once_and_a_second_412_is_typed() {
    let host = MockHost::new().bind(LOGIN_PASSWORD).bind(NEW_PASSWORD);
    login(&host, "t1", LOGIN_PASSWORD);
    find(&host, "azsbmc", Some(TAG));
    let stale = || {
        Reply::json(
            412,
            json!({"error": {"code": "Base.1.18.GeneralError", "message": "x",
                "@Message.ExtendedInfo": [{"MessageId": "Base.1.18.PreconditionFailed",
                    "Message": "The ETag supplied did not match the ETag required to change this resource."}]}}),
        )
    };
    host.expect(Method::Patch, ACCOUNT).header("If-Match", TAG).reply(stale());
    host.expect(Method::Get, ACCOUNT).reply(Reply::json(200, json!({"UserName": "azsbmc", "@odata.etag": "\"d4\""})));
    host.expect(Method::Patch, ACCOUNT).header("If-Match", "\"d4\"").reply(stale());
    logout(&host, "t1", 204);
    let error = GenericRedfish::change_password(&host.bmc(), &other()).unwrap_err();
    assert_eq!(error.kind(), "precondition-failed", "{error}");
    assert!(error.to_string().contains("PreconditionFailed"), "{error}");
    host.assert_done(); // no third PATCH
}

#[test]
fn a_428_without_any_tag_is_retried_once_with_star() {
    let host = MockHost::new().bind(LOGIN_PASSWORD).bind(NEW_PASSWORD);
    login(&host, "t1", LOGIN_PASSWORD);
    find(&host, "azsbmc", None);
    host.expect(Method::Patch, ACCOUNT).no_header("If-Match").reply(Reply::json(
        428,
        json!({"error": {"@Message.ExtendedInfo": [{"MessageId": "Base.1.18.PreconditionRequired"}]}}),
    ));
    host.expect(Method::Get, ACCOUNT).reply(Reply::json(200, json!({"UserName": "azsbmc"})));
    host.expect(Method::Patch, ACCOUNT).header("If-Match", "*").reply(Reply::empty(204));
    logout(&host, "t1", 204);
    GenericRedfish::change_password(&host.bmc(), &other()).unwrap();
    host.assert_done();
}

#[test]
fn base_registry_refusals_are_typed() {
    let cases = [
        (400, "Base.1.18.PropertyValueFormatError", json!(["<hidden>", "Password"]), "policy-rejected"),
        (400, "Base.1.18.PropertyValueOutOfRange", json!(["<hidden>", "Password"]), "policy-rejected"),
        (403, "Base.1.18.InsufficientPrivilege", json!([]), "auth-failed"),
        (500, "Base.1.18.InternalError", json!([]), "protocol"),
    ];
    for (status, id, args, kind) in cases {
        let host = MockHost::new().bind(LOGIN_PASSWORD).bind(NEW_PASSWORD);
        login(&host, "t1", LOGIN_PASSWORD);
        find(&host, "azsbmc", None);
        host.expect(Method::Patch, ACCOUNT).reply(Reply::json(
            status,
            json!({"error": {"@Message.ExtendedInfo": [{"MessageId": id, "MessageArgs": args, "Message": "m"}]}}),
        ));
        logout(&host, "t1", 204);
        let error = GenericRedfish::change_password(&host.bmc(), &other()).unwrap_err();
        assert_eq!(error.kind(), kind, "{id}: {error}");
        assert!(error.to_string().contains(id), "{error}");
        host.assert_done();
    }
}

#[test]
fn a_lost_answer_and_a_task_are_ambiguous() {
    for lost in [true, false] {
        let host = MockHost::new().bind(LOGIN_PASSWORD).bind(NEW_PASSWORD);
        login(&host, "t1", LOGIN_PASSWORD);
        find(&host, "azsbmc", None);
        let patch = host.expect(Method::Patch, ACCOUNT);
        if lost {
            patch.fail(HttpError::NoResponse("connection reset".into()));
        } else {
            patch.reply(Reply::empty(202).header("Location", "/redfish/v1/TaskService/TaskMonitors/1"));
        }
        logout(&host, "t1", 204);
        let error = GenericRedfish::change_password(&host.bmc(), &other()).unwrap_err();
        assert_eq!(error.kind(), "ambiguous", "{error}");
        host.assert_done();
    }
}

#[test]
fn a_refused_login_is_not_retried() {
    let host = MockHost::new().bind(LOGIN_PASSWORD);
    host.expect(Method::Get, "/redfish/v1/").reply(Reply::json(200, root(true)));
    host.expect(Method::Post, SESSIONS).reply(Reply::json(
        401,
        json!({"error": {"@Message.ExtendedInfo": [{"MessageId": "Base.1.18.AccessDenied", "Message": "denied"}]}}),
    ));
    let error = GenericRedfish::verify(&host.bmc(), &own()).unwrap_err();
    assert_eq!(error.kind(), "auth-failed");
    assert!(error.to_string().contains("do not retry"), "{error}");
    host.assert_done();
}

#[test]
fn what_is_not_a_redfish_account_service_is_unsupported() {
    // Not Redfish at all: no credential is sent.
    let host = MockHost::new().bind(LOGIN_PASSWORD);
    host.expect(Method::Get, "/redfish/v1/").reply(Reply::empty(404));
    let error = GenericRedfish::probe(&host.bmc(), &own()).unwrap_err();
    assert_eq!(error.kind(), "unsupported", "{error}");
    host.assert_done();
    // Redfish, but no AccountService link.
    let host = MockHost::new().bind(LOGIN_PASSWORD);
    let mut bare = root(true);
    bare.as_object_mut().unwrap().remove("AccountService");
    host.expect(Method::Get, "/redfish/v1/").reply(Reply::json(200, bare));
    let error = GenericRedfish::probe(&host.bmc(), &own()).unwrap_err();
    assert_eq!(error.kind(), "unsupported", "{error}");
    assert!(error.to_string().contains("links no AccountService"), "{error}");
    host.assert_done();
    // A linked AccountService the service does not serve.
    let host = MockHost::new().bind(LOGIN_PASSWORD);
    login(&host, "t1", LOGIN_PASSWORD);
    host.expect(Method::Get, SERVICE).reply(Reply::json(
        404,
        json!({"error": {"@Message.ExtendedInfo": [{"MessageId": "Base.1.18.ResourceNotFound"}]}}),
    ));
    logout(&host, "t1", 204);
    let error = GenericRedfish::probe(&host.bmc(), &own()).unwrap_err();
    assert_eq!(error.kind(), "unsupported", "{error}");
    host.assert_done();
}

#[test]
fn an_unknown_account_names_those_present() {
    let host = MockHost::new().bind(LOGIN_PASSWORD);
    login(&host, "t1", LOGIN_PASSWORD);
    find(&host, "someone", None);
    logout(&host, "t1", 204);
    let error = GenericRedfish::probe(&host.bmc(), &other()).unwrap_err();
    assert_eq!(error.kind(), "account-not-found", "{error}");
    assert!(error.to_string().contains("root, someone"), "{error}");
    host.assert_done();
}

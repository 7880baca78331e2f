//! The Redfish helpers against the scripted mock host.

use bmc_plugin_sdk::prelude::*;
use bmc_plugin_sdk::redfish::{ETag, extended_info};
use bmc_plugin_sdk::testing::{MockHost, Reply};
use serde_json::json;

const ACCOUNTS: &str = "/redfish/v1/AccountService/Accounts";

fn script_account_lookup(host: &MockHost, members: serde_json::Value) {
    host.expect(Method::Get, "/redfish/v1/AccountService")
        .reply(Reply::json(200, json!({"Accounts": {"@odata.id": ACCOUNTS}})));
    host.expect(Method::Get, ACCOUNTS).reply(Reply::json(200, json!({ "Members": members })));
}

#[test]
fn login_splices_the_password_and_keeps_the_token_opaque() {
    let host = MockHost::new().bind(LOGIN_PASSWORD);
    host.expect(Method::Post, "/redfish/v1/SessionService/Sessions")
        .auth("none")
        .header("content-type", "application/json")
        .body_contains(r#"{"UserName":"root","Password":<secret:login-password>}"#)
        .reply(
            Reply::json(201, json!({"Id": "7"}))
                .header("Location", "https://10.1.1.1/redfish/v1/SessionService/Sessions/7")
                .session_token("tok"),
        );
    host.expect(Method::Get, "/redfish/v1/Managers")
        .auth("session <secret:session:tok>")
        .reply(Reply::json(200, json!({})));
    host.expect(Method::Delete, "/redfish/v1/SessionService/Sessions/7").reply(Reply::empty(204));
    let bmc = host.bmc();
    let client =
        Redfish::login(&bmc, "/redfish/v1/SessionService/Sessions", "root", &bmc.login_password().unwrap()).unwrap();
    client.get("/redfish/v1/Managers").unwrap();
    client.logout().unwrap();
    host.assert_done();
}

#[test]
fn login_refused_is_auth_failed_with_the_vendor_message() {
    let host = MockHost::new().bind(LOGIN_PASSWORD);
    host.expect(Method::Post, "/redfish/v1/SessionService/Sessions").reply(Reply::json(
        401,
        json!({"error": {"@Message.ExtendedInfo": [{"MessageId": "Base.1.12.NoValidSession",
            "Message": "There is no valid session established with the implementation."}]}}),
    ));
    let bmc = host.bmc();
    let err = Redfish::login(&bmc, "/redfish/v1/SessionService/Sessions", "root", &bmc.login_password().unwrap())
        .err()
        .unwrap();
    assert_eq!(err.kind(), "auth-failed");
    assert!(err.message().contains("NoValidSession"), "{err}");
}

#[test]
fn a_session_without_token_is_a_protocol_error() {
    let host = MockHost::new().bind(LOGIN_PASSWORD);
    host.expect(Method::Post, "/s").reply(Reply::json(201, json!({})));
    let bmc = host.bmc();
    let err = Redfish::login(&bmc, "/s", "root", &bmc.login_password().unwrap()).err().unwrap();
    assert_eq!(err.kind(), "protocol");
    assert!(err.message().contains("without X-Auth-Token"), "{err}");
}

#[test]
fn find_account_matches_user_name_across_fixed_slots() {
    let host = MockHost::new().bind(LOGIN_PASSWORD);
    script_account_lookup(
        &host,
        json!([{"@odata.id": format!("{ACCOUNTS}/1")}, {"@odata.id": format!("{ACCOUNTS}/2")}, {"@odata.id": format!("{ACCOUNTS}/3")}]),
    );
    host.expect(Method::Get, &format!("{ACCOUNTS}/1")).reply(Reply::json(200, json!({"UserName": ""})));
    host.expect(Method::Get, &format!("{ACCOUNTS}/2")).reply(Reply::json(200, json!({"UserName": "admin"})));
    host.expect(Method::Get, &format!("{ACCOUNTS}/3"))
        .auth("basic admin <secret:login-password>")
        .reply(Reply::json(200, json!({"UserName": "root", "@odata.etag": "W/\"77\""})));
    let bmc = host.bmc();
    let client = Redfish::basic(&bmc, "admin", bmc.login_password().unwrap());
    let account = client.find_account("/redfish/v1/AccountService", "root").unwrap();
    assert_eq!(account.uri, format!("{ACCOUNTS}/3"));
    assert_eq!(account.etag, ETag::parse("W/\"77\""));
    host.assert_done();
}

#[test]
fn find_account_keeps_trailing_slashes_and_ignores_login_name() {
    // iLO 5: variable ids, trailing slashes, Oem.Hpe.LoginName differs from UserName.
    let host = MockHost::new();
    script_account_lookup(&host, json!([{"@odata.id": "/redfish/v1/AccountService/Accounts/13/"}]));
    host.expect(Method::Get, "/redfish/v1/AccountService/Accounts/13/").reply(
        Reply::json(200, json!({"UserName": "ops", "Oem": {"Hpe": {"LoginName": "Operator"}}}))
            .header("ETag", "W/\"ABC\""),
    );
    let bmc = host.bmc();
    let client = Redfish::anonymous(&bmc);
    let account = client.find_account("/redfish/v1/AccountService", "ops").unwrap();
    assert_eq!(account.uri, "/redfish/v1/AccountService/Accounts/13/");
    assert_eq!(account.etag.unwrap().header_value(), "W/\"ABC\"");

    script_account_lookup(&host, json!([{"@odata.id": "/redfish/v1/AccountService/Accounts/13/"}]));
    host.expect(Method::Get, "/redfish/v1/AccountService/Accounts/13/")
        .reply(Reply::json(200, json!({"UserName": "ops", "Oem": {"Hpe": {"LoginName": "Operator"}}})));
    let err = client.find_account("/redfish/v1/AccountService", "Operator").unwrap_err();
    assert_eq!(err.kind(), "account-not-found");
    assert!(err.message().contains("accounts present: ops"), "{err}");
    host.assert_done();
}

#[test]
fn patch_sends_if_match_in_every_form() {
    let cases = [
        (IfMatch::Tag(ETag::parse("\"12\"").unwrap()), Some("\"12\"")),
        (IfMatch::Tag(ETag::parse("W/\"12\"").unwrap()), Some("W/\"12\"")),
        (IfMatch::Tag(ETag::parse("12").unwrap()), Some("\"12\"")),
        (IfMatch::Any, Some("*")),
        (IfMatch::None, None),
    ];
    for (if_match, header) in cases {
        let host = MockHost::new().bind(NEW_PASSWORD);
        let exp = host.expect(Method::Patch, "/a");
        let exp = match header {
            Some(h) => exp.header("If-Match", h),
            None => exp.no_header("If-Match"),
        };
        exp.body_contains(r#"{"Password":<secret:new-password>}"#).reply(Reply::empty(204));
        let bmc = host.bmc();
        let new = bmc.new_password().unwrap();
        Redfish::anonymous(&bmc).patch("/a", JsonBody::object().secret("Password", &new), &if_match).unwrap().unwrap();
        host.assert_done();
    }
}

#[test]
fn patch_failure_carries_the_vendor_messages() {
    let host = MockHost::new().bind(NEW_PASSWORD);
    host.expect(Method::Patch, "/a").reply(Reply::json(
        400,
        json!({"error": {"@Message.ExtendedInfo": [{"MessageId": "iLO.2.14.InvalidPasswordLength",
            "MessageArgs": ["8", "39"], "Message": "A valid password must contain between 8 to 39 characters."}]}}),
    ));
    let bmc = host.bmc();
    let new = bmc.new_password().unwrap();
    let err = Redfish::anonymous(&bmc)
        .patch("/a", JsonBody::object().secret("Password", &new), &IfMatch::None)
        .unwrap()
        .unwrap_err();
    assert!(err.has("InvalidPasswordLength"));
    let err = err.into_plugin_error();
    assert_eq!(err.kind(), "policy-rejected");
    assert!(err.message().contains("between 8 to 39"), "{err}");
}

#[test]
fn a_lost_answer_to_a_patch_is_ambiguous_but_to_a_get_is_unreachable() {
    let host = MockHost::new().bind(NEW_PASSWORD);
    host.expect(Method::Patch, "/a").fail(HttpError::NoResponse("connection reset".into()));
    host.expect(Method::Get, "/a").fail(HttpError::NoResponse("connection reset".into()));
    let bmc = host.bmc();
    let new = bmc.new_password().unwrap();
    let client = Redfish::anonymous(&bmc);
    let err = client.patch("/a", JsonBody::object().secret("Password", &new), &IfMatch::None).unwrap_err();
    assert_eq!(err.kind(), "ambiguous");
    assert_eq!(client.get("/a").unwrap_err().kind(), "unreachable");
}

#[test]
fn ilo_success_envelope_is_readable() {
    let body = json!({"error": {"code": "iLO.0.10.ExtendedInfo", "message": "See @Message.ExtendedInfo for more information.",
        "@Message.ExtendedInfo": [{"MessageId": "Base.1.4.AccountModified"}]}});
    assert_eq!(extended_info(&body)[0].key(), "AccountModified");
}

#[test]
fn unbound_secret_is_a_clear_error() {
    let host = MockHost::new().bind(LOGIN_PASSWORD);
    let err = host.bmc().new_password().unwrap_err();
    assert!(err.message().contains("`new-password` is not bound"), "{err}");
}

#[test]
fn api_version_matches_the_wit_package() {
    let world = include_str!("../wit/v0.2/world.wit");
    assert!(world.contains(&format!("package bmc:plugin@{};", bmc_plugin_sdk::API_VERSION)));
}

fn onboarding_target() -> Target {
    Target { address: "bmc".into(), account: "azsbmc".into(), login_account: "root".into() }
}

fn slot(id: u32, user: &str) -> serde_json::Value {
    json!({"@odata.type": "#ManagerAccount.v1_12_0.ManagerAccount", "Id": id.to_string(), "UserName": user})
}

#[test]
fn onboarding_fills_the_first_free_slot_with_its_etag() {
    use bmc_plugin_sdk::redfish::{AccountSlots, enable_account};
    let host = MockHost::new().bind(LOGIN_PASSWORD).bind(NEW_PASSWORD);
    let members = json!([{"@odata.id": format!("{ACCOUNTS}/1")}, {"@odata.id": format!("{ACCOUNTS}/2")},
        {"@odata.id": format!("{ACCOUNTS}/3")}, {"@odata.id": format!("{ACCOUNTS}/4")}]);
    host.expect(Method::Get, ACCOUNTS).reply(Reply::json(200, json!({ "Members": members })));
    host.expect(Method::Get, &format!("{ACCOUNTS}/1")).reply(Reply::json(200, slot(1, "")));
    host.expect(Method::Get, &format!("{ACCOUNTS}/2")).reply(Reply::json(200, slot(2, "root")));
    host.expect(Method::Get, &format!("{ACCOUNTS}/3")).reply(Reply::json(200, slot(3, "")).header("ETag", "\"v3\""));
    host.expect(Method::Get, &format!("{ACCOUNTS}/4")).reply(Reply::json(200, slot(4, "")));
    host.expect(Method::Patch, &format!("{ACCOUNTS}/3"))
        .header("if-match", "\"v3\"")
        .body_contains(
            r#"{"UserName":"azsbmc","Password":<secret:new-password>,"RoleId":"Administrator","Enabled":true}"#,
        )
        .reply(Reply::json(200, json!({})));
    let bmc = host.bmc();
    let client = Redfish::basic(&bmc, "root", bmc.login_password().unwrap());
    let outcome = enable_account(
        &client,
        ACCOUNTS,
        &onboarding_target(),
        &bmc.new_password().unwrap(),
        AccountSlots::Fixed { first: 3 },
    );
    assert_eq!(outcome, Ok(Onboarded::Created));
    host.assert_done();
}

#[test]
fn onboarding_posts_where_accounts_are_created_and_patches_an_existing_one() {
    use bmc_plugin_sdk::redfish::{AccountSlots, enable_account};
    let host = MockHost::new().bind(LOGIN_PASSWORD).bind(NEW_PASSWORD);
    host.expect(Method::Get, ACCOUNTS)
        .reply(Reply::json(200, json!({ "Members": [{"@odata.id": format!("{ACCOUNTS}/1")}] })));
    host.expect(Method::Get, &format!("{ACCOUNTS}/1")).reply(Reply::json(200, slot(1, "Administrator")));
    host.expect(Method::Post, ACCOUNTS).body_contains(r#""UserName":"azsbmc""#).reply(Reply::json(201, json!({})));
    let bmc = host.bmc();
    let client = Redfish::basic(&bmc, "root", bmc.login_password().unwrap());
    let new = bmc.new_password().unwrap();
    assert_eq!(
        enable_account(&client, ACCOUNTS, &onboarding_target(), &new, AccountSlots::Created),
        Ok(Onboarded::Created)
    );
    host.assert_done();

    host.expect(Method::Get, ACCOUNTS)
        .reply(Reply::json(200, json!({ "Members": [{"@odata.id": format!("{ACCOUNTS}/12")}] })));
    host.expect(Method::Get, &format!("{ACCOUNTS}/12")).reply(Reply::json(200, slot(12, "azsbmc")));
    host.expect(Method::Patch, &format!("{ACCOUNTS}/12")).reply(Reply::json(200, json!({})));
    assert_eq!(
        enable_account(&client, ACCOUNTS, &onboarding_target(), &new, AccountSlots::Created),
        Ok(Onboarded::Updated)
    );
    host.assert_done();
}

#[test]
fn onboarding_without_a_free_slot_says_so_and_sends_nothing() {
    use bmc_plugin_sdk::redfish::{AccountSlots, enable_account};
    let host = MockHost::new().bind(LOGIN_PASSWORD).bind(NEW_PASSWORD);
    host.expect(Method::Get, ACCOUNTS)
        .reply(Reply::json(200, json!({ "Members": [{"@odata.id": format!("{ACCOUNTS}/2")}] })));
    host.expect(Method::Get, &format!("{ACCOUNTS}/2")).reply(Reply::json(200, slot(2, "root")));
    let bmc = host.bmc();
    let client = Redfish::basic(&bmc, "root", bmc.login_password().unwrap());
    let err = enable_account(
        &client,
        ACCOUNTS,
        &onboarding_target(),
        &bmc.new_password().unwrap(),
        AccountSlots::Fixed { first: 3 },
    )
    .unwrap_err();
    assert!(err.message().contains("no empty account slot for `azsbmc`"), "{err}");
    host.assert_done();
}

#[test]
fn a_plugin_that_does_not_onboard_says_so() {
    /// A plugin written before onboarding existed: none of its exports is called here.
    struct Old;
    impl VendorPlugin for Old {
        fn info() -> PluginInfo {
            panic!("not called")
        }
        fn probe(_: &Bmc, _: &Target) -> Result<ProbeResult, PluginError> {
            panic!("not called")
        }
        fn verify(_: &Bmc, _: &Target) -> Result<(), PluginError> {
            panic!("not called")
        }
        fn change_password(_: &Bmc, _: &Target) -> Result<(), PluginError> {
            panic!("not called")
        }
    }
    let host = MockHost::new();
    assert_eq!(Old::enable_account(&host.bmc(), &onboarding_target()).unwrap_err().kind(), "unsupported");
    assert_eq!(Old::disable_account(&host.bmc(), &onboarding_target()).unwrap_err().kind(), "unsupported");
    host.assert_done();
}

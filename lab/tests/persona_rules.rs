//! Every persona rule, against the state machine directly (no sockets). Each test fails if the
//! rule it names is removed.

use bmc_lab::LabClock;
use bmc_lab::bmc::{Bmc, LabRequest, LabResponse};
use bmc_lab::persona::Persona;
use serde_json::{Value, json};
use std::net::IpAddr;
use std::time::Duration;

const PW: &str = "Start-Pass-1";

fn bmc(persona: Persona) -> Bmc {
    Bmc::new(persona.profile(), LabClock::default(), PW)
}

fn default_user(persona: Persona) -> &'static str {
    persona.profile().default_account.1
}

fn get(bmc: &mut Bmc, path: &str) -> LabResponse {
    let user = bmc.profile().default_account.1;
    bmc.handle(&LabRequest::new("GET", path).basic(user, PW))
}

fn account_path(bmc: &Bmc, id: u32) -> String {
    format!("{}/{id}", bmc.profile().account_collections[0])
}

fn etag_of(bmc: &mut Bmc, path: &str) -> String {
    get(bmc, path).header("etag").expect("accounts carry an ETag header").to_owned()
}

fn patch(bmc: &mut Bmc, path: &str, auth: (&str, &str), if_match: Option<&str>, body: Value) -> LabResponse {
    let mut req = LabRequest::new("PATCH", path).basic(auth.0, auth.1).json(body);
    if let Some(tag) = if_match {
        req = req.header("if-match", tag);
    }
    bmc.handle(&req)
}

fn login(bmc: &mut Bmc, user: &str, password: &str) -> LabResponse {
    bmc.handle(
        &LabRequest::new("POST", "/redfish/v1/SessionService/Sessions")
            .json(json!({"UserName": user, "Password": password})),
    )
}

fn ids(r: &LabResponse) -> String {
    r.message_ids().join(",")
}

// ---- generic rules, every persona --------------------------------------------------------

#[test]
fn accounts_read_password_as_null_with_etag_header_and_annotation() {
    for persona in Persona::ALL {
        let mut b = bmc(persona);
        let path = account_path(&b, persona.profile().default_account.0);
        let r = get(&mut b, &path);
        assert_eq!(r.status, 200, "{persona}");
        assert!(r.body.get("Password").is_some_and(Value::is_null), "{persona}: {}", r.body);
        assert_eq!(r.body["UserName"], default_user(persona));
        for field in ["RoleId", "Enabled", "Locked"] {
            assert!(r.body.get(field).is_some(), "{persona} lacks {field}");
        }
        assert_eq!(r.header("etag"), r.body["@odata.etag"].as_str(), "{persona}");
    }
}

#[test]
fn basic_and_sessions_work_and_logout_ends_the_token() {
    for persona in Persona::ALL {
        let mut b = bmc(persona);
        let user = default_user(persona);
        let r = login(&mut b, user, PW);
        assert_eq!(r.status, 201, "{persona}");
        let token = r.header("x-auth-token").unwrap().to_owned();
        let location = r.header("location").unwrap().to_owned();
        assert!(r.body["Password"].is_null());
        assert_eq!(b.handle(&LabRequest::new("GET", "/redfish/v1/Managers").token(&token)).status, 200);
        let out = b.handle(&LabRequest::new("DELETE", &location).token(&token));
        assert_eq!(out.status, persona.profile().logout_status, "{persona}");
        assert_eq!(b.handle(&LabRequest::new("GET", "/redfish/v1/Managers").token(&token)).status, 401);
        assert_eq!(get(&mut b, "/redfish/v1/Managers").status, 200, "{persona}: Basic");
    }
}

#[test]
fn authentication_is_checked_before_preconditions() {
    for persona in Persona::ALL {
        let mut b = bmc(persona);
        let path = account_path(&b, persona.profile().default_account.0);
        let r = b.handle(&LabRequest::new("GET", &path).header("if-none-match", "*"));
        assert_eq!(r.status, 401, "{persona}");
        assert!(r.header("www-authenticate").is_some());
        let r =
            b.handle(&LabRequest::new("PATCH", &path).header("if-match", "\"bogus\"").json(json!({"Password": "X"})));
        assert_eq!(r.status, 401, "{persona}: a bad tag without credentials is a 401, not a 412");
    }
}

#[test]
fn a_stale_if_match_is_exactly_412() {
    for persona in Persona::ALL {
        let mut b = bmc(persona);
        let user = default_user(persona);
        let path = account_path(&b, persona.profile().default_account.0);
        let r = patch(&mut b, &path, (user, PW), Some("W/\"stale\""), json!({"Password": "New-Pass-22"}));
        assert_eq!(r.status, 412, "{persona}: {}", r.body);
        assert!(ids(&r).contains("PreconditionFailed"));
        assert!(b.password_is(user, PW), "{persona}: nothing applied");
    }
}

#[test]
fn account_service_publishes_length_limits() {
    for persona in Persona::ALL {
        let mut b = bmc(persona);
        let r = get(&mut b, "/redfish/v1/AccountService");
        assert_eq!(r.body["MinPasswordLength"], persona.profile().policy.min_length);
        assert_eq!(r.body["MaxPasswordLength"], persona.profile().policy.max_length);
    }
}

#[test]
fn a_change_moves_the_password_and_ends_the_accounts_sessions() {
    for persona in Persona::ALL {
        let mut b = bmc(persona);
        let user = default_user(persona);
        let path = account_path(&b, persona.profile().default_account.0);
        let token = login(&mut b, user, PW).header("x-auth-token").unwrap().to_owned();
        let tag = etag_of(&mut b, &path);
        let r = patch(&mut b, &path, (user, PW), Some(&tag), json!({"Password": "Next-Pass-42"}));
        assert!(matches!(r.status, 200 | 204), "{persona}: {} {}", r.status, r.body);
        assert!(b.password_is(user, "Next-Pass-42"));
        assert_eq!(get(&mut b, "/redfish/v1/Managers").status, 401, "{persona}: the old password is dead");
        assert_eq!(
            b.handle(&LabRequest::new("GET", "/redfish/v1/Managers").token(&token)).status,
            401,
            "{persona}: token dead"
        );
        assert_eq!(login(&mut b, user, "Next-Pass-42").status, 201);
        assert_ne!(etag_of_with(&mut b, &path, user, "Next-Pass-42"), tag, "{persona}: the tag moved");
    }
}

fn etag_of_with(b: &mut Bmc, path: &str, user: &str, password: &str) -> String {
    b.handle(&LabRequest::new("GET", path).basic(user, password)).header("etag").unwrap().to_owned()
}

#[test]
fn unknown_and_odata_only_bodies_change_nothing() {
    for persona in Persona::ALL {
        let mut b = bmc(persona);
        let user = default_user(persona);
        let path = account_path(&b, persona.profile().default_account.0);
        let r = patch(&mut b, &path, (user, PW), Some("*"), json!({"Password": "Other-Pass-7", "BogusProp": 1}));
        assert_eq!(r.status, 400);
        assert!(ids(&r).contains("PropertyUnknown"), "{persona}: {}", r.body);
        let r = patch(&mut b, &path, (user, PW), Some("*"), json!({"@odata.etag": "x"}));
        assert!(ids(&r).contains("NoOperation"));
        assert!(b.password_is(user, PW));
    }
}

#[test]
fn password_change_required_allows_only_the_own_account() {
    for persona in Persona::ALL {
        let mut b = bmc(persona);
        let user = default_user(persona);
        let id = persona.profile().default_account.0;
        b.account_mut(user).unwrap().change_required = true;
        let own = b.handle(&LabRequest::new("GET", &account_path(&b, id)).basic(user, PW));
        assert_eq!(own.status, 200);
        let session = login(&mut b, user, PW);
        assert_eq!(session.status, 201);
        assert!(ids(&session).contains("PasswordChangeRequired"));
        let other = get(&mut b, "/redfish/v1/Managers");
        assert_eq!(other.status, 403, "{persona}");
        let info = &other.body["error"]["@Message.ExtendedInfo"][0];
        assert!(info["MessageId"].as_str().unwrap().ends_with("PasswordChangeRequired"));
        assert_eq!(info["MessageArgs"][0].as_str().unwrap().trim_end_matches('/'), account_path(&b, id));
        let own_path = account_path(&b, id);
        let r = patch(&mut b, &own_path, (user, PW), Some("*"), json!({"Password": "Fresh-Pass-9"}));
        assert!(matches!(r.status, 200 | 204), "{persona}: {} {}", r.status, r.body);
        assert!(!b.account(user).unwrap().change_required);
        assert_eq!(b.handle(&LabRequest::new("GET", "/redfish/v1/Managers").basic(user, "Fresh-Pass-9")).status, 200);
    }
}

#[test]
fn session_limits_answer_with_the_vendor_status() {
    for persona in Persona::ALL {
        let mut b = bmc(persona);
        let user = default_user(persona);
        for _ in 0..persona.profile().max_sessions {
            assert_eq!(login(&mut b, user, PW).status, 201);
        }
        let r = login(&mut b, user, PW);
        let (status, id) = persona.profile().session_limit;
        assert_eq!((r.status, ids(&r)), (status, id.to_owned()), "{persona}");
    }
    assert_eq!(Persona::Xcc2.profile().session_limit.0, 403);
    assert_eq!(Persona::Xcc3.profile().session_limit.0, 503);
}

#[test]
fn slot_profiles_have_empty_slots_that_a_patch_fills() {
    for persona in [Persona::Idrac9, Persona::Idrac10, Persona::Xcc1, Persona::Xcc2, Persona::Xcc3] {
        let mut b = bmc(persona);
        let user = default_user(persona);
        let slot = account_path(&b, 5);
        let r = get(&mut b, &slot);
        assert_eq!((r.body["UserName"].as_str(), r.body["Enabled"].as_bool()), (Some(""), Some(false)), "{persona}");
        let body = json!({"UserName": "rfpv0001", "Password": "Slot-Pass-5x", "RoleId": "ReadOnly", "Enabled": true});
        let r = patch(&mut b, &slot, (user, PW), Some("*"), body);
        assert_eq!(r.status, 200, "{persona}: {}", r.body);
        assert!(b.password_is("rfpv0001", "Slot-Pass-5x"));
        let r = patch(&mut b, &slot, (user, PW), Some("*"), json!({"UserName": "", "Enabled": false}));
        assert_eq!(r.status, 200);
        assert!(b.account("rfpv0001").is_none());
    }
}

// ---- Dell ----------------------------------------------------------------------------------

#[test]
fn idrac_slots_uris_and_generation_detection() {
    let mut b = bmc(Persona::Idrac9);
    let r = get(&mut b, "/redfish/v1/Managers/iDRAC.Embedded.1/Accounts");
    assert_eq!(r.body["Members"].as_array().unwrap().len(), 16);
    assert_eq!(get(&mut b, "/redfish/v1/Managers/iDRAC.Embedded.1/Accounts/2").body["UserName"], "root");
    assert_eq!(get(&mut b, "/redfish/v1/AccountService/Accounts/2").body["UserName"], "root");
    let model = get(&mut b, "/redfish/v1/Managers/iDRAC.Embedded.1?$select=Model");
    assert_eq!(model.body, json!({"@odata.id": "/redfish/v1/Managers/iDRAC.Embedded.1", "Model": "14G Monolithic"}));
    let expanded = get(&mut b, "/redfish/v1/AccountService/Accounts?$expand=*($levels=1)");
    assert_eq!(expanded.body["Members"][1]["UserName"], "root");

    let mut b10 = bmc(Persona::Idrac10);
    assert_eq!(get(&mut b10, "/redfish/v1/AccountService/Accounts").body["Members"].as_array().unwrap().len(), 32);
    assert_eq!(get(&mut b10, "/redfish/v1/Managers/iDRAC.Embedded.1/Accounts/2").status, 404);
    assert!(
        !get(&mut b10, "/redfish/v1/Managers/iDRAC.Embedded.1?$select=Model").body["Model"]
            .as_str()
            .unwrap()
            .contains("14")
    );
}

#[test]
fn idrac_tags_are_weak_generations_and_if_match_is_optional() {
    let mut b = bmc(Persona::Idrac9);
    let r = get(&mut b, "/redfish/v1/AccountService/Accounts/2");
    assert_eq!(r.header("etag"), Some("W/\"gen-1\""));
    assert_eq!(r.header("allow"), Some("GET, HEAD, PATCH, DELETE"));
    let r =
        patch(&mut b, "/redfish/v1/AccountService/Accounts/2", ("root", PW), None, json!({"Password": "Calvin-2-Go"}));
    assert_eq!(r.status, 200);
    assert!(ids(&r).contains("Success"));
}

#[test]
fn idrac_forced_default_change_uses_dell_attributes() {
    let mut b = bmc(Persona::Idrac9);
    b.account_mut("root").unwrap().dell_default_password = true;
    let r =
        patch(&mut b, "/redfish/v1/AccountService/Accounts/2", ("root", PW), None, json!({"Password": "Calvin-2-Go"}));
    assert_eq!(r.status, 400);
    assert!(ids(&r).contains("IDRAC.2.9.SWC1908"), "{}", r.body);
    assert_eq!(r.body["error"]["code"], "Base.1.12.GeneralError");
    let path = "/redfish/v1/Managers/iDRAC.Embedded.1/Oem/Dell/DellAttributes/iDRAC.Embedded.1";
    let r = patch(&mut b, path, ("root", PW), None, json!({"Attributes": {"Users.2.Password": "Calvin-2-Go"}}));
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(b.password_is("root", "Calvin-2-Go"));
}

#[test]
fn idrac_blocks_the_client_address_not_the_account() {
    let mut b = bmc(Persona::Idrac9);
    let attacker = IpAddr::from([127, 0, 0, 9]);
    for _ in 0..5 {
        let mut req = LabRequest::new("GET", "/redfish/v1/Managers").basic("root", "wrong");
        req.peer = attacker;
        assert_eq!(b.handle(&req).status, 401);
    }
    assert!(b.is_blocked(attacker));
    let mut right = LabRequest::new("GET", "/redfish/v1/Managers").basic("root", PW);
    right.peer = attacker;
    assert_eq!(b.handle(&right).status, 401, "the right password from a blocked address is refused");
    assert_eq!(get(&mut b, "/redfish/v1/Managers").status, 200, "other addresses and the account are unaffected");
    b.clock().advance(Duration::from_secs(301));
    assert_eq!(b.handle(&right).status, 200, "the block expires");
    assert_eq!(get(&mut b, "/redfish/v1/AccountService").body["AccountLockoutThreshold"], 0);
}

#[test]
fn idrac_refuses_weak_passwords_with_a_base_message() {
    let mut b = bmc(Persona::Idrac9);
    let r = patch(
        &mut b,
        "/redfish/v1/AccountService/Accounts/2",
        ("root", PW),
        None,
        json!({"Password": "alllowercase1"}),
    );
    assert_eq!(r.status, 400);
    assert!(ids(&r).contains("PropertyValueFormatError"), "{}", r.body);
    assert!(b.password_is("root", PW));
}

// ---- HPE -------------------------------------------------------------------------------------

#[test]
fn ilo_ids_are_variable_with_trailing_slashes_on_ilo5() {
    let mut b = bmc(Persona::Ilo5);
    let id = b.add_account("ops", "Ops-Pass-11", "Operator").unwrap();
    assert_ne!(id, 2, "ids are not slots");
    let members = get(&mut b, "/redfish/v1/AccountService/Accounts/").body["Members"].clone();
    let uris: Vec<&str> = members.as_array().unwrap().iter().map(|m| m["@odata.id"].as_str().unwrap()).collect();
    assert!(uris.iter().all(|u| u.ends_with('/')), "{uris:?}");
    let ops = get(&mut b, &format!("/redfish/v1/AccountService/Accounts/{id}/"));
    assert_eq!(ops.body["UserName"], "ops");

    let mut b6 = bmc(Persona::Ilo6);
    let members = get(&mut b6, "/redfish/v1/AccountService/Accounts").body["Members"].clone();
    assert!(!members[0]["@odata.id"].as_str().unwrap().ends_with('/'));
}

#[test]
fn ilo_success_is_wrapped_in_the_error_envelope_with_weak_tags() {
    let mut b = bmc(Persona::Ilo5);
    let path = "/redfish/v1/AccountService/Accounts/1/";
    let tag = etag_of(&mut b, path);
    assert!(tag.starts_with("W/\"") && tag.len() == 12, "{tag}");
    let r = patch(&mut b, path, ("Administrator", PW), None, json!({"Password": "Gen10-Pass-x"}));
    assert_eq!(r.status, 200);
    assert_eq!(r.body["error"]["code"], "iLO.0.10.ExtendedInfo");
    assert_eq!(ids(&r), "Base.1.17.AccountModified");
}

#[test]
fn ilo_policy_messages_carry_their_arguments() {
    let mut b = bmc(Persona::Ilo6);
    let path = "/redfish/v1/AccountService/Accounts/1";
    let r = patch(&mut b, path, ("Administrator", PW), None, json!({"Password": "Sh0rt!"}));
    assert_eq!(r.status, 400);
    let info = &r.body["error"]["@Message.ExtendedInfo"][0];
    assert_eq!(info["MessageId"], "iLO.2.34.InvalidPasswordLength");
    assert_eq!(info["MessageArgs"], json!(["8", "39"]));
    let r = patch(&mut b, path, ("Administrator", PW), None, json!({"Password": "onlylowercase"}));
    assert_eq!(r.status, 200, "complexity is off by default: {}", r.body);
    let on = json!({"Oem": {"Hpe": {"EnforcePasswordComplexity": true}}});
    let admin = ("Administrator", "onlylowercase");
    assert_eq!(patch(&mut b, "/redfish/v1/AccountService", admin, None, on).status, 200);
    let r = patch(&mut b, path, admin, None, json!({"Password": "alsolowercase"}));
    assert_eq!(ids(&r), "iLO.2.34.InvalidPasswordComplexity");
}

#[test]
fn ilo5_delays_failed_logins_and_never_locks() {
    let mut b = bmc(Persona::Ilo5);
    for attempt in 1..=6 {
        let r = login(&mut b, "Administrator", "wrong");
        assert_eq!(r.status, 401);
        assert!(ids(&r).contains("UnauthorizedLoginAttempt"));
        let delay = if attempt > 1 { Duration::from_secs(10) } else { Duration::ZERO };
        assert_eq!(r.delay, delay, "attempt {attempt}: delayed after 1 failure, by 10 s");
        if attempt > 1 {
            assert!(ids(&r).contains("LoginAttemptDelayedSeconds"));
        }
    }
    assert_eq!(login(&mut b, "Administrator", PW).status, 201, "no lockout on iLO 5");
}

#[test]
fn ilo6_locks_after_five_failures() {
    let mut b = bmc(Persona::Ilo6);
    for _ in 0..5 {
        assert_eq!(login(&mut b, "Administrator", "wrong").status, 401);
    }
    assert_eq!(login(&mut b, "Administrator", PW).status, 401, "locked: the right password is refused");
    b.clock().advance(Duration::from_secs(301));
    assert_eq!(login(&mut b, "Administrator", PW).status, 201);
}

// ---- Lenovo ----------------------------------------------------------------------------------

#[test]
fn xcc_slots_and_default_account() {
    let mut b2 = bmc(Persona::Xcc2);
    assert_eq!(get(&mut b2, "/redfish/v1/AccountService/Accounts").body["Members"].as_array().unwrap().len(), 12);
    assert_eq!(get(&mut b2, "/redfish/v1/AccountService/Accounts/1").body["UserName"], "USERID");
    let mut b3 = bmc(Persona::Xcc3);
    assert_eq!(get(&mut b3, "/redfish/v1/AccountService/Accounts").body["Members"].as_array().unwrap().len(), 14);
}

#[test]
fn xcc_requires_if_match_and_accepts_the_tag_or_star() {
    let mut b = bmc(Persona::Xcc2);
    let path = "/redfish/v1/AccountService/Accounts/1";
    let r = patch(&mut b, path, ("USERID", PW), None, json!({"Password": "Lenovo-Pass1"}));
    assert_eq!(r.status, 428, "{}", r.body);
    let tag = etag_of(&mut b, path);
    assert!(tag.starts_with('"') && tag.ends_with(" \""), "the documented trailing space: {tag:?}");
    let r = patch(&mut b, path, ("USERID", PW), Some(&tag), json!({"Password": "Lenovo-Pass1"}));
    assert_eq!(r.status, 200);
    assert_eq!(r.body["UserName"], "USERID", "success returns the resource");
    assert!(r.body["Password"].is_null());
    let r = patch(&mut b, path, ("USERID", "Lenovo-Pass1"), Some("*"), json!({"Password": "Lenovo-Pass2"}));
    assert_eq!(r.status, 200);
}

#[test]
fn xcc_refuses_the_last_five_passwords() {
    let mut b = bmc(Persona::Xcc2);
    let path = "/redfish/v1/AccountService/Accounts/1";
    let mut current = PW.to_owned();
    for next in ["Rotate-Pass1", "Rotate-Pass2"] {
        assert_eq!(patch(&mut b, path, ("USERID", &current), Some("*"), json!({"Password": next})).status, 200);
        current = next.to_owned();
    }
    // Rolling back to the previous password is what a naive rollback does: refused.
    let r = patch(&mut b, path, ("USERID", &current), Some("*"), json!({"Password": "Rotate-Pass1"}));
    assert_eq!(r.status, 400);
    assert!(r.body.to_string().contains("last 5 passwords"), "{}", r.body);
    let r = patch(&mut b, path, ("USERID", &current), Some("*"), json!({"Password": PW}));
    assert_eq!(r.status, 400, "the original is still within the cycle");
    assert!(b.password_is("USERID", &current));
}

#[test]
fn xcc_minimum_change_interval() {
    let mut b = bmc(Persona::Xcc3);
    let service = LabRequest::new("PATCH", "/redfish/v1/AccountService")
        .basic("USERID", PW)
        .json(json!({"Oem": {"Lenovo": {"MinimumPasswordChangeIntervalHours": 24}}}));
    assert_eq!(b.handle(&service).status, 200);
    let path = "/redfish/v1/AccountService/Accounts/1";
    assert_eq!(patch(&mut b, path, ("USERID", PW), Some("*"), json!({"Password": "First-Change1"})).status, 200);
    let r = patch(&mut b, path, ("USERID", "First-Change1"), Some("*"), json!({"Password": "Second-Change1"}));
    assert_eq!(r.status, 400);
    assert!(r.body.to_string().contains("less than 24 hours"), "{}", r.body);
    b.clock().advance(Duration::from_secs(24 * 3600));
    assert_eq!(
        patch(&mut b, path, ("USERID", "First-Change1"), Some("*"), json!({"Password": "Second-Change1"})).status,
        200
    );
}

#[test]
fn xcc_locks_after_five_failures_and_the_right_password_stays_refused() {
    for persona in [Persona::Xcc1, Persona::Xcc2, Persona::Xcc3] {
        let mut b = bmc(persona);
        for _ in 0..5 {
            let r = login(&mut b, "USERID", "wrong");
            assert_eq!(r.status, 401);
            assert_eq!(ids(&r), persona.profile().unauthorized);
        }
        assert!(get(&mut b, "/redfish/v1/AccountService/Accounts/1").status == 401);
        b.clock().advance(Duration::from_secs(61));
        assert_eq!(login(&mut b, "USERID", PW).status, 201, "{persona}");
    }
}

#[test]
fn xcc_complexity_and_repeat_rules() {
    let mut b = bmc(Persona::Xcc2);
    let path = "/redfish/v1/AccountService/Accounts/1";
    for bad in ["Paaassw0rd", "nouppers1x", "Xuserid-99"] {
        let r = patch(&mut b, path, ("USERID", PW), Some("*"), json!({"Password": bad}));
        assert_eq!(r.status, 400, "{bad}");
    }
    assert!(b.password_is("USERID", PW));
}

#[test]
fn the_request_log_keeps_no_secret() {
    let mut b = bmc(Persona::Ilo5);
    login(&mut b, "Administrator", PW);
    patch(
        &mut b,
        "/redfish/v1/AccountService/Accounts/1/",
        ("Administrator", PW),
        None,
        json!({"Password": "Logged-Pass-1"}),
    );
    let log = format!("{:?}", b.requests());
    assert!(log.contains("PATCH") && log.contains("basic Administrator"), "{log}");
    assert!(!log.contains(PW) && !log.contains("Logged-Pass-1"), "{log}");
}

// ---- the generic protocol layer (DSP0266) --------------------------------------------------

#[test]
fn odata_documents_and_standard_headers() {
    let mut b = bmc(Persona::Ilo6);
    let odata = b.handle(&LabRequest::new("GET", "/redfish/v1/odata"));
    assert_eq!(odata.body["@odata.context"], "/redfish/v1/$metadata");
    let metadata = b.handle(&LabRequest::new("GET", "/redfish/v1/$metadata"));
    let (content_type, xml) = metadata.text.as_ref().expect("XML document");
    assert!(content_type.starts_with("application/xml") && xml.contains("EntityContainer"));
    let root = b.handle(&LabRequest::new("GET", "/redfish/v1/"));
    for header in ["odata-version", "cache-control", "allow", "link"] {
        assert!(root.header(header).is_some(), "service root lacks {header}");
    }
    assert_eq!(b.handle(&LabRequest::new("GET", "/redfish")).body, json!({"v1": "/redfish/v1/"}));
}

#[test]
fn head_unsupported_methods_and_odata_version() {
    let mut b = bmc(Persona::Xcc2);
    let head = b.handle(&LabRequest::new("HEAD", "/redfish/v1/AccountService/Accounts/1").basic("USERID", PW));
    assert_eq!(head.status, 200);
    assert!(head.header("etag").is_some());
    let post = b.handle(&LabRequest::new("POST", "/redfish/v1/").basic("USERID", PW).json(json!({})));
    assert_eq!(post.status, 405);
    assert_eq!(post.header("allow"), Some("GET, HEAD"));
    let odata = b.handle(&LabRequest::new("GET", "/redfish/v1/").header("odata-version", "4.1"));
    assert_eq!(odata.status, 412);
}

#[test]
fn conditional_get_and_roles() {
    let mut b = bmc(Persona::Idrac10);
    let path = "/redfish/v1/AccountService/Accounts/2";
    let tag = etag_of(&mut b, path);
    let r = b.handle(&LabRequest::new("GET", path).basic("root", PW).header("if-none-match", &tag));
    assert_eq!(r.status, 304);
    let roles = get(&mut b, "/redfish/v1/AccountService/Roles");
    assert_eq!(roles.body["Members@odata.count"], 3);
    assert_eq!(get(&mut b, "/redfish/v1/AccountService/Roles/Operator").body["IsPredefined"], true);
}

#[test]
fn only_administrators_change_other_accounts() {
    let mut b = bmc(Persona::Ilo6);
    let id = b.add_account("viewer", "Viewer-Pass-1", "ReadOnly").unwrap();
    let admin_path = "/redfish/v1/AccountService/Accounts/1";
    let r = patch(&mut b, admin_path, ("viewer", "Viewer-Pass-1"), None, json!({"Password": "Hijack-Pass-1"}));
    assert_eq!(r.status, 403);
    assert!(ids(&r).contains("InsufficientPrivilege"));
    assert!(b.password_is("Administrator", PW));
    let own = format!("/redfish/v1/AccountService/Accounts/{id}");
    let r = patch(&mut b, &own, ("viewer", "Viewer-Pass-1"), None, json!({"Password": "Viewer-Pass-2"}));
    assert_eq!(r.status, 200, "ConfigureSelf: one's own password");
}

#[test]
fn idrac_ignores_password_change_required_on_patch() {
    let mut b = bmc(Persona::Idrac9);
    let r = patch(
        &mut b,
        "/redfish/v1/AccountService/Accounts/2",
        ("root", PW),
        None,
        json!({"PasswordChangeRequired": true}),
    );
    assert_eq!(r.status, 200);
    assert!(!b.account("root").unwrap().change_required, "accepted but not honoured");
    let mut x = bmc(Persona::Xcc2);
    patch(
        &mut x,
        "/redfish/v1/AccountService/Accounts/1",
        ("USERID", PW),
        Some("*"),
        json!({"PasswordChangeRequired": true}),
    );
    assert!(x.account("USERID").unwrap().change_required, "XCC honours it");
}

// ---- the vendors' dialects (issue 15) --------------------------------------------------------

#[test]
fn ilo_errors_carry_message_ids_and_arguments_only() {
    for persona in [Persona::Ilo5, Persona::Ilo6, Persona::Ilo7] {
        let mut b = bmc(persona);
        let r = patch(
            &mut b,
            "/redfish/v1/AccountService/Accounts/1",
            ("Administrator", PW),
            None,
            json!({"Password": "Sh0rt!"}),
        );
        assert_eq!(r.status, 400, "{persona}");
        assert_eq!(
            r.body,
            json!({"error": {"code": "iLO.0.10.ExtendedInfo", "message": "See @Message.ExtendedInfo for more information.",
                "@Message.ExtendedInfo": [{"MessageId": "iLO.2.34.InvalidPasswordLength", "MessageArgs": ["8", "39"]}]}}),
            "{persona}"
        );
        let r = get(&mut b, "/redfish/v1/AccountService/Accounts/99");
        assert_eq!(r.status, 404);
        assert_eq!(r.body["error"]["code"], "iLO.0.10.ExtendedInfo");
        let info = &r.body["error"]["@Message.ExtendedInfo"][0];
        assert!(info.get("Message").is_none() && info.get("Severity").is_none(), "{persona}: {info}");
        let r = login(&mut b, "Administrator", "wrong");
        assert_eq!(
            r.body["error"]["@Message.ExtendedInfo"],
            json!([{"MessageId": "iLO.2.34.UnauthorizedLoginAttempt"}])
        );
    }
}

#[test]
fn ilo_echoes_the_trailing_slash_form_the_request_used() {
    for persona in [Persona::Ilo5, Persona::Ilo6, Persona::Ilo7] {
        let mut b = bmc(persona);
        for path in [
            "/redfish/v1/AccountService/Accounts/1",
            "/redfish/v1/AccountService/Accounts/1/",
            "/redfish/v1/",
            "/redfish/v1",
        ] {
            assert_eq!(get(&mut b, path).body["@odata.id"], path, "{persona}");
        }
    }
    let mut b = bmc(Persona::Ilo5);
    let members = get(&mut b, "/redfish/v1/AccountService/Accounts").body["Members"].clone();
    assert_eq!(members[0]["@odata.id"], "/redfish/v1/AccountService/Accounts/1/", "links keep the persona's form");
}

#[test]
fn xcc_401_text_matches_its_message_id() {
    let mut b = bmc(Persona::Xcc2);
    let r = b.handle(&LabRequest::new("GET", "/redfish/v1/Managers").basic("USERID", "wrong"));
    let info = &r.body["error"]["@Message.ExtendedInfo"][0];
    assert_eq!(info["MessageId"], "Base.1.17.NoValidSession");
    assert_eq!(info["Message"], "There is no valid session established with the implementation.");
    assert_eq!(info["MessageArgs"], json!([]));
    let mut b = bmc(Persona::Xcc3);
    let r = b.handle(&LabRequest::new("GET", "/redfish/v1/Managers").basic("USERID", "wrong"));
    let info = &r.body["error"]["@Message.ExtendedInfo"][0];
    assert_eq!(info["MessageId"], "Base.1.17.AccessDenied");
    assert_eq!(info["MessageArgs"], json!(["/redfish/v1/Managers"]));
    assert_eq!(
        info["Message"],
        "While attempting to establish a connection to '/redfish/v1/Managers', the service denied access."
    );
}

#[test]
fn resource_not_found_names_the_type_and_the_missing_name() {
    let mut b = bmc(Persona::Idrac9);
    let r = get(&mut b, "/redfish/v1/AccountService/Accounts/99");
    assert_eq!(r.status, 404);
    let info = &r.body["error"]["@Message.ExtendedInfo"][0];
    assert_eq!(info["MessageArgs"], json!(["ManagerAccount", "99"]));
    assert_eq!(info["Message"], "The requested resource of type ManagerAccount named '99' was not found.");
    let r = get(&mut b, "/redfish/v1/SessionService/Sessions/77");
    assert_eq!(r.body["error"]["@Message.ExtendedInfo"][0]["MessageArgs"], json!(["Session", "77"]));
}

#[test]
fn idrac_patch_success_has_the_new_etag_sys413_and_the_resource_identity() {
    for persona in [Persona::Idrac9, Persona::Idrac10] {
        let mut b = bmc(persona);
        let id = b.add_account("ops", "Ops-Pass-11!", "Operator").unwrap();
        let path = account_path(&b, id);
        let r = patch(&mut b, &path, ("root", PW), None, json!({"Password": "New-Pass-22!"}));
        assert_eq!(r.status, 200, "{persona}: {}", r.body);
        assert_eq!(r.header("etag"), Some(etag_of(&mut b, &path).as_str()), "{persona}: the tag after the change");
        assert_eq!(r.header("content-type"), Some("application/json;odata.metadata=minimal;charset=utf-8"));
        let registry = persona.profile().registry;
        assert_eq!(ids(&r), format!("Base.1.18.Success,{registry}.SYS413"), "{persona}");
        assert_eq!(r.body["@odata.id"], path);
        assert_eq!(r.body["@odata.context"], "/redfish/v1/$metadata#ManagerAccount.ManagerAccount");
        assert_eq!(r.body["@odata.type"], "#ManagerAccount.v1_12_0.ManagerAccount");
        assert_eq!(
            (r.body["Id"].as_str(), r.body["Name"].as_str()),
            (Some(id.to_string().as_str()), Some("User Account"))
        );
        assert!(r.body.get("UserName").is_none(), "identity only, not the resource: {}", r.body);
    }
}

#[test]
fn idrac_dell_attributes_read_back_the_user_slots() {
    for persona in [Persona::Idrac9, Persona::Idrac10] {
        let mut b = bmc(persona);
        let r = get(&mut b, "/redfish/v1/Managers/iDRAC.Embedded.1/Oem/Dell/DellAttributes/iDRAC.Embedded.1");
        assert_eq!(r.status, 200, "{persona}");
        let attributes = &r.body["Attributes"];
        assert_eq!(attributes["Users.2.UserName"], "root");
        assert!(attributes["Users.2.Password"].is_null());
        assert_eq!(attributes["Users.2.Privilege"], 511);
        assert_eq!(attributes["Users.2.Enable"], "Enabled");
        assert_eq!(attributes["Users.3.Enable"], "Disabled");
        assert_eq!(r.body["Id"], "iDRAC.Embedded.1");
    }
}

#[test]
fn ilo_accounts_and_account_service_as_captured() {
    for persona in [Persona::Ilo5, Persona::Ilo6, Persona::Ilo7] {
        let mut b = bmc(persona);
        let id = b.add_account("ops", "Ops-Pass-11", "ReadOnly").unwrap();
        let admin = get(&mut b, "/redfish/v1/AccountService/Accounts/1").body["Oem"]["Hpe"].clone();
        assert_eq!(admin["LoginName"], "Administrator", "{persona}: LoginName defaults to the user name");
        let privileges = admin["Privileges"].as_object().unwrap();
        assert_eq!(privileges.len(), 10, "{persona}: {privileges:?}");
        assert!(privileges.values().all(|v| v == true), "{persona}: Administrator holds every privilege");
        let ops = get(&mut b, &format!("/redfish/v1/AccountService/Accounts/{id}")).body["Oem"]["Hpe"].clone();
        assert_eq!(ops["LoginName"], "ops");
        assert_eq!(
            (ops["Privileges"]["LoginPriv"].as_bool(), ops["Privileges"]["UserConfigPriv"].as_bool()),
            (Some(true), Some(false))
        );
        let service = get(&mut b, "/redfish/v1/AccountService").body["Oem"]["Hpe"].clone();
        assert_eq!(service["EnforcePasswordComplexity"], false, "{persona}");
        assert_eq!(service["MinPasswordLength"], 8);
    }
    let mut b = bmc(Persona::Ilo5);
    let service = get(&mut b, "/redfish/v1/AccountService").body["Oem"]["Hpe"].clone();
    assert_eq!(
        (service["AuthFailuresBeforeDelay"].as_u64(), service["AuthFailureDelayTimeSeconds"].as_u64()),
        (Some(1), Some(10))
    );
    let shorter = json!({"Oem": {"Hpe": {"AuthFailuresBeforeDelay": 3, "AuthFailureDelayTimeSeconds": 2}}});
    let r = patch(&mut b, "/redfish/v1/AccountService", ("Administrator", PW), None, shorter);
    assert_eq!(
        (
            r.body["Oem"]["Hpe"]["AuthFailuresBeforeDelay"].as_u64(),
            r.body["Oem"]["Hpe"]["AuthFailureDelayTimeSeconds"].as_u64()
        ),
        (Some(3), Some(2))
    );
    for _ in 0..3 {
        assert!(login(&mut b, "Administrator", "wrong").delay.is_zero());
    }
    assert_eq!(login(&mut b, "Administrator", "wrong").delay, Duration::from_secs(2));
}

/// Every `@odata.id` in a body, nested ones included.
fn links(body: &Value, out: &mut Vec<String>) {
    match body {
        Value::Object(fields) => {
            for (k, v) in fields {
                match (k.as_str(), v.as_str()) {
                    ("@odata.id", Some(uri)) => out.push(uri.to_owned()),
                    _ => links(v, out),
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|v| links(v, out)),
        _ => {}
    }
}

#[test]
fn service_roots_link_the_vendors_resources_and_every_link_resolves() {
    for persona in Persona::ALL {
        let mut b = bmc(persona);
        let root = get(&mut b, "/redfish/v1/").body;
        for link in ["Systems", "Chassis", "UpdateService", "Registries", "JsonSchemas", "Tasks", "EventService"] {
            assert!(root[link]["@odata.id"].is_string(), "{persona}: the root links {link}");
        }
        let dell = persona.profile().vendor == "Dell";
        assert_eq!(root["@odata.id"], if dell { "/redfish/v1" } else { "/redfish/v1/" }, "{persona}");
        let (mut queue, mut seen) = (vec!["/redfish/v1/".to_owned()], std::collections::HashSet::new());
        while let Some(uri) = queue.pop() {
            if !seen.insert(uri.trim_end_matches('/').to_owned()) {
                continue;
            }
            let r = get(&mut b, &uri);
            assert_eq!(r.status, 200, "{persona}: {uri} is linked but answers {}", r.body);
            assert_eq!(r.body["@odata.id"].as_str().map(|u| u.trim_end_matches('/')), Some(uri.trim_end_matches('/')));
            links(&r.body, &mut queue);
        }
        let (system, manager) = if dell { ("System.Embedded.1", "iDRAC.Embedded.1") } else { ("1", "1") };
        let slash = if persona == Persona::Ilo5 { "/" } else { "" };
        for uri in [format!("/redfish/v1/Systems/{system}"), format!("/redfish/v1/Chassis/{system}")] {
            assert!(seen.contains(&uri), "{persona}: {uri} among {seen:?}");
        }
        let members = get(&mut b, "/redfish/v1/Systems").body["Members"].clone();
        assert_eq!(members, json!([{"@odata.id": format!("/redfish/v1/Systems/{system}{slash}")}]), "{persona}");
        let registries = get(&mut b, "/redfish/v1/Registries").body["Members"].clone();
        let base = get(&mut b, registries[0]["@odata.id"].as_str().unwrap()).body;
        assert_eq!(base["Registry"], "Base.1.18", "{persona}: the Base registry's file");
        let protocol = get(&mut b, &format!("/redfish/v1/Managers/{manager}/NetworkProtocol")).body;
        assert_eq!(protocol["SNMP"]["EnableSNMPv3"], true, "{persona}");
        assert_eq!(protocol["SNMP"]["EnableSNMPv1"], false, "{persona}");
        let patch =
            patch(&mut b, &format!("/redfish/v1/Systems/{system}"), (default_user(persona), PW), None, json!({}));
        assert_eq!(patch.status, 405, "{persona}: read-only");
    }
}

#[test]
fn ilo_root_names_the_firmware_as_a_number_and_links_the_resource_directory() {
    for (persona, generation, version) in [(Persona::Ilo5, "iLO 5", "3.10"), (Persona::Ilo6, "iLO 6", "1.62")] {
        let mut b = bmc(persona);
        let root = get(&mut b, "/redfish/v1/").body;
        let manager = &root["Oem"]["Hpe"]["Manager"][0];
        assert_eq!(
            (manager["ManagerType"].as_str(), manager["ManagerFirmwareVersion"].as_str()),
            (Some(generation), Some(version))
        );
        assert!(version.parse::<f64>().is_ok());
        let directory = root["Oem"]["Hpe"]["Links"]["ResourceDirectory"]["@odata.id"].as_str().unwrap().to_owned();
        let r = get(&mut b, &directory);
        assert_eq!(r.status, 200, "{persona}");
        let instances = r.body["Instances"].as_array().unwrap();
        let account =
            format!("/redfish/v1/AccountService/Accounts/1{}", if persona == Persona::Ilo5 { "/" } else { "" });
        assert!(instances.iter().any(|i| i["@odata.id"] == account.as_str()), "{persona}: {instances:?}");
        assert!(instances.iter().all(|i| i["@odata.type"].is_string()));
    }
}

// ---- dmtf-generic: the standard and nothing else ------------------------------------------

#[test]
fn the_generic_persona_speaks_only_the_standard() {
    let persona = Persona::DmtfGeneric;
    let mut b = bmc(persona);
    let root = get(&mut b, "/redfish/v1/").body;
    assert!(root.get("Oem").is_none(), "no vendor extension on the root: {root}");
    assert_eq!(root["AccountService"]["@odata.id"], "/redfish/v1/AccountService");
    let service = get(&mut b, "/redfish/v1/AccountService").body;
    assert!(service.get("Oem").is_none(), "{service}");
    assert_eq!((service["MinPasswordLength"].as_u64(), service["MaxPasswordLength"].as_u64()), (Some(8), Some(64)));
    assert_eq!(
        (service["AccountLockoutThreshold"].as_u64(), service["AccountLockoutDuration"].as_u64()),
        (Some(5), Some(60))
    );
    let manager = get(&mut b, "/redfish/v1/Managers/1");
    assert_eq!(manager.status, 200);

    // Plain ids, handed out densely; a strong tag; `If-Match` optional.
    let id = b.add_account("operator", "Operator-Pass-1", "Operator").unwrap();
    assert_eq!(id, 2);
    let path = account_path(&b, 1);
    assert_eq!(path, "/redfish/v1/AccountService/Accounts/1");
    let account = get(&mut b, &path);
    assert!(account.body.get("Oem").is_none(), "{}", account.body);
    let tag = account.header("etag").unwrap().to_owned();
    assert!(tag.starts_with('"') && tag.ends_with('"') && !tag.contains(' '), "a strong RFC 7232 tag: {tag}");
    let r = patch(&mut b, &path, ("admin", PW), None, json!({"Password": "Without-Tag-1"}));
    assert_eq!((r.status, r.body.is_null()), (204, true), "204 without a body: {}", r.body);
    let r = patch(&mut b, &path, ("admin", "Without-Tag-1"), Some(&tag), json!({"Password": "With-Stale-Tag-2"}));
    assert_eq!(r.status, 412, "the tag moved with the change");
    let fresh = etag_of_with(&mut b, &path, "admin", "Without-Tag-1");
    let r = patch(&mut b, &path, ("admin", "Without-Tag-1"), Some(&fresh), json!({"Password": "With-Fresh-Tag-3"}));
    assert_eq!(r.status, 204);

    // A policy refusal is the Base registry's PropertyValueFormatError on `Password`.
    let r = patch(&mut b, &path, ("admin", "With-Fresh-Tag-3"), None, json!({"Password": "short"}));
    assert_eq!(r.status, 400);
    let info = &r.body["error"]["@Message.ExtendedInfo"][0];
    assert_eq!(info["MessageId"], "Base.1.18.PropertyValueFormatError");
    assert_eq!(info["MessageArgs"][1], "Password");
    assert!(b.password_is("admin", "With-Fresh-Tag-3"));
}

#[test]
fn the_generic_persona_locks_after_the_published_threshold() {
    let mut b = bmc(Persona::DmtfGeneric);
    for _ in 0..5 {
        assert_eq!(login(&mut b, "admin", "Wrong-Pass-9").status, 401);
    }
    assert_eq!(login(&mut b, "admin", PW).status, 401, "locked: the right password is refused too");
    assert!(get(&mut b, "/redfish/v1/AccountService").status == 401);
    b.clock().advance(Duration::from_secs(61));
    assert_eq!(login(&mut b, "admin", PW).status, 201, "the published duration ends the lock");
}

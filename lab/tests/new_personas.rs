//! The personas added in issue 15: HPE iLO 7 (ProLiant Gen12) and the first Lenovo XCC
//! (ThinkSystem SR650). What sets each apart from its vendor's other personas, against the state
//! machine; the rules they share are in `persona_rules.rs`.

use bmc_lab::LabClock;
use bmc_lab::bmc::{Bmc, LabRequest, LabResponse};
use bmc_lab::persona::{Persona, Vendor};
use serde_json::json;

const PW: &str = "Start-Pass-1";

fn get(bmc: &mut Bmc, path: &str) -> LabResponse {
    let user = bmc.profile().default_account.1;
    bmc.handle(&LabRequest::new("GET", path).basic(user, PW))
}

#[test]
fn ilo7_names_its_generation_only_in_manager_type_and_its_version_with_patch_and_date() {
    let mut b = Bmc::new(Persona::Ilo7.profile(), LabClock::default(), PW);
    let root = get(&mut b, "/redfish/v1/").body;
    let manager = &root["Oem"]["Hpe"]["Manager"][0];
    // HPE, "Adapting from iLO 6": `1.67` on iLO 6 becomes `1.12.00` on the root, and the
    // Manager's `iLO 6 v1.67` becomes `1.12.00 Mar 28 2025`.
    assert_eq!(
        (manager["ManagerType"].as_str(), manager["ManagerFirmwareVersion"].as_str()),
        (Some("iLO 7"), Some("1.12.00"))
    );
    assert_eq!(root["RedfishVersion"], "1.20.0");
    assert_eq!(root["Product"], "ProLiant DL380 Gen12");
    let firmware = get(&mut b, "/redfish/v1/Managers/1").body["FirmwareVersion"].clone();
    assert_eq!(firmware, "1.12.00 Mar 28 2025");
    assert!(!firmware.as_str().unwrap().contains("iLO"), "no generation prefix on iLO 7");
    // Links without a trailing slash, as iLO 6.
    assert_eq!(root["AccountService"]["@odata.id"], "/redfish/v1/AccountService");
}

#[test]
fn ilo7_answers_a_password_change_in_the_hpe_envelope_and_locks_like_ilo6() {
    let mut b = Bmc::new(Persona::Ilo7.profile(), LabClock::default(), PW);
    // iLO 7 publishes the lockout in the standard properties and whether Basic auth is on.
    let service = get(&mut b, "/redfish/v1/AccountService").body;
    assert_eq!(
        (service["AccountLockoutThreshold"].as_u64(), service["AccountLockoutDuration"].as_u64()),
        (Some(5), Some(300))
    );
    assert_eq!(service["HTTPBasicAuth"], "Enabled");
    assert_eq!(service["@odata.type"], "#AccountService.v1_15_0.AccountService");
    let r = b.handle(
        &LabRequest::new("PATCH", "/redfish/v1/AccountService/Accounts/1")
            .basic("Administrator", PW)
            .json(json!({"Password": "Next-Pass-22"})),
    );
    assert_eq!(r.status, 200);
    assert_eq!(r.body["error"]["code"], "iLO.0.10.ExtendedInfo");
    assert!(r.message_ids().iter().any(|m| m.ends_with("AccountModified")), "{:?}", r.message_ids());
    assert_eq!(Persona::Ilo7.profile().lockout_duration(), Persona::Ilo6.profile().lockout_duration());
}

#[test]
fn xcc1_is_a_lenovo_xcc_without_a_generation_number_in_its_model() {
    let profile = Persona::Xcc1.profile();
    assert_eq!(Persona::Xcc1.vendor(), Vendor::Lenovo);
    let mut b = Bmc::new(profile.clone(), LabClock::default(), PW);
    let manager = get(&mut b, "/redfish/v1/Managers/1").body;
    let model = manager["Model"].as_str().unwrap();
    // The lenovo-xcc plugin names the family from the model: no `XCC2`/`XCC3` there means XCC.
    assert!(model.contains("XCC") && !model.contains("XCC2") && !model.contains("XCC3"), "{model}");
    assert!(manager["FirmwareVersion"].as_str().unwrap().starts_with("CDI3"), "{manager}");
    assert_eq!(get(&mut b, "/redfish/v1/Systems/1").body["Model"], "ThinkSystem SR650");
    // If-Match is required on the first XCC too (ansible/ansible#56050).
    let r = b.handle(
        &LabRequest::new("PATCH", "/redfish/v1/AccountService/Accounts/1")
            .basic("USERID", PW)
            .json(json!({"Password": "Next-Pass-22"})),
    );
    assert_eq!(r.status, 428);
    assert_eq!(profile.default_account, (1, "USERID"));
}

#[test]
fn the_new_personas_name_their_hardware_profiles() {
    assert_eq!(Persona::Ilo7.hardware_profile(), "hpe-proliant-dl380-gen12");
    assert_eq!(Persona::Xcc1.hardware_profile(), "lenovo-thinksystem-sr650");
    assert_eq!("hpe-ilo7".parse::<Persona>(), Ok(Persona::Ilo7));
    assert_eq!("lenovo-xcc1".parse::<Persona>(), Ok(Persona::Xcc1));
}

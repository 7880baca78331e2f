//! `bmc-lab stamp`'s directory (the same stamp after a restart) and the introspection endpoint
//! (answers without logging in), in process.

use bmc_lab::FleetSpec;
use bmc_lab::introspect::{IntrospectClient, Introspection};
use bmc_lab::stamp::{Stamp, StampOptions};
use std::net::SocketAddr;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

const PW: &str = "Stamp-Start_1";

fn spec() -> FleetSpec {
    FleetSpec::parse(&format!(
        "stamp = \"dir\"\npassword = \"{PW}\"\nuser = \"azsbmc\"\n[fleet]\ndell-idrac9 = 1\nlenovo-xcc2 = 2\n"
    ))
    .unwrap()
}

fn scratch(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("stamp-{name}"));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

fn loopback() -> StampOptions {
    StampOptions { introspect: Some(SocketAddr::from(([127, 0, 0, 1], 0))), ..StampOptions::default() }
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_stamp_keeps_its_addresses_certificates_and_passwords() {
    let dir = scratch("restart");
    let stamp = Stamp::start(spec(), &dir, &loopback()).await.unwrap();
    let inventory = std::fs::read_to_string(dir.join("inventory.toml")).unwrap();
    assert!(inventory.contains("[pep]") && inventory.contains("cloudadmin = 'AZURESTACK\\CloudAdmin'"));
    assert!(!inventory.contains(PW), "no secret in the inventory");
    for private in ["bmc-password", "cloudadmin-password", "tls/dell-idrac9-01.key"] {
        assert_eq!(mode(&dir.join(private)), 0o600, "{private}");
    }
    assert_eq!((mode(&dir), mode(&dir.join("tls"))), (0o700, 0o700));
    assert_eq!(std::fs::read_to_string(dir.join("bmc-password")).unwrap().trim(), PW);

    // What a rotation leaves: new passwords on the BMCs, one on the PEP.
    for bmc in stamp.lab().bmcs() {
        let mut state = bmc.state();
        let id = state.account("azsbmc").unwrap().id;
        state.put_account(id, "azsbmc", "Rotated-Pass_2", "Administrator");
    }
    stamp.pep().set_stored(Some("azsbmc"), "Rotated-Pass_2");
    stamp.save().unwrap();
    assert_eq!(mode(&dir.join("state.json")), 0o600);
    let saved = std::fs::read_to_string(dir.join("state.json")).unwrap();
    assert!(!saved.contains(PW), "BMC passwords are saved as hashes only");
    drop(stamp);

    let stamp = Stamp::start(spec(), &dir, &loopback()).await.unwrap();
    assert_eq!(std::fs::read_to_string(dir.join("inventory.toml")).unwrap(), inventory, "same addresses and pins");
    let lab = IntrospectClient::new(stamp.introspection().unwrap());
    let holding = lab.fleet_holding("azsbmc", "Rotated-Pass_2").await.unwrap();
    assert_eq!((holding.holding, holding.total), (3, 3), "{holding:?}");
    assert!(lab.holds("lenovo-xcc2-02", "USERID", PW).await.unwrap(), "untouched accounts as they were");
    assert_eq!(lab.pep_holds("Rotated-Pass_2").await.unwrap(), Some(true));
    let port = stamp.lab().port();
    drop(stamp);

    // Another port would move every address the inventory names.
    let moved = StampOptions { port_base: Some(port.wrapping_add(7).max(1024)), ..loopback() };
    let refused = Stamp::start(spec(), &dir, &moved).await.err().expect("refused");
    assert!(format!("{refused:#}").contains("would move every address"), "{refused:#}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn introspection_answers_without_logging_in() {
    let dir = scratch("introspect");
    let stamp = Stamp::start(spec(), &dir, &loopback()).await.unwrap();
    let lab = IntrospectClient::new(stamp.introspection().unwrap());
    // XCC locks an account after five failed logins: ten wrong guesses here change nothing.
    for _ in 0..10 {
        assert!(!lab.holds("lenovo-xcc2-01", "azsbmc", "Wrong-Guess_9").await.unwrap());
    }
    assert!(lab.holds("lenovo-xcc2-01", "azsbmc", PW).await.unwrap());
    let xcc = lab.bmc("lenovo-xcc2-01").await.unwrap();
    assert_eq!(xcc["refused_logins"], 0, "{xcc}");
    let azsbmc = xcc["accounts"].as_array().unwrap().iter().find(|a| a["user"] == "azsbmc").unwrap().clone();
    assert_eq!((azsbmc["failures"].as_u64(), azsbmc["locked"].as_bool()), (Some(0), Some(false)), "{azsbmc}");
    assert!(stamp.lab().bmcs().iter().all(|b| b.state().requests().is_empty()), "nothing reached a BMC");
    assert!(!serde_json::to_string(&xcc).unwrap().contains(PW), "never a password");

    assert_eq!(lab.pep_holds(PW).await.unwrap(), None, "the PEP stores nothing yet");
    let unknown = lab.holds("no-such-bmc", "azsbmc", PW).await.unwrap_err();
    assert!(unknown.to_string().contains("404"), "{unknown}");

    // Loopback only.
    let outside = SocketAddr::from(([0, 0, 0, 0], 0));
    let refused = Introspection::serve(outside, stamp.lab().bmcs(), None).await.err().expect("refused");
    assert!(refused.to_string().contains("loopback only"), "{refused}");
}

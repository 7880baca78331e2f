//! `bmc-rotate discover` against the lab's personas, and what a run does with a pin that no
//! longer matches: both as an operator runs them, through the binary.

use bmc_lab::FleetSpec;
use bmc_lab::pep::PepConfig;
use bmc_rotate::demo::{LAB_CLOUDADMIN_PASSWORD, StampLab};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const USER: &str = "azsbmc";
const OLD: &str = "Disc-Old_Pass-1";

async fn stamp(name: &str, personas: &[&str]) -> (StampLab, PathBuf) {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("discover-{name}"));
    let _ = std::fs::remove_dir_all(&dir);
    let fleet: Vec<String> = personas.iter().map(|p| format!("{p} = 1")).collect();
    let spec = FleetSpec::parse(&format!(
        "stamp = \"{name}\"\npassword = \"{OLD}\"\nuser = \"{USER}\"\n[fleet]\n{}\n",
        fleet.join("\n")
    ))
    .unwrap();
    (StampLab::start(spec, PepConfig::default(), &dir).await.unwrap(), dir)
}

async fn bmc_rotate<S: AsRef<std::ffi::OsStr>>(args: &[S]) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_bmc-rotate"));
    command
        .args(args)
        .env("BMC_ROTATE_CACHE_DIR", Path::new(env!("CARGO_TARGET_TMPDIR")).join("cli-artifact-cache"))
        .env("XDG_STATE_HOME", Path::new(env!("CARGO_TARGET_TMPDIR")).join("discover-state"))
        .env("BMC_ROTATE_PROFILE_DIR", Path::new(env!("CARGO_TARGET_TMPDIR")).join("discover-no-profiles"))
        .env("DISC_OLD", OLD)
        .env("DISC_CLOUD", LAB_CLOUDADMIN_PASSWORD);
    tokio::task::spawn_blocking(move || command.output().unwrap()).await.unwrap()
}

async fn dry_run(inventory: &Path, dir: &Path) -> Output {
    let plugins = bmc_tests::vendor_plugin_dir();
    bmc_rotate(&[
        "rotate",
        "--inventory",
        inventory.to_str().unwrap(),
        "--plugin-dir",
        plugins.to_str().unwrap(),
        "--audit-log",
        dir.join("audit.jsonl").to_str().unwrap(),
        "--bmc-password",
        "env:DISC_OLD",
        "--new-password",
        "env:DISC_CLOUD",
        "--cloudadmin-password",
        "env:DISC_CLOUD",
        "--dry-run",
        "--yes",
    ])
    .await
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// The `[pep]` table the operator adds to a discovered inventory.
fn pep_table(stamp: &StampLab) -> String {
    let endpoints: Vec<String> = stamp.pep.addrs().iter().map(|a| format!("\"{a}\"")).collect();
    format!("\n[pep]\nendpoints = [{}]\ncloudadmin = '{}'\n", endpoints.join(", "), stamp.pep.account())
}

/// What the operator does where discover left the profile open: removes the `#` before the
/// candidate that is the server's.
fn choose_profiles(inventory: &str, stamp: &StampLab) -> String {
    let mut blocks: Vec<String> = inventory.split("[[bmc]]").map(str::to_owned).collect();
    for block in blocks.iter_mut().skip(1) {
        let address = block.lines().find_map(|l| l.strip_prefix("address = \"")).unwrap().trim_end_matches('"');
        let bmc = stamp.lab.bmcs().iter().find(|b| b.addr().to_string() == address).unwrap();
        let wanted = format!("# profile = \"{}\"", bmc.persona().hardware_profile());
        if !block.lines().any(|l| l.starts_with("profile = ")) {
            assert!(block.contains(&wanted), "{address}: the candidates must include the right profile: {block}");
            *block = block.replacen(&wanted, &wanted[2..], 1);
        }
    }
    blocks.join("[[bmc]]")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn discover_pins_every_persona_anonymously_and_rotate_accepts_the_inventory() {
    let personas = [
        "dell-idrac9",
        "dell-idrac10",
        "hpe-ilo5",
        "hpe-ilo6",
        "hpe-ilo7",
        "lenovo-xcc1",
        "lenovo-xcc2",
        "lenovo-xcc3",
    ];
    let (stamp, dir) = stamp("disc-all", &personas).await;
    let out = dir.join("discovered.toml");
    let mut args: Vec<String> = stamp.lab.bmcs().iter().map(|b| b.addr().to_string()).collect();
    args.splice(0..0, ["discover".to_owned()]);
    args.extend(["--out", out.to_str().unwrap(), "--stamp", "disc-all", "--output", "json"].map(String::from));
    let found = bmc_rotate(&args).await;
    assert_eq!(found.status.code(), Some(0), "{}", text(&found.stderr));

    // Nothing but anonymous reads of the service root reached any BMC.
    for bmc in stamp.lab.bmcs() {
        let requests = bmc.state().requests();
        assert!(!requests.is_empty(), "{} was not contacted", bmc.name());
        for request in &requests {
            assert_eq!(request.auth, "none", "{}: {request:?}", bmc.name());
            assert_eq!((request.method.as_str(), request.path.as_str()), ("GET", "/redfish/v1/"), "{}", bmc.name());
        }
    }

    // Each pin is the certificate the lab serves, by address.
    let json: serde_json::Value = serde_json::from_slice(&found.stdout).unwrap();
    let bmcs = json["bmcs"].as_array().unwrap();
    assert_eq!(bmcs.len(), personas.len());
    assert_eq!(json["failed"].as_array().unwrap().len(), 0);
    for bmc in stamp.lab.bmcs() {
        let seen = bmcs.iter().find(|b| b["address"] == bmc.addr().to_string()).unwrap();
        assert_eq!(seen["certificate"]["pin"], bmc.pin(), "{}", bmc.name());
        assert!(seen["certificate"]["subject"].as_str().unwrap().starts_with("CN="), "{seen}");
        let profile = seen["profile"].as_str();
        // The anonymous root names the iLO's family; iDRAC and XCC roots do not.
        if bmc.name().starts_with("hpe") {
            assert_eq!(profile, Some(bmc.persona().hardware_profile()), "{seen}");
        } else {
            assert_eq!(profile, None, "{seen}");
            assert!(seen["candidates"].as_array().unwrap().contains(&bmc.persona().hardware_profile().into()));
        }
    }

    let inventory = std::fs::read_to_string(&out).unwrap();
    let note = "# pin learnt by discover: verify it out of band before the first rotation";
    assert_eq!(inventory.matches(note).count(), personas.len(), "{inventory}");
    assert!(inventory.contains("stamp = \"disc-all\"") && inventory.contains("bmc_user = \"azsbmc\""));
    assert!(inventory.contains("# [pep]") && inventory.contains("name = \"node06\""), "{inventory}");

    // The operator's part: choose the profiles left open, add the PEP; then rotate takes it.
    let ready = dir.join("ready.toml");
    std::fs::write(&ready, choose_profiles(&inventory, &stamp) + &pep_table(&stamp)).unwrap();
    let planned = dry_run(&ready, &dir).await;
    assert_eq!(planned.status.code(), Some(0), "{}\n{}", text(&planned.stdout), text(&planned.stderr));
    assert_eq!(stamp.holding(USER, OLD), personas.len());

    // Once written, never overwritten.
    let again = bmc_rotate(&args).await;
    assert_eq!(again.status.code(), Some(2), "{}", text(&again.stderr));
    assert!(text(&again.stderr).contains("never overwrites"), "{}", text(&again.stderr));
    assert_eq!(std::fs::read_to_string(&out).unwrap(), inventory);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_address_in_a_range_is_reported_and_left_out() {
    let (stamp, dir) = stamp("disc-range", &["hpe-ilo6"]).await;
    let port = stamp.lab.bmcs()[0].addr().port().to_string();
    let out = dir.join("discovered.toml");
    // The lab serves its one BMC at 127.0.0.1: at 127.0.0.2 its socket closes the connection.
    let args = ["discover", "127.0.0.1-127.0.0.2", "--port", &port, "--out", out.to_str().unwrap(), "--stamp", "r"];
    let found = bmc_rotate(&args).await;
    assert_eq!(found.status.code(), Some(1), "some address failed: {}", text(&found.stderr));
    let stderr = text(&found.stderr);
    assert!(stderr.contains(&format!("failed: 127.0.0.2:{port}: no connection")), "{stderr}");
    assert!(!stderr.contains("127.0.0.1:"), "{stderr}");
    let table = text(&found.stdout);
    assert!(table.starts_with("NAME") && table.contains("hpe-proliant-dl380-gen11"), "{table}");
    assert!(table.contains(&hex::encode(stamp.lab.bmcs()[0].sha256())[..16]), "{table}");

    let inventory = std::fs::read_to_string(&out).unwrap();
    assert_eq!(inventory.matches("[[bmc]]").count(), 1, "{inventory}");
    assert!(inventory.contains(&format!("#   127.0.0.2:{port}: no connection")), "{inventory}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_certificate_that_no_longer_matches_its_pin_stops_the_run_as_a_possible_attack() {
    let (stamp, dir) = stamp("disc-pin", &["dell-idrac10", "lenovo-xcc3"]).await;
    let victim = &stamp.lab.bmcs()[1];
    let wrong = "ab".repeat(32);
    let inventory =
        std::fs::read_to_string(&stamp.inventory).unwrap().replace(&victim.pin(), &format!("sha256:{wrong}"));
    let changed = dir.join("changed.toml");
    std::fs::write(&changed, inventory).unwrap();

    let planned = dry_run(&changed, &dir).await;
    assert_eq!(planned.status.code(), Some(1), "a failed preflight: {}", text(&planned.stderr));
    let shown = text(&planned.stdout) + &text(&planned.stderr);
    let expected = format!(
        "certificate changed: pinned {wrong}, presented {}; this can be an attack — verify the BMC's certificate \
         before updating the pin",
        hex::encode(victim.sha256())
    );
    let line = shown.lines().find(|l| l.contains(&expected)).unwrap_or_else(|| panic!("{shown}"));
    assert!(line.contains(victim.name()), "the BMC is named: {line}");
    assert!(!shown.contains("unreachable"), "{shown}");
    assert_eq!(stamp.holding(USER, OLD), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_https_server_that_is_not_redfish_and_a_silent_one_fail_with_their_reason() {
    // Any HTTPS server: the service root is not found there.
    let web = bmc_lab::HttpsServer::start_local(axum::Router::new()).await.unwrap();
    // Accepts connections and never says a word.
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let silent_addr = silent.local_addr().unwrap();
    let held = tokio::spawn(async move {
        let mut sockets = Vec::new();
        while let Ok((socket, _)) = silent.accept().await {
            sockets.push(socket);
        }
    });
    let started = std::time::Instant::now();
    let found = bmc_rotate(&[
        "discover".to_owned(),
        web.addr().to_string(),
        silent_addr.to_string(),
        "--timeout".into(),
        "2s".into(),
        "--output".into(),
        "json".into(),
    ])
    .await;
    held.abort();
    assert_eq!(found.status.code(), Some(1), "{}", text(&found.stderr));
    assert!(started.elapsed() < std::time::Duration::from_secs(20), "the timeout bounds each address");
    let json: serde_json::Value = serde_json::from_slice(&found.stdout).unwrap();
    assert_eq!(json["bmcs"].as_array().unwrap().len(), 0);
    let failed = json["failed"].as_array().unwrap();
    assert_eq!(failed[0]["error"], "not a Redfish service: GET /redfish/v1/ answered HTTP 404", "{json}");
    // The certificate was seen all the same: the operator learns what answered there.
    assert_eq!(failed[0]["certificate"]["pin"], format!("sha256:{}", hex::encode(web.sha256())), "{json}");
    assert!(failed[1]["certificate"].is_null(), "{json}");
    let stderr = text(&found.stderr);
    assert!(stderr.contains(&format!("failed: {silent_addr}: ")), "{stderr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn discover_never_picks_the_generic_profile_for_a_generic_bmc() {
    // A standard service names no vendor a profile is for: the operator chooses, and the generic
    // profile is not even offered as a candidate — only an inventory that names it uses it.
    let (stamp, dir) = stamp("disc-generic", &["dmtf-generic"]).await;
    let out = dir.join("discovered.toml");
    let address = stamp.lab.bmcs()[0].addr().to_string();
    let found = bmc_rotate(&[
        "discover",
        &address,
        "--out",
        out.to_str().unwrap(),
        "--stamp",
        "disc-generic",
        "--output",
        "json",
    ])
    .await;
    assert_eq!(found.status.code(), Some(0), "{}", text(&found.stderr));
    let json: serde_json::Value = serde_json::from_slice(&found.stdout).unwrap();
    let seen = &json["bmcs"][0];
    assert_eq!(seen["redfish"]["vendor"], "Generic", "{seen}");
    assert!(seen["profile"].is_null(), "{seen}");
    assert!(!seen.to_string().contains("generic-redfish"), "{seen}");
    let inventory = std::fs::read_to_string(&out).unwrap();
    assert!(!inventory.contains("generic-redfish"), "{inventory}");
    assert!(!inventory.lines().any(|l| l.starts_with("profile")), "{inventory}");
}

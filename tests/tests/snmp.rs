//! The SNMPv3 check end to end: real plugins in the sandbox against lab personas over TLS, each
//! persona showing SNMPv3 its vendor's way (iDRAC attributes, iLO's own SNMPv3 users, XCC's and
//! DMTF's `ManagerAccount.SNMP`), set per BMC by the fleet spec's `snmp` knob.

use bmc_lab::FleetSpec;
use bmc_lab::bmc::SnmpSetting;
use bmc_lab::pep::{PepConfig, PepFaults};
use bmc_rotate::demo::{LAB_CLOUDADMIN_PASSWORD, StampLab};
use bmc_rotate::fleet::engine::{
    self, Preflight, RotationOptions, RunOutcome, RunReport, RunSecrets, Silent, SnmpMode,
};
use bmc_rotate::fleet::journal;
use bmc_rotate::fleet::members;
use bmc_rotate::gateway::Limits;
use bmc_tests::runtime;
use secrecy::SecretString;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

const USER: &str = "azsbmc";
const OLD: &str = "Old-Pass_2024x";
const NEW: &str = "New-Pass_2025y";

struct Run {
    stamp: StampLab,
    dir: PathBuf,
    plugins: PathBuf,
    profiles: Option<PathBuf>,
}

impl Run {
    async fn start(name: &str, groups: &str) -> Run {
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("snmp-{name}"));
        let _ = std::fs::remove_dir_all(&dir);
        let spec =
            FleetSpec::parse(&format!("stamp = \"lab\"\npassword = \"{OLD}\"\nuser = \"{USER}\"\n{groups}")).unwrap();
        let stamp = StampLab::start(spec, PepConfig::default(), &dir).await.unwrap();
        Run { stamp, dir, plugins: bmc_tests::vendor_plugin_dir(), profiles: None }
    }

    /// Preflight and, if it passes, the rotation to `NEW`.
    async fn rotate(&self, snmp: SnmpMode) -> RunReport {
        let limits = Limits { request_timeout: Duration::from_secs(2), ..Limits::default() };
        let (inventory, members) = members::load(
            &self.stamp.inventory,
            self.profiles.as_deref(),
            &[self.plugins.as_path()],
            runtime(),
            limits,
        )
        .await
        .unwrap();
        let secrets =
            RunSecrets { old: Arc::new(SecretString::from(OLD)), new: Some(Arc::new(SecretString::from(NEW))) };
        let mut pep = self.stamp.pep_step(LAB_CLOUDADMIN_PASSWORD);
        pep.target.deadline = Duration::from_secs(60);
        let options = RotationOptions {
            concurrency: 16,
            rollback_on_pep_failure: true,
            cancel: bmc_rotate::fleet::cancel::Cancel::new(),
            ledger: bmc_rotate::fleet::ledger::Ledger::new(),
            snmp,
        };
        match engine::preflight(members, "lab", secrets, Some(pep), &options, Arc::new(Silent)).await {
            Preflight::Stopped(report) => report,
            Preflight::Passed(preflighted) => {
                let path = self.dir.join("run.jsonl");
                let journal = journal::start_run(&path, &inventory, OLD, NEW, true).unwrap();
                preflighted.execute(journal).await.unwrap()
            }
        }
    }

    fn all_hold(&self, password: &str) -> bool {
        self.stamp.holding(USER, password) == self.stamp.lab.bmcs().len()
    }

    /// iLO's own SNMPv3 passphrases of the rotation account, from the persona's state.
    fn ilo_passphrases_are(&self, password: &str) -> bool {
        let ilo = self.stamp.lab.bmcs().iter().find(|b| b.name().starts_with("hpe-ilo")).unwrap();
        ilo.state().snmp_passphrases_are(USER, password) == (true, true)
    }
}

fn bmc<'r>(report: &'r RunReport, prefix: &str) -> &'r engine::BmcReport {
    report.bmcs.iter().find(|b| b.name.starts_with(prefix)).unwrap()
}

const EVERY_VENDOR: &str = "[fleet]\ndell-idrac9 = 1\nhpe-ilo5 = 1\nlenovo-xcc2 = 1\ndmtf-generic = 1\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn snmpv3_with_sha_and_aes_passes_and_each_vendor_reports_it_before_and_after() {
    let run = Run::start("ok", EVERY_VENDOR).await;
    let report = run.rotate(SnmpMode::Require).await;
    assert_eq!(report.outcome, RunOutcome::Rotated, "{:#?}", report.notes);
    assert!(run.all_hold(NEW) && run.ilo_passphrases_are(NEW));
    for b in &report.bmcs {
        for check in [&b.snmp_preflight, &b.snmp_after] {
            let check = check.as_ref().unwrap_or_else(|| panic!("{}: no SNMPv3 check", b.name));
            assert!(check.ok && check.reported.is_some_and(|s| s.enabled), "{}: {check:?}", b.name);
        }
    }
    let json = serde_json::to_value(&report).unwrap();
    let ilo = json["bmcs"].as_array().unwrap().iter().find(|b| b["name"] == "hpe-ilo5-01").unwrap();
    assert_eq!(ilo["snmp_after"]["reported"]["privacy"], "cfb128-aes128", "{ilo}");
    assert_eq!(ilo["snmp_after"]["reported"]["authentication"], "hmac-sha96", "{ilo}");
}

/// One BMC per SNMPv3 problem, and one without any.
const WEAK: &str = "[[group]]\npersona = \"dell-idrac9\"\ncount = 1\nsnmp = \"off\"\n\
                    [[group]]\npersona = \"hpe-ilo5\"\ncount = 1\nsnmp = \"des\"\n\
                    [[group]]\npersona = \"lenovo-xcc2\"\ncount = 1\nsnmp = \"md5\"\n\
                    [[group]]\npersona = \"dmtf-generic\"\ncount = 1\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn snmpv3_off_des_or_md5_fails_preflight_naming_each_bmc_and_changes_nothing() {
    let run = Run::start("weak", WEAK).await;
    let report = run.rotate(SnmpMode::Require).await;
    assert_eq!(report.outcome, RunOutcome::PreflightFailed, "{:#?}", report.notes);
    let said = |bmc: &str, what: &str| report.notes.iter().any(|n| n.starts_with(bmc) && n.contains(what));
    assert!(said("dell-idrac9-01", "SNMPv3 is off for `azsbmc`"), "{:#?}", report.notes);
    assert!(said("hpe-ilo5-01", "privacy of `azsbmc` is DES: set AES"), "{:#?}", report.notes);
    assert!(said("lenovo-xcc2-01", "authentication of `azsbmc` is HMAC-MD5: set SHA"), "{:#?}", report.notes);
    assert!(!report.notes.iter().any(|n| n.starts_with("dmtf-generic")), "{:#?}", report.notes);
    assert_eq!(bmc(&report, "dmtf-generic").snmp_preflight.as_ref().map(|c| c.ok), Some(true));
    assert!(run.all_hold(OLD) && run.ilo_passphrases_are(OLD) && run.stamp.pep.stored().is_none());
    assert!(!run.dir.join("run.jsonl").exists(), "nothing was journalled");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn snmp_warn_rotates_and_reports_each_problem_as_a_warning() {
    let run = Run::start("warn", WEAK).await;
    let report = run.rotate(SnmpMode::Warn).await;
    assert_eq!(report.outcome, RunOutcome::Rotated, "{:#?}", report.notes);
    assert!(run.all_hold(NEW) && run.ilo_passphrases_are(NEW));
    let warned = |bmc: &str, what: &str| {
        report.notes.iter().any(|n| n.starts_with(&format!("warning: {bmc}: ")) && n.contains(what))
    };
    assert!(warned("dell-idrac9-01", "SNMPv3 is off"), "{:#?}", report.notes);
    assert!(warned("hpe-ilo5-01", "is DES"), "{:#?}", report.notes);
    assert!(warned("lenovo-xcc2-01", "HMAC-MD5"), "{:#?}", report.notes);
    assert!(!bmc(&report, "hpe-ilo5").snmp_after.as_ref().unwrap().ok, "the state is checked again after the change");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ilo_snmpv3_passphrases_follow_the_change_and_the_rollback() {
    let run = Run::start("ilo-rollback", "[fleet]\nhpe-ilo5 = 1\ndell-idrac9 = 1\n").await;
    run.stamp.pep.set_faults(PepFaults { error_record: Some("BMC store unavailable".into()), ..PepFaults::default() });
    let report = run.rotate(SnmpMode::Require).await;
    assert_eq!(report.outcome, RunOutcome::RolledBack, "{:#?}", report.notes);
    assert!(run.all_hold(OLD) && run.ilo_passphrases_are(OLD), "the passphrases went back with the password");
    let ilo = run.stamp.lab.bmcs().iter().find(|b| b.name().starts_with("hpe-ilo")).unwrap();
    let patches: Vec<_> = ilo
        .state()
        .requests()
        .into_iter()
        .filter(|r| r.method == "PATCH" && r.path.contains("/SnmpService/SNMPUsers/") && r.status == 200)
        .collect();
    assert_eq!(patches.len(), 4, "both passphrases, forward then back: {patches:?}");

    // Forward alone: the passphrases hold the new password.
    let run = Run::start("ilo-forward", "[fleet]\nhpe-ilo6 = 1\n").await;
    assert_eq!(run.rotate(SnmpMode::Require).await.outcome, RunOutcome::Rotated);
    assert!(run.all_hold(NEW) && run.ilo_passphrases_are(NEW));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plugin_built_without_the_snmp_export_is_not_reported_and_still_rotates() {
    let mut run = Run::start("base-world", "[fleet]\ndmtf-generic = 1\n").await;
    // The generic profile, bound to a plugin built for the world without `snmp`.
    let file = bmc_tests::wasm("guest_base_world");
    let bytes = std::fs::read(&file).unwrap();
    let digest = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(&bytes));
    let (plugins, profiles) = (run.dir.join("plugins"), run.dir.join("profiles"));
    std::fs::create_dir_all(&plugins).unwrap();
    std::fs::create_dir_all(&profiles).unwrap();
    std::fs::write(plugins.join("base_world.wasm"), &bytes).unwrap();
    std::fs::write(
        profiles.join("generic-redfish.toml"),
        format!(
            "description = \"generic, old plugin\"\nplugin = \"base-world\"\nplugin_version = \"^0.1\"\n\
             plugin_sha256 = \"{digest}\"\nfamilies = [\"Redfish\"]\ndefault_account = \"admin\"\n\
             tls = \"pin-or-ca\"\nexplicit = true\n"
        ),
    )
    .unwrap();
    run.plugins = plugins;
    run.profiles = Some(profiles);
    let plugin = runtime().load_file(&file).await.unwrap();
    assert!(!plugin.reports_snmp(), "the component has no `snmp` export");

    let report = run.rotate(SnmpMode::Require).await;
    assert_eq!(report.outcome, RunOutcome::PreflightFailed, "{:#?}", report.notes);
    let note = report.notes.iter().find(|n| n.starts_with("dmtf-generic-01: SNMPv3 state not reported")).unwrap();
    assert!(note.contains("`base-world` was built without SNMPv3 reporting") && note.contains("--snmp warn"), "{note}");
    assert!(run.all_hold(OLD));

    let report = run.rotate(SnmpMode::Warn).await;
    assert_eq!(report.outcome, RunOutcome::Rotated, "{:#?}", report.notes);
    assert!(run.all_hold(NEW) && run.stamp.pep.stored().is_some_and(|s| s.password.as_str() == NEW));
    assert!(report.notes.iter().any(|n| n.starts_with("warning: dmtf-generic-01: SNMPv3 state not reported")));
    assert_eq!(bmc(&report, "dmtf-generic").snmp_preflight.as_ref().map(|c| c.reported), Some(None));
}

#[test]
fn the_fleet_spec_sets_snmp_per_group_and_refuses_an_unknown_case() {
    let spec = FleetSpec::parse("password = \"x\"\n[[group]]\npersona = \"hpe-ilo5\"\ncount = 1\nsnmp = \"des\"\n");
    assert_eq!(spec.unwrap().group[0].snmp, SnmpSetting::Des);
    let err = FleetSpec::parse("password = \"x\"\n[[group]]\npersona = \"hpe-ilo5\"\ncount = 1\nsnmp = \"sha\"\n");
    let err = err.unwrap_err();
    assert!(err.contains("snmp") && err.contains("`ok`, `off`, `des`, `md5`"), "{err}");
}

/// A resume converges a run that crashed right after its start record, then checks SNMPv3 on
/// every BMC as the run would have: a weak setting is named after the change.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resume_checks_snmpv3_after_it_converges_the_fleet() {
    let run = Run::start("resume", WEAK).await;
    let (inventory, members) =
        members::load(&run.stamp.inventory, None, &[run.plugins.as_path()], runtime(), Limits::default())
            .await
            .unwrap();
    let path = run.dir.join("crashed.jsonl");
    drop(journal::start_run(&path, &inventory, OLD, NEW, true).unwrap());
    let mut pep = run.stamp.pep_step(LAB_CLOUDADMIN_PASSWORD);
    pep.target.deadline = Duration::from_secs(60);
    let report = engine::resume(
        &path,
        members,
        Arc::new(SecretString::from(OLD)),
        Arc::new(SecretString::from(NEW)),
        Some(pep),
        Arc::new(Silent),
        &engine::ResumeOptions::new("lab", 16),
    )
    .await
    .unwrap();
    assert_eq!(report.outcome, RunOutcome::Rotated, "{:#?}", report.notes);
    assert!(run.all_hold(NEW) && run.ilo_passphrases_are(NEW));
    let warned = |bmc: &str, what: &str| {
        report.notes.iter().any(|n| n.starts_with(&format!("warning: after the change, {bmc}: ")) && n.contains(what))
    };
    assert!(warned("dell-idrac9-01", "SNMPv3 is off"), "{:#?}", report.notes);
    assert!(warned("hpe-ilo5-01", "is DES"), "{:#?}", report.notes);
    assert!(warned("lenovo-xcc2-01", "HMAC-MD5"), "{:#?}", report.notes);
    let generic = bmc(&report, "dmtf-generic").snmp_after.as_ref().expect("checked after the resume");
    assert!(generic.ok, "{generic:?}");
}

//! Fleet rotations end to end: the real plugins in the real sandbox against lab BMCs of every
//! vendor over TLS, and the PEP simulator over NTLM-sealed WinRM. Every scenario ends in the
//! invariant (every BMC and the PEP on one password) or a precise needs-resume report.

use bmc_lab::pep::{PepConfig, PepFaults};
use bmc_lab::{FleetSpec, Persona};
use bmc_rotate::demo::{LAB_CLOUDADMIN_PASSWORD, StampLab};
use bmc_rotate::fleet::engine::{
    self, Observer, PepStep, Phase, Preflight, RotationOptions, RunOutcome, RunReport, RunSecrets, Silent,
};
use bmc_rotate::fleet::journal::{self, Record, Which};
use bmc_rotate::fleet::members;
use bmc_rotate::gateway::Limits;
use bmc_rotate::pep::native::NativeClient;
use bmc_tests::runtime;
use secrecy::{ExposeSecret, SecretString};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

const USER: &str = "azsbmc";
const OLD: &str = "Old-Pass_2024x";
const NEW: &str = "New-Pass_2025y";

/// The vendor plugins.
fn vendor_plugin_dir() -> PathBuf {
    bmc_tests::vendor_plugin_dir()
}

fn scratch(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("rotation-{name}"));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

fn spec(groups: &str) -> FleetSpec {
    FleetSpec::parse(&format!("stamp = \"lab\"\npassword = \"{OLD}\"\nuser = \"{USER}\"\n{groups}")).unwrap()
}

struct Run {
    stamp: StampLab,
    dir: PathBuf,
}

impl Run {
    async fn start(name: &str, groups: &str) -> Run {
        let dir = scratch(name);
        let stamp = StampLab::start(spec(groups), PepConfig::default(), &dir).await.unwrap();
        Run { stamp, dir }
    }

    fn pep(&self, password: &str) -> PepStep<NativeClient> {
        let mut step = self.stamp.pep_step(password);
        step.target.deadline = Duration::from_secs(60);
        step.target.operation_timeout = Duration::from_secs(5);
        step
    }

    async fn rotate(
        &self,
        new: Option<&str>,
        pep_password: &str,
        options: RotationOptions,
    ) -> (RunReport, Option<PathBuf>, Arc<SecretString>) {
        self.rotate_observed(new, pep_password, options, Arc::new(Silent)).await
    }

    /// Preflight only, as `--dry-run` does.
    async fn dry_run(&self, new: Option<&str>) -> RunReport {
        match self.preflight(new, LAB_CLOUDADMIN_PASSWORD, &options(), Arc::new(Silent)).await.0 {
            Preflight::Passed(preflighted) => preflighted.dry_run(),
            Preflight::Stopped(report) => report,
        }
    }

    async fn preflight(
        &self,
        new: Option<&str>,
        pep_password: &str,
        options: &RotationOptions,
        observer: Arc<dyn Observer>,
    ) -> (Preflight<NativeClient>, bmc_rotate::fleet::inventory::Inventory) {
        let limits = Limits { request_timeout: Duration::from_secs(2), ..Limits::default() };
        let (inventory, members) =
            members::load(&self.stamp.inventory, None, &[vendor_plugin_dir().as_path()], runtime(), limits)
                .await
                .unwrap();
        let secrets = RunSecrets {
            old: Arc::new(SecretString::from(OLD)),
            new: new.map(|n| Arc::new(SecretString::from(n.to_owned()))),
        };
        let pep = Some(self.pep(pep_password));
        (engine::preflight(members, "lab", secrets, pep, options, observer).await, inventory)
    }

    async fn rotate_observed(
        &self,
        new: Option<&str>,
        pep_password: &str,
        options: RotationOptions,
        observer: Arc<dyn Observer>,
    ) -> (RunReport, Option<PathBuf>, Arc<SecretString>) {
        let (preflight, inventory) = self.preflight(new, pep_password, &options, observer).await;
        let preflighted = match preflight {
            Preflight::Passed(preflighted) => preflighted,
            Preflight::Stopped(report) => return (report, None, Arc::new(SecretString::from(NEW))),
        };
        let journal_path = self.dir.join("run.jsonl");
        let new = Arc::new(preflighted.new_password().clone());
        let journal = journal::start_run(&journal_path, &inventory, OLD, new.expose_secret(), true).unwrap();
        (preflighted.execute(journal).await.unwrap(), Some(journal_path), new)
    }

    /// `resume` of the run in `journal`, from `OLD` to `new`, with the stamp's PEP.
    async fn resume(&self, journal: &Path, new: &str) -> Result<RunReport, bmc_rotate::fleet::engine::ResumeError> {
        let (_, members) =
            members::load(&self.stamp.inventory, None, &[vendor_plugin_dir().as_path()], runtime(), Limits::default())
                .await
                .unwrap();
        bmc_rotate::fleet::engine::resume(
            journal,
            members,
            Arc::new(SecretString::from(OLD)),
            Arc::new(SecretString::from(new.to_owned())),
            Some(self.pep(LAB_CLOUDADMIN_PASSWORD)),
            Arc::new(Silent),
            &bmc_rotate::fleet::engine::ResumeOptions::new("lab", 16),
        )
        .await
    }

    fn all_hold(&self, password: &str) -> bool {
        self.stamp.holding(USER, password) == self.stamp.lab.bmcs().len()
    }
}

fn options() -> RotationOptions {
    RotationOptions {
        concurrency: 16,
        rollback_on_pep_failure: true,
        cancel: bmc_rotate::fleet::cancel::Cancel::new(),
        ledger: bmc_rotate::fleet::ledger::Ledger::new(),
        snmp: bmc_rotate::fleet::engine::SnmpMode::Require,
    }
}

fn records(journal: &Path) -> Vec<Record> {
    journal::read(journal).unwrap().into_iter().map(|l| l.record).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_vendor_rotates_and_the_pep_stores_the_credential() {
    for persona in [Persona::Idrac9, Persona::Ilo5, Persona::Xcc2] {
        let run =
            Run::start(&format!("vendor-{}", persona.name()), &format!("[fleet]\n{} = 2\n", persona.name())).await;
        let (report, journal, _) = run.rotate(Some(NEW), LAB_CLOUDADMIN_PASSWORD, options()).await;
        assert_eq!(report.outcome, RunOutcome::Rotated, "{persona:?}: {:#?}", report.notes);
        assert!(run.all_hold(NEW), "{persona:?}");
        let stored = run.stamp.pep.stored().unwrap();
        assert_eq!((stored.password.as_str(), stored.user.as_deref()), (NEW, Some(USER)));
        assert!(report.bmcs.iter().all(|b| b.result == "rotated" && !b.family.is_empty()), "{:?}", report.bmcs);
        let text = std::fs::read_to_string(journal.unwrap()).unwrap();
        assert!(!text.contains(NEW) && !text.contains(OLD), "the journal holds no password");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_pep_step_sends_the_new_password_only_as_a_secure_string() {
    let run = Run::start("pep-secure-string", "[fleet]\ndell-idrac9 = 1\n").await;
    let (report, _, _) = run.rotate(Some(NEW), LAB_CLOUDADMIN_PASSWORD, options()).await;
    assert_eq!(report.outcome, RunOutcome::Rotated, "{:#?}", report.notes);
    // What the PEP received, as its transcript shows it: a plain string would appear in clear
    // (and PowerShell would echo it in its refusal).
    let received = run.stamp.pep.received();
    let calls: Vec<&String> = received.iter().filter(|l| l.starts_with("PS> Set-BmcCredential")).collect();
    assert_eq!(calls.len(), 1, "{received:?}");
    assert!(calls[0].starts_with("PS> Set-BmcCredential -BmcPassword <SecureString> "), "{received:?}");
    for secret in [NEW, OLD, LAB_CLOUDADMIN_PASSWORD] {
        assert!(received.iter().all(|l| !l.contains(secret)), "{received:?}");
    }
    assert_eq!(run.stamp.pep.stored().unwrap().password.as_str(), NEW);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_generic_bmc_rotates_through_the_profile_its_inventory_names() {
    let run = Run::start("generic", "[fleet]\ndmtf-generic = 2\nhpe-ilo6 = 1\n").await;
    let inventory = std::fs::read_to_string(&run.stamp.inventory).unwrap();
    let named = inventory.lines().filter(|l| l.trim() == "profile = \"generic-redfish\"").count();
    assert_eq!(named, 2, "the lab's inventory names the generic profile for each generic BMC: {inventory}");
    let (report, journal, _) = run.rotate(Some(NEW), LAB_CLOUDADMIN_PASSWORD, options()).await;
    assert_eq!(report.outcome, RunOutcome::Rotated, "{:#?}", report.notes);
    assert!(run.all_hold(NEW));
    assert_eq!(run.stamp.pep.stored().unwrap().password.as_str(), NEW);
    let generic: Vec<_> = report.bmcs.iter().filter(|b| b.name.starts_with("dmtf-generic")).collect();
    assert_eq!(generic.len(), 2, "{:?}", report.bmcs);
    assert!(generic.iter().all(|b| b.result == "rotated" && b.family == "Redfish"), "{:?}", report.bmcs);
    let text = std::fs::read_to_string(journal.unwrap()).unwrap();
    assert!(!text.contains(NEW) && !text.contains(OLD), "the journal holds no password");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mixed_fleet_with_a_generated_password_rotates_xcc_last() {
    let run = Run::start(
        "mixed",
        "[fleet]\ndell-idrac9 = 2\ndell-idrac10 = 1\nhpe-ilo5 = 1\nhpe-ilo6 = 1\nhpe-ilo7 = 1\nlenovo-xcc1 = 1\nlenovo-xcc2 = 1\nlenovo-xcc3 = 1\n",
    )
    .await;
    let (report, journal, new) = run.rotate(None, LAB_CLOUDADMIN_PASSWORD, options()).await;
    assert_eq!(report.outcome, RunOutcome::Rotated, "{:#?}", report.notes);
    let new = new.expose_secret().to_owned();
    assert!(new.chars().count() <= 16 && new != NEW);
    assert!(run.all_hold(&new));
    assert_eq!(run.stamp.pep.stored().unwrap().password.as_str(), new);
    let policy = report.policy.unwrap();
    assert!(policy.violations(&SecretString::from(new.clone()), USER).is_empty());
    assert!(report.notes.iter().any(|n| n.contains("cannot return to the old password")), "{:?}", report.notes);
    // XCC (reuse cycle) changes only after every other BMC holds the new password.
    let order: Vec<String> = records(&journal.unwrap())
        .into_iter()
        .filter_map(|r| match r {
            Record::Changing { bmc, .. } => Some(bmc),
            _ => None,
        })
        .collect();
    let first_xcc = order.iter().position(|b| b.starts_with("lenovo")).unwrap();
    assert!(order[first_xcc..].iter().all(|b| b.starts_with("lenovo")), "{order:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reported_policy_cannot_shorten_the_generated_password() {
    // An iDRAC whose live policy (read by its plugin) allows at most 12 characters: a generated
    // password is never shorter than 14, so preflight names that BMC and changes nothing.
    let groups =
        "[fleet]\nhpe-ilo5 = 1\n[[group]]\npersona = \"dell-idrac9\"\ncount = 1\npolicy = { max_length = 12 }\n";
    let run = Run::start("floor", groups).await;
    let (report, journal, _) = run.rotate(None, LAB_CLOUDADMIN_PASSWORD, options()).await;
    assert_eq!(report.outcome, RunOutcome::PreflightFailed, "{:#?}", report.notes);
    let note = report.notes.iter().find(|n| n.contains("cannot generate")).expect("a note on the floor");
    assert!(note.contains("dell") && note.contains("at most 12") && note.contains("at least 14"), "{note}");
    assert!(journal.is_none() && run.all_hold(OLD));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dry_run_and_a_failed_preflight_change_nothing() {
    let run = Run::start("dry", "[fleet]\ndell-idrac9 = 1\nhpe-ilo5 = 1\n").await;
    let report = run.dry_run(Some(NEW)).await;
    assert_eq!(report.outcome, RunOutcome::DryRun);
    assert!(report.pep.is_some(), "a dry run carries the PEP's answer to its check");
    assert!(run.all_hold(OLD) && run.stamp.pep.stored().is_none());

    // A password the iLO policy refuses (too short for min-length 8? no: a quote character).
    let (report, _, _) = run.rotate(Some("Bad'Quote-1x"), LAB_CLOUDADMIN_PASSWORD, options()).await;
    assert_eq!(report.outcome, RunOutcome::PreflightFailed);
    assert!(report.notes.iter().any(|n| n.contains("outside letters, digits")), "{:?}", report.notes);
    assert!(!report.notes.iter().any(|n| n.contains("Bad'Quote")), "the password is never quoted");
    assert!(run.all_hold(OLD));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_current_password_fails_preflight_after_one_attempt() {
    let run = Run::start("lockout", "[fleet]\nlenovo-xcc2 = 1\nhpe-ilo5 = 1\n[[group]]\npersona = \"dell-idrac9\"\ncount = 1\npassword = \"Someone-Else-9\"\n").await;
    let (report, _, _) = run.rotate(Some(NEW), LAB_CLOUDADMIN_PASSWORD, options()).await;
    assert_eq!(report.outcome, RunOutcome::PreflightFailed);
    let failed = report.bmcs.iter().find(|b| b.name.starts_with("dell")).unwrap();
    assert!(failed.error.as_deref().unwrap().contains("auth-failed"), "{failed:?}");
    assert_eq!(run.stamp.holding(USER, OLD), 2, "nothing changed");
    let bmc = run.stamp.lab.bmcs().iter().find(|b| b.name().starts_with("dell")).unwrap();
    let refused = bmc.state().requests().iter().filter(|r| r.status == 401).count();
    assert_eq!(refused, 1, "a refused password is never retried");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_policy_refusal_at_change_time_rolls_the_fleet_back() {
    // Preflight cannot see an XCC's password history: the change itself is refused.
    let run = Run::start("reuse", "[fleet]\ndell-idrac9 = 1\nhpe-ilo5 = 1\nlenovo-xcc2 = 1\n").await;
    let xcc = run.stamp.lab.bmcs().iter().find(|b| b.persona() == Persona::Xcc2).unwrap();
    assert!(xcc.state().remember_password(USER, NEW));
    let (report, _, _) = run.rotate(Some(NEW), LAB_CLOUDADMIN_PASSWORD, options()).await;
    assert_eq!(report.outcome, RunOutcome::RolledBack, "{:#?}", report.notes);
    let refused = report.bmcs.iter().find(|b| b.name.starts_with("lenovo")).unwrap();
    assert!(refused.error.as_deref().unwrap().contains("policy-rejected"), "{refused:?}");
    assert!(run.all_hold(OLD) && run.stamp.pep.stored().is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hung_bmc_rolls_the_fleet_back() {
    let groups = "[fleet]\ndell-idrac9 = 2\nhpe-ilo5 = 1\n[[group]]\npersona = \"hpe-ilo6\"\ncount = 1\nfaults = { hang = [\"PATCH /Accounts/\"] }\n";
    let run = Run::start("hang", groups).await;
    let hung_bmc = run.stamp.lab.bmcs().iter().find(|b| b.name().starts_with("hpe-ilo6")).unwrap();
    let refusals = || hung_bmc.state().requests().iter().filter(|r| r.status == 401).count();
    let (report, journal, _) = run.rotate(Some(NEW), LAB_CLOUDADMIN_PASSWORD, options()).await;
    // The PATCH got no answer: the new password is tried first (a lost answer most often means
    // the change was made) and refused. One failed login is this command's budget for that BMC:
    // it is not tried again, and reported; every other BMC goes back.
    assert_eq!(report.outcome, RunOutcome::NeedsResume, "{:#?}", report.notes);
    assert_eq!(refusals(), 1);
    let hung = report.bmcs.iter().find(|b| b.name.starts_with("hpe-ilo6")).unwrap();
    assert_eq!((hung.holds, hung.result.as_str()), (Which::Unknown, "needs-attention"), "{hung:?}");
    assert!(hung.error.as_deref().unwrap().contains("ambiguous"), "what is known is kept: {hung:?}");
    assert_eq!(report.bmcs.iter().filter(|b| b.result == "rolled back").count(), 3, "{:?}", report.bmcs);
    assert!(run.all_hold(OLD), "every BMC is on the old password");
    assert!(run.stamp.pep.stored().is_none(), "Azure Stack was not told");
    let journal = journal.unwrap();
    assert!(records(&journal).iter().any(|r| matches!(r, Record::RollingBack { .. })));

    // The next command tries the other password first: no failed login, and the run ends rolled back.
    let report = run.resume(&journal, NEW).await.unwrap();
    assert_eq!(report.outcome, RunOutcome::RolledBack, "{:#?}", report.notes);
    assert_eq!(refusals(), 1, "the resume knew which password to try");
    assert!(run.all_hold(OLD) && run.stamp.pep.stored().is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_answer_is_resolved_by_verifying_once() {
    let groups = "[fleet]\ndell-idrac9 = 1\n[[group]]\npersona = \"hpe-ilo5\"\ncount = 1\nfaults = { apply_then_drop = [\"PATCH /Accounts/ x1\"] }\n";
    let run = Run::start("drop", groups).await;
    let (report, _, _) = run.rotate(Some(NEW), LAB_CLOUDADMIN_PASSWORD, options()).await;
    assert_eq!(report.outcome, RunOutcome::Rotated, "{:#?}", report);
    assert!(run.all_hold(NEW));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pep_failure_rolls_back_by_default_and_keeps_on_request() {
    // A wrong CloudAdmin password is found by preflight: nothing changes.
    let run = Run::start("pep-auth", "[fleet]\ndell-idrac9 = 1\nhpe-ilo5 = 1\n").await;
    let (report, journal, _) = run.rotate(Some(NEW), "Wrong-Cloud-Pw1", options()).await;
    assert_eq!(report.outcome, RunOutcome::PreflightFailed, "{:#?}", report.notes);
    assert!(report.notes.iter().any(|n| n.contains("refused the credential")), "{:?}", report.notes);
    assert!(journal.is_none() && run.all_hold(OLD));

    // The cmdlet fails: every BMC goes back.
    let failing = PepFaults { error_record: Some("BMC store unavailable".into()), ..PepFaults::default() };
    let run = Run::start("pep-fail", "[fleet]\ndell-idrac9 = 1\nhpe-ilo5 = 1\n").await;
    run.stamp.pep.set_faults(failing.clone());
    let (report, _, _) = run.rotate(Some(NEW), LAB_CLOUDADMIN_PASSWORD, options()).await;
    assert_eq!(report.outcome, RunOutcome::RolledBack, "{:#?}", report.notes);
    assert!(report.pep_error.as_deref().unwrap().contains("BMC store unavailable"));
    assert!(run.all_hold(OLD) && run.stamp.pep.stored().is_none());

    // --on-pep-failure keep: the BMCs keep the new password and the run needs resume.
    let run = Run::start("pep-keep", "[fleet]\ndell-idrac9 = 1\nhpe-ilo5 = 1\n").await;
    run.stamp.pep.set_faults(failing);
    let keep = RotationOptions { rollback_on_pep_failure: false, ..options() };
    let (report, _, _) = run.rotate(Some(NEW), LAB_CLOUDADMIN_PASSWORD, keep).await;
    assert_eq!(report.outcome, RunOutcome::NeedsResume);
    assert!(run.all_hold(NEW) && run.stamp.pep.stored().is_none());
    assert!(report.notes.iter().any(|n| n.contains("bmc-rotate resume")), "{:?}", report.notes);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_xcc_in_the_fleet_a_pep_failure_keeps_the_new_password_and_resume_finishes() {
    let run = Run::start("xcc-pep", "[fleet]\ndell-idrac9 = 1\nlenovo-xcc2 = 1\n").await;
    run.stamp.pep.set_faults(PepFaults { error_record: Some("BMC store unavailable".into()), ..PepFaults::default() });
    let (report, journal, _) = run.rotate(Some(NEW), LAB_CLOUDADMIN_PASSWORD, options()).await;
    assert_eq!(report.outcome, RunOutcome::NeedsResume, "{:#?}", report.notes);
    assert!(run.all_hold(NEW), "XCC cannot go back, so nobody does");

    run.stamp.pep.set_faults(PepFaults::default());
    let report = run.resume(&journal.unwrap(), NEW).await.unwrap();
    assert_eq!(report.outcome, RunOutcome::Rotated, "{:#?}", report.notes);
    assert_eq!(run.stamp.pep.stored().unwrap().password.as_str(), NEW);
}

/// An administrator who changes one BMC's password out of band once preflight has passed.
struct OutOfBand(Arc<std::sync::Mutex<bmc_lab::bmc::Bmc>>);

impl Observer for OutOfBand {
    fn phase(&self, phase: Phase, _: usize) {
        if phase == Phase::Change {
            let mut bmc = self.0.lock().unwrap();
            let id = bmc.account(USER).unwrap().id;
            bmc.put_account(id, USER, "Someone-Else-9", "Administrator");
        }
    }
    fn advanced(&self, _: &str, _: bool, _: &str) {}
    fn note(&self, _: &str) {}
    fn pep_progress(&self) -> bmc_rotate::pep::Progress {
        bmc_rotate::pep::quiet()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_password_changed_out_of_band_costs_that_bmc_one_failed_login_per_command() {
    let run = Run::start("ledger", "[fleet]\ndell-idrac9 = 2\nhpe-ilo5 = 1\n").await;
    let target = run.stamp.lab.bmcs().iter().find(|b| b.name() == "hpe-ilo5-01").unwrap();
    // iLO 5 ships delaying every login after the first failure by 10 s, longer than a resume's
    // verification budget; this test is about the ledger, so the iLO delays only from the
    // fourth failure on, by 5 s.
    *target.state().failed_logins_mut() =
        bmc_lab::persona::FailedLogins::Delay { after: 3, delay: std::time::Duration::from_secs(5) };
    let refusals = || target.state().requests().iter().filter(|r| r.status == 401).count();
    let observer = Arc::new(OutOfBand(target.state_handle()));
    let (report, journal, _) = run.rotate_observed(Some(NEW), LAB_CLOUDADMIN_PASSWORD, options(), observer).await;
    let journal = journal.unwrap();
    assert_eq!(refusals(), 1, "rotate: one failed login on the changed BMC, then it is left alone");
    let ilo = report.bmcs.iter().find(|b| b.name == "hpe-ilo5-01").unwrap();
    assert_eq!((ilo.result.as_str(), ilo.holds), ("needs-attention", Which::Unknown), "{ilo:?}");
    assert!(ilo.error.as_deref().unwrap().contains("at most 1 per BMC per command"), "{ilo:?}");
    assert_eq!(report.outcome, RunOutcome::NeedsResume, "{:#?}", report.notes);
    assert_eq!(run.stamp.holding(USER, OLD), 2, "the others went back");
    // The journal's ledger: one refused login with the old password, the budget spent.
    let refused: Vec<Record> =
        records(&journal).into_iter().filter(|r| matches!(r, Record::LoginRefused { .. })).collect();
    assert!(
        matches!(&refused[..], [Record::LoginRefused { bmc, password: Which::Old, .. }] if bmc == "hpe-ilo5-01"),
        "{refused:?}"
    );
    let state = bmc_rotate::fleet::engine::state_of(&journal::read_all(&journal).unwrap()).unwrap();
    let row = state.ledger.iter().find(|r| r.bmc == "hpe-ilo5-01").unwrap();
    assert_eq!((row.failed_logins, row.last_command, row.budget_left), (1, 1, 0));

    // Each resume is a new command: one more failed login at most (the new password, the one
    // not yet refused), and the BMC is again left alone and reported.
    for round in 1..=2 {
        let report = run.resume(&journal, NEW).await.unwrap();
        assert_eq!(refusals(), 1 + round, "resume {round}: at most one failed login");
        let ilo = report.bmcs.iter().find(|b| b.name == "hpe-ilo5-01").unwrap();
        assert_eq!(ilo.result, "needs-attention", "resume {round}: {ilo:?}");
        assert_eq!(report.outcome, RunOutcome::NeedsResume);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mistyped_current_password_is_refused_by_one_canary_and_no_other_bmc_is_tried() {
    // Every BMC holds another password than the one given: the first BMC of the profile refuses
    // it, and the others of that profile are never logged in to.
    let groups = "[[group]]\npersona = \"dell-idrac9\"\ncount = 3\npassword = \"Someone-Else-9\"\n";
    let run = Run::start("canary", groups).await;
    let (report, journal, _) = run.rotate(Some(NEW), LAB_CLOUDADMIN_PASSWORD, options()).await;
    assert_eq!(report.outcome, RunOutcome::PreflightFailed, "{:#?}", report.notes);
    assert!(journal.is_none());
    let line =
        format!("the current password for {USER} was refused by dell-idrac9-01: mistyped? no other BMC was tried");
    assert!(report.notes.contains(&line), "{:#?}", report.notes);
    let refused: Vec<usize> =
        run.stamp.lab.bmcs().iter().map(|b| b.state().requests().iter().filter(|r| r.status == 401).count()).collect();
    assert_eq!(refused, [1, 0, 0], "one failed login, on the canary only");
    let results: Vec<&str> = report.bmcs.iter().map(|b| b.result.as_str()).collect();
    assert_eq!(results, ["preflight failed", "not started", "not started"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resume_refuses_a_new_password_azure_stack_would_refuse_before_contacting_a_bmc() {
    // A journal whose new password is longer than Azure Stack's 16 characters (written by hand:
    // rotate's preflight would refuse it). Resume must find out before it moves any BMC.
    let run = Run::start("resume-policy", "[fleet]\ndell-idrac9 = 1\nlenovo-xcc2 = 1\n").await;
    let long = "Far-Too-Long-Pass-2025";
    let (inventory, _) =
        members::load(&run.stamp.inventory, None, &[vendor_plugin_dir().as_path()], runtime(), Limits::default())
            .await
            .unwrap();
    let path = run.dir.join("long.jsonl");
    drop(journal::start_run(&path, &inventory, OLD, long, true).unwrap());
    let error = run.resume(&path, long).await.unwrap_err();
    assert!(error.to_string().contains("does not fit") && error.to_string().contains("nothing was changed"), "{error}");
    assert!(!error.to_string().contains(long), "the password is never quoted");
    let contacted: usize = run.stamp.lab.bmcs().iter().map(|b| b.state().requests().len()).sum();
    assert_eq!(contacted, 0, "no BMC was contacted");
    assert!(run.all_hold(OLD));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_login_held_past_the_call_budget_counts_against_the_bmcs_budget() {
    // iLO holds the answer to every login after a failure (10 s as shipped; 4 s here, past the
    // tests' 3 s call budget). A login cut short that way may have been refused and counted by
    // the BMC: the resume must not try the other password on top of it.
    let run = Run::start("held", "[fleet]\ndell-idrac9 = 1\nhpe-ilo5 = 1\n").await;
    let target = run.stamp.lab.bmcs().iter().find(|b| b.name() == "hpe-ilo5-01").unwrap();
    *target.state().failed_logins_mut() =
        bmc_lab::persona::FailedLogins::Delay { after: 1, delay: std::time::Duration::from_secs(4) };
    let logins =
        || target.state().requests().iter().filter(|r| r.method == "POST" && r.path.contains("Sessions")).count();
    let observer = Arc::new(OutOfBand(target.state_handle()));
    let (_, journal, _) = run.rotate_observed(Some(NEW), LAB_CLOUDADMIN_PASSWORD, options(), observer).await;
    let journal = journal.unwrap();
    let before = logins();
    let report = run.resume(&journal, NEW).await.unwrap();
    // Let the held answer land in the BMC's log.
    tokio::time::sleep(std::time::Duration::from_secs(2)).await;
    assert_eq!(logins() - before, 1, "one login on the iLO in this resume, the one cut short");
    let ilo = report.bmcs.iter().find(|b| b.name == "hpe-ilo5-01").unwrap();
    assert_eq!(ilo.result, "needs-attention", "{ilo:?}");
    let unanswered = records(&journal).into_iter().any(|r| {
        matches!(r, Record::LoginRefused { failure: bmc_rotate::fleet::ledger::LoginFailure::Unanswered, .. })
    });
    assert!(unanswered, "journalled as a login whose answer was never read");
}

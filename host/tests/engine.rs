//! The convergence engine as an operator meets it, with the real binary against the lab: resume
//! checks the PEP before it touches a BMC, works with `--concurrency`, and reports what it
//! found; SIGINT/SIGTERM stop a run at a point `resume` converges from; a journal is bound to
//! its inventory's stamp and addresses; a `finished` record the journal contradicts is not
//! believed.
// SIGINT/SIGTERM delivered with kill(2) and exit statuses by signal: Unix process semantics.
#![cfg(unix)]

use bmc_lab::FleetSpec;
use bmc_lab::pep::PepConfig;
use bmc_rotate::demo::{LAB_CLOUDADMIN_PASSWORD, StampLab};
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

const USER: &str = "azsbmc";
const OLD: &str = "Old-Engine_71x";
const NEW: &str = "New-Engine_93y";

struct Stamp {
    lab: StampLab,
    dir: PathBuf,
}

/// A stamp of two iDRAC9s, an iLO 5 and an XCC2, every answer delayed by `latency_ms`.
async fn stamp(name: &str, latency_ms: u64) -> Stamp {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("engine-{name}"));
    let _ = std::fs::remove_dir_all(&dir);
    let mut groups = String::new();
    for (persona, count) in [("dell-idrac9", 2), ("hpe-ilo5", 1), ("lenovo-xcc2", 1)] {
        groups.push_str(&format!(
            "[[group]]\npersona = \"{persona}\"\ncount = {count}\nfaults = {{ latency_ms = {latency_ms} }}\n"
        ));
    }
    let spec =
        FleetSpec::parse(&format!("stamp = \"{name}\"\npassword = \"{OLD}\"\nuser = \"{USER}\"\n{groups}")).unwrap();
    let lab = StampLab::start(spec, PepConfig::default(), &dir).await.unwrap();
    Stamp { lab, dir }
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

impl Stamp {
    fn journal(&self) -> PathBuf {
        self.dir.join("run.jsonl")
    }

    fn command(&self, args: &[String], cloud: &str) -> Command {
        let mut command = Command::new(env!("CARGO_BIN_EXE_bmc-rotate"));
        command
            .args(args)
            .env("BMC_ROTATE_CACHE_DIR", Path::new(env!("CARGO_TARGET_TMPDIR")).join("cli-artifact-cache"))
            .env("XDG_STATE_HOME", Path::new(env!("CARGO_TARGET_TMPDIR")).join("engine-state"))
            .env("ENGINE_OLD", OLD)
            .env("ENGINE_NEW", NEW)
            .env("ENGINE_CLOUD", cloud)
            .env_remove("BMC_ROTATE_TEST_CRASH_AFTER_RECORD")
            .env_remove("BMC_ROTATE_TEST_FAIL_WRITE_AT_RECORD");
        command
    }

    async fn run(&self, args: Vec<String>, cloud: &str, crash_after: Option<u64>) -> Output {
        let mut command = self.command(&args, cloud);
        if let Some(k) = crash_after {
            command.env("BMC_ROTATE_TEST_CRASH_AFTER_RECORD", k.to_string());
        }
        tokio::task::spawn_blocking(move || command.output().unwrap()).await.unwrap()
    }

    fn common(&self) -> Vec<String> {
        let plugins = bmc_tests::vendor_plugin_dir();
        [
            "--plugin-dir",
            plugins.to_str().unwrap(),
            "--audit-log",
            self.dir.join("audit.jsonl").to_str().unwrap(),
            "--bmc-password",
            "env:ENGINE_OLD",
            "--new-password",
            "env:ENGINE_NEW",
            "--cloudadmin-password",
            "env:ENGINE_CLOUD",
            "--output",
            "json",
        ]
        .map(String::from)
        .to_vec()
    }

    fn rotate_args(&self, extra: &[&str]) -> Vec<String> {
        let mut args =
            vec!["rotate".to_owned(), "--yes".into(), "--inventory".into(), self.lab.inventory.display().to_string()];
        args.extend(["--journal".to_owned(), self.journal().display().to_string()]);
        args.extend(self.common());
        args.extend(extra.iter().map(|s| (*s).to_owned()));
        args
    }

    fn resume_args(&self, extra: &[&str]) -> Vec<String> {
        let mut args = vec!["resume".to_owned(), "--journal".into(), self.journal().display().to_string()];
        args.extend(self.common());
        args.extend(extra.iter().map(|s| (*s).to_owned()));
        args
    }

    async fn status(&self) -> Output {
        let args = vec!["status".to_owned(), "--journal".into(), self.journal().display().to_string()];
        self.run(args, LAB_CLOUDADMIN_PASSWORD, None).await
    }

    /// Refused logins (401) each BMC has answered so far.
    fn refusals(&self) -> Vec<usize> {
        self.lab.lab.bmcs().iter().map(|b| b.state().requests().iter().filter(|r| r.status == 401).count()).collect()
    }

    /// A resume, and one more if it left a BMC `needs-attention` (its first guess was refused, and
    /// a command spends at most one failed login per BMC); each costs a BMC at most one refusal.
    async fn resume_settled(&self, extra: &[&str]) -> Output {
        let mut last = None;
        for _ in 0..2 {
            let before = self.refusals();
            let out = self.run(self.resume_args(extra), LAB_CLOUDADMIN_PASSWORD, None).await;
            for (i, (b, a)) in before.iter().zip(&self.refusals()).enumerate() {
                assert!(a - b <= 1, "BMC {i} refused {} logins in one resume", a - b);
            }
            let again = out.status.code() == Some(4) && text(&out.stdout).contains("needs-attention");
            last = Some(out);
            if !again {
                break;
            }
        }
        last.unwrap()
    }

    /// Requests each BMC has answered so far.
    fn requests(&self) -> Vec<usize> {
        self.lab.lab.bmcs().iter().map(|b| b.state().requests().len()).collect()
    }

    fn converged_on(&self, password: &str) -> bool {
        let bmcs = self.lab.holding(USER, password) == self.lab.lab.bmcs().len();
        let pep = match self.lab.pep.stored() {
            Some(stored) => stored.password.as_str() == password,
            None => password == OLD,
        };
        bmcs && pep
    }

    fn assert_no_secret(&self, outputs: &[&Output]) {
        let mut texts: Vec<String> = outputs.iter().flat_map(|o| [text(&o.stdout), text(&o.stderr)]).collect();
        texts.push(std::fs::read_to_string(self.journal()).unwrap_or_default());
        for text in texts {
            for secret in [OLD, NEW, LAB_CLOUDADMIN_PASSWORD] {
                assert!(!text.contains(secret), "a secret was written");
            }
        }
    }
}

/// A run SIGKILLed after journal record `k` (6: some BMCs changed, others not, the PEP not told).
async fn crashed(s: &Stamp, k: u64) {
    let killed = s.run(s.rotate_args(&[]), LAB_CLOUDADMIN_PASSWORD, Some(k)).await;
    use std::os::unix::process::ExitStatusExt;
    assert_eq!(killed.status.signal(), Some(9), "{}", text(&killed.stderr));
    assert!(s.lab.holding(USER, NEW) > 0 && s.lab.holding(USER, OLD) > 0, "half-way");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resume_with_a_wrong_cloudadmin_password_changes_nothing_and_then_converges() {
    let s = stamp("pep-first", 0).await;
    crashed(&s, 6).await;
    let (journal_before, requests_before, new_before) =
        (std::fs::read(s.journal()).unwrap(), s.requests(), s.lab.holding(USER, NEW));
    let refused = s.run(s.resume_args(&[]), "Wrong-Cloud-Pw1", None).await;
    assert_eq!(refused.status.code(), Some(1), "README: the PEP refused the credential, nothing changed");
    let err = text(&refused.stderr);
    assert!(err.contains("privileged endpoint") && err.contains("nothing was changed"), "{err}");
    assert_eq!(s.requests(), requests_before, "no BMC was contacted");
    assert_eq!(s.lab.holding(USER, NEW), new_before);
    assert_eq!(std::fs::read(s.journal()).unwrap(), journal_before, "the journal is untouched");
    assert!(s.lab.pep.stored().is_none());

    let resumed = s.resume_settled(&["--concurrency", "4"]).await;
    assert_eq!(resumed.status.code(), Some(0), "{}{}", text(&resumed.stdout), text(&resumed.stderr));
    assert!(s.converged_on(NEW));
    // The report keeps what the BMCs said about themselves, and the time each took.
    let report: serde_json::Value = serde_json::from_slice(&resumed.stdout).unwrap();
    let elapsed = report["report"]["elapsed_ms"].as_u64().unwrap();
    for bmc in report["report"]["bmcs"].as_array().unwrap() {
        let name = bmc["name"].as_str().unwrap();
        assert!(!bmc["family"].as_str().unwrap().is_empty() && !bmc["firmware"].as_str().unwrap().is_empty(), "{bmc}");
        assert_eq!(bmc["rollback_safe"].as_bool(), Some(!name.starts_with("lenovo")), "XCC cannot go back: {bmc}");
        assert!(bmc["duration_ms"].as_u64().unwrap() <= elapsed, "{bmc}");
    }
    s.assert_no_secret(&[&refused, &resumed]);
}

/// Starts `rotate` and returns once the journal records that a change was sent.
fn start_rotation(s: &Stamp) -> std::process::Child {
    let mut command = s.command(&s.rotate_args(&["--concurrency", "1"]), LAB_CLOUDADMIN_PASSWORD);
    let child = command.stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    let deadline = Instant::now() + Duration::from_secs(120);
    while !std::fs::read_to_string(s.journal()).unwrap_or_default().contains("\"event\":\"changing\"") {
        assert!(Instant::now() < deadline, "the run never started changing");
        std::thread::sleep(Duration::from_millis(20));
    }
    child
}

fn signal(child: &std::process::Child, signal: libc::c_int) {
    // SAFETY: kill(2) on a child this test started and has not reaped.
    assert_eq!(unsafe { libc::kill(child.id() as libc::pid_t, signal) }, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigint_or_sigterm_mid_run_stops_starting_bmcs_and_resume_converges() {
    for (name, sig) in [("sigint", libc::SIGINT), ("sigterm", libc::SIGTERM)] {
        // 150 ms per answer, one BMC at a time: a change takes about a second.
        let s = stamp(name, 150).await;
        let out = tokio::task::spawn_blocking({
            let child = start_rotation(&s);
            move || {
                signal(&child, sig);
                child.wait_with_output().unwrap()
            }
        })
        .await
        .unwrap();
        let err = text(&out.stderr);
        assert_eq!(out.status.code(), Some(4), "{name}: {err}");
        let journal = s.journal().display().to_string();
        assert!(err.contains(&format!("BMCs changed, run: bmc-rotate resume --journal {journal}")), "{name}: {err}");
        let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(report["report"]["outcome"], "interrupted", "{name}");
        // The change under way finished (and was verified); no other BMC was started.
        let changed = s.lab.holding(USER, NEW);
        assert!((1..4).contains(&changed), "{name}: {changed} BMCs changed");
        assert!(err.contains(&format!("interrupted: {changed} BMCs changed")), "{name}: {err}");
        let not_started = report["report"]["bmcs"].as_array().unwrap().iter().filter(|b| b["result"] == "not started");
        assert_eq!(not_started.count(), 4 - changed, "{name}");
        assert!(s.lab.pep.stored().is_none(), "{name}: the PEP step is a new phase, not started");
        let status = s.status().await;
        assert_eq!(status.status.code(), Some(4), "{name}: {}", text(&status.stdout));
        let resumed = s.resume_settled(&[]).await;
        assert_eq!(resumed.status.code(), Some(0), "{name}: {}{}", text(&resumed.stdout), text(&resumed.stderr));
        assert!(s.converged_on(NEW), "{name}");
        s.assert_no_secret(&[&out, &resumed]);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_sigint_aborts_at_once_and_resume_converges() {
    let s = stamp("sigint-twice", 400).await;
    let started = Instant::now();
    let out = tokio::task::spawn_blocking({
        let child = start_rotation(&s);
        move || {
            signal(&child, libc::SIGINT);
            std::thread::sleep(Duration::from_millis(100));
            signal(&child, libc::SIGINT);
            child.wait_with_output().unwrap()
        }
    })
    .await
    .unwrap();
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(4), "{err}");
    assert!(err.contains("aborted (a second signal)") && err.contains("bmc-rotate resume --journal"), "{err}");
    assert!(started.elapsed() < Duration::from_secs(60));
    let resumed = s.resume_settled(&[]).await;
    assert_eq!(resumed.status.code(), Some(0), "{}{}", text(&resumed.stdout), text(&resumed.stderr));
    assert!(s.converged_on(NEW));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resume_refuses_another_stamps_inventory_with_the_same_bmc_names() {
    let a = stamp("bind-a", 0).await;
    let b = stamp("bind-b", 0).await;
    crashed(&a, 6).await;
    let (a_before, b_before) = (a.requests(), b.requests());
    let inventory = b.lab.inventory.display().to_string();
    let refused = a.run(a.resume_args(&["--inventory", &inventory]), LAB_CLOUDADMIN_PASSWORD, None).await;
    let err = text(&refused.stderr);
    assert_eq!(refused.status.code(), Some(2), "{err}");
    assert!(err.contains("the inventory is not the one this run used"), "{err}");
    assert!(err.contains("the run was on stamp `bind-a`, the inventory is stamp `bind-b`"), "{err}");
    assert!(err.contains("dell-idrac9-01: 127.0.0.1:"), "each re-addressed BMC is listed: {err}");
    assert_eq!((a.requests(), b.requests()), (a_before, b_before), "nothing was contacted");
    assert!(b.converged_on(OLD));

    // With the flag it goes on (these BMCs were never changed) and says what differed.
    let allowed = a
        .run(a.resume_args(&["--inventory", &inventory, "--allow-inventory-change"]), LAB_CLOUDADMIN_PASSWORD, None)
        .await;
    let report: serde_json::Value = serde_json::from_slice(&allowed.stdout).unwrap();
    let notes = report["report"]["notes"].to_string();
    assert!(notes.contains("the inventory changed since the run (--allow-inventory-change)"), "{notes}");
    assert!(notes.contains("stamp `bind-b`"), "{notes}");
}

/// A `finished` line as this release writes it: canonical JSON, then its checksum.
fn forged_finished(seq: u64, outcome: &str) -> String {
    let body = format!("{{\"seq\":{seq},\"at_ms\":1,\"event\":\"finished\",\"outcome\":\"{outcome}\"}}");
    let sum = hex::encode(&Sha256::digest(body.as_bytes())[..8]);
    format!("{},\"sum\":\"{sum}\"}}\n", &body[..body.len() - 1])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forged_finished_record_does_not_make_a_half_done_run_look_converged() {
    let s = stamp("forged", 0).await;
    crashed(&s, 6).await;
    let mut journal = std::fs::read_to_string(s.journal()).unwrap();
    journal.push_str("{\"seq\":99,\"at\n");
    journal.push_str(&forged_finished(100, "rotated"));
    std::fs::write(s.journal(), journal).unwrap();
    let status = s.status().await;
    assert_eq!(status.status.code(), Some(4), "{}", text(&status.stdout));
    assert!(text(&status.stdout).contains("the journal ends `rotated` but"), "{}", text(&status.stdout));
    let resumed = s.resume_settled(&[]).await;
    assert_eq!(resumed.status.code(), Some(0), "{}{}", text(&resumed.stdout), text(&resumed.stderr));
    assert!(!text(&resumed.stdout).contains("nothing to do"));
    assert!(s.converged_on(NEW));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_shows_the_lockout_ledger_and_resume_spends_one_failed_login_on_a_bmc_changed_out_of_band() {
    let s = stamp("ledger", 0).await;
    crashed(&s, 6).await;
    // An administrator sets a third password on the iLO meanwhile.
    let ilo = s.lab.lab.bmcs().iter().find(|b| b.name() == "hpe-ilo5-01").unwrap();
    {
        let mut state = ilo.state();
        let id = state.account(USER).unwrap().id;
        state.put_account(id, USER, "Someone-Else-9", "Administrator");
    }
    let ilo_refusals = || ilo.state().requests().iter().filter(|r| r.status == 401).count();
    for round in 1..=2 {
        let before = ilo_refusals();
        let out = s.run(s.resume_args(&[]), LAB_CLOUDADMIN_PASSWORD, None).await;
        assert_eq!(out.status.code(), Some(4), "round {round}: {}{}", text(&out.stdout), text(&out.stderr));
        assert_eq!(ilo_refusals() - before, 1, "round {round}: one failed login on the iLO per command");
        let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        let row = report["report"]["bmcs"].as_array().unwrap().iter().find(|b| b["name"] == "hpe-ilo5-01").unwrap();
        assert_eq!(row["result"], "needs-attention", "round {round}: {row}");
        let status = s.status().await;
        assert_eq!(status.status.code(), Some(4));
        let table = text(&status.stdout);
        assert!(table.contains("FAILED LOGINS") && table.contains("BUDGET LEFT (LAST COMMAND)"), "{table}");
        let mut args = vec!["status".to_owned(), "--journal".into(), s.journal().display().to_string()];
        args.extend(["--output".to_owned(), "json".into()]);
        let json: serde_json::Value =
            serde_json::from_slice(&s.run(args, LAB_CLOUDADMIN_PASSWORD, None).await.stdout).unwrap();
        let ledger = json["ledger"].as_array().unwrap().iter().find(|r| r["bmc"] == "hpe-ilo5-01").unwrap().clone();
        assert_eq!(ledger["last_command"], 1, "{ledger}");
        assert_eq!(ledger["budget_left"], 0, "{ledger}");
        assert!(ledger["failed_logins"].as_u64().unwrap() >= round, "{ledger}");
    }
    // A journal that cannot take a record of this verification — the iLO's `login-refused`
    // among them — stops the resume with the journal valid up to its last good record, and still
    // costs the iLO at most its one failed login.
    for k in 1..=5u64 {
        let written = journal_records(&s.journal());
        let before = ilo_refusals();
        let mut command = s.command(&s.resume_args(&[]), LAB_CLOUDADMIN_PASSWORD);
        command.env("BMC_ROTATE_TEST_FAIL_WRITE_AT_RECORD", (written + k).to_string());
        let out = tokio::task::spawn_blocking(move || command.output().unwrap()).await.unwrap();
        assert_eq!(out.status.code(), Some(4), "k={k}: {}{}", text(&out.stdout), text(&out.stderr));
        assert!(text(&out.stderr).contains("cannot write the journal"), "k={k}: {}", text(&out.stderr));
        assert_eq!(journal_records(&s.journal()), written + k - 1, "k={k}: valid up to the last good record");
        assert!(ilo_refusals() - before <= 1, "k={k}: at most one failed login on the iLO");
        assert_eq!(s.status().await.status.code(), Some(4), "k={k}: the journal still reads");
    }
    // The BMCs that can go back are not held back by it: they hold the new password. The XCC,
    // which cannot go back (reuse cycle), waits until every other BMC holds the new one: were
    // the iLO's third password never resolved forward, the fleet must still be able to go back.
    assert_eq!(s.lab.holding(USER, NEW), 2);
    assert_eq!(s.lab.holding(USER, OLD), 1);
}

/// Records in a journal file (every line of it is a complete record).
fn journal_records(path: &Path) -> u64 {
    let text = std::fs::read_to_string(path).unwrap();
    assert!(text.is_empty() || text.ends_with('\n'), "a partial record was left: {text}");
    text.lines().count() as u64
}

//! Crash safety, with the real binary: `bmc-rotate rotate` is SIGKILLed right after each journal
//! record in turn, then `bmc-rotate resume` must converge — every BMC and the PEP on one
//! password — for every crash point, on the happy path and on a rollback. The secrets are
//! canaries that must never appear in stdout, stderr, the journal, the report or the audit log.
// SIGKILL after each journal record and exit statuses by signal: Unix process semantics.
#![cfg(unix)]

use bmc_lab::faults::Faults;
use bmc_lab::pep::PepConfig;
use bmc_lab::{FleetSpec, Persona};
use bmc_rotate::demo::{LAB_CLOUDADMIN_PASSWORD, StampLab};
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const USER: &str = "azsbmc";
const OLD: &str = "Old-Canary_71x";
const NEW: &str = "New-Canary_93y";

struct Stamp {
    lab: StampLab,
    dir: PathBuf,
}

async fn stamp(name: &str, failing: bool) -> Stamp {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("crash-{name}"));
    let _ = std::fs::remove_dir_all(&dir);
    let spec = FleetSpec::parse(&format!(
        "stamp = \"{name}\"\npassword = \"{OLD}\"\nuser = \"{USER}\"\n[fleet]\ndell-idrac9 = 1\nhpe-ilo5 = 1\nlenovo-xcc2 = 1\n"
    ))
    .unwrap();
    let lab = StampLab::start(spec, PepConfig::default(), &dir).await.unwrap();
    if failing {
        let ilo = lab.lab.bmcs().iter().find(|b| b.persona() == Persona::Ilo5).unwrap();
        ilo.set_faults(Faults { error_500: vec!["PATCH /Accounts/".parse().unwrap()], ..Faults::default() });
    }
    Stamp { lab, dir }
}

impl Stamp {
    fn journal(&self) -> PathBuf {
        self.dir.join("run.jsonl")
    }

    /// Runs the binary on a blocking thread (the lab keeps serving on the test's runtime).
    async fn bmc_rotate(&self, args: Vec<String>, crash_after: Option<u64>) -> Output {
        self.bmc_rotate_env(args, crash_after.map(|k| ("BMC_ROTATE_TEST_CRASH_AFTER_RECORD", k.to_string()))).await
    }

    /// The same, with one test hook set.
    async fn bmc_rotate_env(&self, args: Vec<String>, hook: Option<(&str, String)>) -> Output {
        let mut command = Command::new(env!("CARGO_BIN_EXE_bmc-rotate"));
        command
            .args(&args)
            .env("BMC_ROTATE_CACHE_DIR", Path::new(env!("CARGO_TARGET_TMPDIR")).join("cli-artifact-cache"))
            .env("XDG_STATE_HOME", Path::new(env!("CARGO_TARGET_TMPDIR")).join("crash-state"))
            .env("CRASH_OLD", OLD)
            .env("CRASH_NEW", NEW)
            .env("CRASH_CLOUD", LAB_CLOUDADMIN_PASSWORD)
            .env_remove("BMC_ROTATE_TEST_CRASH_AFTER_RECORD")
            .env_remove("BMC_ROTATE_TEST_FAIL_WRITE_AT_RECORD");
        if let Some((name, value)) = hook {
            command.env(name, value);
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
            "env:CRASH_OLD",
            "--new-password",
            "env:CRASH_NEW",
            "--cloudadmin-password",
            "env:CRASH_CLOUD",
            "--output",
            "json",
        ]
        .map(String::from)
        .to_vec()
    }

    async fn rotate(&self, crash_after: Option<u64>) -> Output {
        let mut args =
            vec!["rotate".to_owned(), "--yes".into(), "--inventory".into(), self.lab.inventory.display().to_string()];
        args.extend(["--journal".to_owned(), self.journal().display().to_string()]);
        args.extend(self.common());
        self.bmc_rotate(args, crash_after).await
    }

    async fn resume(&self) -> Output {
        let mut args = vec!["resume".to_owned(), "--journal".into(), self.journal().display().to_string()];
        args.extend(self.common());
        self.bmc_rotate(args, None).await
    }

    async fn status(&self) -> Output {
        let args = vec!["status".to_owned(), "--journal".into(), self.journal().display().to_string()];
        self.bmc_rotate(args, None).await
    }

    /// Every BMC and the PEP hold `password` (the PEP: or was never changed, for the old one).
    fn converged_on(&self, password: &str) -> bool {
        let bmcs = self.lab.holding(USER, password) == self.lab.lab.bmcs().len();
        let pep = match self.lab.pep.stored() {
            Some(stored) => stored.password.as_str() == password,
            None => password == OLD,
        };
        bmcs && pep
    }

    /// No canary in anything the runs wrote.
    fn assert_no_secret(&self, outputs: &[&Output]) {
        let mut texts: Vec<(String, String)> = outputs
            .iter()
            .flat_map(|o| [("stdout", &o.stdout), ("stderr", &o.stderr)])
            .map(|(what, bytes)| (what.to_owned(), String::from_utf8_lossy(bytes).into_owned()))
            .collect();
        for file in [self.journal(), self.dir.join("audit.jsonl")] {
            texts.push((file.display().to_string(), std::fs::read_to_string(&file).unwrap_or_default()));
        }
        for (what, text) in texts {
            for secret in [OLD, NEW, LAB_CLOUDADMIN_PASSWORD] {
                assert!(!text.contains(secret), "a secret appears in {what}");
            }
        }
    }
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn records(journal: &Path) -> u64 {
    std::fs::read_to_string(journal).unwrap().lines().count() as u64
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_killed_after_any_journal_record_is_converged_by_resume() {
    let whole = stamp("whole", false).await;
    let out = whole.rotate(None).await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["report"]["outcome"], "rotated");
    assert!(whole.converged_on(NEW));
    whole.assert_no_secret(&[&out]);
    let total = records(&whole.journal());
    assert!(total >= 10, "a full run writes {total} records");

    for k in 1..=total {
        let s = stamp(&format!("k{k}"), false).await;
        let killed = s.rotate(Some(k)).await;
        assert_eq!(killed.status.signal(), Some(9), "k={k}: {}", text(&killed.stderr));
        assert_eq!(records(&s.journal()), k, "k={k}: the record the kill followed is durable");
        let status = s.status().await;
        let expected = if k == total { 0 } else { 4 };
        assert_eq!(status.status.code(), Some(expected), "k={k}: {}", text(&status.stdout));
        let resumed = s.resume_settled().await;
        assert_eq!(resumed.status.code(), Some(0), "k={k}: {}{}", text(&resumed.stdout), text(&resumed.stderr));
        assert!(s.converged_on(NEW), "k={k}: not converged on the new password");
        s.assert_no_secret(&[&killed, &status, &resumed]);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_run_killed_anywhere_ends_back_on_the_old_password() {
    let whole = stamp("rollback-whole", true).await;
    let out = whole.rotate(None).await;
    assert_eq!(out.status.code(), Some(3), "rolled back: {}", text(&out.stdout));
    assert!(whole.converged_on(OLD));
    let total = records(&whole.journal());
    // Killed before the run decided to roll back, resume tries forward, meets the same refusal
    // and rolls back as the run would have; killed after, it finishes the rollback.
    for k in 1..total {
        let s = stamp(&format!("rollback-k{k}"), true).await;
        let killed = s.rotate(Some(k)).await;
        assert_eq!(killed.status.signal(), Some(9), "k={k}");
        let resumed = s.resume_settled().await;
        assert_eq!(resumed.status.code(), Some(3), "k={k}: the run's direction was back: {}", text(&resumed.stdout));
        assert!(s.converged_on(OLD), "k={k}: not back on the old password");
        s.assert_no_secret(&[&killed, &resumed]);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resume_refuses_secrets_that_do_not_match_the_journal() {
    let s = stamp("wrong-secret", false).await;
    let killed = s.rotate(Some(4)).await;
    assert_eq!(killed.status.signal(), Some(9));
    let mut args = vec!["resume".to_owned(), "--journal".into(), s.journal().display().to_string()];
    let common: Vec<String> =
        s.common().into_iter().map(|a| if a == "env:CRASH_NEW" { "env:CRASH_CLOUD".into() } else { a }).collect();
    args.extend(common);
    let out = s.bmc_rotate(args, None).await;
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    assert!(text(&out.stderr).contains("the new BMC password is not the one this run set"), "{}", text(&out.stderr));
}

impl Stamp {
    /// Refused logins (401) each BMC has answered so far.
    fn refusals(&self) -> Vec<usize> {
        self.lab.lab.bmcs().iter().map(|b| b.state().requests().iter().filter(|r| r.status == 401).count()).collect()
    }

    async fn resume_with_inventory(&self) -> Output {
        let mut args = vec!["resume".to_owned(), "--journal".into(), self.journal().display().to_string()];
        args.extend(["--inventory".to_owned(), self.lab.inventory.display().to_string()]);
        args.extend(self.common());
        self.bmc_rotate(args, None).await
    }

    /// `first` (a resume's output), then one more resume if it left a BMC `needs-attention`:
    /// one failed login per BMC per command means a BMC whose first guess was refused waits for
    /// the next resume, which tries the other password first. Each resume costs every BMC at
    /// most one refused login (checked here), and the second must settle the run.
    async fn settle(&self, first: Output, before: Vec<usize>) -> Output {
        let after = self.refusals();
        for (i, (b, a)) in before.iter().zip(&after).enumerate() {
            assert!(a - b <= 1, "BMC {i} refused {} logins during one resume", a - b);
        }
        if first.status.code() != Some(4) || !text(&first.stdout).contains("needs-attention") {
            return first;
        }
        let second = self.resume().await;
        for (i, (b, a)) in after.iter().zip(&self.refusals()).enumerate() {
            assert!(a - b <= 1, "BMC {i} refused {} logins during the second resume", a - b);
        }
        assert!(!text(&second.stdout).contains("needs-attention"), "{}", text(&second.stdout));
        second
    }

    /// A resume, settled (see [`Stamp::settle`]).
    async fn resume_settled(&self) -> Output {
        let before = self.refusals();
        let first = self.resume().await;
        self.settle(first, before).await
    }
}

/// Ways a journal gets damaged, each applied to the journal of a run killed mid-change.
#[derive(Clone, Copy, Debug)]
enum Damage {
    /// The testers' journal: part of record 4, then record 6 on the same line; record 5 lost.
    TearMiddle,
    /// One byte of a middle record changed.
    FlipByte,
    /// A byte-order mark in front and the first records appended again at the end.
    BomAndDuplicates,
    /// Nothing left.
    Truncate,
}

fn damage(journal: &Path, how: Damage) {
    let text = std::fs::read_to_string(journal).unwrap();
    let mut lines: Vec<String> = text.lines().map(String::from).collect();
    let damaged = match how {
        Damage::TearMiddle => {
            let torn = lines[3][..lines[3].len() / 2].to_owned();
            lines[3] = format!("{torn}{}", lines[5]);
            lines.remove(5);
            lines.remove(4);
            lines.join("\n") + "\n"
        }
        Damage::FlipByte => {
            let middle = lines[3].len() / 2;
            let mut bytes = std::mem::take(&mut lines[3]).into_bytes();
            bytes[middle] ^= 0x01;
            lines[3] = String::from_utf8(bytes).unwrap();
            lines.join("\n") + "\n"
        }
        Damage::BomAndDuplicates => {
            let again: Vec<String> = lines[..3].to_vec();
            lines.extend(again);
            format!("\u{feff}{}\n", lines.join("\n"))
        }
        Damage::Truncate => String::new(),
    };
    std::fs::write(journal, damaged).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resume_converges_a_run_whose_journal_was_damaged_after_a_crash() {
    // Killed after record 6: some BMCs changed, others not, the PEP not told.
    let crash_at = 6;
    for how in [Damage::TearMiddle, Damage::FlipByte, Damage::BomAndDuplicates, Damage::Truncate] {
        let s = stamp(&format!("damaged-{how:?}"), false).await;
        let killed = s.rotate(Some(crash_at)).await;
        assert_eq!(killed.status.signal(), Some(9), "{how:?}: {}", text(&killed.stderr));
        assert_eq!(records(&s.journal()), crash_at);
        damage(&s.journal(), how);
        let status = s.status().await;
        let before = s.refusals();
        let resumed = match how {
            Damage::Truncate => {
                // No run-started record: status cannot tell, and resume needs the inventory.
                assert_eq!(status.status.code(), Some(2), "{how:?}: {}", text(&status.stderr));
                assert!(text(&status.stderr).contains("resume --inventory"), "{}", text(&status.stderr));
                let refused = s.resume().await;
                assert_eq!(refused.status.code(), Some(2), "{how:?}: {}", text(&refused.stderr));
                assert!(text(&refused.stderr).contains("give --inventory"), "{}", text(&refused.stderr));
                let first = s.resume_with_inventory().await;
                s.settle(first, before.clone()).await
            }
            _ => {
                assert_eq!(status.status.code(), Some(4), "{how:?}: {}{}", text(&status.stdout), text(&status.stderr));
                let warned = text(&status.stderr);
                let expected =
                    if matches!(how, Damage::BomAndDuplicates) { "skipped 3 damaged" } else { "skipped 1 damaged" };
                assert!(warned.contains(expected), "{how:?}: one warning with the count: {warned}");
                s.resume_settled().await
            }
        };
        assert_eq!(resumed.status.code(), Some(0), "{how:?}: {}{}", text(&resumed.stdout), text(&resumed.stderr));
        assert!(s.converged_on(NEW), "{how:?}: not converged on the new password");
        // The journal reads whole again: status says converged.
        let status = s.status().await;
        assert_eq!(status.status.code(), Some(0), "{how:?}: {}{}", text(&status.stdout), text(&status.stderr));
        s.assert_no_secret(&[&killed, &resumed, &status]);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_journal_write_failure_stops_the_run_and_resume_converges() {
    let whole = stamp("full-whole", false).await;
    let out = whole.rotate(None).await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let total = records(&whole.journal());
    for k in 1..=total {
        let s = stamp(&format!("full-k{k}"), false).await;
        let hook = Some(("BMC_ROTATE_TEST_FAIL_WRITE_AT_RECORD", k.to_string()));
        let mut args =
            vec!["rotate".to_owned(), "--yes".into(), "--inventory".into(), s.lab.inventory.display().to_string()];
        args.extend(["--journal".to_owned(), s.journal().display().to_string()]);
        args.extend(s.common());
        let failed = s.bmc_rotate_env(args, hook).await;
        // The journal is valid up to the last good record: the partial one was cut, nothing after.
        let written = std::fs::read_to_string(s.journal()).unwrap();
        assert_eq!(records(&s.journal()), k - 1, "k={k}: {written}");
        assert!(written.is_empty() || written.ends_with('\n'), "k={k}");
        let changed = written.contains("\"event\":\"changing\"");
        let expected = if changed { 4 } else { 1 };
        assert_eq!(failed.status.code(), Some(expected), "k={k}: {}", text(&failed.stderr));
        assert!(text(&failed.stderr).contains("cannot write the journal"), "k={k}: {}", text(&failed.stderr));
        if !changed {
            assert!(text(&failed.stderr).contains("nothing was changed"), "k={k}: {}", text(&failed.stderr));
            assert!(s.converged_on(OLD), "k={k}: nothing changed");
        }
        if k == 1 {
            continue;
        }
        let resumed = s.resume_settled().await;
        assert_eq!(resumed.status.code(), Some(0), "k={k}: {}{}", text(&resumed.stdout), text(&resumed.stderr));
        assert!(s.converged_on(NEW), "k={k}: not converged on the new password");
        s.assert_no_secret(&[&failed, &resumed]);
    }
}

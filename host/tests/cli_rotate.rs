//! `bmc-rotate rotate|resume|status` as an operator runs them against a lab stamp.
// Process groups (setsid), a pty for the prompt tests and non-UTF-8 paths: Unix. The Windows
// build's rotation is run from the .exe under Wine by .ci/windows.sh instead.
#![cfg(unix)]

use bmc_lab::FleetSpec;
use bmc_lab::introspect::IntrospectClient;
use bmc_lab::pep::PepConfig;
use bmc_rotate::demo::{LAB_CLOUDADMIN_PASSWORD, StampLab};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const USER: &str = "azsbmc";
const OLD: &str = "Cli-Old_Pass-1";
const THIRD: &str = "Third-Pass_2026z";

async fn stamp(name: &str) -> (StampLab, PathBuf) {
    stamp_with(name, "dell-idrac10 = 1\nhpe-ilo6 = 1\nlenovo-xcc3 = 1\n").await
}

/// A lab stamp of these `[fleet]` lines. One stamp name per test: each has its own stamp lock.
async fn stamp_with(name: &str, fleet: &str) -> (StampLab, PathBuf) {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("cli-rotate-{name}"));
    let _ = std::fs::remove_dir_all(&dir);
    let spec =
        FleetSpec::parse(&format!("stamp = \"{name}\"\npassword = \"{OLD}\"\nuser = \"{USER}\"\n[fleet]\n{fleet}"))
            .unwrap();
    (StampLab::start(spec, PepConfig::default(), &dir).await.unwrap(), dir)
}

/// The binary's state directory (stamp locks), never the user's.
fn state_home() -> PathBuf {
    Path::new(env!("CARGO_TARGET_TMPDIR")).join("cli-rotate-state")
}

async fn bmc_rotate<S: AsRef<std::ffi::OsStr>>(args: Vec<S>) -> Output {
    let mut command = command(args);
    tokio::task::spawn_blocking(move || command.output().unwrap()).await.unwrap()
}

/// The binary with the tests' cache, state directory and secrets, and no controlling terminal.
fn command<S: AsRef<std::ffi::OsStr>>(args: Vec<S>) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_bmc-rotate"));
    command
        .args(args)
        .env("BMC_ROTATE_CACHE_DIR", Path::new(env!("CARGO_TARGET_TMPDIR")).join("cli-artifact-cache"))
        .env("XDG_STATE_HOME", state_home())
        .env("CLI_OLD", OLD)
        .env("CLI_CLOUD", LAB_CLOUDADMIN_PASSWORD)
        .env("CLI_THIRD", THIRD);
    // No controlling terminal, as in CI, so a run from a developer's terminal behaves the same
    // (a rotation without --yes would otherwise stop to ask there).
    // SAFETY: setsid is async-signal-safe and touches no memory of the parent.
    unsafe {
        std::os::unix::process::CommandExt::pre_exec(&mut command, || {
            libc::setsid();
            Ok(())
        });
    }
    command
}

fn rotate_args(stamp: &StampLab, dir: &Path, extra: &[&str]) -> Vec<String> {
    let plugins = bmc_tests::vendor_plugin_dir();
    let mut args: Vec<String> = [
        "rotate",
        "--inventory",
        stamp.inventory.to_str().unwrap(),
        "--plugin-dir",
        plugins.to_str().unwrap(),
        "--audit-log",
        dir.join("audit.jsonl").to_str().unwrap(),
        "--journal",
        dir.join("run.jsonl").to_str().unwrap(),
        "--bmc-password",
        "env:CLI_OLD",
        "--cloudadmin-password",
        "env:CLI_CLOUD",
        "--yes",
    ]
    .map(String::from)
    .to_vec();
    args.extend(extra.iter().map(|s| (*s).to_owned()));
    args
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_generated_password_is_saved_privately_before_the_rotation_and_never_printed() {
    let (stamp, dir) = stamp("generate").await;
    // Checked as a rehearsal checks a lab: through introspection, never by logging in.
    let introspection = stamp.introspection().await.unwrap();
    let lab = IntrospectClient::new(introspection.addr());
    let out_file = dir.join("new-password");
    let out =
        bmc_rotate(rotate_args(&stamp, &dir, &["--generate-password", "--password-out", out_file.to_str().unwrap()]))
            .await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let password = std::fs::read_to_string(&out_file).unwrap().trim().to_owned();
    assert_eq!(std::fs::metadata(&out_file).unwrap().permissions().mode() & 0o777, 0o600);
    assert!((12..=16).contains(&password.chars().count()), "as long as every BMC and Azure Stack allow");
    let holding = lab.fleet_holding(USER, &password).await.unwrap();
    assert_eq!((holding.holding, holding.total), (3, 3), "{holding:?}");
    assert_eq!(lab.pep_holds(&password).await.unwrap(), Some(true));
    assert_eq!(lab.fleet_holding(USER, OLD).await.unwrap().holding, 0);
    let everything = [text(&out.stdout), text(&out.stderr), std::fs::read_to_string(dir.join("run.jsonl")).unwrap()];
    for t in &everything {
        assert!(!t.contains(&password) && !t.contains(OLD) && !t.contains(LAB_CLOUDADMIN_PASSWORD));
    }
    assert!(text(&out.stdout).contains("outcome: rotated"), "{}", text(&out.stdout));
    let audit = std::fs::read_to_string(dir.join("audit.jsonl")).unwrap();
    assert!(audit.contains("\"command\":\"rotate\"") && audit.contains("\"outcome\":\"rotated\""), "{audit}");

    let status =
        bmc_rotate(vec!["status".into(), "--journal".into(), dir.join("run.jsonl").display().to_string()]).await;
    assert_eq!(status.status.code(), Some(0));
    assert!(
        text(&status.stdout).contains("finished:") && text(&status.stdout).contains("rotated"),
        "{}",
        text(&status.stdout)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dry_run_changes_nothing_and_writes_no_journal() {
    let (stamp, dir) = stamp("dry").await;
    let out =
        bmc_rotate(rotate_args(&stamp, &dir, &["--new-password", "env:CLI_CLOUD", "--dry-run", "--output", "json"]))
            .await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["report"]["outcome"], "dry-run");
    assert_eq!(json["report"]["bmcs"].as_array().unwrap().len(), 3);
    // The plan: each BMC's plugin and when it changes (the XCC, which cannot go back, last),
    // and the PEP's answer to the check with the call the run would make.
    let plan = &json["plan"]["bmcs"];
    let orders: Vec<(&str, &str)> = plan
        .as_array()
        .unwrap()
        .iter()
        .map(|b| (b["profile"].as_str().unwrap(), b["order"].as_str().unwrap()))
        .collect();
    assert!(orders.iter().all(|(p, o)| (*o == "last") == p.starts_with("lenovo")), "{orders:?}");
    assert!(plan[0]["plugin"].as_str().unwrap().contains('@'), "{plan}");
    let call = json["report"]["pep"]["call"].as_str().unwrap();
    assert!(call.starts_with("Set-BmcCredential") && call == json["plan"]["pep"]["call"], "{call}");
    assert!(!dir.join("run.jsonl").exists());
    assert_eq!(stamp.holding(USER, OLD), 3);

    // The same plan for people.
    let out = bmc_rotate(rotate_args(&stamp, &dir, &["--new-password", "env:CLI_CLOUD", "--dry-run"])).await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let shown = text(&out.stdout);
    assert!(shown.contains("last (cannot go back)") && shown.contains("then Azure Stack Hub, on "), "{shown}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_terminal_a_rotation_needs_yes_and_contacts_nothing_until_given_it() {
    let (stamp, dir) = stamp("confirm").await;
    let mut args = rotate_args(&stamp, &dir, &["--new-password", "env:CLI_CLOUD"]);
    args.retain(|a| a != "--yes");
    let out = bmc_rotate(args).await;
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    assert!(text(&out.stderr).contains("give --yes (or --dry-run to see the plan)"), "{}", text(&out.stderr));
    let contacted: usize = stamp.lab.bmcs().iter().map(|b| b.state().requests().len()).sum();
    assert_eq!(contacted, 0, "refused before any BMC is contacted");
    assert!(!dir.join("run.jsonl").exists() && stamp.pep.stored().is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_is_refused_with_its_place_and_changes_nothing() {
    let (stamp, dir) = stamp("bad").await;
    let text_of = std::fs::read_to_string(&stamp.inventory).unwrap();
    let bad = dir.join("bad.toml");
    std::fs::write(&bad, format!("{text_of}\npassword = \"oops\"\n")).unwrap();
    let mut args = rotate_args(&stamp, &dir, &["--new-password", "env:CLI_CLOUD"]);
    args[2] = bad.display().to_string();
    let out = bmc_rotate(args).await;
    assert_eq!(out.status.code(), Some(2));
    let lines = text_of.lines().count() + 2;
    assert!(
        text(&out.stderr).contains(&format!("bad.toml:{lines}: `password`: the inventory never holds a secret")),
        "{}",
        text(&out.stderr)
    );
    assert!(!text(&out.stderr).contains("oops"));

    let no_pep = dir.join("no-pep.toml");
    std::fs::write(&no_pep, stamp.lab.inventory_toml()).unwrap();
    let mut args = rotate_args(&stamp, &dir, &["--new-password", "env:CLI_CLOUD"]);
    args[2] = no_pep.display().to_string();
    let out = bmc_rotate(args).await;
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("no [pep] table"), "{}", text(&out.stderr));

    let out = bmc_rotate(rotate_args(&stamp, &dir, &["--new-password", "env:UNSET_FOR_SURE_42"])).await;
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("UNSET_FOR_SURE_42 is not set"), "{}", text(&out.stderr));
    assert_eq!(stamp.holding(USER, OLD), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_run_on_a_locked_stamp_is_refused_before_it_contacts_anything() {
    use bmc_rotate::fleet::lock::{Holder, StampLock, address_digest};
    let (stamp, dir) = stamp("locked").await;
    let requests = || stamp.lab.bmcs().iter().map(|b| b.state().requests().len()).sum::<usize>();
    let before = requests();
    // Another run holds the stamp: this test, through the same module the binary uses.
    let other_journal = dir.join("other.jsonl");
    let holder = Holder::me("rotate", "locked", Some(&other_journal), address_digest(Vec::new()));
    let held = StampLock::acquire(&state_home().join("bmc-rotate").join("locks"), &holder).unwrap();

    let started = std::time::Instant::now();
    let out = bmc_rotate(rotate_args(&stamp, &dir, &["--new-password", "env:CLI_CLOUD"])).await;
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    let expected = format!("error: stamp locked is being rotated by pid {} since ", std::process::id());
    assert!(stderr.contains(&expected), "{stderr}");
    assert!(stderr.contains(&format!("(journal {})", other_journal.display())), "{stderr}");
    assert!(stderr.contains("another set of BMC addresses") && stderr.contains("nothing was changed"), "{stderr}");
    assert!(stderr.contains("hint: wait for that run to end"), "{stderr}");
    assert!(started.elapsed() < std::time::Duration::from_secs(30), "refused at once: {:?}", started.elapsed());
    assert_eq!(requests(), before, "no BMC was contacted");
    assert_eq!(stamp.holding(USER, OLD), 3);
    assert!(stamp.pep.stored().is_none());
    assert!(!dir.join("run.jsonl").exists(), "no journal");

    // The same command once the other run has ended: the lock was the only reason.
    drop(held);
    let out = bmc_rotate(rotate_args(&stamp, &dir, &["--new-password", "env:CLI_CLOUD", "--dry-run"])).await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(!text(&out.stderr).contains("taking over"), "the holder ended normally");

    // A holder killed mid-run leaves its record, but the kernel took its flock away: taken over.
    let dead = Holder { pid: 999_999, ..holder };
    let lock_file = state_home().join("bmc-rotate").join("locks").join("locked.lock");
    std::fs::write(&lock_file, serde_json::to_string(&dead).unwrap()).unwrap();
    let out = bmc_rotate(rotate_args(&stamp, &dir, &["--new-password", "env:CLI_CLOUD", "--dry-run"])).await;
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(stderr.contains("note: taking over the lock of pid 999999, which is no longer running"), "{stderr}");
    assert!(stderr.contains(&format!("status --journal {}", other_journal.display())), "{stderr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_journal_path_that_is_not_utf8_works_to_the_end() {
    use std::ffi::{OsStr, OsString};
    use std::os::unix::ffi::OsStrExt;
    let (stamp, dir) = stamp("latin1").await;
    let journal = dir.join(OsStr::from_bytes(b"run-\xe9t\xe9.jsonl"));
    let mut args: Vec<OsString> = rotate_args(&stamp, &dir, &["--new-password", "env:CLI_CLOUD", "--output", "json"])
        .into_iter()
        .map(OsString::from)
        .collect();
    let at = args.iter().position(|a| a == "--journal").unwrap() + 1;
    args[at] = journal.clone().into_os_string();
    let out = bmc_rotate(args).await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["report"]["outcome"], "rotated");
    assert!(json["journal"].as_str().unwrap().ends_with("run-\u{fffd}t\u{fffd}.jsonl"), "{json}");
    assert!(journal.exists());
    assert_eq!(stamp.holding(USER, LAB_CLOUDADMIN_PASSWORD), 3);
    let audit = std::fs::read_to_string(dir.join("audit.jsonl")).unwrap();
    assert!(audit.contains("\"outcome\":\"rotated\"") && audit.contains("run-\u{fffd}t"), "{audit}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_inventory_path_that_is_not_utf8_is_refused_before_anything_runs() {
    use std::ffi::{OsStr, OsString};
    use std::os::unix::ffi::OsStrExt;
    let (stamp, dir) = stamp("latin1-inventory").await;
    let inventory = dir.join(OsStr::from_bytes(b"inv-\xe9.toml"));
    std::fs::copy(&stamp.inventory, &inventory).unwrap();
    let mut args: Vec<OsString> =
        rotate_args(&stamp, &dir, &["--new-password", "env:CLI_CLOUD"]).into_iter().map(OsString::from).collect();
    args[2] = inventory.into_os_string();
    let out = bmc_rotate(args).await;
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("the path is not UTF-8, and the run's journal records it"),
        "{}",
        text(&out.stderr)
    );
    assert!(!dir.join("run.jsonl").exists());
    assert_eq!(stamp.holding(USER, OLD), 3);
}

/// `args` with `flag`'s value replaced.
fn with(mut args: Vec<String>, flag: &str, value: &str) -> Vec<String> {
    let at = args.iter().position(|a| a == flag).unwrap();
    args[at + 1] = value.to_owned();
    args
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_last_run_of_the_stamp_is_consulted_before_any_bmc_is_contacted() {
    let (stamp, dir) = stamp("history").await;
    let args = rotate_args(&stamp, &dir, &["--new-password", "env:CLI_CLOUD"]);
    let out = bmc_rotate(args.clone()).await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let requests = || -> usize { stamp.lab.bmcs().iter().map(|b| b.state().requests().len()).sum() };
    let before = requests();

    // The same command again (a new journal): nothing to do, and nothing is contacted.
    let again = with(args.clone(), "--journal", dir.join("again.jsonl").to_str().unwrap());
    let out = bmc_rotate(again.clone()).await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("this rotation already happened"), "{}", text(&out.stdout));
    // The replaced password as the current one: every BMC would refuse it.
    let out = bmc_rotate(with(again.clone(), "--new-password", "env:CLI_OLD")).await;
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    assert!(text(&out.stderr).contains("the current password given is the one the last run"), "{}", text(&out.stderr));
    assert_eq!(requests(), before, "no BMC was contacted");

    // The last run lost its end (as if killed before the PEP step ended): it must be resumed
    // before another rotation starts.
    let journal = dir.join("run.jsonl");
    let lines: Vec<String> = std::fs::read_to_string(&journal).unwrap().lines().map(String::from).collect();
    let cut = lines.iter().position(|l| l.contains("\"pep-started\"") || l.contains("pep_started")).unwrap();
    std::fs::write(&journal, lines[..cut].join("\n") + "\n").unwrap();
    let next = with(with(again, "--bmc-password", "env:CLI_CLOUD"), "--new-password", "env:CLI_THIRD");
    let out = bmc_rotate(next.clone()).await;
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    let err = text(&out.stderr);
    assert!(err.contains("did not finish") && err.contains("bmc-rotate resume --journal"), "{err}");
    assert_eq!(requests(), before, "no BMC was contacted");

    // A last run stopped before its first change left nothing to resume: the next one goes on.
    let unchanged = lines.iter().position(|l| l.contains("\"changing\"")).unwrap();
    std::fs::write(&journal, lines[..unchanged].join("\n") + "\n").unwrap();
    let out = bmc_rotate(next).await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(stamp.holding(USER, THIRD), 3, "rotated on to a third password");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn output_for_scripts_streams_events_and_gives_errors_and_status_as_json() {
    let (stamp, dir) = stamp("jsonl").await;
    let out = bmc_rotate(rotate_args(&stamp, &dir, &["--new-password", "env:CLI_CLOUD", "--output", "jsonl"])).await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let events: Vec<serde_json::Value> =
        text(&out.stdout).lines().map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}"))).collect();
    let phases: Vec<&str> =
        events.iter().filter(|e| e["event"] == "phase").map(|e| e["phase"].as_str().unwrap()).collect();
    assert_eq!(phases, ["preflight", "pep-check", "change", "change-last", "pep"], "{events:#?}");
    let bmcs: Vec<&serde_json::Value> = events.iter().filter(|e| e["event"] == "bmc").collect();
    assert!(bmcs.iter().any(|e| e["phase"] == "change-last" && e["ok"] == true), "{bmcs:#?}");
    let end = events.last().unwrap();
    assert_eq!((&end["event"], &end["report"]["outcome"]), (&"end".into(), &"rotated".into()), "{end}");
    assert!(end["report"]["elapsed_ms"].is_u64() && end["report"]["bmcs"][0]["duration_ms"].is_u64(), "{end}");
    assert!(!text(&out.stdout).contains(LAB_CLOUDADMIN_PASSWORD) && !text(&out.stdout).contains(OLD));

    // `status` as objects, by name.
    let journal = dir.join("run.jsonl").display().to_string();
    let status = bmc_rotate(vec!["status".into(), "--journal".into(), journal, "--output".into(), "json".into()]).await;
    let state: serde_json::Value = serde_json::from_slice(&status.stdout).unwrap();
    assert_eq!(state["bmcs"][0]["holds"], "new", "{state}");
    assert!(state["bmcs"][0]["bmc"].is_string(), "{state}");

    // Bad input under `--output json`: the error is JSON on stdout, with a stable kind.
    let args = rotate_args(&stamp, &dir, &["--new-password", "env:UNSET_FOR_SURE_42", "--output", "json"]);
    let out = bmc_rotate(with(args, "--journal", dir.join("next.jsonl").to_str().unwrap())).await;
    assert_eq!(out.status.code(), Some(2));
    let error: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!((&error["error"]["kind"], &error["error"]["exit_code"]), (&"bad-input".into(), &2.into()), "{error}");
    assert!(error["error"]["messages"][0].as_str().unwrap().contains("UNSET_FOR_SURE_42"), "{error}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resuming_a_finished_run_says_so_before_asking_for_anything() {
    let (stamp, dir) = stamp("finished").await;
    let out = bmc_rotate(rotate_args(&stamp, &dir, &["--new-password", "env:CLI_CLOUD"])).await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let requests = || -> usize { stamp.lab.bmcs().iter().map(|b| b.state().requests().len()).sum() };
    let before = requests();
    let journal = dir.join("run.jsonl");
    // Every secret left at `prompt` with no terminal, and no plugins: reading a secret or loading
    // the fleet would each fail, so a clean answer proves both came after the check.
    let out =
        bmc_rotate(vec!["resume", "--journal", journal.to_str().unwrap(), "--plugin-dir", "/nonexistent/plugins"])
            .await;
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(stderr.contains("note: the run in") && stderr.contains("already ended `rotated`"), "{stderr}");
    assert!(stderr.contains(&format!("hint: `bmc-rotate status --journal {}`", journal.display())), "{stderr}");
    assert!(!stderr.contains("error") && !stderr.contains("terminal"), "{stderr}");
    assert_eq!(requests(), before, "no BMC was contacted");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_plugins_say_where_plugins_go() {
    let (stamp, dir) = stamp("noplugins").await;
    let args = rotate_args(&stamp, &dir, &["--new-password", "env:CLI_CLOUD", "--dry-run"]);
    let out = bmc_rotate(with(args.clone(), "--plugin-dir", "/nonexistent/plugins")).await;
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("plugin directory /nonexistent/plugins does not exist"), "{stderr}");
    assert!(stderr.contains("--plugin-dir DIR") && stderr.contains("target/wasm/wasm32-wasip2/plugin/"), "{stderr}");

    // A directory without the iLO plugin: the iLO's line names the plugin id, the file and where
    // it was looked for; the BMCs whose plugins are there are not mentioned.
    let partial = dir.join("partial-plugins");
    std::fs::create_dir_all(&partial).unwrap();
    for file in ["dell_idrac.wasm", "lenovo_xcc.wasm"] {
        std::fs::copy(bmc_tests::vendor_plugin_dir().join(file), partial.join(file)).unwrap();
    }
    let out = bmc_rotate(with(args, "--plugin-dir", partial.to_str().unwrap())).await;
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    let errors: Vec<&str> = stderr.lines().filter(|l| l.starts_with("error:")).collect();
    assert_eq!(errors.len(), 1, "{stderr}");
    assert!(
        errors[0].contains("(BMC hpe-ilo6-01)")
            && errors[0].contains("needs plugin `hpe-ilo`")
            && errors[0].contains(&format!("no file in {} has that plugin id", partial.display()))
            && errors[0].contains("hpe_ilo.wasm"),
        "{stderr}"
    );
    assert_eq!(stamp.holding(USER, OLD), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_log_file_names_each_bmc_and_keeps_stderr_clean() {
    let (stamp, dir) = stamp("logged").await;
    let log = dir.join("bmc-rotate.log");
    let mut args = vec!["--log".to_owned(), "debug".to_owned(), "--log-file".to_owned(), log.display().to_string()];
    args.extend(rotate_args(&stamp, &dir, &["--new-password", "env:CLI_CLOUD", "--dry-run"]));
    let out = bmc_rotate(args).await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(!text(&out.stderr).contains("DEBUG"), "log lines on stderr: {}", text(&out.stderr));
    assert_eq!(std::fs::metadata(&log).unwrap().permissions().mode() & 0o777, 0o600);
    let lines = std::fs::read_to_string(&log).unwrap();
    assert!(!lines.contains('\u{1b}'), "colour in a log file: {lines:?}");
    for name in ["dell-idrac10-01", "hpe-ilo6-01", "lenovo-xcc3-01"] {
        let about = lines.lines().filter(|l| l.contains(&format!("bmc={name}"))).count();
        assert!(about > 0, "no line names {name}: {lines}");
    }
    let ilo = format!("bmc=hpe-ilo6-01 address={}", stamp.lab.bmc("hpe-ilo6-01").unwrap().addr());
    assert!(lines.lines().any(|l| l.contains(&ilo)), "{lines}");
    assert!(!lines.contains(OLD) && !lines.contains(LAB_CLOUDADMIN_PASSWORD), "a secret in the log");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_prompted_password_is_read_from_the_terminal_without_echo() {
    use std::io::{Read, Write};
    use std::os::fd::{FromRawFd, OwnedFd};
    use std::os::unix::process::CommandExt;
    const TYPED: &str = "Prompted-Pw-1";
    let (stamp, dir) = stamp("prompted").await;
    let (mut master, mut slave) = (-1, -1);
    // SAFETY: openpty writes two descriptors into the integers given; the rest may be null.
    let opened =
        unsafe { libc::openpty(&mut master, &mut slave, std::ptr::null_mut(), std::ptr::null(), std::ptr::null()) };
    assert_eq!(opened, 0, "openpty: {}", std::io::Error::last_os_error());
    // SAFETY: both descriptors were just opened and nothing else owns them.
    let (master, slave) = unsafe { (OwnedFd::from_raw_fd(master), OwnedFd::from_raw_fd(slave)) };
    let mut command = Command::new(env!("CARGO_BIN_EXE_bmc-rotate"));
    command
        .args(rotate_args(&stamp, &dir, &["--new-password", "prompt"]))
        .env("BMC_ROTATE_CACHE_DIR", Path::new(env!("CARGO_TARGET_TMPDIR")).join("cli-artifact-cache"))
        .env("XDG_STATE_HOME", state_home())
        .env("CLI_OLD", OLD)
        .env("CLI_CLOUD", LAB_CLOUDADMIN_PASSWORD)
        .stdin(slave.try_clone().unwrap())
        .stdout(slave.try_clone().unwrap())
        .stderr(slave.try_clone().unwrap());
    // SAFETY: only async-signal-safe calls between fork and exec: a new session whose controlling
    // terminal is the pty on stdin, which is what /dev/tty then opens.
    unsafe {
        command.pre_exec(|| {
            if libc::setsid() < 0 || libc::ioctl(0, libc::TIOCSCTTY, 0) < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let mut child = command.spawn().unwrap();
    // The parent's copies of the slave side (the Command keeps its Stdio) must go, or the master
    // never reads end-of-file when the child exits.
    drop(command);
    drop(slave);
    let mut terminal = std::fs::File::from(master);
    fn echoing(terminal: &std::fs::File) -> bool {
        use std::os::fd::AsRawFd;
        // SAFETY: termios is plain data, filled by tcgetattr on an open pty descriptor.
        let mut mode: libc::termios = unsafe { std::mem::zeroed() };
        // SAFETY: as above; `mode` is valid and writable.
        assert_eq!(unsafe { libc::tcgetattr(terminal.as_raw_fd(), &mut mode) }, 0);
        mode.c_lflag & libc::ECHO != 0
    }
    let transcript = tokio::task::spawn_blocking(move || {
        let mut seen = Vec::new();
        let mut buf = [0u8; 4096];
        let mut answered = 0;
        loop {
            // EIO once the child and every copy of the slave side are gone.
            let n = match terminal.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            seen.extend_from_slice(&buf[..n]);
            let shown = String::from_utf8_lossy(&seen).into_owned();
            let prompts = shown.matches("the new BMC password").count();
            while answered < prompts.min(2) {
                // rpassword prints the prompt, then turns echo off: type only once the terminal
                // (whose mode the master side reads too) says it is off, as a person would.
                let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
                while echoing(&terminal) {
                    assert!(std::time::Instant::now() < deadline, "echo never turned off: {shown}");
                    std::thread::sleep(std::time::Duration::from_millis(5));
                }
                terminal.write_all(format!("{TYPED}\n").as_bytes()).unwrap();
                answered += 1;
            }
        }
        String::from_utf8_lossy(&seen).into_owned()
    })
    .await
    .unwrap();
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(0), "{transcript}");
    assert!(transcript.contains("the new BMC password (again): "), "asked twice: {transcript}");
    assert!(!transcript.contains(TYPED), "the password was echoed: {transcript}");
    assert_eq!(stamp.holding(USER, TYPED), 3, "the typed password is the one set");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_new_password_is_escrowed_before_the_first_change_and_a_refusing_vault_stops_the_run() {
    let (stamp, dir) = stamp("escrow").await;
    let vault = dir.join("vault");
    std::fs::create_dir_all(&vault).unwrap();
    let stores = stamp.pep.store_count();

    // A vault that refuses: the run stops before any BMC or Azure Stack changes.
    let refusing = format!("cat > '{}/refused'; echo 'vault: 403 permission denied' >&2; exit 3", vault.display());
    let args = rotate_args(&stamp, &dir, &["--new-password", "env:CLI_THIRD", "--escrow-command", &refusing]);
    let out = bmc_rotate(args).await;
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    let err = text(&out.stderr);
    assert!(err.contains("escrow: the escrow command failed (exit status: 3): vault: 403 permission denied"), "{err}");
    assert!(err.contains("nothing was changed"), "{err}");
    assert_eq!(std::fs::read_to_string(vault.join("refused")).unwrap(), THIRD, "it was offered the password");
    assert_eq!(stamp.holding(USER, OLD), 3);
    assert_eq!(stamp.pep.store_count(), stores);
    let journal = std::fs::read_to_string(dir.join("run.jsonl")).unwrap();
    assert!(!journal.contains("\"changing\"") && !journal.contains("\"escrowed\""), "{journal}");

    // A vault that stores: the password arrives on stdin, is recorded before the first change,
    // and the vault hears that the run rotated.
    let storing = format!(
        "echo \"$BMC_ROTATE_EVENT $BMC_ROTATE_STAMP $*\" >> '{v}/calls'; \
         [ \"$BMC_ROTATE_EVENT\" != store ] || cat > '{v}/stored'",
        v = vault.display()
    );
    let args = rotate_args(&stamp, &dir, &["--new-password", "env:CLI_THIRD", "--escrow-command", &storing]);
    let out = bmc_rotate(with(args, "--journal", dir.join("escrowed.jsonl").to_str().unwrap())).await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(std::fs::read_to_string(vault.join("stored")).unwrap(), THIRD);
    assert_eq!(std::fs::read_to_string(vault.join("calls")).unwrap(), "store escrow \nrotated escrow \n");
    assert_eq!(stamp.holding(USER, THIRD), 3);
    let journal = std::fs::read_to_string(dir.join("escrowed.jsonl")).unwrap();
    let escrowed = journal.find("\"escrowed\"").expect("recorded");
    assert!(escrowed < journal.find("\"changing\"").unwrap(), "escrowed before the first change: {journal}");
    assert!(!journal.contains(THIRD) && !text(&out.stdout).contains(THIRD) && !text(&out.stderr).contains(THIRD));
    let status =
        bmc_rotate(vec!["status".into(), "--journal".into(), dir.join("escrowed.jsonl").display().to_string()]).await;
    assert!(
        text(&status.stdout).contains("escrowed:") && text(&status.stdout).contains("yes"),
        "{}",
        text(&status.stdout)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn several_stamps_run_canary_first_each_atomic_and_a_failed_canary_starts_no_other() {
    let mut labs = Vec::new();
    for name in ["many-a", "many-b", "many-c"] {
        labs.push(stamp_with(name, "dell-idrac10 = 1\nhpe-ilo6 = 1\n").await);
    }
    let work = Path::new(env!("CARGO_TARGET_TMPDIR")).join("cli-rotate-many");
    let _ = std::fs::remove_dir_all(&work);
    std::fs::create_dir_all(&work).unwrap();
    let plugins = bmc_tests::vendor_plugin_dir();
    let mut args: Vec<String> = vec!["rotate".into()];
    for (lab, _) in &labs {
        args.extend(["--inventory".into(), lab.inventory.display().to_string()]);
    }
    args.extend(
        [
            "--plugin-dir",
            plugins.to_str().unwrap(),
            "--audit-log",
            work.join("audit.jsonl").to_str().unwrap(),
            "--journal",
            work.join("{stamp}.jsonl").to_str().unwrap(),
            "--bmc-password",
            "env:CLI_OLD",
            "--new-password",
            "env:CLI_THIRD",
            // Stamp c's CloudAdmin password is wrong: its preflight fails at the PEP check, with
            // no BMC changed and no failed BMC login.
            "--cloudadmin-password",
            "env:CA_{stamp}",
            "--yes",
            "--output",
            "jsonl",
        ]
        .map(String::from),
    );
    let run = |args: &[String], extra: &[&str]| {
        let mut args = args.to_vec();
        args.extend(extra.iter().map(|s| (*s).to_owned()));
        let mut command = command(args);
        command
            .env("CA_MANY_A", LAB_CLOUDADMIN_PASSWORD)
            .env("CA_MANY_B", LAB_CLOUDADMIN_PASSWORD)
            .env("CA_MANY_C", "Not-The-CloudAdmin-1");
        command
    };
    let summary = |out: &Output| -> Vec<(String, String)> {
        let stdout = text(&out.stdout);
        for line in stdout.lines() {
            let event: serde_json::Value = serde_json::from_str(line).unwrap();
            assert!(event["stamp"].is_string() || event["event"] == "summary", "every record names its stamp: {line}");
        }
        let last: serde_json::Value = serde_json::from_str(stdout.lines().last().unwrap()).unwrap();
        last["stamps"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| (s["stamp"].as_str().unwrap().to_owned(), s["outcome"].as_str().unwrap().to_owned()))
            .collect()
    };

    // The failing stamp as canary: no other stamp starts.
    let mut canary_c = run(&args, &["--canary", "many-c"]);
    let out = tokio::task::spawn_blocking(move || canary_c.output().unwrap()).await.unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    let expected = [("many-a", "not-started"), ("many-b", "not-started"), ("many-c", "preflight-failed")];
    assert_eq!(summary(&out), expected.map(|(s, o)| (s.to_owned(), o.to_owned())));
    for (lab, _) in &labs {
        assert_eq!(lab.holding(USER, OLD), 2, "nothing changed anywhere");
    }

    // Canary a, then b and c side by side: c fails alone, the others rotate, each on its own
    // journal; the exit code is the worst stamp's.
    let mut all = run(&args, &["--stamp-concurrency", "2", "--max-failed-stamps", "2"]);
    let out = tokio::task::spawn_blocking(move || all.output().unwrap()).await.unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    let expected = [("many-a", "rotated"), ("many-b", "rotated"), ("many-c", "preflight-failed")];
    assert_eq!(summary(&out), expected.map(|(s, o)| (s.to_owned(), o.to_owned())));
    assert_eq!(labs[0].0.holding(USER, THIRD), 2);
    assert_eq!(labs[1].0.holding(USER, THIRD), 2);
    assert_eq!(labs[2].0.holding(USER, OLD), 2);
    assert!(work.join("many-a.jsonl").exists() && work.join("many-b.jsonl").exists());
    assert!(!work.join("many-c.jsonl").exists(), "preflight failed: no journal");
    let everything = [text(&out.stdout), text(&out.stderr)].concat();
    assert!(!everything.contains(THIRD) && !everything.contains(OLD) && !everything.contains("Not-The-CloudAdmin"));

    // A prompt cannot tell the stamps apart.
    let at = args.iter().position(|a| a == "env:CLI_OLD").unwrap();
    args[at] = "prompt".into();
    let mut prompt = run(&args, &[]);
    let out = tokio::task::spawn_blocking(move || prompt.output().unwrap()).await.unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("--bmc-password: with several stamps"), "{}", text(&out.stderr));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn several_stamps_show_their_runs_and_resume_each_from_its_own_journal_after_a_crash() {
    use std::os::unix::process::ExitStatusExt;
    let mut labs = Vec::new();
    for name in ["rs-a", "rs-b", "rs-c"] {
        labs.push(stamp_with(name, "dell-idrac10 = 1\nhpe-ilo6 = 1\n").await);
    }
    let work = Path::new(env!("CARGO_TARGET_TMPDIR")).join("cli-resume-many");
    let _ = std::fs::remove_dir_all(&work);
    std::fs::create_dir_all(&work).unwrap();
    let plugins = bmc_tests::vendor_plugin_dir();
    let audit = work.join("audit.jsonl");
    let inventories = |names: &[usize]| -> Vec<String> {
        names.iter().flat_map(|&i| ["--inventory".to_owned(), labs[i].0.inventory.display().to_string()]).collect()
    };
    let common: Vec<String> = [
        "--plugin-dir",
        plugins.to_str().unwrap(),
        "--audit-log",
        audit.to_str().unwrap(),
        "--bmc-password",
        "env:CLI_OLD",
        "--new-password",
        "env:CLI_THIRD",
        "--cloudadmin-password",
        "env:CLI_CLOUD",
    ]
    .map(String::from)
    .to_vec();
    let journal = work.join("{stamp}.jsonl").display().to_string();
    let run = |args: Vec<String>, crash_after: Option<u64>| {
        let mut command = command(args);
        command.env_remove("BMC_ROTATE_TEST_CRASH_AFTER_RECORD");
        if let Some(k) = crash_after {
            command.env("BMC_ROTATE_TEST_CRASH_AFTER_RECORD", k.to_string());
        }
        tokio::task::spawn_blocking(move || command.output().unwrap())
    };
    let json_lines = |out: &Output| -> Vec<serde_json::Value> {
        text(&out.stdout).lines().map(|line| serde_json::from_str(line).unwrap()).collect()
    };
    let outcomes = |stamps: &serde_json::Value| -> Vec<(String, String)> {
        stamps
            .as_array()
            .unwrap()
            .iter()
            .map(|s| (s["stamp"].as_str().unwrap().to_owned(), s["outcome"].as_str().unwrap().to_owned()))
            .collect()
    };
    let expect = |pairs: [(&str, &str); 3]| pairs.map(|(s, o)| (s.to_owned(), o.to_owned())).to_vec();

    // Stamp b rotates on its own; then a and c together, canary a killed after its third
    // journal record (mid-change): c never starts.
    let mut args = vec!["rotate".to_owned(), "--yes".into(), "--journal".into(), journal.clone()];
    args.extend(inventories(&[1]));
    args.extend(common.clone());
    let out = run(args, None).await.unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let mut args = vec!["rotate".to_owned(), "--yes".into(), "--journal".into(), journal.clone()];
    args.extend(inventories(&[0, 2]));
    args.extend(common.clone());
    let killed = run(args, Some(3)).await.unwrap();
    assert_eq!(killed.status.signal(), Some(9), "{}", text(&killed.stderr));
    assert!(!work.join("rs-c.jsonl").exists(), "c never started");

    // Status of all three, found without --journal: a's run from the record its lock kept
    // (a killed run writes no audit record), b's from the audit log, c has none.
    let mut args = vec!["status".to_owned(), "--audit-log".into(), audit.display().to_string()];
    args.extend(inventories(&[0, 1, 2]));
    args.extend(["--output".into(), "json".into()]);
    let status = run(args, None).await.unwrap();
    assert_eq!(status.status.code(), Some(4), "the worst stamp needs resume: {}", text(&status.stderr));
    let document: serde_json::Value = serde_json::from_slice(&status.stdout).unwrap();
    assert_eq!(
        outcomes(&document["stamps"]),
        expect([("rs-a", "needs-resume"), ("rs-b", "rotated"), ("rs-c", "no-run")])
    );
    assert_eq!(document["stamps"][0]["journal"], work.join("rs-a.jsonl").display().to_string());
    assert_eq!(document["stamps"][0]["status"]["stamp"], "rs-a");

    // Resume all three, two at a time: a converges, b and c say they have nothing to resume.
    // One refused login per BMC per command may leave a BMC for a second resume.
    let mut args = vec!["resume".to_owned(), "--journal".into(), journal.clone(), "--output".into(), "jsonl".into()];
    args.extend(inventories(&[0, 1, 2]));
    args.extend(common.clone());
    args.extend(["--stamp-concurrency".into(), "2".into()]);
    let mut resumed = run(args.clone(), None).await.unwrap();
    if resumed.status.code() == Some(4) {
        resumed = run(args, None).await.unwrap();
    }
    assert_eq!(resumed.status.code(), Some(0), "{}{}", text(&resumed.stdout), text(&resumed.stderr));
    let lines = json_lines(&resumed);
    for line in &lines {
        assert!(line["stamp"].is_string() || line["event"] == "summary", "every record names its stamp: {line}");
    }
    let summary = lines.last().unwrap();
    assert_eq!(
        outcomes(&summary["stamps"]),
        expect([("rs-a", "rotated"), ("rs-b", "nothing-to-resume"), ("rs-c", "nothing-to-resume")])
    );
    assert_eq!(labs[0].0.holding(USER, THIRD), 2, "a converged on the new password");
    assert_eq!(labs[0].0.pep.stored().unwrap().password.as_str(), THIRD);
    assert_eq!(labs[1].0.holding(USER, THIRD), 2);
    assert_eq!(labs[2].0.holding(USER, OLD), 2, "c was never touched");

    // Now every stamp is settled: status exits 0, in a table with one summary.
    let mut args = vec!["status".to_owned(), "--audit-log".into(), audit.display().to_string()];
    args.extend(inventories(&[0, 1, 2]));
    let status = run(args, None).await.unwrap();
    assert_eq!(status.status.code(), Some(0), "{}", text(&status.stderr));
    let table = text(&status.stdout);
    assert!(table.contains("== stamp rs-a") && table.contains("STAMP") && table.contains("no-run"), "{table}");
    let everything = [&killed, &resumed, &status].map(|o| [text(&o.stdout), text(&o.stderr)].concat()).concat();
    assert!(!everything.contains(THIRD) && !everything.contains(OLD), "no secret in any output");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pep_readiness_runs_before_any_change_and_a_stamp_not_ready_is_left_untouched() {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("cli-rotate-readiness");
    let _ = std::fs::remove_dir_all(&dir);
    // The spec's knob: the PEP's Test-AzureStack finds a fault.
    let spec = FleetSpec::parse(&format!(
        "stamp = \"readiness\"\npassword = \"{OLD}\"\nuser = \"{USER}\"\npep_not_ready = \"AzsInfraRoleSummary\"\n\
         [fleet]\ndell-idrac10 = 1\nhpe-ilo6 = 1\n"
    ))
    .unwrap();
    let stamp = StampLab::start(spec, PepConfig::default(), &dir).await.unwrap();
    let readiness_calls = |stamp: &StampLab| {
        stamp.pep.received().iter().filter(|line| line.contains("Test-AzureStack")).cloned().collect::<Vec<_>>()
    };

    // Not ready: preflight fails, no BMC and no PEP store changed, no journal.
    let args = rotate_args(&stamp, &dir, &["--new-password", "env:CLI_THIRD", "--pep-readiness", "--output", "json"]);
    let out = bmc_rotate(args.clone()).await;
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["report"]["outcome"], "preflight-failed");
    let notes = json["report"]["notes"].to_string();
    assert!(
        notes.contains("not ready for secret rotation")
            && notes.contains("Test-AzureStack -Group SecretRotationReadiness FAILED")
            && notes.contains("AzsInfraRoleSummary"),
        "{notes}"
    );
    assert_eq!(readiness_calls(&stamp), ["PS> Test-AzureStack -Group 'SecretRotationReadiness'"]);
    assert_eq!(stamp.holding(USER, OLD), 2, "nothing changed");
    assert!(stamp.pep.stored().is_none(), "Azure Stack was not told anything");
    assert!(!dir.join("run.jsonl").exists());

    // Without the flag no readiness call is made (the dry run shows it).
    let out = bmc_rotate(rotate_args(&stamp, &dir, &["--new-password", "env:CLI_THIRD", "--dry-run"])).await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(readiness_calls(&stamp).len(), 1);

    // Ready: the result is shown and the rotation goes on.
    stamp.pep.set_faults(bmc_lab::pep::PepFaults::default());
    let out = bmc_rotate(args).await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["report"]["outcome"], "rotated");
    let notes = json["report"]["notes"].to_string();
    assert!(notes.contains("PEP readiness: Test-AzureStack -Group SecretRotationReadiness passed"), "{notes}");
    assert_eq!(readiness_calls(&stamp).len(), 2);
    assert_eq!(stamp.holding(USER, THIRD), 2);

    // The PowerShell client cannot run it: refused before anything is read or contacted.
    let args = rotate_args(&stamp, &dir, &["--pep-readiness", "--pep-client", "powershell", "--dry-run"]);
    let out = bmc_rotate(args).await;
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("--pep-readiness runs with the native PEP client only"),
        "{}",
        text(&out.stderr)
    );
}

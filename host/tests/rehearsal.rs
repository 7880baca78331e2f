//! The README's rehearsal, as an operator runs it: `bmc-lab stamp` serves a stamp from a
//! directory, `bmc-rotate rotate --yes` rotates it with the inventory and secret files the lab
//! wrote, the lab restarts from the same directory — same addresses, same certificates, the
//! passwords it was left with — and `status` and a dry run work against it. Every check of what
//! the lab holds goes through its introspection endpoint, never a login.
// The lab runs in its own session and is stopped with SIGTERM (setsid, kill): Unix process control.
#![cfg(unix)]

use bmc_lab::introspect::IntrospectClient;
use std::io::BufRead;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};

const USER: &str = "azsbmc";
const INITIAL: &str = "Rehearse-Old_1";
const NEXT: &str = "Rehearse-Next_3";

/// The `bmc-lab` binary beside this package's `bmc-rotate`. A `cargo test` of the workspace
/// builds it with everything else; a test of this package alone builds it here if it is missing
/// (after changing the lab, `cargo build -p bmc-lab` first: a build here would unify features
/// differently from the workspace's and rebuild dependencies on every run).
fn bmc_lab() -> PathBuf {
    let rotate = Path::new(env!("CARGO_BIN_EXE_bmc-rotate"));
    let profile_dir = rotate.parent().expect("a target directory");
    let lab = profile_dir.join("bmc-lab");
    if lab.exists() {
        return lab;
    }
    let target_dir = profile_dir.parent().expect("a target directory");
    let mut build = Command::new(env!("CARGO"));
    build.args(["build", "--quiet", "-p", "bmc-lab", "--bin", "bmc-lab"]).env("CARGO_TARGET_DIR", target_dir);
    match profile_dir.file_name().and_then(|n| n.to_str()) {
        Some("debug") => {}
        Some("release") => {
            build.arg("--release");
        }
        Some(other) => {
            build.args(["--profile", other]);
        }
        None => {}
    }
    let status = build.status().expect("cargo runs");
    assert!(status.success(), "cannot build bmc-lab");
    lab
}

/// A `bmc-lab stamp` process.
struct Lab {
    child: Child,
    introspection: IntrospectClient,
}

impl Lab {
    /// Starts `bmc-lab stamp` on `dir` and waits until it serves.
    fn start(lab: &Path, spec: &Path, dir: &Path) -> Lab {
        let mut child = Command::new(lab)
            .args(["stamp", "--fleet"])
            .arg(spec)
            .arg("--out")
            .arg(dir)
            .args(["--introspect", "127.0.0.1:0"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .spawn()
            .expect("bmc-lab starts");
        let mut introspection = None;
        for line in std::io::BufReader::new(child.stdout.take().expect("piped")).lines() {
            let line = line.expect("bmc-lab's output");
            if let Some(addr) = line.strip_prefix("introspection http://") {
                introspection = Some(addr.trim_end_matches('/').parse::<SocketAddr>().expect("an address"));
            }
            if line.starts_with("serving") {
                let introspection = IntrospectClient::new(introspection.expect("introspection was asked for"));
                return Lab { child, introspection };
            }
        }
        panic!("bmc-lab stamp stopped before serving: {:?}", child.wait());
    }

    /// SIGTERM, as an operator's Ctrl-C: the lab saves its state and exits 0.
    fn stop(mut self) {
        // SAFETY: kill(2) on the pid of a child this test started and has not reaped.
        unsafe { libc::kill(self.child.id() as libc::pid_t, libc::SIGTERM) };
        let status = self.child.wait().expect("bmc-lab exits");
        assert!(status.success(), "bmc-lab stamp ended {status}");
    }
}

impl Drop for Lab {
    /// A failing assertion must not leave the lab running: it holds the test's output pipe open,
    /// and `cargo test | tee` would wait for it forever.
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

fn bmc_rotate(dir: &Path, args: &[&str]) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_bmc-rotate"));
    command
        .args(args)
        .env("BMC_ROTATE_CACHE_DIR", Path::new(env!("CARGO_TARGET_TMPDIR")).join("cli-artifact-cache"))
        .env("XDG_STATE_HOME", dir.join("state"))
        .env("REHEARSAL_NEXT", NEXT)
        .stdin(Stdio::null());
    // No controlling terminal, as in CI, so a run from a developer's terminal behaves the same.
    // SAFETY: setsid is async-signal-safe and touches no memory of the parent.
    unsafe {
        std::os::unix::process::CommandExt::pre_exec(&mut command, || {
            libc::setsid();
            Ok(())
        });
    }
    command.output().expect("bmc-rotate runs")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn path(p: &Path) -> &str {
    p.to_str().expect("a UTF-8 path")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stamp_rotated_restarted_and_checked_again_as_the_readme_rehearses_it() {
    let scratch = Path::new(env!("CARGO_TARGET_TMPDIR")).join("rehearsal");
    let _ = std::fs::remove_dir_all(&scratch);
    std::fs::create_dir_all(&scratch).unwrap();
    let spec = scratch.join("fleet.toml");
    std::fs::write(
        &spec,
        format!(
            "stamp = \"rehearsal\"\npassword = \"{INITIAL}\"\nuser = \"{USER}\"\n\
             [fleet]\ndell-idrac10 = 1\nhpe-ilo6 = 1\nlenovo-xcc3 = 1\n"
        ),
    )
    .unwrap();
    let dir = scratch.join("stamp");
    let lab_binary = tokio::task::spawn_blocking(bmc_lab).await.unwrap();
    let lab = Lab::start(&lab_binary, &spec, &dir);
    let secret = |name: &str| dir.join(name);
    for file in ["bmc-password", "cloudadmin-password", "state.json"].iter().filter(|f| secret(f).exists()) {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(secret(file)).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "{file}");
    }
    let holding = lab.introspection.fleet_holding(USER, INITIAL).await.unwrap();
    assert_eq!((holding.holding, holding.total), (3, 3), "{holding:?}");
    assert_eq!(lab.introspection.pep_holds(INITIAL).await.unwrap(), None, "the PEP stores nothing yet");

    let (inventory, plugins) = (dir.join("inventory.toml"), bmc_tests::vendor_plugin_dir());
    let (journal, new_password) = (scratch.join("run.jsonl"), secret("new-password"));
    let common = |current: &Path| {
        vec![
            "--inventory".to_owned(),
            path(&inventory).to_owned(),
            "--plugin-dir".to_owned(),
            path(&plugins).to_owned(),
            "--bmc-password".to_owned(),
            format!("file:{}", path(current)),
            "--cloudadmin-password".to_owned(),
            format!("file:{}", path(&secret("cloudadmin-password"))),
            "--audit-log".to_owned(),
            path(&scratch.join("audit.jsonl")).to_owned(),
        ]
    };
    let mut rotate = vec!["rotate".to_owned()];
    rotate.extend(common(&secret("bmc-password")));
    rotate.extend(
        ["--generate-password", "--password-out", path(&new_password), "--journal", path(&journal), "--yes"]
            .map(String::from),
    );
    let out = bmc_rotate(&scratch, &rotate.iter().map(String::as_str).collect::<Vec<_>>());
    assert_eq!(out.status.code(), Some(0), "{}{}", text(&out.stdout), text(&out.stderr));
    let new = std::fs::read_to_string(&new_password).unwrap().trim().to_owned();
    let holding = lab.introspection.fleet_holding(USER, &new).await.unwrap();
    assert_eq!((holding.holding, holding.total), (3, 3), "{holding:?}");
    assert_eq!(lab.introspection.pep_holds(&new).await.unwrap(), Some(true));
    let ilo = lab.introspection.bmc("hpe-ilo6-01").await.unwrap();
    assert_eq!(ilo["loopback_blocked"], false, "{ilo}");
    assert!(ilo["accounts"].as_array().unwrap().iter().all(|a| a["locked"] == false), "{ilo}");

    // Restarted from the same directory: the same inventory (addresses and pins), and the
    // passwords the rotation left.
    let before = std::fs::read_to_string(&inventory).unwrap();
    lab.stop();
    let lab = Lab::start(&lab_binary, &spec, &dir);
    assert_eq!(std::fs::read_to_string(&inventory).unwrap(), before, "the inventory still holds");
    let holding = lab.introspection.fleet_holding(USER, &new).await.unwrap();
    assert_eq!((holding.holding, holding.total), (3, 3), "{holding:?}");
    assert_eq!(lab.introspection.pep_holds(&new).await.unwrap(), Some(true));

    let status = bmc_rotate(&scratch, &["status", "--journal", path(&journal)]);
    assert_eq!(status.status.code(), Some(0), "{}", text(&status.stderr));
    assert!(text(&status.stdout).contains("rotated"), "{}", text(&status.stdout));
    let mut dry = vec!["rotate".to_owned()];
    dry.extend(common(&new_password));
    dry.extend(["--new-password", "env:REHEARSAL_NEXT", "--dry-run"].map(String::from));
    let out = bmc_rotate(&scratch, &dry.iter().map(String::as_str).collect::<Vec<_>>());
    assert_eq!(out.status.code(), Some(0), "{}{}", text(&out.stdout), text(&out.stderr));
    assert!(text(&out.stdout).contains("outcome: dry-run"), "{}", text(&out.stdout));
    let holding = lab.introspection.fleet_holding(USER, &new).await.unwrap();
    assert_eq!(holding.holding, 3, "a dry run changes nothing");
    lab.stop();
}

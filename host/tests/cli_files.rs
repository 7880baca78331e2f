//! The binary refuses files that are not regular files, or too large, at once and with a
//! message naming the path — never hanging on a FIFO or reading `/dev/zero` until the OOM killer.
// FIFOs and character devices are Unix files.
#![cfg(unix)]

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Runs the binary with `stdin` as input; kills it if it has not exited within 20 s.
fn run(args: &[&str], stdin: &str) -> (Option<i32>, String) {
    let cache = Path::new(env!("CARGO_TARGET_TMPDIR")).join("cli-artifact-cache");
    let mut child = Command::new(env!("CARGO_BIN_EXE_bmc-rotate"))
        .args(args)
        .env("BMC_ROTATE_CACHE_DIR", cache)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::{Read, Write};
    let _ = child.stdin.take().unwrap().write_all(stdin.as_bytes());
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if started.elapsed() > Duration::from_secs(20) {
            child.kill().unwrap();
            child.wait().unwrap();
            panic!("bmc-rotate {args:?} hung");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut stderr = String::new();
    child.stderr.take().unwrap().read_to_string(&mut stderr).unwrap();
    (status.code(), stderr)
}

fn scratch(tag: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("bmc-rotate-cli-files-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn mkfifo(path: &Path) {
    let status = Command::new("mkfifo").arg(path).status().unwrap();
    assert!(status.success());
}

#[test]
fn an_inventory_that_is_a_fifo_or_a_device_is_bad_input() {
    let dir = scratch("inventory");
    let fifo = dir.join("inventory.toml");
    mkfifo(&fifo);
    let fifo = fifo.to_str().unwrap();
    for args in [
        vec!["rotate", "--inventory", fifo, "--dry-run", "--bmc-password", "stdin", "--new-password", "stdin"],
        vec!["pep", "check", "--inventory", fifo, "--cloudadmin-password", "stdin"],
    ] {
        let (code, stderr) = run(&args, "Old-Password-1\nNew-Password-1\n");
        assert_eq!(code, Some(2), "{stderr}");
        assert!(
            stderr.contains(&format!("{fifo}: not a regular file (a FIFO); the inventory must be a regular file")),
            "{stderr}"
        );
    }
    let (code, stderr) = run(&["pep", "check", "--inventory", "/dev/zero", "--cloudadmin-password", "stdin"], "x\n");
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("/dev/zero: not a regular file (a character device)"), "{stderr}");
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn a_journal_or_plugin_that_is_not_a_regular_file_is_refused() {
    let dir = scratch("journal");
    let fifo = dir.join("run.jsonl");
    mkfifo(&fifo);
    let (code, stderr) = run(&["status", "--journal", fifo.to_str().unwrap()], "");
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("run.jsonl: not a regular file (a FIFO); the journal must be a regular file"), "{stderr}");
    let (code, stderr) = run(&["status", "--journal", "/dev/urandom"], "");
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("/dev/urandom: not a regular file (a character device)"), "{stderr}");
    let (code, stderr) = run(&["plugins", "inspect", "/dev/zero"], "");
    assert_eq!(code, Some(1), "{stderr}");
    assert!(stderr.contains("not a regular file (a character device); the plugin must be a regular file"), "{stderr}");
    std::fs::remove_dir_all(dir).unwrap();
}

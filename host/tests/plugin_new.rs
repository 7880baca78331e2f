//! `plugin new` as a vendor uses it: generate a crate outside the workspace, build it for
//! `wasm32-wasip2` against this tree's SDK, run its own unit tests, and pass the conformance suite
//! against the lab's standard persona, with nothing edited. Builds in `<target>/plugin-new`, which
//! later runs (and `.ci/plugin-walkthrough.sh`) find warm.

#![cfg(feature = "lab")]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn bmc_rotate(args: &[&str]) -> Output {
    let cache = Path::new(env!("CARGO_TARGET_TMPDIR")).join("cli-artifact-cache");
    Command::new(env!("CARGO_BIN_EXE_bmc-rotate")).args(args).env("BMC_ROTATE_CACHE_DIR", cache).output().unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// A fresh directory for this test's crates, outside this repository as a vendor's would be:
/// nothing of ours (`rustfmt.toml`, a workspace) is found by walking up from it.
fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("bmc-rotate-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// `cargo ARGS` in the generated crate, as a vendor runs it: nothing of this build's own cargo
/// settings leaks in (wrappers, flags, a build target), and artifacts go to `<target>/plugin-new`.
fn cargo(krate: &Path, args: &[&str]) {
    let target = Path::new(env!("CARGO_TARGET_TMPDIR")).parent().unwrap().join("plugin-new");
    let status = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()))
        .args(args)
        .current_dir(krate)
        .env("CARGO_TARGET_DIR", &target)
        .env_remove("RUSTFLAGS")
        .env_remove("CARGO_ENCODED_RUSTFLAGS")
        .env_remove("CARGO_BUILD_RUSTFLAGS")
        .env_remove("CARGO_BUILD_TARGET")
        .env_remove("RUSTC_WRAPPER")
        .env_remove("RUSTC_WORKSPACE_WRAPPER")
        .status()
        .unwrap();
    assert!(status.success(), "cargo {args:?} in {} failed (output above)", krate.display());
}

#[test]
fn a_new_plugin_builds_tests_and_passes_the_suite_as_generated() {
    let dir = scratch("plugin-new");
    let krate = dir.join("acme-bmc");
    let sdk = Path::new(env!("CARGO_MANIFEST_DIR")).join("../sdk");
    let out = bmc_rotate(&[
        "plugin",
        "new",
        "acme-bmc",
        "--vendor",
        "Acme",
        "--dir",
        krate.to_str().unwrap(),
        "--sdk-path",
        sdk.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    for file in ["Cargo.toml", ".cargo/config.toml", ".gitignore", "README.md", "src/lib.rs"] {
        assert!(krate.join(file).is_file(), "{file}");
    }
    let manifest = std::fs::read_to_string(krate.join("Cargo.toml")).unwrap();
    assert!(manifest.contains("[workspace]") && manifest.contains("[profile.plugin]"), "{manifest}");
    // The lock file of this tree: the registry crates resolve to the versions already built.
    std::fs::copy(Path::new(env!("CARGO_MANIFEST_DIR")).join("../Cargo.lock"), krate.join("Cargo.lock")).unwrap();

    // As formatted as a vendor's `cargo fmt` leaves it.
    cargo(&krate, &["fmt", "--check"]);
    cargo(&krate, &["test", "--quiet"]);
    cargo(&krate, &["build-plugin", "--quiet"]);
    let target = Path::new(env!("CARGO_TARGET_TMPDIR")).parent().unwrap().join("plugin-new");
    let wasm = target.join("wasm32-wasip2/plugin/acme_bmc.wasm");

    let out = bmc_rotate(&["plugin", "test", wasm.to_str().unwrap(), "--persona", "dmtf-generic", "--output", "json"]);
    let verdicts: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}{}", text(&out.stdout), text(&out.stderr)));
    let failed: Vec<_> = verdicts.iter().filter(|v| v["passed"] != true).collect();
    assert!(failed.is_empty(), "{failed:#?}");
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(verdicts.len(), 1 + 10 + 1, "the manifest, every scenario, another vendor: {verdicts:#?}");
    assert_eq!(verdicts[0]["persona"], "baseline", "declares only the standard's requests");

    let inspect = bmc_rotate(&["plugins", "inspect", wasm.to_str().unwrap(), "--output", "json"]);
    let info: serde_json::Value = serde_json::from_slice(&inspect.stdout).unwrap();
    assert_eq!((info["id"].as_str(), info["vendor"].as_str()), (Some("acme-bmc"), Some("Acme")));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn plugin_new_refuses_bad_names_and_occupied_directories() {
    let dir = scratch("plugin-new-refusals");
    let bad = bmc_rotate(&["plugin", "new", "Acme_BMC", "--vendor", "Acme", "--dir", dir.join("x").to_str().unwrap()]);
    assert_eq!(bad.status.code(), Some(2));
    let err = text(&bad.stderr);
    assert!(err.contains("plugin name `Acme_BMC`: it must start with a lower-case letter"), "{err}");
    assert!(!dir.join("x").exists(), "nothing written");

    let quote = bmc_rotate(&["plugin", "new", "acme", "--vendor", "Ac\"me", "--dir", dir.join("y").to_str().unwrap()]);
    assert_eq!(quote.status.code(), Some(2));
    assert!(text(&quote.stderr).contains("--vendor `Ac\"me`: `\\\"` is not allowed"), "{}", text(&quote.stderr));

    std::fs::write(dir.join("keep.txt"), "mine").unwrap();
    let occupied = bmc_rotate(&["plugin", "new", "acme", "--vendor", "Acme", "--dir", dir.to_str().unwrap()]);
    assert_eq!(occupied.status.code(), Some(2));
    assert!(text(&occupied.stderr).contains("exists and is not empty; nothing was written"));
    assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 1, "only keep.txt");

    let sdk = bmc_rotate(&[
        "plugin",
        "new",
        "acme",
        "--vendor",
        "Acme",
        "--dir",
        dir.join("z").to_str().unwrap(),
        "--sdk-path",
        env!("CARGO_MANIFEST_DIR"),
    ]);
    assert_eq!(sdk.status.code(), Some(2));
    assert!(text(&sdk.stderr).contains("not bmc-plugin-sdk"), "{}", text(&sdk.stderr));
    std::fs::remove_dir_all(&dir).unwrap();
}

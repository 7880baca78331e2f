//! Builds every wasm component the tests load, once per test run: the guests under
//! `tests/guests/` and the vendor plugins under `plugins/`, for `wasm32-wasip2` with the
//! size-optimised `plugin` profile, into `target/wasm`. Installs the wasm target if missing.

use std::path::{Path, PathBuf};
use std::process::Command;

#[path = "../host/src/plugin_build.rs"]
mod plugin_build;

const COMPONENTS: &[&str] = &[
    "dell-idrac",
    "hpe-ilo",
    "lenovo-xcc",
    "generic-redfish",
    "guest-sample",
    "guest-hostile",
    "guest-future-api",
    "guest-forbidden-imports",
    "guest-todo",
    "guest-base-world",
];

fn main() {
    let manifest = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").unwrap());
    let workspace = manifest.parent().unwrap().to_owned();
    for dir in ["sdk", "plugins", "tests/guests", "Cargo.lock"] {
        println!("cargo:rerun-if-changed={}", workspace.join(dir).display());
    }
    println!("cargo:rerun-if-changed={}", workspace.join("host/src/plugin_build.rs").display());
    println!("cargo:rerun-if-env-changed=CARGO_HOME");
    println!("cargo:rerun-if-env-changed=BMC_TEST_WASM_TARGET");
    // `BMC_TEST_WASM_TARGET` keeps two checkouts that share a target directory (worktrees) from
    // overwriting each other's components.
    let target_dir = match std::env::var_os("BMC_TEST_WASM_TARGET") {
        Some(dir) => PathBuf::from(dir),
        None => std::env::var_os("CARGO_TARGET_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| workspace.join("target"))
            .join("wasm"),
    };
    ensure_wasm_target();

    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    // The same command `bmc-rotate demo` runs: path-independent output, so the vendor plugins
    // built here are byte for byte the ones the built-in profiles pin (`tests/tests/pins.rs`).
    let mut build = plugin_build::command(&cargo, &workspace, &target_dir, COMPONENTS);
    let status = build.status().expect("cannot run cargo to build the wasm components");
    assert!(status.success(), "building the wasm components failed (see the cargo output above)");
    let out = target_dir.join(plugin_build::TARGET).join(plugin_build::PROFILE);
    println!("cargo:rustc-env=BMC_TEST_WASM_DIR={}", out.display());
}

/// `rustup target add` unless the toolchain already has the target's standard library.
fn ensure_wasm_target() {
    let rustc = std::env::var_os("RUSTC").unwrap_or_else(|| "rustc".into());
    let sysroot = Command::new(&rustc).args(["--print", "sysroot"]).output().expect("cannot run rustc");
    let sysroot = String::from_utf8_lossy(&sysroot.stdout).trim().to_owned();
    if Path::new(&sysroot).join("lib/rustlib/wasm32-wasip2").exists() {
        return;
    }
    let status = Command::new("rustup").args(["target", "add", "wasm32-wasip2"]).status();
    assert!(
        status.is_ok_and(|s| s.success()),
        "the wasm32-wasip2 target is missing and `rustup target add wasm32-wasip2` failed"
    );
}

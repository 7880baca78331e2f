//! How this source tree builds its wasm components, byte for byte the same wherever it is checked
//! out: the built-in hardware profiles pin the SHA-256 of the vendor plugins, so the build that
//! produces them must not depend on the machine's paths.
//!
//! What would otherwise end up in a component: the panic locations (`file:line`) of code from
//! the crates.io registry, as absolute paths under `$CARGO_HOME` (workspace crates are passed to
//! rustc as relative paths, and the standard library's are already `/rustc/<commit>/…`). So the
//! build remaps `$CARGO_HOME`, the workspace and the target directory to fixed names with
//! `--remap-path-prefix`. The toolchain (`rust-toolchain.toml`) and `Cargo.lock` stay pinned.
//!
//! One file for both users: the host's `demo` (through this module) and `tests/build.rs` (which
//! includes it with `#[path]`, since a build script cannot depend on the host library), so the
//! plugins the tests check against the pins are the ones `demo` runs.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The target every component is built for.
pub const TARGET: &str = "wasm32-wasip2";
/// The cargo profile (workspace `Cargo.toml`: size-optimised, LTO, one codegen unit, stripped).
pub const PROFILE: &str = "plugin";

/// `$CARGO_HOME` as cargo resolves it: the variable, else `~/.cargo`.
fn cargo_home() -> Option<PathBuf> {
    std::env::var_os("CARGO_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cargo")))
}

/// The rustc flags that take the machine's paths out of the output, for `CARGO_ENCODED_RUSTFLAGS`
/// (flags separated by 0x1f). When several prefixes match, rustc applies the last one given, so
/// the longer, more specific ones come last.
pub fn remap_flags(workspace: &Path, target_dir: &Path) -> String {
    let mut remaps: Vec<(PathBuf, &str)> = vec![(workspace.to_owned(), "/bmc-rotate")];
    if let Some(home) = cargo_home() {
        if let Ok(real) = home.canonicalize()
            && real != home
        {
            remaps.push((real, "/cargo-home"));
        }
        remaps.push((home, "/cargo-home"));
    }
    remaps.push((target_dir.to_owned(), "/target"));
    remaps.sort_by_key(|(from, _)| from.as_os_str().len());
    remaps
        .iter()
        .map(|(from, to)| format!("--remap-path-prefix={}={to}", from.display()))
        .collect::<Vec<_>>()
        .join("\u{1f}")
}

/// `cargo build --target wasm32-wasip2 --profile plugin -p …` for `packages`, run in `workspace`
/// with artifacts under `target_dir` (`<target_dir>/wasm32-wasip2/plugin/*.wasm`). What the
/// calling build set for itself (rustc wrappers, host rustflags, a build target) is not passed on.
pub fn command(cargo: &OsStr, workspace: &Path, target_dir: &Path, packages: &[&str]) -> Command {
    let mut build = Command::new(cargo);
    build
        .current_dir(workspace)
        .args(["build", "--target", TARGET, "--profile", PROFILE])
        .args(packages.iter().flat_map(|p| ["-p", p]))
        .env("CARGO_TARGET_DIR", target_dir)
        .env("CARGO_ENCODED_RUSTFLAGS", remap_flags(workspace, target_dir))
        .env_remove("RUSTC_WORKSPACE_WRAPPER")
        .env_remove("RUSTC_WRAPPER")
        .env_remove("RUSTFLAGS")
        .env_remove("CARGO_BUILD_RUSTFLAGS")
        .env_remove("CARGO_BUILD_TARGET");
    build
}

//! The built-in hardware profiles pin the SHA-256 of the vendor plugins this tree builds (the
//! reproducible build of `host/src/plugin_build.rs`, run by this crate's build script). This is
//! the check that the pins and the build agree: it fails naming each profile to update and the
//! value to put in it. `BMC_ROTATE_UPDATE_PINS=1 cargo test -p bmc-tests --test pins` writes the
//! new values into `host/profiles/*.toml` instead (then rebuild: the profiles are compiled in).

use bmc_rotate::fleet::profiles::Profiles;
use bmc_tests::wasm;
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};

fn profile_file(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace")
        .join("host/profiles")
        .join(format!("{name}.toml"))
}

/// `text` with its `plugin_sha256` line set to `pin` (added after `plugin_version` if missing).
fn with_pin(text: &str, pin: &str) -> String {
    let line = format!("plugin_sha256 = \"{pin}\"");
    let has_pin = text.lines().any(|l| l.starts_with("plugin_sha256"));
    let mut out = String::new();
    for l in text.lines() {
        if has_pin && l.starts_with("plugin_sha256") {
            out.push_str(&line);
        } else {
            out.push_str(l);
            if !has_pin && l.starts_with("plugin_version") {
                out.push('\n');
                out.push_str(&line);
            }
        }
        out.push('\n');
    }
    out
}

#[test]
fn built_in_profiles_pin_the_plugins_this_tree_builds() {
    let update = std::env::var_os("BMC_ROTATE_UPDATE_PINS").is_some_and(|v| v == "1");
    let mut wrong = Vec::new();
    let mut pinned_ids = std::collections::BTreeSet::new();
    for profile in Profiles::built_in().iter() {
        let file = wasm(&profile.plugin.replace('-', "_"));
        let bytes = std::fs::read(&file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
        let built = hex::encode(Sha256::digest(&bytes));
        pinned_ids.insert(profile.plugin.clone());
        if profile.plugin_sha256.as_deref() == Some(built.as_str()) {
            continue;
        }
        let path = profile_file(&profile.name);
        if update {
            let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            std::fs::write(&path, with_pin(&text, &built)).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            eprintln!("updated {}: plugin_sha256 = \"{built}\"", path.display());
            continue;
        }
        wrong.push(format!(
            "built-in profile `{}` pins plugin `{}` sha256 {}, but this tree builds {} with sha256 {built}: \
             set `plugin_sha256 = \"{built}\"` in {}",
            profile.name,
            profile.plugin,
            profile.plugin_sha256.as_deref().unwrap_or("(none)"),
            file.display(),
            path.display(),
        ));
    }
    assert_eq!(
        pinned_ids.into_iter().collect::<Vec<_>>(),
        ["dell-idrac", "generic-redfish", "hpe-ilo", "lenovo-xcc"],
        "every vendor plugin (and the generic one) is named by a built-in profile"
    );
    assert!(
        wrong.is_empty(),
        "the built-in profiles' plugin pins do not match the plugins this tree builds (a plugin, the SDK, \
         Cargo.lock, the toolchain or the build flags changed). Update each pin (or run \
         `BMC_ROTATE_UPDATE_PINS=1 cargo test -p bmc-tests --test pins`, then rebuild):\n{}",
        wrong.join("\n")
    );
}

#[test]
fn a_pin_is_written_in_place_or_after_the_version() {
    let pin = "ab".repeat(32);
    let pinned = "plugin = \"x\"\nplugin_version = \"^0.1\"\nplugin_sha256 = \"00\"\nfamilies = []\n";
    assert_eq!(
        with_pin(pinned, &pin),
        format!("plugin = \"x\"\nplugin_version = \"^0.1\"\nplugin_sha256 = \"{pin}\"\nfamilies = []\n")
    );
    let unpinned = "plugin = \"x\"\nplugin_version = \"^0.1\"\nfamilies = []\n";
    assert_eq!(
        with_pin(unpinned, &pin),
        format!("plugin = \"x\"\nplugin_version = \"^0.1\"\nplugin_sha256 = \"{pin}\"\nfamilies = []\n")
    );
}

//! The compiled-plugin cache with a real plugin, as `plugins inspect` and `rotate` use it: a
//! genuine entry is reused by the next process, and an entry planted under a stock plugin's
//! SHA-256 (wasmtime's own serialisation of it, which `deserialize` would accept) is refused with
//! a warning naming the file, the plugin is recompiled, and the entry is replaced.
// Also run under Wine (.ci/windows.sh), where the cache directory is checked by its DACL.

use bmc_rotate::runtime::{Runtime, RuntimeConfig};
use bmc_tests::{traced, wasm};
use std::path::{Path, PathBuf};

/// The MAC header `store` writes: magic (8 bytes) and HMAC-SHA256 tag (32 bytes).
const HEADER_LEN: usize = 40;

/// A fresh cache directory's path. On Windows in the user's private `%TEMP%`: under Wine a new
/// directory takes its security from its parent's Unix mode, and the target directory's is 755.
fn cache_dir(name: &str) -> PathBuf {
    let base = if cfg!(windows) { std::env::temp_dir() } else { PathBuf::from(env!("CARGO_TARGET_TMPDIR")) };
    let dir = base.join(format!("cache-test-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

/// Loads `guest_sample` with a fresh runtime (a new process, as far as the cache is concerned):
/// whether it came from the cache, and what was logged.
fn load(dir: &Path) -> (bool, String) {
    let config = RuntimeConfig { cache_dir: Some(dir.to_owned()), max_memory: 32 << 20, ..RuntimeConfig::default() };
    traced(|| {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(async {
            let runtime = Runtime::new(config).unwrap();
            assert!(runtime.cache().is_some(), "the cache directory is usable");
            runtime.load_file(&wasm("guest_sample")).await.unwrap().from_cache
        })
    })
}

/// The one entry for the plugin.
fn entry(dir: &Path) -> PathBuf {
    let entries: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "cwasm"))
        .collect();
    assert_eq!(entries.len(), 1, "{entries:?}");
    entries.into_iter().next().unwrap()
}

#[test]
fn a_genuine_entry_is_reused_by_the_next_run() {
    let dir = cache_dir("roundtrip");
    assert!(!load(&dir).0, "first load compiles");
    let (from_cache, log) = load(&dir);
    assert!(from_cache, "second load comes from the cache");
    assert!(!log.contains("WARN"), "{log}");
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn a_planted_entry_is_refused_recompiled_and_replaced() {
    let dir = cache_dir("planted");
    load(&dir);
    let path = entry(&dir);
    let genuine = std::fs::read(&path).unwrap();

    // What the attacker planted: a bare .cwasm (here, the real artifact without its MAC).
    std::fs::write(&path, &genuine[HEADER_LEN..]).unwrap();
    let (from_cache, log) = load(&dir);
    assert!(!from_cache, "a planted entry must not load");
    assert!(log.contains(&path.display().to_string()) && log.contains("no MAC header"), "{log}");
    assert_eq!(std::fs::read(&path).unwrap().len(), genuine.len(), "replaced by a fresh entry");
    assert!(load(&dir).0, "the fresh entry loads");

    // The genuine artifact under a forged tag.
    let mut forged = std::fs::read(&path).unwrap();
    forged[8..HEADER_LEN].fill(0);
    std::fs::write(&path, &forged).unwrap();
    let (from_cache, log) = load(&dir);
    assert!(!from_cache);
    assert!(log.contains("MAC does not match"), "{log}");
    assert!(load(&dir).0);
    std::fs::remove_dir_all(dir).unwrap();
}

/// Unix: Wine follows a Unix symbolic link instead of showing a reparse point.
#[cfg(unix)]
#[test]
fn a_symlinked_cache_directory_is_not_used() {
    let dir = cache_dir("link");
    std::fs::create_dir(&dir).unwrap();
    let real = dir.join("real");
    load(&real);
    let link = dir.join("link");
    std::os::unix::fs::symlink(&real, &link).unwrap();
    let config = RuntimeConfig { cache_dir: Some(link.clone()), max_memory: 32 << 20, ..RuntimeConfig::default() };
    let (runtime, log) = traced(|| Runtime::new(config).unwrap());
    assert!(runtime.cache().is_none(), "a symbolic link as the cache directory is refused");
    assert!(log.contains(&format!("{} is a symbolic link", link.display())), "{log}");
    std::fs::remove_dir_all(dir).unwrap();
}

//! Every default location, in one place: the XDG base directories (with the usual fallbacks
//! under `$HOME`), each with a `bmc-rotate` subdirectory. A flag or environment variable the
//! operator gives always wins; these are only what is used when none is given. `None` means
//! neither the XDG variable nor `$HOME` is set: the caller asks for the flag.

use std::path::{Path, PathBuf};

/// `$XDG_<KIND>_HOME/bmc-rotate`, else `$HOME/<fallback>/bmc-rotate`. An empty or relative XDG
/// value is ignored, as the XDG specification asks. On Windows every kind is
/// `%LOCALAPPDATA%\bmc-rotate` (local, not roaming: journals and locks belong to this machine).
#[cfg(windows)]
fn base(_xdg: &str, _fallback: &str) -> Option<PathBuf> {
    let local = std::env::var_os("LOCALAPPDATA").map(PathBuf::from).filter(|p| p.is_absolute())?;
    Some(local.join("bmc-rotate"))
}

#[cfg(unix)]
fn base(xdg: &str, fallback: &str) -> Option<PathBuf> {
    let from_xdg = std::env::var_os(xdg).map(PathBuf::from).filter(|p| p.is_absolute());
    let base = from_xdg.or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(fallback)))?;
    Some(base.join("bmc-rotate"))
}

/// Compiled plugins: `$XDG_CACHE_HOME/bmc-rotate/wasm` (`~/.cache/bmc-rotate/wasm`);
/// `%LOCALAPPDATA%\bmc-rotate\wasm` on Windows.
pub fn plugin_cache() -> Option<PathBuf> {
    base("XDG_CACHE_HOME", ".cache").map(|d| d.join("wasm"))
}

/// The plugin directories searched when the operator names none, in order: the release's own,
/// `PREFIX/lib/bmc-rotate/plugins` beside the running binary (`PREFIX/bin/bmc-rotate`: `/usr/bin`
/// finds `/usr/lib/bmc-rotate/plugins`), when that directory exists; then the user's
/// ([`user_plugins`]), where `plugins install` puts third-party plugins.
///
/// Both are read because a packaged release's directory belongs to the package manager (root),
/// while an operator installs a vendor's plugin as themselves. Reading both cannot make a run
/// take an unexpected file: every built-in and installed profile pins its plugin's digest, and an
/// unpinned profile with two files of one id is refused (`fleet::members::choose`).
pub fn plugin_dirs() -> Vec<PathBuf> {
    let exe = std::env::current_exe().ok();
    let mut dirs: Vec<PathBuf> = exe.as_deref().and_then(beside_binary).into_iter().collect();
    // One directory reached both ways (XDG_DATA_HOME pointing into the release) is read once:
    // read twice, each plugin would be its own duplicate.
    if let Some(user) = user_plugins()
        && !dirs.iter().any(|d| same_dir(d, &user))
    {
        dirs.push(user);
    }
    dirs
}

fn same_dir(a: &Path, b: &Path) -> bool {
    a == b || matches!((a.canonicalize(), b.canonicalize()), (Ok(a), Ok(b)) if a == b)
}

/// The user's plugins: `$XDG_DATA_HOME/bmc-rotate/plugins` (`~/.local/share/bmc-rotate/plugins`),
/// where `plugins install` writes and a binary installed alone (`cargo install`) finds plugins.
pub fn user_plugins() -> Option<PathBuf> {
    base("XDG_DATA_HOME", ".local/share").map(|d| d.join("plugins"))
}

/// `PREFIX/lib/bmc-rotate/plugins` for the binary `PREFIX/bin/NAME`, if that is a directory.
/// `current_exe` has resolved symbolic links, so a link to an installed binary finds its plugins.
/// On Windows, the release's `plugins` folder beside `bmc-rotate.exe`.
fn beside_binary(exe: &Path) -> Option<PathBuf> {
    let dir = if cfg!(windows) {
        exe.parent()?.join("plugins")
    } else {
        exe.parent()?.parent()?.join("lib/bmc-rotate/plugins")
    };
    dir.is_dir().then_some(dir)
}

/// The user's hardware profiles: `$XDG_CONFIG_HOME/bmc-rotate/profiles`
/// (`~/.config/bmc-rotate/profiles`).
pub fn profiles() -> Option<PathBuf> {
    base("XDG_CONFIG_HOME", ".config").map(|d| d.join("profiles"))
}

/// Journals and the audit log live here: `$XDG_STATE_HOME/bmc-rotate` (`~/.local/state/bmc-rotate`).
pub fn state() -> Option<PathBuf> {
    base("XDG_STATE_HOME", ".local/state")
}

/// A new run's journal: `<state>/journals/STAMP-MILLIS.jsonl`.
pub fn journal(stamp: &str, now_ms: u64) -> Option<PathBuf> {
    state().map(|d| d.join("journals").join(format!("{stamp}-{now_ms}.jsonl")))
}

/// The audit log: `<state>/audit.jsonl`.
pub fn audit_log() -> Option<PathBuf> {
    state().map(|d| d.join("audit.jsonl"))
}

/// Stamp locks (`fleet::lock`): `<state>/locks/STAMP.lock`.
pub fn locks() -> Option<PathBuf> {
    state().map(|d| d.join("locks"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plugins_beside_the_binary_are_found_from_its_prefix_and_only_when_present() {
        let root = std::env::temp_dir().join(format!("bmc-rotate-paths-{}", std::process::id()));
        let (exe, dir) = if cfg!(windows) {
            (root.join("bmc-rotate/bmc-rotate.exe"), root.join("bmc-rotate/plugins"))
        } else {
            (root.join("usr/bin/bmc-rotate"), root.join("usr/lib/bmc-rotate/plugins"))
        };
        assert_eq!(beside_binary(&exe), None, "no plugin directory: nothing beside the binary");
        std::fs::create_dir_all(&dir).unwrap();
        assert_eq!(beside_binary(&exe), Some(dir));
        assert_eq!(beside_binary(Path::new("/bmc-rotate")), None, "a binary at / has no prefix");
        std::fs::remove_dir_all(&root).unwrap();
    }
}

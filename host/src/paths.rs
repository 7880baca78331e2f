//! Every default location, in one place: the XDG base directories (with the usual fallbacks
//! under `$HOME`), each with a `bmc-rotate` subdirectory. A flag or environment variable the
//! operator gives always wins; these are only what is used when none is given. `None` means
//! neither the XDG variable nor `$HOME` is set: the caller asks for the flag.

use std::path::PathBuf;

/// `$XDG_<KIND>_HOME/bmc-rotate`, else `$HOME/<fallback>/bmc-rotate`. An empty or relative XDG
/// value is ignored, as the XDG specification asks.
fn base(xdg: &str, fallback: &str) -> Option<PathBuf> {
    let from_xdg = std::env::var_os(xdg).map(PathBuf::from).filter(|p| p.is_absolute());
    let base = from_xdg.or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(fallback)))?;
    Some(base.join("bmc-rotate"))
}

/// Compiled plugins: `$XDG_CACHE_HOME/bmc-rotate/wasm` (`~/.cache/bmc-rotate/wasm`).
pub fn plugin_cache() -> Option<PathBuf> {
    base("XDG_CACHE_HOME", ".cache").map(|d| d.join("wasm"))
}

/// Installed plugins: `$XDG_DATA_HOME/bmc-rotate/plugins` (`~/.local/share/bmc-rotate/plugins`).
pub fn plugins() -> Option<PathBuf> {
    base("XDG_DATA_HOME", ".local/share").map(|d| d.join("plugins"))
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

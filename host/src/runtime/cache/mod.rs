//! A persistent cache of compiled plugins, so a plugin is compiled once per host build rather
//! than once per run.
//!
//! Entries are native code: `Component::deserialize` trusts its input, so a planted entry would
//! run with the operator's rights, whatever the plugin's SHA-256 pin says. What stands between a
//! file on disk and `deserialize`:
//!
//! 1. **A verified directory, held open** (the platform's `Dir`). Unix (`unix.rs`): the cache
//!    directory is reached from `/` one component at a time with `openat(O_DIRECTORY |
//!    O_NOFOLLOW)`, each component checked with `fstat` on the descriptor just opened: every
//!    ancestor is owned by this user or root and not writable by group or others unless sticky
//!    (`/tmp`); the cache directory itself is owned by this user and not writable by group or
//!    others, and is never a symbolic link. A symbolic link on the way (not the last component) is
//!    followed only if it lies in an already-verified directory and belongs to this user or root,
//!    and its target is walked with the same rule. Windows (`windows.rs`): the directory (created
//!    with an owner-only DACL) is opened without following a reparse point and without sharing
//!    delete access, so it cannot be renamed or removed while held, and refused unless its owner is
//!    this user (or SYSTEM, Administrators) and its DACL grants nobody else anything — the rule for
//!    secret files. Every later file operation is relative to that descriptor or handle, so
//!    swapping a path component after the check changes nothing.
//! 2. **Each entry opened without following links** (`O_NOFOLLOW`, `O_NONBLOCK` so a FIFO cannot
//!    stall the load; `FILE_OPEN_REPARSE_POINT` on Windows), checked on its descriptor (a regular
//!    file of this user, not writable by group or others; on Windows, private by the same DACL
//!    rule), of sane size, and read from it into memory; `deserialize` gets those bytes, never a
//!    path.
//! 3. **A MAC before deserialize.** Each entry is `MAGIC ‖ tag ‖ artifact`, where `tag` is
//!    HMAC-SHA256 over (a domain string, the plugin's SHA-256, the engine key, the artifact's
//!    length, the artifact) under a random 32-byte per-user key kept in `cache.key` (private:
//!    mode 0600, or an owner-only DACL; written to a fresh temporary file and linked or renamed
//!    in) inside the verified directory. The engine key is a SHA-256 of the host's version and
//!    wasmtime's precompile compatibility hash. An entry whose tag does not verify (planted,
//!    copied from another user or plugin, truncated, left by an older host) is never deserialized.
//!
//! Any failed check: a warning naming the path and the reason, the entry is removed (from the
//! verified directory only), the plugin is recompiled and the fresh artifact replaces it
//! atomically (temporary file, `fsync`, rename). A key that is not private or not 32 bytes is
//! replaced with a fresh one (so every entry is recompiled). A cache directory that fails its
//! check is not used at all (compile every time).
//!
//! Residual risk: anything running as this user (or root, SYSTEM, an administrator) can read the
//! key and write the directory, so it can forge an entry; it could as well replace the
//! `bmc-rotate` binary or the operator's shell profile, so the cache adds no new way in for it.

use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};
use std::hash::{Hash, Hasher};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use wasmtime::Engine;
use wasmtime::component::Component;
use zeroize::Zeroizing;

#[cfg(unix)]
mod unix;
#[cfg(unix)]
use unix::{Dir, Temporary};
#[cfg(windows)]
mod windows;
#[cfg(windows)]
use windows::{Dir, Temporary};

/// The first bytes of every entry (format version 1).
const MAGIC: &[u8; 8] = b"BMCRCW\x00\x01";
/// HMAC-SHA256 output.
const TAG_LEN: usize = 32;
const HEADER_LEN: usize = MAGIC.len() + TAG_LEN;
/// Larger artifacts are neither stored nor read (compiled plugins are well under 10 MiB).
const MAX_ARTIFACT: u64 = 256 << 20;
/// The per-user MAC key, inside the cache directory.
const KEY_FILE: &str = "cache.key";
const KEY_LEN: usize = 32;
const DOMAIN: &[u8] = b"bmc-rotate compiled-plugin cache v1\0";

type HmacSha256 = Hmac<Sha256>;

/// The MAC key; never printed.
struct Key(Zeroizing<[u8; KEY_LEN]>);

impl std::fmt::Debug for Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Key(..)")
    }
}

/// An on-disk cache of precompiled components.
#[derive(Clone, Debug)]
pub struct ArtifactCache {
    dir: PathBuf,
    /// The verified cache directory, held open: every file operation is relative to it.
    handle: Arc<Dir>,
    key: Arc<Key>,
    engine_key: [u8; 32],
}

impl ArtifactCache {
    /// Opens (creating missing components private to this user) a cache directory and its MAC
    /// key, refusing a directory that anyone but this user (or root, for ancestors) could change.
    pub fn open(dir: &Path, engine: &Engine) -> Result<ArtifactCache, String> {
        let refused = |reason: String| {
            format!(
                "compiled-plugin cache {} not used: {reason}. Compiled plugins are native code, so the cache must \
                 be private to this user; plugins are compiled on every run instead",
                dir.display()
            )
        };
        let handle = Dir::open(dir).map_err(refused)?;
        let key = load_or_create_key(&handle, dir).map_err(refused)?;
        let mut hasher = ShaHasher(Sha256::new());
        hasher.0.update(b"bmc-rotate engine\0");
        hasher.0.update(env!("CARGO_PKG_VERSION").as_bytes());
        hasher.0.update(b"\0");
        engine.precompile_compatibility_hash().hash(&mut hasher);
        let engine_key: [u8; 32] = hasher.0.finalize().into();
        Ok(ArtifactCache { dir: dir.to_owned(), handle: Arc::new(handle), key: Arc::new(key), engine_key })
    }

    /// The cache directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// An entry's file name: the plugin's digest and a short form of the engine key, so hosts
    /// and engine configurations do not evict each other.
    fn file_name(&self, sha256: &str) -> String {
        format!("{sha256}-{}.cwasm", hex::encode(&self.engine_key[..8]))
    }

    fn tag(&self, digest: &[u8; 32], artifact: &[u8]) -> HmacSha256 {
        let mut mac = HmacSha256::new_from_slice(&self.key.0[..]).expect("HMAC takes any key length");
        mac.update(DOMAIN);
        mac.update(digest);
        mac.update(&self.engine_key);
        mac.update(&(artifact.len() as u64).to_le_bytes());
        mac.update(artifact);
        mac
    }

    /// The entry for `sha256`, read from the verified directory, with its tag checked: `Ok(None)`
    /// if there is none; `Err` with the reason if there is one that must not be used. On `Ok`,
    /// the artifact starts at [`HEADER_LEN`].
    fn read_verified(&self, sha256: &str) -> Result<Option<Vec<u8>>, Refusal> {
        self.handle.recheck().map_err(Refusal::Dir)?;
        let digest = parse_digest(sha256).ok_or_else(|| Refusal::Entry("not a SHA-256 digest".into()))?;
        let file = match self.handle.open_file(&self.file_name(sha256)) {
            Ok(file) => file,
            Err(Open::NotFound) => return Ok(None),
            Err(Open::Link(reason)) => return Err(Refusal::Entry(reason.into())),
            Err(Open::Failed(e)) => return Err(Refusal::Entry(format!("cannot open it: {e}"))),
        };
        let len =
            self.handle.check_file(&file, false).map_err(|e| Refusal::Entry(e.to_string()))?.map_err(Refusal::Entry)?;
        if len < HEADER_LEN as u64 || len > MAX_ARTIFACT + HEADER_LEN as u64 {
            return Err(Refusal::Entry(format!("its size ({len} bytes) is out of range")));
        }
        let mut bytes = Vec::with_capacity(len as usize);
        file.take(MAX_ARTIFACT + HEADER_LEN as u64)
            .read_to_end(&mut bytes)
            .map_err(|e| Refusal::Entry(format!("cannot read it: {e}")))?;
        if bytes.len() < HEADER_LEN || bytes[..MAGIC.len()] != MAGIC[..] {
            return Err(Refusal::Entry("it is not a bmc-rotate cache entry (no MAC header)".into()));
        }
        let (tag, artifact) = bytes[MAGIC.len()..].split_at(TAG_LEN);
        if self.tag(&digest, artifact).verify_slice(tag).is_err() {
            return Err(Refusal::Entry(
                "its MAC does not match this user's cache key, the plugin's SHA-256 and this engine \
                 (planted, copied, or written by another host build)"
                    .into(),
            ));
        }
        Ok(Some(bytes))
    }

    /// The compiled component for the plugin with this SHA-256 (lowercase hex), if a verified
    /// entry exists. A refused entry is logged, removed and reported as a miss.
    pub fn load(&self, engine: &Engine, sha256: &str) -> Option<Component> {
        let name = self.file_name(sha256);
        let path = self.dir.join(&name);
        let bytes = match self.read_verified(sha256) {
            Ok(bytes) => bytes?,
            Err(Refusal::Dir(reason)) => {
                tracing::warn!(dir = %self.dir.display(), %reason, "compiled-plugin cache no longer private; not used");
                return None;
            }
            Err(Refusal::Entry(reason)) => {
                tracing::warn!(path = %path.display(), %reason, "refused a compiled-plugin cache entry; recompiling");
                self.remove(&name);
                return None;
            }
        };
        // SAFETY: `deserialize` runs native code from its input. These bytes were read from a
        // descriptor opened without following links, in a directory verified (and held open) to
        // be changeable only by this user or root (SYSTEM, Administrators on Windows), and carry
        // an HMAC under this user's key over the plugin's SHA-256, this engine's configuration and
        // the bytes themselves: only `store` (or something already running as this user) can have
        // written them.
        match unsafe { Component::deserialize(engine, &bytes[HEADER_LEN..]) } {
            Ok(component) => Some(component),
            Err(e) => {
                tracing::warn!(path = %path.display(), reason = %e, "unusable compiled-plugin cache entry; recompiling");
                self.remove(&name);
                None
            }
        }
    }

    /// Removes an entry (or whatever sits under its name) from the verified directory.
    fn remove(&self, name: &str) {
        let _ = self.handle.remove(name);
    }

    /// Stores a compiled component, replacing any entry atomically; failures only cost a
    /// recompile next time.
    pub fn store(&self, sha256: &str, component: &Component) {
        if let Err(e) = self.try_store(sha256, component) {
            tracing::warn!(dir = %self.dir.display(), error = %e, "could not cache a compiled plugin");
        }
    }

    fn try_store(&self, sha256: &str, component: &Component) -> Result<(), String> {
        self.handle.recheck()?;
        let digest = parse_digest(sha256).ok_or("not a SHA-256 digest")?;
        let artifact = component.serialize().map_err(|e| e.to_string())?;
        if artifact.len() as u64 > MAX_ARTIFACT {
            return Err(format!("the artifact is {} bytes, over the cache's limit", artifact.len()));
        }
        let tag = self.tag(&digest, &artifact).finalize().into_bytes();
        let name = self.file_name(sha256);
        let mut tmp = self.handle.create_temporary(&name)?;
        let written = (|| {
            tmp.file.write_all(MAGIC)?;
            tmp.file.write_all(&tag)?;
            tmp.file.write_all(&artifact)?;
            tmp.file.sync_all()
        })();
        match written {
            Ok(()) => self.handle.commit(tmp, &name, true).map_err(|e| e.to_string()),
            Err(e) => {
                self.handle.discard(tmp);
                Err(e.to_string())
            }
        }
    }
}

/// How opening a file in the cache directory went.
enum Open {
    NotFound,
    /// A link (symbolic link, junction), not followed: why it is refused.
    Link(&'static str),
    Failed(io::Error),
}

/// Why an entry was not used.
enum Refusal {
    /// The directory itself no longer passes its check: leave it alone.
    Dir(String),
    /// This entry is bad: remove it and recompile.
    Entry(String),
}

/// Feeds wasmtime's `Hash`-only compatibility value into SHA-256 (`DefaultHasher` would keep only
/// 64 bits and is not stable across Rust releases).
struct ShaHasher(Sha256);

impl Hasher for ShaHasher {
    fn finish(&self) -> u64 {
        let digest = self.0.clone().finalize();
        u64::from_le_bytes(digest[..8].try_into().expect("8 bytes"))
    }

    fn write(&mut self, bytes: &[u8]) {
        self.0.update(bytes);
    }
}

fn parse_digest(sha256: &str) -> Option<[u8; 32]> {
    if sha256.len() != 64 || !sha256.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)) {
        return None;
    }
    hex::decode(sha256).ok()?.try_into().ok()
}

/// Why a key file cannot be used.
enum KeyProblem {
    Missing,
    /// Present but unusable: replaced with a fresh key.
    Bad(String),
    /// Cannot be read at all: the cache is not used.
    Io(String),
}

fn read_key(dir: &Dir) -> Result<Key, KeyProblem> {
    let mut file = match dir.open_file(KEY_FILE) {
        Ok(file) => file,
        Err(Open::NotFound) => return Err(KeyProblem::Missing),
        Err(Open::Link(reason)) => return Err(KeyProblem::Bad(reason.into())),
        Err(Open::Failed(e)) => return Err(KeyProblem::Io(e.to_string())),
    };
    let len = dir.check_file(&file, true).map_err(|e| KeyProblem::Io(e.to_string()))?.map_err(KeyProblem::Bad)?;
    if len != KEY_LEN as u64 {
        return Err(KeyProblem::Bad(format!("it is {len} bytes, not {KEY_LEN}")));
    }
    let mut key = Zeroizing::new([0u8; KEY_LEN]);
    file.read_exact(&mut key[..]).map_err(|e| KeyProblem::Io(e.to_string()))?;
    Ok(Key(key))
}

/// Writes a fresh random key to a temporary file, then links it in as `cache.key` (first
/// creation: never replaces a key another process just made) or renames it over (replacing a
/// bad key).
fn write_key(dir: &Dir, replace: bool) -> Result<(), String> {
    let mut key = Zeroizing::new([0u8; KEY_LEN]);
    getrandom::fill(&mut key[..]).map_err(|e| format!("the system's random source failed: {e}"))?;
    let mut tmp: Temporary = dir.create_temporary(KEY_FILE)?;
    let written = (|| {
        tmp.file.write_all(&key[..])?;
        tmp.file.sync_all()
    })();
    let result = match written {
        Ok(()) => dir.commit(tmp, KEY_FILE, replace),
        Err(e) => {
            dir.discard(tmp);
            Err(e)
        }
    };
    result.map_err(|e| format!("cannot write {KEY_FILE}: {e}"))
}

fn load_or_create_key(dir: &Dir, path: &Path) -> Result<Key, String> {
    for _ in 0..4 {
        match read_key(dir) {
            Ok(key) => return Ok(key),
            Err(KeyProblem::Missing) => write_key(dir, false)?,
            Err(KeyProblem::Bad(reason)) => {
                tracing::warn!(
                    path = %path.join(KEY_FILE).display(),
                    %reason,
                    "replacing the compiled-plugin cache key; cached plugins will be recompiled"
                );
                write_key(dir, true)?;
            }
            Err(KeyProblem::Io(reason)) => return Err(format!("cannot read {KEY_FILE}: {reason}")),
        }
    }
    Err(format!("{KEY_FILE} keeps changing under us"))
}

#[cfg(test)]
mod tests {
    //! The checks on a real engine and a real (empty) component: what is refused is refused before
    //! `deserialize`, which would have accepted the planted bytes.

    #[cfg(unix)]
    use super::unix::{c_name, euid};
    use super::*;
    #[cfg(unix)]
    use std::os::unix::fs::{MetadataExt, PermissionsExt, symlink};

    /// The binary encoding of `(component)`: the crate has no `wat` feature.
    const EMPTY_COMPONENT: &[u8] = b"\0asm\x0d\0\x01\0";
    const SHA_A: &str = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
    const SHA_B: &str = "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb";

    fn engine() -> Engine {
        let mut config = wasmtime::Config::new();
        config.wasm_component_model(true);
        Engine::new(&config).unwrap()
    }

    fn component(engine: &Engine) -> Component {
        Component::new(engine, EMPTY_COMPONENT).unwrap()
    }

    /// A fresh directory under the system's temporary directory (sticky `/tmp`), private to this
    /// user (mode 0700; on Windows the owner-only DACL of `create_private_dir`).
    fn scratch(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("bmc-rotate-cache-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        crate::platform::create_private_dir(&dir).unwrap();
        #[cfg(unix)]
        chmod(&dir, 0o700);
        dir
    }

    #[cfg(unix)]
    fn chmod(path: &Path, mode: u32) {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
    }

    fn refusal(cache: &ArtifactCache, sha256: &str) -> String {
        match cache.read_verified(sha256) {
            Err(Refusal::Entry(reason)) | Err(Refusal::Dir(reason)) => reason,
            Ok(found) => panic!("accepted (found: {})", found.is_some()),
        }
    }

    /// What an attacker plants: wasmtime's own serialisation, which `deserialize` accepts.
    fn raw_artifact(engine: &Engine) -> Vec<u8> {
        let raw = component(engine).serialize().unwrap();
        // SAFETY: bytes this engine just produced; proves the plant would load if it got through.
        assert!(unsafe { Component::deserialize(engine, &raw) }.is_ok());
        raw
    }

    #[test]
    fn a_stored_entry_round_trips_and_is_bound_to_the_digest_and_the_key() {
        let engine = engine();
        let dir = scratch("roundtrip");
        let cache = ArtifactCache::open(&dir.join("wasm"), &engine).unwrap();
        assert!(cache.load(&engine, SHA_A).is_none(), "empty cache");
        cache.store(SHA_A, &component(&engine));
        assert!(cache.load(&engine, SHA_A).is_some(), "stored entry loads");

        let key = std::fs::metadata(dir.join("wasm").join(KEY_FILE)).unwrap();
        assert_eq!(key.len(), KEY_LEN as u64);
        #[cfg(unix)]
        assert_eq!(key.mode() & 0o777, 0o600);
        let again = ArtifactCache::open(&dir.join("wasm"), &engine).unwrap();
        assert!(again.load(&engine, SHA_A).is_some(), "the key persists across opens");

        // The same bytes under another plugin's digest.
        let entry = dir.join("wasm").join(cache.file_name(SHA_A));
        std::fs::copy(&entry, dir.join("wasm").join(cache.file_name(SHA_B))).unwrap();
        assert!(refusal(&cache, SHA_B).contains("MAC does not match"));
        assert!(cache.load(&engine, SHA_B).is_none());
        assert!(!dir.join("wasm").join(cache.file_name(SHA_B)).exists(), "refused entry removed");

        // Another user's (another key's) genuine entry.
        let other = ArtifactCache::open(&dir.join("other"), &engine).unwrap();
        std::fs::copy(&entry, dir.join("other").join(other.file_name(SHA_A))).unwrap();
        assert!(refusal(&other, SHA_A).contains("MAC does not match"));
        assert!(other.load(&engine, SHA_A).is_none());
        // Windows holds an open cache's directory against removal.
        drop((cache, again, other));
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn a_planted_artifact_is_refused_before_deserialize() {
        let engine = engine();
        let dir = scratch("planted");
        let cache = ArtifactCache::open(&dir, &engine).unwrap();
        let raw = raw_artifact(&engine);
        let entry = dir.join(cache.file_name(SHA_A));

        std::fs::write(&entry, &raw).unwrap();
        assert!(refusal(&cache, SHA_A).contains("no MAC header"));
        assert!(cache.load(&engine, SHA_A).is_none());
        assert!(!entry.exists(), "refused entry removed");

        let mut forged = MAGIC.to_vec();
        forged.extend_from_slice(&[0u8; TAG_LEN]);
        forged.extend_from_slice(&raw);
        std::fs::write(&entry, &forged).unwrap();
        assert!(refusal(&cache, SHA_A).contains("MAC does not match"));
        assert!(cache.load(&engine, SHA_A).is_none());

        // A genuine entry with one artifact byte changed.
        cache.store(SHA_A, &component(&engine));
        let mut bytes = std::fs::read(&entry).unwrap();
        *bytes.last_mut().unwrap() ^= 1;
        std::fs::write(&entry, &bytes).unwrap();
        assert!(refusal(&cache, SHA_A).contains("MAC does not match"));
        drop(cache);
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[cfg(unix)]
    #[test]
    fn a_fifo_entry_is_refused_without_waiting() {
        let engine = engine();
        let dir = scratch("fifo");
        let cache = ArtifactCache::open(&dir, &engine).unwrap();
        let entry = dir.join(cache.file_name(SHA_A));
        let fifo = c_name(&entry).unwrap();
        // SAFETY: a NUL-terminated path, valid for the call.
        assert_eq!(unsafe { libc::mkfifo(fifo.as_ptr(), 0o600) }, 0);
        assert!(refusal(&cache, SHA_A).contains("not a regular file"));
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[cfg(unix)]
    #[test]
    fn a_symlinked_entry_is_refused_and_its_target_left_alone() {
        let engine = engine();
        let dir = scratch("entry-link");
        let cache = ArtifactCache::open(&dir.join("wasm"), &engine).unwrap();
        cache.store(SHA_A, &component(&engine));
        let entry = dir.join("wasm").join(cache.file_name(SHA_A));
        // A genuine, correctly MACed entry elsewhere: only the link is wrong.
        let elsewhere = dir.join("elsewhere.cwasm");
        std::fs::rename(&entry, &elsewhere).unwrap();
        symlink(&elsewhere, &entry).unwrap();
        assert!(refusal(&cache, SHA_A).contains("symbolic link"));
        assert!(cache.load(&engine, SHA_A).is_none());
        assert!(std::fs::symlink_metadata(&entry).is_err(), "the link is removed");
        assert!(elsewhere.exists(), "its target is not touched");
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[cfg(unix)]
    #[test]
    fn a_symlinked_cache_directory_is_refused() {
        let engine = engine();
        let dir = scratch("dir-link");
        std::fs::create_dir(dir.join("real")).unwrap();
        chmod(&dir.join("real"), 0o700);
        symlink(dir.join("real"), dir.join("link")).unwrap();
        let error = ArtifactCache::open(&dir.join("link"), &engine).unwrap_err();
        assert!(error.contains("link is a symbolic link"), "{error}");
        // A link among the ancestors, in a directory only this user can change, is followed.
        let cache = ArtifactCache::open(&dir.join("link").join("wasm"), &engine).unwrap();
        cache.store(SHA_A, &component(&engine));
        assert!(dir.join("real").join("wasm").join(cache.file_name(SHA_A)).exists());
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[cfg(unix)]
    #[test]
    fn a_directory_others_can_write_is_refused() {
        let engine = engine();
        let dir = scratch("modes");
        for mode in [0o720, 0o702, 0o777] {
            chmod(&dir, 0o700);
            let cache = dir.join(format!("cache{mode:o}"));
            std::fs::create_dir(&cache).unwrap();
            chmod(&cache, mode);
            let error = ArtifactCache::open(&cache, &engine).unwrap_err();
            assert!(error.contains("writable by group or others"), "{mode:o}: {error}");
        }
        // An ancestor others can write, without the sticky bit: they could swap the cache.
        chmod(&dir, 0o777);
        let error = ArtifactCache::open(&dir.join("wasm"), &engine).unwrap_err();
        assert!(error.contains("without the sticky bit"), "{error}");
        // With it (like /tmp), only the entry's owner can rename it: accepted.
        chmod(&dir, 0o1777);
        ArtifactCache::open(&dir.join("wasm"), &engine).unwrap();
        // A cache directory made group-writable after opening is no longer used.
        let cache = ArtifactCache::open(&dir.join("wasm"), &engine).unwrap();
        cache.store(SHA_A, &component(&engine));
        chmod(&dir.join("wasm"), 0o770);
        assert!(matches!(cache.read_verified(SHA_A), Err(Refusal::Dir(_))));
        assert!(cache.load(&engine, SHA_A).is_none());
        chmod(&dir.join("wasm"), 0o700);
        assert!(cache.load(&engine, SHA_A).is_some(), "kept, not removed");
        std::fs::remove_dir_all(dir).unwrap();
    }

    /// Another user's directory or entry: needs root to set up (`chown`), which the CI and the
    /// development containers run as; as an ordinary user only the message is left untested.
    #[cfg(unix)]
    #[test]
    fn what_another_user_owns_is_refused() {
        if euid() != 0 {
            eprintln!("skipped: chown needs root");
            return;
        }
        let chown = |path: &Path, uid: u32| {
            let c = c_name(path).unwrap();
            // SAFETY: a NUL-terminated path, valid for the call; gid -1 leaves the group.
            assert_eq!(unsafe { libc::chown(c.as_ptr(), uid, u32::MAX) }, 0);
        };
        let engine = engine();
        let dir = scratch("owners");
        // An ancestor of another user (65534, "nobody").
        std::fs::create_dir_all(dir.join("theirs/wasm")).unwrap();
        chmod(&dir.join("theirs"), 0o755);
        chown(&dir.join("theirs"), 65534);
        let error = ArtifactCache::open(&dir.join("theirs/wasm"), &engine).unwrap_err();
        assert!(error.contains("belongs to uid 65534, neither this user"), "{error}");
        // The cache directory itself.
        std::fs::create_dir(dir.join("cache")).unwrap();
        chmod(&dir.join("cache"), 0o700);
        chown(&dir.join("cache"), 65534);
        let error = ArtifactCache::open(&dir.join("cache"), &engine).unwrap_err();
        assert!(error.contains("belongs to uid 65534, not to this user"), "{error}");
        // An entry.
        let cache = ArtifactCache::open(&dir.join("mine"), &engine).unwrap();
        cache.store(SHA_A, &component(&engine));
        chown(&dir.join("mine").join(cache.file_name(SHA_A)), 65534);
        assert!(refusal(&cache, SHA_A).contains("belongs to uid 65534"));
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[cfg(unix)]
    #[test]
    fn a_key_others_can_read_is_replaced_and_invalidates_entries() {
        let engine = engine();
        let dir = scratch("key");
        let cache = ArtifactCache::open(&dir, &engine).unwrap();
        cache.store(SHA_A, &component(&engine));
        let key = dir.join(KEY_FILE);
        let before = std::fs::read(&key).unwrap();
        chmod(&key, 0o644);
        let reopened = ArtifactCache::open(&dir, &engine).unwrap();
        let after = std::fs::read(&key).unwrap();
        assert_ne!(before, after, "a fresh key");
        assert_eq!(std::fs::metadata(&key).unwrap().mode() & 0o777, 0o600);
        assert!(refusal(&reopened, SHA_A).contains("MAC does not match"));

        // A key that is a link (to a key the attacker knows) is replaced too.
        std::fs::write(dir.join("known"), [7u8; KEY_LEN]).unwrap();
        chmod(&dir.join("known"), 0o600);
        std::fs::remove_file(&key).unwrap();
        symlink(dir.join("known"), &key).unwrap();
        let relinked = ArtifactCache::open(&dir, &engine).unwrap();
        assert!(std::fs::symlink_metadata(&key).unwrap().is_file());
        assert_ne!(&relinked.key.0[..], &[7u8; KEY_LEN][..]);
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn a_key_of_the_wrong_size_is_replaced_and_invalidates_entries() {
        let engine = engine();
        let dir = scratch("short-key");
        let cache = ArtifactCache::open(&dir, &engine).unwrap();
        cache.store(SHA_A, &component(&engine));
        let key = dir.join(KEY_FILE);
        std::fs::write(&key, [7u8; KEY_LEN - 1]).unwrap();
        let reopened = ArtifactCache::open(&dir, &engine).unwrap();
        assert_eq!(std::fs::read(&key).unwrap().len(), KEY_LEN, "a fresh key");
        assert_ne!(&reopened.key.0[..KEY_LEN - 1], &[7u8; KEY_LEN - 1][..]);
        assert!(refusal(&reopened, SHA_A).contains("MAC does not match"));
        assert!(reopened.load(&engine, SHA_A).is_none());
        reopened.store(SHA_A, &component(&engine));
        assert!(reopened.load(&engine, SHA_A).is_some(), "recompiled entries are kept");
        drop((cache, reopened));
        std::fs::remove_dir_all(dir).unwrap();
    }

    /// Windows: the directory is held without delete sharing, so it cannot be renamed away (and
    /// another put in its place) while the cache is open.
    #[cfg(windows)]
    #[test]
    fn the_held_directory_cannot_be_renamed_away() {
        let engine = engine();
        let dir = scratch("held");
        let cache = ArtifactCache::open(&dir.join("wasm"), &engine).unwrap();
        cache.store(SHA_A, &component(&engine));
        assert!(std::fs::rename(dir.join("wasm"), dir.join("moved")).is_err(), "renamed while held");
        assert!(cache.load(&engine, SHA_A).is_some());
        drop(cache);
        std::fs::rename(dir.join("wasm"), dir.join("moved")).unwrap();
        std::fs::remove_dir_all(dir).unwrap();
    }
}

//! A persistent cache of compiled plugins, so a plugin is compiled once per host build rather
//! than once per run.
//!
//! Entries are native code and are loaded with `Component::deserialize_file`, which trusts its
//! input. So the cache lives in a directory this user owns and nobody else may write (checked on
//! every open), entries are written atomically, and the key covers the plugin's SHA-256, the
//! host's version and the engine's compatibility hash.

use std::hash::{Hash, Hasher};
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use wasmtime::Engine;
use wasmtime::component::Component;

/// An on-disk cache of precompiled components.
#[derive(Clone, Debug)]
pub struct ArtifactCache {
    dir: PathBuf,
    engine_key: String,
}

impl ArtifactCache {
    /// The default location: `$BMC_ROTATE_CACHE_DIR`, else `$XDG_CACHE_HOME/bmc-rotate/wasm`, else
    /// `~/.cache/bmc-rotate/wasm`.
    pub fn default_dir() -> Option<PathBuf> {
        if let Some(dir) = std::env::var_os("BMC_ROTATE_CACHE_DIR") {
            return Some(PathBuf::from(dir));
        }
        let base = std::env::var_os("XDG_CACHE_HOME")
            .map(PathBuf::from)
            .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))?;
        Some(base.join("bmc-rotate").join("wasm"))
    }

    /// Opens (creating with mode 0700) a cache directory, refusing one that others could write.
    pub fn open(dir: &Path, engine: &Engine) -> Result<ArtifactCache, String> {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(|e| format!("cannot create cache directory {}: {e}", dir.display()))?;
        let meta = std::fs::metadata(dir).map_err(|e| format!("cannot read {}: {e}", dir.display()))?;
        // SAFETY: geteuid has no preconditions and cannot fail.
        let uid = unsafe { libc::geteuid() };
        if meta.uid() != uid || meta.permissions().mode() & 0o022 != 0 {
            return Err(format!(
                "cache directory {} is not private to this user (owner uid {}, mode {:o}); \
                 compiled plugins are native code, so it is not used",
                dir.display(),
                meta.uid(),
                meta.permissions().mode() & 0o777
            ));
        }
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        engine.precompile_compatibility_hash().hash(&mut hasher);
        let engine_key = format!("{}-{:016x}", env!("CARGO_PKG_VERSION"), hasher.finish());
        Ok(ArtifactCache { dir: dir.to_owned(), engine_key })
    }

    /// The cache directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn path(&self, sha256: &str) -> PathBuf {
        self.dir.join(format!("{sha256}-{}.cwasm", self.engine_key))
    }

    /// The compiled component for these bytes, if cached.
    pub fn load(&self, engine: &Engine, sha256: &str) -> Option<Component> {
        let path = self.path(sha256);
        if !path.exists() {
            return None;
        }
        // SAFETY: the file was written by `store` into a directory checked above to be private
        // to this user, under a name that binds it to this engine's configuration.
        match unsafe { Component::deserialize_file(engine, &path) } {
            Ok(component) => Some(component),
            Err(e) => {
                tracing::warn!(path = %path.display(), error = %e, "ignoring unusable cache entry");
                let _ = std::fs::remove_file(&path);
                None
            }
        }
    }

    /// Stores a compiled component; failures only cost a recompile next time.
    pub fn store(&self, sha256: &str, component: &Component) {
        let result = (|| -> Result<(), String> {
            let bytes = component.serialize().map_err(|e| e.to_string())?;
            let final_path = self.path(sha256);
            let tmp = final_path.with_extension(format!("tmp{}", std::process::id()));
            let mut file = std::fs::OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .mode(0o600)
                .open(&tmp)
                .map_err(|e| e.to_string())?;
            file.write_all(&bytes).map_err(|e| e.to_string())?;
            file.sync_all().map_err(|e| e.to_string())?;
            std::fs::rename(&tmp, &final_path).map_err(|e| e.to_string())
        })();
        if let Err(e) = result {
            tracing::warn!(dir = %self.dir.display(), error = %e, "could not cache a compiled plugin");
        }
    }
}

//! The runtime: one wasmtime engine for the process, the linker holding the host imports, an
//! epoch ticker that bounds guest execution, and the plugin caches (compiled artifacts on disk,
//! loaded plugins in memory).

use super::cache::ArtifactCache;
use super::config::{EPOCH_TICK, RuntimeConfig};
use super::job::JobState;
use super::metadata::{self, MetadataError};
use super::plugin::Plugin;
use super::wit::GuestPre;
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Instant;
use wasmtime::component::Linker;
use wasmtime::{Config, Engine};
use wasmtime::{InstanceAllocationStrategy, PoolingAllocationConfig};

/// Why a plugin could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// The file could not be read.
    #[error("cannot read {path}: {reason}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// Refused before compiling (version, imports, format).
    #[error("{origin}: {source}")]
    Refused {
        /// Where the bytes came from.
        origin: String,
        /// Why.
        #[source]
        source: MetadataError,
    },
    /// Compilation or linking failed.
    #[error("{origin}: {reason}")]
    Compile {
        /// Where the bytes came from.
        origin: String,
        /// Why.
        reason: String,
    },
}

/// The plugin host.
pub struct Runtime {
    engine: Engine,
    linker: Linker<JobState>,
    config: RuntimeConfig,
    cache: Option<ArtifactCache>,
    loaded: Mutex<HashMap<String, Arc<Plugin>>>,
}

/// Plugin calls that may run at once (a fresh store each). A fleet run has at most
/// `--concurrency` (≤ 512) in flight; the rest is headroom for commands that run a few more.
pub const MAX_LIVE_CALLS: u32 = 1024;

/// Memory, tables, instances and fiber stacks come from pre-reserved slots that are reset and
/// reused, instead of a fresh mmap (and the munmap's TLB shootdown) per call: at thousands of BMCs
/// this halves the host's CPU per call.
fn pool(config: &RuntimeConfig) -> PoolingAllocationConfig {
    let mut pool = PoolingAllocationConfig::new();
    pool.total_component_instances(MAX_LIVE_CALLS)
        .total_core_instances(MAX_LIVE_CALLS * 4)
        .total_memories(MAX_LIVE_CALLS * 2)
        .total_tables(MAX_LIVE_CALLS * 4)
        .total_stacks(MAX_LIVE_CALLS)
        .max_memory_size(config.max_memory);
    pool
}

impl Runtime {
    /// Builds the engine and linker and starts the epoch ticker.
    pub fn new(config: RuntimeConfig) -> anyhow::Result<Runtime> {
        let mut wasm = Config::new();
        wasm.wasm_component_model(true)
            .epoch_interruption(true)
            .max_wasm_stack(512 << 10)
            .cranelift_opt_level(wasmtime::OptLevel::Speed)
            .parallel_compilation(true)
            .allocation_strategy(InstanceAllocationStrategy::Pooling(pool(&config)));
        let engine = Engine::new(&wasm)?;
        start_ticker(&engine);

        let mut linker = Linker::new(&engine);
        // WASI as Rust's std needs it, with a context that grants nothing (see JobState::new).
        wasmtime_wasi::p2::add_to_linker_async(&mut linker)?;
        super::wit::add_to_linker(&mut linker)?;

        let cache = config.cache_dir.as_deref().and_then(|dir| match ArtifactCache::open(dir, &engine) {
            Ok(cache) => Some(cache),
            Err(e) => {
                tracing::warn!("{e}");
                None
            }
        });
        Ok(Runtime { engine, linker, config, cache, loaded: Mutex::new(HashMap::new()) })
    }

    /// The settings in force.
    pub fn config(&self) -> &RuntimeConfig {
        &self.config
    }

    /// The compiled-artifact cache, if enabled and usable.
    pub fn cache(&self) -> Option<&ArtifactCache> {
        self.cache.as_ref()
    }

    /// Loads a plugin file: a regular file of at most [`crate::files::MAX_PLUGIN`] bytes.
    pub async fn load_file(&self, path: &Path) -> Result<Arc<Plugin>, LoadError> {
        let bytes = read_plugin(path).await?;
        self.load_bytes(bytes, path.display().to_string()).await
    }

    /// Loads every `*.wasm` in a directory, sorted by name. One bad plugin does not hide the
    /// others: each file gets its own result.
    pub async fn load_dir(&self, dir: &Path) -> Result<Vec<(PathBuf, Result<Arc<Plugin>, LoadError>)>, LoadError> {
        let mut out = Vec::new();
        for path in plugin_files(dir).await? {
            let result = self.load_file(&path).await;
            out.push((path, result));
        }
        Ok(out)
    }

    /// Loads a plugin from bytes: metadata checks before compiling, then the in-memory cache, the
    /// disk cache, or the compiler; then pre-instantiation and one `info` call.
    pub async fn load_bytes(&self, bytes: Vec<u8>, origin: String) -> Result<Arc<Plugin>, LoadError> {
        let sha256 = hex::encode(Sha256::digest(&bytes));
        if let Some(plugin) = self.loaded.lock().expect("plugin cache poisoned").get(&sha256) {
            return Ok(plugin.clone());
        }
        let metadata =
            metadata::inspect(&bytes).map_err(|source| LoadError::Refused { origin: origin.clone(), source })?;
        let compile_error = |reason: String| LoadError::Compile { origin: origin.clone(), reason };

        let started = Instant::now();
        let cached = self.cache.as_ref().and_then(|c| c.load(&self.engine, &sha256));
        let from_cache = cached.is_some();
        if from_cache {
            tracing::debug!(%origin, elapsed_ms = started.elapsed().as_millis() as u64, "loaded a compiled plugin from the cache");
        }
        let component = match cached {
            Some(component) => component,
            None => {
                let engine = self.engine.clone();
                let size = bytes.len();
                let component =
                    tokio::task::spawn_blocking(move || wasmtime::component::Component::new(&engine, &bytes))
                        .await
                        .map_err(|e| compile_error(e.to_string()))?
                        .map_err(|e| compile_error(format!("does not compile: {e:#}")))?;
                tracing::debug!(%origin, size, elapsed_ms = started.elapsed().as_millis() as u64, "compiled plugin");
                if let Some(cache) = &self.cache {
                    cache.store(&sha256, &component);
                }
                component
            }
        };
        let pre = self
            .linker
            .instantiate_pre(&component)
            .map_err(|e| compile_error(format!("does not link against the host: {e:#}")))?;
        let pre = GuestPre::new(metadata.contract, pre)
            .map_err(|e| compile_error(format!("does not export the vendor-plugin world: {e:#}")))?;
        let plugin = Plugin::new(pre, self.config.clone(), origin.clone(), sha256.clone(), metadata, from_cache)
            .await
            .map_err(compile_error)?;
        let plugin = Arc::new(plugin);
        self.loaded.lock().expect("plugin cache poisoned").insert(sha256, plugin.clone());
        Ok(plugin)
    }
}

/// Reads a plugin file: a regular file of at most [`crate::files::MAX_PLUGIN`] bytes.
pub async fn read_plugin(path: &Path) -> Result<Vec<u8>, LoadError> {
    let owned = path.to_owned();
    tokio::task::spawn_blocking(move || crate::files::read_bounded(&owned, "the plugin", crate::files::MAX_PLUGIN))
        .await
        .map_err(|e| LoadError::Read { path: path.to_owned(), reason: e.to_string() })?
        .map_err(|e| LoadError::Read {
            path: path.to_owned(),
            reason: match &e.problem {
                crate::files::Problem::Io(io) => io.to_string(),
                _ => e.reason(),
            },
        })
}

/// The `*.wasm` files of a directory, sorted by name.
pub async fn plugin_files(dir: &Path) -> Result<Vec<PathBuf>, LoadError> {
    let read_error = |e: std::io::Error| LoadError::Read { path: dir.to_owned(), reason: e.to_string() };
    let mut paths = Vec::new();
    let mut entries = tokio::fs::read_dir(dir).await.map_err(read_error)?;
    while let Some(entry) = entries.next_entry().await.map_err(read_error)? {
        let path = entry.path();
        if path.extension().is_some_and(|e| e == "wasm") {
            paths.push(path);
        }
    }
    paths.sort();
    Ok(paths)
}

fn start_ticker(engine: &Engine) {
    let weak = engine.weak();
    std::thread::Builder::new()
        .name("wasm-epoch".into())
        .spawn(move || {
            while let Some(engine) = weak.upgrade() {
                engine.increment_epoch();
                drop(engine);
                std::thread::sleep(EPOCH_TICK);
            }
        })
        .expect("cannot start the epoch thread");
}

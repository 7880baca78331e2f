//! Windows: no compiled-plugin cache. Entries are native code that `deserialize` trusts, and
//! the Unix cache's protection rests on `openat`/`fstat` walks of owner and mode bits; until a
//! Windows equivalent (a DACL walk of every ancestor) exists, plugins are compiled on every run.

use std::convert::Infallible;
use std::path::Path;
use wasmtime::Engine;
use wasmtime::component::Component;

/// A cache that never opens: [`ArtifactCache::open`] always explains why.
#[derive(Clone, Debug)]
pub struct ArtifactCache(Infallible);

impl ArtifactCache {
    /// Refuses: see the module's documentation.
    pub fn open(dir: &Path, _engine: &Engine) -> Result<ArtifactCache, String> {
        Err(format!(
            "compiled-plugin cache {} not used: Windows builds keep no cache of compiled plugins (native code); \
             plugins are compiled on every run instead",
            dir.display()
        ))
    }

    /// The cache directory.
    pub fn dir(&self) -> &Path {
        match self.0 {}
    }

    /// Never anything.
    pub fn load(&self, _engine: &Engine, _sha256: &str) -> Option<Component> {
        match self.0 {}
    }

    /// Never stores.
    pub fn store(&self, _sha256: &str, _component: &Component) {
        match self.0 {}
    }
}

//! Support for the end-to-end tests: where the built components are, a shared runtime, and a
//! small standard-Redfish BMC served over real TLS on loopback.

pub mod mini_bmc;

use bmc_rotate::runtime::{Runtime, RuntimeConfig};
use std::path::PathBuf;
use std::sync::OnceLock;
use std::time::Duration;

/// A component built by this crate's build script, e.g. `wasm("guest_sample")`.
pub fn wasm(name: &str) -> PathBuf {
    PathBuf::from(env!("BMC_TEST_WASM_DIR")).join(format!("{name}.wasm"))
}

/// The sandbox settings of the tests: a short budget so hostile guests are stopped quickly, and a
/// compiled-artifact cache under `target/` shared by every test run.
pub fn test_config() -> RuntimeConfig {
    RuntimeConfig {
        cache_dir: Some(PathBuf::from(env!("BMC_TEST_WASM_DIR")).join("../../artifact-cache")),
        max_memory: 32 << 20,
        call_budget: Duration::from_secs(3),
        ..RuntimeConfig::default()
    }
}

/// One runtime per test binary: plugins compile once, every test reuses them.
pub fn runtime() -> &'static Runtime {
    static RUNTIME: OnceLock<Runtime> = OnceLock::new();
    RUNTIME.get_or_init(|| Runtime::new(test_config()).expect("runtime"))
}

/// A directory holding only the vendor plugins and the generic one (what an operator installs).
pub fn vendor_plugin_dir() -> PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = PathBuf::from(env!("BMC_TEST_WASM_DIR")).join("../../vendor-plugins");
        std::fs::create_dir_all(&dir).expect("plugin dir");
        for name in ["dell_idrac", "hpe_ilo", "lenovo_xcc", "generic_redfish"] {
            let file = format!("{name}.wasm");
            let (from, to) = (wasm(name), dir.join(&file));
            let stale = std::fs::metadata(&to).and_then(|t| Ok(t.modified()? < std::fs::metadata(&from)?.modified()?));
            if stale.unwrap_or(true) {
                std::fs::copy(&from, &to).expect("copy a plugin");
            }
        }
        dir
    })
    .clone()
}

/// `component` with a custom section appended: another file with the same plugin id, version
/// and behaviour but a different SHA-256 — a foreign build of a stock plugin, as far as the host
/// can tell.
pub fn with_custom_section(component: &[u8], name: &str, payload: &[u8]) -> Vec<u8> {
    fn leb128(mut n: usize, out: &mut Vec<u8>) {
        loop {
            let byte = (n & 0x7f) as u8;
            n >>= 7;
            if n == 0 {
                out.push(byte);
                return;
            }
            out.push(byte | 0x80);
        }
    }
    let mut body = Vec::new();
    leb128(name.len(), &mut body);
    body.extend_from_slice(name.as_bytes());
    body.extend_from_slice(payload);
    let mut out = component.to_vec();
    out.push(0); // custom section id
    leb128(body.len(), &mut out);
    out.extend_from_slice(&body);
    out
}

/// Everything traced (at TRACE) while `work` runs on this thread, as text: for asserting that no
/// secret reaches the logs.
pub fn traced<T>(work: impl FnOnce() -> T) -> (T, String) {
    #[derive(Clone, Default)]
    struct Capture(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);
    impl std::io::Write for Capture {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().expect("capture").extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let capture = Capture::default();
    let writer = capture.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .finish();
    let result = tracing::subscriber::with_default(subscriber, work);
    let text = String::from_utf8_lossy(&capture.0.lock().expect("capture")).into_owned();
    (result, text)
}

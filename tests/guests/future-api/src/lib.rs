//! Built as if by a future SDK: the `bmc:api-version` section says 9.0.0. The host must refuse
//! it before compiling, naming both versions.

// The bindings are generated here, not by the SDK (which would write its own version).
#![allow(missing_docs)]

wit_bindgen::generate!({ path: "../../../sdk/wit/v0.1", world: "vendor-plugin" });

struct Future;

impl Guest for Future {
    fn info() -> PluginInfo {
        unreachable!("never instantiated")
    }
    fn probe(_: Target) -> Result<ProbeResult, PluginError> {
        unreachable!("never instantiated")
    }
    fn verify(_: Target) -> Result<(), PluginError> {
        unreachable!("never instantiated")
    }
    fn change_password(_: Target) -> Result<(), PluginError> {
        unreachable!("never instantiated")
    }
}

export!(Future);

#[cfg(target_arch = "wasm32")]
#[unsafe(link_section = "bmc:api-version")]
#[used]
static API_VERSION: [u8; 5] = *b"9.0.0";

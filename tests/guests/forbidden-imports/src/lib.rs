//! Reaches past the contract: opens a TCP socket (std imports `wasi:sockets`) and calls an
//! outgoing HTTP handler (`wasi:http`). The host must refuse it at load, before compiling.

use bmc_plugin_sdk::prelude::*;

mod wasi_http {
    // Only the import's name matters to the host's check. (A 0.2.x version would be merged with
    // the wasi:http 0.2 types Rust's std carries, so this uses the WASI 0.3 release candidate.)
    wit_bindgen::generate!({
        inline: "package wasi:http@0.3.0-rc-2025-09-16;
                 interface handler { handle: func(); }
                 world escape { import handler; }",
    });
    pub use self::wasi::http::handler::handle;
}

/// The guest.
pub struct Escape;

impl VendorPlugin for Escape {
    fn info() -> PluginInfo {
        PluginInfo {
            id: "escape".into(),
            vendor: "Nobody".into(),
            product: "Escape attempt".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            families: vec![],
            policy: PasswordPolicy::default(),
        }
    }

    fn probe(_bmc: &Bmc, target: &Target) -> Result<ProbeResult, PluginError> {
        let stream = std::net::TcpStream::connect(target.address.as_str());
        Err(PluginError::Protocol(format!("{:?}", stream.is_ok())))
    }

    fn verify(_bmc: &Bmc, _target: &Target) -> Result<(), PluginError> {
        wasi_http::handle();
        Ok(())
    }

    fn change_password(_bmc: &Bmc, _target: &Target) -> Result<(), PluginError> {
        Ok(())
    }
}

register_plugin!(Escape);

//! A plugin that is not written yet: `info` is valid (id `todo`, vendor `Dell`, so `plugin test`
//! picks the Dell personas) and it declares the baseline capabilities, but `probe`, `verify` and
//! `change_password` are `todo!()`. Every call panics, so every conformance scenario must fail it:
//! a panic is never the error a scenario expects.

#![allow(clippy::todo, reason = "the point of this guest: exports that are not implemented")]

use bmc_plugin_sdk::prelude::*;

/// The guest.
pub struct Todo;

impl VendorPlugin for Todo {
    fn info() -> PluginInfo {
        PluginInfo {
            id: "todo".into(),
            vendor: "Dell".into(),
            product: "Not written yet".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            families: vec!["iDRAC9".into()],
            policy: PasswordPolicy { min_length: 8, max_length: 20, min_classes: 3, ..Default::default() },
        }
    }

    fn probe(_bmc: &Bmc, _target: &Target) -> Result<ProbeResult, PluginError> {
        todo!()
    }

    fn verify(_bmc: &Bmc, _target: &Target) -> Result<(), PluginError> {
        todo!()
    }

    fn change_password(_bmc: &Bmc, _target: &Target) -> Result<(), PluginError> {
        todo!()
    }
}

register_plugin!(Todo);

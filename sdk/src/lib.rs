//! # bmc-plugin-sdk
//!
//! Everything a vendor needs to write a [bmc-rotate] plugin: a component that changes and
//! verifies BMC account passwords over Redfish, sandboxed by the host.
//!
//! A plugin implements [`VendorPlugin`] on a unit struct and exports it with
//! [`register_plugin!`]. All I/O goes through the [`Bmc`] handle: HTTP to the one BMC under work
//! (paths only), secrets as opaque handles ([`Secret`]), logging and time. The plugin never holds
//! a plaintext password: it asks the host to splice secrets into auth headers and JSON bodies.
//!
//! ```no_run
//! use bmc_plugin_sdk::prelude::*;
//!
//! struct Acme;
//!
//! impl VendorPlugin for Acme {
//!     fn info() -> PluginInfo {
//!         PluginInfo {
//!             id: "acme-bmc".into(),
//!             vendor: "Acme".into(),
//!             product: "Acme BMC".into(),
//!             version: env!("CARGO_PKG_VERSION").into(),
//!             families: vec!["AcmeBMC1".into()],
//!             policy: PasswordPolicy { min_length: 8, max_length: 20, min_classes: 3, ..Default::default() },
//!         }
//!     }
//!
//!     fn probe(bmc: &Bmc, target: &Target) -> Result<ProbeResult, PluginError> {
//!         let root = Redfish::anonymous(bmc).service_root()?;
//!         let client = Redfish::basic(bmc, &target.login_account, bmc.login_password()?);
//!         let account = client.find_account(&root.account_service, &target.account)?;
//!         Ok(ProbeResult { family: "AcmeBMC1".into(), firmware: String::new(),
//!                          account_uri: account.uri, policy: Self::info().policy })
//!     }
//!
//!     fn verify(bmc: &Bmc, target: &Target) -> Result<(), PluginError> {
//!         let root = Redfish::anonymous(bmc).service_root()?;
//!         Redfish::login(bmc, &root.sessions, &target.login_account, &bmc.login_password()?)?.logout()
//!     }
//!
//!     fn change_password(bmc: &Bmc, target: &Target) -> Result<(), PluginError> {
//!         let root = Redfish::anonymous(bmc).service_root()?;
//!         let client = Redfish::basic(bmc, &target.login_account, bmc.login_password()?);
//!         let account = client.find_account(&root.account_service, &target.account)?;
//!         let new = bmc.new_password()?;
//!         let body = JsonBody::object().secret("Password", &new);
//!         client.patch(&account.uri, body, &IfMatch::from_resource(&account, IfMatch::None))?
//!             .map(drop)
//!             .map_err(|e| e.into_plugin_error())
//!     }
//! }
//!
//! register_plugin!(Acme);
//! ```
//!
//! With the `testing` feature, [`testing::MockHost`] runs the same code natively under
//! `cargo test` against a scripted request/response transcript.
//!
//! [bmc-rotate]: https://example.invalid/bmc-rotate

#![deny(missing_docs)]

#[doc(hidden)]
#[allow(missing_docs)]
pub mod bindings;
mod glue;
pub mod http;
mod plugin;
pub mod redfish;
mod secret;
#[cfg(feature = "testing")]
pub mod testing;
mod types;

pub use plugin::{Bmc, Level, VendorPlugin};
pub use secret::Secret;
/// JSON, as the SDK's Redfish helpers speak it (re-exported so plugins depend on the SDK alone).
pub use serde_json;
pub use types::{
    Onboarded, PasswordPolicy, PluginError, PluginInfo, ProbeResult, SnmpAuthentication, SnmpPrivacy, SnmpV3, Target,
};

/// The version of the `bmc:plugin` WIT contract this SDK implements. `register_plugin!` writes it
/// into the `bmc:api-version` custom section, which the host reads before compiling a plugin.
/// The optional `snmp` and `onboard` interfaces were added to `0.2.0` without changing anything
/// that was there (the host looks each up by name), so the contract keeps its version while the
/// SDK crate, whose API grew, is 0.2.1.
pub const API_VERSION: &str = "0.2.0";

/// The capabilities every Redfish plugin needs and every hardware profile grants: read the
/// service, log in and out (its own sessions only), and set the target account's `Password`.
/// The host pins `{account}` to the `ManagerAccount` the BMC showed, in the same call, to be
/// named `target.account`, and `{session}` to the sessions the call created.
pub const BASELINE_CAPABILITIES: &str = "\
GET /redfish/v1/**
POST /redfish/v1/SessionService/Sessions
DELETE {session}
PATCH {account} password=/Password
";

/// The secret name of the login account's password.
pub const LOGIN_PASSWORD: &str = "login-password";
/// The secret name of the password `change-password` sets.
pub const NEW_PASSWORD: &str = "new-password";

/// The names a plugin usually needs, in one import.
pub mod prelude {
    pub use crate::http::{Auth, HttpError, JsonBody, Method, Request, Response};
    pub use crate::redfish::{IfMatch, Redfish, RedfishError, Resource, ServiceRoot};
    pub use crate::serde_json::{Value, json};
    pub use crate::{
        BASELINE_CAPABILITIES, Bmc, LOGIN_PASSWORD, Level, NEW_PASSWORD, Onboarded, PasswordPolicy, PluginError,
        PluginInfo, ProbeResult, Secret, SnmpAuthentication, SnmpPrivacy, SnmpV3, Target, VendorPlugin,
        register_plugin,
    };
}

/// Implementation details of [`register_plugin!`]; not part of the API.
#[doc(hidden)]
pub mod __private {
    pub use crate::bindings;
    pub use crate::bindings::Guest;
    pub use crate::bindings::bmc::plugin::types as wit;
    pub use crate::bindings::exports::bmc::plugin::onboard as wit_onboard;
    pub use crate::bindings::exports::bmc::plugin::snmp as wit_snmp;
    pub use crate::glue::{
        change_password, disable_account, enable_account, info, probe, section_bytes, snmp_state, verify,
    };
}

/// Exports a [`VendorPlugin`] as the component's implementation of the `vendor-plugin-onboard`
/// world (`vendor-plugin` and the `snmp` and `onboard` interfaces),
/// writes the API version and capability sections and installs a panic hook that reports panics to the host log.
/// Call it once, at the root of the plugin crate.
#[macro_export]
macro_rules! register_plugin {
    ($plugin:ty) => {
        #[doc(hidden)]
        pub struct __BmcPluginExports;

        impl $crate::__private::Guest for __BmcPluginExports {
            fn info() -> $crate::__private::wit::PluginInfo {
                $crate::__private::info::<$plugin>()
            }
            fn probe(
                target: $crate::__private::wit::Target,
            ) -> ::core::result::Result<$crate::__private::wit::ProbeResult, $crate::__private::wit::PluginError> {
                $crate::__private::probe::<$plugin>(target)
            }
            fn verify(
                target: $crate::__private::wit::Target,
            ) -> ::core::result::Result<(), $crate::__private::wit::PluginError> {
                $crate::__private::verify::<$plugin>(target)
            }
            fn change_password(
                target: $crate::__private::wit::Target,
            ) -> ::core::result::Result<(), $crate::__private::wit::PluginError> {
                $crate::__private::change_password::<$plugin>(target)
            }
        }

        impl $crate::__private::wit_snmp::Guest for __BmcPluginExports {
            fn state(
                target: $crate::__private::wit::Target,
            ) -> ::core::result::Result<
                ::core::option::Option<$crate::__private::wit_snmp::SnmpV3>,
                $crate::__private::wit::PluginError,
            > {
                $crate::__private::snmp_state::<$plugin>(target)
            }
        }

        impl $crate::__private::wit_onboard::Guest for __BmcPluginExports {
            fn enable_account(
                target: $crate::__private::wit::Target,
            ) -> ::core::result::Result<$crate::__private::wit_onboard::Onboarded, $crate::__private::wit::PluginError>
            {
                $crate::__private::enable_account::<$plugin>(target)
            }
            fn disable_account(
                target: $crate::__private::wit::Target,
            ) -> ::core::result::Result<(), $crate::__private::wit::PluginError> {
                $crate::__private::disable_account::<$plugin>(target)
            }
        }

        // Only a component exports anything. A native build of the crate (its unit tests link the
        // `cdylib` too) cannot: the `snmp` interface's export name (`bmc:plugin/snmp@0.2.0#state`)
        // is not a symbol the platform linker's version script accepts.
        #[cfg(target_arch = "wasm32")]
        $crate::__private::bindings::export_vendor_plugin!(
            __BmcPluginExports with_types_in $crate::__private::bindings
        );

        #[cfg(target_arch = "wasm32")]
        #[unsafe(link_section = "bmc:api-version")]
        #[used]
        static __BMC_API_VERSION: [u8; $crate::API_VERSION.len()] =
            $crate::__private::section_bytes($crate::API_VERSION);

        #[cfg(target_arch = "wasm32")]
        #[unsafe(link_section = "bmc:capabilities")]
        #[used]
        static __BMC_CAPABILITIES: [u8; <$plugin as $crate::VendorPlugin>::CAPABILITIES.len()] =
            $crate::__private::section_bytes(<$plugin as $crate::VendorPlugin>::CAPABILITIES);
    };
}

//! Generated bindings for `bmc:plugin@0.2.0` (the `vendor-plugin-onboard` world: the base exports, `snmp` and `onboard`). Private: plugins see only the hand-written API.

wit_bindgen::generate!({
    path: "wit/v0.2",
    world: "vendor-plugin-onboard",
    pub_export_macro: true,
    export_macro_name: "export_vendor_plugin",
    default_bindings_module: "bmc_plugin_sdk::__private::bindings",
});

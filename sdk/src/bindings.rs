//! Generated bindings for `bmc:plugin@0.2.0` (the `vendor-plugin-snmp` world: the base exports and `snmp`). Private: plugins see only the hand-written API.

wit_bindgen::generate!({
    path: "wit/v0.2",
    world: "vendor-plugin-snmp",
    pub_export_macro: true,
    export_macro_name: "export_vendor_plugin",
    default_bindings_module: "bmc_plugin_sdk::__private::bindings",
});

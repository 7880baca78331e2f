//! Host bindings for `bmc:plugin@0.1.0` (the frozen `wit/v0.1` folder). A breaking contract
//! change gets a new folder and a sibling module; the rest of the host sees only
//! [`super::contract`] types.

wasmtime::component::bindgen!({
    path: "../wit/v0.1",
    world: "bmc:plugin/vendor-plugin",
    // Every import may wait (HTTP, sleep) and must be cancellable with the job; `trappable`
    // lets an invalid resource handle trap the guest instead of panicking the host.
    imports: { default: async | trappable },
    exports: { default: async },
    with: { "bmc:plugin/secrets.secret": super::state::SecretHandle },
});

//! Rust bindings generated from `wit/connector.wit`.

wasmtime::component::bindgen!({
    path: "../wit",
    world: "connector",
    imports: { default: async | trappable },
    exports: { default: async },
});

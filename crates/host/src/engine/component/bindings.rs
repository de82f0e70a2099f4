//! Generated host bindings for `wit/engine.wit`, fenced in this module.

wasmtime::component::bindgen!({ world: "engine", path: "../../wit" });

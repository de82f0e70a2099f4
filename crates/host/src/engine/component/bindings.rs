//! Generated host bindings for `wit/engine.wit`, fenced in this module.
//!
//! Parameters borrow (`ownership: Borrowing`): the host lowers its own strings into the
//! guest without copying them into owned records first.

wasmtime::component::bindgen!({
    world: "engine",
    path: "../../wit",
    ownership: Borrowing { duplicate_if_necessary: true },
});

//! crm-core as a WebAssembly component in wasmtime.
//!
//! - The component is compiled once per process (`Component::new`) and pre-linked
//!   (`EnginePre`); loading a cached precompiled artifact would need `unsafe`
//!   (`Component::deserialize`), which the workspace forbids.
//! - One instance per (engine, OS thread), created on first use and reused for every
//!   tenant and request on that thread; tenant snapshots stay loaded inside it.
//! - Each call has an epoch deadline and each store a memory cap, so no input can hang
//!   or exhaust the host. A trap discards the instance; the next call makes a new one.

mod activities;
mod bindings;
mod conformance;
mod permissions;
mod tenants;

use std::cell::RefCell;
use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use wasmtime::component::{Component, Linker, ResourceTable};
use wasmtime::{Config, Store, StoreLimits, StoreLimitsBuilder};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

use self::bindings::{Engine as EngineWorld, EnginePre};
use super::{EngineError, EngineResult, Tenant};

/// The guest, built by `build.rs`.
const COMPONENT_WASM: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/crm_component.wasm"));
/// Guest linear memory cap per instance: room for a few hundred large directories.
const MAX_GUEST_MEMORY_BYTES: usize = 512 << 20;
/// Epoch tick. The ticker thread advances the engine's epoch this often.
const EPOCH_TICK: Duration = Duration::from_millis(10);
/// Ticks a single call may run: 5 s, far above the slowest legitimate call (a
/// 1000-activity batch takes milliseconds), so only a runaway guest hits it.
const CALL_DEADLINE_TICKS: u64 = 500;

static NEXT_ENGINE_ID: AtomicU64 = AtomicU64::new(1);

thread_local! {
    static INSTANCES: RefCell<HashMap<u64, Instance>> = RefCell::new(HashMap::new());
}

pub(super) struct State {
    wasi: WasiCtx,
    table: ResourceTable,
    limits: StoreLimits,
}

impl WasiView for State {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

/// One guest instance and the tenant snapshot versions it holds.
pub(super) struct Instance {
    store: Store<State>,
    world: EngineWorld,
    loaded: HashMap<String, u64>,
}

pub struct ComponentEngine {
    id: u64,
    engine: wasmtime::Engine,
    pre: EnginePre<State>,
    stop_ticker: Arc<AtomicBool>,
}

impl std::fmt::Debug for ComponentEngine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ComponentEngine")
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

impl ComponentEngine {
    pub fn new() -> anyhow::Result<ComponentEngine> {
        let mut config = Config::new();
        config.epoch_interruption(true);
        // A sync host: skipping async support saves ~330 ns per call (docs/toolchain.md).
        config.concurrency_support(false);
        let engine = wasmtime::Engine::new(&config)?;
        let component = Component::new(&engine, COMPONENT_WASM)?;
        let mut linker = Linker::<State>::new(&engine);
        // Rust's std imports wasi interfaces; they get an empty context (no files,
        // env, clocks the core would use — the core has none).
        wasmtime_wasi::p2::add_to_linker_sync(&mut linker)?;
        let pre = EnginePre::new(linker.instantiate_pre(&component)?)?;
        let stop_ticker = Arc::new(AtomicBool::new(false));
        let ticker_engine = engine.clone();
        let stop = stop_ticker.clone();
        std::thread::Builder::new()
            .name("wasm-epoch".to_owned())
            .spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    std::thread::sleep(EPOCH_TICK);
                    ticker_engine.increment_epoch();
                }
            })?;
        Ok(ComponentEngine {
            id: NEXT_ENGINE_ID.fetch_add(1, Ordering::Relaxed),
            engine,
            pre,
            stop_ticker,
        })
    }

    fn instantiate(&self) -> anyhow::Result<Instance> {
        let state = State {
            wasi: WasiCtx::builder().build(),
            table: ResourceTable::new(),
            limits: StoreLimitsBuilder::new()
                .memory_size(MAX_GUEST_MEMORY_BYTES)
                .build(),
        };
        let mut store = Store::new(&self.engine, state);
        store.limiter(|s| &mut s.limits);
        // Instantiation runs guest code too (initialisers): give it a deadline.
        store.set_epoch_deadline(CALL_DEADLINE_TICKS);
        let world = self.pre.instantiate(&mut store)?;
        Ok(Instance {
            store,
            world,
            loaded: HashMap::new(),
        })
    }

    /// Runs `f` on this thread's instance. A trap (or any wasmtime error) discards the
    /// instance and becomes `EngineError::Fault`; a guest error becomes `EngineError::Core`.
    fn with_instance<T>(
        &self,
        f: impl FnOnce(&mut Instance) -> wasmtime::Result<Result<T, GuestError>>,
    ) -> EngineResult<T> {
        INSTANCES.with_borrow_mut(|instances| {
            let instance = match instances.entry(self.id) {
                Entry::Occupied(e) => e.into_mut(),
                Entry::Vacant(e) => e.insert(
                    self.instantiate()
                        .map_err(|err| EngineError::Fault(format!("instantiate: {err:#}")))?,
                ),
            };
            instance.store.set_epoch_deadline(CALL_DEADLINE_TICKS);
            match f(instance) {
                Ok(answer) => answer.map_err(core_error),
                Err(trap) => {
                    instances.remove(&self.id);
                    tracing::error!(error = %format!("{trap:#}"), "wasm guest trapped; instance discarded");
                    Err(EngineError::Fault(format!("{trap:#}")))
                }
            }
        })
    }

    /// Like `with_instance`, with `tenant`'s snapshot loaded in the instance first.
    fn with_tenant<T>(
        &self,
        tenant: &Tenant,
        f: impl Fn(&mut Instance) -> wasmtime::Result<Result<T, GuestError>>,
    ) -> EngineResult<T> {
        self.with_instance(|instance| {
            if instance.loaded.get(tenant.id()) != Some(&tenant.version())
                && let Err(e) = instance.load(tenant)?
            {
                return Ok(Err(e));
            }
            match f(instance)? {
                // The guest keeps a bounded number of snapshots and may have evicted this one.
                Err(e) if e.code == tenants::NOT_LOADED => {
                    instance.loaded.clear();
                    if let Err(e) = instance.load(tenant)? {
                        return Ok(Err(e));
                    }
                    f(instance)
                }
                answer => Ok(answer),
            }
        })
    }
}

impl Drop for ComponentEngine {
    fn drop(&mut self) {
        self.stop_ticker.store(true, Ordering::Relaxed);
    }
}

type GuestError = bindings::crm::engine::types::Error;

/// Converts the guest's error record into the core's error.
fn core_error(e: GuestError) -> EngineError {
    match crm_core::ErrorCode::parse(&e.code) {
        Some(code) => {
            let mut err = crm_core::CoreError::new(code, e.message);
            err.field = e.field;
            EngineError::Core(err)
        }
        None => EngineError::Fault(format!("guest error `{}`: {}", e.code, e.message)),
    }
}

fn json_fault(e: serde_json::Error) -> EngineError {
    EngineError::Fault(format!("guest answered malformed JSON: {e}"))
}

//! Business flows between the HTTP layer and the store: tenant snapshots, ingest,
//! queries and reports. Handlers stay thin; the CLI calls the same functions.

pub mod admin;
pub mod audit;
pub mod checkpoints;
pub mod clock;
pub mod crm;
pub mod export;
pub mod ingest;
pub mod limits;
pub mod proxies;
pub mod queries;
pub mod reports;
pub mod retention;
pub mod stats;
pub mod tenants;
pub mod tokens;

use crate::engine::{EnginePool, SharedEngine};
use crate::fanout::Fanout;
use crate::store::Store;

/// Everything a request needs, behind one reference count: axum clones the state for
/// every request and extractor, and cloning each part (a dozen `Arc`s and a string)
/// was 6 % of a permission check's CPU.
#[derive(Debug, Clone)]
pub struct App(std::sync::Arc<AppState>);

impl std::ops::Deref for App {
    type Target = AppState;
    fn deref(&self) -> &AppState {
        &self.0
    }
}

impl From<AppState> for App {
    fn from(state: AppState) -> App {
        App(std::sync::Arc::new(state))
    }
}

/// What [`App`] shares; settings are made here before serving starts.
#[derive(Debug)]
pub struct AppState {
    pub store: Store,
    pub engine: SharedEngine,
    /// Threads that run engine work (enrichment, batch checks, reports) off the async
    /// runtime.
    pub engines: EnginePool,
    pub tenants: tenants::Registry,
    pub ids: clock::IdSource,
    /// Delivery to Redis and the upstream API (disabled when neither is configured).
    pub fanout: Fanout,
    pub stats: std::sync::Arc<stats::Stats>,
    /// Bounds on bodies, requests per credential and queued activities.
    pub limits: std::sync::Arc<limits::Limits>,
    /// Header carrying the client IP when behind a trusted reverse proxy (lowercase);
    /// without it the IP is the TCP peer's. Never read from a request body.
    pub client_ip_header: Option<String>,
    /// Peers whose `client_ip_header` is believed.
    pub trusted_proxies: proxies::TrustedProxies,
    /// Signs audit checkpoints; never stored in the database.
    pub checkpoint_key: std::sync::Arc<crm_api::checkpoint::CheckpointKey>,
    /// Opens provisioning (`crm_api::provisioning`); never stored in the database.
    pub operator_secret: Option<std::sync::Arc<str>>,
}

/// One engine thread per core: engine work is CPU-bound, more threads would only
/// multiply component instances (memory) without adding throughput.
fn engine_threads() -> usize {
    std::thread::available_parallelism().map_or(2, std::num::NonZero::get)
}

impl App {
    pub fn new(store: Store, engine: SharedEngine) -> App {
        App::from(AppState::new(store, engine))
    }
}

impl AppState {
    pub fn new(store: Store, engine: SharedEngine) -> AppState {
        AppState {
            tenants: tenants::Registry::new(store.clone(), engine.clone()),
            store,
            engines: EnginePool::start(engine.clone(), engine_threads())
                .expect("the OS starts the engine threads at startup"),
            engine,
            ids: clock::IdSource::default(),
            fanout: Fanout::default(),
            stats: std::sync::Arc::default(),
            limits: std::sync::Arc::default(),
            client_ip_header: None,
            trusted_proxies: proxies::TrustedProxies::default(),
            checkpoint_key: std::sync::Arc::new(checkpoints::ephemeral()),
            operator_secret: None,
        }
    }
}

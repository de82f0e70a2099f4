//! Starting and stopping the HTTP server (used by `serve`, `demo` and the tests).

use anyhow::Context;
use std::net::SocketAddr;
use std::time::Duration;

use axum::extract::ConnectInfo;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tower::ServiceExt;

use crate::engine::{self, EngineKind, SharedEngine};
use crate::fanout::{Fanout, FanoutConfig};
use crate::service::proxies::TrustedProxies;
use crate::service::{App, AppState};
use crate::store::{Location, Store};

#[derive(Debug, Clone)]
pub struct ServerConfig {
    pub db: Location,
    pub listen: SocketAddr,
    pub engine: EngineKind,
    pub client_ip_header: Option<String>,
    /// Proxies whose header is believed (default: loopback).
    pub trusted_proxies: TrustedProxies,
    pub fanout: FanoutConfig,
    /// Requests per second per credential (`None`: unlimited).
    pub rate_limit: Option<u32>,
    /// The file holding the checkpoint signing key (`None`: a key for this process).
    pub checkpoint_key: Option<std::path::PathBuf>,
    /// The file holding the operator's secret (`None`: provisioning is off).
    pub operator_secret: Option<std::path::PathBuf>,
}

impl ServerConfig {
    /// Defaults for everything but where the data lives and where to listen.
    pub fn new(db: Location, listen: SocketAddr) -> ServerConfig {
        ServerConfig {
            db,
            listen,
            engine: EngineKind::Component,
            client_ip_header: None,
            trusted_proxies: TrustedProxies::default(),
            fanout: FanoutConfig::default(),
            rate_limit: None,
            checkpoint_key: None,
            operator_secret: None,
        }
    }
}

/// A running server; dropping it does not stop it, `stop` does.
#[derive(Debug)]
pub struct Running {
    pub addr: SocketAddr,
    pub app: App,
    shutdown: oneshot::Sender<()>,
    task: JoinHandle<std::io::Result<()>>,
}

impl Running {
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Stops accepting, finishes in-flight requests, returns when done.
    pub async fn stop(self) -> anyhow::Result<()> {
        self.app.fanout.stop();
        let _ = self.shutdown.send(());
        self.task.await??;
        Ok(())
    }

    /// Serves until the task ends (Ctrl-C handling is the caller's).
    pub async fn wait(self) -> anyhow::Result<()> {
        // Holding the sender keeps the shutdown signal from firing.
        let Running {
            shutdown: _shutdown,
            task,
            ..
        } = self;
        Ok(task.await??)
    }
}

/// Opens the store, builds the engine and starts serving on `config.listen`.
pub async fn start(config: &ServerConfig) -> anyhow::Result<Running> {
    start_with_engine(config, engine::build(config.engine)?).await
}

/// Like `start`, with an engine built earlier (tests share one compiled component).
pub async fn start_with_engine(
    config: &ServerConfig,
    engine: SharedEngine,
) -> anyhow::Result<Running> {
    // Metrics recorded before the recorder exists are lost: install it first.
    crate::service::stats::prometheus();
    let store = Store::open(&config.db)?;
    let mut app = AppState::new(store.clone(), engine);
    if let Some(path) = &config.checkpoint_key {
        app.checkpoint_key =
            std::sync::Arc::new(crate::service::checkpoints::load_or_create(path)?);
    }
    if let Some(path) = &config.operator_secret {
        let secret = std::fs::read_to_string(path)
            .with_context(|| format!("reading the operator secret {}", path.display()))?;
        crm_api::provisioning::usable_secret(&secret).map_err(anyhow::Error::msg)?;
        app.operator_secret = Some(std::sync::Arc::from(secret.trim()));
    }
    app.fanout = Fanout::start(&config.fanout, store).await?;
    app.client_ip_header = config
        .client_ip_header
        .as_ref()
        .map(|h| h.to_ascii_lowercase());
    app.trusted_proxies = config.trusted_proxies.clone();
    app.limits = std::sync::Arc::new(crate::service::limits::Limits::new(config.rate_limit));
    let app = App::from(app);
    crate::service::retention::spawn(app.clone());
    serve(app, config.listen).await
}

pub async fn serve(app: App, listen: SocketAddr) -> anyhow::Result<Running> {
    let listener = TcpListener::bind(listen).await?;
    let addr = listener.local_addr()?;
    let (shutdown, stopped) = oneshot::channel::<()>();
    let router = crate::api::router(app.clone());
    let task = tokio::spawn(accept(listener, router, stopped));
    Ok(Running {
        addr,
        app,
        shutdown,
        task,
    })
}

/// Longest a client may take to send a request's head, including the wait for the next
/// request on a kept-alive connection: a connection that never finishes its headers
/// would otherwise hold a socket for good. (Bodies have their own 30 s in `api::error`.)
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(30);

/// Pause after a failed `accept` (out of file descriptors, say) before the next one.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(50);

/// Accepts connections until `stopped`, then lets in-flight requests finish: what
/// `axum::serve` does (HTTP/1.1), plus what it does not expose — hyper's timer, so the
/// header-read timeout applies.
async fn accept(
    listener: TcpListener,
    router: axum::Router,
    mut stopped: oneshot::Receiver<()>,
) -> std::io::Result<()> {
    let graceful = GracefulShutdown::new();
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(ACCEPT_BACKOFF).await;
                    continue;
                }
            },
            _ = &mut stopped => break,
        };
        let router = router.clone();
        let service = hyper::service::service_fn(move |mut req: hyper::Request<Incoming>| {
            req.extensions_mut().insert(ConnectInfo(peer));
            router.clone().oneshot(req.map(axum::body::Body::new))
        });
        let conn = graceful.watch(builder.serve_connection(TokioIo::new(stream), service));
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::debug!(error = %e, "connection ended");
            }
        });
    }
    graceful.shutdown().await;
    Ok(())
}

//! A real crm-host on 127.0.0.1 (random port) over a real SQLite file in a temp dir
//! or a real PostgreSQL database, with tenants from the conformance fixture, and a
//! small HTTP client.

pub mod postgres;
pub mod redis;
pub mod upstream;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use crm_core::directory::DirectorySpec;
use crm_core::{Credits, TenantPolicy};
use crm_host::engine::{self, EngineKind, SharedEngine};
use crm_host::server::{self, Running, ServerConfig};
use crm_host::service::admin;
use crm_host::store::{Location, Store};
use crm_store::keys::KeyScope;
use serde_json::{Value, json};

pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// One compiled engine per kind per test binary.
pub fn shared_engine(kind: EngineKind) -> SharedEngine {
    static COMPONENT: OnceLock<SharedEngine> = OnceLock::new();
    static NATIVE: OnceLock<SharedEngine> = OnceLock::new();
    let cell = match kind {
        EngineKind::Component => &COMPONENT,
        EngineKind::Native => &NATIVE,
    };
    cell.get_or_init(|| engine::build(kind).expect("engine builds"))
        .clone()
}

pub fn fixture() -> (TenantPolicy, DirectorySpec) {
    let text = std::fs::read_to_string(repo_root().join("tests/conformance/fixtures/acme.json"))
        .expect("fixture");
    let v: Value = serde_json::from_str(&text).expect("fixture JSON");
    (
        serde_json::from_value(v["policy"].clone()).expect("fixture policy"),
        serde_json::from_value(v["directory"].clone()).expect("fixture directory"),
    )
}

#[derive(Debug, Clone)]
pub struct Keys {
    pub admin: String,
    pub ingest: String,
    pub read: String,
}

/// The storage a test server runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

impl Backend {
    /// A fresh, empty database of this backend.
    pub fn fresh(self, dir: &Path) -> Location {
        match self {
            Backend::Sqlite => Location::Sqlite(dir.join("crm.db")),
            Backend::Postgres => Location::Postgres(postgres::database()),
        }
    }
}

pub struct TestServer {
    pub running: Running,
    /// Holds the SQLite file (and nothing for PostgreSQL) until the server is dropped.
    _dir: tempfile::TempDir,
    pub db: Location,
    pub http: reqwest::Client,
}

impl TestServer {
    pub async fn start(kind: EngineKind) -> TestServer {
        TestServer::start_on(Backend::Sqlite, kind, None).await
    }

    /// On `backend`; with `client_ip_header` set, as behind a trusted reverse proxy.
    pub async fn start_on(
        backend: Backend,
        kind: EngineKind,
        client_ip_header: Option<&str>,
    ) -> TestServer {
        TestServer::start_configured(backend, kind, |c| {
            c.client_ip_header = client_ip_header.map(str::to_owned);
        })
        .await
    }

    /// On `backend`, with the configuration adjusted by `adjust` (fan-out, limits).
    pub async fn start_configured(
        backend: Backend,
        kind: EngineKind,
        adjust: impl FnOnce(&mut ServerConfig),
    ) -> TestServer {
        let dir = tempfile::tempdir().expect("temp dir");
        let db = backend.fresh(dir.path());
        let mut config = ServerConfig::new(db, SocketAddr::from(([127, 0, 0, 1], 0)));
        config.engine = kind;
        config.fanout.spool_dir = dir.path().join("spool");
        adjust(&mut config);
        TestServer::start_at(config, dir).await
    }

    /// On the database at `db`.
    pub async fn start_at_location(db: Location, kind: EngineKind) -> TestServer {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut config = ServerConfig::new(db, SocketAddr::from(([127, 0, 0, 1], 0)));
        config.engine = kind;
        config.fanout.spool_dir = dir.path().join("spool");
        TestServer::start_at(config, dir).await
    }

    /// A server with this configuration; `dir` holds its files.
    pub async fn start_at(config: ServerConfig, dir: tempfile::TempDir) -> TestServer {
        // Server logs appear in a failing test's output.
        let _ = tracing_subscriber::fmt()
            .with_env_filter("crm_host=info,warn")
            .with_test_writer()
            .try_init();
        let db = config.db.clone();
        let running = server::start_with_engine(&config, shared_engine(config.engine))
            .await
            .expect("server starts");
        TestServer {
            running,
            _dir: dir,
            db,
            http: reqwest::Client::new(),
        }
    }

    pub fn spool_dir(&self) -> PathBuf {
        self._dir.path().join("spool")
    }

    /// A second, independent store over this server's database: what it reads was
    /// committed, not merely held by the server.
    pub fn independent_store(&self) -> Store {
        Store::open(&self.db).expect("second store opens")
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.running.url())
    }

    /// A tenant with the acme fixture directory, `balance` credits, and one key per scope.
    pub async fn tenant(&self, id: &str, balance: &str) -> Keys {
        let (policy, directory) = fixture();
        let store = &self.running.app.store;
        admin::create_tenant_in(
            store,
            id,
            id,
            &policy,
            &directory,
            Credits::parse(balance).expect("amount"),
        )
        .await
        .expect("tenant created");
        let mut keys = Vec::new();
        for scope in [KeyScope::Admin, KeyScope::Ingest, KeyScope::Read] {
            keys.push(
                admin::create_key_in(store, id, &[scope], None)
                    .await
                    .expect("key"),
            );
        }
        let [admin, ingest, read] = <[String; 3]>::try_from(keys).expect("three keys");
        Keys {
            admin,
            ingest,
            read,
        }
    }

    /// Status and body text, whatever the content type.
    pub async fn call_text(
        &self,
        method: &str,
        path: &str,
        key: &str,
        body: Option<Value>,
    ) -> (u16, String) {
        let method = reqwest::Method::from_bytes(method.as_bytes()).expect("method");
        let mut req = self.http.request(method, self.url(path)).bearer_auth(key);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.expect("request sent");
        let status = resp.status().as_u16();
        (status, resp.text().await.expect("body"))
    }

    pub async fn call(
        &self,
        method: &str,
        path: &str,
        key: &str,
        body: Option<Value>,
    ) -> (u16, Value) {
        let (status, text) = self.call_text(method, path, key, body).await;
        let value = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or_else(|_| panic!("non-JSON answer: {text}"))
        };
        (status, value)
    }

    pub async fn get(&self, path: &str, key: &str) -> (u16, Value) {
        self.call("GET", path, key, None).await
    }

    pub async fn post(&self, path: &str, key: &str, body: Value) -> (u16, Value) {
        self.call("POST", path, key, Some(body)).await
    }

    /// Every activity of a listing, following cursors.
    pub async fn all(&self, path: &str, key: &str) -> Vec<Value> {
        let mut out = Vec::new();
        let sep = if path.contains('?') { '&' } else { '?' };
        let mut next: Option<String> = None;
        loop {
            let page_path = match &next {
                Some(c) => format!("{path}{sep}limit=500&cursor={c}"),
                None => format!("{path}{sep}limit=500"),
            };
            let (status, page) = self.get(&page_path, key).await;
            assert_eq!(status, 200, "{page}");
            out.extend(
                page["activities"]
                    .as_array()
                    .expect("activities")
                    .iter()
                    .cloned(),
            );
            match page["nextCursor"].as_str() {
                Some(c) => next = Some(c.to_owned()),
                None => return out,
            }
        }
    }
}

/// An activity input for the acme fixture.
pub fn activity(id: &str, user: &str, op: &str) -> Value {
    json!({ "id": id, "userId": user, "operation": op,
            "compliance": { "location": "Berlin", "authenticationMethod": "sso", "userAgent": "test/1" } })
}

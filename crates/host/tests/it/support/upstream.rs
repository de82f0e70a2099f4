//! A stand-in for the upstream batch API (`POST /api/activities/batch`) on a loopback
//! port, which a test can tell to succeed, fail with 500, refuse with 400, or hang; it
//! also takes credit alert events (`POST /api/credit-alerts/batch`), always.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use serde_json::Value;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Accept,
    Fail,
    Refuse,
    /// Holds each request this long, then accepts it.
    Slow(Duration),
    /// Answers 307 to the batch endpoint on this loopback port.
    RedirectTo(u16),
}

#[derive(Debug)]
struct Inner {
    mode: Mode,
    hits: usize,
    received: Vec<Value>,
    alerts: Vec<Value>,
    /// Every accepted request's headers and body, as they arrived.
    requests: Vec<(HeaderMap, bytes::Bytes)>,
}

#[derive(Debug, Clone)]
pub struct Upstream {
    pub url: String,
    inner: Arc<Mutex<Inner>>,
}

async fn batch(
    State(s): State<Arc<Mutex<Inner>>>,
    headers: HeaderMap,
    raw: bytes::Bytes,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    let mode = {
        let mut i = s.lock().expect("stub state");
        i.hits += 1;
        i.mode
    };
    match mode {
        Mode::Fail => return StatusCode::INTERNAL_SERVER_ERROR.into_response(),
        Mode::Refuse => return StatusCode::BAD_REQUEST.into_response(),
        Mode::RedirectTo(port) => {
            let to = format!("http://127.0.0.1:{port}/api/activities/batch");
            return (
                StatusCode::TEMPORARY_REDIRECT,
                [(axum::http::header::LOCATION, to)],
            )
                .into_response();
        }
        Mode::Slow(d) => tokio::time::sleep(d).await,
        Mode::Accept => {}
    }
    let Ok(body) = serde_json::from_slice::<Value>(&raw) else {
        return StatusCode::BAD_REQUEST.into_response();
    };
    let items = body["activities"].as_array().cloned().unwrap_or_default();
    let mut i = s.lock().expect("stub state");
    i.received.extend(items);
    i.requests.push((headers, raw));
    StatusCode::OK.into_response()
}

async fn alerts(State(s): State<Arc<Mutex<Inner>>>, body: axum::Json<Value>) -> StatusCode {
    let items = body["alerts"].as_array().cloned().unwrap_or_default();
    s.lock().expect("stub state").alerts.extend(items);
    StatusCode::OK
}

impl Upstream {
    pub async fn start(mode: Mode) -> Upstream {
        let inner = Arc::new(Mutex::new(Inner {
            mode,
            hits: 0,
            received: Vec::new(),
            alerts: Vec::new(),
            requests: Vec::new(),
        }));
        let app = axum::Router::new()
            .route("/api/activities/batch", post(batch))
            .route("/api/credit-alerts/batch", post(alerts))
            .with_state(inner.clone());
        let listener = tokio::net::TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0)))
            .await
            .expect("bind");
        let url = format!("http://{}", listener.local_addr().expect("addr"));
        tokio::spawn(async move { axum::serve(listener, app).await });
        Upstream { url, inner }
    }

    pub fn set(&self, mode: Mode) {
        self.inner.lock().expect("stub state").mode = mode;
    }

    pub fn hits(&self) -> usize {
        self.inner.lock().expect("stub state").hits
    }

    /// Ids of the activities accepted so far, in arrival order.
    pub fn ids(&self) -> Vec<String> {
        self.inner
            .lock()
            .expect("stub state")
            .received
            .iter()
            .map(|a| a["id"].as_str().unwrap_or_default().to_owned())
            .collect()
    }

    /// The activities accepted so far, in arrival order.
    pub fn records(&self) -> Vec<Value> {
        self.inner.lock().expect("stub state").received.clone()
    }

    /// The alert events received so far, in arrival order.
    pub fn alerts(&self) -> Vec<Value> {
        self.inner.lock().expect("stub state").alerts.clone()
    }

    /// The accepted requests' headers and bodies.
    pub fn requests(&self) -> Vec<(HeaderMap, bytes::Bytes)> {
        self.inner.lock().expect("stub state").requests.clone()
    }
}

//! The Redis sink: per delivery one pipeline with, for every activity, `XADD
//! crm:{tenant}:activities MAXLEN ~ N * id <id> seq <seq> activity <json>` (durable;
//! consumer groups read it at their pace) and `PUBLISH` of the record on the same
//! channel name for live listeners (defect 6 published one by one, fire-and-forget).
//! Credit alert events go the same way to `crm:{tenant}:alerts` (`… entry <n> alert
//! <json>`), from their own outbox and cursor (sink `redis-alerts`).
//! The connection manager reconnects by itself; a failed pipeline is retried whole
//! (consumers deduplicate by id).

use std::path::Path;
use std::time::Duration;

use crm_store::outbox::Outgoing;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};

use super::sink::{Delivery, Feed, Sink, SinkError};

/// Activities per pipeline: large enough to amortise the round trip, small enough to
/// keep one pipeline well under a millisecond of Redis time.
const BATCH: usize = 500;
/// A Redis that does not answer within this is treated as down (retry later).
const RESPONSE_TIMEOUT: Duration = Duration::from_secs(5);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);

/// The stream and channel of a tenant's activities.
pub fn channel(tenant: &str) -> String {
    format!("crm:{tenant}:activities")
}

/// The stream and channel of a tenant's credit alert events.
pub fn alerts_channel(tenant: &str) -> String {
    format!("crm:{tenant}:alerts")
}

pub struct RedisSink {
    client: redis::Client,
    /// Made on first use (a Redis that is down at start is just an outage), and made
    /// anew after a failed delivery: after a server is killed mid-reply a manager could
    /// stay broken for good (the repeated-outage test), a fresh one connects.
    conn: tokio::sync::Mutex<Option<ConnectionManager>>,
    /// Approximate length the stream is trimmed to (`MAXLEN ~`).
    max_len: u64,
    feed: Feed,
}

impl std::fmt::Debug for RedisSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "RedisSink({:?}, max_len={})", self.feed, self.max_len)
    }
}

/// A client for `url`: a `rediss://` URL connects with TLS, the server's certificate
/// verified against `ca_file` (PEM) or the public roots. The sink and `crm-host tail`
/// both connect with it.
pub fn client(url: &str, ca_file: Option<&Path>) -> anyhow::Result<redis::Client> {
    Ok(match ca_file {
        Some(path) => redis::Client::build_with_tls(
            url,
            redis::TlsCertificates {
                client_tls: None,
                root_cert: Some(crate::tls::read_pem(path)?),
            },
        )?,
        None => redis::Client::open(url)?,
    })
}

impl RedisSink {
    /// Checks the URL; connects on first delivery (see [`client`]).
    pub fn new(
        url: &str,
        max_len: u64,
        ca_file: Option<&Path>,
        feed: Feed,
    ) -> anyhow::Result<RedisSink> {
        let client = client(url, ca_file)?;
        Ok(RedisSink {
            client,
            conn: tokio::sync::Mutex::new(None),
            max_len,
            feed,
        })
    }

    async fn conn(&self) -> redis::RedisResult<ConnectionManager> {
        let mut slot = self.conn.lock().await;
        if let Some(conn) = slot.as_ref() {
            return Ok(conn.clone());
        }
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(CONNECT_TIMEOUT)
            .set_response_timeout(RESPONSE_TIMEOUT);
        let conn = ConnectionManager::new_with_config(self.client.clone(), config).await?;
        *slot = Some(conn.clone());
        Ok(conn)
    }
}

impl Sink for RedisSink {
    fn name(&self) -> &'static str {
        match self.feed {
            Feed::Activities => "redis",
            Feed::Alerts => "redis-alerts",
        }
    }

    fn feed(&self) -> Feed {
        self.feed
    }

    fn batch_size(&self) -> usize {
        BATCH
    }

    fn spools(&self) -> bool {
        false
    }

    fn deliver<'a>(&'a self, tenant: &'a str, batch: &'a [Outgoing]) -> Delivery<'a> {
        Box::pin(async move {
            let (key, number, record) = match self.feed {
                Feed::Activities => (channel(tenant), "seq", "activity"),
                Feed::Alerts => (alerts_channel(tenant), "entry", "alert"),
            };
            let mut pipe = redis::pipe();
            for o in batch {
                pipe.cmd("XADD")
                    .arg(&key)
                    .arg("MAXLEN")
                    .arg("~")
                    .arg(self.max_len)
                    .arg("*")
                    .arg("id")
                    .arg(&o.id)
                    .arg(number)
                    .arg(o.seq)
                    .arg(record)
                    .arg(&o.body)
                    .ignore();
                pipe.cmd("PUBLISH").arg(&key).arg(&o.body).ignore();
            }
            let retry = |e: redis::RedisError| SinkError::Retry(e.to_string());
            // One deadline over connecting and the pipeline: after a server was killed
            // mid-reply, the connection manager's reconnect could leave the pipeline's
            // future pending forever, and the relay with it (the repeated-outage test).
            let delivery = async {
                let mut conn = self.conn().await.map_err(retry)?;
                pipe.query_async::<()>(&mut conn).await.map_err(retry)
            };
            let result = tokio::time::timeout(CONNECT_TIMEOUT + RESPONSE_TIMEOUT, delivery)
                .await
                .map_err(|_| SinkError::Retry("Redis did not answer in time".to_owned()))
                .and_then(|r| r);
            if result.is_err() {
                *self.conn.lock().await = None;
            }
            result
        })
    }
}

//! Delivery to the webhook endpoints tenants register (issue 27): one task runs the two
//! steps of `crm_store::webhooks` — fan-in of new credit alert events into deliveries,
//! then dispatch of the deliveries that are due — in rounds, woken with the other
//! relays when something commits. Several hosts on one PostgreSQL may run it at once:
//! fan-in inserts each delivery once and a claim is exclusive.
//!
//! Every request is signed with the endpoint's secret, has a deadline, follows no
//! redirect, and connects only to addresses `crm_api::webhook_targets` allows: the URL
//! is checked before each attempt and every address a name resolves to is checked by
//! this client's resolver, so a name re-pointed inward after registration is refused.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use crm_api::webhook_targets::{TargetPolicy, attempt_target};
use crm_store::webhooks::{self, Delivery, Outcome};
use crm_store::{alerts, outbox};
use reqwest::dns::{Addrs, Name, Resolve, Resolving};

use super::{Fanout, POLL_INTERVAL};
use crate::error::{HostError, HostResult};
use crate::service::clock;
use crate::store::Store;

/// Runs the webhook rounds until the fan-out stops.
pub fn start(store: Store, fanout: Fanout, targets: TargetPolicy) -> anyhow::Result<()> {
    let client = reqwest::Client::builder()
        .timeout(Duration::from_millis(webhooks::SEND_TIMEOUT_MS))
        .redirect(reqwest::redirect::Policy::none())
        .dns_resolver(Arc::new(Guarded(targets.clone())))
        .build()?;
    tokio::spawn(
        Dispatcher {
            store,
            fanout,
            client,
            targets,
        }
        .run(),
    );
    Ok(())
}

/// Resolves names with the system resolver and keeps only the addresses the policy
/// allows; a name with none left fails to connect.
struct Guarded(TargetPolicy);

impl Resolve for Guarded {
    fn resolve(&self, name: Name) -> Resolving {
        let policy = self.0.clone();
        Box::pin(async move {
            let host = name.as_str().to_owned();
            let found: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), 0))
                .await?
                .filter(|a| policy.allows_address(a.ip()))
                .collect();
            if found.is_empty() {
                return Err(format!("`{host}` resolves to no public address").into());
            }
            let addrs: Addrs = Box::new(found.into_iter());
            Ok(addrs)
        })
    }
}

struct Dispatcher {
    store: Store,
    fanout: Fanout,
    client: reqwest::Client,
    targets: TargetPolicy,
}

impl Dispatcher {
    async fn run(self) {
        let inner = self.fanout.inner.clone();
        while !inner.stopped.load(Ordering::SeqCst) {
            let woken = inner.wake.notified();
            let mut progressed = false;
            for (step, result) in [
                ("fan-in", self.fan_in().await),
                ("dispatch", self.dispatch().await),
            ] {
                match result {
                    Ok(p) => progressed |= p,
                    Err(e) => tracing::warn!(step, error = %e, "webhook round failed"),
                }
            }
            if !progressed {
                let _ = tokio::time::timeout(POLL_INTERVAL, woken).await;
            }
        }
    }

    /// Turns every tenant's new alert events into deliveries; true if any were read.
    async fn fan_in(&self) -> HostResult<bool> {
        let d = self.store.dialect();
        let pending = self
            .store
            .read(move |c| {
                c.query(&alerts::pending(d, webhooks::SINK))?
                    .iter()
                    .map(|r| outbox::decode_pending(r).map_err(HostError::from))
                    .collect::<HostResult<Vec<_>>>()
            })
            .await?;
        let progressed = !pending.is_empty();
        for p in pending {
            let now = clock::now().millis();
            self.store
                .write(None, move |c| {
                    let (t, after) = (p.tenant_id.as_str(), p.delivered_seq);
                    let endpoints = c.query(&webhooks::list(d, t))?;
                    let events = c.query(&alerts::after(d, t, after, webhooks::FAN_IN_BATCH))?;
                    let step = webhooks::fan_in_step(d, t, &endpoints, &events, now)?;
                    c.execute_all(&step)?;
                    Ok(())
                })
                .await?;
        }
        Ok(progressed)
    }

    /// Sends the deliveries due now, at once; true if any were due.
    async fn dispatch(&self) -> HostResult<bool> {
        let (d, now) = (self.store.dialect(), clock::now().millis());
        // Most rounds have nothing due: find that out with a read, not the writer.
        let due = self
            .store
            .read(move |c| Ok(c.query_opt(&webhooks::any_due(d, now))?.is_some()))
            .await?;
        if !due {
            return Ok(false);
        }
        let claimed = self
            .store
            .write(None, move |c| {
                c.query(&webhooks::claim_due(d, now))?
                    .iter()
                    .map(|r| webhooks::decode_delivery(r).map_err(HostError::from))
                    .collect::<HostResult<Vec<_>>>()
            })
            .await?;
        let progressed = !claimed.is_empty();
        let attempts = claimed.into_iter().map(|delivery| async move {
            let outcome = self.attempt(&delivery).await;
            if let Outcome::Answered(s) = outcome
                && (200..300).contains(&s)
            {
                self.fanout
                    .inner
                    .stats
                    .delivered
                    .fetch_add(1, Ordering::Relaxed);
            } else {
                self.fanout
                    .inner
                    .stats
                    .failures
                    .fetch_add(1, Ordering::Relaxed);
            }
            let now = clock::now().millis();
            self.store
                .write(None, move |c| {
                    c.execute(&webhooks::settle(d, &delivery, &outcome, now))?;
                    Ok(())
                })
                .await
        });
        for result in futures_util::future::join_all(attempts).await {
            result?;
        }
        Ok(progressed)
    }

    /// One signed POST of a delivery to its endpoint.
    async fn attempt(&self, delivery: &Delivery) -> Outcome {
        let d = self.store.dialect();
        let (tenant, id) = (delivery.tenant_id.clone(), delivery.endpoint_id.clone());
        let endpoint = self
            .store
            .read(move |c| {
                c.query_opt(&webhooks::get(d, &tenant, &id))?
                    .map(|r| webhooks::decode_endpoint(&r).map_err(HostError::from))
                    .transpose()
            })
            .await;
        let endpoint = match endpoint {
            Ok(e) => e,
            Err(e) => return Outcome::Failed(format!("reading the endpoint: {e}")),
        };
        let (url, secret) = match attempt_target(&self.targets, endpoint.as_ref()) {
            Ok(target) => target,
            Err(outcome) => return outcome,
        };
        let body = delivery.payload.clone().into_bytes();
        let mut req = self
            .client
            .post(url)
            .header(reqwest::header::CONTENT_TYPE, "application/json");
        for (name, value) in secret.headers(&body, clock::now().millis() / 1000).pairs() {
            req = req.header(name, value);
        }
        match req.body(body).send().await {
            Ok(r) => Outcome::Answered(r.status().as_u16()),
            // The chain of causes, without the URL (the log shows it to the tenant,
            // who knows it; the message stays short).
            Err(e) => Outcome::Failed(failure(&e)),
        }
    }
}

/// What went wrong with a request, in words: timeout, connection, or the cause.
fn failure(e: &reqwest::Error) -> String {
    let kind = if e.is_timeout() {
        "timed out"
    } else if e.is_connect() {
        "could not connect"
    } else {
        "request failed"
    };
    let mut cause = std::error::Error::source(e);
    let mut detail = String::new();
    while let Some(c) = cause {
        detail = c.to_string();
        cause = c.source();
    }
    if detail.is_empty() {
        kind.to_owned()
    } else {
        format!("{kind}: {detail}")
    }
}

#[cfg(test)]
mod tests {
    use std::str::FromStr;

    use super::*;

    async fn resolved(policy: &str, name: &str) -> Result<Vec<SocketAddr>, String> {
        let name = Name::from_str(name).map_err(|e| e.to_string())?;
        Guarded(TargetPolicy::from_list(policy))
            .resolve(name)
            .await
            .map(Iterator::collect)
            .map_err(|e| e.to_string())
    }

    /// `localhost` resolves from the hosts file, without a network: a name that only
    /// reaches inward fails to connect unless the operator allowed its address.
    #[tokio::test]
    async fn names_that_resolve_inward_are_refused_at_connection_time() {
        let refused = resolved("", "localhost").await.expect_err("loopback only");
        assert!(refused.contains("no public address"), "{refused}");
        let allowed = resolved("127.0.0.1", "localhost").await.expect("allowed");
        assert!(
            allowed.iter().all(|a| a.ip().is_loopback()) && !allowed.is_empty(),
            "{allowed:?}"
        );
    }
}

//! `serve`: settings from flags, `CRM_*` environment variables and an optional TOML
//! file, in that order of precedence.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::Context;
use serde::Deserialize;

use crm_api::webhook_targets::TargetPolicy;

use crate::engine::EngineKind;
use crate::fanout::FanoutConfig;
use crate::server::{self, ServerConfig};
use crate::service::proxies::TrustedProxies;
use crate::store::Location;

#[derive(Debug, clap::Args)]
pub struct ServeArgs {
    /// TOML file with any of the settings below (snake_case names); see
    /// docs/examples/crm.toml.
    #[arg(long, env = "CRM_CONFIG")]
    config: Option<PathBuf>,
    /// SQLite database file, or a `postgres://` URL (several hosts may share one).
    #[arg(long, env = "CRM_DB")]
    db: Option<String>,
    #[arg(long, env = "CRM_LISTEN")]
    listen: Option<SocketAddr>,
    #[arg(long, env = "CRM_ENGINE", value_enum)]
    engine: Option<EngineKind>,
    /// Header set by a trusted reverse proxy with the client IP (e.g. X-Forwarded-For).
    /// Leave unset when clients connect directly: they could forge it.
    #[arg(long, env = "CRM_CLIENT_IP_HEADER")]
    client_ip_header: Option<String>,
    /// Proxies (addresses or networks) whose header is believed; default loopback.
    #[arg(
        long = "trusted-proxy",
        env = "CRM_TRUSTED_PROXIES",
        value_delimiter = ','
    )]
    trusted_proxies: Vec<String>,
    /// Requests per second one API key or viewer token may make (default: unlimited).
    #[arg(long, env = "CRM_RATE_LIMIT")]
    rate_limit: Option<u32>,
    /// File with the key that signs audit checkpoints (created when missing). Keep it
    /// where whoever can write the database cannot. Without it, checkpoints are signed
    /// with a key made for this process (its public key changes at every start).
    #[arg(long, env = "CRM_CHECKPOINT_KEY")]
    checkpoint_key: Option<PathBuf>,
    /// File holding the operator's secret, which `POST /v1/operator/tenants` needs
    /// (provisioning is off without it).
    #[arg(long, env = "CRM_OPERATOR_SECRET")]
    operator_secret: Option<PathBuf>,
    #[command(flatten)]
    fanout: FanoutArgs,
}

/// Where committed activities are delivered (both optional).
#[derive(Debug, Default, clap::Args)]
pub struct FanoutArgs {
    /// Redis for the activity streams (`redis://127.0.0.1:6379`; `rediss://` for TLS).
    #[arg(long, env = "CRM_REDIS_URL")]
    redis_url: Option<String>,
    /// CA certificates (PEM) to verify a `rediss://` server with (default: public roots).
    #[arg(long, env = "CRM_REDIS_CA")]
    redis_ca: Option<PathBuf>,
    /// Base URL of the upstream batch API (`POST {url}/api/activities/batch`).
    #[arg(long, env = "CRM_UPSTREAM_URL")]
    upstream_url: Option<String>,
    /// Header sent to the upstream, `Name: value` (e.g. `Authorization: Bearer …`).
    #[arg(long, env = "CRM_UPSTREAM_AUTH")]
    upstream_auth: Option<String>,
    /// `whsec_…`: upstream requests are signed as Standard Webhooks says (`webhook-id`,
    /// `webhook-timestamp`, `webhook-signature`). Prefer the environment to the flag.
    #[arg(long, env = "CRM_UPSTREAM_SIGNING_SECRET")]
    upstream_signing_secret: Option<String>,
    /// Folder of the upstream's NDJSON spool (`activity-backup-{tenant}.ndjson`).
    #[arg(long, env = "CRM_SPOOL_DIR")]
    spool_dir: Option<PathBuf>,
    /// Undelivered activities per tenant past which ingest answers 503.
    #[arg(long, env = "CRM_MAX_BACKLOG")]
    max_backlog: Option<u64>,
    /// Hosts (names or addresses, exactly as in a URL) tenants' webhooks may reach
    /// although they are private or loopback, over `http` too: a receiver on your own
    /// network. Everything else must be public `https`.
    #[arg(
        long = "webhook-allow-host",
        env = "CRM_WEBHOOK_ALLOW_HOSTS",
        value_delimiter = ','
    )]
    webhook_allow_hosts: Vec<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    db: Option<String>,
    listen: Option<SocketAddr>,
    engine: Option<EngineKind>,
    client_ip_header: Option<String>,
    trusted_proxies: Option<Vec<String>>,
    rate_limit: Option<u32>,
    checkpoint_key: Option<PathBuf>,
    operator_secret: Option<PathBuf>,
    redis_url: Option<String>,
    redis_ca: Option<PathBuf>,
    upstream_url: Option<String>,
    upstream_auth: Option<String>,
    upstream_signing_secret: Option<String>,
    spool_dir: Option<PathBuf>,
    max_backlog: Option<u64>,
    webhook_allow_hosts: Option<Vec<String>>,
}

fn read_file(path: &Path) -> anyhow::Result<FileConfig> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    toml::from_str(&text).with_context(|| format!("parsing {}", path.display()))
}

impl FanoutArgs {
    /// Flags and environment over the file over the defaults.
    fn resolve(self, file: &mut FileConfig) -> FanoutConfig {
        let defaults = FanoutConfig::default();
        FanoutConfig {
            redis_url: self.redis_url.or(file.redis_url.take()),
            redis_ca: self.redis_ca.or(file.redis_ca.take()),
            upstream_url: self.upstream_url.or(file.upstream_url.take()),
            upstream_auth: self.upstream_auth.or(file.upstream_auth.take()),
            upstream_signing_secret: self
                .upstream_signing_secret
                .or(file.upstream_signing_secret.take()),
            spool_dir: self
                .spool_dir
                .or(file.spool_dir.take())
                .unwrap_or(defaults.spool_dir.clone()),
            max_backlog: self
                .max_backlog
                .or(file.max_backlog)
                .unwrap_or(defaults.max_backlog),
            webhook_targets: TargetPolicy::from_list(
                &match (self.webhook_allow_hosts, file.webhook_allow_hosts.take()) {
                    (flags, _) if !flags.is_empty() => flags,
                    (_, Some(listed)) => listed,
                    _ => Vec::new(),
                }
                .join(","),
            ),
            ..defaults
        }
    }

    /// For the demo: its own flags only.
    pub fn into_config(self) -> FanoutConfig {
        self.resolve(&mut FileConfig::default())
    }
}

pub async fn serve(args: ServeArgs) -> anyhow::Result<()> {
    let mut file = match &args.config {
        Some(p) => read_file(p)?,
        None => FileConfig::default(),
    };
    let config = ServerConfig {
        db: Location::parse(
            &args
                .db
                .or(file.db.take())
                .unwrap_or_else(|| "crm.db".to_owned()),
        ),
        listen: args
            .listen
            .or(file.listen)
            .unwrap_or_else(super::default_listen),
        engine: args.engine.or(file.engine).unwrap_or(EngineKind::Component),
        client_ip_header: args.client_ip_header.or(file.client_ip_header.take()),
        trusted_proxies: match (args.trusted_proxies, file.trusted_proxies.take()) {
            (flags, _) if !flags.is_empty() => TrustedProxies::parse(&flags)?,
            (_, Some(listed)) => TrustedProxies::parse(&listed)?,
            _ => TrustedProxies::default(),
        },
        rate_limit: args.rate_limit.or(file.rate_limit),
        checkpoint_key: args.checkpoint_key.or(file.checkpoint_key.take()),
        operator_secret: args.operator_secret.or(file.operator_secret.take()),
        fanout: args.fanout.resolve(&mut file),
    };
    if config.checkpoint_key.is_none() {
        tracing::warn!(
            "no --checkpoint-key: audit checkpoints are signed with a key for this process only"
        );
    }
    let running = server::start(&config).await?;
    tracing::info!(url = %running.url(), db = %config.db, engine = ?config.engine,
        redis = config.fanout.redis_url.is_some(), upstream = config.fanout.upstream_url.is_some(), "serving");
    tokio::select! {
        result = running.wait() => result,
        () = super::shutdown_signal() => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_documented_example_config_parses() {
        let example = include_str!("../../../../docs/examples/crm.toml");
        let parsed: FileConfig = toml::from_str(example).expect("docs/examples/crm.toml parses");
        assert_eq!(parsed.db.as_deref(), Some("crm.db"));
        assert_eq!(parsed.engine, Some(EngineKind::Component));
    }
}

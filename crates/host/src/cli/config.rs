//! `serve`: settings from flags, `CRM_*` environment variables and an optional TOML
//! file, in that order of precedence.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::Context;
use serde::Deserialize;

use crate::engine::EngineKind;
use crate::server::{self, ServerConfig};
use crate::store::Location;

#[derive(Debug, clap::Args)]
pub struct ServeArgs {
    /// TOML file with `db`, `listen`, `engine`, `client_ip_header`.
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
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    db: Option<String>,
    listen: Option<SocketAddr>,
    engine: Option<EngineKind>,
    client_ip_header: Option<String>,
}

fn read_file(path: &Path) -> anyhow::Result<FileConfig> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    toml::from_str(&text).with_context(|| format!("parsing {}", path.display()))
}

pub async fn serve(args: ServeArgs) -> anyhow::Result<()> {
    let file = match &args.config {
        Some(p) => read_file(p)?,
        None => FileConfig::default(),
    };
    let config = ServerConfig {
        db: Location::parse(&args.db.or(file.db).unwrap_or_else(|| "crm.db".to_owned())),
        listen: args
            .listen
            .or(file.listen)
            .unwrap_or_else(super::default_listen),
        engine: args.engine.or(file.engine).unwrap_or(EngineKind::Component),
        client_ip_header: args.client_ip_header.or(file.client_ip_header),
    };
    let running = server::start(&config).await?;
    tracing::info!(url = %running.url(), db = %config.db, engine = ?config.engine, "serving");
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

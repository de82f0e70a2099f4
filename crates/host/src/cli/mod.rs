//! The `crm-host` command line.

mod bench;
mod config;
mod demo;
mod ingest_parts;
pub mod loadgen;
mod records;
mod replay;
mod tail;
pub mod tcp_floor;

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Parser, Subcommand};

use crate::store::Location;
use crm_store::keys::KeyScope;

#[derive(Debug, Parser)]
#[command(
    name = "crm-host",
    version,
    about = "CRM activity engine, on-prem host"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Serve the API (production entry; settings from a config file and CRM_* env vars).
    Serve(config::ServeArgs),
    /// A self-contained demo: embedded SQLite, a demo tenant, ~50 users, a month of activity.
    Demo(demo::DemoArgs),
    /// Tenant administration.
    Tenant {
        #[command(subcommand)]
        command: TenantCommand,
    },
    /// API key administration.
    Key {
        #[command(subcommand)]
        command: KeyCommand,
    },
    /// Viewer-token administration (dashboard links).
    ViewerToken {
        #[command(subcommand)]
        command: ViewerTokenCommand,
    },
    /// Directory administration.
    Directory {
        #[command(subcommand)]
        command: DirectoryCommand,
    },
    /// Print a report as tables.
    Report(records::ReportArgs),
    /// Export a tenant's records (NDJSON or CSV) in chain order.
    Export(records::ExportArgs),
    /// Recompute a tenant's hash chain; name the first bad sequence number.
    Verify(records::VerifyArgs),
    /// Benchmark helpers (seed data, raw insert reference, many tenants, upstream stub).
    #[command(hide = true)]
    Bench {
        #[command(subcommand)]
        command: bench::BenchCommand,
    },
    /// Generate load against a running server; print throughput and latency.
    Loadgen(loadgen::LoadgenArgs),
    /// Re-send the upstream spool; remove what was delivered.
    Replay(replay::ReplayArgs),
    /// Follow a tenant's activity stream in Redis (consumer group) and print it.
    Tail(tail::TailArgs),
}

#[derive(Debug, clap::Args)]
pub struct DbArg {
    /// SQLite database file, or a `postgres://` URL.
    #[arg(long, env = "CRM_DB", default_value = "crm.db", value_parser = parse_location)]
    pub db: Location,
}

pub fn parse_location(text: &str) -> Result<Location, String> {
    if text.trim().is_empty() {
        return Err("the database location is empty".to_owned());
    }
    Ok(Location::parse(text))
}

/// `admin`, `ingest` or `read`.
pub fn parse_scope(text: &str) -> Result<KeyScope, String> {
    KeyScope::parse(text)
        .ok_or_else(|| format!("`{text}` is not a scope; use admin, ingest or read"))
}

#[derive(Debug, Subcommand)]
enum TenantCommand {
    /// Create a tenant with an empty directory.
    Create {
        #[command(flatten)]
        db: DbArg,
        #[arg(long)]
        id: String,
        #[arg(long)]
        name: String,
        /// IANA timezone for reports.
        #[arg(long, default_value = "UTC")]
        timezone: String,
        /// Opening credit balance, e.g. 1000 or 12.5.
        #[arg(long, default_value = "0")]
        balance: String,
    },
}

#[derive(Debug, Subcommand)]
enum KeyCommand {
    /// Create an API key; it is printed once and stored only as a hash.
    Create {
        #[command(flatten)]
        db: DbArg,
        #[arg(long)]
        tenant: String,
        #[arg(long = "scope", required = true, value_parser = parse_scope)]
        scopes: Vec<KeyScope>,
        #[arg(long)]
        label: Option<String>,
        /// Lifetime in days (default: no expiry).
        #[arg(long)]
        expires_in_days: Option<u32>,
    },
    /// List a tenant's keys (never their secrets).
    List {
        #[command(flatten)]
        db: DbArg,
        #[arg(long)]
        tenant: String,
    },
    /// Revoke a key; running servers refuse it on their next request.
    Revoke {
        #[command(flatten)]
        db: DbArg,
        #[arg(long)]
        tenant: String,
        /// The key's id (`key_…`, from `key list`).
        id: String,
    },
}

#[derive(Debug, Subcommand)]
enum ViewerTokenCommand {
    /// Replace the tenant's signing secret: every viewer token issued before is refused.
    Rotate {
        #[command(flatten)]
        db: DbArg,
        #[arg(long)]
        tenant: String,
    },
    /// Revoke one viewer token by its id (the `id` of its issue answer).
    Revoke {
        #[command(flatten)]
        db: DbArg,
        #[arg(long)]
        tenant: String,
        id: String,
    },
}

#[derive(Debug, Subcommand)]
enum DirectoryCommand {
    /// Replace a tenant's directory with the JSON file's content.
    Import {
        #[command(flatten)]
        db: DbArg,
        #[arg(long)]
        tenant: String,
        file: PathBuf,
    },
}

pub fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("CRM_LOG")
                .unwrap_or_else(|_| "crm_host=info,warn".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    match Cli::parse().command {
        Command::Serve(args) => runtime()?.block_on(config::serve(args)),
        Command::Demo(args) => runtime()?.block_on(demo::run(args)),
        Command::Tenant {
            command:
                TenantCommand::Create {
                    db,
                    id,
                    name,
                    timezone,
                    balance,
                },
        } => crate::service::admin::create_tenant(&db.db, &id, &name, &timezone, &balance),
        Command::Key {
            command:
                KeyCommand::Create {
                    db,
                    tenant,
                    scopes,
                    label,
                    expires_in_days,
                },
        } => crate::service::admin::create_key(
            &db.db,
            &tenant,
            &scopes,
            label.as_deref(),
            expires_in_days,
        ),
        Command::Key {
            command: KeyCommand::List { db, tenant },
        } => crate::service::admin::list_keys(&db.db, &tenant),
        Command::Key {
            command: KeyCommand::Revoke { db, tenant, id },
        } => crate::service::admin::revoke_key(&db.db, &tenant, &id),
        Command::ViewerToken {
            command: ViewerTokenCommand::Rotate { db, tenant },
        } => crate::service::admin::rotate_viewer_secret(&db.db, &tenant),
        Command::ViewerToken {
            command: ViewerTokenCommand::Revoke { db, tenant, id },
        } => crate::service::admin::revoke_viewer_token(&db.db, &tenant, &id),
        Command::Report(args) => runtime()?.block_on(records::report(args)),
        Command::Export(args) => runtime()?.block_on(records::export(args)),
        Command::Verify(args) => runtime()?.block_on(records::verify(args)),
        Command::Directory {
            command: DirectoryCommand::Import { db, tenant, file },
        } => crate::service::admin::import_directory(&db.db, &tenant, &file),
        Command::Replay(args) => runtime()?.block_on(replay::run(args)),
        Command::Loadgen(args) => runtime()?.block_on(loadgen::run(args)),
        Command::Bench { command } => runtime()?.block_on(bench::run(command)),
        Command::Tail(args) => runtime()?.block_on(tail::run(args)),
    }
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?)
}

/// Default listen address: loopback only; exposing the API is an explicit choice.
fn default_listen() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 8080))
}

/// Waits for Ctrl-C (or SIGTERM on Unix).
async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .expect("installing a SIGTERM handler cannot fail on Unix");
        tokio::select! {
            _ = ctrl_c => {},
            _ = term.recv() => {},
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}

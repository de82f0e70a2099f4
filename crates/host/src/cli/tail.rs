//! `crm-host tail`: follows a tenant's activity stream in Redis with a consumer group
//! and prints each activity (one JSON line) as it arrives, acknowledging it after
//! printing — what a downstream team would start from.

use std::io::Write;

use redis::streams::{StreamReadOptions, StreamReadReply};

use crate::fanout::redis::channel;

/// How long one read waits for new entries before asking again.
const BLOCK_MS: usize = 5_000;
/// Entries per read.
const COUNT: usize = 100;

#[derive(Debug, clap::Args)]
pub struct TailArgs {
    #[arg(long, env = "CRM_REDIS_URL")]
    redis_url: String,
    /// CA certificate (PEM) that signed a `rediss://` server's certificate (default:
    /// the public roots), as `serve --redis-ca`.
    #[arg(long, env = "CRM_REDIS_CA")]
    redis_ca: Option<std::path::PathBuf>,
    #[arg(long)]
    tenant: String,
    /// Consumer group: consumers of one group share the stream's entries.
    #[arg(long, default_value = "crm-tail")]
    group: String,
    /// Start with the stream's first entry instead of new ones (for a new group).
    #[arg(long)]
    from_start: bool,
    /// Stop after this many activities (default: follow forever).
    #[arg(long)]
    count: Option<usize>,
}

pub async fn run(args: TailArgs) -> anyhow::Result<()> {
    let client = crate::fanout::redis::client(&args.redis_url, args.redis_ca.as_deref())?;
    let mut conn = client.get_multiplexed_async_connection().await?;
    let key = channel(&args.tenant);
    let start = if args.from_start { "0" } else { "$" };
    let created: redis::RedisResult<()> = redis::cmd("XGROUP")
        .arg("CREATE")
        .arg(&key)
        .arg(&args.group)
        .arg(start)
        .arg("MKSTREAM")
        .query_async(&mut conn)
        .await;
    if let Err(e) = created
        && e.code() != Some("BUSYGROUP")
    {
        return Err(e.into());
    }
    let consumer = format!("tail-{}", std::process::id());
    let options = StreamReadOptions::default()
        .group(&args.group, &consumer)
        .count(COUNT)
        .block(BLOCK_MS);
    let mut printed = 0usize;
    let mut out = std::io::stdout();
    loop {
        let reply: StreamReadReply =
            redis::AsyncCommands::xread_options(&mut conn, &[&key], &[">"], &options).await?;
        for stream in reply.keys {
            for entry in stream.ids {
                let activity: Option<String> = entry.get("activity");
                writeln!(out, "{}", activity.unwrap_or_default())?;
                out.flush()?;
                let _: () =
                    redis::AsyncCommands::xack(&mut conn, &key, &args.group, &[&entry.id]).await?;
                printed += 1;
                if args.count.is_some_and(|c| printed >= c) {
                    return Ok(());
                }
            }
        }
    }
}

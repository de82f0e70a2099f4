//! `crm-host replay`: re-sends the upstream spool (`activity-backup-{tenant}.ndjson`) and
//! removes from each file exactly the lines the upstream took; what it refuses or
//! cannot take stays for the next replay.

use std::path::PathBuf;

use indicatif::{ProgressBar, ProgressStyle};

use crate::fanout::spool;
use crate::fanout::upstream::{self, UpstreamSink};

#[derive(Debug, clap::Args)]
pub struct ReplayArgs {
    /// The spool folder of `serve` (`--spool-dir`).
    #[arg(long, env = "CRM_SPOOL_DIR", default_value = "spool")]
    spool_dir: PathBuf,
    /// Base URL of the upstream batch API.
    #[arg(long, env = "CRM_UPSTREAM_URL")]
    upstream_url: String,
    /// Header sent to the upstream, `Name: value`.
    #[arg(long, env = "CRM_UPSTREAM_AUTH")]
    upstream_auth: Option<String>,
    /// `whsec_…`: sign as `serve` does.
    #[arg(long, env = "CRM_UPSTREAM_SIGNING_SECRET")]
    upstream_signing_secret: Option<String>,
}

pub async fn run(args: ReplayArgs) -> anyhow::Result<()> {
    let auth = args
        .upstream_auth
        .as_deref()
        .map(upstream::parse_header)
        .transpose()?;
    let signing = args
        .upstream_signing_secret
        .as_deref()
        .map(upstream::parse_secret)
        .transpose()?;
    let sink = UpstreamSink::new(
        &args.upstream_url,
        auth,
        signing,
        upstream::DEFAULT_TIMEOUT,
        crate::fanout::Feed::Activities,
    )?;
    let _replaying = spool::replay_lock(&args.spool_dir)?;
    let (mut sent, mut left) = (0usize, 0usize);
    for tenant in spool::tenants(&args.spool_dir)? {
        // What an earlier replay left goes first, then the live file (renamed away from
        // `serve`'s appends); a file not fully delivered stops this tenant.
        while let Some(file) = spool::take_for_replay(&args.spool_dir, &tenant)? {
            let mut lines = spool::read(&file)?;
            if lines.is_empty() {
                spool::keep_only(&file, &lines)?;
                continue;
            }
            let bar = ProgressBar::new(lines.len() as u64).with_style(
                ProgressStyle::with_template("{msg} [{bar:40}] {pos}/{len}")
                    .expect("valid template"),
            );
            bar.set_message(format!("tenant {tenant}"));
            while !lines.is_empty() {
                let n = lines.len().min(upstream::BATCH);
                let batch: Vec<&str> = lines[..n].iter().map(String::as_str).collect();
                if let Err(e) = sink.send(&batch).await {
                    bar.abandon_with_message(format!("tenant {tenant}: stopped ({e})"));
                    break;
                }
                lines.drain(..n);
                spool::keep_only(&file, &lines)?;
                sent += n;
                bar.inc(n as u64);
            }
            if !lines.is_empty() {
                left += lines.len();
                break;
            }
            bar.finish_with_message(format!("tenant {tenant}: delivered"));
        }
    }
    println!("replayed {sent} activities; {left} remain in the spool");
    if left > 0 {
        anyhow::bail!("{left} activities could not be delivered; run replay again later");
    }
    Ok(())
}

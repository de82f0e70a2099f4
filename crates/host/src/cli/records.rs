//! Commands over a tenant's records: `report` (a report as tables), `export` (NDJSON
//! or CSV with a progress bar) and `verify` (the hash chain).

use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;

use crm_store::listing::Subject;
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::Value;

use super::DbArg;
use crate::engine::NativeEngine;
use crate::service::export::{self, Format};
use crate::service::queries::{self, Params};
use crate::service::{App, audit, reports};
use crate::store::Store;

#[derive(Debug, clap::Args)]
pub struct Scope {
    #[command(flatten)]
    db: DbArg,
    #[arg(long)]
    tenant: String,
    /// One user's records.
    #[arg(long, conflicts_with = "department")]
    user: Option<String>,
    /// A department and everything below it.
    #[arg(long)]
    department: Option<String>,
    /// Window such as 24h, 30d, 12w.
    #[arg(long)]
    since: Option<String>,
}

impl Scope {
    fn subject(&self) -> Subject {
        match (&self.user, &self.department) {
            (Some(u), _) => Subject::User(u.clone()),
            (None, Some(d)) => Subject::Department(d.clone()),
            (None, None) => Subject::Tenant,
        }
    }

    fn params(&self) -> Params {
        let mut p = Params::default();
        if let Some(s) = &self.since {
            p.0.insert("since".to_owned(), s.clone());
        }
        p
    }

    fn open(&self) -> anyhow::Result<App> {
        let engine = Arc::new(NativeEngine);
        let store = Store::open(&self.db.db)?;
        Ok(App::new(store, engine))
    }
}

#[derive(Debug, clap::Args)]
pub struct ReportArgs {
    #[command(flatten)]
    scope: Scope,
    /// hour, day, week or month.
    #[arg(long, default_value = "day")]
    group_by: String,
    /// IANA timezone of the buckets (default: the tenant's).
    #[arg(long)]
    tz: Option<String>,
}

fn table(title: &str, rows: Vec<(String, String, String)>) {
    println!("\n{title}");
    let w = rows
        .iter()
        .map(|r| r.0.chars().count())
        .max()
        .unwrap_or(0)
        .max(10);
    for (a, b, c) in rows {
        println!("  {a:<w$}  {b:>10}  {c:>14}");
    }
}

fn text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

pub async fn report(args: ReportArgs) -> anyhow::Result<()> {
    let app = args.scope.open()?;
    let tenant = app.tenants.get(&args.scope.tenant, None).await?;
    let mut params = args.scope.params();
    params.0.insert("groupBy".to_owned(), args.group_by.clone());
    if let Some(tz) = &args.tz {
        params.0.insert("tz".to_owned(), tz.clone());
    }
    let r =
        serde_json::to_value(reports::report(&app, tenant, args.scope.subject(), params).await?)?;
    println!(
        "{} activities, {} credits, {} to {} ({})",
        r["totalActivities"],
        text(&r["totalCreditsUsed"]),
        text(&r["period"]["from"]),
        text(&r["period"]["to"]),
        text(&r["timezone"])
    );
    let rows =
        |key: &str, label: &str, count: &str, credits: &str| -> Vec<(String, String, String)> {
            r[key]
                .as_array()
                .into_iter()
                .flatten()
                .map(|x| (text(&x[label]), text(&x[count]), text(&x[credits])))
                .collect()
        };
    table(
        "By operation (count, credits)",
        rows("operationBreakdown", "operation", "count", "totalCredits"),
    );
    table(
        &format!("By {} (count, credits)", args.group_by),
        rows("temporalBreakdown", "bucket", "count", "totalCredits"),
    );
    table(
        "By user (count, credits)",
        rows("userBreakdown", "userId", "operationCount", "totalCredits"),
    );
    let outcomes = r["outcomeBreakdown"]
        .as_object()
        .into_iter()
        .flatten()
        .map(|(k, v)| (k.clone(), text(v), String::new()))
        .collect();
    table("By outcome", outcomes);
    Ok(())
}

#[derive(Debug, clap::Args)]
pub struct ExportArgs {
    #[command(flatten)]
    scope: Scope,
    /// ndjson (records as hashed; verifiable offline) or csv.
    #[arg(long, default_value = "ndjson")]
    format: String,
    /// Output file (default: standard output).
    #[arg(long)]
    out: Option<PathBuf>,
}

pub async fn export(args: ExportArgs) -> anyhow::Result<()> {
    let format = Format::parse(&args.format)?;
    let app = args.scope.open()?;
    let tenant = app.tenants.get(&args.scope.tenant, None).await?;
    let params = args.scope.params();
    let filter = queries::filter(
        &tenant,
        args.scope.subject(),
        &params,
        params.export_range()?,
        |_| Ok(()),
    )?;
    let head = app.store.tenant(&args.scope.tenant).await?.head_seq;
    let mut out: Box<dyn Write + Send> = match &args.out {
        Some(p) => Box::new(std::io::BufWriter::new(std::fs::File::create(p)?)),
        None => Box::new(std::io::BufWriter::new(std::io::stdout())),
    };
    let bar = ProgressBar::new(head).with_style(
        ProgressStyle::with_template("exporting [{bar:40}] {pos}/{len} ({per_sec})")
            .expect("valid template"),
    );
    let progress = bar.clone();
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Result<axum::body::Bytes, std::io::Error>>(2);
    let writer = tokio::task::spawn_blocking(move || -> anyhow::Result<()> {
        while let Some(chunk) = rx.blocking_recv() {
            let chunk = chunk?;
            progress.inc(chunk.iter().filter(|b| **b == b'\n').count() as u64);
            out.write_all(&chunk)?;
        }
        out.flush()?;
        Ok(())
    });
    let sent = export::send_chunks(&app.store, &args.scope.tenant, &filter, format, 0, &tx).await;
    drop(tx);
    writer.await??;
    let written = sent?;
    bar.finish_and_clear();
    eprintln!("exported {written} activities");
    Ok(())
}

#[derive(Debug, clap::Args)]
pub struct VerifyArgs {
    #[command(flatten)]
    db: DbArg,
    #[arg(long)]
    tenant: String,
    /// A checkpoint kept from `GET /v1/audit/checkpoint` (its JSON): its signature is
    /// checked, then the record at its seq must still have its hash.
    #[arg(long)]
    checkpoint: Option<std::path::PathBuf>,
    /// The signer's public key (hex) the checkpoint must carry.
    #[arg(long, requires = "checkpoint")]
    public_key: Option<String>,
}

/// The kept checkpoint's (seq, hash), once its signature, tenant and key are checked.
fn kept_checkpoint(args: &VerifyArgs) -> anyhow::Result<Option<(u64, String)>> {
    let Some(path) = &args.checkpoint else {
        return Ok(None);
    };
    let c: crm_api::checkpoint::Checkpoint = serde_json::from_str(&std::fs::read_to_string(path)?)?;
    c.verify()
        .map_err(|e| anyhow::anyhow!("checkpoint {}: {e}", path.display()))?;
    if c.tenant_id != args.tenant {
        anyhow::bail!("the checkpoint is of tenant `{}`", c.tenant_id);
    }
    if let Some(pinned) = &args.public_key
        && !pinned.trim().eq_ignore_ascii_case(&c.public_key)
    {
        anyhow::bail!(
            "the checkpoint was signed by another key ({})",
            c.public_key
        );
    }
    Ok(Some((c.seq, c.hash)))
}

pub async fn verify(args: VerifyArgs) -> anyhow::Result<()> {
    let kept = kept_checkpoint(&args)?;
    let store = Store::open(&args.db.db)?;
    let bar = ProgressBar::new(0).with_style(
        ProgressStyle::with_template("verifying [{bar:40}] {pos}/{len}").expect("valid template"),
    );
    let progress = bar.clone();
    let tenant = args.tenant.clone();
    let (result, _) = tokio::task::spawn_blocking(move || {
        audit::verify(
            &store,
            &tenant,
            audit::Start::Anchor(kept),
            None,
            |done, total| {
                progress.set_length(total);
                progress.set_position(done);
            },
        )
    })
    .await??;
    bar.finish_and_clear();
    println!("{}", serde_json::to_string_pretty(&result)?);
    if result.ok {
        Ok(())
    } else {
        anyhow::bail!(
            "the chain is broken at seq {}",
            result.first_bad_seq.unwrap_or_default()
        )
    }
}

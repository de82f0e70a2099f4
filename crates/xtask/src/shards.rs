//! The edge's tenant shards as `wrangler.toml` declares them. Shard `n` is a D1
//! binding (`DB`, `DB_1`, ...), a producer binding (`ACTIVITIES`, `ACTIVITIES_1`, ...)
//! and a consumer of that queue with `max_concurrency = 1` (it serialises the chains of
//! the shard's tenants). `tidy` checks the three agree; `cargo xtask d1-migrate`
//! applies the migrations to every shard's database.

use std::path::Path;

use anyhow::{Context, Result, bail};
use toml::Value;

/// The D1 binding and the producer binding of shard `n` (as `crates/worker/src/shards.rs`).
fn names(n: usize) -> (String, String) {
    match n {
        0 => ("DB".to_owned(), "ACTIVITIES".to_owned()),
        n => (format!("DB_{n}"), format!("ACTIVITIES_{n}")),
    }
}

fn table<'a>(config: &'a Value, path: &[&str]) -> &'a [Value] {
    let mut v = Some(config);
    for key in path {
        v = v.and_then(|v| v.get(key));
    }
    v.and_then(Value::as_array).map_or(&[], Vec::as_slice)
}

fn text<'a>(v: &'a Value, key: &str) -> &'a str {
    v.get(key).and_then(Value::as_str).unwrap_or_default()
}

/// The shards' D1 bindings in order, after checking every shard is declared whole.
pub fn databases(config: &str) -> Result<Vec<String>> {
    let config: Value = toml::from_str(config).context("wrangler.toml is not TOML")?;
    let dbs: Vec<&str> = table(&config, &["d1_databases"])
        .iter()
        .map(|d| text(d, "binding"))
        .collect();
    let producers = table(&config, &["queues", "producers"]);
    let consumers = table(&config, &["queues", "consumers"]);
    let mut problems = Vec::new();
    for (n, db) in dbs.iter().enumerate() {
        let (want_db, want_queue) = names(n);
        if *db != want_db {
            problems.push(format!(
                "D1 binding {n} is `{db}`; shard {n} must be `{want_db}`"
            ));
        }
        let Some(queue) = producers
            .iter()
            .find(|p| text(p, "binding") == want_queue)
            .map(|p| text(p, "queue"))
        else {
            problems.push(format!("shard {n} has no producer binding `{want_queue}`"));
            continue;
        };
        let serialised = consumers.iter().any(|c| {
            text(c, "queue") == queue
                && c.get("max_concurrency").and_then(Value::as_integer) == Some(1)
        });
        if !serialised {
            problems.push(format!(
                "shard {n}'s queue `{queue}` needs a consumer with max_concurrency = 1"
            ));
        }
    }
    if dbs.is_empty() {
        problems.push("no D1 database is bound".to_owned());
    }
    if !problems.is_empty() {
        bail!("wrangler.toml: {}", problems.join("; "));
    }
    Ok(dbs.into_iter().map(str::to_owned).collect())
}

/// `cargo xtask d1-migrate`: `wrangler d1 migrations apply` on every shard.
pub fn migrate(root: &Path, local: bool) -> Result<()> {
    let config = std::fs::read_to_string(root.join("wrangler.toml"))?;
    let installed = root.join("tests/worker/node_modules/.bin/wrangler");
    let wrangler = if installed.exists() {
        installed
    } else {
        "wrangler".into()
    };
    for db in databases(&config)? {
        let mut cmd = std::process::Command::new(&wrangler);
        cmd.args(["d1", "migrations", "apply", &db]).arg(if local {
            "--local"
        } else {
            "--remote"
        });
        crate::step(&format!("migrations on {db}"), cmd)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shipped_config_declares_two_whole_shards() {
        let config = include_str!("../../../wrangler.toml");
        assert_eq!(databases(config).expect("consistent"), ["DB", "DB_1"]);
    }

    #[test]
    fn a_shard_without_its_queue_or_serialised_consumer_is_refused() {
        let base = r#"
            [[d1_databases]]
            binding = "DB"
            [[d1_databases]]
            binding = "DB_1"
            [[queues.producers]]
            binding = "ACTIVITIES"
            queue = "a"
            [[queues.consumers]]
            queue = "a"
            max_concurrency = 1
        "#;
        let e = databases(base)
            .expect_err("shard 1 has no queue")
            .to_string();
        assert!(
            e.contains("shard 1 has no producer binding `ACTIVITIES_1`"),
            "{e}"
        );
        let parallel = format!(
            "{base}\n[[queues.producers]]\nbinding = \"ACTIVITIES_1\"\nqueue = \"b\"\n[[queues.consumers]]\nqueue = \"b\"\nmax_concurrency = 5\n"
        );
        let e = databases(&parallel).expect_err("unserialised").to_string();
        assert!(e.contains("max_concurrency = 1"), "{e}");
    }
}

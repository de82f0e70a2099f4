//! `cargo xtask tidy`: the repository explains itself and its pins agree.
//!
//! - Every file a comment or document cites exists in the repository. A citation is a
//!   path-like word ending in a source or document extension (`docs/design.md`,
//!   `store/writer.rs`, `engine.wit`); it resolves when some tracked file ends with it.
//!   Words in URLs are skipped. Generated outputs are named with other extensions.
//! - The version pins that must agree do: the `wasm-bindgen` crate, the host's
//!   `wasm-bindgen-cli-support`, the `wasm-bindgen-cli` xtask installs and the one in
//!   `Cargo.lock`; the `worker` crate and the `worker-build` xtask installs.
//! - Every edge shard in `wrangler.toml` is whole: database, queue, serialised consumer.

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;

use anyhow::{Context, Result, bail};

use crate::{WASM_BINDGEN_VERSION, WORKER_BUILD_VERSION};

/// Extensions a citation can end in: the kinds of files the repository is made of.
const CITED_EXTENSIONS: [&str; 8] = ["md", "rs", "toml", "sql", "wit", "mjs", "sh", "html"];

/// Files whose text is not ours to police (lock files, generated data, and this file,
/// whose tests cite missing files on purpose).
fn scanned(path: &str) -> bool {
    !(path.ends_with("package-lock.json")
        || path == "crates/xtask/src/tidy.rs"
        || path.ends_with("Cargo.lock")
        || path.ends_with(".png")
        || path.starts_with("tests/conformance/")
            && Path::new(path).extension().is_some_and(|e| e == "json"))
}

pub fn run(root: &Path) -> Result<()> {
    let files = tracked_files(root)?;
    let mut problems = Vec::new();
    for file in files.iter().filter(|f| scanned(f)) {
        let Ok(text) = std::fs::read_to_string(root.join(file)) else {
            continue;
        };
        for cited in citations(&prose(file, &text)) {
            if !resolves(&cited, &files) {
                problems.push(format!(
                    "{file}: cites `{cited}`, which the repository does not have"
                ));
            }
        }
    }
    problems.extend(pin_disagreements(root)?);
    let wrangler = std::fs::read_to_string(root.join("wrangler.toml"))?;
    if let Err(e) = crate::shards::databases(&wrangler) {
        problems.push(e.to_string());
    }
    if problems.is_empty() {
        eprintln!(
            "xtask: tidy: {} files, no dangling citation, pins agree",
            files.len()
        );
        return Ok(());
    }
    for p in &problems {
        eprintln!("tidy: {p}");
    }
    bail!("tidy found {} problem(s)", problems.len())
}

fn tracked_files(root: &Path) -> Result<BTreeSet<String>> {
    let out = Command::new("git")
        .args(["ls-files", "-co", "--exclude-standard"])
        .current_dir(root)
        .output()
        .context("running git ls-files")?;
    if !out.status.success() {
        bail!("git ls-files failed");
    }
    Ok(String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|p| root.join(p).exists())
        .map(str::to_owned)
        .collect())
}

/// The part of a file that is written for people: comments in code, all of a document.
pub fn prose(path: &str, text: &str) -> String {
    let marker = match Path::new(path).extension().and_then(|e| e.to_str()) {
        Some("rs" | "mjs" | "js") => "//",
        Some("toml" | "sh") => "#",
        Some("sql") => "--",
        _ if path.starts_with(".ci/") => "#",
        _ => return text.to_owned(),
    };
    text.lines()
        .filter_map(|line| line.split_once(marker).map(|(_, comment)| comment))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Path-like words ending in a cited extension, outside URLs.
pub fn citations(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    for raw in text.split(|c: char| !(c.is_ascii_alphanumeric() || "._-/:{}$".contains(c))) {
        if raw.contains("://") {
            continue;
        }
        let word = raw.trim_matches(|c: char| c == '.' || c == ':' || c == '/');
        // Templates (`{tenant}.md`, `${x}`) and Rust paths (`a::b`) are not file names.
        if word.contains(['{', '}', '$']) || word.contains("::") {
            continue;
        }
        let Some((stem, ext)) = word.rsplit_once('.') else {
            continue;
        };
        let stem_name = stem.rsplit('/').next().unwrap_or(stem);
        if CITED_EXTENSIONS.contains(&ext)
            && !stem_name.is_empty()
            && stem_name.chars().any(|c| c.is_ascii_alphabetic())
        {
            out.push(word.to_owned());
        }
    }
    out
}

fn resolves(cited: &str, files: &BTreeSet<String>) -> bool {
    let cited = cited.trim_start_matches("./");
    files
        .iter()
        .any(|f| f == cited || f.ends_with(&format!("/{cited}")))
}

/// `name = "=1.2.3"` or `name = { version = "=1.2.3", … }` in a manifest's text.
fn manifest_pin(manifest: &str, name: &str) -> Option<String> {
    let table: toml::Table = manifest.parse().ok()?;
    ["dependencies", "build-dependencies", "dev-dependencies"]
        .iter()
        .filter_map(|section| table.get(*section)?.get(name))
        .find_map(|dep| match dep {
            toml::Value::String(v) => Some(v.clone()),
            toml::Value::Table(t) => t.get("version")?.as_str().map(str::to_owned),
            _ => None,
        })
        .map(|v| v.trim_start_matches(['=', '^', '~']).to_owned())
}

fn lock_version(lock: &str, name: &str) -> Option<String> {
    let table: toml::Table = lock.parse().ok()?;
    table
        .get("package")?
        .as_array()?
        .iter()
        .find(|p| p.get("name").and_then(|n| n.as_str()) == Some(name))?
        .get("version")?
        .as_str()
        .map(str::to_owned)
}

fn pin_disagreements(root: &Path) -> Result<Vec<String>> {
    let read =
        |p: &str| std::fs::read_to_string(root.join(p)).with_context(|| format!("reading {p}"));
    let worker = read("crates/worker/Cargo.toml")?;
    let host = read("crates/host/Cargo.toml")?;
    let lock = read("Cargo.lock")?;
    let checks = [
        (
            "crates/worker/Cargo.toml wasm-bindgen",
            manifest_pin(&worker, "wasm-bindgen"),
            WASM_BINDGEN_VERSION,
        ),
        (
            "crates/host/Cargo.toml wasm-bindgen-cli-support",
            manifest_pin(&host, "wasm-bindgen-cli-support"),
            WASM_BINDGEN_VERSION,
        ),
        (
            "Cargo.lock wasm-bindgen",
            lock_version(&lock, "wasm-bindgen"),
            WASM_BINDGEN_VERSION,
        ),
        (
            "crates/worker/Cargo.toml worker",
            manifest_pin(&worker, "worker"),
            WORKER_BUILD_VERSION,
        ),
    ];
    Ok(checks
        .into_iter()
        .filter_map(|(what, found, want)| match found {
            Some(v) if v == want => None,
            Some(v) => Some(format!("{what} is {v}, xtask installs {want}")),
            None => Some(format!("{what}: no pin found")),
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_cited_files_and_skips_urls_templates_and_rust_paths() {
        let text = "see docs/design.md §6 and `store/writer.rs`; https://x.dev/a.md \
                    spool activity-backup-{tenant}.md, crate::api.rs::f, version 0.2.130.";
        assert_eq!(citations(text), vec!["docs/design.md", "store/writer.rs"]);
    }

    #[test]
    fn only_comments_of_code_are_prose() {
        let code = "let q = self.sql; // reads schema.sql\nlet x = 1;";
        assert_eq!(prose("a.rs", code), " reads schema.sql");
        assert_eq!(prose("a.md", "self.sql"), "self.sql");
    }

    #[test]
    fn a_missing_file_does_not_resolve_and_a_suffix_does() {
        let files: BTreeSet<String> = ["docs/design.md", "crates/host/src/store/writer.rs"]
            .into_iter()
            .map(str::to_owned)
            .collect();
        assert!(resolves("store/writer.rs", &files));
        assert!(resolves("docs/design.md", &files));
        assert!(!resolves("NOT-HERE.md", &files));
        assert!(!resolves("riter.rs", &files));
    }

    #[test]
    fn reads_exact_pins_from_manifests_and_the_lock() {
        let manifest = "[dependencies]\nworker = { version = \"0.8.7\", features = [\"d1\"] }\n\
                        wasm-bindgen = \"=0.2.130\"\n";
        assert_eq!(manifest_pin(manifest, "worker").as_deref(), Some("0.8.7"));
        assert_eq!(
            manifest_pin(manifest, "wasm-bindgen").as_deref(),
            Some("0.2.130")
        );
        let lock = "[[package]]\nname = \"wasm-bindgen\"\nversion = \"0.2.130\"\n";
        assert_eq!(
            lock_version(lock, "wasm-bindgen").as_deref(),
            Some("0.2.130")
        );
    }
}

//! `cargo xtask <command>`: project automation in Rust rather than shell, so it runs the
//! same on every machine. `cargo xtask ci` is what `.ci/run` and the README call.

mod api_fuzz;
mod bench;
mod move_tenant;
mod shards;
mod tidy;
mod worker_names;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(about = "CRM activity engine project tasks")]
struct Cli {
    #[command(subcommand)]
    command: Task,
}

#[derive(Debug, Subcommand)]
enum Task {
    /// Install prerequisites and run every check and test tier (what CI runs).
    Ci,
    /// Install prerequisites only (rustup targets, apt and npm packages).
    Prereqs,
    /// Format check, clippy with warnings as errors.
    Lint,
    /// Build crm-core for both wasm targets (it must stay pure and portable).
    WasmCore,
    /// The dashboard in headless Chromium against `crm-host demo`.
    Browser,
    /// A client generated from the OpenAPI document, driven against `crm-host demo`.
    Client,
    /// Build everything a deploy of the edge serves: the worker bundle and the
    /// dashboard's wasm module (`wrangler.toml`'s build command).
    EdgeBuild,
    /// Build crm-worker and run its end-to-end suite under `wrangler dev`.
    Worker,
    /// schemathesis against `crm-host demo`, from the OpenAPI document (bounded).
    ApiFuzz,
    /// Write crates/api/openapi.json, the document both runtimes serve, from the types
    /// (crm-api's tests fail while it is stale).
    Openapi,
    /// Fail on citations of files the repository lacks, on disagreeing version pins and
    /// on edge shards declared in part.
    Tidy,
    /// Apply the D1 migrations to every shard of wrangler.toml (`--remote` unless `--local`).
    D1Migrate {
        #[arg(long)]
        local: bool,
    },
    /// Move a tenant to another edge shard and verify its chain there (`wrangler d1
    /// execute`; `--persist-to` for a local `wrangler dev`, else remote).
    MoveTenant(move_tenant::Args),
    /// Measure every figure of BENCHMARKS.md in one run (release build; minutes).
    Bench {
        /// Small data sizes: a smoke run of the whole procedure.
        #[arg(long)]
        quick: bool,
        /// Activities behind the rollup report (default 10 M: ~25 GB of SQLite and
        /// ~30 min of seeding here; a smaller figure fits a small disk).
        #[arg(long)]
        rollup_activities: Option<u64>,
        /// Run although the machine is busy; the summary says so.
        #[arg(long)]
        allow_busy: bool,
    },
}

/// The wasm targets crm-core must build for: the component (WASI p2) and the browser / worker.
const WASM_TARGETS: [&str; 2] = ["wasm32-wasip2", "wasm32-unknown-unknown"];

fn main() -> Result<()> {
    let root = workspace_root();
    std::env::set_current_dir(&root).context("entering the workspace root")?;
    match Cli::parse().command {
        Task::Ci => {
            let mut timings = Timings::default();
            let result = ci(&root, &mut timings);
            timings.print();
            result?;
            eprintln!("xtask: ci passed");
            Ok(())
        }
        Task::Prereqs => prereqs(),
        Task::Lint => lint(),
        Task::WasmCore => wasm_core(),
        Task::Browser => {
            prereqs()?;
            browser(&root)
        }
        Task::Client => generated_client(&root),
        Task::EdgeBuild => edge_build(&root, &edge_path(&root)?),
        Task::Worker => worker(&root),
        Task::ApiFuzz => api_fuzz::run(&root),
        Task::Tidy => tidy::run(&root),
        Task::Openapi => {
            let document = crm_api::document::document(env!("CARGO_PKG_VERSION"));
            let path = root.join("crates/api/openapi.json");
            std::fs::write(&path, serde_json::to_string_pretty(&document)? + "\n")?;
            eprintln!("xtask: wrote {}", path.display());
            Ok(())
        }
        Task::D1Migrate { local } => shards::migrate(&root, local),
        Task::MoveTenant(args) => move_tenant::run(&root, &args),
        Task::Bench {
            quick,
            rollup_activities,
            allow_busy,
        } => {
            let machine = bench::machine(allow_busy)?;
            prereqs()?;
            let mut sizes = if quick {
                bench::Sizes::quick()
            } else {
                bench::Sizes::full()
            };
            if let Some(n) = rollup_activities {
                sizes.report_rollups = n;
            }
            bench::run(&root, sizes, machine)
        }
    }
}

fn ci(root: &Path, t: &mut Timings) -> Result<()> {
    t.time("prerequisites", prereqs)?;
    t.time("lint (fmt, clippy)", lint)?;
    t.time("tidy", || tidy::run(root))?;
    t.time("crm-core for wasm", wasm_core)?;
    t.time("rust tests", || {
        step(
            "tests",
            cargo(&["test", "--workspace", "--all-targets", "--locked"]),
        )?;
        step(
            "doc tests",
            cargo(&["test", "--workspace", "--doc", "--locked"]),
        )
    })?;
    t.time("api fuzz (schemathesis)", || api_fuzz::run(root))?;
    t.time("browser tier", || browser(root))?;
    t.time("generated client", || generated_client(root))?;
    t.time("worker tier", || worker(root))
}

/// Wall time of each CI tier, printed as a table at the end (also when a tier fails).
#[derive(Debug, Default)]
struct Timings {
    tiers: Vec<(&'static str, Duration, bool)>,
}

impl Timings {
    fn time(&mut self, name: &'static str, f: impl FnOnce() -> Result<()>) -> Result<()> {
        let start = Instant::now();
        let result = f();
        self.tiers.push((name, start.elapsed(), result.is_ok()));
        result
    }

    fn print(&self) {
        eprintln!("\nxtask: tier wall times");
        eprintln!("  {:<22} {:>9}  result", "tier", "seconds");
        for (name, took, ok) in &self.tiers {
            let result = if *ok { "ok" } else { "FAILED" };
            eprintln!("  {name:<22} {:>9.1}  {result}", took.as_secs_f64());
        }
        let total: Duration = self.tiers.iter().map(|t| t.1).sum();
        eprintln!("  {:<22} {:>9.1}", "total", total.as_secs_f64());
    }
}

/// The checkout `cargo xtask` was run in. Read at run time (cargo sets it for `cargo
/// run`), not baked in at build time: a cached xtask binary may have been built from
/// another checkout sharing the target dir.
fn workspace_root() -> PathBuf {
    let manifest = std::env::var_os("CARGO_MANIFEST_DIR")
        .map_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")), PathBuf::from);
    manifest
        .ancestors()
        .nth(2)
        .expect("xtask lives in crates/xtask")
        .to_path_buf()
}

/// Debian's Chromium, driven by playwright-core (never `playwright install`, which downloads).
const CHROMIUM: &str = "/usr/bin/chromium";

fn prereqs() -> Result<()> {
    let mut args = vec!["target", "add"];
    args.extend(WASM_TARGETS);
    step("rustup targets", tool("rustup", &args))?;
    step(
        "rustup components",
        tool("rustup", &["component", "add", "rustfmt", "clippy"]),
    )?;
    let mut missing = Vec::new();
    if !Path::new(CHROMIUM).exists() {
        missing.push("chromium");
    }
    if !has_postgres_server() {
        missing.push("postgresql");
    }
    if !on_path("redis-server") {
        missing.push("redis-server");
    }
    if !missing.is_empty() {
        step("apt-get update", apt(&["update"]))?;
        let mut args = vec!["install", "-y", "--no-install-recommends"];
        args.extend(&missing);
        step(
            &format!("apt-get install {}", missing.join(" ")),
            apt(&args),
        )?;
    }
    Ok(())
}

/// Debian's PostgreSQL server binaries (`initdb`, `pg_ctl`) live in a versioned folder
/// off PATH; the tests start their own cluster with them.
fn has_postgres_server() -> bool {
    std::fs::read_dir("/usr/lib/postgresql").is_ok_and(|versions| {
        versions
            .filter_map(Result::ok)
            .any(|v| v.path().join("bin/initdb").exists())
    })
}

fn on_path(program: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|path| std::env::split_paths(&path).any(|dir| dir.join(program).is_file()))
}

/// apt-get, through sudo when not running as root.
fn apt(args: &[&str]) -> Command {
    let root = Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| o.stdout.starts_with(b"0\n"));
    let mut cmd = if root {
        Command::new("apt-get")
    } else {
        tool("sudo", &["apt-get"])
    };
    cmd.args(args).env("DEBIAN_FRONTEND", "noninteractive");
    cmd
}

fn target_dir(root: &Path) -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR").map_or_else(|| root.join("target"), PathBuf::from)
}

fn browser(root: &Path) -> Result<()> {
    let tests = root.join("tests/browser");
    let mut npm = tool("npm", &["ci", "--no-audit", "--no-fund"]);
    npm.current_dir(&tests);
    step("npm ci (tests/browser)", npm)?;
    step("build crm-host", build_host())?;
    let mut node = tool("node", &["--test"]);
    node.current_dir(&tests)
        .env("CRM_HOST_BIN", target_dir(root).join("debug/crm-host"))
        .env("CHROMIUM_BIN", CHROMIUM);
    step("browser tests", node)
}

/// A TypeScript client generated from the OpenAPI document (openapi-typescript +
/// openapi-fetch, npm) covers every operation, type-checks its calls and drives
/// `crm-host demo` (tests/client).
fn generated_client(root: &Path) -> Result<()> {
    let tests = root.join("tests/client");
    let mut npm = tool("npm", &["ci", "--no-audit", "--no-fund"]);
    npm.current_dir(&tests);
    step("npm ci (tests/client)", npm)?;
    step("build crm-host", build_host())?;
    let mut node = tool("node", &["--test"]);
    node.current_dir(&tests)
        .env("CRM_HOST_BIN", target_dir(root).join("debug/crm-host"));
    step("generated client tests", node)
}

fn lint() -> Result<()> {
    step("rustfmt", cargo(&["fmt", "--all", "--check"]))?;
    ensure_tool("cargo-deny", "cargo-deny", CARGO_DENY_VERSION, true)?;
    // cargo-deny reads the metadata of every platform's dependencies, which a build
    // for this one never downloads: fetched here, so a fresh machine has them.
    step("cargo fetch", cargo(&["fetch", "--locked"]))?;
    // Offline: the advisory database lives on GitHub, out of these machines' reach;
    // licences, duplicate versions and sources are checked from Cargo.lock.
    step(
        "cargo deny",
        cargo(&["deny", "--offline", "check", "licenses", "bans", "sources"]),
    )?;
    step(
        "clippy",
        cargo(&[
            "clippy",
            "--workspace",
            "--all-targets",
            "--locked",
            "--",
            "-D",
            "warnings",
        ]),
    )
}

fn wasm_core() -> Result<()> {
    for target in WASM_TARGETS {
        step(
            &format!("crm-core for {target}"),
            cargo(&["build", "-p", "crm-core", "--locked", "--target", target]),
        )?;
    }
    Ok(())
}

fn cargo(args: &[&str]) -> Command {
    let mut cmd = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned()));
    cmd.args(args);
    cmd
}

fn tool(program: &str, args: &[&str]) -> Command {
    let mut cmd = Command::new(program);
    cmd.args(args);
    cmd
}

fn step(name: &str, mut cmd: Command) -> Result<()> {
    eprintln!("xtask: {name}");
    let status = cmd
        .status()
        .with_context(|| format!("{name}: could not start"))?;
    if !status.success() {
        bail!("{name} failed ({status})");
    }
    Ok(())
}

/// Pinned with the `worker` and `wasm-bindgen` crates (docs/toolchain.md); `tidy`
/// checks that the manifests agree.
pub(crate) const WORKER_BUILD_VERSION: &str = "0.8.7";
pub(crate) const WASM_BINDGEN_VERSION: &str = "0.2.130";
/// The release profile of the worker bundle (issue 29: the bundle's size).
const WORKER_RELEASE_PROFILE: &[(&str, &str)] = &[
    ("CARGO_PROFILE_RELEASE_OPT_LEVEL", "z"),
    ("CARGO_PROFILE_RELEASE_LTO", "fat"),
    ("CARGO_PROFILE_RELEASE_CODEGEN_UNITS", "1"),
];
/// cargo-deny, for the licence, ban and source checks of `deny.toml`.
const CARGO_DENY_VERSION: &str = "0.20.2";

fn cargo_bin(name: &str) -> PathBuf {
    let home = std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cargo")))
        .unwrap_or_else(|| PathBuf::from(".cargo"));
    home.join("bin").join(name)
}

/// Installs a cargo tool at an exact version unless that version is already there.
fn ensure_tool(bin: &str, krate: &str, version: &str, locked: bool) -> Result<()> {
    let have = Command::new(cargo_bin(bin))
        .arg("--version")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).contains(version));
    if have {
        return Ok(());
    }
    let mut args = vec!["install", krate, "--version", version];
    if locked {
        args.push("--locked");
    }
    step(&format!("cargo install {krate} {version}"), cargo(&args))
}

/// `PATH` with the worker tests' npm tools (wrangler, wasm-opt) first, after
/// installing them.
fn edge_path(root: &Path) -> Result<String> {
    let tests = root.join("tests/worker");
    let mut npm = tool("npm", &["ci", "--no-audit", "--no-fund"]);
    npm.current_dir(&tests);
    step("npm ci (tests/worker)", npm)?;
    Ok(format!(
        "{}:{}",
        tests.join("node_modules/.bin").display(),
        std::env::var("PATH").unwrap_or_default()
    ))
}

/// The worker bundle and the dashboard's wasm module: all a deploy serves.
fn edge_build(root: &Path, path: &str) -> Result<()> {
    ensure_tool("worker-build", "worker-build", WORKER_BUILD_VERSION, true)?;
    ensure_tool(
        "wasm-bindgen",
        "wasm-bindgen-cli",
        WASM_BINDGEN_VERSION,
        false,
    )?;
    let node_bin = root.join("tests/worker/node_modules/.bin");
    let mut build = Command::new(cargo_bin("worker-build"));
    build
        .arg("--release")
        .current_dir(root.join("crates/worker"))
        .env("PATH", path)
        // worker-build would download these from GitHub; use the pinned local ones.
        .env("WASM_BINDGEN_BIN", cargo_bin("wasm-bindgen"))
        .env("WASM_OPT_BIN", node_bin.join("wasm-opt"));
    // The edge bundle is sized for download and isolate start, not for peak speed:
    // optimise for size with whole-program LTO. Set here, for this build only — the
    // workspace's release profile also builds crm-host, which wants speed.
    for (name, value) in WORKER_RELEASE_PROFILE {
        build.env(name, value);
    }
    step("worker-build --release", build)?;
    let wasm = root.join("crates/worker/build/index_bg.wasm");
    let removed = worker_names::strip(&wasm)?;
    println!("xtask: worker names moved to index_bg.names ({removed} bytes out of the upload)");
    // The dashboard's wasm module, served from www/pkg by the worker's static assets.
    step(
        "crm-web for the worker's assets",
        cargo(&[
            "build",
            "--locked",
            "-p",
            "crm-web",
            "--profile",
            "component",
            "--target",
            "wasm32-unknown-unknown",
        ]),
    )?;
    let web_wasm = target_dir(root).join("wasm32-unknown-unknown/component/crm_web.wasm");
    let mut bindgen = Command::new(cargo_bin("wasm-bindgen"));
    bindgen
        .args(["--target", "web", "--no-typescript", "--out-dir"])
        .arg(root.join("www/pkg"))
        .arg(web_wasm);
    step("wasm-bindgen crm-web → www/pkg", bindgen)
}

/// `wrangler deploy --dry-run` on what was built (wrangler.toml without its build
/// command, which already ran): checks the configuration as a deploy would and prints
/// the upload's size.
fn deploy_dry_run(root: &Path, path: &str) -> Result<()> {
    let toml = std::fs::read_to_string(root.join("wrangler.toml"))?;
    let start = toml
        .find("[build]")
        .context("wrangler.toml has a [build] section")?;
    let end = toml[start + 1..]
        .find("\n[")
        .map_or(toml.len(), |i| start + 1 + i + 1);
    let out = target_dir(root).join("wrangler-dry-run");
    let config = root.join("wrangler.dry-run.toml");
    std::fs::write(&config, format!("{}{}", &toml[..start], &toml[end..]))?;
    let mut dry = tool(
        "wrangler",
        &[
            "deploy",
            "--dry-run",
            "--config",
            "wrangler.dry-run.toml",
            "--outdir",
        ],
    );
    dry.arg(&out).current_dir(root).env("PATH", path);
    let result = step("wrangler deploy --dry-run (bundle size)", dry);
    let _ = std::fs::remove_file(&config);
    let _ = std::fs::remove_dir_all(&out);
    result
}

/// The worker bundle's budget, gzip -9 bytes (docs/design.md §7: 1 MB; issue 29 asks
/// for half): new code at the edge is weighed from the start, and CI fails past it.
const WORKER_GZIP_BUDGET: usize = 750_000;

/// Fails when the built worker's wasm, compressed as `gzip -9`, is past the budget.
fn bundle_budget(root: &Path) -> Result<()> {
    let wasm = root.join("crates/worker/build/index_bg.wasm");
    let out = Command::new("gzip")
        .args(["-9", "-c"])
        .arg(&wasm)
        .output()
        .with_context(|| format!("gzip {}", wasm.display()))?;
    anyhow::ensure!(out.status.success(), "gzip {} failed", wasm.display());
    let size = out.stdout.len();
    println!("xtask: worker bundle {size} bytes gzip -9 (budget {WORKER_GZIP_BUDGET})");
    anyhow::ensure!(
        size <= WORKER_GZIP_BUDGET,
        "the worker bundle is {size} bytes gzip -9, past its budget of {WORKER_GZIP_BUDGET}: make room before adding code at the edge"
    );
    Ok(())
}

fn worker(root: &Path) -> Result<()> {
    let path = edge_path(root)?;
    edge_build(root, &path)?;
    bundle_budget(root)?;
    deploy_dry_run(root, &path)?;
    let tests = root.join("tests/worker");
    // The parity test compares the worker's reports with crm-host's.
    step("build crm-host", build_host())?;
    let mut node = tool(
        "node",
        &[
            "--test",
            &format!("--test-concurrency={WORKER_TEST_FILES_AT_ONCE}"),
        ],
    );
    node.current_dir(&tests)
        .env("PATH", &path)
        .env("CRM_HOST_BIN", target_dir(root).join("debug/crm-host"));
    step("worker tests", node)
}

/// Test files run at once. Each starts its own `wrangler dev` on its own port and
/// folder and spends most of its time waiting on queue batches and cron passes; node's
/// default (one less than the cores: one here) left a core idle for the tier's 15 min.
/// Three at once ran the 53 tests in 432 s instead of 896 s on this machine kind.
const WORKER_TEST_FILES_AT_ONCE: usize = 3;

/// Builds `target/debug/crm-host` exactly as the test step does (same command, so the
/// same feature resolution): after the tests it is a no-op rather than a rebuild of
/// every dependency. (`cargo build --workspace` would also link the wasm-only cdylibs
/// natively, which fails.)
fn build_host() -> Command {
    cargo(&[
        "test",
        "--workspace",
        "--all-targets",
        "--locked",
        "--no-run",
    ])
}

//! `cargo xtask <command>`: project automation in Rust rather than shell, so it runs the
//! same on every machine. `cargo xtask ci` is what `.ci/run` and the README call.

use std::path::{Path, PathBuf};
use std::process::Command;

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
}

/// The wasm targets crm-core must build for: the component (WASI p2) and the browser / worker.
const WASM_TARGETS: [&str; 2] = ["wasm32-wasip2", "wasm32-unknown-unknown"];

fn main() -> Result<()> {
    let root = workspace_root();
    std::env::set_current_dir(&root).context("entering the workspace root")?;
    match Cli::parse().command {
        Task::Ci => {
            prereqs()?;
            lint()?;
            wasm_core()?;
            step(
                "tests",
                cargo(&["test", "--workspace", "--all-targets", "--locked"]),
            )?;
            step(
                "doc tests",
                cargo(&["test", "--workspace", "--doc", "--locked"]),
            )?;
            eprintln!("xtask: ci passed");
            Ok(())
        }
        Task::Prereqs => prereqs(),
        Task::Lint => lint(),
        Task::WasmCore => wasm_core(),
    }
}

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .ancestors()
        .nth(2)
        .expect("xtask lives in crates/xtask")
        .to_path_buf()
}

fn prereqs() -> Result<()> {
    let mut args = vec!["target", "add"];
    args.extend(WASM_TARGETS);
    step("rustup targets", tool("rustup", &args))?;
    step(
        "rustup components",
        tool("rustup", &["component", "add", "rustfmt", "clippy"]),
    )
}

fn lint() -> Result<()> {
    step("rustfmt", cargo(&["fmt", "--all", "--check"]))?;
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

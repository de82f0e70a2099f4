//! Builds the wasm pieces the host embeds, so that `cargo run -p crm-host` works from a
//! clean clone with no manual step:
//! - the `crm-component` guest for wasm32-wasip2 (run in wasmtime);
//! - the `crm-web` browser module for wasm32-unknown-unknown, with its JS glue made by
//!   wasm-bindgen's library (no CLI to install), served with the dashboard.
//!
//! They get their own target dir (cargo would deadlock waiting on the outer build's
//! lock otherwise) and the size-optimised `component` profile.
//!
//! A fresh machine has the toolchain but not the wasm targets (rustup does not add the
//! targets of `rust-toolchain.toml` on its own when `RUSTUP_AUTO_INSTALL=0`), so a missing
//! target is added here with `rustup target add`, said in the build output; without rustup
//! the build stops with one line naming what to install.

use std::path::{Path, PathBuf};
use std::process::Command;

fn main() {
    let manifest = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").expect("set by cargo"));
    let root = manifest
        .ancestors()
        .nth(2)
        .expect("crates/host is two levels deep");
    // Relative to this package: cargo keeps one build-script run per target dir for
    // every clone of the workspace, and absolute paths would tie it to the clone that
    // ran it last (a build in another clone then embedded that clone's guest).
    for watched in [
        "../core/src",
        "../core/Cargo.toml",
        "../component",
        "../web",
        "../../wit",
        "../../Cargo.lock",
    ] {
        println!("cargo:rerun-if-changed={watched}");
    }
    let out = PathBuf::from(std::env::var("OUT_DIR").expect("set by cargo"));
    // OUT_DIR = <target>/<profile>/build/<pkg>-<hash>/out; share one guest build per target dir.
    let target_dir = out
        .ancestors()
        .nth(4)
        .map_or_else(|| out.join("component"), |t| t.join("component"));

    build_wasm(root, &target_dir, "crm-component", "wasm32-wasip2");
    copy(
        &target_dir.join("wasm32-wasip2/component/crm_component.wasm"),
        &out.join("crm_component.wasm"),
    );

    build_wasm(root, &target_dir, "crm-web", "wasm32-unknown-unknown");
    let mut bindgen = wasm_bindgen_cli_support::Bindgen::new();
    bindgen
        .input_path(target_dir.join("wasm32-unknown-unknown/component/crm_web.wasm"))
        .typescript(false);
    bindgen
        .web(true)
        .and_then(|b| b.generate(out.join("pkg")))
        .unwrap_or_else(|e| panic!("wasm-bindgen for crm-web: {e:#}"));
}

/// Adds `target` to the active toolchain when its standard library is missing.
fn ensure_target(target: &str) {
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".to_owned());
    let sysroot = Command::new(rustc)
        .args(["--print", "sysroot"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| PathBuf::from(String::from_utf8_lossy(&o.stdout).trim()));
    if sysroot.is_some_and(|s| s.join("lib/rustlib").join(target).join("lib").is_dir()) {
        return;
    }
    println!("cargo:warning=adding the missing Rust target {target} (rustup target add {target})");
    match Command::new("rustup")
        .args(["target", "add", target])
        .status()
    {
        Ok(status) if status.success() => {}
        Ok(status) => panic!("`rustup target add {target}` failed ({status}); run it by hand"),
        Err(_) => panic!(
            "the Rust target {target} is missing and rustup is not on PATH: install it with `rustup target add {target}`"
        ),
    }
}

fn build_wasm(root: &Path, target_dir: &Path, package: &str, target: &str) {
    ensure_target(target);
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
    let mut cmd = Command::new(cargo);
    cmd.current_dir(root)
        .args(["build", "--locked", "-p", package, "--profile", "component"])
        .args(["--target", target, "--target-dir"])
        .arg(target_dir);
    // The outer build's flags and wrappers (clippy, coverage) are not meant for the guest.
    for var in [
        "RUSTFLAGS",
        "CARGO_ENCODED_RUSTFLAGS",
        "RUSTC_WRAPPER",
        "RUSTC_WORKSPACE_WRAPPER",
        "CARGO_TARGET_DIR",
        "CARGO_BUILD_TARGET",
        "CARGO_PRIMARY_PACKAGE",
    ] {
        cmd.env_remove(var);
    }
    let status = cmd.status().expect("cargo can be started");
    assert!(status.success(), "building {package} for {target} failed");
}

fn copy(from: &Path, to: &Path) {
    std::fs::copy(from, to).unwrap_or_else(|e| panic!("copying {}: {e}", from.display()));
}

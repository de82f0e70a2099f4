//! Builds the `crm-component` guest for wasm32-wasip2 so that `cargo run -p crm-host`
//! works from a clean clone with no manual step. The guest gets its own target dir
//! (cargo would deadlock waiting on the outer build's lock otherwise) and its own
//! size-optimised profile.

use std::path::{Path, PathBuf};
use std::process::Command;

fn main() {
    let manifest = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").expect("set by cargo"));
    let root = manifest
        .ancestors()
        .nth(2)
        .expect("crates/host is two levels deep");
    for watched in [
        "crates/core/src",
        "crates/core/Cargo.toml",
        "crates/component",
        "wit",
        "Cargo.lock",
    ] {
        println!("cargo:rerun-if-changed={}", root.join(watched).display());
    }
    let out = PathBuf::from(std::env::var("OUT_DIR").expect("set by cargo"));
    // OUT_DIR = <target>/<profile>/build/<pkg>-<hash>/out; share one guest build per target dir.
    let target_dir = out
        .ancestors()
        .nth(4)
        .map_or_else(|| out.join("component"), |t| t.join("component"));
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
    let mut cmd = Command::new(cargo);
    cmd.current_dir(root)
        .args([
            "build",
            "--locked",
            "-p",
            "crm-component",
            "--profile",
            "component",
        ])
        .args(["--target", "wasm32-wasip2", "--target-dir"])
        .arg(&target_dir);
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
    assert!(
        status.success(),
        "building crm-component for wasm32-wasip2 failed"
    );
    let wasm = target_dir.join("wasm32-wasip2/component/crm_component.wasm");
    copy(&wasm, &out.join("crm_component.wasm"));
}

fn copy(from: &Path, to: &Path) {
    std::fs::copy(from, to).unwrap_or_else(|e| panic!("copying {}: {e}", from.display()));
}

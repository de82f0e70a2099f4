//! `cargo xtask api-fuzz`: the API tried from its own OpenAPI document by schemathesis
//! (PyPI, pinned, in a virtualenv under the target dir) against `crm-host demo` on a
//! free loopback port, with an admin key of the demo tenant. A bounded run in CI;
//! `CRM_FUZZ_EXAMPLES=N` for a longer one. Fails on any 5xx, any answer that does not
//! match its documented schema, status code or content type.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use anyhow::{Context, Result, bail};

use crate::{build_host, step, target_dir};

/// Pinned like every other tool the tiers install (docs/toolchain.md).
const SCHEMATHESIS_VERSION: &str = "4.32.5";

/// Examples per operation and phase in CI: ~1,500 requests over the 37 operations, in
/// about half a minute on two cores.
const DEFAULT_EXAMPLES: &str = "25";

/// The one documented 5xx of crm-host: `POST /v1/archive` is the edge's (501 with the
/// reason; `it::openapi` checks that answer).
const EDGE_ONLY: &str = "/v1/archive";

/// Left out because it works: the fuzzer finds its own key's id (`GET /v1/keys`) and
/// revokes it, and every later request is a 401. `it::openapi` tries it.
const SELF_REVOKING: &str = "DELETE /v1/keys/{id}";

/// Kills the demo when the run ends, however it ends.
struct Demo(Child);

impl Drop for Demo {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

pub fn run(root: &Path) -> Result<()> {
    let schemathesis = install(root)?;
    step("build crm-host", build_host())?;
    let mut child = Command::new(target_dir(root).join("debug/crm-host"))
        .args(["demo", "--listen", "127.0.0.1:0", "--engine", "native"])
        .args(["--activities", "300"])
        .env("CRM_LOG", "error")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .context("starting crm-host demo")?;
    let stdout = child.stdout.take().context("the demo's stdout")?;
    let demo = Demo(child);
    let (url, key) = announced(stdout)?;
    let examples = std::env::var("CRM_FUZZ_EXAMPLES").unwrap_or_else(|_| DEFAULT_EXAMPLES.into());
    let mut cmd = Command::new(schemathesis);
    // Its reports go under the target dir, not the clone's root.
    let work = target_dir(root).join("schemathesis-run");
    std::fs::create_dir_all(&work).context("creating the fuzzer's working folder")?;
    cmd.current_dir(&work)
        .arg("run")
        .arg(format!("{url}/v1/openapi.json"))
        .args(["--url", &url])
        .args(["-H", &format!("Authorization: Bearer {key}")])
        .args([
            "--checks",
            "not_a_server_error,response_schema_conformance,status_code_conformance,content_type_conformance",
        ])
        .args(["--max-examples", &examples])
        .args(["--phases", "examples,coverage,fuzzing"])
        .args(["--exclude-path", EDGE_ONLY])
        .args(["--exclude-name", SELF_REVOKING])
        // No example database: with one kept between runs, a run replays the last
        // one's examples and is no longer the same run for the same seed.
        .args(["--generation-database", "none"])
        .args(["--workers", "2", "--seed", "1"]);
    let result = step("schemathesis against crm-host demo", cmd);
    drop(demo);
    result
}

/// The demo's URL and admin key, from the lines it prints once it serves.
fn announced(stdout: std::process::ChildStdout) -> Result<(String, String)> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    let (mut url, mut key) = (None, None);
    while url.is_none() || key.is_none() {
        let line = rx
            .recv_timeout(Duration::from_secs(120))
            .context("crm-host demo did not announce its URL and key within 2 minutes")?;
        if let Some(rest) = line.strip_prefix("CRM activity engine demo is running at ") {
            url = Some(rest.trim().to_owned());
        }
        if let Some((_, k)) = line.split_once("API key (admin, tenant `demo`): ") {
            key = Some(k.trim().to_owned());
        }
    }
    match (url, key) {
        (Some(u), Some(k)) => Ok((u, k)),
        _ => bail!("crm-host demo printed no URL or key"),
    }
}

/// schemathesis in `<target>/schemathesis`, installed once per target dir.
fn install(root: &Path) -> Result<std::path::PathBuf> {
    let venv = target_dir(root).join("schemathesis");
    let bin = venv.join("bin/schemathesis");
    let have = Command::new(&bin)
        .arg("--version")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).contains(SCHEMATHESIS_VERSION));
    if !have {
        let mut mk = Command::new("python3");
        mk.args(["-m", "venv"]).arg(&venv);
        step("python3 -m venv (schemathesis)", mk)?;
        let mut pip = Command::new(venv.join("bin/pip"));
        pip.args([
            "install",
            "--quiet",
            &format!("schemathesis=={SCHEMATHESIS_VERSION}"),
        ]);
        step(
            &format!("pip install schemathesis {SCHEMATHESIS_VERSION}"),
            pip,
        )?;
    }
    Ok(bin)
}

//! The wasm component against crm-core linked natively, on the calls that cross the
//! boundary: a 100-activity enrichment batch and a 100-check permission batch.
//! `cargo bench -p crm-host --bench engines`
//!
//! The two engines are timed alternately in one process, round after round, and each
//! round's ratio compares times taken moments apart. On this machine the speed of the
//! same code drifts by up to 40 % from one few-second stretch to the next (criterion's
//! medians of the native batch moved between 166 and 276 µs across back-to-back runs),
//! so timing one engine for seconds and then the other — criterion's way — gives a
//! ratio that moves with the drift. The answer is the median over rounds.
//!
//! With `ENGINES_BENCH_OUT` set, the figures are also written there as JSON (`cargo
//! xtask bench` reads them).

use std::hint::black_box;
use std::time::Instant;

use crm_core::Timestamp;
use crm_core::engine::TenantSnapshot;
use crm_core::permission::CheckRequest;
use crm_host::engine::{self, EngineKind, RawActivity, SharedEngine, Tenant};
use serde_json::{Value, json};

/// The allocator the `crm-host` binary runs with (src/main.rs), so both engines are
/// measured as they serve.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

const BATCH: usize = 100;
/// Rounds after the warm-up; each times every (operation, engine) pair once.
const ROUNDS: usize = 40;
/// Batches per timing: long enough (~20–40 ms) that the clock's resolution is noise.
const ENRICH_BATCHES: u32 = 100;
const CHECK_BATCHES: u32 = 1_000;

fn tenant() -> Tenant {
    let fixture: Value = serde_json::from_str(include_str!(
        "../../../tests/conformance/fixtures/acme.json"
    ))
    .expect("fixture");
    let policy_json = fixture["policy"].to_string();
    let directory_json = fixture["directory"].to_string();
    Tenant {
        snapshot: TenantSnapshot::from_json("bench", 1, &policy_json, &directory_json)
            .expect("fixture compiles"),
        policy_json,
    }
}

/// Microseconds per batch of `batches` runs of `f`.
fn per_batch_us(batches: u32, mut f: impl FnMut()) -> f64 {
    let start = Instant::now();
    for _ in 0..batches {
        f();
    }
    start.elapsed().as_secs_f64() * 1e6 / f64::from(batches)
}

fn median(mut xs: Vec<f64>) -> f64 {
    xs.sort_by(f64::total_cmp);
    xs[xs.len() / 2]
}

/// Per-round times of one operation: `[native, component]` per round.
#[derive(Default)]
struct Rounds(Vec<[f64; 2]>);

impl Rounds {
    fn summary(&self, op: &str) -> Value {
        let native = median(self.0.iter().map(|r| r[0]).collect());
        let component = median(self.0.iter().map(|r| r[1]).collect());
        let ratio = median(self.0.iter().map(|r| r[1] / r[0]).collect());
        println!(
            "{op:<16} native {native:8.1} µs   component {component:8.1} µs   ratio {ratio:.2}× (median of {} rounds)",
            self.0.len()
        );
        json!({ "nativeUs": native, "componentUs": component, "ratio": ratio })
    }
}

fn main() {
    // `cargo bench` passes `--bench`; a `cargo test` run of benches passes nothing else
    // and should stay quick.
    let rounds = if std::env::args().any(|a| a == "--bench") {
        ROUNDS
    } else {
        1
    };
    let tenant = tenant();
    let users = ["user-123", "user-200", "user-300", "user-402"];
    let raws: Vec<RawActivity> = (0..BATCH)
        .map(|i| RawActivity {
            input_json: json!({ "userId": users[i % 4], "operation": "crm.leads.create", "entityType": "lead",
                "metadata": { "n": i, "source": "bench" },
                "compliance": { "userAgent": "bench/1", "location": "Berlin", "authenticationMethod": "sso" } })
            .to_string(),
            generated_id: format!("gen-{i}"),
        })
        .collect();
    let checks: Vec<CheckRequest> = (0..BATCH)
        .map(|i| CheckRequest {
            user_id: users[i % 4].to_owned(),
            permission: format!("crm.leads.op{}", i % 7),
        })
        .collect();
    let now = Timestamp::from_millis(1_764_000_000_000).expect("in range");
    let engines: [SharedEngine; 2] = [EngineKind::Native, EngineKind::Component]
        .map(|kind| engine::build(kind).expect("engine builds"));
    let (mut enrich, mut check) = (Rounds::default(), Rounds::default());
    // Round 0 warms both engines (the component's instance, caches) and is not kept.
    for round in 0..=rounds {
        let mut times = [[0.0; 2]; 2];
        // Alternate which engine goes first, so neither always follows the other.
        let order = if round % 2 == 0 { [0, 1] } else { [1, 0] };
        for e in order {
            let engine = &engines[e];
            times[0][e] = per_batch_us(ENRICH_BATCHES, || {
                black_box(
                    engine
                        .enrich_batch(&tenant, now, Some("127.0.0.1"), &raws)
                        .expect("enriches"),
                );
            });
            times[1][e] = per_batch_us(CHECK_BATCHES, || {
                black_box(engine.check_batch(&tenant, &checks).expect("checks"));
            });
        }
        if round > 0 {
            enrich.0.push(times[0]);
            check.0.push(times[1]);
        }
    }
    let figures = json!({
        "enrichBatch100": enrich.summary("enrich_batch_100"),
        "checkBatch100": check.summary("check_batch_100"),
    });
    if let Some(path) = std::env::var_os("ENGINES_BENCH_OUT") {
        std::fs::write(&path, figures.to_string()).expect("writes ENGINES_BENCH_OUT");
    }
}

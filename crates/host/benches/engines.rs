//! The wasm component against crm-core linked natively, on the calls that cross the
//! boundary: a 100-activity enrichment batch and a 100-check permission batch.
//! `cargo bench -p crm-host --bench engines`

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use crm_core::engine::TenantSnapshot;
use crm_core::permission::CheckRequest;
use crm_host::engine::{self, EngineKind, RawActivity, Tenant};
use serde_json::{Value, json};

const BATCH: usize = 100;

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

fn bench(c: &mut Criterion) {
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
    let now = crm_core::Timestamp::from_millis(1_764_000_000_000).expect("in range");
    for kind in [EngineKind::Native, EngineKind::Component] {
        let engine = engine::build(kind).expect("engine builds");
        let name = format!("{kind:?}").to_lowercase();
        c.bench_function(&format!("enrich_batch_100/{name}"), |b| {
            b.iter(|| {
                black_box(
                    engine
                        .enrich_batch(&tenant, now, Some("127.0.0.1"), &raws)
                        .expect("enriches"),
                )
            })
        });
        c.bench_function(&format!("check_batch_100/{name}"), |b| {
            b.iter(|| black_box(engine.check_batch(&tenant, &checks).expect("checks")))
        });
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);

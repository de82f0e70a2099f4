//! Enrichment of a 100-activity batch and a report over 100k activities.
//! `cargo bench -p crm-core --bench pipeline`

mod support;

use std::hint::black_box;

use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use crm_core::enrich::{EnrichContext, enrich};
use crm_core::report::{Aggregate, GroupBy, ReportRow, ReportTz};
use crm_core::{
    ActivityInput, CompiledDirectory, Credits, DirectorySpec, Outcome, TenantPolicy, Timestamp,
};
use serde_json::json;
use support::{USERS, permission};

const BATCH: usize = 100;
const REPORT_ROWS: usize = 100_000;
const T0: i64 = 1_704_067_200_000;

fn inputs() -> Vec<ActivityInput> {
    (0..BATCH)
        .map(|i| {
            serde_json::from_value(json!({
                "userId": format!("user-{}", i % USERS),
                "operation": permission(i * 7),
                "entityType": "lead", "entityId": format!("lead-{i}"),
                "metadata": { "source": "bench", "n": i },
                "compliance": { "userAgent": "bench/1.0", "location": "Berlin", "authenticationMethod": "sso" }
            }))
            .expect("bench input")
        })
        .collect()
}

fn rows() -> Vec<ReportRow> {
    (0..REPORT_ROWS)
        .map(|i| ReportRow {
            // Spread over 30 days.
            occurred_at: Timestamp::from_millis(T0 + (i as i64) * 25_920).expect("in range"),
            latest: None,
            count: 1,
            user_id: format!("user-{}", i % USERS),
            department_id: Some(format!("dept-{}", i % 10)),
            operation: permission(i % 50),
            outcome: if i % 20 == 0 {
                Outcome::Denied
            } else {
                Outcome::Success
            },
            entity_type: Some("lead".to_owned()),
            credits: Credits::from_units(5_000).expect("in range"),
            location: Some("Berlin".to_owned()),
            authentication_method: Some("sso".to_owned()),
            ip_address: Some(format!("10.0.{}.{}", i % 7, i % 13)),
        })
        .collect()
}

fn bench(c: &mut Criterion) {
    let spec: DirectorySpec =
        serde_json::from_value(support::directory_json()).expect("bench directory");
    let dir = CompiledDirectory::compile(&spec).expect("bench directory compiles");
    let policy = TenantPolicy::default();
    let batch = inputs();
    c.bench_function("enrich_batch_100", |b| {
        b.iter_batched(
            || batch.clone(),
            |batch| {
                for (i, input) in batch.into_iter().enumerate() {
                    let ctx = EnrichContext {
                        tenant_id: "tenant-bench",
                        now: Timestamp::from_millis(T0).expect("in range"),
                        generated_id: format!("gen-{i}"),
                        ip_address: Some("127.0.0.1".to_owned()),
                        directory_version: Some(1),
                    };
                    black_box(enrich(&dir, &policy, input, &ctx).expect("valid input"));
                }
            },
            BatchSize::SmallInput,
        )
    });

    let rows = rows();
    let tz = ReportTz::parse("Europe/Berlin").expect("known timezone");
    let mut group = c.benchmark_group("report");
    group.sample_size(10);
    group.bench_function("aggregate_100k_day", |b| {
        b.iter(|| {
            let mut agg = Aggregate::new(GroupBy::Day, tz.clone());
            agg.add_all(black_box(&rows)).expect("no overflow");
            black_box(agg.finish())
        })
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);

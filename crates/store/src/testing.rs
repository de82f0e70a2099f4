//! Fixtures for this crate's unit tests.

use crm_core::engine::TenantSnapshot;
use crm_core::{Activity, Timestamp};

/// `n` sealed records of the conformance fixture's tenant, from seq 1.
pub fn chain(n: usize, now: Timestamp) -> Vec<Activity> {
    let fixture: serde_json::Value = serde_json::from_str(include_str!(
        "../../../tests/conformance/fixtures/acme.json"
    ))
    .expect("the fixture is JSON");
    let snap = TenantSnapshot::from_json(
        "t",
        1,
        &fixture["policy"].to_string(),
        &fixture["directory"].to_string(),
    )
    .expect("the fixture compiles");
    let users = ["user-123", "user-200", "user-402"];
    let mut records: Vec<Activity> = (0..n)
        .map(|i| {
            let input = format!(
                r#"{{"id":"a-{i}","userId":"{}","operation":"crm.leads.read"}}"#,
                users[i % 3]
            );
            // Every record from its own address: a rollup row each, the most a batch folds to.
            let ip = format!("10.{}.{}.{}", i / 65_536, i / 256 % 256, i % 256);
            snap.enrich_json(&input, "unused", now, Some(&ip))
                .expect("valid input")
        })
        .collect();
    crm_core::engine::settle_and_seal(
        crm_core::Credits::from_units(1_000_000_000).expect("in range"),
        1,
        &"0".repeat(64),
        &mut records,
    )
    .expect("enough credits");
    records
}

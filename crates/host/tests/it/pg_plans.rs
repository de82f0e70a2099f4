//! PostgreSQL plans before statistics: ingest's id lookup (`activities::lookup`) probes
//! the primary key once per id even while `activities` has never been analysed. As
//! `tenant_id = $1 AND id IN (…500 ids)` it was rated as matching every row and read
//! the tenant's rows to filter them: a fresh database ingested ~1,500 activities/s,
//! then a few hundred, until the first autovacuum analysed the table.

use crm_host::store::Store;
use crm_store::activities;

use crate::support::Backend;

#[tokio::test(flavor = "multi_thread")]
async fn the_id_lookup_probes_the_primary_key_before_the_table_is_analysed() {
    let dir = tempfile::tempdir().expect("dir");
    let store = Store::open(&Backend::Postgres.fresh(dir.path())).expect("store opens");
    let d = store.dialect();
    let plan = store
        .read(move |c| {
            // 20,000 rows of one tenant, never analysed (a fresh database).
            c.execute(&d.stmt(
                "INSERT INTO activities (tenant_id, id, seq, occurred_at, received_at,
                     user_id, department_id, department_path, operation, outcome,
                     credits_units, input_hash, prev_hash, hash, body)
                 SELECT 't-plan', 'id-' || g, g, g, g, 'u', 'd', '/d/', 'op', 'success',
                        0, 'h', 'p', 'h', '{}'
                 FROM generate_series(1, 20000) AS g",
                Vec::new(),
            ))?;
            let ids: Vec<String> = (0..500).map(|i| format!("id-{}", i * 37 + 1)).collect();
            let refs: Vec<&str> = ids.iter().map(String::as_str).collect();
            let lookup = activities::lookup(d, "t-plan", &refs);
            assert_eq!(lookup.len(), 1);
            let found = c.query(&lookup[0])?;
            assert_eq!(found.len(), 500);
            let explain = crm_store::Statement {
                sql: format!("EXPLAIN {}", lookup[0].sql),
                params: lookup[0].params.clone(),
            };
            let lines = c.query(&explain)?;
            let lines = lines
                .iter()
                .map(|r| r.string(0))
                .collect::<Result<Vec<_>, _>>()?;
            Ok(lines.join("\n"))
        })
        .await
        .expect("read");
    assert!(plan.contains("activities_pkey"), "{plan}");
    assert!(
        !plan.contains("Hash Join") && !plan.contains("Filter"),
        "{plan}"
    );
}

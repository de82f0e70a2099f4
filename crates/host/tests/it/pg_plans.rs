//! PostgreSQL plans: ingest's id lookup (`activities::lookup`) is planned with its
//! parameters every time. Cached, it got a generic plan on the empty table after five
//! executions — the tenant's rows through an index on `tenant_id` alone, the ids
//! filtered — and kept it while the table grew, until the first autovacuum analysed
//! it: a fresh database ingested ~1,500 activities/s, then a few hundred.

use crm_host::store::Store;
use crm_store::activities;

use crate::support::Backend;

#[tokio::test(flavor = "multi_thread")]
async fn the_id_lookup_never_runs_a_generic_plan_made_on_an_empty_table() {
    let dir = tempfile::tempdir().expect("dir");
    let store = Store::open(&Backend::Postgres.fresh(dir.path())).expect("store opens");
    let d = store.dialect();
    let (lookup_generic, cached_runs) = store
        .read(move |c| {
            let lookup = activities::lookup(d, "t-plan", &["a", "b", "c"]);
            assert_eq!(lookup.len(), 1);
            let count = d.stmt(
                "SELECT count(*) FROM activities WHERE tenant_id = ?1",
                vec!["t-plan".into()],
            );
            for _ in 0..8 {
                assert!(c.query(&lookup[0])?.is_empty());
                c.query(&count)?;
            }
            let plans = |like: &str| {
                d.stmt(
                    "SELECT CAST(COALESCE(SUM(generic_plans), 0) AS BIGINT),
                            CAST(COALESCE(SUM(generic_plans + custom_plans), 0) AS BIGINT)
                     FROM pg_prepared_statements WHERE statement LIKE ?1",
                    vec![like.into()],
                )
            };
            let lookup_plans = c.query(&plans("%AND id IN (%"))?;
            let count_plans = c.query(&plans("SELECT count(*) FROM activities%"))?;
            Ok((lookup_plans[0].int(0)?, count_plans[0].int(1)?))
        })
        .await
        .expect("read");
    // The view sees this connection's cached statements and their executions...
    assert_eq!(cached_runs, 8);
    // ...and the lookup never ran a generic plan.
    assert_eq!(lookup_generic, 0);
}

//! PostgreSQL reads (issue 26.2): rows reach a report's fold one at a time as the
//! server sends them (never the whole result in memory), a fold that stops early
//! leaves the connection usable, and every statement of the read pool is cut off by
//! the server after 30 s.

use std::ops::ControlFlow;

use crm_host::store::Store;

use crate::support::Backend;

#[tokio::test(flavor = "multi_thread")]
async fn postgres_reads_stream_stop_early_and_are_bounded_in_time() {
    let dir = tempfile::tempdir().expect("dir");
    let store = Store::open(&Backend::Postgres.fresh(dir.path())).expect("store opens");
    let d = store.dialect();
    let (all, first, timeout) = store
        .read(move |c| {
            let series = d.stmt("SELECT generate_series(1, 200000)::bigint", Vec::new());
            let mut all = 0u64;
            c.for_each(&series, &mut |_| {
                all += 1;
                ControlFlow::Continue(())
            })?;
            let mut first = Vec::new();
            c.for_each(&series, &mut |row| {
                first.push(row.int(0).expect("an integer"));
                if first.len() == 5 {
                    ControlFlow::Break(())
                } else {
                    ControlFlow::Continue(())
                }
            })?;
            let shown = c.query(&d.stmt("SHOW statement_timeout", Vec::new()))?;
            Ok((all, first, shown[0].string(0)?))
        })
        .await
        .expect("read");
    assert_eq!(all, 200_000);
    assert_eq!(first, vec![1, 2, 3, 4, 5]);
    assert_eq!(timeout, "30s");
}

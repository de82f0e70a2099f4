//! D1's per-statement limits, checked over the statements a whole request or consumer
//! batch renders at its largest: at most 100 bound parameters and 100 KB of SQL text
//! each (values are always bound, so a statement's text does not grow with its data).
//! `wrangler dev` enforces neither; this keeps every multi-row builder honest.

use crate::activities::{self, Filter};
use crate::dialect::Dialect;
use crate::ingest::{self, Candidate};
use crate::tenants::Head;
use crate::{Statement, listing, queued, report, testing};
use crm_core::limits::MAX_BATCH;
use crm_core::wallet::{Grant, GrantStatus, Wallet};
use crm_core::{Credits, Outcome, Timestamp};

fn within(what: &str, statements: &[Statement]) {
    assert!(!statements.is_empty(), "{what}: no statement");
    for st in statements {
        if let Some(why) = Dialect::D1.refuses(st) {
            panic!("{what}: {why} in {}", &st.sql[..st.sql.len().min(120)]);
        }
    }
}

#[test]
fn statements_past_d1s_limits_are_named() {
    let d = Dialect::D1;
    let params = |n: usize| vec![crate::sql::Value::Int(Some(1)); n];
    assert_eq!(d.refuses(&d.stmt("SELECT 1", params(100))), None);
    assert!(
        d.refuses(&d.stmt("SELECT 1", params(101)))
            .is_some_and(|w| w.contains("101 bound parameters"))
    );
    let long = format!("SELECT '{}'", "x".repeat(100_000));
    assert!(
        d.refuses(&d.stmt(&long, Vec::new()))
            .is_some_and(|w| w.contains("bytes of SQL"))
    );
    assert_eq!(
        Dialect::Sqlite.refuses(&d.stmt("SELECT 1", params(101))),
        None
    );
}

#[test]
fn a_full_batch_writes_within_d1_statement_limits() {
    let d = Dialect::D1;
    let now = Timestamp::from_millis(1_750_000_000_000).expect("valid");
    let mut sealed = testing::chain(MAX_BATCH, now);
    let hashes: Vec<String> = (0..MAX_BATCH).map(|i| format!("{i:064x}")).collect();
    let hash_refs: Vec<&str> = hashes.iter().map(String::as_str).collect();
    let arrivals: Vec<activities::Arrival<'_>> = hash_refs
        .iter()
        .map(|h| activities::Arrival {
            input_hash: h,
            received_at: now.millis(),
        })
        .collect();
    let head = Head {
        seq: 0,
        hash: "0".repeat(64),
        balance: Credits::ZERO,
    };
    // A wallet at its largest: every open grant expires in this batch's transaction.
    let open: Vec<Grant> = (0..crate::grants::MAX_OPEN_GRANTS)
        .map(|i| Grant {
            id: format!("g{i}"),
            amount: 10_000_000,
            remaining: 10_000_000,
            effective_at: 0,
            expires_at: Some(if i == 0 { i64::MAX } else { 1 }),
            priority: 50,
            created_at: 0,
            status: GrantStatus::Active,
            closed_at: None,
        })
        .collect();
    let mut wallet = Wallet::new(open).expect("consistent");
    let head = Head {
        balance: Credits::from_units(wallet.balance()).expect("in range"),
        ..head
    };
    // No subject has a key yet: the write creates them.
    let subjects = crate::subject_keys::subjects(&sealed, &[]);
    let key_reads = crate::subject_keys::for_subjects(d, "t", &subjects);
    let subject_count = subjects.len();
    within("subject_keys::for_subjects", &key_reads);
    let mut sealing = crate::subject_keys::Sealing::from_rows(&[], &[]).expect("no rows");
    let random: Vec<u8> = (0..sealing.random_needed(&sealed))
        .map(|i| i as u8)
        .collect();
    sealing.supply(&sealed, &random).expect("fits");
    let (_, statements) = ingest::seal_and_write(
        d,
        "t",
        ingest::Account {
            head: &head,
            wallet: &mut wallet,
            rules: &[],
            sealing: &mut sealing,
        },
        &mut sealed,
        &arrivals,
    )
    .expect("writes");
    // The same batch against one grant that stays: the wallet's own statements are
    // two per grant at most (its expiry entry and its update).
    let mut one = Wallet::new(vec![Grant {
        expires_at: None,
        ..wallet.grants()[0].clone()
    }])
    .expect("consistent");
    let mut again = testing::chain(MAX_BATCH, now);
    let one_head = Head {
        balance: Credits::from_units(one.balance()).expect("in range"),
        ..head.clone()
    };
    let mut none_new = crate::subject_keys::Sealing::from_rows(&[], &[]).expect("no rows");
    let random: Vec<u8> = (0..none_new.random_needed(&again))
        .map(|i| i as u8)
        .collect();
    none_new.supply(&again, &random).expect("fits");
    let (_, baseline) = ingest::seal_and_write(
        d,
        "t",
        ingest::Account {
            head: &one_head,
            wallet: &mut one,
            rules: &[],
            sealing: &mut none_new,
        },
        &mut again,
        &arrivals,
    )
    .expect("writes");
    // The whole write at its largest fits the consumer's per-write query budget.
    let ids: Vec<&str> = sealed.iter().map(|a| a.id.as_str()).collect();
    let queries = activities::lookup(d, "t", &ids).len()
        + 2
        + key_reads.len()
        + statements.len()
        + queued::release(d, "t", &ids, now.millis()).len();
    assert!(
        queries <= ingest::MAX_WRITE_QUERIES,
        "{queries} queries for one full write"
    );
    let key_inserts = subject_count.div_ceil(d.max_params() / 5);
    assert!(
        statements.len() <= baseline.len() + 2 * crate::grants::MAX_OPEN_GRANTS + key_inserts,
        "{} statements, {} without the wallet",
        statements.len(),
        baseline.len()
    );
    within("ingest::seal_and_write", &statements);
    let ids: Vec<&str> = sealed.iter().map(|a| a.id.as_str()).collect();
    within("activities::lookup", &activities::lookup(d, "t", &ids));
    let candidates: Vec<Candidate<'_>> = ids
        .iter()
        .zip(&hash_refs)
        .map(|(id, h)| Candidate { id, input_hash: h })
        .collect();
    within(
        "queued::reserve",
        &queued::reserve(d, "t", &candidates, now.millis()),
    );
    within(
        "queued::lookup",
        &queued::lookup(d, "t", &ids, now.millis()),
    );
    within(
        "queued::release",
        &queued::release(d, "t", &ids, now.millis()),
    );
}

#[test]
fn keys_for_a_full_batch_of_new_subjects_fit_d1s_limits() {
    let d = Dialect::D1;
    let now = Timestamp::from_millis(1_800_000_000_000).expect("valid");
    let mut batch = testing::chain(MAX_BATCH, now);
    for (i, a) in batch.iter_mut().enumerate() {
        a.user_id = format!("subject-{i}");
    }
    let subjects = crate::subject_keys::subjects(&batch, &[]);
    assert_eq!(subjects.len(), MAX_BATCH);
    let reads = crate::subject_keys::for_subjects(d, "t", &subjects);
    within("subject_keys::for_subjects", &reads);
    let mut sealing = crate::subject_keys::Sealing::from_rows(&[], &[]).expect("no rows");
    let random: Vec<u8> = (0..sealing.random_needed(&batch))
        .map(|i| i as u8)
        .collect();
    sealing.supply(&batch, &random).expect("fits");
    let inserts = sealing.inserts(d, "t", now);
    within("Sealing::inserts", &inserts);
    // A tenth of an invocation's 1,000 queries at most, for the worst case.
    assert!(
        reads.len() + inserts.len() <= 100,
        "{} key statements",
        reads.len() + inserts.len()
    );
}

#[test]
fn reads_with_every_filter_stay_within_d1_statement_limits() {
    let d = Dialect::D1;
    let f = Filter {
        user_id: Some("user-123".to_owned()),
        department_path: Some("/org/dept/".to_owned()),
        operation: Some("crm.leads.read".to_owned()),
        outcome: Some(Outcome::Denied),
        from: 0,
        to: 1_750_000_000_000,
        entity: Some(("deal".to_owned(), "deal-4711".to_owned())),
        session_id: Some("s-9".to_owned()),
        ip: Some(crate::activities::IpMatch::Prefix("10.1.".to_owned())),
        location: Some("Berlin".to_owned()),
        metadata: Some(("source".to_owned(), "web".to_owned())),
    };
    within("listing::page", &[listing::page(d, "t", &f, None, 500)]);
    let now = crm_core::Timestamp(f.to);
    let parts: Vec<Statement> = report::parts(d, "t", &f, None, now)
        .into_iter()
        .map(|p| p.statement)
        .collect();
    within("report::parts", &parts);
    // A subtree's report ending in an open hour: trimmed at both edges.
    let hour = 3_600_000;
    let subtree = Filter {
        department_path: f.department_path.clone(),
        from: 1_750_000_000_000 - 1000 * hour + 60_000,
        to: 1_750_000_000_000 + 1,
        ..Filter::default()
    };
    let parts = report::parts(
        d,
        "t",
        &subtree,
        Some(crm_core::report::Tier::TimeQuarter),
        now,
    );
    assert!(
        parts
            .iter()
            .any(|p| matches!(p.kind, report::PartKind::Trimmed { .. })),
        "{parts:?}"
    );
    let parts: Vec<Statement> = parts.into_iter().map(|p| p.statement).collect();
    within("report::parts (trimmed)", &parts);
    let pairs: Vec<(String, String)> = (0..report::NEWEST_PER_READ)
        .map(|i| (format!("dept-{i}"), format!("crm.op.{i}")))
        .collect();
    let piece = crm_core::query::TrimmedHour {
        hour: 0,
        from: 0,
        to: 60_000,
    };
    within("report::newest", &[report::newest(d, "t", piece, &pairs)]);
}

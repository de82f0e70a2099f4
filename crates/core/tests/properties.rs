//! Property tests: exact credit arithmetic, one duration grammar, mergeable reports, a
//! directory written back from its compiled form.

use crm_core::credits::{Credits, UNITS_PER_CREDIT};
use crm_core::directory::{Department, Organization, Role, User};
use crm_core::duration::Since;
use crm_core::report::{Aggregate, GroupBy, ReportRow, ReportTz};
use crm_core::{CompiledDirectory, DirectorySpec};
use crm_core::{Outcome, Timestamp};
use proptest::prelude::*;

/// Keeps sums of a few hundred amounts far from the overflow bound.
const MAX_TEST_UNITS: i64 = 1_000_000_000_000;

fn credits() -> impl Strategy<Value = Credits> {
    (0..MAX_TEST_UNITS).prop_map(|u| Credits::from_units(u).expect("within range"))
}

proptest! {
    #[test]
    fn credits_round_trip_through_their_text(c in credits()) {
        let text = c.to_string();
        prop_assert_eq!(Credits::parse(&text).expect("formatted credits parse"), c);
        prop_assert_eq!(text.split('.').nth(1).map(str::len), Some(4));
    }

    #[test]
    fn credit_sums_are_exact_and_order_free(items in prop::collection::vec(credits(), 0..50)) {
        let forward = items.iter().try_fold(Credits::ZERO, |a, c| a.checked_add(*c)).expect("no overflow");
        let backward = items.iter().rev().try_fold(Credits::ZERO, |a, c| a.checked_add(*c)).expect("no overflow");
        let units: i64 = items.iter().map(|c| c.units()).sum();
        prop_assert_eq!(forward, backward);
        prop_assert_eq!(forward.units(), units);
    }

    #[test]
    fn debit_never_goes_negative(balance in credits(), cost in credits()) {
        match balance.debit(cost) {
            Ok(left) => {
                prop_assert!(!left.is_negative());
                prop_assert_eq!(left.units() + cost.units(), balance.units());
            }
            Err(_) => prop_assert!(cost.units() > balance.units()),
        }
    }

    #[test]
    fn addition_overflow_is_an_error_not_a_wrap(a in any::<i64>(), b in any::<i64>()) {
        let (Ok(x), Ok(y)) = (Credits::from_units(a), Credits::from_units(b)) else {
            return Ok(());
        };
        match x.checked_add(y) {
            Ok(sum) => prop_assert_eq!(sum.units(), a + b),
            // Out of range is refused, never wrapped.
            Err(_) => prop_assert!(Credits::from_units(a.saturating_add(b)).is_err() || a.checked_add(b).is_none()),
        }
    }

    #[test]
    fn decimal_text_parses_to_exact_units(whole in 0i64..1_000_000, frac in 0i64..10_000) {
        let text = format!("{whole}.{frac:04}");
        let c = Credits::parse(&text).expect("valid decimal");
        prop_assert_eq!(c.units(), whole * UNITS_PER_CREDIT + frac);
    }

    #[test]
    fn since_units_are_consistent(n in 1i64..=365) {
        let minute = 60_000;
        let m = Since::parse(&format!("{}m", n * 60 * 24 * 7)).map(|s| s.millis);
        let h = Since::parse(&format!("{}h", n * 24 * 7)).map(|s| s.millis);
        let d = Since::parse(&format!("{}d", n * 7)).map(|s| s.millis);
        let w = Since::parse(&format!("{n}w")).map(|s| s.millis);
        // Values beyond the longest window are refused everywhere alike.
        if let (Ok(m), Ok(h), Ok(d), Ok(w)) = (m.clone(), h.clone(), d.clone(), w.clone()) {
            prop_assert_eq!(m, n * 7 * 24 * 60 * minute);
            prop_assert_eq!(h, m);
            prop_assert_eq!(d, m);
            prop_assert_eq!(w, m);
        } else {
            prop_assert!(m.is_err() && h.is_err() && d.is_err() && w.is_err());
        }
    }

    #[test]
    fn since_rejects_garbage(text in "[a-z0-9 .-]{0,8}") {
        // Surrounding whitespace is ignored, as in query strings.
        let t = text.trim();
        let plausible = t.len() >= 2
            && t[..t.len() - 1].bytes().all(|b| b.is_ascii_digit())
            && matches!(t.as_bytes()[t.len() - 1], b'm' | b'h' | b'd' | b'w');
        if !plausible {
            prop_assert!(Since::parse(&text).is_err());
        }
    }

    #[test]
    fn merge_of_parts_equals_aggregate_of_all(
        rows in prop::collection::vec(row(), 0..60),
        split in any::<prop::sample::Index>(),
        group in prop::sample::select(vec!["hour", "day", "week", "month"]),
        tz in prop::sample::select(vec!["UTC", "Europe/Berlin", "America/New_York", "Asia/Kolkata"]),
    ) {
        let g = GroupBy::parse(group).expect("known grouping");
        let tz = ReportTz::parse(tz).expect("known timezone");
        let at = if rows.is_empty() { 0 } else { split.index(rows.len() + 1) };
        let mut whole = Aggregate::new(g, tz.clone());
        whole.add_all(&rows).expect("no overflow");
        let (mut left, mut right) = (Aggregate::new(g, tz.clone()), Aggregate::new(g, tz));
        left.add_all(&rows[..at]).expect("no overflow");
        right.add_all(&rows[at..]).expect("no overflow");
        // merge(b, a) as well: order of shards must not matter.
        right.merge(&left).expect("no overflow");
        prop_assert_eq!(right.finish(), whole.finish());
    }
}

fn row() -> impl Strategy<Value = ReportRow> {
    (
        1_700_000_000_000i64..1_710_000_000_000,
        1u64..5,
        prop::sample::select(vec!["u1", "u2", "u3"]),
        prop::sample::select(vec![
            "crm.leads.create",
            "crm.leads.read",
            "crm.reports.export",
        ]),
        prop::sample::select(vec![Outcome::Success, Outcome::Denied, Outcome::Failed]),
        0i64..100_000,
        prop::option::of(prop::sample::select(vec!["Berlin", "Paris"])),
        prop::option::of(prop::sample::select(vec!["10.0.0.1", "10.0.0.2"])),
    )
        .prop_map(|(ms, count, user, op, outcome, units, loc, ip)| ReportRow {
            occurred_at: Timestamp::from_millis(ms).expect("in range"),
            latest: None,
            count,
            user_id: user.to_owned(),
            department_id: Some(format!("dept-{user}")),
            operation: op.to_owned(),
            outcome,
            entity_type: None,
            credits: Credits::from_units(units).expect("in range"),
            location: loc.map(str::to_owned),
            authentication_method: None,
            ip_address: ip.map(str::to_owned),
        })
}

/// A valid directory: departments nest under earlier ones, users hold roles (sometimes
/// twice) and direct grants, roles hold exact, prefix, deny and `*` patterns.
fn directory_spec() -> impl Strategy<Value = DirectorySpec> {
    let pattern = prop::sample::select(vec![
        "crm.leads.read",
        "crm.leads.*",
        "!crm.leads.delete",
        "crm.deals.close",
        "*",
        "crm.reports.view",
    ]);
    let depts = prop::collection::vec(any::<prop::sample::Index>(), 1..6);
    let roles = prop::collection::vec(prop::collection::vec(pattern.clone(), 0..4), 1..4);
    (depts, roles).prop_flat_map(move |(parents, roles)| {
        let (n_depts, n_roles) = (parents.len(), roles.len());
        let user = (
            0..n_depts,
            prop::collection::vec(0..n_roles, 0..4),
            prop::collection::vec(pattern.clone(), 0..3),
            any::<bool>(),
        );
        prop::collection::vec(user, 1..12).prop_map(move |users| DirectorySpec {
            organizations: vec![Organization {
                id: "org".into(),
                name: "Org".into(),
            }],
            departments: parents
                .iter()
                .enumerate()
                .map(|(i, p)| Department {
                    id: format!("d{i}"),
                    name: format!("Dept {i}"),
                    organization_id: "org".into(),
                    parent_id: (i > 0).then(|| format!("d{}", p.index(i))),
                })
                .collect(),
            users: users
                .iter()
                .enumerate()
                .map(|(i, (dept, user_roles, grants, email))| User {
                    id: format!("u{i}"),
                    name: format!("User {i}"),
                    email: email.then(|| format!("u{i}@example.com")),
                    title: None,
                    department_id: format!("d{dept}"),
                    roles: user_roles.iter().map(|r| format!("r{r}")).collect(),
                    grants: grants.iter().map(|g| (*g).to_owned()).collect(),
                })
                .collect(),
            roles: roles
                .iter()
                .enumerate()
                .map(|(i, patterns)| Role {
                    id: format!("r{i}"),
                    name: format!("Role {i}"),
                    permissions: patterns.iter().map(|p| (*p).to_owned()).collect(),
                })
                .collect(),
        })
    })
}

proptest! {
    /// Runtimes keep the compiled directory only and write the document again for the
    /// wasm guest: compiling it again must give the same answers at the same positions.
    #[test]
    fn a_directory_written_back_from_its_compiled_form_compiles_to_the_same_directory(
        spec in directory_spec()
    ) {
        let first = CompiledDirectory::compile(&spec).expect("a valid directory");
        let written = first.to_spec();
        let second = CompiledDirectory::compile(&written).expect("written back valid");
        prop_assert_eq!(second.to_spec(), written.clone());
        let deduplicated = spec.users.iter().all(|u| {
            u.roles.iter().enumerate().all(|(i, r)| !u.roles[..i].contains(r))
        });
        if deduplicated {
            prop_assert_eq!(&written, &spec);
        }
        for (i, u) in spec.users.iter().enumerate() {
            let position = u32::try_from(i).expect("small");
            let (a, b) = (first.user_at(position).expect("in range"), second.user_at(position).expect("in range"));
            prop_assert_eq!(first.user_context(a), second.user_context(b));
            for op in ["crm.leads.read", "crm.leads.delete", "crm.deals.close", "crm.other"] {
                prop_assert_eq!(first.check_raw(&u.id, op), second.check_raw(&u.id, op));
            }
        }
    }
}

/// Issue 26.8: free-text breakdowns (written by clients) list at most
/// `MAX_BREAKDOWN` entries; the rest are summed under `(other)`, and every sum stays
/// exact.
#[test]
fn free_text_breakdowns_are_capped_and_the_rest_summed() {
    use crm_core::limits::{MAX_BREAKDOWN, OTHER};
    let distinct = MAX_BREAKDOWN + 50;
    let tz = ReportTz::parse("UTC").expect("utc");
    let mut agg = Aggregate::new(GroupBy::Day, tz);
    let rows: Vec<ReportRow> = (0..distinct)
        .map(|i| ReportRow {
            occurred_at: Timestamp::from_millis(1_700_000_000_000 + i as i64).expect("time"),
            latest: None,
            // Earlier values are more frequent, so the kept ones are known.
            count: (distinct - i) as u64,
            user_id: "u1".to_owned(),
            department_id: Some("d1".to_owned()),
            operation: format!("crm.op{i:03}.run"),
            outcome: Outcome::Success,
            entity_type: Some(format!("type-{i:03}")),
            credits: Credits::from_units(10).expect("units"),
            location: Some(format!("city-{i:03}")),
            authentication_method: Some(format!("method-{i:03}")),
            ip_address: None,
        })
        .collect();
    agg.add_all(&rows).expect("added");
    let body = agg.finish().expect("finished");
    let total: u64 = rows.iter().map(|r| r.count).sum();
    let dropped: u64 = rows[MAX_BREAKDOWN..].iter().map(|r| r.count).sum();
    assert_eq!(body.total_activities, total);

    assert_eq!(body.operation_breakdown.len(), MAX_BREAKDOWN + 1);
    let other = body.operation_breakdown.last().expect("other");
    assert_eq!((other.operation.as_str(), other.count), (OTHER, dropped));
    assert_eq!(
        other.total_credits,
        Credits::from_units(10 * 50).expect("units")
    );
    assert_eq!(
        body.operation_breakdown
            .iter()
            .map(|s| s.count)
            .sum::<u64>(),
        total
    );

    assert_eq!(body.entity_breakdown.len(), MAX_BREAKDOWN + 1);
    assert!(
        body.entity_breakdown
            .iter()
            .any(|e| e.entity_type == OTHER && e.count == dropped)
    );
    assert!(
        body.entity_breakdown
            .iter()
            .any(|e| e.entity_type == "type-000")
    );
    assert!(
        !body
            .entity_breakdown
            .iter()
            .any(|e| e.entity_type == "type-149")
    );

    for map in [
        &body.compliance_summary.operations_by_location,
        &body.compliance_summary.authentication_methods,
    ] {
        assert_eq!(map.len(), MAX_BREAKDOWN + 1);
        assert_eq!(map.get(OTHER), Some(&dropped));
        assert_eq!(map.values().sum::<u64>(), total);
    }
}

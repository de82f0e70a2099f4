//! The wallet against a reference model (issue 27): random grants, spends,
//! adjustments, voids and clock steps give the same balance and remainders as a model
//! that counts individual credit units, each available while its grant is in effect,
//! not voided, not expired and not spent — no events, no running balance. The
//! wallet is also reloaded from its open grants at random, as a writer does between
//! transactions.

use crm_core::wallet::{Change, Grant, GrantStatus, Wallet};
use proptest::prelude::*;

#[derive(Debug, Clone)]
enum Op {
    Add {
        amount: i64,
        effective_in: i64,
        lasts: Option<i64>,
        priority: u8,
    },
    Spend(i64),
    Adjust(i64),
    Void(usize),
    Wait(i64),
    Reload,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => (1..20i64, -5..10i64, prop::option::of(1..15i64), 0..3u8).prop_map(
            |(amount, effective_in, lasts, priority)| Op::Add { amount, effective_in, lasts, priority }
        ),
        4 => (0..25i64).prop_map(Op::Spend),
        1 => (1..10i64).prop_map(Op::Adjust),
        1 => (0..12usize).prop_map(Op::Void),
        3 => (0..6i64).prop_map(Op::Wait),
        1 => Just(Op::Reload),
    ]
}

/// One unit of one grant.
#[derive(Debug, Clone)]
struct Unit {
    grant: usize,
    spent: bool,
}

#[derive(Debug, Clone)]
struct ModelGrant {
    id: String,
    effective_at: i64,
    expires_at: Option<i64>,
    priority: u8,
    created_at: i64,
    voided_at: Option<i64>,
}

#[derive(Default)]
struct Model {
    grants: Vec<ModelGrant>,
    units: Vec<Unit>,
}

impl Model {
    fn in_effect(&self, g: usize, t: i64) -> bool {
        let g = &self.grants[g];
        g.effective_at <= t
            && g.expires_at.is_none_or(|e| t < e)
            && g.voided_at.is_none_or(|v| t < v)
    }

    fn available(&self, t: i64) -> Vec<usize> {
        (0..self.units.len())
            .filter(|&u| !self.units[u].spent && self.in_effect(self.units[u].grant, t))
            .collect()
    }

    fn balance(&self, t: i64) -> i64 {
        self.available(t).len() as i64
    }

    /// Spends `n` units one at a time, each the first available in burn order.
    fn spend(&mut self, n: i64, t: i64) -> bool {
        if n > self.balance(t) {
            return false;
        }
        for _ in 0..n {
            let best = self
                .available(t)
                .into_iter()
                .min_by_key(|&u| {
                    let g = &self.grants[self.units[u].grant];
                    (
                        g.priority,
                        g.expires_at.unwrap_or(i64::MAX),
                        g.created_at,
                        g.id.clone(),
                    )
                })
                .expect("balance covers it");
            self.units[best].spent = true;
        }
        true
    }

    /// What is left of a grant now: its unspent units while it can still be spent.
    fn remaining(&self, g: usize, t: i64) -> i64 {
        let m = &self.grants[g];
        let closed = m.expires_at.is_some_and(|e| e <= t) || m.voided_at.is_some();
        if closed {
            return 0;
        }
        self.units
            .iter()
            .filter(|u| u.grant == g && !u.spent)
            .count() as i64
    }
}

fn check_changes(before: i64, changes: &[Change]) -> Result<i64, TestCaseError> {
    let mut balance = before;
    for c in changes {
        prop_assert_eq!(c.balance, balance + c.delta, "{:?}", c);
        prop_assert!(c.balance >= 0);
        balance = c.balance;
    }
    Ok(balance)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(400))]

    #[test]
    fn the_wallet_agrees_with_a_unit_by_unit_model(ops in prop::collection::vec(op(), 1..60)) {
        let mut wallet = Wallet::new(Vec::new()).expect("empty");
        let mut model = Model::default();
        let mut ids: Vec<String> = Vec::new();
        let mut now = 1_000i64;
        for op in ops {
            let before = wallet.balance();
            let ticked = wallet.tick(now).expect("tick");
            let mut balance = check_changes(before, &ticked)?;
            match op {
                Op::Add { amount, effective_in, lasts, priority } => {
                    let id = format!("g{:03}", ids.len());
                    let effective_at = now + effective_in;
                    let expires_at = lasts.map(|l| effective_at.max(now) + l);
                    let g = Grant::new(id.clone(), amount, effective_at, expires_at, priority, now)
                        .expect("valid grant");
                    let changes = wallet.add(g, now).expect("added");
                    balance = check_changes(balance, &changes)?;
                    model.grants.push(ModelGrant {
                        id: id.clone(), effective_at, expires_at, priority, created_at: now, voided_at: None,
                    });
                    let gi = model.grants.len() - 1;
                    model.units.extend((0..amount).map(|_| Unit { grant: gi, spent: false }));
                    ids.push(id);
                }
                Op::Spend(n) => {
                    let accepted = wallet.spend(n, now).is_ok();
                    prop_assert_eq!(accepted, model.spend(n, now), "spend {}", n);
                    if accepted { balance -= n; }
                }
                Op::Adjust(n) => {
                    match wallet.adjust(n, now) {
                        Ok(c) => {
                            prop_assert!(model.spend(n, now));
                            balance = check_changes(balance, &[c])?;
                        }
                        Err(_) => prop_assert!(!model.spend(n, now)),
                    }
                }
                Op::Void(i) => {
                    let Some(id) = ids.get(i) else { continue };
                    let open = wallet.grants().iter().any(|g| &g.id == id && g.status.is_open());
                    let voided = wallet.void(id, now);
                    prop_assert_eq!(voided.is_some(), open);
                    if let Some(c) = voided {
                        balance = check_changes(balance, &[c])?;
                        model.grants[i].voided_at = Some(now);
                    }
                }
                Op::Wait(dt) => now += dt,
                Op::Reload => {
                    // As a writer does: store what changed, then load the open grants.
                    prop_assert!(wallet.changed().all(|(was, now)| was != Some(now)));
                    wallet.stored_all();
                    prop_assert_eq!(wallet.changed().count(), 0);
                    let open: Vec<Grant> = wallet.grants().to_vec();
                    prop_assert!(open.iter().all(|g| g.status.is_open()));
                    wallet = Wallet::new(open).expect("reloads");
                }
            }
            prop_assert_eq!(wallet.balance(), balance);
            prop_assert!(balance >= 0);
            // Time applied, the wallet and the model agree on everything.
            let before = wallet.balance();
            let ticked = wallet.tick(now).expect("tick");
            check_changes(before, &ticked)?;
            prop_assert_eq!(wallet.balance(), model.balance(now), "balance at {}", now);
            for g in wallet.grants() {
                let i = ids.iter().position(|id| *id == g.id).expect("known grant");
                let expected = if g.status == GrantStatus::Pending {
                    g.amount
                } else {
                    model.remaining(i, now)
                };
                prop_assert_eq!(g.remaining, expected, "grant {:?}", g);
                prop_assert_eq!(g.status == GrantStatus::Active, g.remaining > 0 && model.in_effect(i, now), "{:?}", g);
            }
        }
    }
}

#[test]
fn grants_burn_by_priority_then_expiry_then_age() {
    let mut w = Wallet::new(Vec::new()).expect("empty");
    let add = |w: &mut Wallet, id: &str, amount, expires, priority, now| {
        let g = Grant::new(id.into(), amount, now, expires, priority, now).expect("valid");
        w.add(g, now).expect("added");
    };
    add(&mut w, "old-late", 10, Some(500), 50, 1);
    add(&mut w, "new-soon", 10, Some(100), 50, 2);
    add(&mut w, "never", 10, None, 50, 3);
    add(&mut w, "urgent", 10, None, 10, 4);
    let taken = w.spend(35, 5).expect("covered");
    assert_eq!(
        taken,
        vec![
            ("urgent".to_owned(), 10),
            ("new-soon".to_owned(), 10),
            ("old-late".to_owned(), 10),
            ("never".to_owned(), 5)
        ]
    );
    assert_eq!(w.balance(), 5);
}

#[test]
fn an_expiry_forfeits_at_its_own_instant_however_late_time_is_applied() {
    let mut w = Wallet::new(Vec::new()).expect("empty");
    let g = Grant::new("g".into(), 100, 10, Some(50), 50, 0).expect("valid");
    assert!(
        w.add(g, 0).expect("added").is_empty(),
        "pending: no change yet"
    );
    assert_eq!(w.balance(), 0);
    assert_eq!(w.due_at(), Some(10));
    let changes = w.tick(1_000_000).expect("ticks");
    assert_eq!(
        changes
            .iter()
            .map(|c| (c.at, c.delta, c.balance))
            .collect::<Vec<_>>(),
        vec![(10, 100, 100), (50, -100, 0)]
    );
    assert_eq!(w.due_at(), None);
}

#[test]
fn grants_that_cannot_be_are_refused() {
    assert!(Grant::new("g".into(), 0, 0, None, 50, 0).is_err());
    assert!(Grant::new("g".into(), 5, 10, Some(10), 50, 0).is_err());
    assert!(Grant::new("g".into(), 5, 0, Some(5), 50, 9).is_err());
    assert!(Grant::new("g".into(), 5, 0, None, 101, 0).is_err());
}

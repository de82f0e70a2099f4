//! The ledger's part of the audit (issue 26.6): the balance and the credit ledger are
//! not in the hash chain, so the audit recounts them against it. Entries must be
//! numbered without gaps, each balance must be the previous one plus the change and
//! never negative, the last must be the tenant's balance, and every usage entry must
//! charge exactly the credits of the chained records it names (`activities seq A..=B`)
//! while every chained record that cost credits lies in one — so a ledger, balance or
//! charge rewritten to agree with itself still disagrees with the chain.
//!
//! A merge of two ordered streams: records arrive in seq order from the chain walk,
//! entries in entry order (usage ranges ascend with them); the check asks for the next
//! chunk of entries whenever a record lies past the ranges it holds.

use std::collections::VecDeque;

use crate::dialect::Dialect;
use crate::error::StoreResult;
use crate::ledger::{self, LedgerEntry};
use crate::sql::{Row, Statement, seq};

/// Entries per read (the chain's chunk size: small enough for D1's answer limits).
pub const CHUNK: usize = 1_000;

/// What the bounds say about the ledger: how many entries it held and the balance, read
/// in the statement that read the chain's head (one snapshot).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct LedgerBounds {
    pub entries: u64,
    pub balance_units: i64,
}

/// Where the ledger disagrees: the entry, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LedgerBreak {
    pub entry: u64,
    pub reason: String,
}

/// A usage entry being compared with the records it names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Charge {
    entry: u64,
    first: u64,
    last: u64,
    units: i64,
    /// Credits of the records seen so far in `first..=last`.
    seen: i64,
}

/// Where a paused check stands (every chained record given so far matched): the last
/// entry consumed, the balance after it, the charge still open and the last seq
/// charged. Entries read ahead are read again on resuming.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LedgerState {
    entry: u64,
    balance: i64,
    charge: Option<Charge>,
    last_charged: u64,
}

#[derive(Debug)]
pub struct LedgerCheck {
    tenant_id: String,
    bounds: LedgerBounds,
    /// Records before this seq were removed by retention: charges reaching back there
    /// cannot be recounted.
    anchor_seq: u64,
    read_after: u64,
    buffer: VecDeque<LedgerEntry>,
    /// The last entry consumed and the balance after it.
    entry: u64,
    balance: i64,
    charge: Option<Charge>,
    /// The last seq a closed charge named: the next must start after it.
    last_charged: u64,
    /// Chained records (seq, credits) not yet matched with an entry.
    pending: VecDeque<(u64, i64)>,
    broken: Option<LedgerBreak>,
}

impl LedgerCheck {
    pub fn new(tenant_id: &str, bounds: LedgerBounds, anchor_seq: u64) -> LedgerCheck {
        LedgerCheck {
            tenant_id: tenant_id.to_owned(),
            bounds,
            anchor_seq,
            read_after: 0,
            buffer: VecDeque::new(),
            entry: 0,
            balance: 0,
            charge: None,
            last_charged: 0,
            pending: VecDeque::new(),
            broken: None,
        }
    }

    /// Continues a check paused at `state`, against the ledger's bounds now.
    pub fn resume(
        tenant_id: &str,
        bounds: LedgerBounds,
        anchor_seq: u64,
        state: LedgerState,
    ) -> LedgerCheck {
        let mut check = LedgerCheck::new(tenant_id, bounds, anchor_seq);
        check.read_after = state.entry;
        check.entry = state.entry;
        check.balance = state.balance;
        check.charge = state.charge;
        check.last_charged = state.last_charged;
        check
    }

    /// Where the check stands, if it can pause here (no record waits for an entry).
    pub fn pause(&self) -> Option<LedgerState> {
        self.pending.is_empty().then_some(LedgerState {
            entry: self.entry,
            balance: self.balance,
            charge: self.charge,
            last_charged: self.last_charged,
        })
    }

    pub fn broken(&self) -> Option<&LedgerBreak> {
        self.broken.as_ref()
    }

    /// Entries checked so far.
    pub fn checked(&self) -> u64 {
        self.entry
    }

    /// A chained record, in seq order.
    pub fn record(&mut self, seq: u64, credits_units: i64) {
        if self.broken.is_none() {
            self.pending.push_back((seq, credits_units));
            self.advance();
        }
    }

    /// The next chunk of entries to read: when a record waits for them, or — once the
    /// chain is walked (`chain_done`) — until every entry is consumed.
    pub fn next(&self, d: Dialect, chain_done: bool) -> Option<Statement> {
        let wanted = !self.pending.is_empty() || chain_done;
        (self.broken.is_none()
            && wanted
            && self.buffer.is_empty()
            && self.read_after < self.bounds.entries)
            .then(|| {
                d.stmt(
                    &format!(
                        "SELECT entry, at, {}, {}, kind, detail FROM credit_ledger
                         WHERE tenant_id = ?1 AND entry > ?2 AND entry <= ?3
                         ORDER BY entry LIMIT {CHUNK}",
                        d.money("delta_units"),
                        d.money("balance_units")
                    ),
                    vec![
                        self.tenant_id.as_str().into(),
                        seq(self.read_after),
                        seq(self.bounds.entries),
                    ],
                )
            })
    }

    /// The rows [`LedgerCheck::next`] asked for.
    pub fn feed(&mut self, rows: &[Row]) -> StoreResult<()> {
        for row in rows {
            let e = ledger::decode(row)?;
            self.read_after = e.entry;
            self.buffer.push_back(e);
        }
        if rows.is_empty() {
            // Fewer entries than the bounds counted: the next expected one is missing.
            self.read_after = self.bounds.entries;
        }
        self.advance();
        Ok(())
    }

    /// The chain is walked and every entry read: the last checks.
    pub fn finish(&mut self) {
        self.advance();
        if self.broken.is_some() {
            return;
        }
        if let Some(c) = self.charge.take() {
            self.close(c);
        }
        // Entries after the last record's charge (grants, expiries; a usage entry here
        // charges records that do not exist).
        while self.broken.is_none()
            && let Some(e) = self.buffer.pop_front()
        {
            self.consume(e);
            if let Some(c) = self.charge.take() {
                self.close(c);
            }
        }
        if self.broken.is_none() && self.entry < self.bounds.entries {
            self.fail(self.entry + 1, "the ledger entry is missing");
        } else if self.broken.is_none() && self.balance != self.bounds.balance_units {
            self.fail(
                self.entry,
                &format!(
                    "the tenant's balance ({}) is not the ledger's ({})",
                    self.bounds.balance_units, self.balance
                ),
            );
        }
    }

    fn fail(&mut self, entry: u64, reason: &str) {
        self.broken.get_or_insert(LedgerBreak {
            entry,
            reason: reason.to_owned(),
        });
        self.pending.clear();
    }

    /// Matches waiting records with charges, consuming entries as far as they go.
    fn advance(&mut self) {
        while self.broken.is_none() {
            let Some(&(seq, units)) = self.pending.front() else {
                return;
            };
            match self.charge {
                Some(ref mut c) if seq <= c.last => {
                    if seq >= c.first {
                        c.seen += units;
                    } else if units != 0 {
                        let entry = c.entry;
                        self.fail(
                            entry,
                            &format!("record {seq} cost credits no entry charged"),
                        );
                        return;
                    }
                    self.pending.pop_front();
                }
                _ => {
                    if let Some(c) = self.charge.take() {
                        self.close(c);
                        continue;
                    }
                    // No open charge: consume the next entry, or wait for one.
                    match self.buffer.pop_front() {
                        Some(e) => self.consume(e),
                        None if self.read_after < self.bounds.entries => return,
                        None => {
                            // No entry left: the record must have been free.
                            if units != 0 {
                                let entry = self.entry;
                                self.fail(
                                    entry,
                                    &format!("record {seq} cost credits no entry charged"),
                                );
                                return;
                            }
                            self.pending.pop_front();
                        }
                    }
                }
            }
        }
    }

    /// An entry in order: numbering and balance; a usage entry opens a charge.
    fn consume(&mut self, e: LedgerEntry) {
        if e.entry != self.entry + 1 {
            self.fail(self.entry + 1, "the ledger entry is missing");
            return;
        }
        let expected = self.balance.checked_add(e.delta.units());
        if expected != Some(e.balance.units()) || e.balance.units() < 0 {
            self.fail(
                e.entry,
                "the balance after the entry is not the one before it plus its change",
            );
            return;
        }
        self.entry = e.entry;
        self.balance = e.balance.units();
        if e.kind == ledger::KIND_USAGE {
            match ledger::usage_range(&e.detail) {
                Some((first, last)) if first <= last && e.delta.units() <= 0 => {
                    if first <= self.last_charged {
                        self.fail(e.entry, "the usage entry charges records charged before");
                        return;
                    }
                    self.charge = Some(Charge {
                        entry: e.entry,
                        first,
                        last,
                        units: -e.delta.units(),
                        seen: 0,
                    });
                }
                _ => self.fail(
                    e.entry,
                    "the usage entry does not name the records it charged",
                ),
            }
        } else if !ledger::KINDS.contains(&e.kind.as_str()) {
            self.fail(e.entry, &format!("unknown ledger entry kind `{}`", e.kind));
        }
    }

    /// A charge whose records are all seen: it must be their credits exactly, unless
    /// retention removed some of them.
    fn close(&mut self, c: Charge) {
        if c.first > self.anchor_seq && c.seen != c.units {
            self.fail(
                c.entry,
                &format!(
                    "the usage entry charges {} units; its records cost {}",
                    c.units, c.seen
                ),
            );
        }
        self.last_charged = c.last;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sql::Value;

    fn row(entry: u64, delta: i64, balance: i64, kind: &str, detail: &str) -> Row {
        Row(vec![
            Value::from(entry as i64),
            Value::from(1_700_000_000_000),
            Value::from(delta),
            Value::from(balance),
            Value::from(kind),
            Value::from(detail),
        ])
    }

    /// A ledger: an opening grant of 100, then usage of records 1..=3 (costs 5, 0, 7)
    /// and 4..=5 (costs 2, 1), a grant of 10 between them.
    fn ledger() -> Vec<Row> {
        vec![
            row(1, 100, 100, "grant", "opening balance"),
            row(2, -12, 88, "usage", &ledger::usage_detail(1, 3)),
            row(3, 10, 98, "grant", "top-up"),
            row(4, -3, 95, "usage", &ledger::usage_detail(4, 5)),
            row(5, 7, 102, "grant", "after the last charge"),
        ]
    }
    const COSTS: [i64; 6] = [5, 0, 7, 2, 1, 0];

    /// Runs the check the way the audit does: records one at a time, entries when
    /// asked (one entry per read, the smallest chunk).
    fn run(entries: Vec<Row>, balance: i64, costs: &[i64], anchor: u64) -> Option<LedgerBreak> {
        let bounds = LedgerBounds {
            entries: entries.len() as u64,
            balance_units: balance,
        };
        let mut check = LedgerCheck::new("t", bounds, anchor);
        let mut source = entries.into_iter();
        let mut drain = |check: &mut LedgerCheck, done: bool| {
            while check.next(Dialect::Sqlite, done).is_some() {
                let rows: Vec<Row> = source.next().into_iter().collect();
                check.feed(&rows).expect("decodes");
            }
        };
        for (i, &units) in costs.iter().enumerate() {
            let seq = anchor + 1 + i as u64;
            check.record(seq, units);
            drain(&mut check, false);
        }
        drain(&mut check, true);
        check.finish();
        check.broken().cloned()
    }

    #[test]
    fn a_ledger_that_agrees_with_the_chain_passes() {
        assert_eq!(run(ledger(), 102, &COSTS, 0), None);
    }

    #[test]
    fn a_usage_entry_for_records_that_do_not_exist_is_named() {
        let mut l = ledger();
        l.push(row(6, -1, 101, "usage", &ledger::usage_detail(7, 7)));
        let b = run(l, 101, &COSTS, 0).expect("broken");
        assert_eq!(b.entry, 6, "{b:?}");
    }

    #[test]
    fn a_balance_the_ledger_does_not_explain_is_named() {
        let b = run(ledger(), 1_102, &COSTS, 0).expect("broken");
        assert_eq!(b.entry, 5);
        assert!(b.reason.contains("balance"), "{b:?}");
    }

    #[test]
    fn a_changed_charge_is_named_even_when_the_balances_were_rewritten_to_match() {
        let mut l = ledger();
        l[1] = row(2, -2, 98, "usage", &ledger::usage_detail(1, 3));
        l[2] = row(3, 10, 108, "grant", "top-up");
        l[3] = row(4, -3, 105, "usage", &ledger::usage_detail(4, 5));
        l[4] = row(5, 7, 112, "grant", "after the last charge");
        let b = run(l, 112, &COSTS, 0).expect("broken");
        assert_eq!(b.entry, 2, "{b:?}");
        assert!(b.reason.contains("its records cost 12"), "{b:?}");
    }

    #[test]
    fn a_deleted_or_renumbered_entry_is_named() {
        let mut l = ledger();
        l.remove(2);
        assert_eq!(run(l, 102, &COSTS, 0).expect("broken").entry, 3);
        let mut l = ledger();
        l[3] = row(5, -3, 95, "usage", &ledger::usage_detail(4, 5));
        assert_eq!(run(l, 102, &COSTS, 0).expect("broken").entry, 4);
    }

    #[test]
    fn a_chained_charge_without_an_entry_is_named() {
        // The last usage entry removed and the balance set to match.
        let mut l = ledger();
        l.truncate(3);
        let b = run(l, 98, &COSTS, 0).expect("broken");
        assert!(b.reason.contains("record 4 cost credits"), "{b:?}");
    }

    #[test]
    fn a_balance_step_that_does_not_add_up_is_named() {
        let mut l = ledger();
        l[2] = row(3, 10, 198, "grant", "top-up");
        assert_eq!(run(l, 102, &COSTS, 0).expect("broken").entry, 3);
    }

    #[test]
    fn charges_reaching_before_the_retention_anchor_are_not_recounted() {
        // Records 1..=2 were removed: entry 2's charge cannot be recounted, entry 4's is.
        assert_eq!(run(ledger(), 102, &COSTS[2..], 2), None);
        let mut l = ledger();
        l[3] = row(4, -4, 94, "usage", &ledger::usage_detail(4, 5));
        l[4] = row(5, 7, 101, "grant", "after the last charge");
        assert_eq!(run(l, 101, &COSTS[2..], 2).expect("broken").entry, 4);
    }

    #[test]
    fn usage_details_read_back() {
        assert_eq!(
            ledger::usage_range(&ledger::usage_detail(7, 9)),
            Some((7, 9))
        );
        assert_eq!(ledger::usage_range("activities seq 7..9"), None);
        assert_eq!(ledger::usage_range("top-up"), None);
    }
}

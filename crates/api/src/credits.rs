//! `GET /v1/credits/prices/{operation}`: what the engine would charge for one
//! operation, and which price entry decides it; `GET /v1/credits/ledger`: every balance
//! change, newest first — answered alike by every runtime.

use std::collections::BTreeMap;

use crm_core::Credits;
use crm_core::pricing::PriceTable;
use crm_store::ledger::{LedgerEntry, LedgerQuery};
use serde::Serialize;

use crate::error::ApiError;

/// Entries per ledger page unless `limit` says otherwise, and at most.
const LEDGER_DEFAULT_LIMIT: usize = 100;
const LEDGER_MAX_LIMIT: usize = 1_000;

/// What `GET /v1/credits/ledger` asks for: a window (the whole ledger unless `since`,
/// `from` or `to` narrow it), a `kind`, a page (`limit`, `cursor`).
pub fn ledger_query(
    params: &BTreeMap<String, String>,
    now: crm_core::Timestamp,
) -> Result<LedgerQuery, ApiError> {
    let range = crate::listing::export_range(params, now)?;
    let kind = params
        .get("kind")
        .map(|k| {
            crm_store::ledger::KINDS
                .contains(&k.as_str())
                .then(|| k.clone())
                .ok_or_else(|| {
                    ApiError::invalid(format!(
                        "`kind` is one of {}",
                        crm_store::ledger::KINDS.join(", ")
                    ))
                })
        })
        .transpose()?;
    let before = params
        .get("cursor")
        .map(|c| {
            c.strip_prefix('l')
                .and_then(|n| n.parse::<u64>().ok())
                .ok_or_else(|| ApiError::invalid("`cursor` is not a ledger cursor"))
        })
        .transpose()?;
    let limit = crate::paging::limit(params, LEDGER_DEFAULT_LIMIT, LEDGER_MAX_LIMIT)?;
    Ok(LedgerQuery {
        from: range.from.millis(),
        to: range.to.millis(),
        kind,
        before,
        limit,
    })
}

/// A page of the ledger, newest first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct LedgerPage {
    pub entries: Vec<LedgerEntry>,
    /// Pass as `cursor` for the next (older) page; absent on the last.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
}

impl LedgerPage {
    /// From the rows [`crm_store::ledger::page`] read (one past the limit, if any).
    pub fn new(entries: Vec<LedgerEntry>, q: &LedgerQuery) -> LedgerPage {
        let (entries, next_cursor) =
            crate::paging::cut(entries, q.limit, |e| format!("l{}", e.entry));
        LedgerPage {
            entries,
            next_cursor,
        }
    }
}

/// The price of one operation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Price {
    pub operation: String,
    pub price: Credits,
    /// The price entry that matched (`crm.leads.*`), or `null` for the table's default.
    pub matched: Option<String>,
}

/// The price `table` sets for `operation` (a valid operation name, else 400).
pub fn price(table: &PriceTable, operation: &str) -> Result<Price, ApiError> {
    crm_core::names::validate_operation("operation", operation)?;
    let (price, matched) = table.priced(operation);
    Ok(Price {
        operation: operation.to_owned(),
        price,
        matched: matched.map(str::to_owned),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ledger_queries_are_checked_and_pages_say_where_the_next_starts() {
        let now = crm_core::Timestamp::from_millis(1_000_000).expect("now");
        let p = |pairs: &[(&str, &str)]| -> BTreeMap<String, String> {
            pairs
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect()
        };
        let q = ledger_query(
            &p(&[("kind", "usage"), ("cursor", "l9"), ("limit", "2")]),
            now,
        )
        .expect("valid");
        assert_eq!(
            (q.kind.as_deref(), q.before, q.limit),
            (Some("usage"), Some(9), 2)
        );
        for bad in [
            ("kind", "refund"),
            ("cursor", "9"),
            ("cursor", "lx"),
            ("limit", "0"),
        ] {
            assert!(ledger_query(&p(&[bad]), now).is_err(), "{bad:?}");
        }
        let entry = |n: u64| LedgerEntry {
            entry: n,
            at: now,
            delta: Credits::ZERO,
            balance: Credits::ZERO,
            kind: "usage".to_owned(),
            detail: String::new(),
        };
        let page = LedgerPage::new(vec![entry(8), entry(7), entry(6)], &q);
        assert_eq!(page.entries.len(), 2);
        assert_eq!(page.next_cursor.as_deref(), Some("l7"));
        assert_eq!(LedgerPage::new(vec![entry(8)], &q).next_cursor, None);
    }

    #[test]
    fn the_exact_entry_beats_the_longest_wildcard_which_beats_the_default() {
        let table: PriceTable = serde_json::from_value(serde_json::json!({
            "default": "0.5",
            "prices": { "crm.leads.*": "1", "crm.leads.create": "3.5", "*": "0.25" }
        }))
        .expect("a table");
        let p = |op| price(&table, op).expect("priced");
        assert_eq!(
            p("crm.leads.create").matched.as_deref(),
            Some("crm.leads.create")
        );
        assert_eq!(
            p("crm.leads.create").price,
            Credits::parse("3.5").expect("3.5")
        );
        assert_eq!(
            p("crm.leads.archive").matched.as_deref(),
            Some("crm.leads.*")
        );
        assert_eq!(p("crm.deals.close").matched.as_deref(), Some("*"));
        let bare: PriceTable =
            serde_json::from_value(serde_json::json!({ "default": "0.5" })).expect("a table");
        assert_eq!(
            price(&bare, "crm.deals.close").expect("priced").matched,
            None
        );
        assert_eq!(
            price(&table, "Not An Operation").map_err(|e| e.status()),
            Err(400)
        );
    }
}

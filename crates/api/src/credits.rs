//! `GET /v1/credits/prices/{operation}`: what the engine would charge for one
//! operation, and which price entry decides it — answered alike by every runtime.

use crm_core::Credits;
use crm_core::pricing::PriceTable;
use serde::Serialize;

use crate::error::ApiError;

/// The price of one operation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
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

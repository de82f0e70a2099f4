//! Per-tenant price table: operation (or wildcard pattern) → credit cost, with a default.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::credits::Credits;
use crate::error::{CoreError, CoreResult};
use crate::limits::MAX_PRICES;
use crate::names::{PatternKind, parse_pattern};

/// Price table as clients send and read it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PriceTable {
    /// Cost of an operation not listed.
    #[serde(default)]
    pub default: Credits,
    /// `crm.leads.create` → `"3.5"`; `crm.leads.*` → `"1"`. The longest matching
    /// pattern wins, so specific prices beat wildcards.
    #[serde(default)]
    pub prices: BTreeMap<String, Credits>,
}

impl PriceTable {
    pub fn validate(&self) -> CoreResult<()> {
        if self.prices.len() > MAX_PRICES {
            return Err(CoreError::too_large(
                "prices",
                format!("at most {MAX_PRICES} prices per tenant"),
            ));
        }
        if self.default.is_negative() {
            return Err(CoreError::invalid("default", "a price cannot be negative"));
        }
        for (name, cost) in &self.prices {
            let field = format!("prices.{name}");
            let pattern = parse_pattern(&field, name)?;
            if pattern.deny {
                return Err(CoreError::invalid(field, "a price key cannot be a deny"));
            }
            if cost.is_negative() {
                return Err(CoreError::invalid(field, "a price cannot be negative"));
            }
        }
        Ok(())
    }

    /// Cost of `operation`: exact entry, else the longest matching wildcard, else default.
    /// Assumes `validate` passed.
    pub fn cost(&self, operation: &str) -> Credits {
        self.priced(operation).0
    }

    /// Cost of `operation` and the price entry that set it (`None`: the default).
    pub fn priced(&self, operation: &str) -> (Credits, Option<&str>) {
        if let Some((name, exact)) = self.prices.get_key_value(operation) {
            return (*exact, Some(name.as_str()));
        }
        let mut best: Option<(usize, Credits, &str)> = None;
        for (name, cost) in &self.prices {
            let Ok(pattern) = parse_pattern("prices", name) else {
                continue;
            };
            let specificity = match pattern.kind {
                PatternKind::All => 0,
                PatternKind::Prefix(p) => p.len() + 1,
                PatternKind::Exact(_) => continue,
            };
            if pattern.kind.matches(operation) && best.is_none_or(|(s, _, _)| specificity > s) {
                best = Some((specificity, *cost, name.as_str()));
            }
        }
        best.map_or((self.default, None), |(_, cost, name)| (cost, Some(name)))
    }
}

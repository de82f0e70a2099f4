//! Exact credit amounts. One credit is 10 000 units; amounts are integers, never floats
//! (defect 16 summed `0.1 + 0.2` as floats). Text form is a decimal string with
//! exactly four decimals, e.g. `"3.5000"`.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::error::{CoreError, CoreResult, ErrorCode};
use crate::limits::MAX_CREDITS_UNITS;
use crate::time::clip;

/// Units per whole credit: four decimal places, as the original sketch's `DECIMAL(10,4)`.
pub const UNITS_PER_CREDIT: i64 = 10_000;
const DECIMALS: usize = 4;

/// An exact credit amount in 1/10 000 credit units. Never negative when it is a price
/// or a balance; `i64` so that ledger deltas can be negative.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Credits(i64);

impl Credits {
    pub const ZERO: Credits = Credits(0);

    pub fn from_units(units: i64) -> CoreResult<Credits> {
        if units.unsigned_abs() > MAX_CREDITS_UNITS as u64 {
            return Err(CoreError::new(
                ErrorCode::Overflow,
                "credit amount is out of range",
            ));
        }
        Ok(Credits(units))
    }

    pub fn units(self) -> i64 {
        self.0
    }

    pub fn is_negative(self) -> bool {
        self.0 < 0
    }

    /// Parses `"3.5"`, `"-2"`, `"0.0001"`. More than four decimals, exponents, blanks
    /// and signs in odd places are errors, never silently rounded.
    pub fn parse(text: &str) -> CoreResult<Credits> {
        let bad = || {
            CoreError::invalid(
                "credits",
                format!(
                    "`{}` is not a credit amount (a decimal with at most 4 decimals)",
                    clip(text)
                ),
            )
        };
        let (negative, body) = match text.strip_prefix('-') {
            Some(rest) => (true, rest),
            None => (false, text),
        };
        let (whole, frac) = match body.split_once('.') {
            Some((w, f)) => (w, f),
            None => (body, ""),
        };
        let digits_ok = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
        if whole.is_empty()
            || !digits_ok(whole)
            || !digits_ok(frac)
            || frac.len() > DECIMALS
            || (body.contains('.') && frac.is_empty())
        {
            return Err(bad());
        }
        let overflow = || CoreError::new(ErrorCode::Overflow, "credit amount is out of range");
        // Leading zeros are harmless but 19+ digits cannot fit; reject before parsing.
        let whole_trimmed = whole.trim_start_matches('0');
        if whole_trimmed.len() > 15 {
            return Err(overflow());
        }
        let whole_units: i64 = if whole_trimmed.is_empty() {
            0
        } else {
            whole_trimmed.parse::<i64>().map_err(|_| bad())?
        };
        let mut frac_units: i64 = 0;
        for (i, b) in frac.bytes().enumerate() {
            frac_units += i64::from(b - b'0') * 10_i64.pow((DECIMALS - 1 - i) as u32);
        }
        let units = whole_units
            .checked_mul(UNITS_PER_CREDIT)
            .and_then(|u| u.checked_add(frac_units))
            .ok_or_else(overflow)?;
        Credits::from_units(if negative { -units } else { units })
    }

    pub fn checked_add(self, other: Credits) -> CoreResult<Credits> {
        self.0
            .checked_add(other.0)
            .ok_or_else(|| CoreError::new(ErrorCode::Overflow, "credit sum is out of range"))
            .and_then(Credits::from_units)
    }

    pub fn checked_mul(self, factor: i64) -> CoreResult<Credits> {
        self.0
            .checked_mul(factor)
            .ok_or_else(|| CoreError::new(ErrorCode::Overflow, "credit product is out of range"))
            .and_then(Credits::from_units)
    }

    /// Debits `cost` from a balance. A balance never goes negative: the debit fails with
    /// `insufficient_credits` and the balance is unchanged.
    pub fn debit(self, cost: Credits) -> CoreResult<Credits> {
        if cost.is_negative() {
            return Err(CoreError::invalid("credits", "a cost cannot be negative"));
        }
        if cost > self {
            return Err(CoreError::new(
                ErrorCode::InsufficientCredits,
                format!("balance {self} cannot cover cost {cost}"),
            ));
        }
        Ok(Credits(self.0 - cost.0))
    }

    /// Adds a non-negative grant to a balance.
    pub fn credit(self, grant: Credits) -> CoreResult<Credits> {
        if grant.is_negative() {
            return Err(CoreError::invalid("amount", "a grant cannot be negative"));
        }
        self.checked_add(grant)
    }
}

impl fmt::Display for Credits {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let sign = if self.0 < 0 { "-" } else { "" };
        let abs = self.0.unsigned_abs();
        let per = UNITS_PER_CREDIT as u64;
        write!(f, "{sign}{}.{:04}", abs / per, abs % per)
    }
}

impl Serialize for Credits {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// Answers always carry the exact decimal text; requests may also send a JSON number
/// (see the `Deserialize` impl).
impl schemars::JsonSchema for Credits {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Credits".into()
    }

    fn json_schema(generator: &mut schemars::SchemaGenerator) -> schemars::Schema {
        if generator.contract().is_serialize() {
            schemars::json_schema!({ "type": "string", "pattern": "^-?[0-9]+\\.[0-9]{4}$", "description": "Exact credits, 4 decimals." })
        } else {
            schemars::json_schema!({ "type": ["string", "number"], "description": "Credits: a decimal string (exact, up to 4 decimals) or a JSON number." })
        }
    }
}

/// Accepts a decimal string (preferred, exact) or a JSON number. A JSON number is
/// converted through its shortest round-trip decimal form, which is exactly the text
/// the client wrote for any amount with at most 15 significant digits, so `0.1` is
/// 1000 units and never 999.
impl<'de> Deserialize<'de> for Credits {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Int(i64),
            Float(f64),
            Text(String),
        }
        let parsed = match Raw::deserialize(d)? {
            Raw::Int(i) => i
                .checked_mul(UNITS_PER_CREDIT)
                .ok_or_else(|| CoreError::new(ErrorCode::Overflow, "credit amount is out of range"))
                .and_then(Credits::from_units),
            Raw::Float(x) if x.is_finite() => Credits::parse(&format!("{x}")),
            Raw::Float(_) => Err(CoreError::invalid(
                "credits",
                "credit amount must be finite",
            )),
            Raw::Text(t) => Credits::parse(&t),
        };
        parsed.map_err(serde::de::Error::custom)
    }
}

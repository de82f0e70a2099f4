//! Instants are UTC milliseconds since the Unix epoch. Text form is RFC 3339 with
//! millisecond precision and a `Z` suffix, so lexical order equals time order.

use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::error::{CoreError, CoreResult};

/// A UTC instant in milliseconds since the Unix epoch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Timestamp(pub i64);

/// Earliest instant accepted anywhere (year 1970); the log has no earlier events.
pub const MIN_TIMESTAMP_MS: i64 = 0;
/// Latest instant accepted anywhere (year 9999) so formatting always yields 4-digit years.
pub const MAX_TIMESTAMP_MS: i64 = 253_402_300_799_999;

impl Timestamp {
    pub fn from_millis(ms: i64) -> CoreResult<Self> {
        if !(MIN_TIMESTAMP_MS..=MAX_TIMESTAMP_MS).contains(&ms) {
            return Err(CoreError::invalid(
                "timestamp",
                "timestamp must be between 1970 and 9999",
            ));
        }
        Ok(Timestamp(ms))
    }

    pub fn millis(self) -> i64 {
        self.0
    }

    /// Parses any RFC 3339 timestamp (any offset) and converts it to UTC.
    pub fn parse(text: &str) -> CoreResult<Self> {
        let parsed = DateTime::parse_from_rfc3339(text.trim()).map_err(|_| {
            CoreError::invalid(
                "timestamp",
                format!("`{}` is not an RFC 3339 timestamp", clip(text)),
            )
        })?;
        Self::from_millis(parsed.timestamp_millis())
    }

    pub fn to_datetime(self) -> DateTime<Utc> {
        DateTime::from_timestamp_millis(self.0).expect("constructor keeps the value in range")
    }

    /// `2024-01-01T10:30:00.000Z`
    pub fn to_rfc3339(self) -> String {
        self.to_datetime()
            .to_rfc3339_opts(SecondsFormat::Millis, true)
    }
}

/// Shortens user input echoed in error messages.
pub fn clip(text: &str) -> String {
    const MAX_ECHO: usize = 40;
    if text.chars().count() <= MAX_ECHO {
        text.to_owned()
    } else {
        let head: String = text.chars().take(MAX_ECHO).collect();
        format!("{head}…")
    }
}

impl schemars::JsonSchema for Timestamp {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Timestamp".into()
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({ "type": "string", "format": "date-time", "description": "RFC 3339, UTC in answers." })
    }
}

impl Serialize for Timestamp {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_rfc3339())
    }
}

impl<'de> Deserialize<'de> for Timestamp {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        Timestamp::parse(&text).map_err(serde::de::Error::custom)
    }
}

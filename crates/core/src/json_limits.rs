//! Limits checked while reading JSON, before any tree is built: nesting depth, the
//! number of values, and the length of each string. A hostile body (an 8-million
//! element array in `metadata`) is refused after reading it once, without allocating
//! anything proportional to it.

use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};

use crate::error::{CoreError, CoreResult};

/// What one request body may contain.
#[derive(Debug, Clone, Copy)]
pub struct JsonLimits {
    /// Deepest nesting of arrays and objects.
    pub max_depth: usize,
    /// Values of any kind, in total.
    pub max_values: usize,
    /// Bytes of the longest string (key or value).
    pub max_string: usize,
}

impl JsonLimits {
    /// A request body: a batch of 1,000 activities with full metadata fits well inside.
    pub const REQUEST: JsonLimits = JsonLimits {
        max_depth: 32,
        max_values: 400_000,
        max_string: 64 * 1024,
    };
}

struct Walk<'a> {
    limits: JsonLimits,
    depth: usize,
    values: &'a mut usize,
}

impl Walk<'_> {
    fn count<E: de::Error>(&mut self) -> Result<(), E> {
        *self.values += 1;
        if *self.values > self.limits.max_values {
            return Err(E::custom(format!(
                "more than {} JSON values",
                self.limits.max_values
            )));
        }
        Ok(())
    }

    fn string<E: de::Error>(&mut self, len: usize) -> Result<(), E> {
        self.count()?;
        if len > self.limits.max_string {
            return Err(E::custom(format!(
                "a string longer than {} bytes",
                self.limits.max_string
            )));
        }
        Ok(())
    }

    fn deeper<E: de::Error>(&mut self) -> Result<Walk<'_>, E> {
        self.count()?;
        if self.depth + 1 > self.limits.max_depth {
            return Err(E::custom(format!(
                "nested deeper than {} levels",
                self.limits.max_depth
            )));
        }
        Ok(Walk {
            limits: self.limits,
            depth: self.depth + 1,
            values: self.values,
        })
    }
}

impl<'de> DeserializeSeed<'de> for Walk<'_> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Walk<'_> {
    type Value = ();

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("JSON")
    }

    fn visit_bool<E: de::Error>(mut self, _: bool) -> Result<(), E> {
        self.count()
    }

    fn visit_i64<E: de::Error>(mut self, _: i64) -> Result<(), E> {
        self.count()
    }

    fn visit_u64<E: de::Error>(mut self, _: u64) -> Result<(), E> {
        self.count()
    }

    fn visit_f64<E: de::Error>(mut self, _: f64) -> Result<(), E> {
        self.count()
    }

    fn visit_str<E: de::Error>(mut self, v: &str) -> Result<(), E> {
        self.string(v.len())
    }

    fn visit_unit<E: de::Error>(mut self) -> Result<(), E> {
        self.count()
    }

    fn visit_seq<A: SeqAccess<'de>>(mut self, mut seq: A) -> Result<(), A::Error> {
        let inner = self.deeper()?;
        while seq
            .next_element_seed(Walk {
                limits: inner.limits,
                depth: inner.depth,
                values: &mut *inner.values,
            })?
            .is_some()
        {}
        Ok(())
    }

    fn visit_map<A: MapAccess<'de>>(mut self, mut map: A) -> Result<(), A::Error> {
        let mut inner = self.deeper()?;
        while let Some(key) = map.next_key::<KeyLen>()? {
            inner.string(key.0)?;
            map.next_value_seed(Walk {
                limits: inner.limits,
                depth: inner.depth,
                values: &mut *inner.values,
            })?;
        }
        Ok(())
    }
}

/// A key's length, read without keeping the key.
struct KeyLen(usize);

impl<'de> de::Deserialize<'de> for KeyLen {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<KeyLen, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = KeyLen;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a key")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<KeyLen, E> {
                Ok(KeyLen(v.len()))
            }
        }
        d.deserialize_str(V)
    }
}

/// Checks `bytes` (one JSON document) against `limits` without building it.
pub fn check(bytes: &[u8], limits: JsonLimits) -> CoreResult<()> {
    let mut values = 0;
    // serde_json's own recursion limit (128) is above any depth limit used here.
    let mut d = serde_json::Deserializer::from_slice(bytes);
    let walk = Walk {
        limits,
        depth: 0,
        values: &mut values,
    };
    walk.deserialize(&mut d)
        .and_then(|()| d.end())
        .map_err(|e| {
            let text = e.to_string();
            if text.contains("more than")
                || text.contains("longer than")
                || text.contains("deeper than")
            {
                CoreError::too_large("body", format!("the request body has {text}"))
            } else {
                CoreError::from_json(&e)
            }
        })?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ErrorCode;

    const SMALL: JsonLimits = JsonLimits {
        max_depth: 3,
        max_values: 10,
        max_string: 5,
    };

    #[test]
    fn within_limits_passes() {
        check(br#"{"a": [1, 2, {"b": "xy"}]}"#, SMALL).expect("fits");
    }

    #[test]
    fn too_many_values_too_deep_or_too_long_is_413_style() {
        for body in [
            &br#"[1,2,3,4,5,6,7,8,9,10,11]"#[..],
            br#"[[[[1]]]]"#,
            br#"{"a": "abcdef"}"#,
            br#"{"abcdef": 1}"#,
        ] {
            let e = check(body, SMALL).expect_err("over a limit");
            assert_eq!(
                e.code,
                ErrorCode::TooLarge,
                "{}",
                String::from_utf8_lossy(body)
            );
        }
    }

    #[test]
    fn malformed_json_is_invalid_input() {
        assert_eq!(
            check(b"{\"a\": ", SMALL).expect_err("bad").code,
            ErrorCode::InvalidInput
        );
        assert_eq!(
            check(b"{} {}", SMALL).expect_err("trailing").code,
            ErrorCode::InvalidInput
        );
    }
}

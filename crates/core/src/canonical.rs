//! Canonical JSON written straight from a `Serialize` value: what
//! `chain::canonical_json(&serde_json::to_value(x))` writes, without building the
//! `Value` tree first. Sealing hashes every activity's canonical form in the writer's
//! serial path, and the tree (a map and a string per field, then freed) was a third
//! of that hash's time.
//!
//! Scalars and strings are written by serde_json's compact serializer (what `Value`'s
//! `Display` runs); objects are collected field by field and written sorted by key,
//! the last of equal keys winning, as `Value`'s map keeps them.

use std::borrow::Cow;
use std::ops::Range;

use serde::ser::{self, Serialize};
use serde_json::Error;

/// Writes `value` canonically into `out`, leaving out the key `skip` of the outermost
/// object. Fails where `serde_json::to_value` would: a map key that is not a string.
pub fn write<T: Serialize + ?Sized>(
    value: &T,
    skip: Option<&'static str>,
    out: &mut Vec<u8>,
) -> Result<(), Error> {
    value.serialize(Canonical { out, skip })
}

struct Canonical<'a> {
    out: &'a mut Vec<u8>,
    /// A key the next object leaves out (only ever the outermost one's).
    skip: Option<&'static str>,
}

impl Canonical<'_> {
    fn scalar<T: Serialize + ?Sized>(self, v: &T) -> Result<(), Error> {
        serde_json::to_writer(&mut *self.out, v)
    }

    /// `{"variant":` … `}` around an enum variant's content.
    fn open_variant(&mut self, variant: &'static str) -> Result<(), Error> {
        self.out.push(b'{');
        serde_json::to_writer(&mut *self.out, variant)?;
        self.out.push(b':');
        Ok(())
    }
}

/// An array being written.
struct Seq<'a> {
    out: &'a mut Vec<u8>,
    first: bool,
    /// Closes an enum variant's object after the array.
    variant: bool,
}

impl Seq<'_> {
    fn element<T: Serialize + ?Sized>(&mut self, v: &T) -> Result<(), Error> {
        if !self.first {
            self.out.push(b',');
        }
        self.first = false;
        v.serialize(Canonical {
            out: self.out,
            skip: None,
        })
    }

    fn close(self) -> Result<(), Error> {
        self.out.push(b']');
        if self.variant {
            self.out.push(b'}');
        }
        Ok(())
    }
}

/// An object being collected: each value written canonically into one scratch buffer
/// (one allocation per object, not per field), then written out sorted by key.
struct Object<'a> {
    out: &'a mut Vec<u8>,
    scratch: Vec<u8>,
    fields: Vec<(Cow<'static, str>, Range<usize>)>,
    pending_key: Option<String>,
    skip: Option<&'static str>,
    variant: bool,
}

impl<'a> Object<'a> {
    fn new(out: &'a mut Vec<u8>, skip: Option<&'static str>, variant: bool) -> Object<'a> {
        Object {
            out,
            scratch: Vec::new(),
            fields: Vec::new(),
            pending_key: None,
            skip,
            variant,
        }
    }

    fn field<T: Serialize + ?Sized>(&mut self, key: Cow<'static, str>, v: &T) -> Result<(), Error> {
        if self.skip == Some(key.as_ref()) {
            return Ok(());
        }
        let start = self.scratch.len();
        v.serialize(Canonical {
            out: &mut self.scratch,
            skip: None,
        })?;
        self.fields.push((key, start..self.scratch.len()));
        Ok(())
    }

    fn close(mut self) -> Result<(), Error> {
        // Stable: of equal keys the last written comes last, and is the one kept.
        self.fields.sort_by(|a, b| a.0.cmp(&b.0));
        self.out.push(b'{');
        let mut first = true;
        for (i, (k, range)) in self.fields.iter().enumerate() {
            if self.fields.get(i + 1).is_some_and(|next| next.0 == *k) {
                continue;
            }
            if !first {
                self.out.push(b',');
            }
            first = false;
            serde_json::to_writer(&mut *self.out, k.as_ref())?;
            self.out.push(b':');
            self.out.extend_from_slice(&self.scratch[range.clone()]);
        }
        self.out.push(b'}');
        if self.variant {
            self.out.push(b'}');
        }
        Ok(())
    }
}

/// A map key as `serde_json::to_value` takes it: a string, or a string-like scalar.
fn key_text<T: Serialize + ?Sized>(key: &T) -> Result<String, Error> {
    match serde_json::to_value(key)? {
        serde_json::Value::String(s) => Ok(s),
        serde_json::Value::Number(n) => Ok(n.to_string()),
        serde_json::Value::Bool(b) => Ok(b.to_string()),
        _ => Err(ser::Error::custom("key must be a string")),
    }
}

impl<'a> ser::Serializer for Canonical<'a> {
    type Ok = ();
    type Error = Error;
    type SerializeSeq = Seq<'a>;
    type SerializeTuple = Seq<'a>;
    type SerializeTupleStruct = Seq<'a>;
    type SerializeTupleVariant = Seq<'a>;
    type SerializeMap = Object<'a>;
    type SerializeStruct = Object<'a>;
    type SerializeStructVariant = Object<'a>;

    fn serialize_bool(self, v: bool) -> Result<(), Error> {
        self.scalar(&v)
    }
    fn serialize_i8(self, v: i8) -> Result<(), Error> {
        self.scalar(&v)
    }
    fn serialize_i16(self, v: i16) -> Result<(), Error> {
        self.scalar(&v)
    }
    fn serialize_i32(self, v: i32) -> Result<(), Error> {
        self.scalar(&v)
    }
    fn serialize_i64(self, v: i64) -> Result<(), Error> {
        self.scalar(&v)
    }
    fn serialize_i128(self, v: i128) -> Result<(), Error> {
        // Through the value, which keeps what fits and refuses what does not.
        self.scalar(&serde_json::to_value(v)?)
    }
    fn serialize_u8(self, v: u8) -> Result<(), Error> {
        self.scalar(&v)
    }
    fn serialize_u16(self, v: u16) -> Result<(), Error> {
        self.scalar(&v)
    }
    fn serialize_u32(self, v: u32) -> Result<(), Error> {
        self.scalar(&v)
    }
    fn serialize_u64(self, v: u64) -> Result<(), Error> {
        self.scalar(&v)
    }
    fn serialize_u128(self, v: u128) -> Result<(), Error> {
        self.scalar(&serde_json::to_value(v)?)
    }
    fn serialize_f32(self, v: f32) -> Result<(), Error> {
        self.scalar(&serde_json::to_value(v)?)
    }
    fn serialize_f64(self, v: f64) -> Result<(), Error> {
        self.scalar(&serde_json::to_value(v)?)
    }
    fn serialize_char(self, v: char) -> Result<(), Error> {
        self.scalar(&v)
    }
    fn serialize_str(self, v: &str) -> Result<(), Error> {
        self.scalar(v)
    }
    fn serialize_bytes(self, v: &[u8]) -> Result<(), Error> {
        self.scalar(v)
    }
    fn serialize_none(self) -> Result<(), Error> {
        self.scalar(&())
    }
    fn serialize_some<T: Serialize + ?Sized>(self, v: &T) -> Result<(), Error> {
        v.serialize(self)
    }
    fn serialize_unit(self) -> Result<(), Error> {
        self.scalar(&())
    }
    fn serialize_unit_struct(self, _: &'static str) -> Result<(), Error> {
        self.scalar(&())
    }
    fn serialize_unit_variant(self, _: &'static str, _: u32, v: &'static str) -> Result<(), Error> {
        self.scalar(v)
    }
    fn serialize_newtype_struct<T: Serialize + ?Sized>(
        self,
        _: &'static str,
        v: &T,
    ) -> Result<(), Error> {
        v.serialize(self)
    }
    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        mut self,
        _: &'static str,
        _: u32,
        variant: &'static str,
        v: &T,
    ) -> Result<(), Error> {
        self.open_variant(variant)?;
        v.serialize(Canonical {
            out: &mut *self.out,
            skip: None,
        })?;
        self.out.push(b'}');
        Ok(())
    }
    fn serialize_seq(self, _: Option<usize>) -> Result<Seq<'a>, Error> {
        self.out.push(b'[');
        Ok(Seq {
            out: self.out,
            first: true,
            variant: false,
        })
    }
    fn serialize_tuple(self, len: usize) -> Result<Seq<'a>, Error> {
        self.serialize_seq(Some(len))
    }
    fn serialize_tuple_struct(self, _: &'static str, len: usize) -> Result<Seq<'a>, Error> {
        self.serialize_seq(Some(len))
    }
    fn serialize_tuple_variant(
        mut self,
        _: &'static str,
        _: u32,
        variant: &'static str,
        _: usize,
    ) -> Result<Seq<'a>, Error> {
        self.open_variant(variant)?;
        self.out.push(b'[');
        Ok(Seq {
            out: self.out,
            first: true,
            variant: true,
        })
    }
    fn serialize_map(self, _: Option<usize>) -> Result<Object<'a>, Error> {
        Ok(Object::new(self.out, self.skip, false))
    }
    fn serialize_struct(self, _: &'static str, len: usize) -> Result<Object<'a>, Error> {
        self.serialize_map(Some(len))
    }
    fn serialize_struct_variant(
        mut self,
        _: &'static str,
        _: u32,
        variant: &'static str,
        _: usize,
    ) -> Result<Object<'a>, Error> {
        self.open_variant(variant)?;
        Ok(Object::new(self.out, None, true))
    }
}

/// serde's four array-like traits, each an element of a [`Seq`].
macro_rules! seq_traits {
    ($($name:ident :: $method:ident),*) => {$(
        impl ser::$name for Seq<'_> {
            type Ok = ();
            type Error = Error;
            fn $method<T: Serialize + ?Sized>(&mut self, v: &T) -> Result<(), Error> {
                self.element(v)
            }
            fn end(self) -> Result<(), Error> {
                self.close()
            }
        }
    )*};
}

seq_traits!(
    SerializeSeq::serialize_element,
    SerializeTuple::serialize_element,
    SerializeTupleStruct::serialize_field,
    SerializeTupleVariant::serialize_field
);

impl ser::SerializeMap for Object<'_> {
    type Ok = ();
    type Error = Error;
    fn serialize_key<T: Serialize + ?Sized>(&mut self, key: &T) -> Result<(), Error> {
        self.pending_key = Some(key_text(key)?);
        Ok(())
    }
    fn serialize_value<T: Serialize + ?Sized>(&mut self, v: &T) -> Result<(), Error> {
        let key = self
            .pending_key
            .take()
            .ok_or_else(|| <Error as ser::Error>::custom("a map value without its key"))?;
        self.field(Cow::Owned(key), v)
    }
    fn end(self) -> Result<(), Error> {
        self.close()
    }
}

/// serde's two struct-like traits, each a field of an [`Object`].
macro_rules! struct_traits {
    ($($name:ident),*) => {$(
        impl ser::$name for Object<'_> {
            type Ok = ();
            type Error = Error;
            fn serialize_field<T: Serialize + ?Sized>(
                &mut self,
                key: &'static str,
                v: &T,
            ) -> Result<(), Error> {
                self.field(Cow::Borrowed(key), v)
            }
            fn end(self) -> Result<(), Error> {
                self.close()
            }
        }
    )*};
}

struct_traits!(SerializeStruct, SerializeStructVariant);

#[cfg(test)]
mod tests {
    use super::write;
    use crate::chain::canonical_json;
    use serde::Serialize;
    use serde_json::json;

    fn text<T: Serialize>(v: &T, skip: Option<&'static str>) -> String {
        let mut out = Vec::new();
        write(v, skip, &mut out).expect("serializes");
        String::from_utf8(out).expect("UTF-8")
    }

    #[derive(Serialize)]
    #[serde(rename_all = "camelCase")]
    enum Shape {
        Unit,
        Newtype(u8),
        Tuple(u8, &'static str),
        Struct { z: bool, a: Option<u8> },
    }

    #[derive(Serialize)]
    struct Record {
        zeta: Vec<Shape>,
        hash: &'static str,
        alpha: f64,
        nested: Inner,
        #[serde(skip_serializing_if = "Option::is_none")]
        absent: Option<u8>,
    }

    #[derive(Serialize)]
    struct Inner {
        hash: char,
        bytes: &'static [u8],
        nan: f64,
    }

    #[test]
    fn a_struct_writes_what_its_value_writes_less_the_outer_skipped_key() {
        let r = Record {
            zeta: vec![
                Shape::Unit,
                Shape::Newtype(7),
                Shape::Tuple(1, "é\n"),
                Shape::Struct { z: true, a: None },
            ],
            hash: "gone",
            alpha: 0.1,
            nested: Inner {
                hash: 'k',
                bytes: &[1, 2],
                nan: f64::NAN,
            },
            absent: None,
        };
        let mut value = serde_json::to_value(&r).expect("a value");
        let all = canonical_json(&value);
        assert_eq!(text(&r, None), all);
        value.as_object_mut().expect("an object").remove("hash");
        assert_eq!(text(&r, Some("hash")), canonical_json(&value));
        assert!(text(&r, Some("hash")).contains(r#""hash":"k""#));
    }

    #[test]
    fn equal_keys_keep_the_last_and_non_string_keys_are_refused_like_to_value() {
        let pairs = vec![("b", 1), ("a", 2), ("b", 3)];
        struct Pairs(Vec<(&'static str, i32)>);
        impl Serialize for Pairs {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.collect_map(self.0.iter().copied())
            }
        }
        assert_eq!(text(&Pairs(pairs), None), r#"{"a":2,"b":3}"#);
        let unit_key: std::collections::BTreeMap<(), u8> = [((), 1)].into();
        assert!(write(&unit_key, None, &mut Vec::new()).is_err());
        assert!(serde_json::to_value(&unit_key).is_err());
        assert_eq!(
            text(&json!({ "x": [1, { "b": 2, "a": null }] }), None),
            r#"{"x":[1,{"a":null,"b":2}]}"#
        );
    }
}

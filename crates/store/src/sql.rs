//! Driver-neutral statements, parameters and rows. Nulls are typed (`Int(None)`,
//! `Text(None)`) because PostgreSQL needs to know the type of every parameter.

/// A parameter or a column value. Every column of the schema is an integer or text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value {
    Int(Option<i64>),
    Text(Option<String>),
}

impl From<i64> for Value {
    fn from(v: i64) -> Self {
        Value::Int(Some(v))
    }
}

impl From<&str> for Value {
    fn from(v: &str) -> Self {
        Value::Text(Some(v.to_owned()))
    }
}

impl From<String> for Value {
    fn from(v: String) -> Self {
        Value::Text(Some(v))
    }
}

impl From<&String> for Value {
    fn from(v: &String) -> Self {
        Value::Text(Some(v.clone()))
    }
}

impl From<Option<&str>> for Value {
    fn from(v: Option<&str>) -> Self {
        Value::Text(v.map(str::to_owned))
    }
}

impl From<Option<i64>> for Value {
    fn from(v: Option<i64>) -> Self {
        Value::Int(v)
    }
}

/// Sequence numbers are `u64` in the core and `BIGINT` in storage; they never come near
/// `i64::MAX` (2^63 activities), so saturating is unreachable rather than lossy.
pub fn seq(v: u64) -> Value {
    Value::Int(Some(i64::try_from(v).unwrap_or(i64::MAX)))
}

/// One SQL statement with its parameters, already rendered for a dialect.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Statement {
    pub sql: String,
    pub params: Vec<Value>,
}

/// Rows of values as PostgreSQL's `unnest(...)` over one array per column, and its
/// parameters: each column bound as one array literal (cast from text, so the driver
/// binds a string). A batch of any size is one statement whose text depends only on
/// the column types, so it stays prepared, and the server parses a few literals
/// instead of binding thousands of parameters. `None` for no rows. Every row has the
/// columns of the first, with the same types (nulls are typed).
pub fn unnest(rows: &[Vec<Value>]) -> Option<(String, Vec<Value>)> {
    let first = rows.first()?;
    let mut calls = Vec::with_capacity(first.len());
    let mut params = Vec::with_capacity(first.len());
    for (c, kind) in first.iter().enumerate() {
        let sql_type = match kind {
            Value::Int(_) => "bigint",
            Value::Text(_) => "text",
        };
        calls.push(format!("CAST(?{} AS TEXT)::{sql_type}[]", c + 1));
        params.push(Value::Text(Some(array_literal(
            rows.iter().map(|r| r.get(c).unwrap_or(&Value::Text(None))),
        ))));
    }
    Some((format!("unnest({})", calls.join(", ")), params))
}

/// A PostgreSQL array literal: text quoted (so commas, braces, spaces and the word
/// NULL stay text) with quotes and backslashes escaped, numbers as they are, nulls as
/// `NULL`.
fn array_literal<'a>(values: impl Iterator<Item = &'a Value>) -> String {
    use std::fmt::Write;
    let mut out = String::from("{");
    for (i, v) in values.enumerate() {
        if i > 0 {
            out.push(',');
        }
        match v {
            Value::Int(Some(n)) => {
                let _ = write!(out, "{n}");
            }
            Value::Int(None) | Value::Text(None) => out.push_str("NULL"),
            Value::Text(Some(t)) => {
                out.push('"');
                for c in t.chars() {
                    if c == '"' || c == '\\' {
                        out.push('\\');
                    }
                    out.push(c);
                }
                out.push('"');
            }
        }
    }
    out.push('}');
    out
}

/// One result row, columns in `SELECT` order.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Row(pub Vec<Value>);

use crate::error::{StoreError, StoreResult};

impl Row {
    fn at(&self, i: usize) -> StoreResult<&Value> {
        self.0
            .get(i)
            .ok_or_else(|| StoreError::decode(format!("column {i} missing")))
    }

    /// An integer column. Text holding an integer is accepted: D1 hands money back as
    /// text so that JavaScript numbers cannot round it.
    pub fn opt_int(&self, i: usize) -> StoreResult<Option<i64>> {
        match self.at(i)? {
            Value::Int(v) => Ok(*v),
            Value::Text(None) => Ok(None),
            Value::Text(Some(t)) => t
                .parse()
                .map(Some)
                .map_err(|_| StoreError::decode(format!("column {i}: `{t}` is not an integer"))),
        }
    }

    pub fn int(&self, i: usize) -> StoreResult<i64> {
        self.opt_int(i)?
            .ok_or_else(|| StoreError::decode(format!("column {i} is null")))
    }

    pub fn uint(&self, i: usize) -> StoreResult<u64> {
        let v = self.int(i)?;
        u64::try_from(v).map_err(|_| StoreError::decode(format!("column {i}: {v} is negative")))
    }

    pub fn opt_text(&self, i: usize) -> StoreResult<Option<&str>> {
        match self.at(i)? {
            Value::Text(v) => Ok(v.as_deref()),
            Value::Int(None) => Ok(None),
            Value::Int(Some(_)) => Err(StoreError::decode(format!("column {i} is not text"))),
        }
    }

    pub fn text(&self, i: usize) -> StoreResult<&str> {
        self.opt_text(i)?
            .ok_or_else(|| StoreError::decode(format!("column {i} is null")))
    }

    pub fn string(&self, i: usize) -> StoreResult<String> {
        self.text(i).map(str::to_owned)
    }

    pub fn opt_string(&self, i: usize) -> StoreResult<Option<String>> {
        Ok(self.opt_text(i)?.map(str::to_owned))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unnest_binds_one_literal_per_column_quoting_text_and_spelling_nulls() {
        let rows = vec![
            vec![Value::from("a"), Value::from(1), Value::Text(None)],
            vec![
                Value::from("say \"hi\", {x} NULL"),
                Value::Int(None),
                Value::from("C:\\t"),
            ],
        ];
        let (sql, params) = unnest(&rows).expect("rows");
        assert_eq!(
            sql,
            "unnest(CAST(?1 AS TEXT)::text[], CAST(?2 AS TEXT)::bigint[], CAST(?3 AS TEXT)::text[])"
        );
        assert_eq!(
            params,
            vec![
                Value::from(r#"{"a","say \"hi\", {x} NULL"}"#),
                Value::from("{1,NULL}"),
                Value::from(r#"{NULL,"C:\\t"}"#),
            ]
        );
        assert_eq!(unnest(&[]), None);
    }

    #[test]
    fn integers_decode_from_numbers_and_from_d1_text() {
        let row = Row(vec![
            Value::from(7),
            Value::from("9007199254740993"),
            Value::Int(None),
        ]);
        assert_eq!(row.int(0).expect("int"), 7);
        assert_eq!(row.int(1).expect("text int"), 9_007_199_254_740_993);
        assert_eq!(row.opt_int(2).expect("null"), None);
        assert!(row.int(2).is_err());
        assert!(row.int(5).is_err());
        assert!(row.text(0).is_err());
    }
}

//! The three SQL dialects the schema runs on. Statements are written once, in the
//! common subset, with SQLite's numbered placeholders (`?1`); a dialect renders the few
//! spellings that differ.

use crate::sql::{Statement, Value};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Dialect {
    /// Embedded SQLite through rusqlite (the host's default).
    Sqlite,
    /// Cloudflare D1: SQLite, reached through JavaScript, whose numbers are doubles.
    D1,
    /// PostgreSQL (the host's scale-out backend).
    Postgres,
}

impl Dialect {
    /// The SQL text for this dialect: PostgreSQL spells `?N` as `$N`. Quoted literals
    /// are left alone.
    pub fn render(self, sql: &str) -> String {
        if self != Dialect::Postgres {
            return sql.to_owned();
        }
        let mut out = String::with_capacity(sql.len());
        let mut quoted = false;
        let mut chars = sql.chars().peekable();
        while let Some(c) = chars.next() {
            match c {
                '\'' => {
                    quoted = !quoted;
                    out.push(c);
                }
                '?' if !quoted && chars.peek().is_some_and(char::is_ascii_digit) => out.push('$'),
                _ => out.push(c),
            }
        }
        out
    }

    /// A statement for this dialect.
    pub fn stmt(self, sql: &str, params: Vec<Value>) -> Statement {
        Statement {
            sql: self.render(sql),
            params,
        }
    }

    /// The larger of two values: SQLite's two-argument `MAX`, PostgreSQL's `GREATEST`.
    pub fn greatest(self) -> &'static str {
        match self {
            Dialect::Postgres => "GREATEST",
            Dialect::Sqlite | Dialect::D1 => "MAX",
        }
    }

    /// A money column (credit units) as selected: D1 returns it as text, because a
    /// JavaScript number is exact only up to 2^53 units.
    pub fn money(self, column: &str) -> String {
        match self {
            Dialect::D1 => format!("CAST({column} AS TEXT)"),
            Dialect::Sqlite | Dialect::Postgres => column.to_owned(),
        }
    }

    /// A sum of a money column; D1 returns it as text (see [`Dialect::money`]).
    pub fn money_sum(self, column: &str) -> String {
        match self {
            Dialect::D1 => format!("CAST(COALESCE(SUM({column}), 0) AS TEXT)"),
            Dialect::Sqlite | Dialect::Postgres => format!("COALESCE(SUM({column}), 0)"),
        }
    }

    /// The text of one top-level `metadata` value of the stored record, the key bound
    /// as parameter `?{key}` (a JSON path on SQLite and D1, a key on PostgreSQL).
    pub fn metadata_text(self, key: usize) -> String {
        match self {
            Dialect::Sqlite | Dialect::D1 => format!("json_extract(body, ?{key})"),
            Dialect::Postgres => format!("(body::jsonb -> 'metadata' ->> ?{key})"),
        }
    }

    /// The bound value that names metadata key `key` for [`Dialect::metadata_text`].
    pub fn metadata_key(self, key: &str) -> String {
        match self {
            Dialect::Sqlite | Dialect::D1 => format!("$.metadata.\"{key}\""),
            Dialect::Postgres => key.to_owned(),
        }
    }

    /// Row lock for a read that precedes a write in the same transaction. SQLite and D1
    /// serialise writers already (one writer; a D1 batch is one transaction);
    /// PostgreSQL has concurrent writers from several hosts and needs the lock.
    pub fn for_update(self) -> &'static str {
        match self {
            Dialect::Postgres => " FOR UPDATE",
            Dialect::Sqlite | Dialect::D1 => "",
        }
    }

    /// Bound parameters one statement may carry. D1 allows 100.
    pub fn max_params(self) -> usize {
        match self {
            Dialect::D1 => 100,
            Dialect::Sqlite => 32_766,
            Dialect::Postgres => 65_535,
        }
    }

    /// `items` cut into the row groups of multi-row statements of at most `per` rows.
    /// SQLite and PostgreSQL keep a prepared statement per SQL text, so a remainder is
    /// cut into power-of-two groups whose texts recur from batch to batch: preparing a
    /// new text of hundreds of rows cost more than running it. D1 takes one group per
    /// `per` rows and the remainder whole, since every statement counts against an
    /// invocation's query allowance.
    pub fn row_chunks<T>(self, items: &[T], per: usize) -> Vec<&[T]> {
        let per = per.max(1);
        let whole = items.len() / per * per;
        let mut out: Vec<&[T]> = items[..whole].chunks(per).collect();
        let mut rest = &items[whole..];
        while !rest.is_empty() {
            let take = match self {
                Dialect::D1 => rest.len(),
                Dialect::Sqlite | Dialect::Postgres => 1 << rest.len().ilog2(),
            };
            let (head, tail) = rest.split_at(take);
            out.push(head);
            rest = tail;
        }
        out
    }

    /// The longest SQL text one statement may have: D1 refuses past 100 KB; SQLite's
    /// and PostgreSQL's limits are far beyond anything rendered here.
    pub fn max_sql_bytes(self) -> usize {
        match self {
            Dialect::D1 => 100_000,
            Dialect::Sqlite | Dialect::Postgres => 1_000_000_000,
        }
    }

    /// Why the database would refuse `st` for its size, if it would. The edge's driver
    /// checks every statement, because `wrangler dev`'s SQLite enforces neither limit
    /// and a statement past them would first fail in production.
    pub fn refuses(self, st: &crate::sql::Statement) -> Option<String> {
        if st.params.len() > self.max_params() {
            return Some(format!(
                "{} bound parameters (at most {})",
                st.params.len(),
                self.max_params()
            ));
        }
        if st.sql.len() > self.max_sql_bytes() {
            return Some(format!(
                "{} bytes of SQL (at most {})",
                st.sql.len(),
                self.max_sql_bytes()
            ));
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_remainder_is_cut_into_recurring_sizes_except_on_d1() {
        let items: Vec<u32> = (0..1_213).collect();
        let sizes = |d: Dialect| -> Vec<usize> {
            let chunks = d.row_chunks(&items, 500);
            assert_eq!(chunks.concat(), items, "every row once, in order");
            chunks.iter().map(|c| c.len()).collect()
        };
        assert_eq!(sizes(Dialect::Sqlite), [500, 500, 128, 64, 16, 4, 1]);
        assert_eq!(sizes(Dialect::Postgres), [500, 500, 128, 64, 16, 4, 1]);
        assert_eq!(sizes(Dialect::D1), [500, 500, 213]);
        assert!(Dialect::Sqlite.row_chunks(&items[..0], 500).is_empty());
    }

    #[test]
    fn postgres_numbers_placeholders_with_dollars_outside_literals() {
        let sql = "SELECT '?1', a FROM t WHERE b = ?1 AND c = ?12 AND d = '?' AND e IS NOT NULL";
        assert_eq!(
            Dialect::Postgres.render(sql),
            "SELECT '?1', a FROM t WHERE b = $1 AND c = $12 AND d = '?' AND e IS NOT NULL"
        );
        assert_eq!(Dialect::Sqlite.render(sql), sql);
        assert_eq!(Dialect::D1.render(sql), sql);
    }
}

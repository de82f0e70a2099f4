//! Activity rows: the insert, the lookup of stored ids for idempotency, the filter
//! shared by listings and raw report rows, and the row → `ReportRow` mapping.

use crm_core::personal::Searchable;
use crm_core::report::ReportRow;
use crm_core::{Activity, Credits, Outcome, Timestamp};

use crate::dialect::Dialect;
use crate::error::{StoreError, StoreResult};
use crate::sql::{Row, Statement, Value, seq};

/// Columns of an activity row, in insert order.
const COLUMNS: &str = "tenant_id, id, seq, occurred_at, received_at, user_id, department_id,
     department_path, operation, outcome, entity_type, entity_id, credits_units, session_id,
     ip_address, location, auth_method, input_hash, prev_hash, hash, body, key_id";
const COLUMN_COUNT: usize = 22;

/// Rows per multi-row insert at most: one round trip for a typical batch, statement
/// text of a few tens of KB.
const MAX_ROWS_PER_INSERT: usize = 500;

/// What a record keeps searchable: a sealed record's from its sealing, an unsealed
/// one's from its own fields.
pub fn searchable_of(a: &Activity) -> Searchable {
    Searchable {
        ip_address: a.compliance.ip_address.clone(),
        location: a.compliance.location.clone(),
    }
}

/// The values of one activity row, in [`COLUMNS`] order: the body in its stored form
/// (personal fields sealed); IP address and location in the clear in their own
/// columns (`searchable`), the search index an erasure scrubs.
fn row_values(
    a: &Activity,
    input_hash: &str,
    received_at: i64,
    searchable: &Searchable,
) -> StoreResult<Vec<Value>> {
    let body = serde_json::to_string(&*crm_core::personal::stored_form(a))
        .map_err(|e| StoreError::decode(e.to_string()))?;
    let h = &a.user_context.hierarchy;
    Ok(vec![
        a.tenant_id.as_str().into(),
        a.id.as_str().into(),
        seq(a.seq),
        a.occurred_at.millis().into(),
        received_at.into(),
        a.user_id.as_str().into(),
        h.department_id.as_str().into(),
        h.department_path.as_str().into(),
        a.operation.as_str().into(),
        a.outcome.as_str().into(),
        a.entity_type.as_deref().into(),
        a.entity_id.as_deref().into(),
        a.credits.units().into(),
        a.session_id.as_deref().into(),
        searchable.ip_address.as_deref().into(),
        searchable.location.as_deref().into(),
        a.compliance.authentication_method.as_deref().into(),
        input_hash.into(),
        a.prev_hash.as_str().into(),
        a.hash.as_str().into(),
        body.into(),
        a.personal.as_ref().map(|p| p.key_id.as_str()).into(),
    ])
}

/// `(?1, …, ?w), (?w+1, …)`: `rows` tuples of `width` numbered placeholders.
pub(crate) fn tuples(rows: usize, width: usize) -> String {
    use std::fmt::Write;
    // Written into one string: a batch of 500 activities has 11,000 placeholders.
    let mut out = String::with_capacity(rows * width * 7);
    for r in 0..rows {
        out.push_str(if r == 0 { "(" } else { ", (" });
        for c in 1..=width {
            if c > 1 {
                out.push_str(", ");
            }
            let _ = write!(out, "?{}", r * width + c);
        }
        out.push(')');
    }
    out
}

/// The insert of one sealed activity. A second row with the same id or seq is refused
/// by the keys (never replaced, never skipped: either would break the chain).
pub fn insert(
    d: Dialect,
    a: &Activity,
    input_hash: &str,
    received_at: i64,
) -> StoreResult<Statement> {
    Ok(d.stmt(
        &format!(
            "INSERT INTO activities ({COLUMNS}) VALUES {}",
            tuples(1, COLUMN_COUNT)
        ),
        row_values(a, input_hash, received_at, &searchable_of(a))?,
    ))
}

/// How one activity of a write arrived: its input's hash (replays compare it) and when
/// the request that carried it was received. Activities of one write may come from
/// several requests (the edge's consumer writes a tenant's packets together).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Arrival<'a> {
    pub input_hash: &'a str,
    pub received_at: i64,
}

/// The inserts of sealed activities (`arrivals[i]` and `searchable[i]` belong to
/// `sealed[i]`), as few
/// multi-row statements as the dialect's parameter limit allows — one round trip per
/// statement matters on PostgreSQL and D1. Same refusals as [`insert`].
pub fn insert_many(
    d: Dialect,
    sealed: &[Activity],
    arrivals: &[Arrival<'_>],
    searchable: &[Searchable],
) -> StoreResult<Vec<Statement>> {
    let per = (d.max_params() / COLUMN_COUNT).clamp(1, MAX_ROWS_PER_INSERT);
    let rows: Vec<(&Activity, (&Arrival<'_>, &Searchable))> =
        sealed.iter().zip(arrivals.iter().zip(searchable)).collect();
    d.row_chunks(&rows, per)
        .into_iter()
        .map(|chunk| {
            let mut params = Vec::with_capacity(chunk.len() * COLUMN_COUNT);
            for (a, (arrival, clear)) in chunk {
                params.extend(row_values(
                    a,
                    arrival.input_hash,
                    arrival.received_at,
                    clear,
                )?);
            }
            Ok(d.stmt(
                &format!(
                    "INSERT INTO activities ({COLUMNS}) VALUES {}",
                    tuples(chunk.len(), COLUMN_COUNT)
                ),
                params,
            ))
        })
        .collect()
}

/// What a stored activity answers to a replay of its id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Existing {
    pub id: String,
    pub input_hash: String,
    pub seq: u64,
    pub outcome: Outcome,
    pub credits: Credits,
    pub hash: String,
    pub occurred_at: Timestamp,
}

/// Stored activities among `ids`, in as many statements as the dialect's parameter
/// limit needs.
pub fn lookup(d: Dialect, tenant_id: &str, ids: &[&str]) -> Vec<Statement> {
    let per = d.max_params().saturating_sub(1).clamp(1, 500);
    ids.chunks(per)
        .map(|chunk| {
            let marks: Vec<String> = (0..chunk.len()).map(|i| format!("?{}", i + 2)).collect();
            let columns = format!(
                "id, input_hash, seq, outcome, {}, hash, occurred_at",
                d.money("credits_units")
            );
            let sql = match d {
                Dialect::Sqlite | Dialect::D1 => format!(
                    "SELECT {columns} FROM activities WHERE tenant_id = ?1 AND id IN ({})",
                    marks.join(", ")
                ),
                // One primary-key probe per id, whatever the statistics say: before
                // `activities` is first analysed, PostgreSQL rates `id IN (500 ids)`
                // (or a join on them) as matching every row and reads the tenant's
                // rows to filter or hash them. `LIMIT 1` keeps the lateral subquery
                // from being flattened into such a join; an id is unique per tenant.
                Dialect::Postgres => format!(
                    "SELECT found.* FROM unnest(ARRAY[{}]::text[]) AS wanted(id)
                     CROSS JOIN LATERAL (SELECT {columns} FROM activities
                       WHERE tenant_id = ?1 AND activities.id = wanted.id LIMIT 1) AS found",
                    marks.join(", ")
                ),
            };
            let mut params = vec![Value::from(tenant_id)];
            params.extend(chunk.iter().map(|id| Value::from(*id)));
            d.stmt(&sql, params)
        })
        .collect()
}

pub fn decode_existing(row: &Row) -> StoreResult<Existing> {
    Ok(Existing {
        id: row.string(0)?,
        input_hash: row.string(1)?,
        seq: row.uint(2)?,
        outcome: outcome(row.text(3)?)?,
        credits: Credits::from_units(row.int(4)?)?,
        hash: row.string(5)?,
        occurred_at: Timestamp::from_millis(row.int(6)?)?,
    })
}

pub(crate) fn outcome(text: &str) -> StoreResult<Outcome> {
    Outcome::parse(text).ok_or_else(|| StoreError::decode(format!("stored outcome `{text}`")))
}

/// Which activities a listing, export or raw report part reads. `department_path`
/// selects the whole subtree (an index range, never a substring match). The fields
/// after `outcome` narrow listings and exports only: reports never set them (rollups
/// have no such key).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Filter {
    pub user_id: Option<String>,
    pub department_path: Option<String>,
    pub operation: Option<String>,
    pub outcome: Option<Outcome>,
    pub from: i64,
    pub to: i64,
    /// (entity type, entity id): an entity's history.
    pub entity: Option<(String, String)>,
    pub session_id: Option<String>,
    pub ip: Option<IpMatch>,
    pub location: Option<String>,
    /// One top-level metadata key and its string value.
    pub metadata: Option<(String, String)>,
}

/// An IP address filter: one address, or an IPv4 network on an octet boundary, held
/// as the text prefix its addresses share (`10.1.` for `10.1.0.0/16`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IpMatch {
    Exact(String),
    Prefix(String),
}

impl IpMatch {
    fn matches(&self, ip: &str) -> bool {
        match self {
            IpMatch::Exact(a) => a == ip,
            IpMatch::Prefix(p) => ip.starts_with(p.as_str()),
        }
    }
}

impl Filter {
    /// Whether a record passes the filter: the SQL of [`clause`] (on `occurred_at`),
    /// for records read from an archive rather than the database.
    pub fn matches(&self, a: &Activity) -> bool {
        let at = a.occurred_at.millis();
        let path = a.user_context.hierarchy.department_path.as_str();
        at >= self.from
            && at < self.to
            && self.user_id.as_ref().is_none_or(|u| *u == a.user_id)
            && self
                .department_path
                .as_ref()
                .is_none_or(|p| path >= p.as_str() && path < path_range_end(p).as_str())
            && self.operation.as_ref().is_none_or(|o| *o == a.operation)
            && self.outcome.is_none_or(|o| o == a.outcome)
            && self.entity.as_ref().is_none_or(|(t, id)| {
                a.entity_type.as_deref() == Some(t.as_str())
                    && a.entity_id.as_deref() == Some(id.as_str())
            })
            && self
                .session_id
                .as_ref()
                .is_none_or(|s| a.session_id.as_deref() == Some(s.as_str()))
            && self.ip.as_ref().is_none_or(|m| {
                a.compliance
                    .ip_address
                    .as_deref()
                    .is_some_and(|ip| m.matches(ip))
            })
            && self
                .location
                .as_ref()
                .is_none_or(|l| a.compliance.location.as_deref() == Some(l.as_str()))
            && self
                .metadata
                .as_ref()
                .is_none_or(|(k, v)| a.metadata.get(k).and_then(|x| x.as_str()) == Some(v.as_str()))
    }
}

/// Upper bound (exclusive) of a path prefix range: `/a/b/` → `/a/b0` (`0` follows `/`).
pub fn path_range_end(prefix: &str) -> String {
    let mut end = prefix.trim_end_matches('/').to_owned();
    end.push('0');
    end
}

/// A WHERE clause with its parameters, numbered from `?1` (always the tenant).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Clause {
    pub sql: String,
    pub params: Vec<Value>,
}

impl Clause {
    pub fn push(&mut self, condition: &str, value: Value) {
        self.params.push(value);
        self.sql
            .push_str(&format!(" AND {condition} ?{}", self.params.len()));
    }

    /// Only rows in the department subtree at `path` (an index range on
    /// `department_path`).
    pub fn subtree(&mut self, path: &str) {
        self.push("department_path >=", path.into());
        self.push("department_path <", path_range_end(path).into());
    }
}

/// The filter as a WHERE clause over activity rows.
pub fn clause(tenant_id: &str, f: &Filter) -> Clause {
    let mut c = Clause {
        sql: "tenant_id = ?1 AND occurred_at >= ?2 AND occurred_at < ?3".to_owned(),
        params: vec![tenant_id.into(), f.from.into(), f.to.into()],
    };
    if let Some(u) = &f.user_id {
        c.push("user_id =", u.into());
    }
    if let Some(p) = &f.department_path {
        c.subtree(p);
    }
    if let Some(op) = &f.operation {
        c.push("operation =", op.into());
    }
    if let Some(o) = f.outcome {
        c.push("outcome =", o.as_str().into());
    }
    c
}

/// [`clause`] with the narrowing only listings and exports use (entity, session, IP,
/// location, one metadata value); `d` renders the metadata lookup.
pub fn listing_clause(d: Dialect, tenant_id: &str, f: &Filter) -> Clause {
    let mut c = clause(tenant_id, f);
    if let Some((t, id)) = &f.entity {
        c.push("entity_type =", t.into());
        c.push("entity_id =", id.into());
    }
    if let Some(s) = &f.session_id {
        c.push("session_id =", s.into());
    }
    match &f.ip {
        Some(IpMatch::Exact(a)) => c.push("ip_address =", a.into()),
        // The prefix holds digits and dots only: no LIKE wildcard can hide in it.
        Some(IpMatch::Prefix(p)) => c.push("ip_address LIKE", format!("{p}%").into()),
        None => {}
    }
    if let Some(l) = &f.location {
        c.push("location =", l.into());
    }
    if let Some((k, v)) = &f.metadata {
        c.params.push(d.metadata_key(k).into());
        let at = c.params.len();
        c.push(&format!("{} =", d.metadata_text(at)), v.into());
    }
    c
}

/// One activity record by id, with what decides who may see it (its user and the
/// department path it was recorded under) and its key material ([`decode_by_id`]).
pub fn by_id(d: Dialect, tenant_id: &str, id: &str) -> Statement {
    d.stmt(
        &format!(
            "SELECT body, user_id, department_path, {} FROM activities
             WHERE tenant_id = ?1 AND id = ?2",
            crate::subject_keys::KEY_MATERIAL
        ),
        vec![tenant_id.into(), id.into()],
    )
}

/// A [`by_id`] row: the record as a reader sees it (opened or erased), its user and
/// department path.
pub fn decode_by_id(row: &Row) -> StoreResult<(String, String, String)> {
    Ok((
        crate::subject_keys::open_body(row.string(0)?, row.opt_text(3)?)?,
        row.string(1)?,
        row.string(2)?,
    ))
}

/// Windows up to this long read a department subtree's raw rows through the time
/// index: a report's raw edges are under two hours, and SQLite (without statistics)
/// otherwise picks the department index, whose path range leaves the time unseekable —
/// at 10 M activities a subtree report then scanned ~3 M index entries for two hours.
const SUBTREE_BY_TIME_MAX_MS: i64 = 24 * 60 * 60 * 1000;

/// Raw rows of a report part `[f.from, f.to)`.
pub fn report_rows(d: Dialect, tenant_id: &str, f: &Filter) -> Statement {
    let c = clause(tenant_id, f);
    let sql = format!(
        "SELECT {} FROM {} WHERE {}",
        report_columns(d),
        report_source(d, f),
        c.sql
    );
    d.stmt(&sql, c.params)
}

/// The columns [`decode_report_row`] reads, in its order.
pub fn report_columns(d: Dialect) -> String {
    format!(
        "occurred_at, user_id, department_id, operation, outcome, entity_type, {},
         location, auth_method, ip_address",
        d.money("credits_units")
    )
}

/// The typed nulls standing for [`report_columns`] in a union with other rows.
pub fn report_nulls(d: Dialect) -> String {
    let (int, text) = ("CAST(NULL AS BIGINT)", "CAST(NULL AS TEXT)");
    [
        int,
        text,
        text,
        text,
        text,
        text,
        &d.money(int),
        text,
        text,
        text,
    ]
    .join(", ")
}

/// The table a report's raw rows of `f` are read from, with the index SQLite and D1
/// must use for a subtree's short window (see [`SUBTREE_BY_TIME_MAX_MS`]).
pub fn report_source(d: Dialect, f: &Filter) -> &'static str {
    let by_time = d != Dialect::Postgres
        && f.department_path.is_some()
        && f.user_id.is_none()
        && f.operation.is_none()
        && f.to.saturating_sub(f.from) <= SUBTREE_BY_TIME_MAX_MS;
    if by_time {
        "activities INDEXED BY activities_by_time"
    } else {
        "activities"
    }
}

pub fn decode_report_row(row: &Row) -> StoreResult<ReportRow> {
    Ok(ReportRow {
        occurred_at: Timestamp::from_millis(row.int(0)?)?,
        latest: None,
        count: 1,
        user_id: row.string(1)?,
        department_id: Some(row.string(2)?),
        operation: row.string(3)?,
        outcome: outcome(row.text(4)?)?,
        entity_type: row.opt_string(5)?,
        credits: Credits::from_units(row.int(6)?)?,
        location: row.opt_string(7)?,
        authentication_method: row.opt_string(8)?,
        ip_address: row.opt_string(9)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tuples_number_their_placeholders_row_by_row() {
        assert_eq!(tuples(1, 1), "(?1)");
        assert_eq!(tuples(2, 3), "(?1, ?2, ?3), (?4, ?5, ?6)");
    }

    #[test]
    fn a_short_subtree_window_reads_through_the_time_index_on_sqlite() {
        const HOUR: i64 = 60 * 60 * 1000;
        let window = |hours: i64| Filter {
            department_path: Some("/dept-0/".to_owned()),
            from: 0,
            to: hours * HOUR,
            ..Filter::default()
        };
        let hinted = |d: Dialect, f: &Filter| {
            report_rows(d, "t", f)
                .sql
                .contains("INDEXED BY activities_by_time")
        };
        assert!(hinted(Dialect::Sqlite, &window(2)));
        assert!(hinted(Dialect::D1, &window(24)));
        assert!(
            !hinted(Dialect::Sqlite, &window(25)),
            "long windows: the planner's choice"
        );
        assert!(
            !hinted(Dialect::Postgres, &window(2)),
            "PostgreSQL plans with statistics"
        );
        let whole_tenant = Filter {
            department_path: None,
            ..window(2)
        };
        assert!(!hinted(Dialect::Sqlite, &whole_tenant));
    }

    #[test]
    fn subtree_ranges_end_just_past_the_prefix() {
        let (start, end) = ("/dept-1/", path_range_end("/dept-1/"));
        assert_eq!(end, "/dept-10");
        let inside = |p: &str| p >= start && p < end.as_str();
        assert!(inside("/dept-1/") && inside("/dept-1/dept-1-a/"));
        assert!(!inside("/dept-10/") && !inside("/dept-1"));
    }

    #[test]
    fn lookups_respect_the_parameter_limit() {
        let ids: Vec<String> = (0..250).map(|i| format!("id-{i}")).collect();
        let refs: Vec<&str> = ids.iter().map(String::as_str).collect();
        let parts = lookup(Dialect::D1, "t", &refs);
        assert_eq!(parts.len(), 3);
        assert!(
            parts
                .iter()
                .all(|s| s.params.len() <= Dialect::D1.max_params())
        );
        assert_eq!(parts.iter().map(|s| s.params.len() - 1).sum::<usize>(), 250);
    }

    #[test]
    fn clauses_number_parameters_in_order() {
        let f = Filter {
            user_id: Some("u".into()),
            department_path: Some("/d/".into()),
            from: 1,
            to: 2,
            ..Filter::default()
        };
        let c = clause("t", &f);
        assert_eq!(
            c.sql,
            "tenant_id = ?1 AND occurred_at >= ?2 AND occurred_at < ?3 AND user_id = ?4 \
             AND department_path >= ?5 AND department_path < ?6"
        );
        assert_eq!(c.params.len(), 6);
    }
}

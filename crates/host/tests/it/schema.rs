//! The PostgreSQL migrations are written beside the SQLite/D1 ones (the dialects differ
//! in DDL: `BIGINT`, `BYTEA`, `WITHOUT ROWID`, partial indexes); this test keeps them
//! one schema. Both are applied to real databases, then read back from their catalogs:
//! every table, every column with its type class, primary keys, unique constraints and
//! named indexes (with their columns in order) must agree.

use std::collections::BTreeMap;

use crm_host::store::{Location, Store};
use crm_store::Dialect;

/// A column's type as both dialects can name it.
fn class(declared: &str) -> &'static str {
    let t = declared.to_ascii_lowercase();
    match t.as_str() {
        "text" | "character varying" | "varchar" => "text",
        "integer" | "int" | "bigint" | "smallint" => "integer",
        "blob" | "bytea" => "blob",
        "" => "any",
        _ => "other",
    }
}

#[derive(Debug, Default, PartialEq, Eq)]
struct Table {
    /// (column, type class), in declaration order.
    columns: Vec<(String, &'static str)>,
    primary_key: Vec<String>,
    /// Column lists of UNIQUE constraints, sorted.
    unique: Vec<Vec<String>>,
    /// Named indexes: name → (unique, columns).
    indexes: BTreeMap<String, (bool, Vec<String>)>,
}

type Schema = BTreeMap<String, Table>;

fn query(store: &Store, sql: &str, params: Vec<crm_store::Value>) -> Vec<crm_store::Row> {
    let st = store.dialect().stmt(sql, params);
    store
        .read_blocking(move |c| Ok(c.query(&st)?))
        .expect("catalog query")
}

fn sqlite_schema(store: &Store) -> Schema {
    let mut schema = Schema::new();
    let tables = query(
        store,
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name",
        vec![],
    );
    for t in tables {
        let name = t.string(0).expect("name");
        let mut table = Table::default();
        let mut pk: Vec<(i64, String)> = Vec::new();
        for c in query(
            store,
            "SELECT name, type, pk FROM pragma_table_info(?1)",
            vec![name.clone().into()],
        ) {
            let col = c.string(0).expect("column");
            table
                .columns
                .push((col.clone(), class(c.text(1).expect("type"))));
            let at = c.int(2).expect("pk");
            if at > 0 {
                pk.push((at, col));
            }
        }
        pk.sort();
        table.primary_key = pk.into_iter().map(|(_, c)| c).collect();
        for i in query(
            store,
            "SELECT name, \"unique\", origin FROM pragma_index_list(?1)",
            vec![name.clone().into()],
        ) {
            let index = i.string(0).expect("index");
            let columns: Vec<String> = query(
                store,
                "SELECT name FROM pragma_index_info(?1) ORDER BY seqno",
                vec![index.clone().into()],
            )
            .iter()
            .map(|r| r.string(0).expect("column"))
            .collect();
            match i.text(2).expect("origin") {
                "pk" => {}
                "u" => table.unique.push(columns),
                _ => {
                    table
                        .indexes
                        .insert(index, (i.int(1).expect("unique") == 1, columns));
                }
            }
        }
        table.unique.sort();
        schema.insert(name, table);
    }
    schema
}

fn postgres_schema(store: &Store) -> Schema {
    let mut schema = Schema::new();
    for c in query(
        store,
        "SELECT table_name::text, column_name::text, data_type::text FROM information_schema.columns \
         WHERE table_schema = current_schema() ORDER BY table_name, ordinal_position",
        vec![],
    ) {
        let table = schema.entry(c.string(0).expect("table")).or_default();
        table.columns.push((
            c.string(1).expect("column"),
            class(c.text(2).expect("type")),
        ));
    }
    for i in query(
        store,
        "SELECT t.relname::text, i.relname::text, \
                CASE WHEN ix.indisprimary THEN 1 ELSE 0 END, \
                CASE WHEN ix.indisunique THEN 1 ELSE 0 END, \
                CASE WHEN EXISTS (SELECT 1 FROM pg_constraint k WHERE k.conindid = ix.indexrelid) THEN 1 ELSE 0 END, \
                array_to_string(ARRAY(SELECT a.attname::text FROM unnest(ix.indkey) WITH ORDINALITY k(attnum, ord) \
                    JOIN pg_attribute a ON a.attrelid = t.oid AND a.attnum = k.attnum ORDER BY k.ord), ',') \
         FROM pg_index ix JOIN pg_class t ON t.oid = ix.indrelid JOIN pg_class i ON i.oid = ix.indexrelid \
         JOIN pg_namespace n ON n.oid = t.relnamespace WHERE n.nspname = current_schema()",
        vec![],
    ) {
        let table = schema.entry(i.string(0).expect("table")).or_default();
        let columns: Vec<String> = i
            .text(5)
            .expect("columns")
            .split(',')
            .map(str::to_owned)
            .collect();
        if i.int(2).expect("primary") == 1 {
            table.primary_key = columns;
        } else if i.int(4).expect("constraint") == 1 {
            table.unique.push(columns);
        } else {
            table.indexes.insert(
                i.string(1).expect("index"),
                (i.int(3).expect("unique") == 1, columns),
            );
        }
    }
    for table in schema.values_mut() {
        table.unique.sort();
    }
    // The PostgreSQL migrator's own bookkeeping (SQLite keeps it in `user_version`).
    schema.remove("schema_version");
    schema
}

#[test]
fn postgres_and_sqlite_migrations_build_the_same_schema() {
    let dir = tempfile::tempdir().expect("temp dir");
    let sqlite = Store::open(&Location::Sqlite(dir.path().join("schema.db"))).expect("sqlite");
    let postgres =
        Store::open(&Location::Postgres(crm_testkit::postgres::database())).expect("postgres");
    assert_eq!(sqlite.dialect(), Dialect::Sqlite);
    let (a, b) = (sqlite_schema(&sqlite), postgres_schema(&postgres));
    assert_eq!(
        a.keys().collect::<Vec<_>>(),
        b.keys().collect::<Vec<_>>(),
        "the same tables"
    );
    // The catalogs were read, not found empty: the log's table has its columns and
    // indexes on both sides.
    let activities = &a["activities"];
    assert!(
        activities.columns.len() >= 10 && activities.indexes.len() >= 3,
        "{activities:?}"
    );
    assert!(!activities.primary_key.is_empty());
    for (name, table) in &a {
        assert_eq!(
            Some(table),
            b.get(name),
            "table {name}: SQLite left, PostgreSQL right"
        );
    }
}

//! The schema, per dialect, as ordered migrations. SQLite and D1 share the files in
//! `migrations/` (D1 applies them with `wrangler d1 migrations apply`); PostgreSQL has
//! the same schema in `migrations/postgres/`. Append only: an applied migration never
//! changes.

use crate::dialect::Dialect;

/// One schema step: its version and the SQL that takes the schema there.
#[derive(Debug, Clone, Copy)]
pub struct Migration {
    pub version: i64,
    pub sql: &'static str,
}

const SQLITE: &[Migration] = &[
    Migration {
        version: 1,
        sql: include_str!("../../../migrations/0001_init.sql"),
    },
    Migration {
        version: 2,
        sql: include_str!("../../../migrations/0002_surface.sql"),
    },
    Migration {
        version: 3,
        sql: include_str!("../../../migrations/0003_edge.sql"),
    },
    Migration {
        version: 4,
        sql: include_str!("../../../migrations/0004_shards.sql"),
    },
    Migration {
        version: 5,
        sql: include_str!("../../../migrations/0005_archive.sql"),
    },
    Migration {
        version: 6,
        sql: include_str!("../../../migrations/0006_report_rollups.sql"),
    },
    Migration {
        version: 7,
        sql: include_str!("../../../migrations/0007_entity_history.sql"),
    },
    Migration {
        version: 8,
        sql: include_str!("../../../migrations/0008_viewer_token_revocations.sql"),
    },
    Migration {
        version: 9,
        sql: include_str!("../../../migrations/0009_credit_grants.sql"),
    },
    Migration {
        version: 10,
        sql: include_str!("../../../migrations/0010_credit_alerts.sql"),
    },
    Migration {
        version: 11,
        sql: include_str!("../../../migrations/0011_webhooks.sql"),
    },
    Migration {
        version: 12,
        sql: include_str!("../../../migrations/0012_database_size.sql"),
    },
    Migration {
        version: 13,
        sql: include_str!("../../../migrations/0013_subject_keys.sql"),
    },
    Migration {
        version: 14,
        sql: include_str!("../../../migrations/0014_tenant_moves.sql"),
    },
];

const POSTGRES: &[Migration] = &[
    Migration {
        version: 1,
        sql: include_str!("../../../migrations/postgres/0001_init.sql"),
    },
    Migration {
        version: 2,
        sql: include_str!("../../../migrations/postgres/0002_surface.sql"),
    },
    Migration {
        version: 3,
        sql: include_str!("../../../migrations/postgres/0003_edge.sql"),
    },
    Migration {
        version: 4,
        sql: include_str!("../../../migrations/postgres/0004_shards.sql"),
    },
    Migration {
        version: 5,
        sql: include_str!("../../../migrations/postgres/0005_archive.sql"),
    },
    Migration {
        version: 6,
        sql: include_str!("../../../migrations/postgres/0006_report_rollups.sql"),
    },
    Migration {
        version: 7,
        sql: include_str!("../../../migrations/postgres/0007_entity_history.sql"),
    },
    Migration {
        version: 8,
        sql: include_str!("../../../migrations/postgres/0008_viewer_token_revocations.sql"),
    },
    Migration {
        version: 9,
        sql: include_str!("../../../migrations/postgres/0009_credit_grants.sql"),
    },
    Migration {
        version: 10,
        sql: include_str!("../../../migrations/postgres/0010_credit_alerts.sql"),
    },
    Migration {
        version: 11,
        sql: include_str!("../../../migrations/postgres/0011_webhooks.sql"),
    },
    Migration {
        version: 12,
        sql: include_str!("../../../migrations/postgres/0012_database_size.sql"),
    },
    Migration {
        version: 13,
        sql: include_str!("../../../migrations/postgres/0013_subject_keys.sql"),
    },
    Migration {
        version: 14,
        sql: include_str!("../../../migrations/postgres/0014_tenant_moves.sql"),
    },
];

/// Every migration of a dialect, in order.
pub fn all(dialect: Dialect) -> &'static [Migration] {
    match dialect {
        Dialect::Sqlite | Dialect::D1 => SQLITE,
        Dialect::Postgres => POSTGRES,
    }
}

/// Migrations newer than `current`, in order.
pub fn pending(dialect: Dialect, current: i64) -> impl Iterator<Item = &'static Migration> {
    all(dialect).iter().filter(move |m| m.version > current)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_dialect_reaches_the_same_version_in_order() {
        for d in [Dialect::Sqlite, Dialect::Postgres] {
            let versions: Vec<i64> = all(d).iter().map(|m| m.version).collect();
            let expected: Vec<i64> = (1..=versions.len() as i64).collect();
            assert_eq!(versions, expected, "{d:?}");
        }
        assert_eq!(all(Dialect::Sqlite).len(), all(Dialect::Postgres).len());
        assert_eq!(
            pending(Dialect::Sqlite, 1).count(),
            all(Dialect::Sqlite).len() - 1
        );
    }

    /// Both dialects create the same tables.
    #[test]
    fn dialects_declare_the_same_tables() {
        let tables = |sql: &str| -> Vec<String> {
            let mut t: Vec<String> = sql
                .lines()
                .filter_map(|l| l.trim().strip_prefix("CREATE TABLE "))
                .map(|l| l.split_whitespace().next().unwrap_or_default().to_owned())
                .collect();
            t.sort();
            t
        };
        for (a, b) in all(Dialect::Sqlite).iter().zip(all(Dialect::Postgres)) {
            assert_eq!(tables(a.sql), tables(b.sql), "migration {}", a.version);
        }
    }
}

//! PostgreSQL for the tests: a fresh database on the process's throw-away cluster.

pub use crm_testkit::postgres::database;

//! Storage failures, classified once: every backend (SQLite, PostgreSQL, D1) sorts its
//! errors into these classes, and each class has one answer — the same status, code,
//! message and retry hint whichever database refused.

use crate::error::{ApiCode, ApiError};

/// Seconds a client should wait after the database said it is busy: long enough for a
/// lock holder or an overloaded D1 queue to drain, short enough not to stall ingest.
pub const BUSY_RETRY_AFTER_SECONDS: u32 = 1;

/// What kind of failure a storage error is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    /// Another writer holds a lock, the server restarts, or D1 is overloaded or was
    /// reset: retrying later works (503 + `Retry-After`).
    Busy,
    /// No space left (or D1's database size cap): nothing was written (507).
    Full,
    /// A key or check constraint refused the write (409).
    Constraint,
    /// Anything else: a bug or a broken environment (500, details only in the log).
    Other,
}

/// The refusal of new activities by a database near its size cap (the edge's
/// `crm_store::database_size`): 507 before anything is queued; room comes back when
/// archiving or retention frees it, not by waiting, so no `Retry-After`.
pub fn nearly_full(size_bytes: u64, stop_bytes: u64) -> ApiError {
    ApiError::new(
        ApiCode::InsufficientStorage,
        format!(
            "this tenant's database holds {size_bytes} bytes and takes no new activities from {stop_bytes} on; archive or expire history to make room (nothing was queued)"
        ),
    )
    .with_details(serde_json::json!({ "sizeBytes": size_bytes, "stopBytes": stop_bytes }))
}

impl Failure {
    /// The answer a client gets for this class of failure.
    pub fn answer(self) -> ApiError {
        match self {
            Failure::Busy => ApiError::unavailable(
                "the database is busy; retry shortly",
                BUSY_RETRY_AFTER_SECONDS,
            ),
            Failure::Full => ApiError::new(
                ApiCode::InsufficientStorage,
                "the database is out of space; nothing was written",
            ),
            Failure::Constraint => {
                ApiError::conflict("the write conflicts with stored data; nothing was written")
            }
            Failure::Other => ApiError::internal(),
        }
    }

    /// Classifies an error message of D1 (or SQLite, whose messages D1 passes on).
    /// D1 reports failures as text only; these are the phrases of its published error
    /// list and of SQLite's result codes.
    pub fn of_d1_message(message: &str) -> Failure {
        let m = message.to_ascii_lowercase();
        const FULL: &[&str] = &[
            "sqlite_full",
            "database or disk is full",
            "exceeded maximum db size",
            "maximum database size",
        ];
        const BUSY: &[&str] = &[
            "overloaded",
            "too many requests queued",
            "queued for too long",
            "sqlite_busy",
            "database is locked",
            "was reset",
            "object to be reset",
            "network connection lost",
            "transient issue",
            "storage operation exceeded timeout",
            "internal error while starting up",
        ];
        const CONSTRAINT: &[&str] = &["constraint failed", "sqlite_constraint"];
        let has = |phrases: &[&str]| phrases.iter().any(|p| m.contains(p));
        if has(FULL) {
            Failure::Full
        } else if has(BUSY) {
            Failure::Busy
        } else if has(CONSTRAINT) {
            Failure::Constraint
        } else {
            Failure::Other
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn d1_messages_are_classified_like_the_hosts_errors() {
        let cases = [
            (
                "D1 DB is overloaded. Too many requests queued.",
                Failure::Busy,
            ),
            ("D1_ERROR: database is locked: SQLITE_BUSY", Failure::Busy),
            (
                "D1 DB storage operation exceeded timeout which caused object to be reset.",
                Failure::Busy,
            ),
            ("D1_ERROR: Exceeded maximum DB size", Failure::Full),
            (
                "D1_ERROR: database or disk is full: SQLITE_FULL",
                Failure::Full,
            ),
            (
                "D1_ERROR: UNIQUE constraint failed: activities.tenant_id, activities.id: SQLITE_CONSTRAINT",
                Failure::Constraint,
            ),
            ("D1_ERROR: no such table: nowhere", Failure::Other),
        ];
        for (message, class) in cases {
            assert_eq!(Failure::of_d1_message(message), class, "{message}");
        }
    }

    #[test]
    fn each_class_has_one_answer() {
        let busy = Failure::Busy.answer();
        assert_eq!((busy.status(), busy.retry_after), (503, Some(1)));
        assert_eq!(Failure::Full.answer().status(), 507);
        assert_eq!(Failure::Constraint.answer().status(), 409);
        assert_eq!(Failure::Other.answer().status(), 500);
        assert!(Failure::Other.answer().retry_after.is_none());
    }
}

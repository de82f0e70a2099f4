//! Collision-free activity ids. The original sketch built `activity:${Date.now()}:${userId}`, which
//! collides for two activities of one user in one millisecond, and then
//! `INSERT OR REPLACE` overwrote the first (defect 1).
//!
//! We use ULIDs: 48 bits of milliseconds + 80 random bits supplied by the caller (the
//! core has no randomness). Within one millisecond the generator increments the random
//! part, so ids from one generator are strictly increasing and never repeat.

use ulid::Ulid;

use crate::time::Timestamp;

/// Monotonic ULID generator. Callers seed it with random bits from their platform.
#[derive(Debug, Clone, Default)]
pub struct IdGenerator {
    last: Option<Ulid>,
}

impl IdGenerator {
    pub fn new() -> Self {
        IdGenerator { last: None }
    }

    /// Next id for instant `now`, using `random` (only the low 80 bits are used) unless
    /// the clock did not advance, in which case the previous id is incremented.
    pub fn next(&mut self, now: Timestamp, random: u128) -> String {
        let ms = u64::try_from(now.millis()).unwrap_or(0);
        let fresh = Ulid::from_parts(ms, random);
        let id = match self.last {
            // Same or earlier millisecond (clock went back): stay monotonic.
            Some(prev) if prev.timestamp_ms() >= ms => prev.increment().unwrap_or_else(|| {
                // 2^80 ids in one millisecond: move to the next millisecond instead.
                Ulid::from_parts(prev.timestamp_ms() + 1, 0)
            }),
            _ => fresh,
        };
        self.last = Some(id);
        id.to_string()
    }
}

//! The host supplies what the pure core must not have: the clock and randomness.

use std::sync::{Arc, Mutex};

use crm_core::Timestamp;
use crm_core::ids::IdGenerator;

pub fn now() -> Timestamp {
    Timestamp::from_millis(chrono::Utc::now().timestamp_millis())
        .expect("the system clock is after 1970")
}

/// Monotonic ULIDs for activities without a client id (defect 1: ids from
/// `Date.now()` collided within a millisecond).
#[derive(Debug, Clone, Default)]
pub struct IdSource {
    generator: Arc<Mutex<IdGenerator>>,
}

impl IdSource {
    pub fn next(&self, now: Timestamp) -> String {
        let random: u128 = rand::random();
        let mut generator = self
            .generator
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        generator.next(now, random)
    }
}

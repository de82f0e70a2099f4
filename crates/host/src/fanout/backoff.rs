//! Exponential backoff with full jitter: the n-th retry waits a uniformly random time
//! in `[0, min(cap, base · 2^n))`, so clients that failed together do not retry together.

use std::time::Duration;

use rand::Rng;

/// First retry window.
pub const BASE: Duration = Duration::from_millis(100);
/// Longest wait between two attempts: a sink that comes back is used within this.
pub const CAP: Duration = Duration::from_secs(10);

pub fn delay(attempt: u32) -> Duration {
    let window = BASE
        .checked_mul(1u32.checked_shl(attempt.min(16)).unwrap_or(u32::MAX))
        .unwrap_or(CAP)
        .min(CAP);
    let millis = u64::try_from(window.as_millis()).unwrap_or(u64::MAX);
    Duration::from_millis(rand::rng().random_range(0..=millis))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_grow_then_stop_at_the_cap() {
        for attempt in 0..40 {
            let d = delay(attempt);
            assert!(d <= CAP, "attempt {attempt}: {d:?}");
            let window = BASE * 2u32.saturating_pow(attempt.min(16));
            assert!(d <= window, "attempt {attempt}: {d:?} > {window:?}");
        }
    }
}

//! A process-wide millisecond clock for timestamps kept in atomics.
//!
//! `std::time::Instant` on purpose: it is read on every socket read, and tokio's clock
//! costs a lock per read when its `test-util` feature is on anywhere in the build.

use std::sync::OnceLock;
use std::time::{Duration, Instant};

fn epoch() -> Instant {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    *EPOCH.get_or_init(Instant::now)
}

/// Milliseconds since the process epoch; never 0, so 0 can mean "unset".
pub(crate) fn now_ms() -> u64 {
    to_ms(Instant::now())
}

pub(crate) fn to_ms(at: Instant) -> u64 {
    at.saturating_duration_since(epoch()).as_millis() as u64 + 1
}

pub(crate) fn to_instant(ms: u64) -> Instant {
    epoch() + Duration::from_millis(ms.saturating_sub(1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_within_a_millisecond() {
        let now = Instant::now();
        let back = to_instant(to_ms(now));
        assert!(now.saturating_duration_since(back) < Duration::from_millis(1));
        assert!(now_ms() >= 1);
    }
}

//! The reconnect schedule of a client: exponential backoff with jitter, capped, and reset
//! by a session that stayed up. Socket-free, so it is unit-tested here.

use std::time::Duration;

/// When to dial again.
///
/// The delay before dial round `n` after `f` failed rounds is drawn from `[¾d, d]` with
/// `d = min(cap, interval × 2^f)`: the first re-dial after losing a healthy session waits
/// about one interval, each round that fails doubles it, up to the cap. The jitter keeps
/// many clients of one server from dialing in step after it restarts. A session that
/// stays open for ten intervals (at most the cap; 3 s by default) counts as healthy and
/// resets the count; one that closes sooner (or is refused by `on_open`) counts as a
/// failure, so a server that accepts and drops at once cannot drive a hot loop.
#[derive(Debug, Clone)]
pub(crate) struct Backoff {
    interval: Duration,
    cap: Duration,
    failures: u32,
    /// A failure was already counted for the current dial round.
    round_failed: bool,
    rng: u64,
}

impl Backoff {
    pub(crate) fn new(interval: Duration, cap: Duration, seed: u64) -> Self {
        let interval = interval.max(Duration::from_millis(1));
        Backoff {
            interval,
            cap: cap.max(interval),
            failures: 0,
            round_failed: false,
            rng: seed | 1,
        }
    }

    /// How long a session must stay open to count as healthy.
    pub(crate) fn stable_after(&self) -> Duration {
        self.interval.saturating_mul(10).min(self.cap)
    }

    /// A dial round starts: failures in it count once.
    pub(crate) fn new_round(&mut self) {
        self.round_failed = false;
    }

    /// A dial, an `on_open`, or a short-lived session failed.
    pub(crate) fn fail(&mut self) {
        if !self.round_failed {
            self.round_failed = true;
            self.failures = self.failures.saturating_add(1);
        }
    }

    /// A session stayed up: start over from the interval.
    pub(crate) fn reset(&mut self) {
        self.failures = 0;
    }

    /// The delay before the next dial round.
    pub(crate) fn next_delay(&mut self) -> Duration {
        let grown = self.interval.saturating_mul(1u32 << self.failures.min(20));
        let ceiling = grown.min(self.cap);
        // xorshift64: jitter needs no more randomness than this.
        self.rng ^= self.rng << 13;
        self.rng ^= self.rng >> 7;
        self.rng ^= self.rng << 17;
        let unit = (self.rng >> 11) as f64 / (1u64 << 53) as f64;
        ceiling.mul_f64(0.75 + 0.25 * unit)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::defaults::{DEFAULT_MAX_RECONNECT_INTERVAL, DEFAULT_RECONNECT_INTERVAL};

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn grows_exponentially_within_jitter_and_stops_at_the_cap() {
        let mut b = Backoff::new(ms(100), ms(1000), 42);
        let mut ceilings = Vec::new();
        for _ in 0..8 {
            let d = b.next_delay();
            ceilings.push(d);
            b.new_round();
            b.fail();
        }
        let expected = [100, 200, 400, 800, 1000, 1000, 1000, 1000];
        for (d, hi) in ceilings.iter().zip(expected) {
            assert!(
                *d <= ms(hi) && *d >= ms(hi).mul_f64(0.75),
                "{d:?} not in [0.75, 1] x {hi} ms"
            );
        }
    }

    #[test]
    fn failures_count_once_per_round_and_reset_clears_them() {
        let mut b = Backoff::new(ms(100), ms(10_000), 7);
        b.new_round();
        for _ in 0..5 {
            b.fail(); // five sessions lost in one round
        }
        assert!(b.next_delay() <= ms(200));
        b.reset();
        assert!(b.next_delay() <= ms(100));
    }

    #[test]
    fn a_server_down_for_minutes_costs_few_dials() {
        let mut b = Backoff::new(
            DEFAULT_RECONNECT_INTERVAL,
            DEFAULT_MAX_RECONNECT_INTERVAL,
            3,
        );
        let (mut elapsed, mut dials) = (Duration::ZERO, 0);
        while elapsed < Duration::from_secs(300) {
            elapsed += b.next_delay();
            dials += 1;
            b.new_round();
            b.fail();
        }
        assert!(dials < 50, "{dials} dial rounds in five minutes");
    }
}

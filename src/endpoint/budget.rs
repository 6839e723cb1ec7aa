//! The endpoint's memory budget: one bound on the bytes that all of an endpoint's
//! sessions hold buffered (write queues, frames read and not yet handled, datagrams
//! queued for a per-peer UDP session), on top of each session's own bounds.
//!
//! Each session's bounds alone let memory grow with the number of sessions: a thousand
//! peers that send and never read fill a thousand write queues. The budget caps the sum.
//!
//! The rule: every session may hold its fair share (the budget divided by the sessions
//! that count against it). Beyond its share a session may grow only while the budget has
//! room and the sessions' holdings beyond their shares stay under a quarter of the
//! budget: that quarter lets a few busy sessions use memory that idle ones leave, while
//! the rest stays free for the sessions that have not reached their share yet. A session
//! held back has its writes refused with
//! [`ErrorKind::MemoryBudget`](crate::ErrorKind::MemoryBudget), frames it read wait
//! undelivered and its reader pauses; sessions under their share go on as before. The
//! sessions held back are the ones whose peers do not keep up: they either drain or meet
//! their write timeout and end. Nothing already accepted is dropped.
//!
//! Bound: the shares sum to the budget and the excess is capped at a quarter of it, so
//! the sessions hold at most 1.25 times the budget, plus what one batch adds to a session
//! between two of its reports (the report comes once per batch, not per frame; a
//! session's read chunk is at most a quarter of its share, which bounds that batch).
//!
//! Socket-free, so the rules are unit-tested here; the shared counters cost one atomic
//! add per batch of a session, not one per frame.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;

/// The shared account of one endpoint.
#[derive(Debug)]
pub(crate) struct Budget {
    limit: usize,
    used: AtomicUsize,
    /// What sessions hold beyond their fair shares, as they last reported.
    excess: AtomicUsize,
    /// Sessions that count against it: the budget's fair share is `limit / members`.
    members: AtomicUsize,
}

impl Budget {
    pub(crate) fn new(limit: usize) -> Arc<Self> {
        Arc::new(Budget {
            limit: limit.max(1),
            used: AtomicUsize::new(0),
            excess: AtomicUsize::new(0),
            members: AtomicUsize::new(0),
        })
    }

    pub(crate) fn limit(&self) -> usize {
        self.limit
    }

    /// Bytes the sessions reported holding.
    pub(crate) fn used(&self) -> usize {
        self.used.load(Ordering::Relaxed)
    }

    /// One session's fair share of the budget.
    pub(crate) fn share(&self) -> usize {
        self.limit / self.members.load(Ordering::Relaxed).max(1)
    }

    fn spent(&self) -> bool {
        self.used() >= self.limit
    }

    /// Whether the sessions hold less than half the budget: then no session can be
    /// held back (the shares and the excess allowance together cannot be reached before
    /// the next reports), and the sessions skip the rest of the bookkeeping. One load.
    fn relaxed(&self) -> bool {
        self.used() < self.limit / 2
    }

    /// What all sessions together may hold beyond their shares.
    fn excess_limit(&self) -> usize {
        self.limit / 4
    }

    /// Bytes a session may still take beyond its share: its part of the room left in
    /// the budget and in the excess allowance.
    fn room_beyond_share(&self) -> usize {
        let room = self.limit.saturating_sub(self.used());
        let excess_room = self
            .excess_limit()
            .saturating_sub(self.excess.load(Ordering::Relaxed));
        room.min(excess_room) / self.members.load(Ordering::Relaxed).max(1)
    }
}

fn add_or_sub(counter: &AtomicUsize, before: usize, after: usize) {
    if after > before {
        counter.fetch_add(after - before, Ordering::Relaxed);
    } else if before > after {
        counter.fetch_sub(before - after, Ordering::Relaxed);
    }
}

/// The budget's terms at one moment (see [`Charge::terms`]).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Terms {
    pub(crate) share: usize,
    pub(crate) room_beyond_share: usize,
    pub(crate) limit: usize,
}

impl Terms {
    /// See [`Charge::grant`].
    pub(crate) fn grant(&self, held: usize) -> usize {
        self.share.saturating_sub(held).max(self.room_beyond_share)
    }
}

/// One session's account in its endpoint's budget: what it holds, as last reported.
/// Only the session's logic actor reports (one writer); any thread may read.
#[derive(Debug)]
pub(crate) struct Charge {
    budget: Arc<Budget>,
    held: AtomicUsize,
    /// The part of `held` beyond the fair share at the last report.
    excess: AtomicUsize,
    released: AtomicBool,
}

impl Charge {
    /// Opens an account: the session counts toward the budget's members from now on.
    pub(crate) fn new(budget: Arc<Budget>) -> Self {
        budget.members.fetch_add(1, Ordering::Relaxed);
        Charge {
            budget,
            held: AtomicUsize::new(0),
            excess: AtomicUsize::new(0),
            released: AtomicBool::new(false),
        }
    }

    /// Reports that the session holds `held` bytes now (the budget moves by the
    /// difference from the last report).
    pub(crate) fn set(&self, held: usize) {
        if self.released.load(Ordering::Relaxed) {
            return;
        }
        let before = self.held.load(Ordering::Relaxed);
        if held != before {
            self.held.store(held, Ordering::Relaxed);
            add_or_sub(&self.budget.used, before, held);
        }
        if self.budget.relaxed() && self.excess.load(Ordering::Relaxed) == 0 {
            return; // nothing beyond a share can matter yet, and none was reported
        }
        let excess = held.saturating_sub(self.budget.share());
        let excess_before = self.excess.load(Ordering::Relaxed);
        if excess != excess_before {
            self.excess.store(excess, Ordering::Relaxed);
            add_or_sub(&self.budget.excess, excess_before, excess);
        }
    }

    /// Whether a session holding `held` bytes may not grow: it holds at least its fair
    /// share, and there is no room left beyond shares (see the module's rule).
    pub(crate) fn over_share(&self, held: usize) -> bool {
        !self.budget.relaxed()
            && held >= self.budget.share()
            && self.budget.room_beyond_share() == 0
    }

    /// Whether the budget is far from spent (see [`Budget::relaxed`]).
    pub(crate) fn relaxed(&self) -> bool {
        self.budget.relaxed()
    }

    /// How many more bytes a session holding `held` may take before it reports again:
    /// up to its fair share, or its part of the room beyond shares if that is more.
    #[cfg(test)]
    pub(crate) fn grant(&self, held: usize) -> usize {
        self.terms().grant(held)
    }

    /// The budget's terms now, read once for several decisions.
    pub(crate) fn terms(&self) -> Terms {
        Terms {
            share: self.budget.share(),
            room_beyond_share: self.budget.room_beyond_share(),
            limit: self.budget.limit,
        }
    }

    /// Whether the sessions together hold the whole budget.
    pub(crate) fn spent(&self) -> bool {
        self.budget.spent()
    }

    /// Bytes the session held at its last report.
    pub(crate) fn held(&self) -> usize {
        self.held.load(Ordering::Relaxed)
    }

    /// One session's fair share of the budget now.
    pub(crate) fn share(&self) -> usize {
        self.budget.share()
    }

    /// Closes the account: what the session held goes back, and it no longer counts
    /// toward the members. Idempotent.
    pub(crate) fn release(&self) {
        if self.released.swap(true, Ordering::Relaxed) {
            return;
        }
        let held = self.held.swap(0, Ordering::Relaxed);
        self.budget.used.fetch_sub(held, Ordering::Relaxed);
        let excess = self.excess.swap(0, Ordering::Relaxed);
        self.budget.excess.fetch_sub(excess, Ordering::Relaxed);
        self.budget.members.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Drop for Charge {
    fn drop(&mut self) {
        self.release();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reports_move_the_budget_by_their_difference() {
        let budget = Budget::new(1000);
        let a = Charge::new(budget.clone());
        let b = Charge::new(budget.clone());
        a.set(300);
        b.set(200);
        a.set(100);
        assert_eq!(budget.used(), 300);
        a.release();
        a.release();
        assert_eq!(budget.used(), 200, "released once");
        assert_eq!(budget.share(), 1000, "one member left");
        a.set(999);
        assert_eq!(budget.used(), 200, "a closed account reports nothing");
        drop(b);
        assert_eq!(budget.used(), 0);
    }

    #[test]
    fn beyond_its_share_a_session_grows_only_into_the_excess_allowance() {
        // 1,000 bytes, four sessions: a share is 250, the excess allowance 250.
        let budget = Budget::new(1000);
        let hog = Charge::new(budget.clone());
        let small = Charge::new(budget.clone());
        let third = Charge::new(budget.clone());
        let idle = Charge::new(budget.clone());
        hog.set(400); // 150 beyond its share, but under half the budget: not counted
        assert!(hog.relaxed());
        assert!(!hog.over_share(400));
        assert_eq!(
            hog.grant(400),
            62,
            "room beyond shares: 250 of the allowance / 4"
        );
        small.set(100); // half the budget held: the excess counts from now on
        hog.set(400);
        // Room beyond shares: min(500 in the budget, 100 of the allowance) / 4 sessions.
        assert_eq!(hog.grant(400), 25);
        small.set(0);
        hog.set(500);
        assert!(hog.over_share(500), "the allowance is used up: held back");
        assert_eq!(hog.grant(500), 0);
        assert!(!small.over_share(100), "a session under its share goes on");
        assert_eq!(small.grant(100), 150, "up to its share");
        small.set(250);
        third.set(250);
        assert_eq!(
            idle.grant(0),
            250,
            "a spent budget still gives a session its share"
        );
        idle.set(250);
        assert_eq!(
            budget.used(),
            1250,
            "the most the sessions can hold: 1.25 budgets"
        );
        assert!(small.over_share(250) && idle.over_share(250));
        // The hog's peer reads: room again beyond shares.
        hog.set(100);
        assert!(!small.over_share(250));
        drop(idle);
        assert_eq!(budget.share(), 333);
    }
}

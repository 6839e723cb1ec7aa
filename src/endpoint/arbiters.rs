//! The pool of arbiters (threads) that sessions are spread over.

use std::sync::atomic::{AtomicUsize, Ordering};

use actix::{Arbiter, ArbiterHandle};

/// Worker arbiters, handed out round-robin. The first is the arbiter that started the
/// endpoint, so a pool of one adds no thread; the others are started for the pool and
/// stopped with it.
pub(crate) struct ArbiterPool {
    handles: Vec<ArbiterHandle>,
    owned: Vec<Arbiter>,
    next: AtomicUsize,
}

impl ArbiterPool {
    /// A pool of `size` arbiters (at least 1), started from within an actix system.
    pub(crate) fn start(size: usize) -> Self {
        let owned: Vec<Arbiter> = (1..size.max(1)).map(|_| Arbiter::new()).collect();
        let mut handles = vec![Arbiter::current()];
        handles.extend(owned.iter().map(Arbiter::handle));
        ArbiterPool {
            handles,
            owned,
            next: AtomicUsize::new(0),
        }
    }

    /// The next arbiter, and whether it is the current one.
    pub(crate) fn next(&self) -> (usize, &ArbiterHandle) {
        let i = self.next.fetch_add(1, Ordering::Relaxed) % self.handles.len();
        (i, &self.handles[i])
    }

    /// Stops the arbiters this pool started.
    pub(crate) fn stop(&self) {
        for arbiter in &self.owned {
            arbiter.stop();
        }
    }
}

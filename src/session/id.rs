//! Session ids: unique across every endpoint of the process, never reused.

use std::fmt;
use std::num::NonZeroU64;
use std::sync::atomic::{AtomicU64, Ordering};

/// Identifies one session for the life of the process.
///
/// Ids are unique across every endpoint of the process and never reused.
// Never zero, so an `Option<SessionId>` (in every `Error`) takes no more room than an id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SessionId(NonZeroU64);

impl SessionId {
    /// The number behind the id.
    pub fn get(self) -> u64 {
        self.0.get()
    }

    /// Session `n`, for unit tests.
    #[cfg(test)]
    pub(crate) fn of(n: u64) -> SessionId {
        SessionId(NonZeroU64::new(n).expect("session ids start at 1"))
    }
}

impl fmt::Display for SessionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "session#{}", self.0)
    }
}

/// A new id, not given to any session before: 1, 2, 3, ...
pub(crate) fn next_session_id() -> SessionId {
    static TAKEN: AtomicU64 = AtomicU64::new(0);
    SessionId(NonZeroU64::MIN.saturating_add(TAKEN.fetch_add(1, Ordering::Relaxed)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_count_up_and_show_their_number() {
        let first = next_session_id();
        let second = next_session_id();
        assert!(first.get() >= 1);
        assert!(second > first);
        assert_eq!(SessionId::of(7).to_string(), "session#7");
        assert_eq!(SessionId::of(7).get(), 7);
        assert_eq!(
            std::mem::size_of::<Option<SessionId>>(),
            std::mem::size_of::<u64>()
        );
    }
}

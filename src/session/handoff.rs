//! The hand-over queue: writes made through [`Session`](super::Session) handles (from
//! other actors, arbiters or threads) on their way into the session's write queue.
//!
//! A handle cannot encode (the codec belongs to the logic actor), so it leaves the frame
//! here and wakes the logic actor, which encodes it into the write queue as soon as the
//! queue has room below its high-water mark. The queue holds at most
//! [`SessionConfig::handoff_queue`](crate::SessionConfig::handoff_queue) frames: enough for
//! an actor to fan a turn's worth of messages out to a session that shares its arbiter
//! (and so cannot run before the actor's turn ends) without refusals. Frames here are
//! never dropped for room: once accepted they are encoded in order, or, if the session
//! ends first, their writers hear [`ErrorKind::Closed`](crate::ErrorKind::Closed) (a
//! `try_write` has nobody waiting; it learns of the close through `on_close`).
//!
//! It is the only state shared across threads on the write path, so it is a mutex
//! around a deque, taken briefly by each side, never across a callback or an await.

use std::collections::VecDeque;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::task::Waker;

use futures::task::AtomicWaker;
use tokio::sync::futures::Notified;
use tokio::sync::{oneshot, Notify};

use super::messages::Payload;
use crate::error::Result;

/// One write waiting to be encoded.
pub(crate) struct Entry<Out> {
    /// What to write.
    pub(crate) payload: Payload<Out>,
    /// Resolves once the bytes reached the OS (or with the error); `None` for `try_write`.
    pub(crate) ack: Option<oneshot::Sender<Result<()>>>,
}

impl<Out> Entry<Out> {
    /// Frames this entry counts for against the capacity (raw bytes count as one).
    pub(crate) fn frames(&self) -> usize {
        match &self.payload {
            Payload::Many(frames) => frames.len().max(1),
            Payload::One(_) | Payload::Raw(_) => 1,
        }
    }
}

/// Why [`Handoff::push`] refused an entry (it is given back).
pub(crate) enum Refused<Out> {
    /// The queue holds `frames` frames; this entry would pass the capacity.
    Full { entry: Entry<Out>, frames: usize },
    /// The session is closing or closed.
    Closed,
}

struct State<Out> {
    entries: VecDeque<Entry<Out>>,
    /// Frames accepted and not yet encoded (those taken by the logic actor included).
    frames: usize,
    open: bool,
}

/// The hand-over queue of one session: writes made through its handles, on any
/// thread, waiting in order for the logic actor to encode them.
pub(crate) struct Handoff<Out> {
    state: Mutex<State<Out>>,
    capacity: usize,
    /// Entries in `state`, readable without the lock so the logic actor skips an empty
    /// queue at the cost of one load per poll.
    queued: AtomicUsize,
    /// The logic actor's task.
    consumer: AtomicWaker,
    /// Writers waiting for room ([`Session::write`](super::Session::write)).
    room: Notify,
    /// How many writers wait on `room`; the logic actor notifies only when some do.
    waiting: AtomicUsize,
}

impl<Out> Handoff<Out> {
    /// A queue for at most `capacity` frames (at least 1).
    pub(crate) fn new(capacity: usize) -> Self {
        Handoff {
            state: Mutex::new(State {
                entries: VecDeque::new(),
                frames: 0,
                open: true,
            }),
            capacity: capacity.max(1),
            queued: AtomicUsize::new(0),
            consumer: AtomicWaker::new(),
            room: Notify::new(),
            waiting: AtomicUsize::new(0),
        }
    }

    /// The most frames the queue holds.
    pub(crate) fn capacity(&self) -> usize {
        self.capacity
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State<Out>> {
        // Nothing panics while holding the lock (no user code runs under it), so a
        // poisoned lock still holds consistent state.
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Queues `entry` behind everything queued before it, and wakes the logic actor if
    /// the queue was empty. An entry larger than the capacity is taken when the queue is
    /// empty, so a big `write_all` is not refused forever.
    pub(crate) fn push(&self, entry: Entry<Out>) -> Result<(), Refused<Out>> {
        let n = entry.frames();
        let was_empty = {
            let mut state = self.lock();
            if !state.open {
                return Err(Refused::Closed);
            }
            if state.frames > 0 && state.frames + n > self.capacity {
                let frames = state.frames;
                return Err(Refused::Full { entry, frames });
            }
            state.frames += n;
            state.entries.push_back(entry);
            self.queued.store(state.entries.len(), Ordering::Release);
            state.entries.len() == 1
        };
        if was_empty {
            self.consumer.wake();
        }
        Ok(())
    }

    /// Whether entries wait (a hint: read without the lock).
    pub(crate) fn is_empty(&self) -> bool {
        self.queued.load(Ordering::Acquire) == 0
    }

    /// Frames accepted and not yet encoded.
    #[cfg(test)]
    pub(crate) fn frames(&self) -> usize {
        self.lock().frames
    }

    /// For the logic actor: wake `waker` when an entry arrives in an empty queue.
    pub(crate) fn register(&self, waker: &Waker) {
        self.consumer.register(waker);
    }

    /// For the logic actor: takes every waiting entry out, to encode what fits and give
    /// the rest back with [`put_back`](Self::put_back). The taken frames still count
    /// against the capacity until then.
    pub(crate) fn take_all(&self) -> VecDeque<Entry<Out>> {
        let mut state = self.lock();
        self.queued.store(0, Ordering::Release);
        std::mem::take(&mut state.entries)
    }

    /// For the logic actor: `encoded` frames of the taken entries left the queue; `rest`
    /// (in order) goes back in front of anything queued since. Wakes waiting writers.
    pub(crate) fn put_back(&self, encoded: usize, mut rest: VecDeque<Entry<Out>>) {
        {
            let mut state = self.lock();
            state.frames = state.frames.saturating_sub(encoded);
            if !rest.is_empty() {
                rest.append(&mut state.entries);
                state.entries = rest;
                self.queued.store(state.entries.len(), Ordering::Release);
            }
        }
        if encoded > 0 {
            self.wake_writers();
        }
    }

    /// Refuses every push from now on and drops what waits (their writers hear that the
    /// session closed: their acks are dropped).
    pub(crate) fn close(&self) {
        let dropped = {
            let mut state = self.lock();
            state.open = false;
            state.frames = 0;
            self.queued.store(0, Ordering::Release);
            std::mem::take(&mut state.entries)
        };
        drop(dropped);
        self.room.notify_waiters();
    }

    /// Wakes writers waiting for room, if any (the write queue drained, or frames left
    /// this queue).
    pub(crate) fn wake_writers(&self) {
        if self.waiting.load(Ordering::Acquire) > 0 {
            self.room.notify_waiters();
        }
    }

    /// For a writer about to wait: the notification to wait on (registered before the
    /// writer checks for room again, so a wake-up in between is not missed) and a guard
    /// that counts the writer as waiting while it lives.
    /// Boxed: waiting is the rare, slow path.
    pub(crate) fn waiter(&self) -> (Pin<Box<Notified<'_>>>, Waiting<'_>) {
        self.waiting.fetch_add(1, Ordering::AcqRel);
        let waiting = Waiting(&self.waiting);
        let mut notified = Box::pin(self.room.notified());
        // Registered now, so a notify_waiters between here and the await counts.
        notified.as_mut().enable();
        (notified, waiting)
    }
}

/// Counts one writer waiting for room while it lives.
pub(crate) struct Waiting<'a>(&'a AtomicUsize);

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::task::Wake;

    fn one(n: u32) -> Entry<u32> {
        Entry {
            payload: Payload::One(n),
            ack: None,
        }
    }

    fn values(entries: &VecDeque<Entry<u32>>) -> Vec<u32> {
        entries
            .iter()
            .map(|e| match e.payload {
                Payload::One(n) => n,
                _ => unreachable!("only single frames here"),
            })
            .collect()
    }

    #[derive(Default)]
    struct Count(AtomicUsize);
    impl Wake for Count {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    #[test]
    fn refuses_past_capacity_and_says_how_full() {
        let q = Handoff::new(3);
        for n in 0..3 {
            assert!(q.push(one(n)).is_ok());
        }
        match q.push(one(3)) {
            Err(Refused::Full { frames, entry }) => {
                assert_eq!(frames, 3);
                assert!(matches!(entry.payload, Payload::One(3)), "given back");
            }
            _ => panic!("a fourth frame must be refused"),
        }
    }

    #[test]
    fn a_batch_larger_than_the_capacity_goes_in_alone() {
        let q = Handoff::<u32>::new(2);
        let big = Entry {
            payload: Payload::Many(vec![1, 2, 3, 4]),
            ack: None,
        };
        assert!(q.push(big).is_ok(), "an empty queue takes it");
        assert_eq!(q.frames(), 4);
        assert!(matches!(
            q.push(one(5)),
            Err(Refused::Full { frames: 4, .. })
        ));
    }

    #[test]
    fn taken_frames_count_until_encoded_and_the_rest_keeps_its_place() {
        let q = Handoff::new(4);
        for n in 0..4 {
            assert!(q.push(one(n)).is_ok());
        }
        let mut taken = q.take_all();
        assert!(q.is_empty());
        assert!(
            matches!(q.push(one(9)), Err(Refused::Full { frames: 4, .. })),
            "taken but not encoded frames still take room"
        );
        // The logic actor encoded two; the write queue was then full.
        taken.pop_front();
        taken.pop_front();
        q.put_back(2, taken);
        assert!(q.push(one(4)).is_ok());
        assert_eq!(values(&q.take_all()), vec![2, 3, 4], "order kept");
    }

    #[test]
    fn wakes_the_consumer_once_per_empty_to_busy() {
        let q = Handoff::new(8);
        let count = Arc::new(Count::default());
        q.register(&Waker::from(count.clone()));
        assert!(q.push(one(1)).is_ok());
        assert!(q.push(one(2)).is_ok());
        assert_eq!(count.0.load(Ordering::SeqCst), 1, "one wake for a burst");
    }

    #[test]
    fn close_refuses_and_fails_waiting_writers() {
        let q = Handoff::new(8);
        let (ack, mut done) = oneshot::channel();
        let entry = Entry {
            payload: Payload::One(1u32),
            ack: Some(ack),
        };
        assert!(q.push(entry).is_ok());
        q.close();
        assert!(matches!(q.push(one(2)), Err(Refused::Closed)));
        assert!(
            matches!(done.try_recv(), Err(oneshot::error::TryRecvError::Closed)),
            "the writer hears that its frame will not be written"
        );
        assert_eq!(q.frames(), 0);
    }

    #[test]
    fn waiters_are_counted_while_they_wait() {
        let q = Handoff::<u32>::new(1);
        {
            let (_notified, _waiting) = q.waiter();
            assert_eq!(q.waiting.load(Ordering::SeqCst), 1);
        }
        assert_eq!(q.waiting.load(Ordering::SeqCst), 0);
    }
}

//! The read queue: a bounded queue of [`Inbound`] items from a session's reader actor to
//! its logic actor.
//!
//! Both actors run on the same arbiter, so the queue is a plain `Rc<RefCell<..>>` with two
//! wakers. It replaces the logic actor's actix mailbox for frames because the profile of
//! the echo hot path (64 connections x 16 pipelined 64-byte frames) put about a tenth of
//! getty's own time in that mailbox: per batch, boxed allocations (the envelope and the
//! queue node), several locked atomics and a dynamic dispatch, on a path that never
//! crosses a thread. Measured in-process (`cargo bench --bench hot_path --
//! session_in_memory`, 16 pipelined frames), the switch took 2.5 % off a round trip.
//! The logic actor polls the queue in the same item of its context that then writes the
//! replies out, so a batch costs one wake-up and one poll of the logic actor.
//! Writes from [`Session`](super::Session) handles, which may come from any thread, use
//! the hand-over queue (`super::handoff`) instead.

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll, Waker};

use futures::Stream;

use super::messages::Inbound;

/// A new read queue holding at most `capacity` items (at least 1) before the sender waits.
pub(crate) fn read_queue<T>(capacity: usize) -> (InboxSender<T>, Inbox<T>) {
    let shared = Rc::new(RefCell::new(Shared {
        items: VecDeque::new(),
        capacity: capacity.max(1),
        receiver_waker: None,
        receiver_waiting: false,
        sender_waker: None,
        sender_alive: true,
        receiver_alive: true,
    }));
    (
        InboxSender {
            shared: shared.clone(),
        },
        Inbox { shared },
    )
}

struct Shared<T> {
    items: VecDeque<Inbound<T>>,
    capacity: usize,
    /// The logic actor's task. Kept after a wake-up: the task is the same from one
    /// batch to the next, so it is not cloned (two atomic reference counts) per batch.
    receiver_waker: Option<Waker>,
    /// The logic actor found the queue empty and waits to be woken.
    receiver_waiting: bool,
    /// The reader's task, waiting for room.
    sender_waker: Option<Waker>,
    sender_alive: bool,
    receiver_alive: bool,
}

impl<T> Shared<T> {
    fn push(&mut self, item: Inbound<T>) {
        self.items.push_back(item);
        self.wake_receiver();
    }

    fn wake_receiver(&mut self) {
        if std::mem::take(&mut self.receiver_waiting) {
            if let Some(waker) = &self.receiver_waker {
                waker.wake_by_ref();
            }
        }
    }
}

/// Why an item was not queued (a full queue gives it back).
pub(crate) enum TrySendError<T> {
    /// The queue holds `capacity` items: wait for room with [`InboxSender::send`].
    Full(Inbound<T>),
    /// The logic actor is gone (the item is dropped: nobody would deliver it).
    Closed,
}

/// The logic actor is gone: nothing will take items any more.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Closed;

/// The reader's end of the read queue (one per session; not `Send`, like the actors).
pub(crate) struct InboxSender<T> {
    shared: Rc<RefCell<Shared<T>>>,
}

impl<T> InboxSender<T> {
    /// Queues `item` if there is room.
    pub(crate) fn try_send(&self, item: Inbound<T>) -> Result<(), TrySendError<T>> {
        let mut shared = self.shared.borrow_mut();
        if !shared.receiver_alive {
            return Err(TrySendError::Closed);
        }
        if shared.items.len() >= shared.capacity {
            return Err(TrySendError::Full(item));
        }
        shared.push(item);
        Ok(())
    }

    /// Queues `item` past the bound: only for the one last item of a reader (its EOF or
    /// error) when it cannot wait, so the queue grows by one at most.
    pub(crate) fn send_last(&self, item: Inbound<T>) {
        let mut shared = self.shared.borrow_mut();
        if shared.receiver_alive {
            shared.push(item);
        }
    }

    /// Waits for room, then queues `item`; fails if the logic actor went away meanwhile.
    pub(crate) fn send(&self, item: Inbound<T>) -> impl Future<Output = Result<(), Closed>> {
        let shared = self.shared.clone();
        let mut item = Some(item);
        futures::future::poll_fn(move |cx| {
            std::task::ready!(poll_room(&shared, cx))?;
            if let Some(item) = item.take() {
                shared.borrow_mut().push(item);
            }
            Poll::Ready(Ok(()))
        })
    }
}

/// Ready once the queue has room for an item, or with [`Closed`]; else the sender's task
/// is woken when the logic actor takes an item from the full queue.
fn poll_room<T>(shared: &RefCell<Shared<T>>, cx: &mut Context<'_>) -> Poll<Result<(), Closed>> {
    let mut shared = shared.borrow_mut();
    if !shared.receiver_alive {
        return Poll::Ready(Err(Closed));
    }
    if shared.items.len() < shared.capacity {
        return Poll::Ready(Ok(()));
    }
    shared.sender_waker = Some(cx.waker().clone());
    Poll::Pending
}

impl<T> Drop for InboxSender<T> {
    fn drop(&mut self) {
        let mut shared = self.shared.borrow_mut();
        shared.sender_alive = false;
        shared.wake_receiver();
    }
}

/// The logic actor's end of the read queue: a stream of the reader's items, in order,
/// that ends once the reader is gone and everything it queued was taken.
pub(crate) struct Inbox<T> {
    shared: Rc<RefCell<Shared<T>>>,
}

impl<T> Stream for Inbox<T> {
    type Item = Inbound<T>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Inbound<T>>> {
        let mut shared = self.shared.borrow_mut();
        let was_full = shared.items.len() >= shared.capacity;
        match shared.items.pop_front() {
            Some(item) => {
                if was_full {
                    if let Some(waker) = shared.sender_waker.take() {
                        waker.wake();
                    }
                }
                Poll::Ready(Some(item))
            }
            None if !shared.sender_alive => Poll::Ready(None),
            None => {
                match &shared.receiver_waker {
                    Some(waker) if waker.will_wake(cx.waker()) => {}
                    _ => shared.receiver_waker = Some(cx.waker().clone()),
                }
                shared.receiver_waiting = true;
                Poll::Pending
            }
        }
    }
}

impl<T> Drop for Inbox<T> {
    fn drop(&mut self) {
        let mut shared = self.shared.borrow_mut();
        shared.receiver_alive = false;
        // Frames nobody will deliver; the reader learns through `Closed` and stops.
        shared.items.clear();
        if let Some(waker) = shared.sender_waker.take() {
            waker.wake();
        }
    }
}

/// Emptied batch vectors going back from the logic actor to the reader, so that a busy
/// session allocates no vector per batch (the profile showed malloc and free of each
/// batch's vector next to the queue itself). Holds at most one vector.
pub(crate) struct BatchPool<T>(Rc<Cell<Option<Vec<T>>>>);

/// Vectors with room for more frames than this are not kept for reuse.
const MAX_POOLED_BATCH: usize = 1024;

impl<T> BatchPool<T> {
    /// An empty pool.
    pub(crate) fn new() -> Self {
        BatchPool(Rc::new(Cell::new(None)))
    }

    /// A vector for the next batch: the one given back last, or a new one with room for
    /// `hint` frames.
    pub(crate) fn take(&self, hint: usize) -> Vec<T> {
        self.0.take().unwrap_or_else(|| Vec::with_capacity(hint))
    }

    /// Takes back a batch whose frames were handed on (any left are dropped).
    pub(crate) fn give(&self, mut batch: Vec<T>) {
        batch.clear();
        if batch.capacity() > 0 && batch.capacity() <= MAX_POOLED_BATCH {
            self.0.set(Some(batch));
        }
    }
}

impl<T> Clone for BatchPool<T> {
    fn clone(&self) -> Self {
        BatchPool(self.0.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::task::noop_waker_ref;
    use futures::StreamExt;

    fn frames(n: u32) -> Inbound<u32> {
        Inbound::Frames(vec![n], 0)
    }

    fn frame_of(item: Option<Inbound<u32>>) -> Option<u32> {
        match item {
            Some(Inbound::Frames(v, _)) => v.first().copied(),
            _ => None,
        }
    }

    #[test]
    fn bounded_in_order_and_wakes_the_waiting_sender() {
        let (tx, mut rx) = read_queue::<u32>(2);
        let mut cx = Context::from_waker(noop_waker_ref());
        assert!(tx.try_send(frames(1)).is_ok());
        assert!(tx.try_send(frames(2)).is_ok());
        assert!(matches!(tx.try_send(frames(3)), Err(TrySendError::Full(_))));
        let mut waiting = Box::pin(tx.send(frames(3)));
        assert!(waiting.as_mut().poll(&mut cx).is_pending());
        assert_eq!(frame_of(futures::executor::block_on(rx.next())), Some(1));
        assert_eq!(waiting.as_mut().poll(&mut cx), Poll::Ready(Ok(())));
        assert_eq!(frame_of(futures::executor::block_on(rx.next())), Some(2));
        assert_eq!(frame_of(futures::executor::block_on(rx.next())), Some(3));
        assert!(rx.poll_next_unpin(&mut cx).is_pending());
    }

    #[test]
    fn the_receiver_is_woken_once_per_wait_and_when_the_sender_goes() {
        use std::sync::atomic::{AtomicUsize, Ordering};
        use std::sync::Arc;
        struct Count(AtomicUsize);
        impl futures::task::ArcWake for Count {
            fn wake_by_ref(me: &Arc<Self>) {
                me.0.fetch_add(1, Ordering::SeqCst);
            }
        }
        let count = Arc::new(Count(AtomicUsize::new(0)));
        let waker = futures::task::waker(count.clone());
        let mut cx = Context::from_waker(&waker);
        let woken = || count.0.load(Ordering::SeqCst);
        let (tx, mut rx) = read_queue::<u32>(4);
        assert!(rx.poll_next_unpin(&mut cx).is_pending());
        assert!(tx.try_send(frames(1)).is_ok());
        assert_eq!(woken(), 1);
        assert!(tx.try_send(frames(2)).is_ok());
        assert_eq!(woken(), 1, "not waiting any more: no second wake");
        assert_eq!(
            frame_of(match rx.poll_next_unpin(&mut cx) {
                Poll::Ready(i) => i,
                Poll::Pending => None,
            }),
            Some(1)
        );
        assert_eq!(
            frame_of(match rx.poll_next_unpin(&mut cx) {
                Poll::Ready(i) => i,
                Poll::Pending => None,
            }),
            Some(2)
        );
        assert!(rx.poll_next_unpin(&mut cx).is_pending());
        drop(tx);
        assert_eq!(woken(), 2);
        assert!(matches!(rx.poll_next_unpin(&mut cx), Poll::Ready(None)));
    }

    #[test]
    fn batch_pool_hands_back_the_emptied_vector() {
        let pool = BatchPool::<u32>::new();
        let mut batch = pool.take(8);
        assert!(batch.capacity() >= 8);
        batch.extend([1, 2, 3]);
        let ptr = batch.as_ptr();
        pool.give(batch);
        let again = pool.take(1);
        assert!(again.is_empty());
        assert_eq!(again.as_ptr(), ptr);
        pool.give(Vec::with_capacity(MAX_POOLED_BATCH + 1));
        assert_eq!(pool.take(0).capacity(), 0, "oversized vectors are not kept");
    }

    #[test]
    fn last_item_goes_past_the_bound_and_the_stream_ends_after_it() {
        let (tx, mut rx) = read_queue::<u32>(1);
        assert!(tx.try_send(frames(1)).is_ok());
        tx.send_last(Inbound::Eof);
        drop(tx);
        assert_eq!(frame_of(futures::executor::block_on(rx.next())), Some(1));
        let eof = futures::executor::block_on(rx.next());
        assert!(matches!(eof, Some(Inbound::Eof)));
        assert!(futures::executor::block_on(rx.next()).is_none());
    }

    #[test]
    fn a_gone_receiver_closes_the_sender_and_drops_what_waited() {
        let (tx, rx) = read_queue::<u32>(4);
        assert!(tx.try_send(frames(1)).is_ok());
        drop(rx);
        assert!(matches!(tx.try_send(frames(2)), Err(TrySendError::Closed)));
        let sent = futures::executor::block_on(tx.send(frames(3)));
        assert_eq!(sent, Err(Closed));
    }
}

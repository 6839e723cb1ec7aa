//! The read queue: a bounded queue of [`Inbound`] items from a session's reader actor to
//! its logic actor.
//!
//! Both actors run on the same arbiter, so the queue is a plain `Rc<RefCell<..>>` with two
//! wakers. It replaces the logic actor's actix mailbox for frames because the profile of
//! the echo hot path (64 connections x 16 pipelined 64-byte frames) put a fifth of
//! getty's own time in that mailbox: per batch, two boxed allocations (the envelope and
//! the queue node), several locked atomics and a dynamic dispatch, on a path that never
//! crosses a thread. The logic actor polls the queue as a stream of its context, so a
//! batch still costs one wake-up and one poll of the logic actor, as a message did.
//! Commands from [`Session`](super::Session) handles, which may come from any thread,
//! still use the mailbox.

use std::cell::RefCell;
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
    /// The logic actor's task, waiting for an item.
    receiver_waker: Option<Waker>,
    /// The reader's task, waiting for room.
    sender_waker: Option<Waker>,
    sender_alive: bool,
    receiver_alive: bool,
}

impl<T> Shared<T> {
    fn push(&mut self, item: Inbound<T>) {
        self.items.push_back(item);
        if let Some(waker) = self.receiver_waker.take() {
            waker.wake();
        }
    }
}

/// Why an item was not queued; the item comes back.
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
        if let Some(waker) = shared.receiver_waker.take() {
            waker.wake();
        }
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
                shared.receiver_waker = Some(cx.waker().clone());
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

#[cfg(test)]
mod tests {
    use super::*;
    use futures::task::noop_waker_ref;
    use futures::StreamExt;

    fn frames(n: u32) -> Inbound<u32> {
        Inbound::Frames(vec![n])
    }

    fn frame_of(item: Option<Inbound<u32>>) -> Option<u32> {
        match item {
            Some(Inbound::Frames(v)) => v.first().copied(),
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

//! The thread's pool of idle write buffers: a session gives its write buffer back as
//! soon as everything in it is written, and takes one again when it queues, so a
//! session with nothing to write holds no buffer.

use std::cell::RefCell;

use bytes::BytesMut;

/// Emptied write buffers kept per thread (at most this many, each at most
/// [`POOLED_BUFFER_MAX`] bytes) for the next session on the thread that has bytes to queue.
pub(super) const POOLED_BUFFERS: usize = 4;
/// The largest buffer the pool keeps; a larger one is freed.
pub(super) const POOLED_BUFFER_MAX: usize = 256 * 1024;

thread_local! {
    /// A session gives its write buffer back here as soon as everything in it is written,
    /// and takes the most recently given one when it queues again. So a session with
    /// nothing to write holds no buffer, and the sessions of one arbiter take turns with
    /// a few buffers that stay in the core's cache instead of each keeping its own: under
    /// bulk load, 16 sessions' 64 KiB buffers had been more than the cache holds.
    pub(super) static IDLE_BUFFERS: RefCell<Vec<BytesMut>> = const { RefCell::new(Vec::new()) };
}

/// A write buffer from this thread's pool, or a new empty one.
pub(super) fn take_buffer() -> BytesMut {
    let pooled = IDLE_BUFFERS.try_with(|pool| pool.borrow_mut().pop());
    pooled.ok().flatten().unwrap_or_default()
}

/// Gives an empty write buffer back to this thread's pool (or frees it).
/// `start_moved`: bytes were taken off the buffer's front, so its start is no longer
/// the start of its allocation.
pub(super) fn give_buffer(mut buf: BytesMut, start_moved: bool) {
    buf.clear();
    if start_moved {
        // Written bytes left their room before the start; this takes it back, so the
        // capacity shows the whole allocation. It moves no bytes: the buffer is empty.
        let _whole = buf.try_reclaim(1);
    }
    if buf.capacity() == 0 || buf.capacity() > POOLED_BUFFER_MAX {
        return;
    }
    let _ = IDLE_BUFFERS.try_with(|pool| {
        let mut pool = pool.borrow_mut();
        if pool.len() < POOLED_BUFFERS {
            pool.push(buf);
        }
    });
}

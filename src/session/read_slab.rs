//! The read slab: room that the sessions of a thread which hold no read buffer read
//! into, so that an idle session holds no read memory of its own.
//!
//! Each read takes the bytes it got off the slab's front, so the frames of many sessions
//! share one allocation, and a session between reads holds nothing (its 2 KiB chunk was
//! a third of an idle connection's memory). The slab is renewed every [`SLAB_SIZE`]
//! bytes or so: one allocation per many small reads instead of a chunk per session. A
//! frame the application keeps keeps its slab allocated, as it would its chunk.

use std::cell::RefCell;

use bytes::BytesMut;

/// Size of a thread's shared read slab.
const SLAB_SIZE: usize = 16 * 1024;

thread_local! {
    /// This thread's slab (see the module docs).
    static READ_SLAB: RefCell<BytesMut> = RefCell::new(BytesMut::new());
}

/// Lends the thread's slab to `buf`, an empty buffer with no allocation, for one read:
/// the two handles change places (moving handles costs no reference counting);
/// [`give_back`] undoes it. A slab with less than `min_room` left is renewed first: in
/// place when no frame read into it is alive any more, else with a new allocation (the
/// old one goes with its last frame).
///
/// Generic over the type of the reader that calls it only so that each kind of reader
/// has a copy of its own: with one caller each, the compiler folds the thread-local
/// access into the read path. One copy shared by every reader type was left a call,
/// which cost about 1 % more instructions per frame at one frame per read.
#[inline]
#[allow(clippy::extra_unused_type_parameters)] // one copy per reader type: see above
pub(super) fn lend<Reader>(buf: &mut BytesMut, min_room: usize) {
    READ_SLAB.with(|slab| {
        let mut slab = slab.borrow_mut();
        if slab.capacity() < min_room && !slab.try_reclaim(SLAB_SIZE) {
            *slab = BytesMut::with_capacity(SLAB_SIZE);
        }
        std::mem::swap(buf, &mut *slab);
    });
}

/// Gives the slab lent to `buf` by [`lend`] back, after the read into it and the
/// decoding of what it got. A part of a frame left stays in `buf`, without the room
/// after it, so the session's next read makes room of its own size and reads no further
/// ahead than before. Generic over the reader's type like [`lend`].
#[inline]
#[allow(clippy::extra_unused_type_parameters)] // one copy per reader type, as for `lend`
pub(super) fn give_back<Reader>(buf: &mut BytesMut) {
    READ_SLAB.with(|slab| {
        let mut slab = slab.borrow_mut();
        if buf.is_empty() {
            // Our own handle, empty, comes back from the slab's place.
            std::mem::swap(buf, &mut *slab);
        } else {
            *slab = buf.split_off(buf.len());
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    // Each test runs on a thread of its own, so each sees its own slab.
    #[test]
    fn reads_share_the_slab_and_keep_only_their_bytes() {
        let mut first = BytesMut::new();
        lend::<()>(&mut first, 2048);
        assert_eq!(first.capacity(), SLAB_SIZE, "a new slab for the first read");
        first.extend_from_slice(b"whole frame");
        let frame = first.split().freeze();
        give_back::<()>(&mut first);
        assert_eq!(first.capacity(), 0, "nothing held between reads");
        let mut second = BytesMut::new();
        lend::<()>(&mut second, 2048);
        assert_eq!(
            second.as_ptr(),
            frame.as_ptr().wrapping_add(frame.len()),
            "the next read goes on where the last one stopped"
        );
        give_back::<()>(&mut second);
        assert_eq!(&frame[..], b"whole frame");
    }

    #[test]
    fn a_partial_frame_stays_with_its_session_without_the_room_after_it() {
        let mut buf = BytesMut::new();
        lend::<()>(&mut buf, 2048);
        buf.extend_from_slice(b"part");
        give_back::<()>(&mut buf);
        assert_eq!(&buf[..], b"part");
        assert_eq!(buf.capacity(), 4, "the slab's room stays with the slab");
        READ_SLAB.with(|slab| assert_eq!(slab.borrow().capacity(), SLAB_SIZE - 4));
    }

    #[test]
    fn a_slab_short_of_room_is_renewed() {
        let mut buf = BytesMut::new();
        lend::<()>(&mut buf, 2048);
        buf.extend_from_slice(&[1; SLAB_SIZE - 100]);
        let kept = buf.split().freeze();
        give_back::<()>(&mut buf);
        let mut next = BytesMut::new();
        lend::<()>(&mut next, 2048);
        assert!(
            next.capacity() >= 2048,
            "fresh room, not the 100 bytes left"
        );
        assert!(
            kept.iter().all(|b| *b == 1),
            "a kept frame is not overwritten"
        );
        give_back::<()>(&mut next);
    }
}

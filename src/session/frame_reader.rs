//! Reading and decoding: a byte stream in, batches of frames out, with the read buffer
//! bounded by the session's max frame length.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::{BufMut, BytesMut};
use futures::Stream;
use tokio::io::AsyncRead;
use tokio_util::codec::Decoder;

use super::decode::decode_available;
use super::read_slab;
use crate::error::BoxError;
use crate::session::{BatchPool, SessionShared};
use crate::Error;

/// Room made in the read buffer when it is full: 2 KiB to start with and while reads are
/// small, doubling up to 64 KiB while reads fill it. (A session reads into its thread's
/// shared slab instead while it holds no bytes and reads little; see `super::read_slab`.)
/// Big chunks matter for bulk traffic: decoded frames share their chunk's allocation, so
/// a chunk that holds several frames means one allocation (and no fresh page faults) per
/// several frames instead of one per frame. Measured with the yardstick: starting at
/// 8 KiB cost 8.3 KB of RSS per idle connection, 2 KiB 6.2 KB, with the same small-frame
/// throughput and no loss in bulk.
const MIN_READ_CHUNK: usize = 2 * 1024;
const MAX_READ_CHUNK: usize = 64 * 1024;

/// Bytes one batch may gather over several reads before it goes to the logic actor.
const MAX_BATCH_BYTES: usize = 64 * 1024;
/// Cap on the room a new batch starts with, whatever the last one held.
const MAX_BATCH_HINT: usize = 1024;

/// One item of a [`FrameReader`]: the frames of one read, or the error that ended it.
pub(crate) type Batch<D> = Result<Vec<<D as Decoder>::Item>, Error>;

/// A stream of frame batches read from `io`: each item holds every frame that one read
/// completed, so the hop to the logic actor costs once per read, not once per frame.
///
/// Ends after the peer's EOF (once the decoder's `decode_eof` is done) or after the first
/// error, which is yielded as the last item.
pub(crate) struct FrameReader<D: Decoder, R> {
    io: R,
    decoder: D,
    buf: BytesMut,
    bound: usize,
    shared: Arc<SessionShared>,
    /// An error found while a batch was still owed; yielded after it.
    failed: Option<Error>,
    done: bool,
    /// Current size of the room made per full buffer (see [`MIN_READ_CHUNK`]).
    read_chunk: usize,
    /// Where batch vectors come from: the logic actor gives each back once delivered.
    batches: BatchPool<D::Item>,
    /// Frames in the last batch: a new batch vector starts with room for as many, so it
    /// is allocated once instead of growing (and reallocating) frame by frame.
    batch_hint: usize,
    /// The chunk the buffer left when it last needed a new one, to move back to once
    /// the frames read into it are gone (see [`make_room`](Self::make_room)).
    spare: Option<BytesMut>,
    /// `buf` is the thread's read slab, lent for one read (see `super::read_slab`).
    on_slab: bool,
}

impl<D: Decoder, R> FrameReader<D, R> {
    /// A reader of `io` decoding with `decoder`, for the session with state `shared`,
    /// taking its batch vectors from `batches`.
    pub(crate) fn new(
        io: R,
        decoder: D,
        shared: Arc<SessionShared>,
        batches: BatchPool<D::Item>,
    ) -> Self {
        FrameReader {
            io,
            decoder,
            buf: BytesMut::new(),
            bound: shared.config.read_buffer_bound(),
            shared,
            failed: None,
            done: false,
            read_chunk: MIN_READ_CHUNK,
            batches,
            batch_hint: 0,
            spare: None,
            on_slab: false,
        }
    }
}

// No field is structurally pinned: the stream only ever uses `&mut` to them.
impl<D: Decoder, R> Unpin for FrameReader<D, R> {}

impl<D, R> FrameReader<D, R>
where
    D: Decoder<Error: Into<BoxError>>,
{
    /// Turns what was decoded and what failed into the next item.
    fn emit(
        &mut self,
        batch: Vec<D::Item>,
        result: Result<(), Error>,
    ) -> Option<Poll<Option<Batch<D>>>> {
        if let Err(err) = result {
            self.done = true;
            if batch.is_empty() {
                return Some(Poll::Ready(Some(Err(err))));
            }
            self.failed = Some(err);
        }
        if batch.is_empty() {
            self.batches.give(batch);
            return None;
        }
        self.shared.note_forwarded(self.buf.len());
        self.shared.note_frames(batch.len());
        self.batch_hint = batch.len().min(MAX_BATCH_HINT);
        Some(Poll::Ready(Some(Ok(batch))))
    }

    /// Makes room in the full read buffer for the next read.
    ///
    /// Decoded frames share the chunk they were read into, so while they live the chunk
    /// cannot be reused, and growing the buffer then means a new chunk. Left to the
    /// allocator, bulk traffic freed one 64 KiB chunk and allocated another per burst,
    /// and glibc gave the freed memory back to the OS each time and faulted fresh pages
    /// in for the next (3,600 `brk` calls per second; the yardstick's bulk echo ran 29 %
    /// faster with trimming turned off). So the reader keeps the chunk it left as a spare
    /// and moves to it once the frames read into it are gone: two chunks take turns.
    /// A partial frame at the end of the buffer is copied to the new chunk either way.
    fn make_room(&mut self) {
        let want = self.read_chunk;
        // The chunk is ours alone again: reuse it in place.
        if self.buf.try_reclaim(want) {
            return;
        }
        let len = self.buf.len();
        let spare = (self.spare.take())
            .and_then(|mut spare| spare.try_reclaim(len + want).then_some(spare));
        // Doubling at least, so a frame longer than a chunk is copied O(1) times per
        // byte as it arrives.
        let mut next = spare.unwrap_or_else(|| BytesMut::with_capacity((len + want).max(2 * len)));
        next.extend_from_slice(&self.buf);
        self.buf.clear();
        let left = std::mem::replace(&mut self.buf, next);
        // Sessions with small reads keep no spare (idle ones hold one small chunk).
        if self.read_chunk > MIN_READ_CHUNK {
            self.spare = Some(left);
        }
    }

    /// Tells the endpoint's memory budget what the read buffers take.
    fn report_buffers(&self) {
        let spare = self.spare.as_ref().map_or(0, BytesMut::capacity);
        self.shared.note_reader_buffers(self.buf.capacity() + spare);
    }

    /// Decodes what the peer left before its EOF onto `batch`.
    fn decode_eof(&mut self, batch: &mut Vec<D::Item>) -> Result<(), Error> {
        while let Some(frame) = self
            .decoder
            .decode_eof(&mut self.buf)
            .map_err(Error::from_decode)?
        {
            batch.push(frame);
        }
        Ok(())
    }
}

impl<D, R> FrameReader<D, R>
where
    D: Decoder<Error: Into<BoxError>>,
    R: AsyncRead + Unpin,
{
    /// After a read into the thread's slab and the decoding of what it got: gives the
    /// slab's room back (see [`read_slab::give_back`]); a part of a frame left then
    /// makes room of its own size (see `make_room`) for the next read.
    fn give_back_slab(&mut self) {
        if std::mem::take(&mut self.on_slab) {
            read_slab::give_back::<Self>(&mut self.buf);
        }
    }

    /// Reads what the socket has; returns the result and the room the read had.
    ///
    /// A session that holds no bytes and reads little (an idle one above all) holds no
    /// read buffer: it reads into its thread's shared read slab and keeps only the bytes
    /// it got, which share the slab's allocation (see `super::read_slab`). Once a read leaves
    /// part of a frame, or fills the room it had, the session reads into a chunk of its
    /// own, as before.
    fn poll_read(&mut self, cx: &mut Context<'_>) -> (Poll<std::io::Result<usize>>, usize) {
        if self.buf.capacity() == 0 && self.read_chunk <= MIN_READ_CHUNK {
            // The slab and our empty buffer change places for this read;
            // `give_back_slab` undoes it.
            read_slab::lend::<Self>(&mut self.buf, MIN_READ_CHUNK);
            // No more than the session's own chunk would take: the slab's room is shared,
            // not a licence to read further ahead of a session's frames.
            let room = self.buf.capacity().min(self.read_chunk);
            let mut limited = (&mut self.buf).limit(room);
            let read = tokio_util::io::poll_read_buf(Pin::new(&mut self.io), cx, &mut limited);
            self.on_slab = true;
            if !matches!(read, Poll::Ready(Ok(n)) if n > 0) {
                self.give_back_slab();
            }
            return (read, room);
        }
        if self.buf.capacity() == self.buf.len() {
            self.make_room();
            self.report_buffers();
        }
        let room = self.buf.capacity() - self.buf.len();
        let read = tokio_util::io::poll_read_buf(Pin::new(&mut self.io), cx, &mut self.buf);
        (read, room)
    }
}

impl<D, R> Stream for FrameReader<D, R>
where
    D: Decoder<Error: Into<BoxError>>,
    R: AsyncRead + Unpin,
{
    type Item = Batch<D>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        if let Some(err) = this.failed.take() {
            return Poll::Ready(Some(Err(err)));
        }
        if this.done {
            return Poll::Ready(None);
        }
        let mut batch = Vec::new();
        let mut batch_bytes = 0;
        loop {
            // The write queue is full: read no more until it drains (TCP flow control
            // then slows the peer), so replies cannot pile up without bound.
            if this.read_chunk > MIN_READ_CHUNK && this.shared.budget_spent() {
                // The endpoint's memory budget is spent: read in small chunks and keep
                // no spare, so each session holds as little as reading needs.
                this.read_chunk = MIN_READ_CHUNK;
                this.spare = None;
                this.report_buffers();
            }
            if this.shared.poll_read_allowed(cx).is_pending() {
                return this.emit(batch, Ok(())).unwrap_or(Poll::Pending);
            }
            let (read, spare) = this.poll_read(cx);
            let n = match read {
                Poll::Pending => return this.emit(batch, Ok(())).unwrap_or(Poll::Pending),
                Poll::Ready(Ok(n)) => n,
                Poll::Ready(Err(err)) => {
                    let err = Error::from(err);
                    return this.emit(batch, Err(err)).unwrap_or(Poll::Ready(None));
                }
            };
            if n == 0 {
                this.done = true;
                let result = this.decode_eof(&mut batch);
                return this.emit(batch, result).unwrap_or(Poll::Ready(None));
            }
            this.shared.note_read(n);
            this.read_chunk = if n == spare {
                (this.read_chunk * 2)
                    .min(this.shared.max_read_chunk(MIN_READ_CHUNK, MAX_READ_CHUNK))
            } else if n < this.read_chunk / 4 {
                if this.read_chunk / 2 <= MIN_READ_CHUNK {
                    this.spare = None;
                }
                (this.read_chunk / 2).max(MIN_READ_CHUNK)
            } else {
                this.read_chunk
            };
            if batch.capacity() == 0 {
                batch = this.batches.take(this.batch_hint);
            }
            let result = decode_available(&mut this.decoder, &mut this.buf, this.bound, &mut batch);
            this.give_back_slab();
            batch_bytes += n;
            // A read that filled the buffer suggests more is waiting: read again now, so
            // a burst becomes one batch (one actor hop, one write of the replies). Stop
            // at a budget so one busy peer cannot hold the arbiter.
            let batch_limit = this.shared.max_read_chunk(MIN_READ_CHUNK, MAX_BATCH_BYTES);
            let more_waiting = n == spare && batch_bytes < batch_limit;
            if result.is_err() || !more_waiting {
                if let Some(poll) = this.emit(batch, result) {
                    return poll;
                }
                batch = Vec::new();
                batch_bytes = 0;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::LengthDelimited;

    fn reader_over<R>(io: R, max_frame: usize) -> FrameReader<LengthDelimited, R> {
        use crate::session::SessionSetup;
        use crate::transport::Address;
        use crate::SessionId;
        let config = crate::SessionConfig {
            max_frame_length: max_frame,
            ..Default::default()
        };
        let here = Address::Other("here".into());
        let there = Address::Other("there".into());
        let setup = SessionSetup::new(SessionId::of(1), "test", here, there, config);
        let codec = LengthDelimited::with_max_frame_length(max_frame);
        FrameReader::new(io, codec, SessionShared::new(setup), BatchPool::new())
    }

    /// Fills the rest of the reader's buffer, then splits off all but `keep` bytes of it
    /// as if they were decoded frames, and returns them.
    fn fill_and_split(reader: &mut FrameReader<LengthDelimited, &[u8]>, keep: usize) -> BytesMut {
        let room = reader.buf.capacity() - reader.buf.len();
        reader.buf.extend_from_slice(&vec![7u8; room]);
        let frames = reader.buf.len() - keep;
        reader.buf.split_to(frames)
    }

    #[test]
    fn a_reader_between_whole_frames_holds_no_buffer() {
        use futures::task::noop_waker_ref;
        use futures::StreamExt;
        use std::future::Future;
        use tokio::io::AsyncWriteExt;
        let (mut peer, io) = tokio::io::duplex(1024);
        let mut reader = reader_over(io, 1024);
        let mut cx = Context::from_waker(noop_waker_ref());
        let mut send = |bytes: &'static [u8]| {
            let mut cx = Context::from_waker(noop_waker_ref());
            assert!(Box::pin(peer.write_all(bytes))
                .as_mut()
                .poll(&mut cx)
                .is_ready());
        };
        // Nothing sent yet: the read finds nothing, and the reader holds no buffer.
        assert!(reader.poll_next_unpin(&mut cx).is_pending());
        assert_eq!(reader.buf.capacity(), 0);
        // Two whole frames: decoded, and still nothing held between reads.
        send(b"\0\0\0\x02hi\0\0\0\x02yo");
        let Poll::Ready(Some(Ok(batch))) = reader.poll_next_unpin(&mut cx) else {
            panic!("one batch");
        };
        assert_eq!(batch, [&b"hi"[..], &b"yo"[..]]);
        assert_eq!(reader.buf.capacity(), 0);
        assert!(reader.poll_next_unpin(&mut cx).is_pending());
        assert_eq!(reader.buf.capacity(), 0);
        // Kept while the next reads share the slab.
        let first = batch;
        // Part of a frame: the reader keeps it, in a buffer of its own, for the rest.
        send(b"\0\0\0\x05hel");
        assert!(reader.poll_next_unpin(&mut cx).is_pending());
        assert!(!reader.buf.is_empty());
        send(b"lo");
        let Poll::Ready(Some(Ok(batch))) = reader.poll_next_unpin(&mut cx) else {
            panic!("the rest of the frame");
        };
        assert_eq!(batch, [&b"hello"[..]]);
        assert!(reader.poll_next_unpin(&mut cx).is_pending());
        // The frames read first are intact: the shared room was not written over.
        assert_eq!(first, [&b"hi"[..], &b"yo"[..]]);
    }

    #[test]
    fn two_read_chunks_take_turns_once_their_frames_are_gone() {
        let mut reader = reader_over(&b""[..], 64 * 1024);
        reader.read_chunk = 16 * 1024;
        reader.make_room();
        let first_chunk = reader.buf.as_ptr();
        // Frames from the first chunk are still alive: the reader must move to a new one
        // and keep the partial frame.
        let held = fill_and_split(&mut reader, 10);
        reader.make_room();
        assert_ne!(reader.buf.as_ptr(), first_chunk);
        assert_eq!(&reader.buf[..], &[7u8; 10][..]);
        assert!(reader.buf.capacity() >= 10 + 16 * 1024);
        // Its frames are gone now, so the next move goes back to the first chunk.
        drop(held);
        let _held_too = fill_and_split(&mut reader, 3);
        reader.make_room();
        assert_eq!(reader.buf.as_ptr(), first_chunk);
        assert_eq!(&reader.buf[..], &[7u8; 3][..]);
    }

    #[test]
    fn a_chunk_whose_frames_are_kept_is_not_reused() {
        let mut reader = reader_over(&b""[..], 64 * 1024);
        reader.read_chunk = 16 * 1024;
        reader.make_room();
        let first_chunk = reader.buf.as_ptr();
        let kept = fill_and_split(&mut reader, 5);
        reader.make_room();
        let _kept_too = fill_and_split(&mut reader, 5);
        reader.make_room();
        assert_ne!(reader.buf.as_ptr(), first_chunk);
        assert!(
            kept.iter().all(|b| *b == 7),
            "a kept frame must not be overwritten"
        );
        assert_eq!(&reader.buf[..], &[7u8; 5][..]);
    }

    #[test]
    fn small_reads_keep_no_spare_chunk() {
        let mut reader = reader_over(&b""[..], 64 * 1024);
        reader.make_room();
        let _held = fill_and_split(&mut reader, 1);
        reader.make_room();
        assert!(reader.spare.is_none());
    }

    /// Frames shorter and far longer than a read chunk, read through chunk changes while
    /// earlier frames are still held, come out whole and in order.
    #[test]
    fn frames_of_every_size_survive_chunk_changes() {
        use bytes::BufMut;
        let sizes = [0usize, 3, 100_000, 5, 70_000, 65_536, 1, 200_000, 17, 2048];
        let mut wire = Vec::new();
        for (i, &size) in sizes.iter().enumerate() {
            wire.put_u32(size as u32);
            wire.extend((0..size).map(|j| (i * 31 + j) as u8));
        }
        let mut reader = reader_over(&wire[..], 256 * 1024);
        let waker = futures::task::noop_waker();
        let mut cx = Context::from_waker(&waker);
        let mut frames = Vec::new();
        for _ in 0..1000 {
            match Pin::new(&mut reader).poll_next(&mut cx) {
                Poll::Ready(Some(Ok(batch))) => frames.extend(batch),
                Poll::Ready(Some(Err(err))) => panic!("read failed: {err}"),
                Poll::Ready(None) => break,
                Poll::Pending => panic!("an in-memory reader never waits"),
            }
        }
        assert_eq!(frames.len(), sizes.len());
        for (i, (frame, &size)) in frames.iter().zip(&sizes).enumerate() {
            assert_eq!(frame.len(), size);
            assert!(frame
                .iter()
                .enumerate()
                .all(|(j, b)| *b == (i * 31 + j) as u8));
        }
    }
}

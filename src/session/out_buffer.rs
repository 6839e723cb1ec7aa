//! The write queue of one session: encoded bytes waiting for the socket, bounded by a
//! high-water mark, with the writes waiting to hear that their bytes left.
//!
//! Socket-free, so its rules are unit-tested here; the logic actor moves its bytes.

use std::collections::VecDeque;

use bytes::{Buf, BytesMut};
use tokio::sync::oneshot;
use tokio_util::codec::Encoder;

use crate::error::{BoxError, Error, Result, SessionId};

pub(crate) struct OutBuffer<C> {
    codec: C,
    buf: BytesMut,
    high_water: usize,
    low_water: usize,
    writable: bool,
    accepting: bool,
    /// Bytes ever queued and ever written; their difference is `buf.len()`.
    queued_total: u64,
    written_total: u64,
    /// Writers waiting for every byte up to a position to be written.
    acks: VecDeque<(u64, oneshot::Sender<Result<()>>)>,
    /// For a message transport (datagrams, WebSocket messages): where each queued
    /// message ends, as a position in `queued_total`. `None` for a byte stream, whose
    /// frames may share a write.
    message_ends: Option<VecDeque<u64>>,
    id: SessionId,
}

impl<C> OutBuffer<C> {
    pub(crate) fn new(codec: C, id: SessionId, high_water: usize, low_water: usize) -> Self {
        OutBuffer {
            codec,
            buf: BytesMut::new(),
            high_water,
            low_water,
            writable: true,
            accepting: true,
            queued_total: 0,
            written_total: 0,
            acks: VecDeque::new(),
            message_ends: None,
            id,
        }
    }

    /// Keeps every frame (and every raw write) a message of its own: [`chunk`](Self::chunk)
    /// then yields one message at a time, for transports whose writes are messages.
    pub(crate) fn preserve_messages(mut self, on: bool) -> Self {
        self.message_ends = on.then(VecDeque::new);
        self
    }

    /// Whether each [`chunk`](Self::chunk) is one whole message to be written at once.
    pub(crate) fn preserves_messages(&self) -> bool {
        self.message_ends.is_some()
    }

    /// Marks the end of a message at the current end of the queue.
    fn end_message(&mut self, start: usize) {
        if let Some(ends) = &mut self.message_ends {
            ends.push_back(self.queued_total + (self.buf.len() - start) as u64);
        }
    }

    fn check_room(&self) -> Result<()> {
        if !self.accepting {
            return Err(Error::closed(self.id));
        }
        if self.buf.len() >= self.high_water {
            return Err(Error::QueueFull {
                session: Some(self.id),
                queued: self.buf.len(),
                limit: self.high_water,
            });
        }
        Ok(())
    }

    fn queued_since(&mut self, start: usize) {
        self.queued_total += (self.buf.len() - start) as u64;
        if self.buf.len() >= self.high_water {
            self.writable = false;
        }
    }

    /// Encodes one frame onto the queue, or queues nothing and says why.
    pub(crate) fn encode<Out>(&mut self, frame: Out) -> Result<()>
    where
        C: Encoder<Out, Error: Into<BoxError>>,
    {
        self.check_room()?;
        let start = self.buf.len();
        if let Err(err) = self.codec.encode(frame, &mut self.buf) {
            self.buf.truncate(start);
            return Err(Error::from_encode(err).with_session(self.id));
        }
        self.end_message(start);
        self.queued_since(start);
        Ok(())
    }

    /// Encodes every frame, or none of them; returns how many.
    pub(crate) fn encode_all<Out>(&mut self, frames: impl IntoIterator<Item = Out>) -> Result<usize>
    where
        C: Encoder<Out, Error: Into<BoxError>>,
    {
        self.check_room()?;
        let start = self.buf.len();
        let ends_before = self.message_ends.as_ref().map_or(0, VecDeque::len);
        let mut count = 0;
        for frame in frames {
            if let Err(err) = self.codec.encode(frame, &mut self.buf) {
                self.buf.truncate(start);
                if let Some(ends) = &mut self.message_ends {
                    ends.truncate(ends_before);
                }
                return Err(Error::from_encode(err).with_session(self.id));
            }
            self.end_message(start);
            count += 1;
        }
        self.queued_since(start);
        Ok(count)
    }

    /// Queues bytes as they are.
    pub(crate) fn push_raw(&mut self, bytes: &[u8]) -> Result<()> {
        self.check_room()?;
        let start = self.buf.len();
        self.buf.extend_from_slice(bytes);
        self.end_message(start);
        self.queued_since(start);
        Ok(())
    }

    /// Resolves `ack` once every byte queued so far has been written.
    pub(crate) fn ack_when_written(&mut self, ack: oneshot::Sender<Result<()>>) {
        if self.queued_total == self.written_total {
            let _ = ack.send(Ok(()));
        } else {
            self.acks.push_back((self.queued_total, ack));
        }
    }

    /// Bytes to hand to the socket next: everything queued for a byte stream, the next
    /// whole message for a message transport.
    pub(crate) fn chunk(&self) -> &[u8] {
        match self.message_ends.as_ref().and_then(VecDeque::front) {
            // The difference is at most `buf.len()`, so the cast cannot truncate.
            Some(end) => &self.buf[..(end - self.written_total) as usize],
            None => &self.buf,
        }
    }

    /// The socket took `n` bytes of [`chunk`](Self::chunk) (all of it, for a message).
    pub(crate) fn consume(&mut self, n: usize) {
        self.buf.advance(n);
        self.written_total += n as u64;
        if let Some(ends) = &mut self.message_ends {
            while ends.front().is_some_and(|end| *end <= self.written_total) {
                ends.pop_front();
            }
        }
        while let Some((upto, _)) = self.acks.front() {
            if *upto > self.written_total {
                break;
            }
            if let Some((_, ack)) = self.acks.pop_front() {
                // The writer may have stopped waiting; that is its choice.
                let _ = ack.send(Ok(()));
            }
        }
        if self.buf.len() <= self.low_water {
            self.writable = true;
        }
    }

    /// Refuses new writes from now on (the session is closing).
    pub(crate) fn stop_accepting(&mut self) {
        self.accepting = false;
    }

    /// Drops what is queued and fails every waiting writer with `err`.
    pub(crate) fn fail(&mut self, err: &Error) {
        self.accepting = false;
        self.buf.clear();
        self.written_total = self.queued_total;
        if let Some(ends) = &mut self.message_ends {
            ends.clear();
        }
        for (_, ack) in self.acks.drain(..) {
            let _ = ack.send(Err(err.clone()));
        }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }

    pub(crate) fn len(&self) -> usize {
        self.buf.len()
    }

    pub(crate) fn is_writable(&self) -> bool {
        self.accepting && self.writable
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::LengthDelimited;
    use bytes::Bytes;

    fn queue(high: usize, low: usize) -> OutBuffer<LengthDelimited> {
        OutBuffer::new(LengthDelimited::new(), SessionId(1), high, low)
    }

    #[test]
    fn refuses_past_high_water_and_recovers_at_low_water() {
        let mut q = queue(10, 4);
        q.encode(Bytes::from_static(b"123456")).unwrap(); // 10 bytes on the wire
        assert!(!q.is_writable());
        let err = q.encode(Bytes::from_static(b"x")).unwrap_err();
        assert!(matches!(
            err,
            Error::QueueFull {
                queued: 10,
                limit: 10,
                ..
            }
        ));
        q.consume(5);
        assert!(!q.is_writable(), "above low water");
        q.consume(1);
        assert!(q.is_writable());
        q.encode(Bytes::from_static(b"x")).unwrap();
    }

    #[test]
    fn acks_resolve_when_their_bytes_are_written() {
        let mut q = queue(100, 50);
        q.encode(Bytes::from_static(b"ab")).unwrap(); // 6 bytes
        let (tx1, mut rx1) = oneshot::channel();
        q.ack_when_written(tx1);
        q.encode(Bytes::from_static(b"cd")).unwrap(); // 6 more
        let (tx2, mut rx2) = oneshot::channel();
        q.ack_when_written(tx2);
        q.consume(5);
        assert!(rx1.try_recv().is_err());
        q.consume(1);
        assert!(matches!(rx1.try_recv(), Ok(Ok(()))));
        assert!(rx2.try_recv().is_err());
        q.fail(&Error::closed(SessionId(1)));
        assert!(matches!(rx2.try_recv(), Ok(Err(Error::Closed { .. }))));
        assert!(q.encode(Bytes::from_static(b"x")).unwrap_err().is_closed());
    }

    #[test]
    fn message_mode_yields_one_message_per_chunk() {
        let mut q = queue(1000, 500).preserve_messages(true);
        q.encode(Bytes::from_static(b"ab")).unwrap();
        q.encode_all(vec![Bytes::from_static(b"c"), Bytes::from_static(b"def")])
            .unwrap();
        assert!(q.encode_all(vec![Bytes::from(vec![0; 200])]).is_ok());
        q.push_raw(b"raw").unwrap();
        let mut sizes = Vec::new();
        while !q.is_empty() {
            let n = q.chunk().len();
            sizes.push(n);
            q.consume(n);
        }
        assert_eq!(sizes, [6, 5, 7, 204, 3]);
        assert_eq!(q.chunk(), b"");
    }

    #[test]
    fn message_mode_failed_batch_leaves_no_boundary() {
        let mut q = OutBuffer::new(
            LengthDelimited::with_max_frame_length(2),
            SessionId(1),
            100,
            50,
        )
        .preserve_messages(true);
        q.encode(Bytes::from_static(b"ok")).unwrap();
        let bad = vec![Bytes::from_static(b"a"), Bytes::from_static(b"too long")];
        assert!(q.encode_all(bad).is_err());
        q.encode(Bytes::from_static(b"z")).unwrap();
        assert_eq!(q.chunk(), b"\0\0\0\x02ok");
        q.consume(6);
        assert_eq!(q.chunk(), b"\0\0\0\x01z");
    }

    #[test]
    fn encode_all_is_all_or_nothing() {
        let mut q = OutBuffer::new(
            LengthDelimited::with_max_frame_length(2),
            SessionId(1),
            100,
            50,
        );
        let err = q
            .encode_all(vec![
                Bytes::from_static(b"ok"),
                Bytes::from_static(b"too long"),
            ])
            .unwrap_err();
        assert!(matches!(err, Error::FrameTooLong { .. }));
        assert!(q.is_empty());
        assert_eq!(q.encode_all(vec![Bytes::from_static(b"a"); 3]).unwrap(), 3);
        assert_eq!(q.len(), 15);
    }
}

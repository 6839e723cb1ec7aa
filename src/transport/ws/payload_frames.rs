//! The incoming WebSocket frames of one server connection, decoded from the upgraded
//! request's payload with actix-http's codec.
//!
//! The server's reader actor reads this stream itself instead of running inside
//! actix-web-actors' `WebsocketContext`. That context pulls every payload chunk that is
//! ready into its own buffer before it decodes one frame, so a peer sending faster than
//! its session handles frames grew that buffer without limit (about 1 MiB per
//! connection was seen under a flood), and it put one more actor context between the
//! socket and the session. Here a chunk is read only when the buffer holds no whole
//! frame, so it holds at most one partial frame (less than the largest) and one chunk,
//! and a frame is decoded as soon as its bytes are in.

use std::pin::Pin;
use std::task::{Context, Poll};

use actix_http::ws::{Codec, Frame, ProtocolError};
use bytes::{Bytes, BytesMut};
use futures::Stream;
use tokio_util::codec::Decoder;

use super::outgoing::RSV1;

/// Longest header of a masked frame: 2 bytes, 8 more for a 64-bit length, 4 of mask.
const MAX_HEADER: usize = 14;

/// One frame as read, and whether it had RSV1 set: the first frame of a message
/// permessage-deflate compressed (only when the extension was agreed).
#[derive(Debug)]
pub(crate) struct InFrame {
    pub(crate) frame: Frame,
    pub(crate) compressed: bool,
}

/// Frames decoded from a payload of byte chunks.
pub(crate) struct PayloadFrames<S> {
    payload: S,
    codec: Codec,
    buf: BytesMut,
    /// permessage-deflate was agreed: RSV1 may be set (actix-http's codec refuses any
    /// reserved bit, so it is taken off the frame here and reported beside it).
    rsv1_allowed: bool,
    /// The frame at the front of the buffer had RSV1 set (taken off already).
    rsv1: bool,
    /// Read more only while the buffer holds less than this: one whole frame of the
    /// largest size, so a partial frame can always be completed.
    read_below: usize,
    /// The payload ended (or failed): what is left in the buffer is all there is.
    done: bool,
}

impl<S> PayloadFrames<S> {
    /// Decodes `payload` with `codec`, whose `max_size` (`max_payload`) bounds a frame.
    pub(crate) fn new(payload: S, codec: Codec, max_payload: usize) -> Self {
        PayloadFrames {
            payload,
            codec,
            buf: BytesMut::new(),
            read_below: max_payload.saturating_add(MAX_HEADER),
            done: false,
            rsv1_allowed: false,
            rsv1: false,
        }
    }

    /// Takes RSV1 as permessage-deflate's mark (the extension was agreed).
    pub(crate) fn allow_rsv1(mut self) -> Self {
        self.rsv1_allowed = true;
        self
    }
}

/// Past this many bytes the buffer grows to exactly what it must hold.
const EXACT_GROWTH: usize = 16 * 1024;

impl<S> PayloadFrames<S> {
    fn append(&mut self, chunk: &[u8]) {
        let need = self.buf.len() + chunk.len();
        // Doubling would keep up to twice the largest frame and chunk allocated for the
        // connection's life; a large buffer is made to measure instead (the small ones
        // are reused in place, which costs no allocation per chunk).
        if need > EXACT_GROWTH && self.buf.capacity() < need {
            let mut grown = BytesMut::with_capacity(need);
            grown.extend_from_slice(&self.buf);
            self.buf = grown;
        }
        self.buf.extend_from_slice(chunk);
    }
}

impl<S, E> Stream for PayloadFrames<S>
where
    S: Stream<Item = Result<Bytes, E>> + Unpin,
    E: std::fmt::Display,
{
    type Item = Result<InFrame, ProtocolError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        loop {
            if !this.buf.is_empty() {
                // The buffer always begins with the next frame's first byte.
                if this.rsv1_allowed && this.buf[0] & RSV1 != 0 {
                    this.buf[0] &= !RSV1;
                    this.rsv1 = true;
                }
                match this.codec.decode(&mut this.buf) {
                    Ok(Some(frame)) => {
                        let compressed = std::mem::take(&mut this.rsv1);
                        return Poll::Ready(Some(Ok(InFrame { frame, compressed })));
                    }
                    Ok(None) => {}
                    Err(err) => {
                        // The codec would refuse the same bytes again: nothing more.
                        this.done = true;
                        this.buf = BytesMut::new();
                        return Poll::Ready(Some(Err(err)));
                    }
                }
            }
            // A partial frame left when the payload ended is a connection cut mid-frame:
            // the stream just ends, as it does for a socket.
            if this.done {
                return Poll::Ready(None);
            }
            if this.buf.len() >= this.read_below {
                // More than the largest frame and still no whole frame: the codec's limit
                // is not the one this stream was given. Refuse rather than read on.
                this.done = true;
                return Poll::Ready(Some(Err(ProtocolError::Overflow)));
            }
            match Pin::new(&mut this.payload).poll_next(cx) {
                Poll::Ready(Some(Ok(chunk))) => this.append(&chunk),
                Poll::Ready(Some(Err(err))) => {
                    this.done = true;
                    let err = std::io::Error::other(err.to_string());
                    return Poll::Ready(Some(Err(ProtocolError::Io(err))));
                }
                Poll::Ready(None) => this.done = true,
                Poll::Pending => return Poll::Pending,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_http::ws::Message;
    use futures::task::noop_waker_ref;
    use futures::StreamExt;
    use tokio_util::codec::Encoder;

    /// The wire bytes of masked client frames carrying these messages.
    fn client_frames(msgs: Vec<Message>) -> Vec<u8> {
        let mut codec = Codec::new().client_mode();
        let mut out = BytesMut::new();
        for msg in msgs {
            codec.encode(msg, &mut out).unwrap();
        }
        out.to_vec()
    }

    fn binary(len: usize) -> Message {
        Message::Binary(Bytes::from(vec![7u8; len]))
    }

    /// A payload that yields `chunks` one at a time, then says `Pending` forever (an
    /// open connection with nothing more to read); counts the chunks taken.
    struct Chunks {
        chunks: std::collections::VecDeque<Bytes>,
        taken: usize,
    }

    impl Stream for Chunks {
        type Item = Result<Bytes, String>;
        fn poll_next(mut self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Option<Self::Item>> {
            match self.chunks.pop_front() {
                Some(chunk) => {
                    self.taken += 1;
                    Poll::Ready(Some(Ok(chunk)))
                }
                None => Poll::Pending,
            }
        }
    }

    #[test]
    fn frames_split_and_packed_across_chunks_come_out_whole_and_in_order() {
        let wire = client_frames(vec![binary(3), binary(300), binary(5)]);
        // Chunks of 7 bytes: every frame is split, and chunks hold parts of two frames.
        let chunks = wire.chunks(7).map(Bytes::copy_from_slice).collect();
        let payload = Chunks { chunks, taken: 0 };
        let mut frames = PayloadFrames::new(payload, Codec::new(), 1000);
        let mut cx = Context::from_waker(noop_waker_ref());
        let mut lens = Vec::new();
        while let Poll::Ready(Some(Ok(InFrame {
            frame: Frame::Binary(b),
            ..
        }))) = frames.poll_next_unpin(&mut cx)
        {
            lens.push(b.len());
        }
        assert_eq!(lens, [3, 300, 5]);
    }

    #[test]
    fn reads_ahead_at_most_one_largest_frame() {
        // Ten frames of 100 bytes in chunks of one frame each; the largest frame is 100.
        let chunks = (0..10)
            .map(|_| Bytes::from(client_frames(vec![binary(100)])))
            .collect();
        let payload = Chunks { chunks, taken: 0 };
        let mut frames = PayloadFrames::new(payload, Codec::new(), 100);
        let mut cx = Context::from_waker(noop_waker_ref());
        assert!(matches!(
            frames.poll_next_unpin(&mut cx),
            Poll::Ready(Some(Ok(InFrame {
                frame: Frame::Binary(_),
                compressed: false
            })))
        ));
        // One chunk was enough for the first frame; nothing more was taken.
        assert_eq!(frames.payload.taken, 1);
        assert!(frames.buf.is_empty());
    }

    #[test]
    fn an_oversized_frame_is_refused_once_and_the_stream_ends() {
        let payload =
            futures::stream::iter(vec![Ok::<_, String>(Bytes::from(client_frames(vec![
                binary(101),
            ])))]);
        let mut frames = PayloadFrames::new(payload, Codec::new().max_size(100), 100);
        let mut cx = Context::from_waker(noop_waker_ref());
        assert!(matches!(
            frames.poll_next_unpin(&mut cx),
            Poll::Ready(Some(Err(ProtocolError::Overflow)))
        ));
        assert!(matches!(frames.poll_next_unpin(&mut cx), Poll::Ready(None)));
    }

    #[test]
    fn rsv1_is_reported_beside_its_frame_where_allowed_and_refused_elsewhere() {
        let mut wire = client_frames(vec![binary(3), binary(4)]);
        wire[0] |= RSV1; // the first frame's header
        let chunks = |wire: &[u8]| {
            // Byte by byte: RSV1 is seen before the frame is whole.
            let chunks = wire.iter().map(|b| Bytes::copy_from_slice(&[*b])).collect();
            Chunks { chunks, taken: 0 }
        };
        let mut cx = Context::from_waker(noop_waker_ref());
        let mut frames = PayloadFrames::new(chunks(&wire), Codec::new(), 100).allow_rsv1();
        let mut seen = Vec::new();
        while let Poll::Ready(Some(Ok(InFrame {
            frame: Frame::Binary(b),
            compressed,
        }))) = frames.poll_next_unpin(&mut cx)
        {
            seen.push((b.len(), compressed));
        }
        assert_eq!(seen, [(3, true), (4, false)]);
        // Without the extension agreed, the codec refuses the reserved bit.
        let mut frames = PayloadFrames::new(chunks(&wire), Codec::new(), 100);
        assert!(matches!(
            frames.poll_next_unpin(&mut cx),
            Poll::Ready(Some(Err(_)))
        ));
    }

    #[test]
    fn a_payload_error_is_an_io_error_and_ends_the_stream() {
        let payload = futures::stream::iter(vec![Err::<Bytes, _>("reset".to_owned())]);
        let mut frames = PayloadFrames::new(payload, Codec::new(), 100);
        let mut cx = Context::from_waker(noop_waker_ref());
        assert!(matches!(
            frames.poll_next_unpin(&mut cx),
            Poll::Ready(Some(Err(ProtocolError::Io(_))))
        ));
        assert!(matches!(frames.poll_next_unpin(&mut cx), Poll::Ready(None)));
    }

    #[test]
    fn a_frame_cut_by_the_end_of_the_payload_ends_the_stream() {
        let wire = client_frames(vec![binary(50)]);
        let payload =
            futures::stream::iter(vec![Ok::<_, String>(Bytes::copy_from_slice(&wire[..20]))]);
        let mut frames = PayloadFrames::new(payload, Codec::new(), 100);
        let mut cx = Context::from_waker(noop_waker_ref());
        assert!(matches!(frames.poll_next_unpin(&mut cx), Poll::Ready(None)));
    }
}

//! A bound on what actix-web-actors reads ahead of a WebSocket server session.
//!
//! actix-web-actors' `WebsocketContext` pulls every payload chunk that is ready into its
//! own buffer each time it is polled, then decodes one frame: a peer that sends faster
//! than the session handles frames makes that buffer grow without limit (about 1 MiB per
//! connection was seen under a flood, outside the endpoint's memory budget). This stream
//! sits between the request payload and the context: it hands over a chunk only while
//! the bytes handed over and not yet decoded (the context's buffer, exactly) stay under a
//! limit, and the session's actor tells it, frame by frame, what was decoded.
//!
//! Exact accounting matters: if it counted fewer bytes decoded than were, it could hold
//! back the rest of a frame the context waits for. Every frame a server receives is
//! masked (the codec refuses unmasked ones), so its size on the wire is its payload plus
//! a header of 2 bytes, 2 or 8 more for a long length, and 4 for the mask.

use std::cell::{Cell, RefCell};
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll, Waker};

use actix_web_actors::ws as aws;
use bytes::Bytes;
use futures::Stream;

/// What the context holds undecoded, shared by the stream and the session's actor.
#[derive(Debug)]
pub(crate) struct Allowance {
    /// Bytes handed to the context and bytes of the frames it decoded.
    handed: Cell<u64>,
    decoded: Cell<u64>,
    limit: u64,
    /// The context's task, waiting for room.
    waiting: RefCell<Option<Waker>>,
}

impl Allowance {
    /// An allowance of `limit` undecoded bytes (at least two of the largest frames, so a
    /// whole frame always fits behind a partial one).
    pub(crate) fn new(limit: usize) -> Rc<Self> {
        Rc::new(Allowance {
            handed: Cell::new(0),
            decoded: Cell::new(0),
            limit: limit as u64,
            waiting: RefCell::new(None),
        })
    }

    fn undecoded(&self) -> u64 {
        self.handed.get().saturating_sub(self.decoded.get())
    }

    /// The context decoded this frame: its bytes leave the buffer.
    pub(crate) fn decoded(&self, frame: &Result<aws::Message, aws::ProtocolError>) {
        let Ok(msg) = frame else {
            return; // the session ends: nothing more is read
        };
        self.decoded.set(self.decoded.get() + wire_size(msg));
        if self.undecoded() < self.limit {
            if let Some(waker) = self.waiting.borrow_mut().take() {
                waker.wake();
            }
        }
    }
}

/// Bytes a masked frame carrying `msg` took on the wire.
fn wire_size(msg: &aws::Message) -> u64 {
    let payload = match msg {
        aws::Message::Text(text) => text.len(),
        aws::Message::Binary(bytes) | aws::Message::Ping(bytes) | aws::Message::Pong(bytes) => {
            bytes.len()
        }
        aws::Message::Continuation(item) => match item {
            actix_http::ws::Item::FirstText(b)
            | actix_http::ws::Item::FirstBinary(b)
            | actix_http::ws::Item::Continue(b)
            | actix_http::ws::Item::Last(b) => b.len(),
        },
        aws::Message::Close(reason) => reason
            .as_ref()
            .map_or(0, |r| 2 + r.description.as_ref().map_or(0, String::len)),
        aws::Message::Nop => 0,
    };
    let length = match payload {
        0..=125 => 0,
        126..=65535 => 2,
        _ => 8,
    };
    (2 + length + 4 + payload) as u64
}

/// The request payload, handed to the context while the allowance has room.
pub(crate) struct BoundedPayload<S> {
    inner: S,
    allowance: Rc<Allowance>,
}

impl<S> BoundedPayload<S> {
    pub(crate) fn new(inner: S, allowance: Rc<Allowance>) -> Self {
        BoundedPayload { inner, allowance }
    }
}

impl<S, E> Stream for BoundedPayload<S>
where
    S: Stream<Item = Result<Bytes, E>> + Unpin,
{
    type Item = Result<Bytes, E>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let allowance = self.allowance.clone();
        if allowance.undecoded() >= allowance.limit {
            *allowance.waiting.borrow_mut() = Some(cx.waker().clone());
            return Poll::Pending;
        }
        let next = Pin::new(&mut self.inner).poll_next(cx);
        if let Poll::Ready(Some(Ok(chunk))) = &next {
            allowance
                .handed
                .set(allowance.handed.get() + chunk.len() as u64);
        }
        next
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_http::ws::Codec;
    use futures::task::noop_waker_ref;
    use futures::StreamExt;
    use tokio_util::codec::Encoder;

    /// The wire bytes of masked client frames carrying these messages.
    fn client_frames(msgs: Vec<aws::Message>) -> Vec<u8> {
        let mut codec = Codec::new().client_mode();
        let mut out = bytes::BytesMut::new();
        for msg in msgs {
            codec.encode(msg, &mut out).unwrap();
        }
        out.to_vec()
    }

    #[test]
    fn sizes_match_what_the_codec_puts_on_the_wire() {
        for len in [0, 1, 125, 126, 65535, 65536] {
            let msg = || aws::Message::Binary(Bytes::from(vec![7u8; len]));
            let wire = client_frames(vec![msg()]).len() as u64;
            assert_eq!(wire_size(&msg()), wire, "payload of {len}");
        }
        let close = || {
            aws::Message::Close(Some(aws::CloseReason {
                code: aws::CloseCode::Normal,
                description: Some("bye".into()),
            }))
        };
        assert_eq!(
            wire_size(&close()),
            client_frames(vec![close()]).len() as u64
        );
        let ping = || aws::Message::Ping(Bytes::from_static(b"p"));
        assert_eq!(wire_size(&ping()), client_frames(vec![ping()]).len() as u64);
    }

    #[test]
    fn holds_chunks_back_past_the_limit_until_frames_are_decoded() {
        let chunks: Vec<Result<Bytes, ()>> = vec![
            Ok(Bytes::from(vec![0u8; 60])),
            Ok(Bytes::from(vec![0u8; 60])),
        ];
        let allowance = Allowance::new(100);
        let mut stream = BoundedPayload::new(futures::stream::iter(chunks), allowance.clone());
        let mut cx = Context::from_waker(noop_waker_ref());
        assert!(matches!(
            stream.poll_next_unpin(&mut cx),
            Poll::Ready(Some(Ok(_)))
        ));
        assert!(matches!(
            stream.poll_next_unpin(&mut cx),
            Poll::Ready(Some(Ok(_)))
        ));
        // 120 bytes handed over, none decoded: past the limit of 100.
        assert!(stream.poll_next_unpin(&mut cx).is_pending());
        // A frame of 50 bytes on the wire was decoded: 70 undecoded, room again.
        allowance.decoded(&Ok(aws::Message::Binary(Bytes::from(vec![0u8; 44]))));
        assert!(matches!(stream.poll_next_unpin(&mut cx), Poll::Ready(None)));
    }
}

//! A QUIC connection with its session stream as a [`Transport`]: [`QuicConnection`],
//! split into [`QuicReader`] and [`QuicWriter`].

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{ready, Context, Poll};
use std::time::Duration;

use futures::future::{BoxFuture, FutureExt, Shared};
use quinn::{Connection, ConnectionError, RecvStream, SendStream, VarInt};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use super::errors::{connection_lost, read_error, write_error};
use super::{CLOSE_ABORTED, CLOSE_DONE};
use crate::error::{Error, Result};
use crate::transport::{Address, LivePeer, Transport};

/// The two ends of the session stream, each taken once by its half.
struct Pair {
    send: Mutex<Option<SendStream>>,
    recv: Mutex<Option<RecvStream>>,
}

/// The session stream as both halves wait for it: a server learns of the stream the
/// client opened only when its first bytes arrive, and either half may be first to ask.
type StreamWait = Shared<BoxFuture<'static, std::result::Result<Arc<Pair>, ConnectionError>>>;

/// Takes one half out of a pair, once.
fn take<T>(slot: &Mutex<Option<T>>) -> Option<T> {
    slot.lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
        .take()
}

/// A QUIC connection and the bidirectional stream its session runs over: a
/// [`Transport`], so any [`Server`](crate::Server) or [`Client`](crate::Client) can run
/// sessions over connections made with quinn directly.
///
/// [`QuicServer`](super::QuicServer) and [`QuicClient`](super::QuicClient) make these;
/// build one yourself with [`open`](Self::open) (the client's side: opens the stream) or
/// [`accept`](Self::accept) (the server's side: takes the first stream the peer opens).
pub struct QuicConnection {
    connection: Connection,
    stream: StreamWait,
    local: SocketAddr,
    /// The read timeout that the connection's idle timeout was set from.
    idle: Option<Duration>,
    /// Kept so that a client's own endpoint lives as long as its connection.
    endpoint: Option<quinn::Endpoint>,
}

impl std::fmt::Debug for QuicConnection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("QuicConnection")
            .field("local", &self.local)
            .field("peer", &self.connection.remote_address())
            .finish_non_exhaustive()
    }
}

impl QuicConnection {
    /// The client's side: opens the session's bidirectional stream on `connection`, whose
    /// local end is `local`. `idle` is the read timeout the connection's idle timeout was
    /// set from (reported as [`ErrorKind::ReadTimeout`](crate::ErrorKind::ReadTimeout)
    /// when it expires). The server learns of the stream from its first bytes, so the
    /// client should speak first.
    pub async fn open(
        connection: Connection,
        local: SocketAddr,
        idle: Option<Duration>,
    ) -> Result<Self> {
        let (send, recv) = connection
            .open_bi()
            .await
            .map_err(|err| opening_failed(&err, idle))?;
        let pair = Arc::new(Pair {
            send: Mutex::new(Some(send)),
            recv: Mutex::new(Some(recv)),
        });
        let ready: BoxFuture<'static, _> = Box::pin(std::future::ready(Ok(pair)));
        Ok(Self::with_stream(connection, ready.shared(), local, idle))
    }

    /// The server's side: the session runs over the first bidirectional stream the peer
    /// opens on `connection`. Returns at once; the halves wait for the stream (the
    /// writer holds what it is given until then), under the session's timeouts.
    pub fn accept(connection: Connection, local: SocketAddr, idle: Option<Duration>) -> Self {
        let waiting = connection.clone();
        let wait: BoxFuture<'static, _> = Box::pin(async move {
            let (send, recv) = waiting.accept_bi().await?;
            Ok(Arc::new(Pair {
                send: Mutex::new(Some(send)),
                recv: Mutex::new(Some(recv)),
            }))
        });
        Self::with_stream(connection, wait.shared(), local, idle)
    }

    fn with_stream(
        connection: Connection,
        stream: StreamWait,
        local: SocketAddr,
        idle: Option<Duration>,
    ) -> Self {
        QuicConnection {
            connection,
            stream,
            local,
            idle,
            endpoint: None,
        }
    }

    /// Keeps `endpoint` alive as long as the connection's writer.
    pub(crate) fn keep_endpoint(mut self, endpoint: quinn::Endpoint) -> Self {
        self.endpoint = Some(endpoint);
        self
    }

    /// The quinn connection (for its statistics, its round-trip time, or more streams).
    pub fn connection(&self) -> &Connection {
        &self.connection
    }
}

/// Why opening the session stream failed.
fn opening_failed(err: &ConnectionError, idle: Option<Duration>) -> Error {
    connection_lost(err, idle)
        .unwrap_or_else(|| Error::quic(Some(0), "the peer closed the connection at once"))
}

impl Transport for QuicConnection {
    type Reader = QuicReader;
    type Writer = QuicWriter;

    fn local_addr(&self) -> io::Result<Address> {
        Ok(Address::Inet(self.local))
    }

    fn peer_addr(&self) -> io::Result<Address> {
        Ok(Address::Inet(self.connection.remote_address()))
    }

    fn into_split(self) -> (QuicReader, QuicWriter) {
        let reader = QuicReader {
            state: Half::Waiting(self.stream.clone()),
            idle: self.idle,
        };
        let writer = QuicWriter {
            state: Half::Waiting(self.stream),
            connection: self.connection,
            finishing: None,
            clean: false,
            idle: self.idle,
            _endpoint: self.endpoint,
        };
        (reader, writer)
    }

    /// The peer's address as quinn sees it now: it follows a migrating peer.
    fn live_peer(&self) -> Option<LivePeer> {
        let connection = self.connection.clone();
        Some(LivePeer::new(move || {
            Address::Inet(connection.remote_address())
        }))
    }
}

/// One half of the session stream, or the wait for it.
enum Half<S> {
    Waiting(StreamWait),
    Open(S),
    /// The stream never came (the connection ended first), or the half is done.
    Gone,
}

impl<S> Half<S> {
    /// Polls for the stream: `Ok(true)` once it is open, `Ok(false)` when the connection
    /// ended cleanly without one, an error when it ended otherwise.
    fn poll_open(
        &mut self,
        cx: &mut Context<'_>,
        idle: Option<Duration>,
        pick: impl FnOnce(&Pair) -> Option<S>,
    ) -> Poll<io::Result<bool>> {
        let Half::Waiting(wait) = self else {
            return Poll::Ready(Ok(matches!(self, Half::Open(_))));
        };
        let opened = ready!(wait.poll_unpin(cx));
        *self = Half::Gone;
        match opened {
            Ok(pair) => match pick(&pair) {
                Some(stream) => {
                    *self = Half::Open(stream);
                    Poll::Ready(Ok(true))
                }
                None => Poll::Ready(Err(io::Error::other("the stream half was taken twice"))),
            },
            Err(err) => match connection_lost(&err, idle) {
                None => Poll::Ready(Ok(false)),
                Some(err) => Poll::Ready(Err(io::Error::other(err))),
            },
        }
    }
}

/// The read half of a QUIC session: the session stream's receiving side. A connection
/// the peer closed with application code 0 reads as EOF; other ends are errors (see
/// [`ErrorKind::Quic`](crate::ErrorKind::Quic)).
pub struct QuicReader {
    state: Half<RecvStream>,
    idle: Option<Duration>,
}

impl AsyncRead for QuicReader {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let idle = this.idle;
        if !ready!(this.state.poll_open(cx, idle, |pair| take(&pair.recv)))? {
            return Poll::Ready(Ok(())); // EOF
        }
        let Half::Open(recv) = &mut this.state else {
            return Poll::Ready(Ok(()));
        };
        match ready!(recv.poll_read_buf(cx, buf)) {
            Ok(()) => Poll::Ready(Ok(())),
            Err(err) => Poll::Ready(read_error(err, idle)),
        }
    }
}

/// A wait for the peer to acknowledge everything sent, after the stream is finished.
type Finishing =
    Pin<Box<dyn Future<Output = std::result::Result<Option<VarInt>, quinn::StoppedError>>>>;

/// The write half of a QUIC session: the session stream's sending side, and the
/// connection's owner. A graceful shutdown finishes the stream and waits until the peer
/// acknowledged every byte; dropping the writer then closes the connection with
/// application code 0 ([`CLOSE_DONE`]), or with 1 ([`CLOSE_ABORTED`]) when the session
/// ended without that shutdown (aborted, or the peer was gone).
pub struct QuicWriter {
    state: Half<SendStream>,
    connection: Connection,
    finishing: Option<Finishing>,
    /// The shutdown completed: everything sent was acknowledged.
    clean: bool,
    idle: Option<Duration>,
    _endpoint: Option<quinn::Endpoint>,
}

impl AsyncWrite for QuicWriter {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let idle = this.idle;
        if !ready!(this.state.poll_open(cx, idle, |pair| take(&pair.send)))? {
            return Poll::Ready(Err(io::ErrorKind::BrokenPipe.into()));
        }
        let Half::Open(send) = &mut this.state else {
            return Poll::Ready(Err(io::ErrorKind::BrokenPipe.into()));
        };
        match ready!(Pin::new(send).poll_write(cx, buf)) {
            Ok(n) => Poll::Ready(Ok(n)),
            Err(err) => Poll::Ready(Err(write_error(err, idle))),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        // quinn sends what it was given on its own; there is nothing to push.
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.finishing.is_none() {
            let Half::Open(send) = &mut this.state else {
                // Nothing was ever sent (the stream never came): nothing to finish.
                this.clean = true;
                return Poll::Ready(Ok(()));
            };
            // Fails only for a stream already finished or reset; `stopped` then says.
            let _ = send.finish();
            this.finishing = Some(Box::pin(send.stopped()));
        }
        let Some(finishing) = this.finishing.as_mut() else {
            return Poll::Ready(Ok(()));
        };
        let outcome = ready!(finishing.as_mut().poll(cx));
        this.finishing = None;
        match outcome {
            // Everything acknowledged, or the peer no longer wants it (it read what it
            // wanted and stopped the stream).
            Ok(_) => {
                this.clean = true;
                Poll::Ready(Ok(()))
            }
            Err(quinn::StoppedError::ConnectionLost(err)) => {
                match connection_lost(&err, this.idle) {
                    // The peer closed cleanly after it had everything it wanted.
                    None => {
                        this.clean = true;
                        Poll::Ready(Ok(()))
                    }
                    Some(err) => Poll::Ready(Err(io::Error::other(err))),
                }
            }
            Err(err) => Poll::Ready(Err(io::Error::other(Error::quic(None, err.to_string())))),
        }
    }
}

impl Drop for QuicWriter {
    fn drop(&mut self) {
        let (code, reason): (u32, &[u8]) = if self.clean {
            (CLOSE_DONE, b"done")
        } else {
            (CLOSE_ABORTED, b"aborted")
        };
        self.connection.close(VarInt::from_u32(code), reason);
    }
}

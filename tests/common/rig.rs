//! One probe server over any of the transports, so a test body runs unchanged over TCP,
//! Unix sockets and an in-memory pipe (the last through the public transport seam only).

use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use futures::channel::mpsc;
use futures::StreamExt;
use getty::prelude::*;
use getty::transport::{Address, Connection};
use getty::{
    EndpointStats, LengthDelimited, QuicServer, Server, ServerHandle, SessionConfig, TcpServer,
    UnixServer,
};
use tokio::io::{AsyncRead, AsyncWrite, DuplexStream, ReadBuf};
use tokio_util::codec::Framed;

use super::quic::{Certs, QuicPeer};
use super::{within, Behaviour, Log, Probe, SECS5};
use getty::transport::quic::quinn;

/// The transports a shared test body runs over.
#[derive(Debug, Clone, Copy)]
pub enum Kind {
    Tcp,
    Unix,
    /// tokio duplex pipes handed to [`Server::serve`] as [`Connection`]s.
    Pipe,
    /// QUIC: a `QuicServer`, reached by raw quinn peers (one stream per connection).
    Quic,
}

/// A peer's end of a connection, whatever the transport.
pub enum PeerStream {
    Tcp(tokio::net::TcpStream),
    Unix(tokio::net::UnixStream),
    Pipe(DuplexStream),
    Quic(Box<QuicPeer>),
}

macro_rules! each_stream {
    ($self:expr, $s:ident => $e:expr) => {
        match $self.get_mut() {
            PeerStream::Tcp($s) => $e,
            PeerStream::Unix($s) => $e,
            PeerStream::Pipe($s) => $e,
            PeerStream::Quic($s) => $e,
        }
    };
}

impl AsyncRead for PeerStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        each_stream!(self, s => Pin::new(s).poll_read(cx, buf))
    }
}

impl AsyncWrite for PeerStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        each_stream!(self, s => Pin::new(s).poll_write(cx, buf))
    }
    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        each_stream!(self, s => Pin::new(s).poll_flush(cx))
    }
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        each_stream!(self, s => Pin::new(s).poll_shutdown(cx))
    }
}

/// How to reach the rig's server; `Send`, so a peer may connect from another thread.
#[derive(Clone)]
pub enum Connector {
    Tcp(std::net::SocketAddr),
    Unix(PathBuf),
    Pipe(mpsc::UnboundedSender<Connection<DuplexStream>>),
    Quic(std::net::SocketAddr, quinn::ClientConfig),
}

/// Size of each in-memory pipe's buffer, per direction.
const PIPE_BUFFER: usize = 64 * 1024;

impl Connector {
    /// Opens a raw byte connection to the server.
    pub async fn connect(&self) -> PeerStream {
        match self {
            Connector::Tcp(addr) => {
                let s = within(SECS5, tokio::net::TcpStream::connect(addr))
                    .await
                    .expect("tcp connect");
                s.set_nodelay(true).unwrap();
                PeerStream::Tcp(s)
            }
            Connector::Unix(path) => PeerStream::Unix(
                within(SECS5, tokio::net::UnixStream::connect(path))
                    .await
                    .expect("unix connect"),
            ),
            Connector::Pipe(accept) => {
                let (ours, theirs) = tokio::io::duplex(PIPE_BUFFER);
                let conn = Connection::new(
                    theirs,
                    Address::other("pipe-server"),
                    Address::other("pipe-peer"),
                );
                accept
                    .unbounded_send(conn)
                    .expect("the pipe server is running");
                PeerStream::Pipe(ours)
            }
            Connector::Quic(addr, config) => {
                PeerStream::Quic(Box::new(QuicPeer::connect(*addr, config.clone()).await))
            }
        }
    }

    /// Opens a connection framed with the length-delimited codec.
    pub async fn framed(&self) -> Framed<PeerStream, LengthDelimited> {
        Framed::new(
            self.connect().await,
            LengthDelimited::with_max_frame_length(16 << 20),
        )
    }
}

/// A one-arbiter probe server over one transport.
pub struct Rig {
    pub kind: Kind,
    pub log: Arc<Log>,
    pub behaviour: Arc<Behaviour>,
    pub connector: Connector,
    handle: ServerHandle,
}

impl Rig {
    /// Starts a one-worker server over `kind` whose probes act per `behaviour`.
    pub async fn start(kind: Kind, behaviour: Behaviour, config: SessionConfig) -> Rig {
        let log = Arc::new(Log::default());
        let behaviour = Arc::new(behaviour);
        let hook = Probe::hook(log.clone(), behaviour.clone());
        let (handle, connector) = match kind {
            Kind::Tcp => {
                let h = TcpServer::new("127.0.0.1:0")
                    .workers(1)
                    .session_config(config)
                    .start(hook)
                    .await
                    .expect("tcp server");
                let addr = h.inet_addr().expect("an IP address");
                (h, Connector::Tcp(addr))
            }
            Kind::Unix => {
                let path = socket_path();
                let h = UnixServer::new(&path)
                    .workers(1)
                    .session_config(config)
                    .start(hook)
                    .await
                    .expect("unix server");
                (h, Connector::Unix(path))
            }
            Kind::Pipe => {
                let (tx, rx) = mpsc::unbounded();
                let h = Server::new()
                    .kind("pipe")
                    .workers(1)
                    .session_config(config)
                    .serve(rx.map(Ok), hook)
                    .expect("pipe server");
                (h, Connector::Pipe(tx))
            }
            Kind::Quic => {
                let certs = Certs::new();
                let h = QuicServer::new("127.0.0.1:0", certs.server_tls())
                    .workers(1)
                    .session_config(config)
                    .start(hook)
                    .await
                    .expect("quic server");
                let addr = h.inet_addr().expect("an IP address");
                (h, Connector::Quic(addr, certs.peer_config(b"getty")))
            }
        };
        Rig {
            kind,
            log,
            behaviour,
            connector,
            handle,
        }
    }

    /// The server's endpoint counters, whatever the transport.
    pub fn stats(&self) -> EndpointStats {
        self.handle.stats()
    }

    /// Stops the server; a Unix server must also have removed its socket file.
    pub async fn stop(&self) {
        self.handle.stop().await;
        if let Some(path) = self.handle.local_addr().unix_path() {
            assert!(!path.exists(), "socket file removed on stop");
        }
    }
}

/// A fresh socket path in the temp dir, unique in this process and across processes.
pub fn socket_path() -> PathBuf {
    use std::sync::atomic::{AtomicU32, Ordering};
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    std::env::temp_dir().join(format!("getty-test-{}-{n}.sock", std::process::id()))
}

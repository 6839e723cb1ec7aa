//! # getty
//!
//! An asynchronous network I/O library on [actix], in the spirit of netty and of the Go
//! library [getty](https://github.com/AlexStocks/getty): one uniform [`EventListener`]
//! (`on_open`, `on_message`, `on_cron`, `on_error`, `on_close`) over your connections,
//! typed frames through any tokio-util codec, and supervised endpoints.
//!
//! ## Quick start: an echo server and a client, on loopback
//! ```
//! use bytes::{Bytes, BytesMut};
//! use futures::{SinkExt, StreamExt};
//! use getty::prelude::*;
//! use getty::{EventListener, LengthDelimited, SessionContext, TcpServer};
//! use tokio_util::codec::Framed;
//!
//! /// Per-session state: here, nothing.
//! struct Echo;
//!
//! impl EventListener for Echo {
//!     type Codec = LengthDelimited; // 4-byte big-endian length + payload
//!     type Out = Bytes;
//!
//!     fn on_message(&mut self, session: &mut SessionContext<'_, Self>, frame: BytesMut) {
//!         // Queued now, written when this batch of frames is done.
//!         if let Err(err) = session.write(frame.freeze()) {
//!             eprintln!("{err}");
//!             session.close();
//!         }
//!     }
//! }
//!
//! #[actix::main]
//! async fn main() -> getty::Result<()> {
//!     let server = TcpServer::new("127.0.0.1:0")
//!         .workers(1)
//!         .start(|setup| Ok((Echo, LengthDelimited::new())))
//!         .await?;
//!
//!     // Any client that speaks the codec will do; here, a plain tokio one.
//!     let stream = tokio::net::TcpStream::connect(server.inet_addr()?).await?;
//!     let mut client = Framed::new(stream, LengthDelimited::new());
//!     client.send(Bytes::from_static(b"hello")).await?;
//!     let echo = client.next().await.expect("an echo")?;
//!     assert_eq!(&echo[..], b"hello");
//!
//!     server.stop().await; // graceful: every session flushes and gets on_close
//!     Ok(())
//! }
//! ```
//!
//! ## Heartbeats: the cron pattern
//! For TCP, getty leaves heartbeats to the application: send one in `on_cron`, and close
//! a session whose peer stayed silent. Each decoded frame updates [`Session::last_active`];
//! [`Session::update_active`] marks anything else that proves the peer alive.
//! ```
//! use std::time::Duration;
//! use bytes::{Bytes, BytesMut};
//! use futures::StreamExt;
//! use getty::prelude::*;
//! use getty::{EventListener, LengthDelimited, SessionConfig, SessionContext, TcpServer};
//!
//! struct Heartbeat;
//!
//! impl EventListener for Heartbeat {
//!     type Codec = LengthDelimited;
//!     type Out = Bytes;
//!
//!     fn on_message(&mut self, _: &mut SessionContext<'_, Self>, _pong: BytesMut) {}
//!
//!     fn on_cron(&mut self, session: &mut SessionContext<'_, Self>) {
//!         if session.last_active().elapsed() > 3 * session.cron_period() {
//!             session.close(); // silent too long: on_close follows
//!         } else {
//!             let _ = session.write(Bytes::from_static(b"ping"));
//!         }
//!     }
//! }
//!
//! #[actix::main]
//! async fn main() -> getty::Result<()> {
//!     let mut config = SessionConfig::default();
//!     config.cron_period = Duration::from_millis(50);
//!     let server = TcpServer::new("127.0.0.1:0")
//!         .workers(1)
//!         .session_config(config)
//!         .start(|_| Ok((Heartbeat, LengthDelimited::new())))
//!         .await?;
//!     // A peer that never answers: it gets pings, then the server closes on it.
//!     let stream = tokio::net::TcpStream::connect(server.inet_addr()?).await?;
//!     let mut peer = tokio_util::codec::FramedRead::new(stream, LengthDelimited::new());
//!     let mut pings = 0;
//!     let read_all = async { while let Some(Ok(_)) = peer.next().await { pings += 1 } };
//!     tokio::time::timeout(Duration::from_secs(10), read_all).await.expect("closed by the server");
//!     assert!(pings >= 1);
//!     server.stop().await;
//!     Ok(())
//! }
//! ```
//!
//! ## Long work off the session
//! Callbacks run on the session's logic actor and must return quickly. Clone the
//! [`Session`] handle, hand the work elsewhere (another actor or arbiter, a blocking
//! pool), and write the reply through the handle when it is done. If the session closed
//! meanwhile the write returns [`ErrorKind::Closed`]; nothing panics.
//! ```
//! use bytes::{Bytes, BytesMut};
//! use futures::{SinkExt, StreamExt};
//! use getty::prelude::*;
//! use getty::{EventListener, LengthDelimited, SessionContext, TcpServer};
//!
//! struct Offload;
//!
//! impl EventListener for Offload {
//!     type Codec = LengthDelimited;
//!     type Out = Bytes;
//!
//!     fn on_message(&mut self, session: &mut SessionContext<'_, Self>, request: BytesMut) {
//!         let session = session.session().clone();
//!         actix_rt::spawn(async move {
//!             // Blocking work on tokio's blocking pool; the session goes on reading.
//!             let work = move || request.iter().rev().copied().collect::<Vec<u8>>();
//!             if let Ok(reply) = tokio::task::spawn_blocking(work).await {
//!                 let _ = session.write(Bytes::from(reply)).await;
//!             }
//!         });
//!     }
//! }
//!
//! #[actix::main]
//! async fn main() -> getty::Result<()> {
//!     let server = TcpServer::new("127.0.0.1:0")
//!         .start(|_| Ok((Offload, LengthDelimited::new())))
//!         .await?;
//!     let stream = tokio::net::TcpStream::connect(server.inet_addr()?).await?;
//!     let mut client = tokio_util::codec::Framed::new(stream, LengthDelimited::new());
//!     client.send(Bytes::from_static(b"getty")).await?;
//!     assert_eq!(&client.next().await.expect("reply")?[..], b"ytteg");
//!     server.stop().await;
//!     Ok(())
//! }
//! ```
//!
//! ## Shape
//! Every session is a pair of actors on one arbiter: a **reader actor** that reads,
//! decodes, and forwards frames in batches, and a **logic actor** that runs the listener
//! and owns the bounded write queue. A **supervisor actor** per endpoint drives cron
//! ticks and timeouts, runs the graceful stop, and for a [`TcpClient`] re-dials lost
//! connections with a capped, jittered exponential backoff. See [`session`] for the data flow and
//! [`SessionConfig`] for every limit and its default.
//!
//! ## Transports
//! [`TcpServer`]/[`TcpClient`] and [`UnixServer`]/[`UnixClient`] are thin builders over
//! one public seam: [`Server`] runs sessions over a stream of accepted connections of any
//! [`transport::Transport`], and [`Client`] over a dial function that its supervisor
//! calls again to reconnect. The [`transport`] module shows how to run sessions over a
//! stream type of your own, and its guide **Writing a transport** walks through the Unix
//! socket transport as the model.
//!
//! TCP speaks TLS (rustls) with [`TcpServer::tls`] and [`TcpClient::tls`]: the handshake
//! runs on the session's arbiter under a timeout, and its failures are
//! [`ErrorKind::Tls`]. See [`transport::tls`].
//!
//! UDP ([`UdpServer`], [`UdpClient`], see [`transport::udp`]) has no byte stream to read: its
//! sessions read datagrams (one frame each, with the peer address on the unconnected
//! server) through the same reader, logic and supervisor actors, and the same listener.
//!
//! QUIC ([`QuicServer`], [`QuicClient`], see [`transport::quic`], on quinn) runs a
//! session per QUIC connection over its first bidirectional stream, with the same TLS
//! configs as TCP; a peer that migrates to a new address keeps its session. WebSocket
//! ([`WsServer`], [`WsClient`], see [`transport::ws`]) carries one frame per message.
//!
//! ## Metrics
//! Every endpoint records its sessions, closes by cause, traffic, refusals and (clients)
//! dials and reconnects through the [`metrics`](::metrics) facade, labelled with
//! `metrics_label` on its builder; the application installs the exporter it wants. See
//! [`metrics`] for the table of names, types and labels.
//!
//! ## Guarantees
//! - Backpressure both ways: a full read queue stops reading; a full write queue refuses
//!   writes with [`ErrorKind::QueueFull`]. Nothing is dropped silently and nothing is
//!   retried: every write is queued and written, or its caller gets an error.
//! - One close path: `on_close` exactly once per opened session, `on_error` before it
//!   when an error ended it; a handle to a closed session returns [`ErrorKind::Closed`].
//! - Bad input ends only the session concerned.

#![forbid(unsafe_code)]
#![warn(missing_docs)]
// Nothing a peer or a user controls may panic the library: no unwrap/expect outside tests.
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

pub mod actor;
mod clock;
pub mod codec;
pub mod config;
pub mod defaults;
mod endpoint;
mod error;
mod listener;
pub mod metrics;
pub mod pool;
pub mod session;
pub mod transport;

pub use codec::{Codec, LengthDelimited, RawBytes};
pub use config::SessionConfig;
pub use endpoint::client::{Client, ClientEvent, ClientHandle};
pub use endpoint::options::{ClientBuilder, ClientOptions, ServerBuilder, ServerOptions};
pub use endpoint::server::{Server, ServerHandle};
pub use endpoint::servers::{ServerList, ServerListBuilder, Spread};
pub use endpoint::{EndpointStats, NewSession};
pub use error::{BoxError, Error, ErrorKind, Result};
pub use listener::{EventListener, Frame};
pub use transport::{Address, TcpClient, TcpServer, UnixClient, UnixServer};

/// The handle of a running [`TcpClient`] (a [`ClientHandle`]).
pub type TcpClientHandle = ClientHandle;
pub use session::{AnySession, Session, SessionContext, SessionId, SessionSetup, SessionStats};
pub use transport::quic::{QuicClient, QuicServer};
pub use transport::tls::{TlsClientConfig, TlsServerConfig};
pub use transport::udp::{Datagram, Datagrams, UdpClient, UdpServer, UdpSocketBuilder};
pub use transport::ws::{WsClient, WsServer};

/// The traits that give every builder its shared options, to import in one line:
/// `use getty::prelude::*;` makes `.workers(..)`, `.connections(..)`,
/// `.session_config(..)` and the UDP socket options available on every endpoint builder.
pub mod prelude {
    pub use crate::endpoint::options::{ClientBuilder, ServerBuilder};
    pub use crate::endpoint::servers::ServerListBuilder;
    pub use crate::listener::EventListener;
    pub use crate::transport::udp::UdpSocketBuilder;
    pub use crate::transport::ws::WsBuilder;
    pub use crate::transport::TcpSocketBuilder;
}

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
//!     let stream = tokio::net::TcpStream::connect(server.local_addr()).await?;
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
//! ## Shape
//! Every session is a pair of actors on one arbiter: a **reader actor** that reads,
//! decodes, and forwards frames in batches, and a **logic actor** that runs the listener
//! and owns the bounded write queue. A **supervisor actor** per endpoint drives cron
//! ticks and timeouts and runs the graceful stop. See [`session`] for the data flow and
//! [`SessionConfig`] for every limit and its default.
//!
//! ## Guarantees
//! - Backpressure both ways: a full read queue stops reading; a full write queue refuses
//!   writes with [`Error::QueueFull`]. Nothing is dropped silently and nothing is retried:
//!   every write is queued and written, or its caller gets an error.
//! - One close path: `on_close` exactly once per opened session, `on_error` before it
//!   when an error ended it; a handle to a closed session returns [`Error::Closed`].
//! - Bad input ends only the session concerned.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod arbiters;
mod clock;
pub mod codec;
pub mod config;
mod endpoint;
mod error;
mod listener;
mod server;
pub mod session;
mod supervisor;
pub mod transport;

pub use codec::{Codec, LengthDelimited, RawBytes};
pub use config::SessionConfig;
pub use endpoint::{EndpointStats, NewSession};
pub use error::{BoxError, Error, Result, SessionId};
pub use listener::{EventListener, Frame};
pub use server::{TcpServer, TcpServerHandle};
pub use session::{Session, SessionContext, SessionSetup, SessionStats};

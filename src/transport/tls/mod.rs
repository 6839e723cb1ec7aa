//! TLS for TCP endpoints, with [rustls] (no OpenSSL, no unsafe code of ours).
//!
//! TLS sits below the codec: a TLS session has the same reader and logic actors, the
//! same [`EventListener`](crate::EventListener) and the same limits as a plain TCP one.
//! Give a server a [`TlsServerConfig`] with [`TcpServer::tls`](crate::TcpServer::tls)
//! and a client a [`TlsClientConfig`] with [`TcpClient::tls`](crate::TcpClient::tls).
//!
//! Every handshake runs under a timeout ([`DEFAULT_HANDSHAKE_TIMEOUT`](crate::defaults::DEFAULT_HANDSHAKE_TIMEOUT) unless set), so a
//! peer that connects and says nothing cannot pin a socket. Handshake failures are
//! [`ErrorKind::Tls`](crate::ErrorKind::Tls) with rustls's reason: a server counts them in
//! [`EndpointStats::establish_failures`](crate::EndpointStats::establish_failures) and
//! hands them to its [`on_establish_error`](crate::ServerBuilder::on_establish_error) hook;
//! a client reports them as failed dials (and so re-dials with backoff).
//!
//! Configs built here use rustls's *ring* crypto provider, passed explicitly, so no
//! process-wide default provider needs installing. A ready `rustls` config is accepted
//! as it is ([`TlsServerConfig::new`], [`TlsClientConfig::new`]).
//!
//! ```no_run
//! # async fn run() -> getty::Result<()> {
//! use bytes::{Bytes, BytesMut};
//! use getty::transport::tls::{TlsClientConfig, TlsServerConfig};
//! use getty::prelude::*;
//! use getty::{EventListener, LengthDelimited, SessionContext, TcpClient, TcpServer};
//!
//! struct Echo;
//! impl EventListener for Echo {
//!     type Codec = LengthDelimited;
//!     type Out = Bytes;
//!     fn on_message(&mut self, s: &mut SessionContext<'_, Self>, frame: BytesMut) {
//!         let _ = s.write(frame.freeze());
//!     }
//! }
//!
//! let tls = TlsServerConfig::from_pem_files("cert.pem", "key.pem")?.build()?;
//! let server = TcpServer::new("127.0.0.1:7443")
//!     .tls(tls)
//!     .on_establish_error(|err| eprintln!("{err}"))
//!     .start(|_| Ok((Echo, LengthDelimited::new())))
//!     .await?;
//!
//! // The server name for SNI and the certificate check comes from the address
//! // ("127.0.0.1" here) unless `server_name` overrides it.
//! let tls = TlsClientConfig::builder()
//!     .root_certificate_file("ca.pem")?
//!     .build()?
//!     .server_name("localhost")?;
//! let client = TcpClient::new(server.local_addr().to_string())
//!     .tls(tls)
//!     .start(|_| Ok((Echo, LengthDelimited::new())));
//! # Ok(()) }
//! ```

mod client_config;
pub(crate) mod handshake;
mod pem;
mod server_config;
mod stream;

use std::sync::Arc;

pub use client_config::{TlsClientBuilder, TlsClientConfig};
pub use server_config::{TlsServerBuilder, TlsServerConfig};
pub(crate) use stream::TlsAccepted;

/// The crypto provider of every config built here: ring, so the build needs no C
/// toolchain beyond what ring brings and no process default is consulted.
fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

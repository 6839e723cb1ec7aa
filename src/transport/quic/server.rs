//! [`QuicServer`]: one UDP socket, one quinn endpoint, a session per QUIC connection.

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use futures::future::BoxFuture;
use futures::{FutureExt, Stream};

use super::errors::handshake_failed;
use super::{config, QuicConnection};
use crate::endpoint::options::{ServerBuilder, ServerOption, ServerOptions};
use crate::endpoint::server::{Server, ServerHandle};
use crate::endpoint::NewSession;
use crate::error::{Error, Result};
use crate::listener::EventListener;
use crate::transport::tls::TlsServerConfig;
use crate::transport::Accepted;

/// How long a stopped server waits for its connections' last packets (the close frames)
/// to leave before it drops the socket.
const CLOSE_LINGER: Duration = Duration::from_secs(1);

/// A connection the endpoint received, handshake not yet run: it moves to its
/// session's arbiter, which runs the handshake (and so the connection's driver) there.
struct QuicIncoming {
    incoming: quinn::Incoming,
    local: SocketAddr,
    handshake_limit: Duration,
    idle: Option<Duration>,
}

impl Accepted for QuicIncoming {
    type Transport = QuicConnection;

    async fn establish(self) -> Result<QuicConnection> {
        let connecting = self.incoming.accept().map_err(handshake_failed)?;
        let connection = match tokio::time::timeout(self.handshake_limit, connecting).await {
            Ok(Ok(connection)) => connection,
            Ok(Err(err)) => return Err(handshake_failed(err)),
            Err(_) => {
                let limit = self.handshake_limit;
                return Err(Error::tls(format!(
                    "QUIC handshake timed out after {limit:?}"
                )));
            }
        };
        Ok(QuicConnection::accept(connection, self.local, self.idle))
    }
}

/// The endpoint's incoming connections. Dropped when the server stops accepting, which
/// makes the endpoint refuse new connections from then on.
struct QuicListener {
    endpoint: quinn::Endpoint,
    next: BoxFuture<'static, Option<quinn::Incoming>>,
    local: SocketAddr,
    handshake_limit: Duration,
    idle: Option<Duration>,
}

/// Waits for the endpoint's next incoming connection (`None` once it is closed).
fn next_incoming(endpoint: quinn::Endpoint) -> BoxFuture<'static, Option<quinn::Incoming>> {
    Box::pin(async move { endpoint.accept().await })
}

impl Stream for QuicListener {
    type Item = io::Result<QuicIncoming>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let incoming = futures::ready!(self.next.poll_unpin(cx));
        let Some(incoming) = incoming else {
            return Poll::Ready(None);
        };
        self.next = next_incoming(self.endpoint.clone());
        Poll::Ready(Some(Ok(QuicIncoming {
            incoming,
            local: self.local,
            handshake_limit: self.handshake_limit,
            idle: self.idle,
        })))
    }
}

impl Drop for QuicListener {
    fn drop(&mut self) {
        // No more accepting: new connections are refused at the QUIC level.
        self.endpoint.set_server_config(None);
    }
}

/// Builds and starts a QUIC server: sessions over QUIC connections, one bidirectional
/// stream each (see the [module docs](super) for the model, the TLS and ALPN rules,
/// and what QUIC's own events become).
///
/// ```
/// use bytes::{Bytes, BytesMut};
/// use getty::transport::quic::{QuicClient, QuicServer};
/// use getty::transport::tls::{TlsClientConfig, TlsServerConfig};
/// use getty::{EventListener, LengthDelimited, SessionContext};
///
/// struct Echo;
/// impl EventListener for Echo {
///     type Codec = LengthDelimited;
///     type Out = Bytes;
///     fn on_message(&mut self, s: &mut SessionContext<'_, Self>, frame: BytesMut) {
///         let _ = s.write(frame.freeze());
///     }
/// }
///
/// # fn pem() -> (String, String) {
/// #     let key = rcgen::KeyPair::generate().unwrap();
/// #     let cert = rcgen::CertificateParams::new(vec!["localhost".into()]).unwrap()
/// #         .self_signed(&key).unwrap();
/// #     (cert.pem(), key.serialize_pem())
/// # }
/// #[actix::main]
/// async fn main() -> getty::Result<()> {
///     let (cert, key) = pem(); // a self-signed certificate for "localhost"
///     let tls = TlsServerConfig::from_pem(cert.as_bytes(), key.as_bytes())?.build()?;
///     let server = QuicServer::new("127.0.0.1:0", tls)
///         .start(|_| Ok((Echo, LengthDelimited::new())))
///         .await?;
///     let tls = TlsClientConfig::builder()
///         .root_certificates_pem(cert.as_bytes())?
///         .build()?
///         .server_name("localhost")?;
///     let client = QuicClient::new(server.local_addr().to_string(), tls)
///         .start(|_| Ok((Echo, LengthDelimited::new())))?;
///     client.stop().await;
///     server.stop().await;
///     Ok(())
/// }
/// ```
#[derive(Debug, Clone)]
pub struct QuicServer {
    addr: String,
    tls: TlsServerConfig,
    alpn: Option<Vec<Vec<u8>>>,
    server: Server,
}

impl ServerBuilder for QuicServer {
    fn server_options(&mut self) -> &mut ServerOptions {
        self.server.server_options()
    }
}

impl QuicServer {
    /// A server that will listen on the UDP address `addr` (e.g. `"127.0.0.1:7443"`;
    /// port 0 picks a free port) and prove itself with `tls`, which must allow TLS 1.3
    /// (those [`TlsServerConfig`]'s builder makes do).
    pub fn new(addr: impl Into<String>, tls: TlsServerConfig) -> Self {
        QuicServer {
            addr: addr.into(),
            tls,
            alpn: None,
            server: Server::new().kind("quic"),
        }
    }

    /// The ALPN protocols the server speaks, most preferred first; a client must offer
    /// one of them or its handshake fails. Default: the TLS config's, or
    /// [`DEFAULT_ALPN`](super::DEFAULT_ALPN) (`getty`) when it names none. An empty list
    /// makes `start` fail with [`ErrorKind::Config`](crate::ErrorKind::Config): QUIC
    /// requires ALPN.
    pub fn alpn<I, P>(mut self, protocols: I) -> Self
    where
        I: IntoIterator<Item = P>,
        P: Into<Vec<u8>>,
    {
        self.alpn = Some(protocols.into_iter().map(Into::into).collect());
        self
    }

    /// Binds the UDP socket, then accepts until stopped: each connection's handshake
    /// runs on the arbiter that will host its session, within the TLS config's handshake
    /// timeout; a failed one is an [`ErrorKind::Tls`](crate::ErrorKind::Tls) counted in
    /// [`EndpointStats::establish_failures`](crate::EndpointStats::establish_failures).
    /// Call from within an actix system.
    ///
    /// Fails with [`ErrorKind::Config`](crate::ErrorKind::Config) for `reuse_port` (the
    /// endpoint owns its one socket), an empty ALPN list, a TLS config without TLS 1.3,
    /// or a read timeout too long for a QUIC idle timeout.
    pub async fn start<L, F>(mut self, new_session: F) -> Result<ServerHandle>
    where
        L: EventListener,
        F: NewSession<L>,
    {
        let one_socket = (
            ServerOption::ReusePort,
            "a QUIC endpoint owns its UDP socket",
        );
        self.server
            .server_options()
            .refuse("QuicServer", &[one_socket])?;
        let idle = self.server.server_options().session_config().read_timeout;
        let config = config::server(&self.tls, self.alpn.as_deref(), idle)?;
        let addr = resolve(&self.addr).await?;
        let endpoint = quinn::Endpoint::server(config, addr)?;
        let local = endpoint.local_addr()?;
        let listener = QuicListener {
            endpoint: endpoint.clone(),
            next: next_incoming(endpoint.clone()),
            local,
            handshake_limit: self.tls.handshake_limit(),
            idle,
        };
        let server = self.server.local_addr(local).serve(listener, new_session)?;
        tracing::debug!(%local, "quic server listening");
        Ok(server.after_stop(Box::new(move || {
            async move {
                // Every session is gone and closed its connection: let the close
                // frames leave, then release the socket.
                endpoint.close(
                    quinn::VarInt::from_u32(super::CLOSE_DONE),
                    b"server stopped",
                );
                let _ = tokio::time::timeout(CLOSE_LINGER, endpoint.wait_idle()).await;
            }
            .boxed_local()
        })))
    }
}

/// The first socket address `addr` resolves to.
pub(crate) async fn resolve(addr: &str) -> io::Result<SocketAddr> {
    tokio::net::lookup_host(addr).await?.next().ok_or_else(|| {
        let msg = format!("{addr} resolves to no address");
        io::Error::new(io::ErrorKind::AddrNotAvailable, msg)
    })
}

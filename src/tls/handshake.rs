//! Running a handshake under its timeout, and naming its failures.

use std::fmt;
use std::io;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpStream;
use tokio_rustls::{client, server, TlsAcceptor, TlsConnector};

use super::{TlsClientConfig, TlsServerConfig};
use crate::error::{Error, Result};

/// A server's `on_handshake_error` hook, shared by its arbiters.
#[derive(Clone)]
pub(crate) struct HandshakeHook(pub(crate) Arc<dyn Fn(&Error) + Send + Sync>);

impl fmt::Debug for HandshakeHook {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("HandshakeHook")
    }
}

/// A connection a TLS server accepted, not yet registered with any reactor, so it can
/// move to the arbiter that will host its session.
pub(crate) struct TlsAccepted {
    stream: std::net::TcpStream,
    config: TlsServerConfig,
}

impl TlsAccepted {
    pub(crate) fn new(stream: std::net::TcpStream, config: TlsServerConfig) -> Self {
        TlsAccepted { stream, config }
    }

    /// On the arbiter that hosts the session: registers the socket with its reactor and
    /// runs the server handshake under the config's timeout.
    pub(crate) async fn establish(self) -> Result<server::TlsStream<TcpStream>> {
        let stream = TcpStream::from_std(self.stream)?;
        let accept = TlsAcceptor::from(self.config.rustls.clone()).accept(stream);
        within(self.config.handshake_timeout, accept).await
    }
}

/// Runs the client handshake over a connected socket, to the server `addr` names
/// (unless the config names another), under the config's timeout.
pub(crate) async fn connect(
    config: &TlsClientConfig,
    addr: &str,
    stream: TcpStream,
) -> Result<client::TlsStream<TcpStream>> {
    let name = config.server_name_for(addr)?;
    let connect = TlsConnector::from(config.rustls.clone()).connect(name, stream);
    within(config.handshake_timeout, connect).await
}

async fn within<T>(
    limit: Duration,
    handshake: impl std::future::Future<Output = io::Result<T>>,
) -> Result<T> {
    match tokio::time::timeout(limit, handshake).await {
        Ok(Ok(stream)) => Ok(stream),
        Ok(Err(err)) => Err(handshake_error(err)),
        Err(_) => Err(Error::tls(format!("handshake timed out after {limit:?}"))),
    }
}

/// Every handshake failure is a TLS error: rustls's own reason when rustls made it
/// (a certificate, a protocol violation, an alert), else what the socket said.
fn handshake_error(err: io::Error) -> Error {
    match Error::from(err) {
        tls @ Error::Tls { .. } => tls,
        Error::Io { source, .. } if source.kind() == io::ErrorKind::UnexpectedEof => {
            Error::tls("handshake failed: the peer closed the connection")
        }
        other => Error::tls(format!("handshake failed: {other}")),
    }
}

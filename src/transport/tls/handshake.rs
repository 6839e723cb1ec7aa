//! Running a handshake under its timeout, and naming its failures.

use std::io;
use std::time::Duration;

use tokio::net::TcpStream;
use tokio_rustls::{client, server, TlsAcceptor, TlsConnector};

use super::{TlsClientConfig, TlsServerConfig};
use crate::error::{Error, ErrorKind, Result};

/// Runs the server handshake over an accepted socket, under the config's timeout.
pub(crate) async fn accept(
    config: &TlsServerConfig,
    stream: TcpStream,
) -> Result<server::TlsStream<TcpStream>> {
    let accept = TlsAcceptor::from(config.rustls.clone()).accept(stream);
    within(config.handshake_limit(), accept).await
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
    within(config.handshake_limit(), connect).await
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
    let err = Error::from(err);
    match err.kind() {
        ErrorKind::Tls { .. } => err,
        ErrorKind::Io { source, .. } if source.kind() == io::ErrorKind::UnexpectedEof => {
            Error::tls("handshake failed: the peer closed the connection")
        }
        _ => Error::tls(format!("handshake failed: {err}")),
    }
}

//! QUIC test support: certificates, getty's TLS configs for them, and a raw quinn peer
//! (one connection, one bidirectional stream) that speaks to a `QuicServer` the way
//! any QUIC client would.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use getty::transport::quic::quinn;
use getty::{TlsClientConfig, TlsServerConfig};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use super::tls::Ca;
use super::{within, SECS5};

/// A CA and the server certificate it signed (for `localhost` and 127.0.0.1).
pub struct Certs {
    pub ca: Ca,
    pub server_cert: String,
    pub server_key: String,
}

impl Certs {
    pub fn new() -> Certs {
        let ca = Ca::new("getty quic test CA");
        let leaf = ca.server();
        Certs {
            ca,
            server_cert: leaf.cert,
            server_key: leaf.key,
        }
    }

    /// The server's TLS config (no ALPN of its own: QUIC adds `getty`).
    pub fn server_tls(&self) -> TlsServerConfig {
        TlsServerConfig::from_pem(self.server_cert.as_bytes(), self.server_key.as_bytes())
            .unwrap()
            .build()
            .unwrap()
    }

    /// A client TLS config that trusts the CA, checking the name `localhost`.
    pub fn client_tls(&self) -> TlsClientConfig {
        TlsClientConfig::builder()
            .root_certificates_pem(self.ca.pem().as_bytes())
            .unwrap()
            .build()
            .unwrap()
            .server_name("localhost")
            .unwrap()
    }

    /// A raw quinn client config that trusts the CA and offers `alpn`.
    pub fn peer_config(&self, alpn: &[u8]) -> quinn::ClientConfig {
        let tls = TlsClientConfig::builder()
            .root_certificates_pem(self.ca.pem().as_bytes())
            .unwrap()
            .alpn_protocols([alpn.to_vec()])
            .build()
            .unwrap();
        let rustls = Arc::clone(tls.rustls_config());
        let crypto = quinn::crypto::rustls::QuicClientConfig::try_from(rustls).unwrap();
        quinn::ClientConfig::new(Arc::new(crypto))
    }
}

/// A raw QUIC client: its endpoint, connection and the one stream it opened.
pub struct QuicPeer {
    pub endpoint: quinn::Endpoint,
    pub connection: quinn::Connection,
    pub send: quinn::SendStream,
    pub recv: quinn::RecvStream,
    /// The wait for the server to acknowledge everything, once the stream is finished.
    finishing: Option<Finishing>,
}

type Finishing =
    Pin<Box<dyn Future<Output = Result<Option<quinn::VarInt>, quinn::StoppedError>> + Send + Sync>>;

impl QuicPeer {
    /// Connects to `server` from a fresh endpoint on 127.0.0.1 and opens a stream (the
    /// server hears of it with the first bytes written).
    pub async fn connect(server: SocketAddr, config: quinn::ClientConfig) -> QuicPeer {
        let endpoint = quinn::Endpoint::client("127.0.0.1:0".parse().unwrap()).unwrap();
        let connecting = endpoint.connect_with(config, server, "localhost").unwrap();
        let connection = within(SECS5, connecting).await.expect("quic handshake");
        let (send, recv) = within(SECS5, connection.open_bi()).await.unwrap();
        QuicPeer {
            endpoint,
            connection,
            send,
            recv,
            finishing: None,
        }
    }
}

impl AsyncRead for QuicPeer {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        AsyncRead::poll_read(Pin::new(&mut self.get_mut().recv), cx, buf)
    }
}

impl AsyncWrite for QuicPeer {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        AsyncWrite::poll_write(Pin::new(&mut self.get_mut().send), cx, buf)
    }
    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        AsyncWrite::poll_flush(Pin::new(&mut self.get_mut().send), cx)
    }
    /// Finishes the stream and waits until the server acknowledged every byte: a QUIC
    /// connection dropped before that loses what is still in flight (its close is
    /// immediate, unlike a TCP socket's), so a peer that must deliver everything waits.
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        let this = self.get_mut();
        if this.finishing.is_none() {
            let _ = this.send.finish();
            this.finishing = Some(Box::pin(this.send.stopped()));
        }
        let finishing = this.finishing.as_mut().unwrap();
        match std::task::ready!(finishing.as_mut().poll(cx)) {
            Ok(_) => Poll::Ready(Ok(())),
            Err(err) => Poll::Ready(Err(std::io::Error::other(err))),
        }
    }
}

//! [`QuicClient`]: keeps sessions to a QUIC server, re-dialing lost ones.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use super::errors::handshake_failed;
use super::server::resolve;
use super::{config, QuicConnection};
use crate::endpoint::client::{Client, ClientHandle};
use crate::endpoint::options::{ClientBuilder, ClientOptions};
use crate::endpoint::servers::{ServerList, ServerListBuilder};
use crate::endpoint::NewSession;
use crate::error::{Error, Result};
use crate::listener::EventListener;
use crate::transport::tls::TlsClientConfig;

/// Builds and starts a client that keeps sessions to a QUIC server, each over a QUIC
/// connection of its own, re-dialing lost ones like [`TcpClient`](crate::TcpClient)
/// (the same backoff, connect timeout and events; a failed handshake is a failed dial
/// with an [`ErrorKind::Tls`](crate::ErrorKind::Tls)).
///
/// Each dial binds a UDP socket of its own (on the loopback interface for a loopback
/// server, else on every interface; see [`local_addr`](Self::local_addr)), unless the
/// client dials from an [`endpoint`](Self::endpoint) you made. Sessions are named
/// `quic-client:<peer>`. The server learns of the session's stream from its first
/// bytes, so the client should speak first (see the [module docs](super)).
pub struct QuicClient {
    servers: ServerList,
    tls: TlsClientConfig,
    alpn: Option<Vec<Vec<u8>>>,
    local: Option<SocketAddr>,
    endpoint: Option<quinn::Endpoint>,
    client: Client,
}

impl std::fmt::Debug for QuicClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("QuicClient")
            .field("servers", &self.servers)
            .field("tls", &self.tls)
            .field("alpn", &self.alpn)
            .field("local", &self.local)
            .field("endpoint", &self.endpoint.is_some())
            .field("client", &self.client)
            .finish()
    }
}

impl ClientBuilder for QuicClient {
    fn client_options(&mut self) -> &mut ClientOptions {
        self.client.client_options()
    }
}

/// Several servers: each dial tries them as [`Spread`](crate::Spread) says.
impl ServerListBuilder for QuicClient {
    fn server_list(&mut self) -> &mut ServerList {
        &mut self.servers
    }
}

impl QuicClient {
    /// A client of the QUIC server at `addr` (e.g. `"127.0.0.1:7443"`), resolved at
    /// every dial, checking the server with `tls`, which must allow TLS 1.3. The server
    /// name comes from the address unless the TLS config names one.
    pub fn new(addr: impl AsRef<str>, tls: TlsClientConfig) -> Self {
        QuicClient {
            servers: ServerList::new(addr.as_ref()),
            tls,
            alpn: None,
            local: None,
            endpoint: None,
            client: Client::new().kind("quic-client"),
        }
    }

    /// The ALPN protocols to offer, most preferred first. Default: the TLS config's, or
    /// [`DEFAULT_ALPN`](super::DEFAULT_ALPN) (`getty`) when it names none. An empty list
    /// makes `start` fail with [`ErrorKind::Config`](crate::ErrorKind::Config).
    pub fn alpn<I, P>(mut self, protocols: I) -> Self
    where
        I: IntoIterator<Item = P>,
        P: Into<Vec<u8>>,
    {
        self.alpn = Some(protocols.into_iter().map(Into::into).collect());
        self
    }

    /// Binds each dial's UDP socket to `addr` (a source address, or a fixed port with
    /// one connection). Default: port 0 on the loopback interface for a loopback
    /// server, else on every interface. Setting it with [`endpoint`](Self::endpoint)
    /// makes `start` fail with [`ErrorKind::Config`](crate::ErrorKind::Config).
    pub fn local_addr(mut self, addr: SocketAddr) -> Self {
        self.local = Some(addr);
        self
    }

    /// Dials every connection from `endpoint`, a quinn endpoint you made (and may
    /// [`rebind`](quinn::Endpoint::rebind) to a new socket: its connections migrate,
    /// and keep their sessions). It must be made within a tokio runtime that outlives
    /// the client (the actix system's, e.g. `quinn::Endpoint::client` called inside it).
    pub fn endpoint(mut self, endpoint: quinn::Endpoint) -> Self {
        self.endpoint = Some(endpoint);
        self
    }

    /// Starts dialing. Call from within an actix system; the client runs until
    /// [`ClientHandle::stop`] or until every handle is dropped.
    ///
    /// Fails with [`ErrorKind::Config`](crate::ErrorKind::Config) for an empty ALPN
    /// list, a TLS config without TLS 1.3, a read timeout too long for a QUIC idle
    /// timeout, or both `local_addr` and `endpoint`.
    pub fn start<L, F>(self, new_session: F) -> Result<ClientHandle>
    where
        L: EventListener,
        F: NewSession<L>,
    {
        if self.local.is_some() && self.endpoint.is_some() {
            return Err(Error::config(
                "QuicClient: `local_addr` and `endpoint` both say where to dial from; set one",
            ));
        }
        let idle = self.client.options().session_config().read_timeout;
        let dial = Arc::new(Dial {
            config: config::client(&self.tls, self.alpn.as_deref(), idle)?,
            tls: self.tls,
            local: self.local,
            endpoint: self.endpoint,
            idle,
        });
        let servers = self.servers;
        let dial_fn = move || {
            let (servers, dial) = (servers.clone(), dial.clone());
            async move { servers.dial(|addr| dial.clone().connect(addr)).await }
        };
        Ok(self.client.start(dial_fn, new_session))
    }
}

/// What every dial of one client shares.
struct Dial {
    config: quinn::ClientConfig,
    tls: TlsClientConfig,
    local: Option<SocketAddr>,
    endpoint: Option<quinn::Endpoint>,
    idle: Option<Duration>,
}

impl Dial {
    /// Connects to `addr`, runs the handshake within the TLS config's timeout, and opens
    /// the session stream.
    async fn connect(self: Arc<Self>, addr: Arc<str>) -> Result<QuicConnection> {
        let peer = resolve(&addr).await?;
        let name = self.tls.server_name_for(&addr)?.to_str().into_owned();
        let (endpoint, own) = match &self.endpoint {
            Some(shared) => (shared.clone(), false),
            None => (quinn::Endpoint::client(self.bind_for(peer))?, true),
        };
        let local = endpoint.local_addr()?;
        let connecting = endpoint
            .connect_with(self.config.clone(), peer, &name)
            .map_err(|err| Error::quic(None, format!("cannot dial {addr}: {err}")))?;
        let limit = self.tls.handshake_limit();
        let connection = match tokio::time::timeout(limit, connecting).await {
            Ok(Ok(connection)) => connection,
            Ok(Err(err)) => return Err(handshake_failed(err)),
            Err(_) => {
                return Err(Error::tls(format!(
                    "QUIC handshake timed out after {limit:?}"
                )))
            }
        };
        let connection = QuicConnection::open(connection, local, self.idle).await?;
        Ok(if own {
            connection.keep_endpoint(endpoint)
        } else {
            connection
        })
    }

    /// Where a dial's own socket binds: as set, else port 0 on the loopback interface
    /// for a loopback peer, else on every interface of the peer's family.
    fn bind_for(&self, peer: SocketAddr) -> SocketAddr {
        if let Some(local) = self.local {
            return local;
        }
        let ip = match (peer.ip().is_loopback(), peer.is_ipv4()) {
            (true, true) => IpAddr::V4(Ipv4Addr::LOCALHOST),
            (true, false) => IpAddr::V6(Ipv6Addr::LOCALHOST),
            (false, true) => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            (false, false) => IpAddr::V6(Ipv6Addr::UNSPECIFIED),
        };
        SocketAddr::new(ip, 0)
    }
}

//! The WebSocket client endpoint: keeps N sessions to a `ws://` URL (or several) with awc, and
//! re-dials the ones it loses through the endpoint supervisor, like the TCP client.

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;
use actix_http::ws::Codec;
use actix_web::http::header::SEC_WEBSOCKET_EXTENSIONS;
use actix_web::http::Uri;
use bytes::BytesMut;
use futures::future::poll_fn;
use futures::stream::StreamExt;
use tokio::io::{AsyncWrite, AsyncWriteExt};
use tokio_util::io::ReaderStream;

use super::message::WsMessageCodec;
use super::options::{WsBuilder, WsOptions};
use super::outgoing::FrameEncoder;
use super::payload_frames::PayloadFrames;
use super::pipe::{Pipe, PipeWriter, CLOSE_LINGER};
use super::reader_actor::{Stop, WsReader, WsReaderActor};
use crate::endpoint::client::{Client, ClientHandle};
use crate::endpoint::options::{ClientBuilder, ClientOptions};
use crate::endpoint::servers::{ServerList, ServerListBuilder};
use crate::endpoint::{prepare_session, NewSession, SessionFactory};
use crate::error::{Error, Result};
use crate::listener::EventListener;
use crate::session::{start_session, ActorReader, ReaderSeat};
use crate::transport::tls::TlsClientConfig;
use crate::transport::Address;

/// Builds and starts a WebSocket client that keeps a number of sessions to one server
/// (getty's `NewWSClient`), with the options of [`TcpClient`](crate::TcpClient):
/// connection number, reconnection with backoff, connect timeout, stop, events.
///
/// Sessions see the server's address as their peer; their local address is not known
/// through awc and reads `0.0.0.0:0`.
///
/// ```no_run
/// # fn run() {
/// use std::time::Duration;
/// use bytes::{Bytes, BytesMut};
/// use getty::transport::ws::WsClient;
/// use getty::prelude::*;
/// use getty::{EventListener, LengthDelimited, SessionContext};
///
/// struct Hello;
/// impl EventListener for Hello {
///     type Codec = LengthDelimited;
///     type Out = Bytes;
///     fn on_open(&mut self, s: &mut SessionContext<'_, Self>) -> getty::Result<()> {
///         s.write(Bytes::from_static(b"hello"))
///     }
///     fn on_message(&mut self, _: &mut SessionContext<'_, Self>, frame: BytesMut) {
///         println!("echo: {frame:?}");
///     }
/// }
///
/// let client = WsClient::new("ws://127.0.0.1:7000/echo")
///     .connections(2)
///     .reconnect_interval(Duration::from_millis(100))
///     .start(|_| Ok((Hello, LengthDelimited::new())));
/// # }
/// ```
pub struct WsClient {
    servers: ServerList,
    options: WsOptions,
    /// The rustls config and the handshake timeout.
    tls: Option<(Arc<rustls::ClientConfig>, Duration)>,
    client: Client,
}

impl std::fmt::Debug for WsClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WsClient")
            .field("servers", &self.servers)
            .field("client", &self.client)
            .finish_non_exhaustive()
    }
}

/// A dial here includes the WebSocket handshake (and the TLS one for wss).
impl ClientBuilder for WsClient {
    fn client_options(&mut self) -> &mut ClientOptions {
        self.client.client_options()
    }
}

impl WsBuilder for WsClient {
    fn ws_options(&mut self) -> &mut WsOptions {
        &mut self.options
    }
}

/// Several servers (URLs): each dial tries them as [`Spread`](crate::Spread) says.
impl ServerListBuilder for WsClient {
    fn server_list(&mut self) -> &mut ServerList {
        &mut self.servers
    }
}

impl WsClient {
    /// A client of the WebSocket at `url` (getty's `WithServerAddress`), e.g.
    /// `"ws://127.0.0.1:7000/echo"`; its host is resolved at every dial.
    pub fn new(url: impl AsRef<str>) -> Self {
        WsClient {
            servers: ServerList::new(url.as_ref()),
            options: WsOptions::default(),
            tls: None,
            client: Client::new().kind("ws-client"),
        }
    }

    /// Dials `wss://` URLs with this TLS config, within its handshake timeout. The
    /// server name checked is the URL's host: awc takes it from there, so a config with
    /// a [`server_name`](TlsClientConfig::server_name) of its own cannot be honoured and
    /// is refused with [`ErrorKind::Config`](crate::ErrorKind::Config) (put the name in the
    /// URL). Default: none, and a `wss://` URL fails to dial.
    pub fn tls(mut self, config: TlsClientConfig) -> Result<Self> {
        if let Some(name) = &config.server_name {
            return Err(Error::config(format!(
                "WsClient cannot honour the TLS server name {name:?}: awc checks the URL's \
                 host, so dial wss://{name}:port/ instead"
            )));
        }
        self.tls = Some((config.rustls_config().clone(), config.handshake_limit()));
        Ok(self)
    }

    /// Starts dialing, in codec mode: binary messages feed the session's codec as one
    /// byte stream (see the [module docs](crate::transport::ws)). Call from within an
    /// actix system; the client runs until [`ClientHandle::stop`] or until every handle
    /// is dropped.
    pub fn start<L, F>(self, new_session: F) -> ClientHandle
    where
        L: EventListener,
        F: NewSession<L>,
    {
        self.dial(false, new_session)
    }

    /// Like [`start`](Self::start), in message mode: each WebSocket message is one
    /// frame, text or binary, and each frame written is one message of the kind its
    /// codec gives it (see [`WsMessageCodec`]). The session's max frame length bounds one
    /// whole message.
    pub fn start_messages<L, F>(self, new_session: F) -> ClientHandle
    where
        L: EventListener<Codec: WsMessageCodec>,
        F: NewSession<L>,
    {
        self.dial(true, new_session)
    }

    fn dial<L, F>(mut self, messages: bool, new_session: F) -> ClientHandle
    where
        L: EventListener,
        F: NewSession<L>,
    {
        self.options.messages = messages;
        let options = self.options;
        let (servers, tls) = (self.servers, self.tls);
        let timeout = self.client.options().connect_timeout;
        let config = self.client.options().session_config.clone();
        let max_frame = options.message_bound(&config);
        let dial_url = move |url: Arc<str>| {
            let tls = tls.clone();
            async move {
                let peer = resolve(&url).await?;
                // awc is bound to the thread it runs on: the client is made on the
                // session's arbiter, where the dial runs.
                let builder = awc::Client::builder().timeout(timeout);
                let client = match tls {
                    Some((tls, handshake)) => builder
                        .connector(
                            awc::Connector::new()
                                .rustls_0_23(tls)
                                .handshake_timeout(handshake),
                        )
                        .finish(),
                    None => builder.finish(),
                };
                let mut request = client.ws(&*url).address(peer).max_frame_size(max_frame);
                if let Some(deflate) = options.deflate {
                    request = request.set_header(SEC_WEBSOCKET_EXTENSIONS, deflate.client_offer());
                }
                let (response, connection) = request
                    .connect()
                    .await
                    .map_err(|err| Error::websocket(format!("connect to {url}: {err}")))?;
                let answers = response.headers().get_all(SEC_WEBSOCKET_EXTENSIONS);
                let answers = answers.filter_map(|v| v.to_str().ok());
                // RFC 6455 §4.1: an extension the client did not offer fails the connection.
                let agreed = match options.deflate {
                    Some(deflate) => deflate.agreed(answers),
                    None => match answers.into_iter().next() {
                        Some(ext) => Err(format!(
                            "the server answered an extension not offered: {ext}"
                        )),
                        None => Ok(None),
                    },
                }
                .map_err(|why| Error::websocket(format!("connect to {url}: {why}")))?;
                Ok::<_, Error>((peer, connection, agreed))
            }
        };
        let dial = move || {
            let (servers, dial_url) = (servers.clone(), dial_url.clone());
            async move { servers.dial(dial_url).await }
        };
        let hook: Arc<SessionFactory<L>> = Arc::new(new_session);
        self.client
            .start_with(dial, move |(peer, connection, agreed), slot| {
                let local = Address::Inet(SocketAddr::from((Ipv4Addr::UNSPECIFIED, 0)));
                let Some((setup, listener, codec, slot)) = prepare_session(
                    &*hook,
                    "ws-client",
                    local,
                    Address::Inet(peer),
                    config.clone(),
                    slot,
                ) else {
                    return;
                };
                // The connection's socket from here on: frames are read and written by
                // this crate (with RSV1 where permessage-deflate was agreed, which awc's
                // codec refuses), starting with what awc read past the handshake. The
                // hook may have changed the max frame length: the limit follows it.
                let parts = connection.into_parts();
                let (read, write) = tokio::io::split(parts.io);
                let read_ahead =
                    futures::stream::once(futures::future::ready(Ok(parts.read_buf.freeze())));
                let chunks = read_ahead.chain(ReaderStream::new(read));
                let bound = options.message_bound(setup.config());
                let mut frames =
                    PayloadFrames::new(chunks, Codec::new().client_mode().max_size(bound), bound);
                if agreed.is_some() {
                    frames = frames.allow_rsv1();
                }
                let pipe = Pipe::new(FrameEncoder::client(agreed.map(|a| a.deflater())));
                let writer = PipeWriter::for_session(pipe.clone(), options);
                let unsent = parts.write_buf;
                let reader = ActorReader(|seat: ReaderSeat<L>| {
                    let reader = WsReader::new(seat, pipe.clone(), options, agreed);
                    let actor = WsReaderActor::start(reader, frames);
                    let stop = actor.clone().recipient();
                    actix_rt::spawn(pump(pipe, write, unsent, stop));
                    Some(actor.recipient())
                });
                start_session(setup, listener, codec, slot, writer, reader);
            })
    }
}

/// Resolves the host of a WebSocket URL.
async fn resolve(url: &str) -> Result<SocketAddr> {
    let uri: Uri = url
        .parse()
        .map_err(|err| Error::websocket(format!("bad url {url}: {err}")))?;
    let host = uri.host().unwrap_or_default();
    let host = host
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_owned();
    let default_port = match uri.scheme_str() {
        Some("wss") | Some("https") => 443,
        _ => 80,
    };
    let port = uri.port_u16().unwrap_or(default_port);
    let first = tokio::net::lookup_host((host.as_str(), port)).await?.next();
    first.ok_or_else(|| Error::websocket(format!("{host} resolves to no address")))
}

/// The only writer of a client connection: sends what the session's pipe holds (after
/// `unsent`, what awc had not written yet), then waits for the close handshake, then
/// drops its half of the connection and stops the reader (which drops the other).
async fn pump<W>(pipe: Pipe, mut io: W, unsent: BytesMut, reader: Recipient<Stop>)
where
    W: AsyncWrite + Unpin,
{
    let work = async {
        if !unsent.is_empty() && io.write_all(&unsent).await.is_err() {
            return;
        }
        loop {
            // Everything ready goes out in one write.
            if let Some(chunk) = pipe.take_chunk() {
                if io.write_all(&chunk).await.is_err() {
                    return;
                }
                continue;
            }
            if io.flush().await.is_err() {
                return;
            }
            match poll_fn(|cx| pipe.poll_chunk(cx)).await {
                Some(chunk) => {
                    if io.write_all(&chunk).await.is_err() {
                        return;
                    }
                }
                None => break,
            }
        }
        if io.flush().await.is_ok() && pipe.close_sent() {
            let _ = tokio::time::timeout(CLOSE_LINGER, poll_fn(|cx| pipe.poll_finished(cx))).await;
        }
    };
    // A peer that reads nothing would hold a write forever: once the session let go of
    // the writer, the pump gets the linger time and no more.
    let abandoned = async {
        poll_fn(|cx| pipe.poll_writer_gone(cx)).await;
        tokio::time::sleep(CLOSE_LINGER).await;
    };
    tokio::select! {
        _ = work => {}
        _ = abandoned => {}
    }
    pipe.mark_dead();
    drop(io);
    let _ = reader.try_send(Stop);
}

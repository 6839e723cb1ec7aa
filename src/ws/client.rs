//! The WebSocket client endpoint: keeps N sessions to one `ws://` URL with awc, and
//! re-dials the ones it loses through the endpoint supervisor, like the TCP client.

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;
use actix_http::ws::{Frame, Message, ProtocolError};
use actix_web::http::Uri;
use futures::future::poll_fn;
use futures::stream::StreamExt;
use futures::{Sink, SinkExt};
use tokio_util::codec::Decoder;

use super::pipe::{Pipe, PipeWriter, CLOSE_LINGER};
use super::reader::{WsOptions, WsReader};
use super::{run_hook, WsIn};
use crate::arbiters::ArbiterPool;
use crate::client::{ClientEvent, ClientHandle, EventHook, DEFAULT_CONNECT_TIMEOUT};
use crate::endpoint::{EndpointShared, NewSession, SessionFactory, SessionSlot};
use crate::error::{BoxError, Error, Result};
use crate::listener::EventListener;
use crate::reconnect::{Backoff, DEFAULT_MAX_RECONNECT_INTERVAL, DEFAULT_RECONNECT_INTERVAL};
use crate::session::{start_session_with_reader, SessionWriter};
use crate::supervisor::{Redial, Supervisor};
use crate::tls::TlsClientConfig;
use crate::transport::Address;
use crate::SessionConfig;

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
/// use getty::ws::WsClient;
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
    url: String,
    connections: usize,
    reconnect_interval: Duration,
    max_reconnect_interval: Duration,
    workers: usize,
    connect_timeout: Duration,
    config: SessionConfig,
    options: WsOptions,
    tls: Option<Arc<rustls::ClientConfig>>,
    events: Option<EventHook>,
}

impl std::fmt::Debug for WsClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WsClient")
            .field("url", &self.url)
            .field("connections", &self.connections)
            .field("reconnect_interval", &self.reconnect_interval)
            .field("max_reconnect_interval", &self.max_reconnect_interval)
            .field("workers", &self.workers)
            .field("connect_timeout", &self.connect_timeout)
            .finish_non_exhaustive()
    }
}

impl WsClient {
    /// A client of the WebSocket at `url` (getty's `WithServerAddress`), e.g.
    /// `"ws://127.0.0.1:7000/echo"`; its host is resolved at every dial.
    pub fn new(url: impl Into<String>) -> Self {
        WsClient {
            url: url.into(),
            connections: 1,
            reconnect_interval: DEFAULT_RECONNECT_INTERVAL,
            max_reconnect_interval: DEFAULT_MAX_RECONNECT_INTERVAL,
            workers: 1,
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            config: SessionConfig::default(),
            options: WsOptions::default(),
            tls: None,
            events: None,
        }
    }

    /// How many sessions to keep (getty's `WithConnectionNumber`). Default 1.
    pub fn connections(mut self, n: usize) -> Self {
        self.connections = n;
        self
    }

    /// First delay before re-dialing (getty's `WithReconnectInterval`). Default 300 ms.
    pub fn reconnect_interval(mut self, interval: Duration) -> Self {
        self.reconnect_interval = interval;
        self
    }

    /// Cap on the delay between dial rounds. Default 10 s; see
    /// [`TcpClient::max_reconnect_interval`](crate::TcpClient::max_reconnect_interval).
    pub fn max_reconnect_interval(mut self, cap: Duration) -> Self {
        self.max_reconnect_interval = cap;
        self
    }

    /// Arbiters (threads) the sessions are spread over, round-robin; the calling arbiter
    /// is the first. Default 1.
    pub fn workers(mut self, n: usize) -> Self {
        self.workers = n.max(1);
        self
    }

    /// How long one dial, handshake included, may take. Default 3 s (getty's).
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// The config each session starts with, before the `new_session` hook changes it.
    pub fn session_config(mut self, config: SessionConfig) -> Self {
        self.config = config;
        self
    }

    /// How often each session pings the server. Default: the session's cron period.
    pub fn ping_interval(mut self, every: Duration) -> Self {
        self.options.ping_interval = Some(every);
        self
    }

    /// Feeds text messages to the codec like binary ones. Default: off (a text message
    /// ends the session with [`Error::WebSocket`]).
    pub fn allow_text(mut self, allow: bool) -> Self {
        self.options.allow_text = allow;
        self
    }

    /// Dials `wss://` URLs with this TLS config. The server name checked is the URL's
    /// host (the config's `server_name` is not used), and awc's connect timeout bounds
    /// the handshake. Default: none, and a `wss://` URL fails to dial.
    pub fn tls(mut self, config: TlsClientConfig) -> Self {
        self.tls = Some(config.rustls_config().clone());
        self
    }

    /// Calls `hook` on the client's supervisor each time a session comes up or goes
    /// down or a dial fails. It must return quickly.
    pub fn on_event(mut self, hook: impl Fn(ClientEvent) + 'static) -> Self {
        self.events = Some(Box::new(hook));
        self
    }

    /// Starts dialing. Call from within an actix system; the client runs until
    /// [`ClientHandle::stop`] or until every handle is dropped.
    pub fn start<L, F>(self, new_session: F) -> ClientHandle
    where
        L: EventListener,
        F: NewSession<L>,
    {
        let endpoint = Arc::new(EndpointShared::default());
        let pool = Arc::new(ArbiterPool::start(self.workers));
        let dialer = Dialer {
            url: Arc::from(self.url),
            connect_timeout: self.connect_timeout,
            config: self.config.clone(),
            options: self.options,
            tls: self.tls,
            hook: Arc::new(new_session),
            endpoint: endpoint.clone(),
        };
        let seed = crate::clock::now_ms() ^ (Arc::as_ptr(&endpoint) as u64);
        let redial = Redial {
            wanted: self.connections,
            dial: Box::new({
                let pool = pool.clone();
                move |slot| {
                    let (_, arbiter) = pool.next();
                    let dialer = dialer.clone();
                    // awc is bound to the thread it runs on, so the dial starts there. If
                    // the arbiter is gone the closure is dropped with its slot, which
                    // counts as a failed dial.
                    arbiter.spawn_fn(move || {
                        actix_rt::spawn(dialer.dial(slot));
                    });
                }
            }),
            backoff: Backoff::new(self.reconnect_interval, self.max_reconnect_interval, seed),
            events: self.events,
            timer: None,
        };
        let supervisor = Supervisor::new(endpoint.clone(), &self.config)
            .with_redial(redial)
            .on_stopped(move || pool.stop())
            .start();
        ClientHandle::new(endpoint, supervisor)
    }
}

/// Everything one dial needs, cheap to clone into each dial task.
struct Dialer<L: EventListener> {
    url: Arc<str>,
    connect_timeout: Duration,
    config: SessionConfig,
    options: WsOptions,
    tls: Option<Arc<rustls::ClientConfig>>,
    hook: Arc<SessionFactory<L>>,
    endpoint: Arc<EndpointShared>,
}

impl<L: EventListener> Clone for Dialer<L> {
    fn clone(&self) -> Self {
        Dialer {
            url: self.url.clone(),
            connect_timeout: self.connect_timeout,
            config: self.config.clone(),
            options: self.options,
            tls: self.tls.clone(),
            hook: self.hook.clone(),
            endpoint: self.endpoint.clone(),
        }
    }
}

impl<L: EventListener> Dialer<L> {
    /// Resolves the URL's host.
    async fn resolve(&self) -> Result<SocketAddr> {
        let uri: Uri = self
            .url
            .parse()
            .map_err(|err| Error::websocket(format!("bad url {}: {err}", self.url)))?;
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

    async fn dial(self, slot: SessionSlot) {
        let connect = tokio::time::timeout(self.connect_timeout, async {
            let peer = self.resolve().await?;
            let client = match &self.tls {
                Some(tls) => awc::Client::builder()
                    .connector(awc::Connector::new().rustls_0_23(tls.clone()))
                    .timeout(self.connect_timeout)
                    .finish(),
                None => awc::Client::builder()
                    .timeout(self.connect_timeout)
                    .finish(),
            };
            let (_, connection) = client
                .ws(&*self.url)
                .address(peer)
                .max_frame_size(self.config.read_buffer_bound())
                .connect()
                .await
                .map_err(|err| Error::websocket(format!("connect to {}: {err}", self.url)))?;
            Ok::<_, Error>((peer, connection))
        });
        let connected = tokio::select! {
            connected = connect => connected,
            _ = self.endpoint.stopped() => return slot.abandon(),
        };
        let (peer, mut connection) = match connected {
            Ok(Ok(connected)) => connected,
            Ok(Err(err)) => return slot.dial_failed(err),
            Err(_) => {
                let msg = format!(
                    "connect to {} timed out after {:?}",
                    self.url, self.connect_timeout
                );
                let err = std::io::Error::new(std::io::ErrorKind::TimedOut, msg);
                return slot.dial_failed(Error::from(err));
            }
        };
        if self.endpoint.is_stopping() {
            return slot.abandon();
        }
        let local = Address::Inet(SocketAddr::from((Ipv4Addr::UNSPECIFIED, 0)));
        let Some((setup, listener, codec, slot)) = run_hook(
            &*self.hook,
            "ws-client",
            local,
            Address::Inet(peer),
            self.config.clone(),
            slot,
        ) else {
            return;
        };
        // The hook may have changed the max frame length: the codec's limit follows it.
        let limited = connection
            .codec_ref()
            .clone()
            .max_size(setup.config().read_buffer_bound());
        *connection.codec_mut() = limited;
        let (sink, stream) = connection.split();
        let pipe = Pipe::new();
        let options = self.options;
        let writer = SessionWriter {
            io: PipeWriter::new(pipe.clone()),
            preserves_messages: true,
            limit: None,
        };
        start_session_with_reader(setup, listener, codec, slot, writer, |seat| {
            let reader = WsReader::new(seat.codec, seat.shared, seat.logic, pipe.clone(), options);
            let actor = WsClientActor::create(move |ctx| {
                ctx.add_stream(stream);
                WsClientActor { reader }
            });
            actix_rt::spawn(pump(pipe, sink, actor.recipient()));
            None
        });
    }
}

/// The only writer of a client connection: sends what the session's pipe holds, then
/// waits for the close handshake, then drops the connection and stops the reader.
async fn pump<S>(pipe: Pipe, mut sink: S, reader: Recipient<Stop>)
where
    S: Sink<Message> + Unpin,
{
    let work = async {
        loop {
            let msg = match pipe.try_next() {
                Some(msg) => msg,
                None => {
                    if sink.flush().await.is_err() {
                        return;
                    }
                    match poll_fn(|cx| pipe.poll_next(cx)).await {
                        Some(msg) => msg,
                        None => break,
                    }
                }
            };
            if sink.feed(msg).await.is_err() {
                return;
            }
        }
        if sink.flush().await.is_ok() && pipe.close_sent() {
            let _ = tokio::time::timeout(CLOSE_LINGER, poll_fn(|cx| pipe.poll_finished(cx))).await;
        }
    };
    // A peer that reads nothing would hold a flush forever: once the session let go of
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
    drop(sink);
    let _ = reader.try_send(Stop);
}

/// Tells a client reader to stop: the connection is over.
struct Stop;

impl actix::Message for Stop {
    type Result = ();
}

/// The reader of one client session: its stream is the connection's incoming frames.
struct WsClientActor<D: Decoder<Item: Send + 'static>> {
    reader: WsReader<D>,
}

// Nothing in the actor is pinned in place; the decoder need not be Unpin.
impl<D: Decoder<Item: Send + 'static>> Unpin for WsClientActor<D> {}

impl<D> Actor for WsClientActor<D>
where
    D: Decoder<Item: Send + 'static, Error: Into<BoxError>> + 'static,
{
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        ctx.run_interval(self.reader.ping_interval(), |act, _| act.reader.ping());
    }

    fn stopped(&mut self, _: &mut Context<Self>) {
        self.reader.stopped();
    }
}

impl<D> StreamHandler<std::result::Result<Frame, ProtocolError>> for WsClientActor<D>
where
    D: Decoder<Item: Send + 'static, Error: Into<BoxError>> + 'static,
{
    fn handle(&mut self, item: std::result::Result<Frame, ProtocolError>, ctx: &mut Context<Self>) {
        let msg = match item {
            Ok(Frame::Binary(bytes)) => WsIn::Data { bytes, text: false },
            Ok(Frame::Text(bytes)) => WsIn::Data { bytes, text: true },
            Ok(Frame::Continuation(item)) => WsIn::Continuation(item),
            Ok(Frame::Ping(payload)) => WsIn::Ping(payload),
            Ok(Frame::Pong(_)) => WsIn::Pong,
            Ok(Frame::Close(reason)) => WsIn::Close(reason),
            Err(err) => return self.reader.on_protocol_error::<Self>(&err, ctx),
        };
        self.reader.on_message::<Self>(msg, ctx);
    }

    fn finished(&mut self, ctx: &mut Context<Self>) {
        self.reader.finished::<Self>(ctx);
    }
}

impl<D> Handler<Stop> for WsClientActor<D>
where
    D: Decoder<Item: Send + 'static, Error: Into<BoxError>> + 'static,
{
    type Result = ();

    fn handle(&mut self, _: Stop, ctx: &mut Context<Self>) {
        self.reader.finished::<Self>(ctx);
        ctx.stop();
    }
}

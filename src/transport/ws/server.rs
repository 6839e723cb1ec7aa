//! The WebSocket server endpoint: actix-web accepts and upgrades (with actix-web-actors'
//! handshake), and every upgraded connection runs as a session whose reader actor
//! decodes the request's payload with actix-http's WebSocket codec and whose writes
//! leave as the response body.

use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use actix::prelude::*;
use actix_http::ws::Codec;
use actix_web::http::header::SEC_WEBSOCKET_EXTENSIONS;
use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer, ResponseError};
use actix_web_actors::ws as aws;
use bytes::Bytes;
use futures::{FutureExt, Stream};

use super::message::WsMessageCodec;
use super::options::{WsBuilder, WsOptions};
use super::outgoing::FrameEncoder;
use super::payload_frames::PayloadFrames;
use super::pipe::{Pipe, PipeWriter, CLOSE_LINGER};
use super::reader_actor::{WsReader, WsReaderActor};
use crate::defaults::DEFAULT_WS_PATH;
use crate::endpoint::options::{ServerBuilder, ServerOption, ServerOptions};
use crate::endpoint::server::{ServerHandle, ServerParts};
use crate::endpoint::supervisor::Supervisor;
use crate::endpoint::{prepare_session, EndpointShared, NewSession, SessionFactory, SessionSlot};
use crate::error::{Error, Result};
use crate::listener::EventListener;
use crate::metrics::{EndpointMetrics, Role};
use crate::session::{start_session, ActorReader, ReaderSeat};
use crate::transport::tls::TlsServerConfig;
use crate::transport::Address;
use crate::SessionConfig;

/// Builds and starts a WebSocket server (getty's `NewWSServer`): an HTTP server that
/// upgrades requests to one path and runs a session for each WebSocket.
///
/// In codec mode ([`start`](Self::start)) each binary message is fed to the session's
/// codec, which may find zero or more frames in it (a frame may also span messages), and
/// each frame the session writes goes out as one binary message; in message mode
/// ([`start_messages`](Self::start_messages)) each message is one frame, text or binary.
/// The library answers pings, sends its own every ping interval, and runs the close
/// handshake; see the [module docs](crate::transport::ws).
///
/// ```no_run
/// # async fn run() -> getty::Result<()> {
/// use bytes::{Bytes, BytesMut};
/// use getty::transport::ws::WsServer;
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
/// let server = WsServer::new("127.0.0.1:7000")
///     .path("/echo")
///     .start(|_| Ok((Echo, LengthDelimited::new())))
///     .await?;
/// println!("listening on ws://{}/echo", server.local_addr());
/// server.stop().await;
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct WsServer {
    addr: String,
    path: String,
    server: ServerOptions,
    options: WsOptions,
    tls: Option<TlsServerConfig>,
    routes: Option<Routes>,
}

/// The application's own routes, added to every worker's `App`.
type Routes = Arc<dyn Fn(&mut web::ServiceConfig) + Send + Sync>;

impl std::fmt::Debug for WsServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WsServer")
            .field("addr", &self.addr)
            .field("path", &self.path)
            .field("server", &self.server)
            .field("tls", &self.tls.is_some())
            .finish_non_exhaustive()
    }
}

/// The shared server options. Sessions are spread over actix-web's workers (a session
/// lives on the worker that accepted its connection), and upgrades past
/// `max_connections` are answered 503 and counted as refused. `on_establish_error` does
/// not apply (actix-web runs the TLS handshake and answers a bad upgrade itself):
/// [`WsServer::start`] fails with [`ErrorKind::Config`](crate::ErrorKind::Config) when it
/// is set. The session config's max frame length also bounds one WebSocket message (plus
/// the codec header allowance).
impl ServerBuilder for WsServer {
    fn server_options(&mut self) -> &mut ServerOptions {
        &mut self.server
    }
}

impl WsBuilder for WsServer {
    fn ws_options(&mut self) -> &mut WsOptions {
        &mut self.options
    }
}

impl WsServer {
    /// A server that will listen on `addr` (getty's `WithLocalAddress`), e.g.
    /// `"127.0.0.1:7000"`; port 0 picks a free port (see [`ServerHandle::local_addr`]).
    pub fn new(addr: impl Into<String>) -> Self {
        WsServer {
            addr: addr.into(),
            path: DEFAULT_WS_PATH.to_owned(),
            server: ServerOptions::default(),
            options: WsOptions::default(),
            tls: None,
            routes: None,
        }
    }

    /// The path WebSocket upgrades are accepted on (getty's `WithWebsocketServerPath`).
    /// Default [`DEFAULT_WS_PATH`] (`/`). Other paths answer 404.
    pub fn path(mut self, path: impl Into<String>) -> Self {
        let path = path.into();
        self.path = if path.starts_with('/') {
            path
        } else {
            format!("/{path}")
        };
        self
    }

    /// Serves `wss://` with this TLS config. actix-web runs the handshake with its own
    /// timeout (3 s) and sets the ALPN protocols to HTTP/1.1 and h2, so a config with a
    /// handshake timeout or ALPN protocols of its own cannot be honoured: `start` fails
    /// with [`ErrorKind::Config`](crate::ErrorKind::Config). Default: plain `ws://`.
    pub fn tls(mut self, config: TlsServerConfig) -> Self {
        self.tls = Some(config);
        self
    }

    /// Adds the application's own actix-web routes next to the WebSocket path (a page
    /// that opens the WebSocket, a health check). `routes` runs once per worker.
    ///
    /// ```no_run
    /// use actix_web::{web, HttpResponse};
    /// let server = getty::transport::ws::WsServer::new("127.0.0.1:7000")
    ///     .path("/ws")
    ///     .configure(|cfg| {
    ///         cfg.route("/", web::get().to(|| async { HttpResponse::Ok().body("hello") }));
    ///     });
    /// ```
    pub fn configure(
        mut self,
        routes: impl Fn(&mut web::ServiceConfig) + Send + Sync + 'static,
    ) -> Self {
        self.routes = Some(Arc::new(routes));
        self
    }

    /// Binds, then serves until stopped, running `new_session` for each upgrade on the
    /// worker that accepted it, in codec mode: binary messages feed the session's codec
    /// as one byte stream (see the [module docs](crate::transport::ws)). Call from within
    /// an actix system.
    pub async fn start<L, F>(self, new_session: F) -> Result<ServerHandle>
    where
        L: EventListener,
        F: NewSession<L>,
    {
        self.serve(false, new_session).await
    }

    /// Like [`start`](Self::start), in message mode: each WebSocket message is one
    /// frame, text or binary, and each frame written is one message of the kind its
    /// codec gives it (see [`WsMessageCodec`]). The session's max frame length bounds one
    /// whole message.
    pub async fn start_messages<L, F>(self, new_session: F) -> Result<ServerHandle>
    where
        L: EventListener<Codec: WsMessageCodec>,
        F: NewSession<L>,
    {
        self.serve(true, new_session).await
    }

    async fn serve<L, F>(mut self, messages: bool, new_session: F) -> Result<ServerHandle>
    where
        L: EventListener,
        F: NewSession<L>,
    {
        self.options.messages = messages;
        let handshake_by_actix = (
            ServerOption::OnEstablishError,
            "actix-web runs the TLS handshake and answers bad upgrades itself",
        );
        self.server.refuse("WsServer", &[handshake_by_actix])?;
        let tls = match &self.tls {
            Some(tls) => Some(rustls_for_actix(tls)?),
            None => None,
        };
        let label = self.server.metrics_label.as_ref();
        let metrics = EndpointMetrics::register(label, "ws", Role::Server);
        let endpoint = Arc::new(EndpointShared::new(
            self.server.memory_budget,
            false,
            metrics,
        ));
        let supervisor = Supervisor::new(endpoint.clone(), &self.server.session_config).start();
        let accepting = Arc::new(AtomicBool::new(true));
        let state = Arc::new(ServerState::<L> {
            hook: Arc::new(new_session),
            config: self.server.session_config.clone(),
            options: self.options,
            max_connections: self.server.max_connections(),
            endpoint: endpoint.clone(),
            supervisor: supervisor.clone(),
            accepting: accepting.clone(),
        });
        let path = self.path.clone();
        let routes = self.routes.clone();
        let server = HttpServer::new(move || {
            let routes = routes.clone();
            App::new()
                .app_data(web::Data::from(state.clone()))
                .route(&path, web::get().to(upgrade::<L>))
                .configure(move |cfg| {
                    if let Some(routes) = routes {
                        routes(cfg);
                    }
                })
        })
        .workers(self.server.workers())
        // A connection serves one upgrade: once its WebSocket is closed, drop it.
        .keep_alive(actix_web::http::KeepAlive::Disabled)
        // ... at once: actix-web would otherwise linger up to a second for the client to
        // hang up first, and the close handshake is already over.
        .client_disconnect_timeout(Duration::ZERO)
        // Each connection's socket, duplicated, for the session to shut the connection
        // should its peer stop reading (see `PipeWriter`'s drop).
        .on_connect(|conn, ext| {
            if let Some(tcp) = conn.downcast_ref::<actix_web::rt::net::TcpStream>() {
                if let Ok(socket) = socket2::SockRef::from(tcp).try_clone() {
                    ext.insert(ConnectionSocket(Rc::new(socket)));
                }
            }
        })
        .disable_signals()
        .shutdown_timeout(1);
        let listener = crate::transport::tcp::listen(&self.addr, self.server.reuse_port).await?;
        let server = match tls {
            Some(tls) => server.listen_rustls_0_23(listener, tls)?,
            None => server.listen(listener)?,
        };
        let local_addr = server
            .addrs()
            .first()
            .copied()
            .ok_or_else(|| std::io::Error::other("bound to no address"))?;
        let server = server.run();
        let http = server.handle();
        actix_rt::spawn(server);
        tracing::debug!(%local_addr, path = %self.path, "websocket server listening");
        let paused = http.clone();
        Ok(ServerHandle::new(ServerParts {
            local_addr: local_addr.into(),
            endpoint,
            supervisor,
            stop_accepting: Some(Box::new(move || {
                accepting.store(false, Ordering::Release);
                async move { paused.pause().await }.boxed_local()
            })),
            after_stop: Some(Box::new(move || {
                async move { http.stop(true).await }.boxed_local()
            })),
            transport: None,
        }))
    }
}

/// The rustls config to give actix-web for `tls`, which must not ask for what actix-web
/// does its own way (the handshake timeout, the ALPN protocols).
fn rustls_for_actix(tls: &TlsServerConfig) -> Result<rustls::ServerConfig> {
    if tls.handshake_timeout_set() {
        return Err(Error::config(
            "WsServer cannot honour the TLS config's handshake timeout: actix-web runs the \
             handshake with its own (3 s)",
        ));
    }
    let config = tls.rustls_config();
    if !config.alpn_protocols.is_empty() {
        return Err(Error::config(
            "WsServer cannot honour the TLS config's ALPN protocols: actix-web sets them to \
             HTTP/1.1 and h2",
        ));
    }
    Ok((**config).clone())
}

/// A duplicate of an accepted connection's socket (plain `ws://` only: a `wss://`
/// connection's TLS stream is not a type this crate can name).
struct ConnectionSocket(Rc<socket2::Socket>);

struct ServerState<L: EventListener> {
    hook: Arc<SessionFactory<L>>,
    config: SessionConfig,
    options: WsOptions,
    max_connections: usize,
    endpoint: Arc<EndpointShared>,
    supervisor: Addr<Supervisor>,
    /// Cleared by `stop_accepting`: upgrades are answered 503 from then on, whatever
    /// actix-web's accept loop (paused a moment later) still lets in.
    accepting: Arc<AtomicBool>,
}

/// One upgrade request: refuse it, or start its session on this worker.
async fn upgrade<L: EventListener>(
    req: HttpRequest,
    payload: web::Payload,
    state: web::Data<ServerState<L>>,
) -> HttpResponse {
    let endpoint = &state.endpoint;
    let accepting = state.accepting.load(Ordering::Acquire) && !endpoint.is_stopping();
    if !accepting || endpoint.live() >= state.max_connections {
        endpoint.count_refused();
        tracing::debug!("server not accepting or max connections reached; upgrade refused");
        return HttpResponse::ServiceUnavailable().finish();
    }
    let options = state.options;
    let mut response = match aws::handshake(&req) {
        Ok(response) => response,
        Err(err) => {
            // A request to the WebSocket path that is no valid upgrade: its handshake
            // failed, as a TLS one does on a TCP server.
            endpoint.count_establish_failure();
            return err.error_response();
        }
    };
    let Some(peer) = req.peer_addr() else {
        return HttpResponse::BadRequest().finish();
    };
    let local = req.app_config().local_addr();
    let slot = SessionSlot::new(endpoint.clone(), state.supervisor.clone());
    let Some((setup, listener, codec, slot)) = prepare_session(
        &*state.hook,
        "ws",
        Address::Inet(local),
        Address::Inet(peer),
        state.config.clone(),
        slot,
    ) else {
        return HttpResponse::Forbidden().finish();
    };
    // permessage-deflate, if this server compresses and the client offered what it can
    // honour; any other offer is declined by answering none.
    let agreed = options.deflate.and_then(|deflate| {
        let offers = req.headers().get_all(SEC_WEBSOCKET_EXTENSIONS);
        let (answer, agreed) = deflate.accept(offers.filter_map(|v| v.to_str().ok()))?;
        response.insert_header((SEC_WEBSOCKET_EXTENSIONS, answer));
        Some(agreed)
    });
    let pipe = Pipe::new(FrameEncoder::server(agreed.map(|a| a.deflater())));
    if let Some(ConnectionSocket(socket)) = req.conn_data::<ConnectionSocket>() {
        pipe.set_socket(socket.clone());
    }
    let writer = PipeWriter::for_session(pipe.clone(), options);
    let mut started = false;
    let reader = ActorReader(|seat: ReaderSeat<L>| {
        let reader = WsReader::new(seat, pipe.clone(), options, agreed);
        let bound = reader.bound();
        let mut frames = PayloadFrames::new(payload, Codec::new().max_size(bound), bound);
        if agreed.is_some() {
            frames = frames.allow_rsv1();
        }
        started = true;
        Some(WsReaderActor::start(reader, frames).recipient())
    });
    start_session(setup, listener, codec, slot, writer, reader);
    if !started {
        return HttpResponse::InternalServerError().finish();
    }
    response.streaming(WsBody { pipe, linger: None })
}

/// The response body of one upgraded connection: sends what the session's pipe holds.
/// It ends once the close handshake is over (or the peer did not answer our close within
/// [`CLOSE_LINGER`]); actix-web then closes the connection.
struct WsBody {
    pipe: Pipe,
    linger: Option<Pin<Box<tokio::time::Sleep>>>,
}

impl Stream for WsBody {
    type Item = std::result::Result<Bytes, std::io::Error>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        if let Some(chunk) = this.pipe.take_chunk() {
            return Poll::Ready(Some(Ok(chunk)));
        }
        if this.pipe.is_finished() {
            return Poll::Ready(None);
        }
        this.pipe.register_pump(cx);
        if this.pipe.close_sent() {
            let linger = this
                .linger
                .get_or_insert_with(|| Box::pin(tokio::time::sleep(CLOSE_LINGER)));
            if linger.as_mut().poll(cx).is_ready() {
                return Poll::Ready(None);
            }
        }
        Poll::Pending
    }
}

impl Drop for WsBody {
    fn drop(&mut self) {
        // The connection is gone (or done): a writer still waiting must fail, not hang.
        self.pipe.mark_dead();
    }
}

//! Unix domain sockets as a transport, server and client.
//!
//! Built only on the public seam ([`Transport`], [`Accepted`], [`Server`], [`Client`]):
//! the model for [writing a transport](super#writing-a-transport).

use std::future::Future;
use std::io;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use futures::{FutureExt, Stream};
use tokio::net::unix::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{UnixListener, UnixStream};

use crate::endpoint::options::{
    ClientBuilder, ClientOptions, ServerBuilder, ServerOption, ServerOptions,
};
use crate::transport::{Accepted, Address, Transport};
use crate::{Client, ClientHandle, EventListener, NewSession, Result, Server};
use crate::{Error, ServerHandle};

/// A Unix socket address as an [`Address`]: its path, or unnamed.
fn address(addr: tokio::net::unix::SocketAddr) -> Address {
    Address::Unix(addr.as_pathname().map(Arc::from))
}

impl Transport for UnixStream {
    type Reader = OwnedReadHalf;
    type Writer = OwnedWriteHalf;

    fn local_addr(&self) -> io::Result<Address> {
        UnixStream::local_addr(self).map(address)
    }

    fn peer_addr(&self) -> io::Result<Address> {
        UnixStream::peer_addr(self).map(address)
    }

    fn into_split(self) -> (OwnedReadHalf, OwnedWriteHalf) {
        UnixStream::into_split(self)
    }
}

/// Accepted connections cross to their arbiter as std sockets (registered with no
/// reactor) and are registered with the session's arbiter here.
impl Accepted for std::os::unix::net::UnixStream {
    type Transport = UnixStream;

    fn establish(self) -> impl Future<Output = Result<UnixStream>> + 'static {
        let registered = self
            .set_nonblocking(true)
            .and_then(|()| UnixStream::from_std(self));
        std::future::ready(registered.map_err(Error::from))
    }
}

/// Accepted connections of a Unix listener, as std sockets.
struct UnixIncoming(UnixListener);

impl Stream for UnixIncoming {
    type Item = io::Result<std::os::unix::net::UnixStream>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        match self.0.poll_accept(cx) {
            Poll::Ready(Ok((stream, _))) => Poll::Ready(Some(stream.into_std())),
            Poll::Ready(Err(err)) => Poll::Ready(Some(Err(err))),
            Poll::Pending => Poll::Pending,
        }
    }
}

/// Builds and starts a Unix domain socket server.
///
/// The socket file is created by [`start`](Self::start) and removed by
/// [`ServerHandle::stop`](crate::ServerHandle::stop). A file left at the path by a run that crashed makes
/// `start` fail with [`io::ErrorKind::AddrInUse`] and a message that says so, unless
/// [`remove_stale_socket`](Self::remove_stale_socket) is set; a path where a server is
/// still listening, or that is not a socket, is never removed.
///
/// ```
/// use bytes::{Bytes, BytesMut};
/// use futures::{SinkExt, StreamExt};
/// use getty::{EventListener, LengthDelimited, SessionContext, UnixServer};
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
/// #[actix::main]
/// async fn main() -> getty::Result<()> {
///     let path = std::env::temp_dir().join(format!("getty-doc-{}.sock", std::process::id()));
///     let server = UnixServer::new(&path)
///         .remove_stale_socket(true)
///         .start(|_| Ok((Echo, LengthDelimited::new())))
///         .await?;
///     let stream = tokio::net::UnixStream::connect(&path).await?;
///     let mut client = tokio_util::codec::Framed::new(stream, LengthDelimited::new());
///     client.send(Bytes::from_static(b"local")).await?;
///     assert_eq!(&client.next().await.expect("an echo")?[..], b"local");
///     server.stop().await;
///     assert!(!path.exists(), "the socket file is removed on stop");
///     Ok(())
/// }
/// ```
#[derive(Debug, Clone)]
pub struct UnixServer {
    path: PathBuf,
    remove_stale: bool,
    server: Server,
}

impl ServerBuilder for UnixServer {
    fn server_options(&mut self) -> &mut ServerOptions {
        self.server.server_options()
    }
}

impl UnixServer {
    /// A server that will listen at the socket file `path`.
    pub fn new(path: impl AsRef<Path>) -> Self {
        UnixServer {
            path: path.as_ref().to_path_buf(),
            remove_stale: false,
            server: Server::new().kind("unix"),
        }
    }

    /// Removes a stale socket file at the path before binding: one that no server
    /// answers on (left by a run that crashed). Default: off, and `start` fails instead.
    pub fn remove_stale_socket(mut self, on: bool) -> Self {
        self.remove_stale = on;
        self
    }

    /// Binds the socket file, then accepts until stopped. Call from within an actix
    /// system.
    pub async fn start<L, F>(mut self, new_session: F) -> Result<ServerHandle>
    where
        L: EventListener,
        F: NewSession<L>,
    {
        let one_file = (ServerOption::ReusePort, "a socket file has one listener");
        self.server
            .server_options()
            .refuse("UnixServer", &[one_file])?;
        clear_stale_socket(&self.path, self.remove_stale).await?;
        let listener = UnixListener::bind(&self.path)?;
        // Remembered so that stop removes this very file, not one a later server made.
        let inode = std::fs::metadata(&self.path).map(|m| (m.dev(), m.ino()))?;
        let path: Arc<Path> = Arc::from(self.path);
        tracing::debug!(path = %path.display(), "unix server listening");
        let server = self
            .server
            .local_addr(Address::Unix(Some(path.clone())))
            .serve(UnixIncoming(listener), new_session)?;
        Ok(server.after_stop(Box::new(move || {
            remove_socket_file(&path, inode);
            futures::future::ready(()).boxed_local()
        })))
    }
}

/// Removes the socket file at `path` if it is still the one this server bound (`inode`).
fn remove_socket_file(path: &Path, inode: (u64, u64)) {
    let ours = std::fs::symlink_metadata(path)
        .is_ok_and(|m| m.file_type().is_socket() && (m.dev(), m.ino()) == inode);
    if ours {
        if let Err(err) = std::fs::remove_file(path) {
            tracing::debug!(%err, path = %path.display(), "could not remove socket file");
        }
    }
}

/// Makes room to bind at `path`: nothing there is fine; a socket nobody listens on is
/// stale and removed if `remove` is set; anything else is an `AddrInUse` error.
async fn clear_stale_socket(path: &Path, remove: bool) -> io::Result<()> {
    let meta = match std::fs::symlink_metadata(path) {
        Ok(meta) => meta,
        Err(err) if err.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(err) => return Err(err),
    };
    let shown = path.display();
    if !meta.file_type().is_socket() {
        let msg = format!("{shown} exists and is not a socket; not touching it");
        return Err(io::Error::new(io::ErrorKind::AddrInUse, msg));
    }
    match UnixStream::connect(path).await {
        Ok(_) => {
            let msg = format!("a server is already listening at {shown}");
            Err(io::Error::new(io::ErrorKind::AddrInUse, msg))
        }
        Err(err) if err.kind() == io::ErrorKind::ConnectionRefused => {
            if remove {
                tracing::info!(path = %shown, "removing stale socket file");
                std::fs::remove_file(path)
            } else {
                let msg = format!(
                    "stale socket file {shown} (left by a run that crashed?): remove it, \
                     or set UnixServer::remove_stale_socket(true)"
                );
                Err(io::Error::new(io::ErrorKind::AddrInUse, msg))
            }
        }
        Err(err) => Err(err),
    }
}

/// Builds and starts a client that keeps sessions to a Unix socket server, re-dialing
/// lost ones like [`TcpClient`](crate::TcpClient).
#[derive(Debug)]
pub struct UnixClient {
    path: Arc<Path>,
    client: Client,
}

impl ClientBuilder for UnixClient {
    fn client_options(&mut self) -> &mut ClientOptions {
        self.client.client_options()
    }
}

impl UnixClient {
    /// A client of the server at the socket file `path`.
    pub fn new(path: impl AsRef<Path>) -> Self {
        UnixClient {
            path: Arc::from(path.as_ref()),
            client: Client::new().kind("unix-client"),
        }
    }

    /// Starts dialing. Call from within an actix system; the client runs until
    /// [`ClientHandle::stop`] or until every handle is dropped.
    pub fn start<L, F>(self, new_session: F) -> ClientHandle
    where
        L: EventListener,
        F: NewSession<L>,
    {
        let path = self.path;
        self.client.start(
            move || {
                let path = path.clone();
                async move { Ok(UnixStream::connect(&*path).await?) }
            },
            new_session,
        )
    }
}

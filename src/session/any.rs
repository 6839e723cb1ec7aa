//! [`AnySession`]: a session handle whose frame type is erased, for the places that hold
//! sessions of any listener (a client's list of sessions, its events).

use std::any::Any;
use std::sync::Arc;

use super::{Session, SessionShared, SessionStats};
use crate::session::SessionId;
use crate::transport::Address;

/// What [`AnySession`] needs of a typed [`Session`].
trait Erased: Send + Sync {
    fn shared(&self) -> &Arc<SessionShared>;
    fn close(&self);
    fn as_any(&self) -> &dyn Any;
}

impl<Out: Send + 'static> Erased for Session<Out> {
    fn shared(&self) -> &Arc<SessionShared> {
        Session::shared(self)
    }
    fn close(&self) {
        Session::close(self);
    }
    fn as_any(&self) -> &dyn Any {
        self
    }
}

/// A [`Session`] handle whose frame type is not known where it is held, such as
/// [`ClientHandle::sessions`](crate::ClientHandle::sessions) and
/// [`ClientEvent::SessionUp`](crate::ClientEvent::SessionUp). It names and closes the
/// session; [`downcast`](Self::downcast) gives back the typed handle to write with.
///
/// ```
/// # fn f(any: getty::AnySession) {
/// use bytes::Bytes;
/// if let Some(session) = any.downcast::<Bytes>() {
///     let _ = session.try_write(Bytes::from_static(b"hello again"));
/// }
/// # }
/// ```
#[derive(Clone)]
pub struct AnySession(Arc<dyn Erased>);

impl AnySession {
    /// Erases the frame type of `session`.
    pub(crate) fn new<Out: Send + 'static>(session: Session<Out>) -> Self {
        AnySession(Arc::new(session))
    }

    /// The session's shared state.
    pub(crate) fn shared(&self) -> &Arc<SessionShared> {
        self.0.shared()
    }

    /// The typed handle, if the session's listener writes frames of type `Out`
    /// (its [`EventListener::Out`](crate::EventListener::Out)).
    pub fn downcast<Out: Send + 'static>(&self) -> Option<Session<Out>> {
        self.0.as_any().downcast_ref::<Session<Out>>().cloned()
    }

    /// The session's id.
    pub fn id(&self) -> SessionId {
        self.shared().id
    }

    /// The session's name.
    pub fn name(&self) -> &str {
        &self.shared().name
    }

    /// The local address of the connection.
    pub fn local_addr(&self) -> &Address {
        &self.shared().local_addr
    }

    /// The peer's address when the session started.
    pub fn peer_addr(&self) -> &Address {
        &self.shared().peer_addr
    }

    /// The peer's address now (see [`Session::remote_addr`]).
    pub fn remote_addr(&self) -> Address {
        self.shared().remote_addr()
    }

    /// Traffic counters so far.
    pub fn stats(&self) -> SessionStats {
        self.shared().stats.snapshot()
    }

    /// True once the session is closing or closed.
    pub fn is_closed(&self) -> bool {
        matches!(
            self.shared().phase(),
            super::Phase::Closing | super::Phase::Closed
        )
    }

    /// Closes the session gracefully (see [`Session::close`]).
    pub fn close(&self) {
        self.0.close();
    }
}

impl std::fmt::Debug for AnySession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AnySession")
            .field("id", &self.id())
            .field("name", &self.name())
            .field("peer_addr", self.peer_addr())
            .finish()
    }
}

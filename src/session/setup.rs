//! What the `new_session` hook sees and may change before a session starts.

use crate::config::SessionConfig;
use crate::session::SessionId;
use crate::transport::{Address, LivePeer};

/// A session about to start, handed to an endpoint's `new_session` hook.
///
/// The hook names the session, adjusts its [`SessionConfig`], and returns the listener
/// and codec that will serve it, or an error to refuse the connection.
#[derive(Debug)]
pub struct SessionSetup {
    pub(crate) id: SessionId,
    pub(crate) local_addr: Address,
    pub(crate) peer_addr: Address,
    pub(crate) name: String,
    pub(crate) config: SessionConfig,
    /// Where the peer's address is now, for a transport whose peer can move.
    pub(crate) live_peer: Option<LivePeer>,
}

impl SessionSetup {
    pub(crate) fn new(
        id: SessionId,
        kind: &str,
        local_addr: Address,
        peer_addr: Address,
        config: SessionConfig,
    ) -> Self {
        SessionSetup {
            id,
            local_addr,
            name: format!("{kind}:{peer_addr}"),
            peer_addr,
            config,
            live_peer: None,
        }
    }

    /// The id the session will have.
    pub fn id(&self) -> SessionId {
        self.id
    }

    /// The local address of the connection.
    pub fn local_addr(&self) -> &Address {
        &self.local_addr
    }

    /// The peer's address.
    pub fn peer_addr(&self) -> &Address {
        &self.peer_addr
    }

    /// The session's name; by default the endpoint kind and peer, e.g. `tcp:127.0.0.1:5000`.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Names the session (shown in logs and by [`Session::name`](crate::Session::name)).
    pub fn set_name(&mut self, name: impl Into<String>) -> &mut Self {
        self.name = name.into();
        self
    }

    /// The session's limits and timers, from the endpoint's default.
    pub fn config(&self) -> &SessionConfig {
        &self.config
    }

    /// Changes the session's limits and timers.
    pub fn config_mut(&mut self) -> &mut SessionConfig {
        &mut self.config
    }
}

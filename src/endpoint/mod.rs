//! Endpoints: the server that accepts connections and the client that dials and
//! re-dials them, over any transport, with the supervisor that watches their sessions.
//!
//! - `shared`: what both sides share (counters, the `new_session` hook, the slot that
//!   ties a session to its endpoint).
//! - `server`, `client`: the two endpoint kinds over the transport seam, and `options`:
//!   the options every server and every client shares, by value.
//! - `supervisor`: one actor per endpoint for cron ticks, timeouts, graceful stop and
//!   client reconnection; `reconnect` is the client's backoff.
//! - `arbiters`: the threads sessions are spread over; `budget`: the memory all of an
//!   endpoint's sessions may hold buffered.

pub(crate) mod arbiters;
pub(crate) mod budget;
pub(crate) mod client;
pub(crate) mod options;
pub(crate) mod reconnect;
pub(crate) mod server;
pub(crate) mod servers;
mod shared;
pub(crate) mod supervisor;

pub(crate) use shared::*;
pub use shared::{EndpointStats, NewSession};

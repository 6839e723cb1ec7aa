//! Sessions: the [`Session`] handle, and the reader and logic actors behind it.
//!
//! One session is one connection. Its **reader actor** owns the read half and the
//! decoder and forwards decoded frames in batches; its **logic actor** owns the
//! [`EventListener`](crate::EventListener), the encoder and the write half. Both run on
//! the same arbiter, so a frame never crosses a thread. Any number of [`Session`]
//! handles, on any thread, hand their writes to the logic actor through the session's
//! hand-over queue, bounded like the writes inside callbacks.

// Where each part lives: `start` sets a session up for any transport; `frame_reader`
// (with `read_slab` and `decode`) and `reader_actor` read; `logic` runs the callbacks and
// delivers frames, `write_loop` moves the write queue (`out_buffer`) to the socket, and
// `close` decides how the session ends; `handle` is the `Session` handle, `shared` the
// state its actors and handles share.

mod any;
mod attributes;
mod close;
mod context;
mod decode;
mod frame_reader;
mod handle;
mod handoff;
mod id;
mod inbox;
mod logic;
mod messages;
mod out_buffer;
mod read_slab;
mod reader_actor;
mod setup;
mod shared;
mod start;
mod stats;
mod write_loop;

pub use any::AnySession;
pub use context::SessionContext;
pub use handle::Session;
pub use id::SessionId;
pub use setup::SessionSetup;
pub use stats::SessionStats;

pub(crate) use close::Phase;
pub(crate) use decode::decode_available;
pub(crate) use id::next_session_id;
pub(crate) use inbox::{BatchPool, InboxSender};
pub(crate) use messages::{Control, Inbound, MessageRejected, StopReading};
pub(crate) use out_buffer::MessageLimit;
pub(crate) use reader_actor::forward;
pub(crate) use shared::SessionShared;
pub(crate) use start::{
    start_session, ActorReader, ByteReader, ItemReader, ReaderSeat, SessionWriter,
};

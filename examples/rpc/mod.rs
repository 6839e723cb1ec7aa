//! The request/response protocol shared by `rpc_server` and `rpc_client`: JSON messages
//! in length-delimited frames, and a client whose `call` matches replies by id.
//!
//! Why JSON: it is readable on the wire (a `tcpdump` shows the calls), any language can
//! speak it, and serde makes it one line per direction; the length-delimited framing
//! around it is the same as the echo examples'. A binary serde format would be smaller
//! and faster to parse; swap the two serde_json calls in [`JsonCodec`] to use one.

#![allow(dead_code)] // the server and the client each use a part

use std::collections::HashMap;
use std::marker::PhantomData;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::{BufMut, BytesMut};
use getty::prelude::*;
use getty::{EventListener, LengthDelimited, Session, SessionContext, TcpClient, TcpClientHandle};
use serde::{de::DeserializeOwned, Deserialize, Serialize};
use tokio::sync::oneshot;
use tokio_util::codec::{Decoder, Encoder};

/// Largest request or response, in bytes of JSON.
pub const MAX_MESSAGE: usize = 64 * 1024;

/// A call: `body` comes back in the response after `work_ms` of work on the server.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Request {
    pub id: u64,
    pub work_ms: u64,
    pub body: String,
}

/// The answer to the request with the same `id`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Response {
    pub id: u64,
    pub result: Result<String, String>,
}

/// JSON values of type `In` read, `Out` written, each in one length-delimited frame.
pub struct JsonCodec<In, Out> {
    frames: LengthDelimited,
    _types: PhantomData<fn(Out) -> In>,
}

impl<In, Out> Clone for JsonCodec<In, Out> {
    fn clone(&self) -> Self {
        JsonCodec {
            frames: self.frames.clone(),
            _types: PhantomData,
        }
    }
}

impl<In, Out> Default for JsonCodec<In, Out> {
    fn default() -> Self {
        JsonCodec {
            frames: LengthDelimited::with_max_frame_length(MAX_MESSAGE),
            _types: PhantomData,
        }
    }
}

impl<In: DeserializeOwned, Out> Decoder for JsonCodec<In, Out> {
    type Item = In;
    type Error = getty::Error;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<In>, getty::Error> {
        let Some(frame) = self.frames.decode(src)? else {
            return Ok(None);
        };
        let value = serde_json::from_slice(&frame)
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))?;
        Ok(Some(value))
    }
}

impl<In, Out: Serialize> Encoder<Out> for JsonCodec<In, Out> {
    type Error = getty::Error;

    fn encode(&mut self, item: Out, dst: &mut BytesMut) -> Result<(), getty::Error> {
        // Serialize straight into the write queue behind a length placeholder.
        let start = dst.len();
        dst.put_u32(0);
        serde_json::to_writer(dst.writer(), &item)
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))?;
        let len = dst.len() - start - 4;
        if len > MAX_MESSAGE {
            dst.truncate(start);
            return Err(getty::Error::frame_too_long(len, MAX_MESSAGE));
        }
        dst[start..start + 4].copy_from_slice(&(len as u32).to_be_bytes());
        Ok(())
    }
}

/// Why a call failed.
#[derive(Debug)]
pub enum CallError {
    /// No reply within the call's timeout (the call is forgotten; a late reply is dropped).
    Timeout,
    /// The session was lost before the reply came, or there was none.
    Closed,
    /// The request could not be written.
    Write(getty::Error),
}

type Pending = Mutex<HashMap<u64, oneshot::Sender<Result<Response, CallError>>>>;

/// What the client's sessions share with `call`.
#[derive(Default)]
struct Shared {
    session: Mutex<Option<Session<Request>>>,
    pending: Pending,
    next_id: AtomicU64,
}

/// The client side of one session: hands each response to the call waiting for it.
struct Replies(Arc<Shared>);

impl EventListener for Replies {
    type Codec = JsonCodec<Response, Request>;
    type Out = Request;

    fn on_open(&mut self, session: &mut SessionContext<'_, Self>) -> getty::Result<()> {
        *self.0.session.lock().unwrap() = Some(session.session().clone());
        Ok(())
    }

    fn on_message(&mut self, _: &mut SessionContext<'_, Self>, response: Response) {
        if let Some(waiter) = self.0.pending.lock().unwrap().remove(&response.id) {
            let _ = waiter.send(Ok(response));
        } // else: its call timed out already; the late reply is dropped
    }

    fn on_close(&mut self, session: &Session<Request>) {
        let mut current = self.0.session.lock().unwrap();
        if current.as_ref().map(Session::id) == Some(session.id()) {
            *current = None;
        }
        // Calls in flight on a lost session fail now, not at their timeout; the client
        // never resends them by itself.
        for (_, waiter) in self.0.pending.lock().unwrap().drain() {
            let _ = waiter.send(Err(CallError::Closed));
        }
    }
}

/// A client that calls the server over one getty client session (re-dialed if lost).
pub struct RpcClient {
    handle: TcpClientHandle,
    shared: Arc<Shared>,
}

impl RpcClient {
    /// Starts dialing `addr`. Call from within an actix system.
    pub fn start(addr: &str) -> Self {
        let shared = Arc::new(Shared::default());
        let s = shared.clone();
        let handle = TcpClient::new(addr)
            .reconnect_interval(Duration::from_millis(100))
            .start(move |_| Ok((Replies(s.clone()), JsonCodec::default())));
        RpcClient { handle, shared }
    }

    /// True once a session is up.
    pub fn connected(&self) -> bool {
        self.shared.session.lock().unwrap().is_some()
    }

    /// Sends `body` (to be worked on for `work_ms`) and waits at most `timeout` for the
    /// response with the same id.
    pub async fn call(
        &self,
        body: String,
        work_ms: u64,
        timeout: Duration,
    ) -> Result<Response, CallError> {
        let session = self
            .shared
            .session
            .lock()
            .unwrap()
            .clone()
            .ok_or(CallError::Closed)?;
        let id = self.shared.next_id.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = oneshot::channel();
        self.shared.pending.lock().unwrap().insert(id, tx);
        if let Err(err) = session.write(Request { id, work_ms, body }).await {
            self.shared.pending.lock().unwrap().remove(&id);
            return Err(CallError::Write(err));
        }
        match tokio::time::timeout(timeout, rx).await {
            Ok(Ok(result)) => result,
            Ok(Err(_)) => Err(CallError::Closed),
            Err(_) => {
                self.shared.pending.lock().unwrap().remove(&id);
                Err(CallError::Timeout)
            }
        }
    }

    /// Calls waiting for their response right now.
    pub fn in_flight(&self) -> usize {
        self.shared.pending.lock().unwrap().len()
    }

    /// Stops the client; pending calls fail with `Closed`.
    pub async fn stop(&self) {
        self.handle.stop().await;
    }
}

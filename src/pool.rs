//! A worker pool for long work: frames go to N threads, replies come back through the
//! session handle, and the session goes on reading meanwhile.
//!
//! getty's advice is that `OnMessage` must return quickly and hand long work to a pool.
//! In actix the natural pool is a [`SyncArbiter`]: [`WorkerPool`] wraps one. Its mailbox
//! is bounded, so [`try_submit`](WorkerPool::try_submit) fails with
//! [`ErrorKind::QueueFull`](crate::ErrorKind::QueueFull) when every worker is busy and the
//! queue is full: the listener decides (reply "busy", close, or pause reading). The work
//! function gets the request and the session, and writes its reply with
//! [`Session::write_blocking`]; if the session closed meanwhile that returns
//! [`ErrorKind::Closed`](crate::ErrorKind::Closed) to the worker, and nothing panics. For
//! async work, spawn on another arbiter and use [`Session::write`] instead.
//!
//! ```
//! use std::time::Duration;
//! use bytes::{Bytes, BytesMut};
//! use futures::{SinkExt, StreamExt};
//! use getty::pool::WorkerPool;
//! use getty::prelude::*;
//! use getty::{EventListener, LengthDelimited, SessionContext, TcpServer};
//!
//! struct Offload(WorkerPool<BytesMut, Bytes>);
//!
//! impl EventListener for Offload {
//!     type Codec = LengthDelimited;
//!     type Out = Bytes;
//!     fn on_message(&mut self, session: &mut SessionContext<'_, Self>, request: BytesMut) {
//!         if self.0.try_submit(session.session(), request).is_err() {
//!             let _ = session.write(Bytes::from_static(b"busy"));
//!         }
//!     }
//! }
//!
//! #[actix::main]
//! async fn main() -> getty::Result<()> {
//!     let pool = WorkerPool::start(2, |request: BytesMut, session| {
//!         if &request[..] == b"slow" {
//!             std::thread::sleep(Duration::from_millis(200)); // blocking work
//!         }
//!         let _ = session.write_blocking(request.freeze()); // Err(Closed) if it left
//!     });
//!     let server = TcpServer::new("127.0.0.1:0")
//!         .start(move |_| Ok((Offload(pool.clone()), LengthDelimited::new())))
//!         .await?;
//!     let stream = tokio::net::TcpStream::connect(server.inet_addr()?).await?;
//!     let mut client = tokio_util::codec::Framed::new(stream, LengthDelimited::new());
//!     client.send(Bytes::from_static(b"slow")).await?;
//!     client.send(Bytes::from_static(b"fast")).await?;
//!     // The fast request overtakes the slow one: the session kept reading.
//!     assert_eq!(&client.next().await.expect("reply")?[..], b"fast");
//!     assert_eq!(&client.next().await.expect("reply")?[..], b"slow");
//!     server.stop().await;
//!     Ok(())
//! }
//! ```

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;

use actix::prelude::*;

use crate::error::{Error, Result};
use crate::session::Session;

/// Jobs that may wait for a free worker (actix's `SyncArbiter` mailbox size).
const QUEUE: usize = 16;

type Work<Req, Out> = dyn Fn(Req, &Session<Out>) + Send + Sync;

struct Job<Req, Out: Send + 'static> {
    request: Req,
    session: Session<Out>,
}

impl<Req, Out: Send + 'static> Message for Job<Req, Out> {
    type Result = ();
}

struct Worker<Req: Send + 'static, Out: Send + 'static> {
    work: Arc<Work<Req, Out>>,
}

impl<Req: Send + 'static, Out: Send + 'static> Actor for Worker<Req, Out> {
    type Context = SyncContext<Self>;
}

impl<Req: Send + 'static, Out: Send + 'static> Handler<Job<Req, Out>> for Worker<Req, Out> {
    type Result = ();

    fn handle(&mut self, job: Job<Req, Out>, _: &mut SyncContext<Self>) {
        if job.session.is_closed() {
            return; // nobody to answer: skip the work
        }
        let session = &job.session;
        if catch_unwind(AssertUnwindSafe(|| (self.work)(job.request, session))).is_err() {
            // A panic must not take the worker thread with it; the session it served
            // cannot get its reply, so it is closed.
            tracing::error!(session = %session.id(), "worker pool job panicked; closing its session");
            session.close();
        }
    }
}

/// N threads that run `work(request, session)` for requests handed over by listeners.
/// Cheap to clone; the threads stop with the actix system.
pub struct WorkerPool<Req: Send + 'static, Out: Send + 'static> {
    workers: Addr<Worker<Req, Out>>,
}

impl<Req: Send + 'static, Out: Send + 'static> Clone for WorkerPool<Req, Out> {
    fn clone(&self) -> Self {
        WorkerPool {
            workers: self.workers.clone(),
        }
    }
}

impl<Req: Send + 'static, Out: Send + 'static> WorkerPool<Req, Out> {
    /// Starts `threads` workers (at least 1). Call from within an actix system.
    pub fn start(
        threads: usize,
        work: impl Fn(Req, &Session<Out>) + Send + Sync + 'static,
    ) -> Self {
        let work: Arc<Work<Req, Out>> = Arc::new(work);
        let workers = SyncArbiter::start(threads.max(1), move || Worker { work: work.clone() });
        WorkerPool { workers }
    }

    /// Hands `request` to a worker without waiting.
    /// [`ErrorKind::QueueFull`](crate::ErrorKind::QueueFull) (`limit` in jobs) when all
    /// workers are busy and the queue is full;
    /// [`ErrorKind::Closed`](crate::ErrorKind::Closed) once the pool has stopped.
    pub fn try_submit(&self, session: &Session<Out>, request: Req) -> Result<()> {
        let job = Job {
            request,
            session: session.clone(),
        };
        self.workers.try_send(job).map_err(|err| match err {
            SendError::Full(_) => Error::queue_full(QUEUE, QUEUE).with_session(session.id()),
            SendError::Closed(_) => Error::closed(session.id()),
        })
    }

    /// Hands `request` to a worker, waiting for room in the queue (for async callers).
    pub async fn submit(&self, session: &Session<Out>, request: Req) -> Result<()> {
        let job = Job {
            request,
            session: session.clone(),
        };
        // Resolves once a worker finished the job (actix answers after the handler).
        self.workers
            .send(job)
            .await
            .map_err(|_| Error::closed(session.id()))
    }
}

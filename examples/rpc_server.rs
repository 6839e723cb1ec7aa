//! Request/response server: every request goes to a worker pool, which replies out of
//! order through the session handle while the session goes on reading.
//!
//! ```text
//! cargo run --release --example rpc_server -- --addr 127.0.0.1:7100 [--workers N]
//! ```
//! Prints `listening on <address>`; exits 0 on SIGINT or SIGTERM after a graceful stop.
//! `--workers` defaults to 4 threads. Protocol: see `examples/rpc/mod.rs`.

mod common;
mod rpc;

use std::time::Duration;

use common::Options;
use getty::pool::WorkerPool;
use getty::{EventListener, Session, SessionContext, TcpServer};
use rpc::{JsonCodec, Request, Response};

const USAGE: &str = "usage: rpc_server --addr HOST:PORT [--workers N]";

/// Hands every request to the pool; answers "busy" itself when the pool is full.
struct Dispatch(WorkerPool<Request, Response>);

impl EventListener for Dispatch {
    type Codec = JsonCodec<Request, Response>;
    type Out = Response;

    fn on_message(&mut self, session: &mut SessionContext<'_, Self>, request: Request) {
        let id = request.id;
        if let Err(err) = self.0.try_submit(session.session(), request) {
            let _ = session.write(Response {
                id,
                result: Err(format!("busy: {err}")),
            });
        }
    }
}

/// The work: wait `work_ms` (standing in for blocking work), then answer.
fn work(request: Request, session: &Session<Response>) {
    if request.work_ms > 0 {
        std::thread::sleep(Duration::from_millis(request.work_ms.min(10_000)));
    }
    let response = Response {
        id: request.id,
        result: Ok(request.body),
    };
    // Err(Closed) if the caller left meanwhile: nothing to do about it here.
    let _ = session.write_blocking(response);
}

fn main() {
    let opts = Options::parse(&["addr", "workers"], USAGE);
    let addr: String = opts.get("addr", "127.0.0.1:7100".to_owned());
    let workers: usize = opts.get("workers", 4);
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_writer(std::io::stderr)
        .init();

    let result = actix::System::new().block_on(async move {
        let pool = WorkerPool::start(workers, work);
        let server = TcpServer::new(addr)
            .start(move |_| Ok((Dispatch(pool.clone()), JsonCodec::default())))
            .await?;
        common::serve_until_signal(&server, common::DRAIN_DEADLINE).await?;
        Ok::<_, getty::Error>(())
    });
    if let Err(err) = result {
        eprintln!("rpc_server: {err}");
        std::process::exit(1);
    }
}

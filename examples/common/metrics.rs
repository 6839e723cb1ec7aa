//! `--metrics-addr HOST:PORT`: the process's getty metrics in the Prometheus text format,
//! at `GET /metrics` from an actix-web route. `metrics-exporter-prometheus` (built
//! without its own HTTP listener) keeps the values and renders the page.

use std::io;
use std::net::SocketAddr;

use actix_web::{web, App, HttpResponse, HttpServer};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};

/// Installs a Prometheus recorder as the process's `metrics` recorder, and serves its
/// page at `http://<addr>/metrics` from an HTTP server on the current actix system.
/// Call it before starting endpoints: each registers its metrics when it starts. Returns
/// the address bound (the real port when `addr` asks for port 0).
pub fn serve(addr: &str) -> io::Result<SocketAddr> {
    let recorder = PrometheusBuilder::new().build_recorder();
    let page = recorder.handle();
    metrics::set_global_recorder(recorder)
        .map_err(|_| io::Error::other("a metrics recorder is already installed"))?;
    let server = HttpServer::new(move || {
        App::new()
            .app_data(web::Data::new(page.clone()))
            .route("/metrics", web::get().to(render))
    })
    .workers(1)
    .disable_signals() // the program's own signal handling stops it
    .bind(addr)?;
    let bound = server
        .addrs()
        .first()
        .copied()
        .ok_or_else(|| io::Error::other("metrics server bound to no address"))?;
    actix_rt::spawn(server.run());
    Ok(bound)
}

/// `GET /metrics`: every metric as it is now.
async fn render(page: web::Data<PrometheusHandle>) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4; charset=utf-8")
        .body(page.render())
}

//! The daemon's HTTP endpoint: `/metrics` (Prometheus text), `/healthz`
//! (the process is up: a liveness probe) and `/readyz` (it holds its place
//! in the worker group and is not shutting down: a readiness probe).

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use http_body_util::Full;
use hyper::body::Bytes;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

use crate::metrics::prometheus::{self, Live};
use crate::sources::shards::Lag;
use crate::sources::shards::lease::Shared;

/// What the endpoint reports on.
pub struct State {
    /// The pipeline's name.
    pub pipeline: String,
    /// Sink names, in the order of `sinks:`.
    pub sinks: Vec<String>,
    /// The run's totals.
    pub live: Arc<Live>,
    /// Per shard lag, for a Kinesis source.
    pub lag: Option<Arc<Lag>>,
    /// This worker's name and its view of the group, for a Kinesis source.
    pub group: Option<(String, Arc<Shared>)>,
    /// Set once the worker reads, cleared when it begins to stop.
    pub ready: AtomicBool,
    /// A group member that could not pass over its leases for this long is not ready.
    pub failover: Duration,
    /// The lookup tables, for their caches' counts.
    pub lookups: Arc<crate::lookup::Tables>,
}

impl State {
    /// Whether the worker is ready, and if not, why.
    fn readiness(&self) -> Result<(), &'static str> {
        if !self.ready.load(Ordering::Relaxed) {
            return Err("not reading (starting or stopping)");
        }
        if let Some((_, shared)) = &self.group {
            let fresh = shared
                .status()
                .last_pass
                .is_some_and(|t| t.elapsed() < self.failover);
            if !fresh {
                return Err("the lease table could not be read for the failover time");
            }
        }
        Ok(())
    }

    fn metrics(&self) -> String {
        let (counts, stats, dlq_stats) = self.live.get();
        let shards = self.lag.as_ref().map(|l| l.snapshot()).unwrap_or_default();
        let status = self.group.as_ref().map(|(w, s)| (w.as_str(), s.status()));
        prometheus::render(&prometheus::Snapshot {
            pipeline: &self.pipeline,
            counts: &counts,
            sinks: &self.sinks,
            sink_stats: &stats,
            dlq_stats: &dlq_stats,
            shards: &shards,
            group: status.as_ref().map(|(w, s)| (*w, s)),
            lookups: &self.lookups.stats(),
        })
    }
}

fn text(status: StatusCode, content_type: &str, body: String) -> Response<Full<Bytes>> {
    let body = crate::secrets::redact_owned(body);
    let mut r = Response::new(Full::new(Bytes::from(body)));
    *r.status_mut() = status;
    if let Ok(v) = content_type.parse() {
        r.headers_mut().insert(hyper::header::CONTENT_TYPE, v);
    }
    r
}

/// The response to one request.
fn respond(state: &State, method: &Method, path: &str) -> Response<Full<Bytes>> {
    const PLAIN: &str = "text/plain; charset=utf-8";
    if method != Method::GET && method != Method::HEAD {
        return text(
            StatusCode::METHOD_NOT_ALLOWED,
            PLAIN,
            "only GET and HEAD\n".into(),
        );
    }
    match path {
        "/metrics" => text(
            StatusCode::OK,
            "text/plain; version=0.0.4; charset=utf-8",
            state.metrics(),
        ),
        "/healthz" => text(StatusCode::OK, PLAIN, "ok\n".into()),
        "/readyz" => match state.readiness() {
            Ok(()) => text(StatusCode::OK, PLAIN, "ready\n".into()),
            Err(why) => text(StatusCode::SERVICE_UNAVAILABLE, PLAIN, format!("{why}\n")),
        },
        _ => text(
            StatusCode::NOT_FOUND,
            PLAIN,
            "not found: try /metrics, /healthz or /readyz\n".into(),
        ),
    }
}

/// Serves requests until the process ends.
pub async fn serve(listener: TcpListener, state: Arc<State>) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let state = Arc::clone(&state);
        tokio::spawn(async move {
            let service = service_fn(move |req: Request<hyper::body::Incoming>| {
                let r = respond(&state, req.method(), req.uri().path());
                async move { Ok::<_, Infallible>(r) }
            });
            let _ = http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state() -> State {
        State {
            pipeline: "p".into(),
            sinks: vec!["out".into()],
            live: Arc::default(),
            lag: None,
            group: None,
            ready: AtomicBool::new(false),
            failover: Duration::from_secs(10),
            lookups: Arc::default(),
        }
    }

    #[test]
    fn probes_and_metrics() {
        let s = state();
        assert_eq!(
            respond(&s, &Method::GET, "/readyz").status(),
            StatusCode::SERVICE_UNAVAILABLE
        );
        s.ready.store(true, Ordering::Relaxed);
        assert_eq!(
            respond(&s, &Method::GET, "/readyz").status(),
            StatusCode::OK
        );
        assert_eq!(
            respond(&s, &Method::GET, "/healthz").status(),
            StatusCode::OK
        );
        let m = respond(&s, &Method::GET, "/metrics");
        assert_eq!(
            m.headers()[hyper::header::CONTENT_TYPE],
            "text/plain; version=0.0.4; charset=utf-8"
        );
        assert_eq!(
            respond(&s, &Method::GET, "/x").status(),
            StatusCode::NOT_FOUND
        );
        assert_eq!(
            respond(&s, &Method::POST, "/metrics").status(),
            StatusCode::METHOD_NOT_ALLOWED
        );
    }

    #[test]
    fn a_group_member_without_a_recent_lease_pass_is_not_ready() {
        let mut s = state();
        s.ready.store(true, Ordering::Relaxed);
        s.group = Some(("w".into(), Arc::default()));
        assert_eq!(
            respond(&s, &Method::GET, "/readyz").status(),
            StatusCode::SERVICE_UNAVAILABLE
        );
    }
}

//! Prometheus metrics (SPEC §11): `GET /metrics`, in the Prometheus text format, on its own
//! address (`--metrics-listen`, off by default), so that it is never reachable where the API
//! is unless the operator says so.
//!
//! What is measured, with the `metrics` facade (a no-op until [`install`] sets the recorder):
//! - `keygate_http_requests_total{endpoint,method,status}` and
//!   `keygate_http_request_duration_seconds{endpoint,method}`: every API request, by the
//!   endpoint table's declared path (never the path as sent: it can carry a token);
//! - `keygate_verifications_total{code}`: every answered verification, by its code;
//! - `keygate_store_commit_duration_seconds`: each durable commit of the store;
//! - `keygate_record_cache_hits_total`, `keygate_record_cache_misses_total`: lookups of the
//!   verification cache (its hit rate is hits / (hits + misses)).

use std::sync::LazyLock;
use std::time::Instant;

use metrics::{Unit, counter, describe_counter, describe_histogram, histogram};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use model::domain::VerifyCode;
use model::http::Endpoint;

use crate::RedbStore;

/// Latency buckets, in seconds: from a cached verification (tens of µs) to a slow commit.
const BUCKETS: [f64; 14] = [
    0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0,
    5.0,
];

/// Sets the process's recorder; returns what renders it.
pub fn install() -> Result<PrometheusHandle, String> {
    let handle = PrometheusBuilder::new()
        .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), &BUCKETS)
        .map_err(|e| e.to_string())?
        .install_recorder()
        .map_err(|e| format!("metrics: {e}"))?;
    describe_counter!(
        "keygate_http_requests_total",
        "API requests answered, by declared endpoint, method and status"
    );
    describe_histogram!(
        "keygate_http_request_duration_seconds",
        Unit::Seconds,
        "Time from a request's head to its answer, by declared endpoint and method"
    );
    describe_counter!(
        "keygate_verifications_total",
        "Verifications answered, by code"
    );
    describe_histogram!(
        "keygate_store_commit_duration_seconds",
        Unit::Seconds,
        "Durable commits of the embedded store"
    );
    describe_counter!(
        "keygate_record_cache_hits_total",
        "Lookups the verification cache answered"
    );
    describe_counter!(
        "keygate_record_cache_misses_total",
        "Lookups the verification cache could not answer"
    );
    Ok(handle)
}

/// `200`, `404`… as `'static` labels (made once), so recording a request allocates nothing.
fn status_label(status: u16) -> &'static str {
    static LABELS: LazyLock<Vec<String>> =
        LazyLock::new(|| (0..600).map(|s: u16| s.to_string()).collect());
    LABELS
        .get(usize::from(status))
        .map_or("other", String::as_str)
}

/// Counts one answered API request.
pub fn request(
    endpoint: Option<&'static Endpoint>,
    status: u16,
    started: Instant,
    verdict: Option<VerifyCode>,
) {
    let (path, method) = endpoint.map_or(("(no endpoint)", "-"), |e| (e.path, e.method));
    counter!(
        "keygate_http_requests_total",
        "endpoint" => path,
        "method" => method,
        "status" => status_label(status)
    )
    .increment(1);
    histogram!(
        "keygate_http_request_duration_seconds",
        "endpoint" => path,
        "method" => method
    )
    .record(started.elapsed().as_secs_f64());
    if let Some(code) = verdict {
        counter!("keygate_verifications_total", "code" => code.as_str()).increment(1);
    }
}

/// Times one commit of the store.
pub fn commit(started: Instant) {
    histogram!("keygate_store_commit_duration_seconds").record(started.elapsed().as_secs_f64());
}

/// Serves `GET /metrics` on `listener` until `stop`.
pub async fn serve(
    listener: tokio::net::TcpListener,
    handle: PrometheusHandle,
    store: RedbStore,
    stop: impl std::future::Future<Output = ()> + Send + 'static,
) {
    use axum::routing::get;
    let rendered = handle.clone();
    let render = move || {
        let (handle, store) = (rendered.clone(), store.clone());
        async move {
            if let Some(cache) = model::store::Store::records(&store) {
                counter!("keygate_record_cache_hits_total").absolute(cache.hits());
                counter!("keygate_record_cache_misses_total").absolute(cache.misses());
            }
            // Histograms keep their samples until upkeep folds them in.
            handle.run_upkeep();
            (
                [("content-type", "text/plain; version=0.0.4; charset=utf-8")],
                handle.render(),
            )
        }
    };
    // Without a scrape, histogram samples would pile up: fold them in every few seconds.
    let upkeep = {
        let handle = handle.clone();
        tokio::spawn(async move {
            let mut every = tokio::time::interval(std::time::Duration::from_secs(5));
            loop {
                every.tick().await;
                handle.run_upkeep();
            }
        })
    };
    let app = axum::Router::new().route("/metrics", get(render));
    if let Err(e) = axum::serve(listener, app)
        .with_graceful_shutdown(stop)
        .await
    {
        tracing::warn!(error = %e, "the metrics listener stopped");
    }
    upkeep.abort();
}

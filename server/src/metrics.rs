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

use std::sync::atomic::Ordering::Relaxed;
use std::sync::atomic::{AtomicBool, AtomicU64};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use metrics::{Unit, counter, describe_counter, describe_histogram, histogram};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use model::domain::VerifyCode;
use model::http::{ENDPOINTS, Endpoint};

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
    ON.store(true, Relaxed);
    Ok(handle)
}

/// The statuses the API answers, each counted in a slot of its own; any other is counted
/// through the registry (slower, and never seen so far).
const STATUSES: [u16; 19] = [
    200, 201, 204, 400, 401, 403, 404, 405, 408, 409, 410, 413, 415, 422, 429, 500, 502, 503, 504,
];

/// What one thread counted: for each endpoint (by `Op`, then one slot for requests that
/// matched none), answers by status and latencies by bucket with their sum. Each thread
/// writes only its own shard, with plain loads and stores (no read-modify-write on a line
/// another core writes): the registry's shared counters and its histogram, written by every
/// core on every request, cost ~5 % of verification throughput on 2 cores. A scrape adds the
/// shards up ([`Totals`]).
struct Shard {
    answered: Vec<[AtomicU64; STATUSES.len()]>,
    /// Latencies by bucket of [`BUCKETS`], the last for what is above them all.
    counts: Vec<[AtomicU64; BUCKETS.len() + 1]>,
    nanos: Vec<AtomicU64>,
    verdicts: [AtomicU64; VerifyCode::ALL.len()],
}

impl Shard {
    fn new() -> Self {
        let slots = ENDPOINTS.len() + 1;
        Self {
            answered: (0..slots).map(|_| Default::default()).collect(),
            counts: (0..slots)
                .map(|_| std::array::from_fn(|_| AtomicU64::new(0)))
                .collect(),
            nanos: (0..slots).map(|_| AtomicU64::new(0)).collect(),
            verdicts: Default::default(),
        }
    }
}

/// Adds `n` to a counter only this thread writes.
fn bump(counter: &AtomicU64, n: u64) {
    counter.store(counter.load(Relaxed).wrapping_add(n), Relaxed);
}

/// Every thread's shard, once it recorded something; only [`install`] turns recording on.
static SHARDS: Mutex<Vec<Arc<Shard>>> = Mutex::new(Vec::new());
static ON: AtomicBool = AtomicBool::new(false);

thread_local! {
    static SHARD: Arc<Shard> = {
        let shard = Arc::new(Shard::new());
        SHARDS
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(Arc::clone(&shard));
        shard
    };
}

/// The slot of `endpoint` in a [`Shard`].
fn slot(endpoint: Option<&'static Endpoint>) -> usize {
    endpoint.map_or(ENDPOINTS.len(), |e| (e.op as usize).min(ENDPOINTS.len()))
}

/// The declared path and method of a slot.
fn labels(slot: usize) -> (&'static str, &'static str) {
    ENDPOINTS
        .iter()
        .find(|e| e.op as usize == slot)
        .map_or(("(no endpoint)", "-"), |e| (e.path, e.method))
}

/// The time a request started, when requests are measured ([`install`] was called).
pub fn clock() -> Option<Instant> {
    ON.load(Relaxed).then(Instant::now)
}

/// Counts one answered API request that started at `started` ([`clock`]).
pub fn request(
    endpoint: Option<&'static Endpoint>,
    status: u16,
    started: Instant,
    verdict: Option<VerifyCode>,
) {
    let at = slot(endpoint);
    let nanos = u64::try_from(started.elapsed().as_nanos()).unwrap_or(u64::MAX);
    let seconds = nanos as f64 / 1e9;
    let bucket = BUCKETS
        .iter()
        .position(|le| seconds <= *le)
        .unwrap_or(BUCKETS.len());
    let status_slot = STATUSES.iter().position(|s| *s == status);
    SHARD.with(|shard| {
        if let Some(i) = status_slot {
            bump(&shard.answered[at][i], 1);
        }
        bump(&shard.counts[at][bucket], 1);
        bump(&shard.nanos[at], nanos);
        if let Some(code) = verdict {
            // `ALL` is in declaration order: a code's discriminant is its index.
            bump(&shard.verdicts[code as usize], 1);
        }
    });
    if status_slot.is_none() {
        let (path, method) = labels(at);
        counter!(
            "keygate_http_requests_total",
            "endpoint" => path,
            "method" => method,
            "status" => status.to_string()
        )
        .increment(1);
    }
}

/// The shards added up.
struct Totals {
    answered: Vec<[u64; STATUSES.len()]>,
    counts: Vec<[u64; BUCKETS.len() + 1]>,
    nanos: Vec<u64>,
    verdicts: [u64; VerifyCode::ALL.len()],
}

fn totals() -> Totals {
    let slots = ENDPOINTS.len() + 1;
    let mut t = Totals {
        answered: vec![[0; STATUSES.len()]; slots],
        counts: vec![[0; BUCKETS.len() + 1]; slots],
        nanos: vec![0; slots],
        verdicts: [0; VerifyCode::ALL.len()],
    };
    for shard in SHARDS.lock().unwrap_or_else(|e| e.into_inner()).iter() {
        for at in 0..slots {
            for (sum, n) in t.answered[at].iter_mut().zip(&shard.answered[at]) {
                *sum += n.load(Relaxed);
            }
            for (sum, n) in t.counts[at].iter_mut().zip(&shard.counts[at]) {
                *sum += n.load(Relaxed);
            }
            t.nanos[at] += shard.nanos[at].load(Relaxed);
        }
        for (sum, n) in t.verdicts.iter_mut().zip(&shard.verdicts) {
            *sum += n.load(Relaxed);
        }
    }
    t
}

/// Hands the counters to the registry (absolute values) and renders the latency histogram,
/// which the registry would keep sample by sample, in the text format.
fn publish(t: &Totals) -> String {
    use std::fmt::Write;
    for (at, by_status) in t.answered.iter().enumerate() {
        let (path, method) = labels(at);
        for (status, n) in STATUSES.iter().zip(by_status).filter(|(_, n)| **n > 0) {
            counter!(
                "keygate_http_requests_total",
                "endpoint" => path,
                "method" => method,
                "status" => status.to_string()
            )
            .absolute(*n);
        }
    }
    for (code, n) in VerifyCode::ALL
        .iter()
        .zip(t.verdicts)
        .filter(|(_, n)| *n > 0)
    {
        counter!("keygate_verifications_total", "code" => code.as_str()).absolute(n);
    }
    let name = "keygate_http_request_duration_seconds";
    let mut text = format!(
        "# HELP {name} Time from a request's head to its answer, by declared endpoint and \
         method\n# TYPE {name} histogram\n"
    );
    for (at, counts) in t.counts.iter().enumerate() {
        let total: u64 = counts.iter().sum();
        if total == 0 {
            continue;
        }
        let (path, method) = labels(at);
        let series = format!("endpoint=\"{path}\",method=\"{method}\"");
        let mut below = 0;
        for (le, n) in BUCKETS.iter().zip(counts) {
            below += n;
            let _ = writeln!(text, "{name}_bucket{{{series},le=\"{le}\"}} {below}");
        }
        let _ = writeln!(text, "{name}_bucket{{{series},le=\"+Inf\"}} {total}");
        let _ = writeln!(text, "{name}_sum{{{series}}} {}", t.nanos[at] as f64 / 1e9);
        let _ = writeln!(text, "{name}_count{{{series}}} {total}");
    }
    text
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
            let requests = publish(&totals());
            // Histograms keep their samples until upkeep folds them in.
            handle.run_upkeep();
            (
                [("content-type", "text/plain; version=0.0.4; charset=utf-8")],
                handle.render() + "\n" + &requests,
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

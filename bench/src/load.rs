//! A closed-loop HTTP/1.1 load generator: `connections` keep-alive connections, each sending
//! its next request as soon as the last answer is read, for a fixed time. Latencies go into an
//! HDR histogram (µs); any answer that is not 2xx counts as an error.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use bytes::Bytes;
use hdrhistogram::Histogram;
use http_body_util::{BodyExt, Full};
use hyper::Request;
use hyper_util::rt::TokioIo;

/// Makes the `n`-th request of a connection.
pub type MakeRequest = Arc<dyn Fn(u64) -> Request<Full<Bytes>> + Send + Sync>;

/// What one run measured.
pub struct Outcome {
    pub requests: u64,
    pub errors: u64,
    pub elapsed: Duration,
    pub latency_us: Histogram<u64>,
    /// CPU time the measured server process spent meanwhile (user + system), when known.
    pub server_cpu: Duration,
}

impl Outcome {
    pub fn rps(&self) -> f64 {
        self.requests as f64 / self.elapsed.as_secs_f64()
    }
    pub fn p50_ms(&self) -> f64 {
        self.latency_us.value_at_quantile(0.50) as f64 / 1000.0
    }
    pub fn p99_ms(&self) -> f64 {
        self.latency_us.value_at_quantile(0.99) as f64 / 1000.0
    }
    /// The server's CPU time per request, in µs: unlike throughput, barely moved by what
    /// else the machine runs.
    pub fn server_us_per_request(&self) -> f64 {
        self.server_cpu.as_secs_f64() * 1e6 / self.requests.max(1) as f64
    }
}

/// CPU time (user + system) process `pid` has used, from `/proc` (Linux; ticks of 10 ms).
pub fn cpu_time(pid: u32) -> Option<Duration> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name, which is parenthesised and may hold spaces.
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    let ticks = |i: usize| fields.get(i)?.parse::<u64>().ok();
    // utime and stime are fields 14 and 15 of the line, 12 and 13 after the name.
    Some(Duration::from_millis((ticks(11)? + ticks(12)?) * 10))
}

/// A request for `path` on `base` (`http://host:port`), JSON `body` when given.
pub fn request(base: &str, method: &str, path: &str, body: Option<Bytes>) -> Request<Full<Bytes>> {
    let authority = base.trim_start_matches("http://");
    let mut builder = Request::builder()
        .method(method)
        .uri(path)
        .header("host", authority);
    if body.is_some() {
        builder = builder.header("content-type", "application/json");
    }
    builder
        .body(Full::new(body.unwrap_or_default()))
        .unwrap_or_default()
}

/// Runs `make` over `connections` connections to `base` for `duration`.
pub async fn run(
    base: &str,
    connections: usize,
    duration: Duration,
    make: MakeRequest,
) -> Result<Outcome> {
    let addr: SocketAddr = base
        .trim_start_matches("http://")
        .parse()
        .context("base is http://ip:port")?;
    let started = Instant::now();
    let deadline = started + duration;
    let mut tasks = Vec::with_capacity(connections);
    for c in 0..connections {
        let make = Arc::clone(&make);
        tasks.push(tokio::spawn(async move {
            connection(addr, deadline, c as u64, make).await
        }));
    }
    let mut total = Outcome {
        requests: 0,
        errors: 0,
        elapsed: Duration::ZERO,
        latency_us: histogram()?,
        server_cpu: Duration::ZERO,
    };
    for task in tasks {
        let (requests, errors, hist) = task.await??;
        total.requests += requests;
        total.errors += errors;
        total.latency_us.add(&hist)?;
    }
    total.elapsed = started.elapsed();
    Ok(total)
}

fn histogram() -> Result<Histogram<u64>> {
    Ok(Histogram::new_with_bounds(1, 60_000_000, 3)?)
}

async fn connection(
    addr: SocketAddr,
    deadline: Instant,
    seed: u64,
    make: MakeRequest,
) -> Result<(u64, u64, Histogram<u64>)> {
    let stream = tokio::net::TcpStream::connect(addr).await?;
    stream.set_nodelay(true)?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(conn);
    let mut hist = histogram()?;
    let (mut requests, mut errors) = (0u64, 0u64);
    // Connections start at different points of the request sequence.
    let mut n = seed.wrapping_mul(7919);
    while Instant::now() < deadline {
        let req = make(n);
        n = n.wrapping_add(1);
        sender.ready().await?;
        let start = Instant::now();
        let response = sender.send_request(req).await?;
        let ok = response.status().is_success();
        response.into_body().collect().await?;
        hist.saturating_record(start.elapsed().as_micros() as u64);
        requests += 1;
        if !ok {
            errors += 1;
        }
    }
    Ok((requests, errors, hist))
}

impl Outcome {
    /// Adds `other`'s requests, errors, time and latencies to this outcome.
    fn absorb(&mut self, other: Outcome) -> Result<()> {
        self.requests += other.requests;
        self.errors += other.errors;
        self.elapsed += other.elapsed;
        self.server_cpu += other.server_cpu;
        self.latency_us.add(&other.latency_us)?;
        Ok(())
    }
}

/// Runs each of `variants` for `total` in turns of `turn`: A, B, C, A, B, C… A noisy
/// neighbour then slows every variant alike, so their ratios hold where back-to-back runs
/// would each catch a different share of the noise. The CPU time of process `server`, when
/// given, is charged to the variant whose turn it was.
pub async fn interleaved(
    base: &str,
    connections: usize,
    total: Duration,
    turn: Duration,
    variants: &[MakeRequest],
    server: Option<u32>,
) -> Result<Vec<Outcome>> {
    let mut outcomes = Vec::with_capacity(variants.len());
    for _ in variants {
        outcomes.push(Outcome {
            requests: 0,
            errors: 0,
            elapsed: Duration::ZERO,
            latency_us: histogram()?,
            server_cpu: Duration::ZERO,
        });
    }
    let turns = (total.as_secs_f64() / turn.as_secs_f64()).ceil().max(1.0) as usize;
    for _ in 0..turns {
        for (make, outcome) in variants.iter().zip(&mut outcomes) {
            let before = server.and_then(cpu_time);
            let mut ran = run(base, connections, turn, Arc::clone(make)).await?;
            if let (Some(before), Some(after)) = (before, server.and_then(cpu_time)) {
                ran.server_cpu = after.saturating_sub(before);
            }
            outcome.absorb(ran)?;
        }
    }
    Ok(outcomes)
}

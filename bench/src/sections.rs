//! The report's sections (issue #6): core, server, writes, edge, console.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use bytes::Bytes;
use model::domain::{Access, KeyRecord, KeyRole};
use model::id::{Kind, new_id};
use model::key::ApiKey;
use model::store::{Batch, Store, schema};
use serde_json::{Value, json};
use tests::{Api, As, Fixture, Host};

use crate::Settings;
use crate::load::{self, MakeRequest, Outcome};
use crate::report::Report;

/// Section 1, core: criterion's medians for `model`'s verification and its floor, and the two
/// measured in alternation (`model/benches/verify.rs`, `paired`), which the target is read from.
pub fn core(settings: &Settings, report: &mut Report) -> Result<()> {
    let read = |path: std::path::PathBuf| -> Result<Value> {
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("{}: run `cargo bench -p model`", path.display()))?;
        Ok(serde_json::from_str(&text)?)
    };
    let criterion = settings.target.join("criterion/verify");
    for n in ["1000", "1000000"] {
        let median = |which: &str| -> Result<f64> {
            read(criterion.join(format!("{which}/{n}/new/estimates.json")))?["median"]
                ["point_estimate"]
                .as_f64()
                .context("criterion median")
        };
        let (model, floor) = (median("model")?, median("floor")?);
        report.figure(
            "core",
            format!("criterion medians, measured apart, {n} keys"),
            format!("{model:.0} ns vs {floor:.0} ns = {:.2}×", model / floor),
        );
        let paired = read(criterion.join(format!("paired/{n}.json")))?;
        let ns = |field: &str| paired[field].as_f64().context("paired figure");
        let (model, floor) = (ns("model_ns")?, ns("floor_ns")?);
        let ratio = model / floor;
        report.target(
            "core",
            format!("verify vs floor, measured in alternation, {n} keys"),
            format!("{model:.0} ns vs {floor:.0} ns = {ratio:.2}×"),
            "≤ 1.5×",
            ratio <= 1.5,
        );
    }
    Ok(())
}

fn verify_request(base: &str, keys: Arc<Vec<Bytes>>) -> MakeRequest {
    let base = base.to_owned();
    Arc::new(move |n| {
        let body = keys[(n as usize) % keys.len()].clone();
        load::request(&base, "POST", "/v1/keys/verify", Some(body))
    })
}

fn bare_request(base: &str) -> MakeRequest {
    let base = base.to_owned();
    Arc::new(move |_| load::request(&base, "GET", "/healthz", None))
}

/// The same requests with each key's last character doubled: the key no longer parses, so the
/// verify endpoint answers `NOT_FOUND` without a lookup. What remains is the cost of the
/// request's shape (a POST with a JSON body, decoded; a JSON answer).
fn malformed(keys: &[String]) -> Vec<String> {
    keys.iter()
        .map(|k| format!("{k}{}", k.chars().last().unwrap_or('x')))
        .collect()
}

fn bodies(keys: &[String]) -> Arc<Vec<Bytes>> {
    Arc::new(
        keys.iter()
            .map(|k| Bytes::from(json!({"key": k}).to_string()))
            .collect(),
    )
}

/// Runs each of `variants` for a second to warm up, then for the configured time each, in
/// one-second turns ([`load::interleaved`]).
async fn measure<const N: usize>(
    settings: &Settings,
    base: &str,
    server: Option<u32>,
    variants: [MakeRequest; N],
) -> Result<[Outcome; N]> {
    let turn = Duration::from_secs(1);
    let c = settings.connections;
    load::interleaved(base, c, turn, turn, &variants, None).await?;
    let total = Duration::from_secs(settings.seconds);
    let outcomes = load::interleaved(base, c, total, turn, &variants, server).await?;
    for outcome in &outcomes {
        ensure!(
            outcome.errors == 0,
            "{} of {} requests failed",
            outcome.errors,
            outcome.requests
        );
    }
    outcomes
        .try_into()
        .map_err(|_| anyhow::anyhow!("one outcome per variant"))
}

fn describe(o: &Outcome) -> String {
    let cpu = if o.server_cpu.is_zero() {
        String::new()
    } else {
        format!(", server CPU {:.1} µs/request", o.server_us_per_request())
    };
    format!(
        "{:.0} req/s, p50 {:.2} ms, p99 {:.2} ms ({} requests{cpu})",
        o.rps(),
        o.p50_ms(),
        o.p99_ms(),
        o.requests
    )
}

/// Lets the fixture's admin hold up to 1000 active keys.
async fn allow_many_keys(api: &Api, fx: &Fixture) -> Result<()> {
    let patch = json!({"max_active_keys_per_user": 1000});
    let answer = api
        .call("PATCH", "/v1/settings", As::Bearer(&fx.token), Some(&patch))
        .await?;
    ensure!(answer.status == 200, "{answer:?}");
    Ok(())
}

/// Revokes 20 fresh keys one after another, first alone, then while 16 clients sign in
/// with wrong passwords for random emails as fast as they are answered; the p50 and the
/// largest revocation latency (ms) of each, and how many sign-ins the flood made.
async fn revocations_under_sign_ins(
    api: &Api,
    fx: &Fixture,
) -> Result<((f64, f64, usize), (f64, f64, usize))> {
    async fn revoke_all(api: &Api, fx: &Fixture) -> Result<(f64, f64)> {
        let mut times = Vec::new();
        for i in 0..20 {
            let body =
                json!({"name": format!("revoked {i}"), "namespace": fx.org, "role": "viewer"});
            let made = api
                .call("POST", "/v1/keys", As::Bearer(&fx.token), Some(&body))
                .await?;
            let id = made.body["id"].as_str().context("id")?.to_owned();
            let started = Instant::now();
            let revoked = api
                .call(
                    "POST",
                    &format!("/v1/keys/{id}/revoke"),
                    As::Bearer(&fx.token),
                    None,
                )
                .await?;
            ensure!(revoked.status == 200, "{revoked:?}");
            times.push(started.elapsed());
        }
        times.sort();
        let ms = |d: Duration| d.as_secs_f64() * 1000.0;
        Ok((ms(times[times.len() / 2]), ms(times[times.len() - 1])))
    }
    let quiet = revoke_all(api, fx).await?;
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut flood = Vec::new();
    for c in 0..16 {
        let (api, stop) = (api.clone(), Arc::clone(&stop));
        flood.push(tokio::spawn(async move {
            let mut n = 0usize;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let body =
                    json!({"email": format!("flood{c}-{n}@example.com"), "password": "wrong"});
                api.call("POST", "/v1/auth/login", As::Nobody, Some(&body))
                    .await?;
                n += 1;
            }
            anyhow::Ok(n)
        }));
    }
    // Let the flood fill the server first.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let flooded = revoke_all(api, fx).await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let mut sign_ins = 0;
    for task in flood {
        sign_ins += task.await??;
    }
    let flooded = flooded?;
    Ok(((quiet.0, quiet.1, 0), (flooded.0, flooded.1, sign_ins)))
}

/// Creates `count` viewer keys with `clients` concurrent clients; returns the plaintexts and
/// the time taken.
async fn create_keys(
    api: &Api,
    fx: &Fixture,
    count: usize,
    clients: usize,
) -> Result<(Vec<String>, Duration)> {
    let started = Instant::now();
    let mut tasks = Vec::new();
    for c in 0..clients {
        let (api, token, org) = (api.clone(), fx.token.clone(), fx.org.clone());
        let share = count / clients + usize::from(c < count % clients);
        tasks.push(tokio::spawn(async move {
            let mut keys = Vec::with_capacity(share);
            for i in 0..share {
                let body =
                    json!({"name": format!("bench {c}-{i}"), "namespace": org, "role": "viewer"});
                let made = api
                    .call("POST", "/v1/keys", As::Bearer(&token), Some(&body))
                    .await?;
                ensure!(made.status == 201, "{made:?}");
                keys.push(made.body["key"].as_str().context("key")?.to_owned());
            }
            anyhow::Ok(keys)
        }));
    }
    let mut keys = Vec::with_capacity(count);
    for task in tasks {
        keys.extend(task.await??);
    }
    Ok((keys, started.elapsed()))
}

/// Sections 2 and 5, server and writes: verify vs a bare endpoint at 1 k and `large` keys; durable writes.
pub async fn server(settings: &Settings, bin: &Path, report: &mut Report) -> Result<()> {
    ensure!(bin.exists(), "{} is not built", bin.display());
    // `Host` spawns `$KEYGATE_SERVER_BIN`, which `cargo xtask bench` points at `bin`.
    let dir = tempfile_dir()?;
    let store = dir.join("store");
    let host = Host::server_with(&store, None, &[]).await?;
    let api = Api::new(&host.base);
    let fx = api.admin_with_key("bench").await?;
    allow_many_keys(&api, &fx).await?;

    // Revocations while sign-ins flood in (the audit's finding 5): Argon2 runs outside the
    // store's turn, so a revocation waits for no password check.
    let (quiet, flooded) = revocations_under_sign_ins(&api, &fx).await?;
    report.figure(
        "writes",
        "revocation latency, alone / during a flood of 16 clients signing in",
        format!(
            "p50 {:.1} / {:.1} ms, max {:.1} / {:.1} ms ({} sign-ins answered meanwhile)",
            quiet.0, flooded.0, quiet.1, flooded.1, flooded.2
        ),
    );

    // Writes: durable key creations, one client and sixteen.
    let (mut keys, one) = create_keys(&api, &fx, 100, 1).await?;
    report.figure(
        "writes",
        "key creations/s, 1 client (fsync per commit)",
        format!("{:.0}/s", 100.0 / one.as_secs_f64()),
    );
    let (more, many) = create_keys(&api, &fx, 899, 16).await?;
    keys.extend(more);
    report.figure(
        "writes",
        "key creations/s, 16 clients",
        format!("{:.0}/s", 899.0 / many.as_secs_f64()),
    );

    let [bare, shape, small] = measure(
        settings,
        &host.base,
        Some(host.pid()),
        [
            bare_request(&host.base),
            verify_request(&host.base, bodies(&malformed(&keys))),
            verify_request(&host.base, bodies(&keys)),
        ],
    )
    .await?;
    let c = settings.connections;
    report.figure(
        "server",
        format!("bare GET /healthz, {c} connections"),
        describe(&bare),
    );
    report.figure(
        "server",
        format!("verify of malformed keys (no lookup), {c} connections"),
        describe(&shape),
    );
    report.figure(
        "server",
        format!("verify, 1 000 keys, {c} connections"),
        describe(&small),
    );
    let ratio = small.rps() / bare.rps();
    report.target(
        "server",
        "verify throughput / bare throughput",
        format!("{:.0} %", ratio * 100.0),
        "≥ 85 %",
        ratio >= 0.85,
    );
    report.figure(
        "server",
        "verify throughput / malformed-key throughput (the lookup's share)",
        format!("{:.0} %", small.rps() / shape.rps() * 100.0),
    );
    report.figure(
        "server",
        "server CPU per request: bare / malformed key / verify",
        format!(
            "{:.1} / {:.1} / {:.1} µs (verify = {:.2}× bare)",
            bare.server_us_per_request(),
            shape.server_us_per_request(),
            small.server_us_per_request(),
            small.server_us_per_request() / bare.server_us_per_request()
        ),
    );
    report.target(
        "server",
        "verify p99 on loopback",
        format!("{:.2} ms", small.p99_ms()),
        "≤ 2 ms",
        small.p99_ms() <= 2.0,
    );
    let light = load::run(
        &host.base,
        4,
        Duration::from_secs(settings.seconds.min(5)),
        verify_request(&host.base, bodies(&keys)),
    )
    .await?;
    report.figure(
        "server",
        "verify, 1 000 keys, 4 connections",
        describe(&light),
    );

    // The same store read without the record cache: what a verification costs when its
    // records are not in memory, the path that store size can slow down.
    let me = api
        .call("GET", "/v1/me", As::Bearer(&fx.token), None)
        .await?;
    let owner = me.body["user"]["id"].as_str().context("user")?.to_owned();
    drop(host);
    let (off, on) = metrics_cost(settings, &dir, &store, &keys).await?;
    report.figure(
        "server",
        format!("verify, 1 000 keys, {c} connections, metrics off / on (--metrics-listen)"),
        format!(
            "{:.0} / {:.0} req/s; server CPU {:.2} / {:.2} µs/request",
            off.rps, on.rps, off.cpu_us, on.cpu_us
        ),
    );
    report.target(
        "server",
        "verify throughput with metrics on / off (alternating 1 s turns)",
        format!(
            "{:.3}× (CPU per request {:.3}×)",
            on.rps / off.rps,
            on.cpu_us / off.cpu_us
        ),
        "≥ 0.97×",
        on.rps / off.rps >= 0.97,
    );
    let uncached = [("KEYGATE_RECORD_CACHE", "0")];
    let [small_uncached_bare, small_uncached] =
        bare_and_verify(settings, &store, &uncached, &keys).await?;
    report.figure(
        "server",
        format!("verify without the record cache, 1 000 keys, {c} connections"),
        describe(&small_uncached),
    );

    // The large store: the bootstrap's organization and admin own `large` seeded keys.
    let seeded = Instant::now();
    let sample = seed(&store, &fx.org, &owner, settings.large).await?;
    report.figure(
        "server",
        format!("seeding {} keys straight into redb", settings.large),
        format!("{:.1} s", seeded.elapsed().as_secs_f64()),
    );
    let live = std::fs::metadata(store.join("keygate.redb"))?.len();
    let (took, bytes, restored) = backup_and_restore(bin, &dir, &store)?;
    report.figure(
        "operating",
        format!(
            "backup of the store with {} keys (offline), then restore",
            settings.large
        ),
        format!(
            "backup {:.1} s, {:.1} MB (the store: {:.1} MB); restore (checked whole first) {:.1} s",
            took.as_secs_f64(),
            bytes as f64 / 1e6,
            live as f64 / 1e6,
            restored.as_secs_f64()
        ),
    );
    let [large_bare, large] = bare_and_verify(settings, &store, &[], &sample).await?;
    report.figure(
        "server",
        format!("bare GET /healthz, {c} connections (the large store's server)"),
        describe(&large_bare),
    );
    report.figure(
        "server",
        format!("verify, {} keys, {c} connections", settings.large),
        describe(&large),
    );
    // The two stores are measured minutes apart, by two server processes: each throughput
    // is taken relative to the bare route measured interleaved with it, so a change in the
    // machine's load between the two does not read as a change in verification.
    let kept = (large.rps() / large_bare.rps()) / (small.rps() / bare.rps());
    report.target(
        "server",
        format!(
            "throughput at {} keys / at 1 000 (each relative to its bare route)",
            settings.large
        ),
        format!("{:.0} %", kept * 100.0),
        "≥ 80 %",
        kept >= 0.8,
    );
    let [large_uncached_bare, large_uncached] =
        bare_and_verify(settings, &store, &uncached, &sample).await?;
    report.figure(
        "server",
        format!(
            "verify without the record cache, {} keys, {c} connections",
            settings.large
        ),
        describe(&large_uncached),
    );
    let kept = (large_uncached.rps() / large_uncached_bare.rps())
        / (small_uncached.rps() / small_uncached_bare.rps());
    report.target(
        "server",
        format!(
            "the same without the record cache: at {} keys / at 1 000",
            settings.large
        ),
        format!("{:.0} %", kept * 100.0),
        "≥ 80 %",
        kept >= 0.8,
    );
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}

/// `keygate-server backup` of `store`, then `restore` of it: their times and the backup's
/// size.
fn backup_and_restore(bin: &Path, dir: &Path, store: &Path) -> Result<(Duration, u64, Duration)> {
    let file = dir.join("bench.backup");
    let into = dir.join("restored");
    let run = |args: &[&std::ffi::OsStr]| -> Result<Duration> {
        let started = Instant::now();
        let status = std::process::Command::new(bin)
            .args(args)
            .stdout(std::process::Stdio::null())
            .status()?;
        ensure!(status.success(), "keygate-server {:?} failed", args.first());
        Ok(started.elapsed())
    };
    let took = run(&[
        "backup".as_ref(),
        "--data-dir".as_ref(),
        store.as_os_str(),
        "--to".as_ref(),
        file.as_os_str(),
    ])?;
    let bytes = std::fs::metadata(&file)?.len();
    let restored = run(&[
        "restore".as_ref(),
        "--from".as_ref(),
        file.as_os_str(),
        "--data-dir".as_ref(),
        into.as_os_str(),
    ])?;
    let _ = std::fs::remove_file(&file);
    let _ = std::fs::remove_dir_all(&into);
    Ok((took, bytes, restored))
}

/// Verification throughput without and with `--metrics-listen`: two servers on copies of the
/// store in `dir`, measured in alternating one-second turns (twice as many as the other runs'
/// seconds) so that the machine's load weighs on both alike.
async fn metrics_cost(
    settings: &Settings,
    dir: &Path,
    store: &Path,
    keys: &[String],
) -> Result<(Metered, Metered)> {
    let copy = dir.join("store-metered");
    std::fs::create_dir_all(&copy)?;
    std::fs::copy(store.join("keygate.redb"), copy.join("keygate.redb"))?;
    let off = Host::server_with(store, None, &[]).await?;
    let on = Host::server_with(&copy, None, &[("KEYGATE_METRICS_LISTEN", "127.0.0.1:0")]).await?;
    let turn = Duration::from_secs(1);
    let c = settings.connections;
    // Requests, time, and the server's CPU time over its turns.
    let mut totals = [(0u64, Duration::ZERO, Duration::ZERO); 2];
    for round in 0..=settings.seconds * 2 {
        // Off first in even rounds, on first in odd ones: whatever the second turn of a pair
        // inherits from the first weighs on both alike.
        let order = if round % 2 == 0 { [0, 1] } else { [1, 0] };
        for i in order {
            let host = [&off, &on][i];
            let cpu = load::cpu_time(host.pid()).unwrap_or_default();
            let outcome = load::run(
                &host.base,
                c,
                turn,
                verify_request(&host.base, bodies(keys)),
            )
            .await?;
            let cpu = load::cpu_time(host.pid())
                .unwrap_or_default()
                .saturating_sub(cpu);
            ensure!(outcome.errors == 0, "{} requests failed", outcome.errors);
            // The first round warms both up.
            if round > 0 {
                totals[i].0 += outcome.requests;
                totals[i].1 += outcome.elapsed;
                totals[i].2 += cpu;
            }
        }
    }
    drop((off, on));
    let _ = std::fs::remove_dir_all(&copy);
    let measured = |(n, t, cpu): (u64, Duration, Duration)| Metered {
        rps: n as f64 / t.as_secs_f64().max(1e-9),
        cpu_us: cpu.as_secs_f64() * 1e6 / n.max(1) as f64,
    };
    Ok((measured(totals[0]), measured(totals[1])))
}

/// One side of [`metrics_cost`].
struct Metered {
    rps: f64,
    /// The server's CPU time per request, µs: steadier than throughput on a busy machine.
    cpu_us: f64,
}

/// Starts a server on `store` with `env`, then measures the bare route and verification of
/// `keys`, interleaved.
async fn bare_and_verify(
    settings: &Settings,
    store: &Path,
    env: &[(&str, &str)],
    keys: &[String],
) -> Result<[Outcome; 2]> {
    let host = Host::server_with(store, None, env).await?;
    measure(
        settings,
        &host.base,
        Some(host.pid()),
        [
            bare_request(&host.base),
            verify_request(&host.base, bodies(keys)),
        ],
    )
    .await
}

fn tempfile_dir() -> Result<std::path::PathBuf> {
    let dir = std::env::temp_dir().join(format!("keygate-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}

/// Writes `count` active viewer keys of `owner` straight into the server's store (only the
/// key records: verification reads nothing else of them); returns [`SAMPLE`] of their
/// plaintexts, spread over the store.
/// Keys verified in the large store: as many as in the small one, so both runs count usage
/// for the same number of keys and differ only in the store's size.
const SAMPLE: usize = 1_000;

async fn seed(store: &Path, org: &str, owner: &str, count: usize) -> Result<Vec<String>> {
    let db = server::RedbStore::open(store).map_err(|e| anyhow::anyhow!("{e}"))?;
    let now = time::OffsetDateTime::now_utc();
    let mut sample = Vec::new();
    let mut done = 0;
    while done < count {
        let mut batch = Batch::default();
        for _ in 0..(count - done).min(20_000) {
            let csprng = |e: getrandom::Error| anyhow::anyhow!("CSPRNG: {e}");
            let id = new_id(Kind::Key).map_err(csprng)?;
            let key = ApiKey::generate(model::key::DEFAULT_PREFIX, &id["key_".len()..])
                .map_err(csprng)?;
            let record = KeyRecord {
                id: id.clone(),
                org: org.to_owned(),
                namespace: org.to_owned(),
                owner: owner.to_owned(),
                name: "seeded".into(),
                description: None,
                access: Access::Role(KeyRole::Viewer),
                secret_hash: key.secret_hash(),
                created_at: now,
                updated_at: now,
                expires_at: None,
                revoked_at: None,
                previous: None,
                grants: Default::default(),
                prefix: None,
                policy: Default::default(),
                policy_set_at: None,
            };
            batch.put(schema::key(&id), &record)?;
            if sample.len() < SAMPLE && done % (count / SAMPLE).max(1) == 0 {
                sample.push(key.into_plaintext());
            }
            done += 1;
        }
        db.commit(batch).await.map_err(|e| anyhow::anyhow!("{e}"))?;
    }
    Ok(sample)
}

/// Section 3, edge: verify vs a bare route of the worker under workerd, warm and cold, and the KV
/// reads a cold verification costs (counted by the instrumented build).
pub async fn edge(settings: &Settings, report: &mut Report) -> Result<()> {
    let host = Host::worker().await?;
    let api = Api::new(&host.base);
    let fx = api.admin_with_key("bench").await?;
    allow_many_keys(&api, &fx).await?;
    let (keys, _) = create_keys(&api, &fx, 300, 8).await?;
    let (warm, cold) = keys.split_at(100);
    let verify_as = |key: &str, code: &'static str| {
        let (api, body) = (api.clone(), json!({"key": key}));
        async move {
            let started = Instant::now();
            let answer = api
                .call("POST", "/v1/keys/verify", As::Nobody, Some(&body))
                .await?;
            ensure!(answer.body["code"] == code, "{answer:?}");
            anyhow::Ok(started.elapsed())
        }
    };
    let verify_once = |key: &str| verify_as(key, "VALID");
    for key in warm {
        verify_once(key).await?;
    }
    // Single requests, one at a time: a cold key, the same key again, the bare route, the
    // key made malformed (the verify endpoint's answer without a lookup), and a POST of the
    // same body to the bare route, refused 405 without being read (what carrying a body
    // costs before the worker reads it).
    let (mut first, mut again, mut bare, mut shape, mut carried) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for (key, broken) in cold.iter().zip(malformed(cold)) {
        first.push(verify_once(key).await?);
        again.push(verify_once(key).await?);
        let started = Instant::now();
        let health = api.call("GET", "/healthz", As::Nobody, None).await?;
        ensure!(health.status == 200);
        bare.push(started.elapsed());
        shape.push(verify_as(&broken, "NOT_FOUND").await?);
        let started = Instant::now();
        let unread = json!({"key": broken});
        let refused = api
            .call("POST", "/healthz", As::Nobody, Some(&unread))
            .await?;
        ensure!(refused.status == 405, "{refused:?}");
        carried.push(started.elapsed());
    }
    let (first, again, bare, shape, carried) = (
        median(first),
        median(again),
        median(bare),
        median(shape),
        median(carried),
    );
    report.figure(
        "edge",
        format!(
            "single requests, median of {}: bare / malformed key / warm verify / cold verify",
            cold.len()
        ),
        format!("{bare:.2} / {shape:.2} / {again:.2} / {first:.2} ms"),
    );
    let ratio = again / bare;
    report.target(
        "edge",
        "warm verify latency / bare route latency (single requests)",
        format!("{ratio:.2}×"),
        "≤ 1.1×",
        ratio <= 1.1,
    );
    report.figure(
        "edge",
        "malformed key / bare route; warm verify / malformed key (single requests)",
        format!("{:.2}×; {:.2}×", shape / bare, again / shape),
    );
    report.figure(
        "edge",
        "the verify body POSTed to the bare route, unread (405): latency / bare route",
        format!("{carried:.2} ms = {:.2}×", carried / bare),
    );
    let c = settings.connections;
    // The worker's CPU is workerd's, a grandchild of wrangler: not charged.
    let [bare_load, warm_load] = measure(
        settings,
        &host.base,
        None,
        [
            bare_request(&host.base),
            verify_request(&host.base, bodies(warm)),
        ],
    )
    .await?;
    report.figure(
        "edge",
        format!("bare GET /healthz, {c} connections"),
        describe(&bare_load),
    );
    report.figure(
        "edge",
        format!("warm verify, {c} connections"),
        describe(&warm_load),
    );
    report.figure(
        "edge",
        "warm verify p50 / bare p50 under load",
        format!("{:.2}×", warm_load.p50_ms() / bare_load.p50_ms()),
    );
    edge_management(settings, &api, &fx, report).await?;
    drop(host);

    // KV reads, counted by the instrumented build: a cold key of a creator the isolate knows.
    let host = Host::faulty_worker().await?;
    let api = Api::new(&host.base);
    let fx = api.admin_with_key("count").await?;
    let (keys, _) = create_keys(&api, &fx, 21, 1).await?;
    // Creation reads the owner's keys (the quota), which caches them: start from an empty
    // cache, let the first verification meet the creator, then count the others'.
    let clear = json!({"fail_prefix": null, "clear_cache": true});
    let cleared = api
        .call("POST", "/__faults", As::Nobody, Some(&clear))
        .await?;
    ensure!(cleared.status == 204, "{cleared:?}");
    let mut reads = Vec::new();
    for key in &keys {
        let answer = api
            .call(
                "POST",
                "/v1/keys/verify",
                As::Nobody,
                Some(&json!({"key": key})),
            )
            .await?;
        ensure!(answer.body["code"] == "VALID", "{answer:?}");
        let header = answer
            .headers
            .get("x-keygate-kv-calls")
            .and_then(|v| v.to_str().ok())
            .context("the instrumented build reports KV calls")?
            .to_owned();
        reads.push(header);
    }
    let (first, rest) = reads.split_first().context("verified keys")?;
    report.figure(
        "edge",
        "KV calls of the first verification in an empty isolate",
        first.clone(),
    );
    let exact = rest.iter().all(|h| h == "gets=1, lists=0");
    report.target(
        "edge",
        format!("KV calls of each cold key after that ({} keys)", rest.len()),
        if exact {
            "gets=1, lists=0 each".to_owned()
        } else {
            rest.join("; ")
        },
        "exactly one read",
        exact,
    );
    Ok(())
}

/// Changes at the edge (each runs in the control object and is written through to KV before
/// its answer): latency of a key creation, a revocation and a settings change, one at a time;
/// and the changes per second one organization's object takes from 64 concurrent writers.
async fn edge_management(
    settings: &Settings,
    api: &Api,
    fx: &Fixture,
    report: &mut Report,
) -> Result<()> {
    const ROUNDS: usize = 60;
    let admin = As::Bearer(&fx.token);
    let timed = |method: &'static str, path: String, body: serde_json::Value| {
        let api = api.clone();
        let token = fx.token.clone();
        async move {
            let started = Instant::now();
            let answer = api
                .call(method, &path, As::Bearer(&token), Some(&body))
                .await?;
            ensure!(answer.status < 300, "{method} {path}: {answer:?}");
            anyhow::Ok((started.elapsed(), answer))
        }
    };
    let (mut create, mut revoke, mut change) = (Vec::new(), Vec::new(), Vec::new());
    for i in 0..ROUNDS {
        let body = json!({"name": format!("managed {i}"), "namespace": fx.org, "role": "viewer"});
        let (took, made) = timed("POST", "/v1/keys".into(), body).await?;
        create.push(took);
        let id = made.body["id"].as_str().context("id")?.to_owned();
        let (took, _) = timed("POST", format!("/v1/keys/{id}/revoke"), json!({})).await?;
        revoke.push(took);
        let patch = json!({"extensive_use_per_hour": 100_000 + i});
        let (took, _) = timed("PATCH", "/v1/settings".into(), patch).await?;
        change.push(took);
    }
    let spread = |times: Vec<Duration>| {
        let (p50, p99) = (quantile(&times, 0.5), quantile(&times, 0.99));
        format!("p50 {p50:.1} ms, p99 {p99:.1} ms")
    };
    for (what, times) in [
        ("key creation", create),
        ("revocation", revoke),
        ("settings change", change),
    ] {
        report.figure(
            "edge",
            format!("{what}, one at a time ({ROUNDS})"),
            spread(times),
        );
    }
    let off = json!({"extensive_use_per_hour": null});
    api.call("PATCH", "/v1/settings", admin, Some(&off)).await?;

    // 64 writers, each renaming a key of its own as fast as answers come.
    const WRITERS: usize = 64;
    let window = Duration::from_secs(settings.seconds.max(3));
    let mine = writer_keys(api, &fx.token, &fx.org, WRITERS).await?;
    let (latencies, elapsed) = renames(api, vec![(fx.token.clone(), mine)], window).await?;
    report.figure(
        "edge",
        format!("one organization's changes from {WRITERS} concurrent writers (renames)"),
        format!(
            "{:.0}/s; {}",
            latencies.len() as f64 / elapsed,
            spread(latencies)
        ),
    );

    // The same 64 writers, half in a second organization (its own object).
    let second = json!({"name": "Bench two", "admin_email": "bench-two@example.com"});
    let created = api
        .call("POST", "/v1/organizations", admin, Some(&second))
        .await?;
    ensure!(created.status == 201, "second organization: {created:?}");
    let org2 = created.body["organization"]["id"]
        .as_str()
        .context("organization id")?
        .to_owned();
    let invitation = created.body["invitation_token"]
        .as_str()
        .context("invitation")?;
    let (_, token2) = api.accept(invitation, "bench-two@example.com").await?;
    let enable = json!({"api_keys_enabled": true});
    let enabled = api
        .call("PATCH", "/v1/settings", As::Bearer(&token2), Some(&enable))
        .await?;
    ensure!(
        enabled.status == 200,
        "second organization's settings: {enabled:?}"
    );
    let half = WRITERS / 2;
    let ours = writer_keys(api, &fx.token, &fx.org, half).await?;
    let theirs = writer_keys(api, &token2, &org2, half).await?;
    let (latencies, elapsed) = renames(
        api,
        vec![(fx.token.clone(), ours), (token2, theirs)],
        window,
    )
    .await?;
    report.figure(
        "edge",
        format!("two organizations' changes from {half} + {half} concurrent writers (renames)"),
        format!(
            "{:.0}/s; {}",
            latencies.len() as f64 / elapsed,
            spread(latencies)
        ),
    );
    Ok(())
}

/// `n` keys made in `org` by the holder of `token`, for writers to rename.
async fn writer_keys(api: &Api, token: &str, org: &str, n: usize) -> Result<Vec<String>> {
    let mut ids = Vec::with_capacity(n);
    for i in 0..n {
        let body = json!({"name": format!("writer {i}"), "namespace": org, "role": "viewer"});
        let made = api
            .call("POST", "/v1/keys", As::Bearer(token), Some(&body))
            .await?;
        ensure!(made.status == 201, "writer key: {made:?}");
        ids.push(made.body["id"].as_str().context("id")?.to_owned());
    }
    Ok(ids)
}

/// One writer per key, each renaming its key as fast as answers come for `window`, all at
/// once: every rename's latency, and the seconds they ran.
async fn renames(
    api: &Api,
    writers: Vec<(String, Vec<String>)>,
    window: Duration,
) -> Result<(Vec<Duration>, f64)> {
    let started = Instant::now();
    let tasks: Vec<_> = writers
        .into_iter()
        .flat_map(|(token, ids)| ids.into_iter().map(move |id| (token.clone(), id)))
        .map(|(token, id)| {
            let api = api.clone();
            tokio::spawn(async move {
                let mut latencies = Vec::new();
                let mut n = 0u32;
                while started.elapsed() < window {
                    n += 1;
                    let body = json!({"name": format!("renamed {n}")});
                    let sent = Instant::now();
                    let answer = api
                        .call(
                            "PATCH",
                            &format!("/v1/keys/{id}"),
                            As::Bearer(&token),
                            Some(&body),
                        )
                        .await?;
                    ensure!(answer.status == 200, "{answer:?}");
                    latencies.push(sent.elapsed());
                }
                anyhow::Ok(latencies)
            })
        })
        .collect();
    let mut latencies = Vec::new();
    for task in tasks {
        latencies.extend(task.await??);
    }
    Ok((latencies, started.elapsed().as_secs_f64()))
}

/// The `q` quantile of `times`, in milliseconds.
fn quantile(times: &[Duration], q: f64) -> f64 {
    let mut sorted = times.to_vec();
    sorted.sort();
    let at = ((sorted.len() as f64 - 1.0) * q).round() as usize;
    sorted
        .get(at)
        .map_or(f64::NAN, |d| d.as_secs_f64() * 1000.0)
}

fn median(mut times: Vec<Duration>) -> f64 {
    times.sort();
    times
        .get(times.len() / 2)
        .map_or(f64::NAN, |d| d.as_secs_f64() * 1000.0)
}

/// Section 4, console: release build sizes and time from navigation to the keys table.
pub async fn console(settings: &Settings, report: &mut Report) -> Result<()> {
    let dist = settings.repo.join("dist");
    let mut gzip_code = 0;
    let mut sizes = Vec::new();
    for entry in std::fs::read_dir(&dist)? {
        let path = entry?.path();
        let ext = path.extension().and_then(|e| e.to_str()).unwrap_or("");
        if !matches!(ext, "wasm" | "js" | "css") {
            continue;
        }
        let bytes = std::fs::read(&path)?;
        let gz = gzip(&bytes)?;
        if ext != "css" {
            gzip_code += gz;
        }
        sizes.push(format!("{ext} {} B ({gz} B gzip)", bytes.len()));
    }
    sizes.sort();
    report.figure("console", "release build", sizes.join(", "));
    report.target(
        "console",
        "wasm + JS, gzip",
        format!("{gzip_code} B"),
        "≤ 250 KB",
        gzip_code <= 250_000,
    );
    let (keys_ms, overview_ms) = navigation_times(&dist).await?;
    report.target(
        "console",
        "navigation → keys table rendered, 1 000 keys (median of 5, headless Chromium)",
        format!("{keys_ms:.0} ms"),
        "≤ 500 ms",
        keys_ms <= 500.0,
    );
    report.target(
        "console",
        "navigation → admin overview rendered, 1 000 keys (median of 5, headless Chromium)",
        format!("{overview_ms:.0} ms"),
        "≤ 500 ms",
        overview_ms <= 500.0,
    );
    Ok(())
}

fn gzip(bytes: &[u8]) -> Result<usize> {
    use std::io::Write;
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    encoder.write_all(bytes)?;
    Ok(encoder.finish()?.len())
}

/// The time from navigation start to the first sight of *My API keys*' table and of the
/// admin's overview, each the median of 5 full page loads, for an admin holding 1 000 keys.
async fn navigation_times(dist: &Path) -> Result<(f64, f64)> {
    let host = Host::server(Some(dist)).await?;
    let api = Api::new(&host.base);
    let fx = api.admin_with_key("console").await?;
    allow_many_keys(&api, &fx).await?;
    create_keys(&api, &fx, 999, 16).await?;
    let (driver, client) = tests::browser::start().await?;
    // Sign in from the page itself, so the browser holds the session cookie as after a login.
    client.goto(&format!("{}/healthz", host.base)).await?;
    let signed_in = client
        .execute_async(
            r#"const [email, password, done] = arguments;
               fetch('/v1/auth/login', {method: 'POST', headers: {'content-type': 'application/json'},
                   body: JSON.stringify({email, password})}).then(r => done(r.status));"#,
            vec![json!(tests::ADMIN_EMAIL), json!(tests::ADMIN_PASSWORD)],
        )
        .await?;
    ensure!(
        signed_in == json!(200),
        "sign-in from the page: {signed_in}"
    );
    let keys = median_load(&client, &format!("{}/#/", host.base), "keys-table").await?;
    let overview = median_load(
        &client,
        &format!("{}/#/admin/overview", host.base),
        "overview-24h",
    )
    .await?;
    client.close().await?;
    drop(driver);
    Ok((keys, overview))
}

/// The median of 5 loads of `url`: the time from navigation start at which `testid` is first
/// seen (an upper bound: the page may have drawn it a frame earlier). Each load starts from
/// another document, so that it is a full load and not a change of fragment.
async fn median_load(client: &fantoccini::Client, url: &str, testid: &str) -> Result<f64> {
    let blank = url.split("/#").next().unwrap_or(url).to_owned() + "/healthz";
    let mut times = Vec::new();
    for _ in 0..5 {
        client.goto(&blank).await?;
        client.goto(url).await?;
        let seen = client
            .execute_async(
                r#"const [testid, done] = arguments;
                   const look = () => document.querySelector(`[data-testid="${testid}"]`)
                       ? done(performance.now()) : requestAnimationFrame(look);
                   look();"#,
                vec![json!(testid)],
            )
            .await?;
        times.push(seen.as_f64().context("a time")?);
    }
    times.sort_by(f64::total_cmp);
    if times.is_empty() {
        bail!("no timing");
    }
    Ok(times[times.len() / 2])
}

//! Core verification against its floor (issue #6, part 1).
//!
//! `model` verifies a plaintext key against an in-memory record: parse with checksum, look the
//! record up, SHA-256 of the secret, constant-time compare, status, and the live ceiling
//! (`rules::effective`) with a permission check. The floor is the least any verifier must do:
//! a bare SHA-256 of the same secret bytes plus one hash-map lookup. Both run over the same
//! map, at 1 k and 1 M keys, visiting the keys in a scattered order so the map's memory
//! behaves as under real traffic. Criterion measures the two seconds apart; `paired` then runs
//! them in alternating chunks, so noise slows both alike. `cargo xtask bench` reports both.

use std::collections::HashMap;
use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use model::domain::{Access, KeyRecord, KeyRole};
use model::id::{Kind, new_id};
use model::key::{ApiKey, KeyRef};
use model::rules::{self, Rights, SecretCheck};
use sha2::{Digest, Sha256};
use time::OffsetDateTime;

/// Where the secret sits in a key's text: after `kg_`, the 12-char id and `_`.
const SECRET: std::ops::Range<usize> = 16..48;

struct Keys {
    records: HashMap<String, KeyRecord>,
    /// Plaintexts in a scattered visiting order.
    texts: Vec<String>,
}

fn keys(n: usize) -> Keys {
    let now = OffsetDateTime::now_utc();
    let mut records = HashMap::with_capacity(n);
    let mut texts = Vec::with_capacity(n);
    for _ in 0..n {
        let id = new_id(Kind::Key).expect("csprng");
        let key =
            ApiKey::generate(model::key::DEFAULT_PREFIX, &id["key_".len()..]).expect("csprng");
        let record = KeyRecord {
            id: id.clone(),
            org: "org_000000000000".into(),
            namespace: "org_000000000000".into(),
            owner: "usr_000000000000".into(),
            name: "bench".into(),
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
        // Keyed by the id part, as the floor's lookup is.
        records.insert(id["key_".len()..].to_owned(), record);
        texts.push(key.into_plaintext());
    }
    // A fixed stride coprime with n scatters the visits without a random generator.
    let stride = (n / 2 + 1..).find(|s| gcd(*s, n) == 1).unwrap_or(1);
    let texts = (0..n).map(|i| texts[(i * stride) % n].clone()).collect();
    Keys { records, texts }
}

fn gcd(a: usize, b: usize) -> usize {
    if b == 0 { a } else { gcd(b, a % b) }
}

fn verify(c: &mut Criterion) {
    let now = OffsetDateTime::now_utc();
    let creator = Rights::all_of(rules::BUILTIN_PERMISSIONS);
    let mut group = c.benchmark_group("verify");
    // KEYGATE_BENCH_MAX_KEYS=1000 skips the million, e.g. while profiling.
    let max: usize = std::env::var("KEYGATE_BENCH_MAX_KEYS")
        .ok()
        .and_then(|m| m.parse().ok())
        .unwrap_or(usize::MAX);
    for n in [1_000, 1_000_000].into_iter().filter(|n| *n <= max) {
        let keys = keys(n);
        let ids: Vec<&str> = keys.texts.iter().map(|t| &t[3..15]).collect();
        let model = |i: usize| verify_one(&keys, &creator, now, i);
        let floor = |i: usize| floor_one(&keys, &ids, i);
        let mut i = 0;
        group.bench_function(BenchmarkId::new("model", n), |b| {
            b.iter(|| {
                i = (i + 1) % n;
                model(i)
            })
        });
        let mut i = 0;
        group.bench_function(BenchmarkId::new("floor", n), |b| {
            b.iter(|| {
                i = (i + 1) % n;
                floor(i)
            })
        });
        paired(n, model, floor);
    }
    group.finish();
}

/// `model`'s verification of the `i`-th key.
fn verify_one(keys: &Keys, creator: &Rights, now: OffsetDateTime, i: usize) -> bool {
    let text = black_box(keys.texts[i].as_str());
    let Ok(key) = KeyRef::parse(text) else {
        return false;
    };
    let Some(record) = keys.records.get(key.id_part()) else {
        return false;
    };
    rules::check_secret(record, &key, now) == SecretCheck::Active
        && rules::permits(&record.access, creator, "resources.read", None)
}

/// The floor for the `i`-th key: SHA-256 of its secret's bytes and one hash-map lookup.
fn floor_one(keys: &Keys, ids: &[&str], i: usize) -> bool {
    let text = black_box(keys.texts[i].as_str());
    let digest = Sha256::digest(&text.as_bytes()[SECRET]);
    let found = keys.records.get(black_box(ids[i]));
    black_box(digest);
    found.is_some()
}

/// The same two measured side by side: alternating chunks of `CHUNK` verifications and
/// `CHUNK` floors for about two seconds, so that a noisy neighbour slows both alike (criterion
/// measures one, then the other, seconds apart). Writes the totals for `cargo xtask bench`
/// to `<criterion dir>/verify/paired/{n}.json`.
fn paired(n: usize, model: impl Fn(usize) -> bool, floor: impl Fn(usize) -> bool) {
    const CHUNK: usize = 1_000;
    // Only under `cargo bench` (criterion passes `--bench`), not as a quick test.
    if !std::env::args().any(|a| a == "--bench") {
        return;
    }
    let (mut model_time, mut floor_time, mut done) = (Duration::ZERO, Duration::ZERO, 0usize);
    let started = Instant::now();
    let mut i = 0;
    while started.elapsed() < Duration::from_secs(2) {
        let t = Instant::now();
        for k in 0..CHUNK {
            black_box(model((i + k) % n));
        }
        model_time += t.elapsed();
        // Other keys than the model's chunk just read, so neither finds the other's in cache.
        let t = Instant::now();
        for k in 0..CHUNK {
            black_box(floor((i + n / 2 + k) % n));
        }
        floor_time += t.elapsed();
        i = (i + CHUNK) % n;
        done += CHUNK;
    }
    let per = |d: Duration| d.as_nanos() as f64 / done as f64;
    let (model_ns, floor_ns) = (per(model_time), per(floor_time));
    println!(
        "verify/paired/{n}: model {model_ns:.1} ns, floor {floor_ns:.1} ns = {:.2}x",
        model_ns / floor_ns
    );
    let dir = std::env::var_os("CARGO_TARGET_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| "target".into())
        .join("criterion/verify/paired");
    let json = format!(r#"{{"model_ns": {model_ns}, "floor_ns": {floor_ns}, "each": {done}}}"#);
    if let Err(e) = std::fs::create_dir_all(&dir)
        .and_then(|()| std::fs::write(dir.join(format!("{n}.json")), json))
    {
        eprintln!("verify/paired/{n}: not written: {e}");
    }
}

criterion_group!(benches, verify);
criterion_main!(benches);

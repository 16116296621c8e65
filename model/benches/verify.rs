//! Core verification against its floor (issue #6, part 1).
//!
//! `model` verifies a plaintext key against an in-memory record: parse with checksum, look the
//! record up, SHA-256 of the secret, constant-time compare, status, and the live ceiling
//! (`rules::effective`) with a permission check. The floor is the least any verifier must do:
//! a bare SHA-256 of the same secret bytes plus one hash-map lookup. Both run over the same
//! map, at 1 k and 1 M keys, visiting the keys in a scattered order so the map's memory
//! behaves as under real traffic. `cargo xtask bench` reads the estimates into its report.

use std::collections::HashMap;
use std::hint::black_box;

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
        let key = ApiKey::generate(&id["key_".len()..]).expect("csprng");
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
        let mut i = 0;
        group.bench_with_input(BenchmarkId::new("model", n), &keys, |b, keys| {
            b.iter(|| {
                i = (i + 1) % n;
                let text = black_box(keys.texts[i].as_str());
                let Ok(key) = KeyRef::parse(text) else {
                    return false;
                };
                let Some(record) = keys.records.get(key.id_part()) else {
                    return false;
                };
                rules::check_secret(record, &key.secret_hash(), now) == SecretCheck::Active
                    && rules::permits(&record.access, &creator, "resources.read", None)
            })
        });
        let mut i = 0;
        let ids: Vec<&str> = keys.texts.iter().map(|t| &t[3..15]).collect();
        group.bench_with_input(BenchmarkId::new("floor", n), &keys, |b, keys| {
            b.iter(|| {
                i = (i + 1) % n;
                let text = black_box(keys.texts[i].as_str());
                let digest = Sha256::digest(&text.as_bytes()[SECRET]);
                let found = keys.records.get(black_box(ids[i]));
                black_box(digest);
                found.is_some()
            })
        });
    }
    group.finish();
}

criterion_group!(benches, verify);
criterion_main!(benches);

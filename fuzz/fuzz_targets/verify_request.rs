//! `wire::decode_verify`, the decoder of `POST /v1/keys/verify` on both hosts, on any bytes: it
//! never panics; a refusal is 400 `bad_request` (413 beyond the limit) whose detail is fixed
//! text, never a piece of the body (which may hold a key); a decoded request round-trips, and
//! verifying it (on an empty store) and the gateway's refusal never echo its key either.

#![no_main]

use futures_executor::block_on;
use libfuzzer_sys::fuzz_target;
use model::api::VerifyCode;
use model::service::Keygate;
use model::store::MemoryStore;
use model::wire::{self, BODY_LIMIT};

fuzz_target!(|data: &[u8]| {
    match wire::decode_verify(data) {
        Ok(req) => decoded(data, &req),
        Err(e) => {
            let problem = model::api::Problem::of(&e);
            let expected = if data.len() > BODY_LIMIT {
                (413, "payload_too_large")
            } else {
                (400, "bad_request")
            };
            assert_eq!((problem.status, problem.code.as_str()), expected);
            // The detail is the same whatever the body was.
            let fixed = wire::decode_verify(b"")
                .err()
                .map(|e| e.to_string())
                .unwrap_or_default();
            if data.len() <= BODY_LIMIT {
                assert_eq!(problem.detail, fixed, "the detail varies with the body");
            }
            // Words of the fixed text itself (`permissions`) are not an echo.
            if let Some(key) = claimed_key(data).filter(|k| !fixed.contains(k.as_str())) {
                assert!(!problem.detail.contains(&key), "the error echoed {key:?}");
            }
        }
    }
});

/// The `key` string a body tries to send, when it is JSON with one worth looking for.
fn claimed_key(data: &[u8]) -> Option<String> {
    let value: serde_json::Value = serde_json::from_slice(data).ok()?;
    let key = value.get("key")?.as_str()?;
    // Short strings occur in any fixed text by chance.
    (key.len() >= 8).then(|| key.to_owned())
}

fn decoded(data: &[u8], req: &model::api::VerifyRequest) {
    assert!(data.len() <= BODY_LIMIT);
    let again = serde_json::to_vec(req).expect("a decoded request encodes");
    let back = wire::decode_verify(&again).expect("an encoded request decodes");
    assert_eq!(back.key, req.key);
    assert_eq!(back.permissions, req.permissions);
    assert_eq!(
        (&back.resource, &back.namespace),
        (&req.resource, &req.namespace)
    );

    let kg = Keygate::new(MemoryStore::default());
    let at = time::OffsetDateTime::UNIX_EPOCH;
    let answer = block_on(kg.verify(req, at)).expect("an empty memory store answers");
    assert_eq!(answer.code, VerifyCode::NotFound, "nothing exists yet");
    assert!(!answer.valid);
    let refusal = wire::gateway_identity(&answer).expect_err("a refused key is not forwarded");
    let problem = model::api::Problem::of(&refusal);
    assert_eq!(problem.status, 401);
    if req.key.len() >= 8 {
        let shown = serde_json::to_string(&answer).expect("an answer encodes");
        assert!(!shown.contains(&req.key), "the answer echoed the key");
        assert!(
            !problem.detail.contains(&req.key),
            "the refusal echoed the key"
        );
    }
}

//! `wire::decode` on any bytes, for every JSON request body of the endpoint table
//! (`model::http::ENDPOINTS`), decoded exactly as the dispatcher decodes it. The first byte
//! picks the endpoint (and the Content-Type sent); the rest is the body. It never panics; a
//! refusal is 400 `bad_request` (not JSON, or not sent as JSON) or 422 `validation_failed`
//! (JSON of the wrong shape), as `wire::decode` documents; and what the dispatcher decodes,
//! the console (which encodes these same types) can send back and have decoded again.

#![no_main]

use libfuzzer_sys::fuzz_target;
use model::http::{ENDPOINTS, Endpoint, Op, decode_body};
use serde::de::IgnoredAny;

/// The Content-Types a client might send: JSON, JSON with a charset, something else.
const CONTENT_TYPES: [Option<&str>; 4] = [
    Some("application/json"),
    Some("Application/JSON; charset=utf-8"),
    Some("text/plain"),
    None,
];

fuzz_target!(|data: &[u8]| {
    let Some((pick, body)) = data.split_first() else {
        return;
    };
    // The endpoints that take a JSON body. Verification's is declared too but decoded by its
    // own fast decoder, whatever the Content-Type: `verify_request` fuzzes that.
    let with_body: Vec<&Endpoint> = ENDPOINTS
        .iter()
        .filter(|e| e.body.is_some() && e.op != Op::Verify)
        .collect();
    let endpoint = with_body[usize::from(*pick) % with_body.len()];
    let content_type = CONTENT_TYPES[usize::from(*pick) / with_body.len() % CONTENT_TYPES.len()];
    check(endpoint, content_type, body);
});

fn check(endpoint: &Endpoint, content_type: Option<&str>, body: &[u8]) {
    let json =
        content_type.is_some_and(|ct| ct.to_ascii_lowercase().starts_with("application/json"));
    match decode_body(endpoint.op, content_type, body) {
        Ok(Some(again)) => {
            assert!(json, "decoded a body not sent as JSON");
            if let Err(e) = decode_body(endpoint.op, CONTENT_TYPES[0], &again) {
                panic!(
                    "{:?} re-encoded as {} does not decode: {e}",
                    endpoint.op,
                    String::from_utf8_lossy(&again)
                );
            }
        }
        Ok(None) => panic!("{:?} takes a body", endpoint.op),
        Err(e) => {
            let problem = model::api::Problem::of(&e);
            let got = (problem.status, problem.code.as_str());
            let not_json = !json || serde_json::from_slice::<IgnoredAny>(body).is_err();
            // What serde_json cannot hold as a value (a number beyond f64, nesting beyond
            // 128) may be either: `tests/it/badinput.rs` pins `1e400` as 400.
            let unreadable = serde_json::from_slice::<serde_json::Value>(body).is_err();
            let allowed: &[(u16, &str)] = if body.len() > endpoint.body_limit() {
                &[(413, "payload_too_large")]
            } else if not_json {
                &[(400, "bad_request")]
            } else if unreadable {
                &[(400, "bad_request"), (422, "validation_failed")]
            } else {
                &[(422, "validation_failed")]
            };
            assert!(
                allowed.contains(&got),
                "{:?}: {got:?} for {:?}: {e}",
                endpoint.op,
                String::from_utf8_lossy(body)
            );
        }
    }
}

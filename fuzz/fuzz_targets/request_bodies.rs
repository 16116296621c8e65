//! `wire::decode` on any bytes, for every JSON request body type the hosts decode with it
//! (`server/src/http.rs`'s `Body<T>`, `edge-worker/src/lib.rs`'s `body`). The first byte picks
//! the type (and the Content-Type sent); the rest is the body. It never panics; a refusal is
//! 400 `bad_request` (not JSON, or not sent as JSON) or 422 `validation_failed` (JSON of the
//! wrong shape), as `wire::decode` documents; and what a host decodes, the console (which
//! encodes these same types) can send back and have decoded again.

#![no_main]

use libfuzzer_sys::fuzz_target;
use model::api::{
    AcceptRequest, BulkRevokeRequest, CreateKeyRequest, CreateOrganizationRequest, GrantRequest,
    GroupMemberRequest, InviteRequest, KeyPatch, LoginRequest, NamespaceRequest, PermissionRequest,
    RenameRequest, ResourcePatch, ResourceRequest, RolesPatch, RollRequest, SettingsPatch,
    SetupRequest,
};
use model::wire::{self, BODY_LIMIT};
use serde::Serialize;
use serde::de::{DeserializeOwned, IgnoredAny};

/// The Content-Types a client might send: JSON, JSON with a charset, something else.
const CONTENT_TYPES: [Option<&str>; 4] = [
    Some("application/json"),
    Some("Application/JSON; charset=utf-8"),
    Some("text/plain"),
    None,
];

/// How many body types [`check`] knows; the first input byte picks one.
const TYPES: u8 = 18;

fuzz_target!(|data: &[u8]| {
    let Some((pick, body)) = data.split_first() else {
        return;
    };
    let content_type = CONTENT_TYPES[usize::from(pick / TYPES) % CONTENT_TYPES.len()];
    match pick % TYPES {
        0 => check::<LoginRequest>(content_type, body),
        1 => check::<CreateKeyRequest>(content_type, body),
        2 => check::<SettingsPatch>(content_type, body),
        3 => check::<KeyPatch>(content_type, body),
        4 => check::<BulkRevokeRequest>(content_type, body),
        5 => check::<RollRequest>(content_type, body),
        6 => check::<RolesPatch>(content_type, body),
        7 => check::<InviteRequest>(content_type, body),
        8 => check::<AcceptRequest>(content_type, body),
        9 => check::<CreateOrganizationRequest>(content_type, body),
        10 => check::<NamespaceRequest>(content_type, body),
        11 => check::<RenameRequest>(content_type, body),
        12 => check::<GroupMemberRequest>(content_type, body),
        13 => check::<PermissionRequest>(content_type, body),
        14 => check::<GrantRequest>(content_type, body),
        15 => check::<ResourceRequest>(content_type, body),
        16 => check::<SetupRequest>(content_type, body),
        _ => check::<ResourcePatch>(content_type, body),
    }
});

fn check<T: Serialize + DeserializeOwned>(content_type: Option<&str>, body: &[u8]) {
    let json =
        content_type.is_some_and(|ct| ct.to_ascii_lowercase().starts_with("application/json"));
    match wire::decode::<T>(content_type, body) {
        Ok(value) => {
            assert!(json, "decoded a body not sent as JSON");
            let again = serde_json::to_vec(&value).expect("a decoded body encodes");
            if let Err(e) = wire::decode::<T>(CONTENT_TYPES[0], &again) {
                panic!(
                    "{} re-encoded as {} does not decode: {e}",
                    std::any::type_name::<T>(),
                    String::from_utf8_lossy(&again)
                );
            }
        }
        Err(e) => {
            let problem = e.problem();
            let got = (problem.status, problem.code.as_str());
            let not_json = !json || serde_json::from_slice::<IgnoredAny>(body).is_err();
            // What serde_json cannot hold as a value (a number beyond f64, nesting beyond
            // 128) may be either: `tests/it/badinput.rs` pins `1e400` as 400.
            let unreadable = serde_json::from_slice::<serde_json::Value>(body).is_err();
            let allowed: &[(u16, &str)] = if body.len() > BODY_LIMIT {
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
                "{}: {got:?} for {:?}: {e}",
                std::any::type_name::<T>(),
                String::from_utf8_lossy(body)
            );
        }
    }
}

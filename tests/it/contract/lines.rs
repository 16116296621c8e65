//! The cases that are one request and its answer, one line each: who calls, what is sent,
//! which problem comes back.

use anyhow::Result;
use serde_json::Value;
use tests::{ADMIN_EMAIL, As};

use super::Ctx;

/// Who sends a line's request.
#[derive(Clone, Copy)]
pub(super) enum Who {
    Nobody,
    /// The admin of the case's instance.
    Admin,
    /// A bearer token that names no session or key.
    Bogus,
}

/// One request and the problem it must get. `{org}` and `{admin}` in the body stand for the
/// organization's id and the admin's email.
pub(super) struct Line {
    pub(super) name: &'static str,
    who: Who,
    method: &'static str,
    path: &'static str,
    body: Option<&'static str>,
    status: u16,
    code: &'static str,
}

const fn line(
    name: &'static str,
    who: Who,
    method: &'static str,
    path: &'static str,
    body: Option<&'static str>,
    status: u16,
    code: &'static str,
) -> Line {
    Line {
        name,
        who,
        method,
        path,
        body,
        status,
        code,
    }
}

use Who::{Admin, Bogus, Nobody};

#[rustfmt::skip]
pub(super) const LINES: &[Line] = &[
    line("wrong_password_is_unauthenticated", Nobody, "POST", "/v1/auth/login", Some(r#"{"email":"{admin}","password":"not-it"}"#), 401, "unauthenticated"),
    line("me_needs_a_session", Nobody, "GET", "/v1/me", None, 401, "unauthenticated"),
    line("me_needs_a_live_session", Bogus, "GET", "/v1/me", None, 401, "unauthenticated"),
    line("unknown_endpoint_is_a_problem", Admin, "GET", "/v1/nothing-here", None, 404, "not_found"),
    line("a_wrong_method_is_a_problem", Admin, "DELETE", "/v1/settings", None, 405, "method_not_allowed"),
    line("permission_not_held_is_refused", Admin, "POST", "/v1/keys", Some(r#"{"name":"too much","namespace":"{org}","permissions":[{"permission":"datasets.delete"}]}"#), 403, "permission_not_held"),
    line("an_unknown_key_is_not_found", Admin, "GET", "/v1/keys/key_000000000000", None, 404, "not_found"),
    line("a_namespace_of_nowhere_holds_nothing", Admin, "POST", "/v1/keys", Some(r#"{"name":"x","namespace":"ws_000000000000","role":"viewer"}"#), 404, "not_found"),
    line("keys_are_listed_only_to_a_caller", Nobody, "GET", "/v1/keys", None, 401, "unauthenticated"),
    line("settings_take_no_unknown_field", Admin, "PATCH", "/v1/settings", Some(r#"{"nope":1}"#), 422, "validation_failed"),
];

/// Sends `line`'s request in `c` and checks its problem.
pub(super) async fn run(c: Ctx, line: &Line) -> Result<()> {
    let body = line
        .body
        .map(|b| b.replace("{org}", &c.org).replace("{admin}", ADMIN_EMAIL))
        .map(|b| serde_json::from_str::<Value>(&b))
        .transpose()?;
    let who = match line.who {
        Who::Nobody => As::Nobody,
        Who::Admin => As::Bearer(&c.token),
        Who::Bogus => As::Bearer("kgs_not-a-session"),
    };
    let answer = c
        .api
        .call(line.method, line.path, who, body.as_ref())
        .await?;
    answer.problem(line.status, line.code)
}

//! Bad input, on both hosts: oversized bodies and headers, wrong content types, invalid UTF-8,
//! deep JSON, unknown fields, absurd limits and dates, hostile paths. Every one answers a clear
//! 4xx — RFC 7807 problem JSON with its stable code — changes nothing, and the host keeps
//! serving.

use anyhow::{Result, ensure};
use serde_json::{Value, json};
use tests::{Answer, Api, As, Fixture, Host};

/// One hostile request and the answer it must get.
struct Case {
    name: String,
    method: &'static str,
    path: String,
    /// Sent as the admin (bearer) unless false.
    admin: bool,
    content_type: Option<&'static str>,
    headers: Vec<(String, String)>,
    body: Option<Vec<u8>>,
    status: u16,
    code: &'static str,
}

fn case(
    name: &str,
    method: &'static str,
    path: &str,
    body: &[u8],
    status: u16,
    code: &'static str,
) -> Case {
    Case {
        name: name.to_owned(),
        method,
        path: path.to_owned(),
        admin: true,
        content_type: Some("application/json"),
        headers: Vec::new(),
        body: Some(body.to_vec()),
        status,
        code,
    }
}

impl Case {
    fn typed(mut self, content_type: Option<&'static str>) -> Self {
        self.content_type = content_type;
        self
    }
    fn anonymous(mut self) -> Self {
        self.admin = false;
        self
    }
    fn header(mut self, name: &str, value: String) -> Self {
        self.headers.push((name.to_owned(), value));
        self
    }
    fn no_body(mut self) -> Self {
        self.body = None;
        self.content_type = None;
        self
    }
}

fn json_bytes(v: Value) -> Vec<u8> {
    serde_json::to_vec(&v).unwrap_or_default()
}

/// Nested arrays `depth` deep, as a JSON value's text.
fn deep(depth: usize) -> String {
    format!("{}{}", "[".repeat(depth), "]".repeat(depth))
}

const VALIDATION: (u16, &str) = (422, "validation_failed");
const BAD: (u16, &str) = (400, "bad_request");

fn cases(fx: &Fixture) -> Vec<Case> {
    let org = &fx.org;
    let key = |extra: Value| {
        let mut body = json!({"name": "bad input", "namespace": org, "role": "viewer"});
        if let (Some(b), Some(e)) = (body.as_object_mut(), extra.as_object()) {
            b.extend(e.clone());
        }
        json_bytes(body)
    };
    let big = vec![b' '; 70 * 1024];
    let mut cases = vec![
        // Content types.
        case(
            "text/plain key",
            "POST",
            "/v1/keys",
            &key(json!({})),
            BAD.0,
            BAD.1,
        )
        .typed(Some("text/plain")),
        case(
            "no content type",
            "POST",
            "/v1/keys",
            &key(json!({})),
            BAD.0,
            BAD.1,
        )
        .typed(None),
        case(
            "form-encoded",
            "POST",
            "/v1/keys",
            b"name=x&namespace=y",
            BAD.0,
            BAD.1,
        )
        .typed(Some("application/x-www-form-urlencoded")),
        case(
            "multipart",
            "POST",
            "/v1/keys",
            b"--x\r\n\r\n--x--",
            BAD.0,
            BAD.1,
        )
        .typed(Some("multipart/form-data; boundary=x")),
        case(
            "json lookalike type",
            "POST",
            "/v1/keys",
            &key(json!({})),
            BAD.0,
            BAD.1,
        )
        .typed(Some("application/jsonx")),
        case(
            "text/plain login",
            "POST",
            "/v1/auth/login",
            br#"{"email":"a@b.c","password":"x"}"#,
            BAD.0,
            BAD.1,
        )
        .typed(Some("text/plain"))
        .anonymous(),
        // Not JSON, or not UTF-8.
        case(
            "invalid UTF-8 in a string",
            "POST",
            "/v1/keys",
            b"{\"name\": \"\xff\xfe\", \"namespace\": \"x\"}",
            BAD.0,
            BAD.1,
        ),
        case(
            "invalid UTF-8 to verify",
            "POST",
            "/v1/keys/verify",
            b"{\"key\": \"kg_\xc3\x28\"}",
            BAD.0,
            BAD.1,
        ),
        case(
            "lone surrogate",
            "POST",
            "/v1/keys",
            br#"{"name": "\ud800", "namespace": "x"}"#,
            BAD.0,
            BAD.1,
        ),
        case(
            "truncated JSON",
            "PATCH",
            "/v1/settings",
            br#"{"api_keys_enabled": tr"#,
            BAD.0,
            BAD.1,
        ),
        case("empty body", "POST", "/v1/keys", b"", BAD.0, BAD.1),
        case(
            "empty verify body",
            "POST",
            "/v1/keys/verify",
            b"",
            BAD.0,
            BAD.1,
        ),
        case(
            "NUL bytes",
            "POST",
            "/v1/invitations",
            b"\0\0\0\0",
            BAD.0,
            BAD.1,
        ),
        case(
            "trailing garbage",
            "PATCH",
            "/v1/settings",
            br#"{"api_keys_enabled": true} {}"#,
            BAD.0,
            BAD.1,
        ),
        case(
            "number beyond f64",
            "PATCH",
            "/v1/settings",
            br#"{"max_active_keys_per_user": 1e400}"#,
            BAD.0,
            BAD.1,
        ),
        // Deep JSON, just under the body limit: answered at the first level that is of the
        // wrong shape, never by recursing (no stack overflow).
        case(
            "deep array",
            "POST",
            "/v1/keys",
            deep(30_000).as_bytes(),
            VALIDATION.0,
            VALIDATION.1,
        ),
        case(
            "deep unclosed array",
            "POST",
            "/v1/keys",
            "[".repeat(60_000).as_bytes(),
            BAD.0,
            BAD.1,
        ),
        case(
            "deep to verify",
            "POST",
            "/v1/keys/verify",
            deep(30_000).as_bytes(),
            BAD.0,
            BAD.1,
        ),
        case(
            // Well-formed JSON 10 000 levels deep: read without overflowing the stack, and
            // refused by its shape (the first field is unknown).
            "deep objects",
            "PATCH",
            "/v1/settings",
            format!("{}1{}", r#"{"a":"#.repeat(10_000), "}".repeat(10_000)).as_bytes(),
            VALIDATION.0,
            VALIDATION.1,
        ),
        case(
            "deep verify object",
            "POST",
            "/v1/keys/verify",
            format!("{}{}", r#"{"key":"#.repeat(8_000), "}".repeat(8_000)).as_bytes(),
            BAD.0,
            BAD.1,
        ),
        // JSON of the wrong shape.
        case(
            "null body",
            "POST",
            "/v1/keys",
            b"null",
            VALIDATION.0,
            VALIDATION.1,
        ),
        case(
            "array body",
            "PATCH",
            "/v1/settings",
            b"[]",
            VALIDATION.0,
            VALIDATION.1,
        ),
        case(
            "positional fields",
            "PATCH",
            "/v1/settings",
            b"[true]",
            VALIDATION.0,
            VALIDATION.1,
        ),
        case(
            "positional verify",
            "POST",
            "/v1/keys/verify",
            format!(r#"["{}"]"#, fx.key).as_bytes(),
            BAD.0,
            BAD.1,
        ),
        case(
            "duplicate field",
            "POST",
            "/v1/keys",
            format!(r#"{{"name":"a","name":"b","namespace":"{org}","role":"viewer"}}"#).as_bytes(),
            VALIDATION.0,
            VALIDATION.1,
        ),
        case(
            "u32 overflow",
            "PATCH",
            "/v1/settings",
            br#"{"max_active_keys_per_user": 4294967296}"#,
            VALIDATION.0,
            VALIDATION.1,
        ),
        case(
            "negative count",
            "PATCH",
            "/v1/settings",
            br#"{"max_active_keys_per_user": -1}"#,
            VALIDATION.0,
            VALIDATION.1,
        ),
        case(
            "fractional count",
            "PATCH",
            "/v1/settings",
            br#"{"max_expiry_days": 1.5}"#,
            VALIDATION.0,
            VALIDATION.1,
        ),
        case(
            "string for a bool",
            "PATCH",
            "/v1/settings",
            br#"{"api_keys_enabled": "true"}"#,
            VALIDATION.0,
            VALIDATION.1,
        ),
        case(
            "ids not a list",
            "POST",
            "/v1/keys/revoke",
            br#"{"ids": "key_x"}"#,
            VALIDATION.0,
            VALIDATION.1,
        ),
        case(
            "too many ids",
            "POST",
            "/v1/keys/revoke",
            &json_bytes(json!({"ids": vec!["key_x"; 1001]})),
            VALIDATION.0,
            VALIDATION.1,
        ),
        case(
            "no ids",
            "POST",
            "/v1/keys/revoke",
            br#"{"ids": []}"#,
            VALIDATION.0,
            VALIDATION.1,
        ),
        case(
            "leaked keys not a list",
            "POST",
            "/v1/keys/leaked",
            br#"{"keys": "kg_x"}"#,
            VALIDATION.0,
            VALIDATION.1,
        )
        .anonymous(),
        case(
            "no leaked keys",
            "POST",
            "/v1/keys/leaked",
            br#"{"keys": []}"#,
            VALIDATION.0,
            VALIDATION.1,
        )
        .anonymous(),
        case(
            "too many leaked keys",
            "POST",
            "/v1/keys/leaked",
            &json_bytes(json!({"keys": vec!["kg_x"; 101]})),
            VALIDATION.0,
            VALIDATION.1,
        )
        .anonymous(),
        case(
            "grace beyond a day",
            "POST",
            &format!("/v1/keys/{}/roll", fx.id),
            br#"{"grace_seconds": 86401}"#,
            VALIDATION.0,
            VALIDATION.1,
        ),
        case(
            "negative grace",
            "POST",
            &format!("/v1/keys/{}/roll", fx.id),
            br#"{"grace_seconds": -1}"#,
            VALIDATION.0,
            VALIDATION.1,
        ),
        // Usage policies (SPEC §4.5).
        case(
            "a limit of 2^64",
            "PUT",
            &format!("/v1/keys/{}/policy", fx.id),
            br#"{"ratelimits": [{"name": "a", "limit": 18446744073709551616, "window_seconds": 1}]}"#,
            VALIDATION.0,
            VALIDATION.1,
        ),
        case(
            "a window of a year",
            "PUT",
            &format!("/v1/keys/{}/policy", fx.id),
            br#"{"ratelimits": [{"name": "a", "limit": 1, "window_seconds": 31536000}]}"#,
            VALIDATION.0,
            VALIDATION.1,
        ),
        case(
            "a refill every week",
            "PUT",
            &format!("/v1/keys/{}/policy", fx.id),
            br#"{"credits": {"remaining": 1, "refill": {"interval": "weekly", "amount": 1}}}"#,
            VALIDATION.0,
            VALIDATION.1,
        ),
        case(
            "a network of words",
            "PUT",
            &format!("/v1/keys/{}/policy", fx.id),
            br#"{"allowed_cidrs": ["everywhere"]}"#,
            VALIDATION.0,
            VALIDATION.1,
        ),
        case(
            "a thousand networks",
            "POST",
            "/v1/keys",
            &key(json!({"allowed_cidrs": vec!["10.0.0.0/8"; 1000]})),
            VALIDATION.0,
            VALIDATION.1,
        ),
        case(
            "credits of a key without",
            "POST",
            &format!("/v1/keys/{}/credits", fx.id),
            br#"{"add": 1}"#,
            VALIDATION.0,
            VALIDATION.1,
        ),
        case(
            "credits added and set",
            "POST",
            &format!("/v1/keys/{}/credits", fx.id),
            br#"{"add": 1, "set": 1}"#,
            VALIDATION.0,
            VALIDATION.1,
        ),
        // Dates.
        case(
            "negative year",
            "POST",
            "/v1/keys",
            &key(json!({"expires_at": "-9999-01-01T00:00:00Z"})),
            VALIDATION.0,
            VALIDATION.1,
        ),
        case(
            "six-digit year",
            "POST",
            "/v1/keys",
            &key(json!({"expires_at": "+275760-09-13T00:00:00Z"})),
            VALIDATION.0,
            VALIDATION.1,
        ),
        case(
            "30 February",
            "POST",
            "/v1/keys",
            &key(json!({"expires_at": "2030-02-30T00:00:00Z"})),
            VALIDATION.0,
            VALIDATION.1,
        ),
        case(
            "no offset",
            "POST",
            "/v1/keys",
            &key(json!({"expires_at": "2030-01-01T00:00:00"})),
            VALIDATION.0,
            VALIDATION.1,
        ),
        case(
            "epoch number",
            "POST",
            "/v1/keys",
            &key(json!({"expires_at": 1_900_000_000})),
            VALIDATION.0,
            VALIDATION.1,
        ),
        case(
            "year zero",
            "POST",
            "/v1/keys",
            &key(json!({"expires_at": "0000-01-01T00:00:00Z"})),
            VALIDATION.0,
            VALIDATION.1,
        ),
        // Names.
        case(
            "101 emoji",
            "POST",
            "/v1/keys",
            &key(json!({"name": "🔑".repeat(101)})),
            VALIDATION.0,
            VALIDATION.1,
        ),
        case(
            "NUL in a name",
            "POST",
            "/v1/keys",
            &key(json!({"name": "a\u{0}b"})),
            VALIDATION.0,
            VALIDATION.1,
        ),
        case(
            "newline in a name",
            "POST",
            "/v1/apps",
            br#"{"name": "a\nb"}"#,
            VALIDATION.0,
            VALIDATION.1,
        ),
        case(
            "blank unicode name",
            "POST",
            "/v1/keys",
            &key(json!({"name": "\u{3000}\u{2003}"})),
            VALIDATION.0,
            VALIDATION.1,
        ),
        case(
            "long description",
            "POST",
            "/v1/keys",
            &key(json!({"description": "é".repeat(1001)})),
            VALIDATION.0,
            VALIDATION.1,
        ),
        case(
            "bad permission name",
            "POST",
            "/v1/permissions",
            br#"{"name": "Datasets.READ"}"#,
            VALIDATION.0,
            VALIDATION.1,
        ),
        case(
            "unicode permission name",
            "POST",
            "/v1/permissions",
            "{\"name\": \"dátasets.read\"}".as_bytes(),
            VALIDATION.0,
            VALIDATION.1,
        ),
        // Queries.
        case(
            "negative limit",
            "GET",
            "/v1/keys?limit=-1",
            b"",
            VALIDATION.0,
            VALIDATION.1,
        )
        .no_body(),
        case(
            "huge limit",
            "GET",
            "/v1/keys?limit=99999999999999999999",
            b"",
            VALIDATION.0,
            VALIDATION.1,
        )
        .no_body(),
        case(
            "limit over the maximum",
            "GET",
            "/v1/events?limit=201",
            b"",
            VALIDATION.0,
            VALIDATION.1,
        )
        .no_body(),
        case(
            "limit not a number",
            "GET",
            "/v1/members?limit=ten",
            b"",
            VALIDATION.0,
            VALIDATION.1,
        )
        .no_body(),
        case(
            "duplicate limit",
            "GET",
            "/v1/keys?limit=1&limit=2",
            b"",
            VALIDATION.0,
            VALIDATION.1,
        )
        .no_body(),
        case(
            "unknown parameter",
            "GET",
            "/v1/keys?bogus=1",
            b"",
            VALIDATION.0,
            VALIDATION.1,
        )
        .no_body(),
        case(
            "unknown status",
            "GET",
            "/v1/keys?status=deleted",
            b"",
            VALIDATION.0,
            VALIDATION.1,
        )
        .no_body(),
        case(
            "since not a date",
            "GET",
            "/v1/events?since=yesterday",
            b"",
            VALIDATION.0,
            VALIDATION.1,
        )
        .no_body(),
        case(
            "since negative",
            "GET",
            "/v1/events?since=-1",
            b"",
            VALIDATION.0,
            VALIDATION.1,
        )
        .no_body(),
        case(
            "until absurd",
            "GET",
            "/v1/events?until=99999-01-01T00:00:00Z",
            b"",
            VALIDATION.0,
            VALIDATION.1,
        )
        .no_body(),
        case(
            "usage since absurd",
            "GET",
            &format!("/v1/keys/{}/usage?since=-0001-01-01T00:00:00Z", fx.id),
            b"",
            VALIDATION.0,
            VALIDATION.1,
        )
        .no_body(),
        // Paths and ids.
        case("NUL id", "GET", "/v1/keys/%00", b"", 404, "not_found").no_body(),
        case(
            "traversal id",
            "GET",
            "/v1/keys/..%2F..%2Fetc%2Fpasswd",
            b"",
            404,
            "not_found",
        )
        .no_body(),
        case(
            "schema-shaped id",
            "GET",
            "/v1/keys/x%3Akey%3Ay",
            b"",
            404,
            "not_found",
        )
        .no_body(),
        case(
            "huge id",
            "DELETE",
            &format!("/v1/resources/{}", "r".repeat(8 * 1024)),
            b"",
            404,
            "not_found",
        )
        .no_body(),
        case(
            "invalid UTF-8 id",
            "GET",
            "/v1/workspaces/%FF%FE",
            b"",
            404,
            "not_found",
        )
        .no_body(),
        case(
            "invalid UTF-8 second id",
            "DELETE",
            "/v1/usergroups/grp_x/members/%C3%28",
            b"",
            404,
            "not_found",
        )
        .no_body(),
        case(
            "unknown invitation",
            "POST",
            "/v1/invitations/nope/accept",
            br#"{"name":"n","password":"long-enough-pw"}"#,
            404,
            "not_found",
        )
        .anonymous(),
        // Store keys derived from input stay bounded: an email that is no email at all is
        // refused before anything is counted or written (the audit's finding 6).
        case(
            "over-long email at sign-in",
            "POST",
            "/v1/auth/login",
            &json_bytes(
                json!({"email": format!("{}@example.com", "a".repeat(60_000)), "password": "x"}),
            ),
            422,
            "validation_failed",
        )
        .anonymous(),
        case(
            "sign-in with no email",
            "POST",
            "/v1/auth/login",
            &json_bytes(json!({"email": "not an email", "password": "x"})),
            422,
            "validation_failed",
        )
        .anonymous(),
        // A method the path does not take: 405 problem JSON on both hosts (the worker's
        // router answered plain text once).
        case(
            "PUT on a key",
            "PUT",
            "/v1/keys/key_000000000000",
            b"{}",
            405,
            "method_not_allowed",
        ),
        case(
            "GET of verify",
            "GET",
            "/v1/keys/verify",
            b"",
            405,
            "method_not_allowed",
        )
        .no_body(),
        case(
            "DELETE of settings",
            "DELETE",
            "/v1/settings",
            b"",
            405,
            "method_not_allowed",
        )
        .no_body(),
        // Sizes.
        case(
            "oversized login",
            "POST",
            "/v1/auth/login",
            &big,
            413,
            "payload_too_large",
        )
        .anonymous(),
        case(
            "oversized settings",
            "PATCH",
            "/v1/settings",
            &big,
            413,
            "payload_too_large",
        ),
        case(
            "oversized bulk revoke",
            "POST",
            "/v1/keys/revoke",
            &json_bytes(json!({"ids": vec!["key_000000000000"; 5000]})),
            413,
            "payload_too_large",
        ),
        // GitHub's alert batches may be larger than any other body (up to 1 MiB), and are
        // read only once GitHub's signature checks out.
        case(
            "secret scanning alerts over 64 KiB, unsigned",
            "POST",
            "/v1/secret-scanning/github",
            &json_bytes(json!(vec![
                json!({"token": "kg_x", "type": "t", "url": "https://github.com/o/r"});
                1000
            ])),
            401,
            "unauthenticated",
        )
        .anonymous(),
        case(
            "secret scanning alerts over 1 MiB",
            "POST",
            "/v1/secret-scanning/github",
            &json_bytes(json!(vec![
                json!({"token": "kg_x", "type": "t", "url": "https://github.com/o/r"});
                20000
            ])),
            413,
            "payload_too_large",
        )
        .anonymous(),
        case("huge bearer", "GET", "/v1/me", b"", 401, "unauthenticated")
            .no_body()
            .anonymous()
            .header("authorization", format!("Bearer {}", "a".repeat(8 * 1024))),
        case(
            "huge key as bearer",
            "GET",
            "/v1/me",
            b"",
            401,
            "unauthenticated",
        )
        .no_body()
        .anonymous()
        .header(
            "authorization",
            format!("Bearer kg_{}", "a".repeat(8 * 1024)),
        ),
        case("huge cookie", "GET", "/v1/me", b"", 401, "unauthenticated")
            .no_body()
            .anonymous()
            .header(
                "cookie",
                format!("keygate_session={}", "a".repeat(8 * 1024)),
            ),
    ];
    // Unknown fields, on every body that takes JSON.
    for (method, path, body) in [
        (
            "POST",
            "/v1/auth/login".to_owned(),
            json!({"email": "a@b.c", "password": "x", "admin": true}),
        ),
        (
            "PATCH",
            "/v1/settings".to_owned(),
            json!({"api_keys_enabled": true, "owner": "me"}),
        ),
        (
            "POST",
            "/v1/invitations".to_owned(),
            json!({"email": "x@y.z", "roles": [], "org": "org_x"}),
        ),
        (
            "POST",
            "/v1/apps".to_owned(),
            json!({"name": "a", "org": "org_x"}),
        ),
        (
            "POST",
            "/v1/workspaces".to_owned(),
            json!({"name": "a", "app": "app_x", "id": "ws_mine"}),
        ),
        (
            "POST",
            "/v1/permissions".to_owned(),
            json!({"name": "a.b", "builtin": true}),
        ),
        (
            "POST",
            "/v1/grants".to_owned(),
            json!({"principal": "usr_x", "namespace": org, "permission": "a.b", "org": "x"}),
        ),
        (
            "POST",
            "/v1/resources".to_owned(),
            json!({"namespace": org, "kind": "k", "name": "n", "owner": "usr_x"}),
        ),
        (
            "POST",
            "/v1/keys/revoke".to_owned(),
            json!({"ids": [fx.id], "force": true}),
        ),
        (
            "POST",
            "/v1/keys/leaked".to_owned(),
            json!({"keys": [fx.key], "url": "https://example.com"}),
        ),
        (
            "PATCH",
            format!("/v1/keys/{}", fx.id),
            json!({"name": "n", "expires_at": null}),
        ),
        (
            "POST",
            format!("/v1/keys/{}/roll", fx.id),
            json!({"grace_seconds": 0, "secret": "mine"}),
        ),
        (
            "PUT",
            format!("/v1/keys/{}/policy", fx.id),
            json!({"ratelimits": [{"name": "a", "limit": 1, "window_seconds": 1, "burst": 9}]}),
        ),
        (
            "POST",
            "/v1/organizations".to_owned(),
            json!({"name": "o", "admin_email": "o@p.q", "plan": "free"}),
        ),
    ] {
        let name = format!("unknown field on {method} {path}");
        cases.push(case(
            &name,
            method,
            &path,
            &json_bytes(body),
            VALIDATION.0,
            VALIDATION.1,
        ));
    }
    cases
}

/// A fingerprint of everything a change would touch: the newest audit event (every change
/// writes one), every key of the organization, the members and the namespaces.
async fn fingerprint(api: &Api, token: &str) -> Result<String> {
    let mut parts = Vec::new();
    for path in [
        "/v1/events?limit=1",
        "/v1/keys?all=true&limit=200",
        "/v1/members?limit=200",
        "/v1/apps?limit=200",
        "/v1/usergroups?limit=200",
        "/v1/settings",
    ] {
        let answer = api.call("GET", path, As::Bearer(token), None).await?;
        ensure!(answer.status == 200, "{path}: {answer:?}");
        parts.push(answer.body.to_string());
    }
    Ok(parts.join("\n"))
}

fn check(case: &Case, answer: &Answer) -> Result<()> {
    if case.status < 400 {
        // A filter naming nothing is an empty answer, not an error.
        ensure!(
            answer.status == case.status && answer.code() == case.code,
            "expected {} {}, got {} {}",
            case.status,
            case.code,
            answer.status,
            answer.body
        );
        return Ok(());
    }
    answer.problem(case.status, case.code)
}

async fn run(host: &Host) {
    let api = Api::new(&host.base);
    let fx = api
        .admin_with_key("bad input target")
        .await
        .expect("fixture");
    let before = fingerprint(&api, &fx.token).await.expect("fingerprint");
    let cases = cases(&fx);
    let mut failures = Vec::new();
    for case in &cases {
        let mut headers = case.headers.clone();
        if case.admin {
            headers.push(("authorization".into(), format!("Bearer {}", fx.token)));
        }
        if let Some(ct) = case.content_type {
            headers.push(("content-type".into(), ct.into()));
        }
        let outcome = match api
            .request(case.method, &case.path, &headers, case.body.clone())
            .await
        {
            Ok(answer) => check(case, &answer),
            Err(e) => Err(e.context("no answer")),
        };
        if let Err(e) = outcome {
            failures.push(format!("{}: {e:#}", case.name));
        }
        let alive = api.call("GET", "/healthz", As::Nobody, None).await;
        assert!(
            alive.is_ok_and(|a| a.status == 200),
            "the {} stopped serving after {}",
            host.name,
            case.name
        );
    }
    let after = fingerprint(&api, &fx.token).await.expect("fingerprint");
    if before != after {
        failures.push(format!(
            "bad input changed the store:\n{before}\n---\n{after}"
        ));
    }
    tests::figure(
        &format!("bad input ({})", host.name),
        &format!(
            "{} hostile requests, {} answered wrongly, store unchanged: {}",
            cases.len(),
            failures.len(),
            before == after
        ),
    );
    assert!(
        failures.is_empty(),
        "{} of {} bad requests were answered wrongly by the {}:\n{}",
        failures.len(),
        cases.len(),
        host.name,
        failures.join("\n")
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_input_is_refused_by_the_server() {
    let host = Host::server(None).await.expect("server starts");
    run(&host).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_input_is_refused_by_the_worker() {
    let host = Host::worker().await.expect("worker starts under workerd");
    run(&host).await;
}

/// Heads too large for the HTTP layer never reach the API: hyper refuses them with a bare 431
/// (there is no route yet to answer problem JSON from), and the server keeps serving.
/// Workers have their own limits at Cloudflare's edge, so this is the server's alone.
#[tokio::test(flavor = "multi_thread")]
async fn oversized_heads_are_refused_and_the_server_keeps_serving() {
    let host = Host::server(None).await.expect("server starts");
    let api = Api::new(&host.base);
    let many: Vec<(String, String)> = (0..200).map(|i| (format!("x-h{i}"), "v".into())).collect();
    let huge = vec![("x-junk".to_owned(), "a".repeat(1024 * 1024))];
    // Just under what an HTTP client sends at all (64 KiB): it reaches the API (which asks
    // for credentials first).
    let long_path = format!("/v1/keys/{}", "a".repeat(60 * 1024));
    for (name, path, headers, status) in [
        ("200 headers", "/v1/me", many, 431),
        ("a 1 MiB header", "/v1/me", huge, 431),
        ("a 60 KiB path", long_path.as_str(), Vec::new(), 401),
    ] {
        let answer = api.request("GET", path, &headers, None).await;
        let got = answer.map(|a| a.status).map_err(|e| e.to_string());
        assert_eq!(got, Ok(status), "{name}");
        let alive = api.call("GET", "/healthz", As::Nobody, None).await;
        assert!(alive.is_ok_and(|a| a.status == 200), "serving after {name}");
    }
}

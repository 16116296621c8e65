//! The HTTP conventions both hosts share, as plain functions over strings and bytes (no HTTP
//! framework here): reading credentials from headers, the session cookie, decoding bodies.

use serde::de::DeserializeOwned;

use crate::error::{Error, Result};
use crate::service::{Credential, SESSION_COOKIE};

/// Largest request body a host accepts.
pub const BODY_LIMIT: usize = 64 * 1024;
/// The largest body of GitHub's secret scanning alerts (a batch of hundreds of tokens, each
/// with where it was found).
pub const SCAN_BODY_LIMIT: usize = 1024 * 1024;

/// Whether a method changes state (and so needs the CSRF header when authenticated by cookie).
pub fn is_mutating(method: &str) -> bool {
    !matches!(method, "GET" | "HEAD" | "OPTIONS")
}

/// The session cookie's name: `__Host-` prefixed when it is `Secure`, so that a browser takes
/// it only from this origin over TLS, for the whole site, never from a sibling subdomain or a
/// plain-HTTP page that sets one of the same name (SPEC §11).
pub fn session_cookie_name(secure: bool) -> &'static str {
    if secure {
        SECURE_SESSION_COOKIE
    } else {
        SESSION_COOKIE
    }
}

/// [`SESSION_COOKIE`] with the `__Host-` prefix.
pub const SECURE_SESSION_COOKIE: &str = "__Host-keygate_session";

/// Whether the host runs a request in the store's turn ([`crate::store::Store::turn`]): every
/// change but verification (which only counts, in memory) and the changes that take their
/// turn themselves, around their reads and commit only, because they hash a password in
/// between (sign-in, accepting an invitation, the set-up link).
pub fn host_takes_turn(method: &str, path: &str) -> bool {
    let own_turn = path == "/v1/keys/verify"
        || path == "/v1/auth/login"
        || path.starts_with("/v1/setup/")
        || (path.starts_with("/v1/invitations/") && path.ends_with("/accept"));
    is_mutating(method) && !own_turn
}

/// The credential a request presents. A bearer token wins over the cookie. `cookie` is every
/// `Cookie` header of the request, as one value or several joined with `; `; `secure` says
/// which name the session cookie has on this host ([`session_cookie_name`]): a secure host
/// reads only the `__Host-` one.
pub fn credential<'a>(
    authorization: Option<&'a str>,
    cookie: Option<&'a str>,
    csrf: Option<&'a str>,
    secure: bool,
) -> Credential<'a> {
    if let Some(token) = authorization.and_then(|v| v.strip_prefix("Bearer ")) {
        return Credential::Bearer(token.trim());
    }
    let wanted = session_cookie_name(secure);
    // Several `Cookie` headers arrive joined: with `; ` by the server, with `, ` by a
    // Worker's Headers. Neither can be part of a cookie's name or value (RFC 6265).
    let session = cookie
        .into_iter()
        .flat_map(|v| v.split([';', ',']))
        .find_map(|pair| {
            let (name, value) = pair.trim().split_once('=')?;
            (name == wanted && !value.is_empty()).then_some(value)
        });
    match session {
        Some(token) => Credential::Cookie { token, csrf },
        None => Credential::None,
    }
}

/// The `Set-Cookie` value that carries a session: HttpOnly, SameSite=Strict, and, when
/// `secure`, `Secure` under the `__Host-` name.
pub fn session_cookie(token: &str, secure: bool) -> String {
    let name = session_cookie_name(secure);
    let secure = if secure { "; Secure" } else { "" };
    let max_age = crate::rules::SESSION_TTL.whole_seconds();
    format!("{name}={token}; Path=/; HttpOnly; SameSite=Strict; Max-Age={max_age}{secure}")
}

/// The `Set-Cookie` value that ends a session in the browser.
pub fn clear_cookie(secure: bool) -> String {
    let name = session_cookie_name(secure);
    let secure = if secure { "; Secure" } else { "" };
    format!("{name}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0{secure}")
}

/// `Strict-Transport-Security` for a host told it is served over TLS: a year, subdomains
/// included.
pub const HSTS: &str = "max-age=31536000; includeSubDomains";

/// Whether `host` (a `Host` header or URL host, port allowed) is a loopback name.
pub fn is_loopback_host(host: &str) -> bool {
    let name = host.rsplit_once(':').map_or(host, |(h, p)| {
        if p.bytes().all(|b| b.is_ascii_digit()) {
            h
        } else {
            host
        }
    });
    matches!(name, "localhost" | "[::1]" | "::1") || name.starts_with("127.")
}

/// Decodes a management request body: not JSON at all is 400 `bad_request`; JSON of the wrong
/// shape (missing or unknown fields, wrong types) is 422 `validation_failed`.
pub fn decode<T: DeserializeOwned>(content_type: Option<&str>, body: &[u8]) -> Result<T> {
    decode_shaped(content_type, body, BODY_LIMIT, b'{')
}

/// [`decode`] for the one body that is a JSON array, GitHub's batch of secret scanning
/// alerts, of at most [`SCAN_BODY_LIMIT`] bytes.
pub fn decode_alerts(content_type: Option<&str>, body: &[u8]) -> Result<crate::api::GithubAlerts> {
    decode_shaped(content_type, body, SCAN_BODY_LIMIT, b'[')
}

/// [`decode`] of a body of at most `limit` bytes whose JSON text must open with `opens`.
fn decode_shaped<T: DeserializeOwned>(
    content_type: Option<&str>,
    body: &[u8],
    limit: usize,
    opens: u8,
) -> Result<T> {
    if body.len() > limit {
        return Err(Error::PayloadTooLarge(limit));
    }
    let is_json = content_type
        .and_then(|ct| ct.split(';').next())
        .is_some_and(|mime| mime.trim().eq_ignore_ascii_case("application/json"));
    if !is_json {
        return Err(Error::BadRequest(
            "send the body as JSON with Content-Type: application/json".into(),
        ));
    }
    let malformed = |e: serde_json::Error| Error::BadRequest(format!("malformed JSON: {e}"));
    if !opens_with(body, opens) {
        // serde would read a struct from an array by position (`[true]` as the first field):
        // every body of this API is an object (GitHub's alerts an array), so anything else is
        // refused as JSON of the wrong shape, once it is known to be JSON at all.
        serde_json::from_slice::<serde::de::IgnoredAny>(body).map_err(malformed)?;
        let expected = if opens == b'[' {
            "expected a JSON array"
        } else {
            "expected a JSON object"
        };
        return Err(Error::invalid("body", expected));
    }
    serde_json::from_slice(body).map_err(|e| {
        // serde stops at its first error, which can be one of shape (an unknown field) in a
        // body that is not JSON further on, or be reported as syntax though the JSON is fine
        // (an enum given a number: "expected value"): whether the whole body is JSON decides.
        // After a syntax error it is read as a value, which, unlike skipping it, checks every
        // string and number (a lone surrogate, 1e400 stay 400).
        let whole = match e.classify() {
            serde_json::error::Category::Data => {
                serde_json::from_slice::<serde::de::IgnoredAny>(body).map(drop)
            }
            _ => serde_json::from_slice::<serde_json::Value>(body).map(drop),
        };
        match whole {
            Ok(()) => Error::invalid("body", e.to_string()),
            Err(syntax) => malformed(syntax),
        }
    })
}

/// Whether a body's JSON text starts with `opens` (the first byte that is not whitespace).
fn opens_with(body: &[u8], opens: u8) -> bool {
    body.iter().find(|b| !b.is_ascii_whitespace()) == Some(&opens)
}

/// The console's Content-Security-Policy, for the `index.html` `cargo xtask` built: scripts
/// only from this origin plus the inline module script that starts the wasm (allowed by its SHA-256, never by
/// `'unsafe-inline'`), `'wasm-unsafe-eval'` to instantiate the wasm, no plugins, no framing,
/// no base or form targets elsewhere. Both hosts send it: the server computes it from its
/// `--assets`, `cargo xtask` writes it into `dist/_headers` for Workers static assets.
pub fn content_security_policy(index_html: &str) -> String {
    use base64::Engine;
    use sha2::Digest;
    let mut hashes = String::new();
    let mut rest = index_html;
    while let Some(start) = rest.find("<script") {
        let tag = &rest[start..];
        let Some(open_end) = tag.find('>') else { break };
        let Some(close) = tag.find("</script>") else {
            break;
        };
        let inline = !tag[..open_end].contains("src=");
        if inline && close > open_end {
            let digest = sha2::Sha256::digest(&tag.as_bytes()[open_end + 1..close]);
            let b64 = base64::engine::general_purpose::STANDARD.encode(digest);
            hashes.push_str(&format!(" 'sha256-{b64}'"));
        }
        rest = &tag[close + "</script>".len()..];
    }
    format!(
        "default-src 'self'; script-src 'self' 'wasm-unsafe-eval'{hashes}; style-src 'self'; \
         img-src 'self' data:; connect-src 'self'; object-src 'none'; base-uri 'none'; \
         form-action 'self'; frame-ancestors 'none'"
    )
}

/// Every security header both hosts send with the console (and the server with every
/// answer): the policy above, no MIME sniffing, no referrer, no framing.
pub fn security_headers(index_html: &str) -> [(&'static str, String); 4] {
    [
        (
            "content-security-policy",
            content_security_policy(index_html),
        ),
        ("x-content-type-options", "nosniff".into()),
        ("referrer-policy", "no-referrer".into()),
        ("x-frame-options", "DENY".into()),
    ]
}

/// Headers the gateway adds to a forwarded request (SPEC §4.4).
pub const IDENTITY_HEADERS: [&str; 5] = [
    "x-keygate-key-id",
    "x-keygate-namespace",
    "x-keygate-owner",
    "x-keygate-permissions",
    "x-keygate-key-name",
];

/// The bytes [`header_text`] leaves as they are: RFC 3986's unreserved characters. Every
/// other byte — the separators `,` `|` `=`, `%` itself, spaces, controls, anything not
/// ASCII — is percent-encoded, so a value built from key data is visible ASCII and no
/// name, id or permission can add, end or split a header value or an entry of one.
const HEADER_TEXT: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// One name, id or permission as the gateway writes it into a header (percent-encoded UTF-8;
/// ids and permission names, which are made of unreserved characters, read as they are).
pub fn header_text(raw: &str) -> String {
    percent_encoding::utf8_percent_encode(raw, HEADER_TEXT).to_string()
}

/// The value of `X-Keygate-Permissions`: entries separated by `,`, each a permission or
/// `permission=res_a|res_b` for one limited to some resources, every part [`header_text`].
pub fn permissions_header(scopes: &[crate::domain::PermissionScope]) -> String {
    let mut out = String::new();
    for (i, scope) in scopes.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str(&header_text(&scope.permission));
        if let Some(ids) = &scope.resources {
            out.push('=');
            for (j, id) in ids.iter().enumerate() {
                if j > 0 {
                    out.push('|');
                }
                out.push_str(&header_text(id));
            }
        }
    }
    out
}

/// Reads an `X-Keygate-Permissions` value back (what an upstream does): the inverse of
/// [`permissions_header`], `None` for a value it could not have written.
pub fn parse_permissions_header(value: &str) -> Option<Vec<crate::domain::PermissionScope>> {
    let decode = |part: &str| {
        percent_encoding::percent_decode_str(part)
            .decode_utf8()
            .ok()
            .map(|text| text.into_owned())
    };
    if value.is_empty() {
        return Some(Vec::new());
    }
    value
        .split(',')
        .map(|entry| {
            let (permission, resources) = match entry.split_once('=') {
                Some((p, ids)) => (p, Some(ids.split('|').map(decode).collect::<Option<_>>()?)),
                None => (entry, None),
            };
            Some(crate::domain::PermissionScope {
                permission: decode(permission)?,
                resources,
            })
        })
        .collect()
}

/// The API key a gateway request carries: `Authorization: Bearer kg_…` or `X-API-Key`.
pub fn gateway_key<'a>(
    authorization: Option<&'a str>,
    x_api_key: Option<&'a str>,
) -> Option<&'a str> {
    authorization
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim)
        .filter(|k| crate::key::looks_like_key(k))
        .or_else(|| x_api_key.map(str::trim))
}

/// The gateway's decision on a verification: the identity headers to forward with (in the
/// order of [`IDENTITY_HEADERS`], every value encoded by [`header_text`]), or the refusal to
/// answer at the edge (never forwarded).
pub fn gateway_identity(
    answer: &crate::api::VerifyResponse,
) -> Result<Vec<(&'static str, String)>> {
    if !answer.valid {
        return Err(Error::KeyRefused(answer.code));
    }
    let text = |value: &Option<String>| header_text(value.as_deref().unwrap_or_default());
    let values = [
        text(&answer.key_id),
        text(&answer.namespace),
        text(&answer.owner),
        permissions_header(answer.permissions.as_deref().unwrap_or_default()),
        text(&answer.name),
    ];
    Ok(IDENTITY_HEADERS.iter().copied().zip(values).collect())
}

/// The gateway's headers about a key's rate limits (SPEC §4.4), on every answer for a key
/// with limits, forwarded or refused: `X-RateLimit-Limit`, `-Remaining` and `-Reset` (whole
/// seconds until the bucket is full again) of the limit nearest to refusing (the fewest
/// tokens left; of those, the smallest), and on a refusal for rate or credits `Retry-After`
/// (whole seconds, when there is a time at which the same call would be taken: not for spent
/// credits that no refill brings back).
pub fn gateway_limits(
    answer: &crate::api::VerifyResponse,
    retry_after_s: Option<u64>,
    now: time::OffsetDateTime,
) -> Vec<(&'static str, String)> {
    let mut headers = Vec::new();
    let nearest = answer
        .ratelimits
        .iter()
        .flatten()
        .min_by_key(|l| (l.remaining, l.limit));
    if let Some(limit) = nearest {
        let reset_ms = (limit.reset_at - now).whole_milliseconds().max(0);
        let reset_s = u64::try_from(reset_ms).unwrap_or(0).div_ceil(1000);
        headers.push(("x-ratelimit-limit", limit.limit.to_string()));
        headers.push(("x-ratelimit-remaining", limit.remaining.to_string()));
        headers.push(("x-ratelimit-reset", reset_s.to_string()));
    }
    let refused = matches!(
        answer.code,
        crate::api::VerifyCode::RateLimited | crate::api::VerifyCode::UsageExceeded
    );
    if let (true, Some(seconds)) = (refused, retry_after_s) {
        headers.push(("retry-after", seconds.max(1).to_string()));
    }
    headers
}

/// Whether a request header is dropped before forwarding: the key itself, and any identity
/// header a caller tried to forge.
pub fn gateway_drops(header: &str) -> bool {
    let h = header.to_ascii_lowercase();
    h == "authorization" || h == "x-api-key" || h == "cookie" || h.starts_with("x-keygate-")
}

/// Whether a header of the upstream's answer goes back to the caller through the gateway:
/// every one but a `Set-Cookie` for Keygate's session cookie (under any prefix), which would
/// otherwise be set with the console's origin.
pub fn gateway_passes_back(name: &str, value: &str) -> bool {
    if !name.eq_ignore_ascii_case("set-cookie") {
        return true;
    }
    let cookie = value.split(';').next().unwrap_or_default();
    let cookie_name = cookie.split('=').next().unwrap_or_default().trim();
    !cookie_name.to_ascii_lowercase().ends_with(SESSION_COOKIE)
}

/// Headers the gateway sets on every upstream answer it passes back: the upstream's content
/// shares the console's origin, so any HTML or script in it runs sandboxed (an opaque
/// origin: no cookies, no same-origin calls of the API) and is never sniffed into a type.
pub const GATEWAY_ANSWER_HEADERS: [(&str, &str); 2] = [
    ("content-security-policy", "sandbox"),
    ("x-content-type-options", "nosniff"),
];

/// Decodes a query string (without `?`) into `T`; a wrong one is 422 `validation_failed`.
pub fn query<T: DeserializeOwned + Default>(raw: Option<&str>) -> Result<T> {
    match raw.filter(|q| !q.is_empty()) {
        None => Ok(T::default()),
        Some(q) => {
            serde_urlencoded::from_str(q).map_err(|e| Error::invalid("query", e.to_string()))
        }
    }
}

/// Decodes a verify body: anything but the verify shape is 400, and the detail never echoes
/// the body (it may hold a key).
pub fn decode_verify(body: &[u8]) -> Result<crate::api::VerifyRequest> {
    if body.len() > BODY_LIMIT {
        return Err(Error::PayloadTooLarge(BODY_LIMIT));
    }
    let decoded = if opens_with(body, b'{') {
        serde_json::from_slice(body).ok()
    } else {
        None
    };
    decoded
        .filter(|req: &crate::api::VerifyRequest| {
            req.cost.is_none_or(|c| c <= crate::meter::MAX_COST)
                && req
                    .client_ip
                    .as_deref()
                    .is_none_or(|ip| ip.trim().parse::<std::net::IpAddr>().is_ok())
        })
        .ok_or_else(|| {
            Error::BadRequest(
                "expected {\"key\": string, \"permissions\"?: [string], \"resource\"?: string, \"namespace\"?: string, \"cost\"?: 0..10000, \"client_ip\"?: an IPv4 or IPv6 address}".into(),
            )
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_wins_and_cookie_is_found_among_others() {
        assert!(matches!(
            credential(Some("Bearer abc"), Some("keygate_session=x"), None, false),
            Credential::Bearer("abc")
        ));
        let c = credential(
            None,
            Some("theme=dark; keygate_session=tok; z=1"),
            Some("c"),
            false,
        );
        assert!(matches!(
            c,
            Credential::Cookie {
                token: "tok",
                csrf: Some("c")
            }
        ));
        assert!(matches!(
            credential(None, Some("keygate_session="), None, false),
            Credential::None
        ));
        // Two Cookie headers joined as a Worker joins them.
        assert!(matches!(
            credential(None, Some("theme=dark, keygate_session=tok"), None, false),
            Credential::Cookie { token: "tok", .. }
        ));
        // A secure host reads only the __Host- cookie: one set without the prefix (by a
        // sibling subdomain, or over plain HTTP) is no session there.
        assert!(matches!(
            credential(None, Some("keygate_session=planted"), None, true),
            Credential::None
        ));
        assert!(matches!(
            credential(None, Some("__Host-keygate_session=tok"), None, true),
            Credential::Cookie { token: "tok", .. }
        ));
        assert!(session_cookie("t", true).starts_with("__Host-keygate_session=t; Path=/;"));
        assert!(session_cookie("t", true).ends_with("; Secure"));
        assert!(!session_cookie("t", false).contains("Secure"));
    }

    #[test]
    fn bodies_are_classified() {
        let ct = Some("application/json; charset=utf-8");
        assert!(matches!(
            decode::<crate::api::LoginRequest>(ct, b"{"),
            Err(Error::BadRequest(_))
        ));
        assert!(matches!(
            decode::<crate::api::LoginRequest>(ct, b"{\"email\":1}"),
            Err(Error::Validation { .. })
        ));
        // Found by `fuzz/`'s request_bodies: an unknown field first, then not JSON.
        assert!(matches!(
            decode::<crate::api::RenameRequest>(ct, br#"{"x": 1, "name": "a"#),
            Err(Error::BadRequest(_))
        ));
        // Found by request_bodies too: serde_json calls a number where an enum belongs
        // "expected value", a syntax error, though the body is JSON of the wrong shape.
        for body in [
            &br#"{"role":-30}"#[..],
            br#"{"role": 5}"#,
            br#"{"role": [1]}"#,
        ] {
            assert!(matches!(
                decode::<crate::api::CreateKeyRequest>(ct, body),
                Err(Error::Validation { .. })
            ));
        }
        // …but a string or number JSON cannot hold stays 400 wherever serde meets it.
        for body in [
            &b"{\"name\": \"\xff\"}"[..],
            br#"{"name": "\ud800"}"#,
            br#"{"name": 1e400}"#,
        ] {
            assert!(matches!(
                decode::<crate::api::CreateKeyRequest>(ct, body),
                Err(Error::BadRequest(_))
            ));
        }
        assert!(matches!(
            decode::<crate::api::LoginRequest>(Some("text/plain"), b"{}"),
            Err(Error::BadRequest(_))
        ));
        assert!(matches!(
            decode::<crate::api::SettingsPatch>(ct, b"[true]"),
            Err(Error::Validation { .. })
        ));
        assert!(matches!(
            decode::<crate::api::SettingsPatch>(ct, b"[tru"),
            Err(Error::BadRequest(_))
        ));
        assert!(
            decode_verify(br#"["kg_x"]"#).is_err(),
            "a verify body is an object"
        );
        let secret = "kg_secretsecret";
        let err = decode_verify(format!("{{\"key\": \"{secret}\", \"x\": 1}}").as_bytes())
            .err()
            .map(|e| e.to_string());
        assert!(err.is_some_and(|e| !e.contains(secret)));
    }

    #[test]
    fn queries_decode_typed_values() {
        let q: crate::api::KeyListQuery =
            query(Some("all=true&limit=5&q=a%20b&status=revoked")).expect("query");
        assert_eq!(
            (q.all, q.limit, q.q.as_deref()),
            (Some(true), Some(5), Some("a b"))
        );
        assert!(query::<crate::api::KeyListQuery>(Some("limit=-1")).is_err());
        assert!(query::<crate::api::KeyListQuery>(Some("bogus=1")).is_err());
    }

    #[test]
    fn the_policy_allows_inline_scripts_by_hash_only() {
        let html = "<script type=\"module\">init()</script><script src=\"/a.js\"></script>";
        let csp = content_security_policy(html);
        // echo -n 'init()' | openssl dgst -sha256 -binary | base64
        assert!(
            csp.contains("'sha256-w4ujnOpjBoH2vcasx+reJRUwYivG8Q3afx/XevGJod8='"),
            "{csp}"
        );
        assert_eq!(csp.matches("'sha256-").count(), 1, "{csp}");
        assert!(!csp.contains("unsafe-inline") && csp.contains("frame-ancestors 'none'"));
    }

    fn scope(permission: &str, resources: Option<&[&str]>) -> crate::domain::PermissionScope {
        crate::domain::PermissionScope {
            permission: permission.into(),
            resources: resources.map(|r| r.iter().map(|s| (*s).to_owned()).collect()),
        }
    }

    #[test]
    fn an_id_cannot_add_a_permission_to_the_gateway_headers() {
        // The audit's finding: a "resource" carrying separators read downstream as two more
        // permissions. Encoded, it stays one resource of one permission.
        let hostile = [scope(
            "datasets.read",
            Some(&["res_a,datasets.edit,billing.admin", "b|c=d"]),
        )];
        let value = permissions_header(&hostile);
        assert_eq!(value.matches(',').count(), 0, "{value}");
        assert_eq!(value.matches('=').count(), 1, "{value}");
        assert_eq!(value.matches('|').count(), 1, "{value}");
        assert_eq!(parse_permissions_header(&value), Some(hostile.to_vec()));
        // Ids and permission names read as they are.
        let plain = [
            scope("datasets.read", None),
            scope("datasets.edit", Some(&["res_A1b2C3d4E5f6", "res_x"])),
        ];
        assert_eq!(
            permissions_header(&plain),
            "datasets.read,datasets.edit=res_A1b2C3d4E5f6|res_x"
        );
        assert_eq!(header_text("line\r\nx-evil: 1"), "line%0D%0Ax-evil%3A%201");
    }

    #[test]
    fn upstream_cookies_for_the_session_never_pass_back() {
        for value in [
            "keygate_session=x; Path=/",
            "__Host-keygate_session=x; Secure; Path=/",
            " KEYGATE_SESSION =x",
        ] {
            assert!(!gateway_passes_back("Set-Cookie", value), "{value}");
        }
        assert!(gateway_passes_back("set-cookie", "theme=dark"));
        assert!(gateway_passes_back("content-type", "keygate_session=x"));
    }

    proptest::proptest! {
        /// Any permission list, any key name and ids: every header value the gateway builds
        /// is visible ASCII, its separators are exactly the ones it put there, and it reads
        /// back to what it was built from.
        #[test]
        fn gateway_headers_round_trip(
            scopes in proptest::collection::vec(
                (".*", proptest::option::of(proptest::collection::vec(".*", 1..4))),
                0..5,
            ),
            name in ".*",
            id in ".*",
        ) {
            let scopes: Vec<_> = scopes
                .into_iter()
                .map(|(permission, resources)| crate::domain::PermissionScope { permission, resources })
                .collect();
            let value = permissions_header(&scopes);
            proptest::prop_assert!(value.bytes().all(|b| (0x21..0x7f).contains(&b)), "{}", value);
            proptest::prop_assert_eq!(value.matches(',').count(), scopes.len().saturating_sub(1));
            let limited: Vec<_> = scopes.iter().filter_map(|s| s.resources.as_ref()).collect();
            proptest::prop_assert_eq!(value.matches('=').count(), limited.len());
            proptest::prop_assert_eq!(
                value.matches('|').count(),
                limited.iter().map(|ids| ids.len() - 1).sum::<usize>()
            );
            // An empty list and one empty permission name both write "": the only ambiguity,
            // and neither can be a key's (permission names are never empty).
            if !(scopes.len() == 1 && scopes[0].permission.is_empty() && scopes[0].resources.is_none()) {
                proptest::prop_assert_eq!(parse_permissions_header(&value), Some(scopes));
            }
            for text in [&name, &id] {
                let encoded = header_text(text);
                proptest::prop_assert!(encoded.bytes().all(|b| b.is_ascii_alphanumeric() || b"-._~%".contains(&b)));
                let decoded = percent_encoding::percent_decode_str(&encoded)
                    .decode_utf8()
                    .map(|d| d.into_owned());
                proptest::prop_assert_eq!(decoded.ok(), Some(text.clone()));
            }
        }
    }

    #[test]
    fn loopback_hosts() {
        assert!(is_loopback_host("127.0.0.1:8080"));
        assert!(is_loopback_host("localhost"));
        assert!(!is_loopback_host("keygate.example.com"));
    }
}

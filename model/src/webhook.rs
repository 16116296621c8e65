//! Webhooks as pure functions (SPEC §6.1): their secrets, Standard Webhooks signatures, the
//! retry schedule, and where a webhook may be delivered.
//!
//! A delivery carries `webhook-id`, `webhook-timestamp` (Unix seconds) and `webhook-signature`:
//! `v1,` + base64 of HMAC-SHA256, keyed with the secret's bytes, of `"{id}.{timestamp}.{body}"`
//! (the Standard Webhooks specification, so any of its libraries verifies Keygate's deliveries).

use std::net::IpAddr;

use base64::Engine;
use hmac::{Hmac, Mac};
use ipnet::IpNet;
use sha2::Sha256;

/// What every webhook secret starts with.
pub const SECRET_PREFIX: &str = "whsec_";
/// Random bytes in a secret (192 bits; Standard Webhooks asks for 24 to 64).
pub const SECRET_BYTES: usize = 24;

/// The waits before each attempt of a delivery, counted from the attempt before it: at once,
/// then 5 s, 5 min, 30 min, 2 h, 5 h, 10 h and 10 h — eight attempts over 27 h 35 min 5 s, after
/// which the delivery is given up (the schedule Standard Webhooks recommends).
pub const RETRY_SCHEDULE: [i64; 8] = [0, 5, 300, 1_800, 7_200, 18_000, 36_000, 36_000];

/// The event types a webhook may take (SPEC §6.1), all about keys.
pub const EVENTS: [&str; 8] = [
    "key.created",
    "key.revoked",
    "key.expiring",
    "key.expired",
    "key.leaked",
    "key.extensive_use",
    "key.credits_low",
    "key.policy_changed",
];
/// The type of a test delivery (`POST /v1/webhooks/{id}/test`), which no webhook subscribes to.
pub const TEST_EVENT: &str = "webhook.test";
/// The longest webhook URL taken.
pub const MAX_URL_CHARS: usize = 2048;

/// Whether an event of type `kind` goes to webhooks at all (and so into the outbox).
pub fn delivered(kind: &str) -> bool {
    EVENTS.contains(&kind)
}

/// The event types of a webhook: at least one, each of [`EVENTS`]; duplicates dropped, in
/// [`EVENTS`]' order. `Err` names the first unknown type.
pub fn check_events(events: &[String]) -> Result<Vec<String>, String> {
    if let Some(unknown) = events.iter().find(|e| !delivered(e)) {
        let unknown: String = unknown.chars().take(40).collect();
        return Err(format!(
            "`{unknown}` is not an event type; they are {}",
            EVENTS.join(", ")
        ));
    }
    let chosen: Vec<String> = EVENTS
        .iter()
        .filter(|e| events.iter().any(|c| c == *e))
        .map(|e| (*e).to_owned())
        .collect();
    if chosen.is_empty() {
        return Err("at least one event type".into());
    }
    Ok(chosen)
}

/// A new secret: [`SECRET_PREFIX`] + base64 of [`SECRET_BYTES`] bytes from the CSPRNG.
pub fn new_secret() -> Result<String, getrandom::Error> {
    let mut bytes = [0u8; SECRET_BYTES];
    getrandom::fill(&mut bytes)?;
    Ok(format!(
        "{SECRET_PREFIX}{}",
        base64::engine::general_purpose::STANDARD.encode(bytes)
    ))
}

/// The HMAC key a secret stands for (its base64 decoded), or `None` for what is not a secret.
pub fn secret_key(secret: &str) -> Option<Vec<u8>> {
    let encoded = secret.strip_prefix(SECRET_PREFIX)?;
    base64::engine::general_purpose::STANDARD
        .decode(encoded)
        .ok()
        .filter(|key| !key.is_empty())
}

fn mac(key: &[u8], id: &str, timestamp: i64, body: &[u8]) -> Hmac<Sha256> {
    // HMAC takes a key of any length: this never fails.
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(key)
        .unwrap_or_else(|_| <Hmac<Sha256> as Mac>::new(&Default::default()));
    mac.update(id.as_bytes());
    mac.update(b".");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    mac
}

/// The `webhook-signature` header of a delivery of `body` with `id` at `timestamp`.
pub fn sign(key: &[u8], id: &str, timestamp: i64, body: &[u8]) -> String {
    let tag = mac(key, id, timestamp, body).finalize().into_bytes();
    format!(
        "v1,{}",
        base64::engine::general_purpose::STANDARD.encode(tag)
    )
}

/// Whether `header` (space-separated `v1,<base64>` signatures, as while a secret rotates)
/// holds a signature of this delivery by `key`; compared in constant time. What receivers do,
/// and what Keygate's tests check every delivery with.
pub fn verify(key: &[u8], id: &str, timestamp: i64, body: &[u8], header: &str) -> bool {
    header.split(' ').any(|signature| {
        let Some(encoded) = signature.strip_prefix("v1,") else {
            return false;
        };
        let Ok(tag) = base64::engine::general_purpose::STANDARD.decode(encoded) else {
            return false;
        };
        mac(key, id, timestamp, body).verify_slice(&tag).is_ok()
    })
}

/// The wait before the attempt after `made` attempts, in seconds; `None` once the schedule is
/// spent.
pub fn next_wait(made: usize) -> Option<i64> {
    RETRY_SCHEDULE.get(made).copied()
}

/// Networks no webhook is delivered to unless the operator allows private ones: this host,
/// private and shared networks, link-local (where clouds serve instance metadata, e.g.
/// 169.254.169.254 and fd00:ec2::254 inside fc00::/7), multicast, reserved and documentation
/// ranges. IPv4 inside IPv6 (mapped, or NAT64) is judged as the IPv4 address it carries.
const BLOCKED: [&str; 23] = [
    "0.0.0.0/8",
    "10.0.0.0/8",
    "100.64.0.0/10",
    "127.0.0.0/8",
    "169.254.0.0/16",
    "172.16.0.0/12",
    "192.0.0.0/24",
    "192.0.2.0/24",
    "192.88.99.0/24",
    "192.168.0.0/16",
    "198.18.0.0/15",
    "198.51.100.0/24",
    "203.0.113.0/24",
    "224.0.0.0/3",
    "::/127",
    "100::/64",
    "2001::/23",
    "2001:db8::/32",
    "2002::/16",
    "fc00::/7",
    "fe80::/10",
    "fec0::/10",
    "ff00::/8",
];

/// Whether a webhook may be delivered to `ip` without the operator's leave: a public address.
pub fn public_address(ip: IpAddr) -> bool {
    let ip = match ip {
        IpAddr::V6(v6) => {
            let [a, b, c, d, e, f, g, h] = v6.segments();
            let nat64 = [a, b, c, d, e, f] == [0x64, 0xff9b, 0, 0, 0, 0];
            match v6.to_ipv4_mapped() {
                Some(v4) => IpAddr::V4(v4),
                None if nat64 => IpAddr::V4(std::net::Ipv4Addr::from(
                    (u32::from(g) << 16) | u32::from(h),
                )),
                None => ip,
            }
        }
        IpAddr::V4(_) => ip,
    };
    !BLOCKED
        .iter()
        .filter_map(|net| net.parse::<IpNet>().ok())
        .any(|net| net.contains(&ip))
}

/// Why a URL cannot be a webhook's.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UrlError {
    #[error("not a URL")]
    Malformed,
    #[error("a webhook URL is https")]
    NotHttps,
    #[error("a webhook URL carries no user name or password")]
    Credentials,
    #[error("a webhook URL must not name this host, a private network or a metadata service")]
    Private,
}

/// Where a checked URL points: a name, resolved at each delivery (and every address it
/// resolves to checked again with [`public_address`]), or an address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    Name(String),
    Address(IpAddr),
}

/// Checks a webhook URL: `https` (or `http` when private addresses are allowed, for tests and
/// private networks), no credentials, and — unless `allow_private` — no address or name of
/// this host, a private network or a metadata service. Names are resolved at delivery.
pub fn check_url(url: &str, allow_private: bool) -> Result<Target, UrlError> {
    let parsed = url::Url::parse(url).map_err(|_| UrlError::Malformed)?;
    match parsed.scheme() {
        "https" => {}
        "http" if allow_private => {}
        _ => return Err(UrlError::NotHttps),
    }
    if !parsed.username().is_empty() || parsed.password().is_some() {
        return Err(UrlError::Credentials);
    }
    let target = match parsed.host() {
        Some(url::Host::Ipv4(v4)) => Target::Address(IpAddr::V4(v4)),
        Some(url::Host::Ipv6(v6)) => Target::Address(IpAddr::V6(v6)),
        Some(url::Host::Domain(name)) => Target::Name(name.to_ascii_lowercase()),
        None => return Err(UrlError::Malformed),
    };
    if allow_private {
        return Ok(target);
    }
    let private = match &target {
        Target::Address(ip) => !public_address(*ip),
        Target::Name(name) => {
            let name = name.trim_end_matches('.');
            name == "localhost"
                || name.ends_with(".localhost")
                || name.ends_with(".local")
                || name.ends_with(".internal")
                || !name.contains('.')
        }
    };
    if private {
        return Err(UrlError::Private);
    }
    Ok(target)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures_follow_standard_webhooks() {
        // The specification's own example (and Python's hmac computing the same).
        let key = secret_key("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").expect("a secret");
        let (id, at, body) = (
            "msg_p5jXN8AQM9LWM0D4loKWxJek",
            1_614_265_330,
            br#"{"test": 2432232314}"#,
        );
        let signature = sign(&key, id, at, body);
        assert_eq!(signature, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
        let other = secret_key(&new_secret().expect("csprng")).expect("a secret");
        type Case<'a> = (&'a str, &'a [u8], &'a str, i64, &'a [u8], bool);
        let cases: &[Case] = &[
            ("its signature", &key, id, at, body, true),
            ("another secret", &other, id, at, body, false),
            ("another id", &key, "msg_x", at, body, false),
            ("another time", &key, id, at + 1, body, false),
            ("another body", &key, id, at, b"{}", false),
        ];
        for (name, key, id, at, body, expected) in cases {
            assert_eq!(verify(key, id, *at, body, &signature), *expected, "{name}");
        }
        let rotating = format!("v1,AAAA {signature}");
        assert!(verify(&key, id, at, body, &rotating), "one of several");
        for bad in [
            "",
            "v1,",
            "v2,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=",
            "v1,%%%",
        ] {
            assert!(!verify(&key, id, at, body, bad), "{bad:?}");
        }
    }

    #[test]
    fn secrets_are_whsec_and_24_random_bytes() {
        let (a, b) = (new_secret().expect("csprng"), new_secret().expect("csprng"));
        assert!(a.starts_with("whsec_") && a != b);
        assert_eq!(secret_key(&a).map(|k| k.len()), Some(SECRET_BYTES));
        for bad in [
            "",
            "whsec_",
            "whsec_%%%",
            "sk_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
        ] {
            assert_eq!(secret_key(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn the_schedule_spans_about_a_day() {
        let total: i64 = RETRY_SCHEDULE.iter().sum();
        assert_eq!(total, 27 * 3600 + 35 * 60 + 5);
        assert_eq!(next_wait(0), Some(0));
        assert_eq!(next_wait(7), Some(36_000));
        assert_eq!(next_wait(8), None);
    }

    #[test]
    fn every_blocked_network_is_read() {
        assert!(BLOCKED.iter().all(|net| net.parse::<IpNet>().is_ok()));
    }

    #[test]
    fn only_public_addresses_are_delivered_to() {
        let cases: &[(&str, bool)] = &[
            ("93.184.216.34", true),
            ("8.8.8.8", true),
            ("2606:4700:4700::1111", true),
            ("127.0.0.1", false),
            ("127.255.0.9", false),
            ("0.0.0.0", false),
            ("10.1.2.3", false),
            ("172.16.0.1", false),
            ("172.31.255.255", false),
            ("172.32.0.1", true),
            ("192.168.1.1", false),
            ("100.64.0.1", false),
            ("169.254.169.254", false),
            ("224.0.0.1", false),
            ("255.255.255.255", false),
            ("198.51.100.7", false),
            ("::1", false),
            ("::", false),
            ("::ffff:127.0.0.1", false),
            ("::ffff:8.8.8.8", true),
            ("64:ff9b::a9fe:a9fe", false),
            ("64:ff9b::808:808", true),
            ("fd00:ec2::254", false),
            ("fe80::1", false),
            ("ff02::1", false),
            ("2001:db8::1", false),
        ];
        for (ip, public) in cases {
            let parsed: IpAddr = ip.parse().expect("an address");
            assert_eq!(public_address(parsed), *public, "{ip}");
        }
    }

    #[test]
    fn webhook_urls() {
        let ok = |host: &str| Ok(Target::Name(host.into()));
        let at = |ip: &str| Ok(Target::Address(ip.parse().expect("an address")));
        let cases: &[(&str, bool, Result<Target, UrlError>)] = &[
            (
                "https://hooks.example.com/keygate",
                false,
                ok("hooks.example.com"),
            ),
            (
                "https://HOOKS.example.com:8443/x?y=1",
                false,
                ok("hooks.example.com"),
            ),
            ("https://93.184.216.34/x", false, at("93.184.216.34")),
            ("http://hooks.example.com/x", false, Err(UrlError::NotHttps)),
            ("ftp://hooks.example.com/x", false, Err(UrlError::NotHttps)),
            (
                "https://user:pw@hooks.example.com/",
                false,
                Err(UrlError::Credentials),
            ),
            ("https://127.0.0.1/x", false, Err(UrlError::Private)),
            ("https://[::1]/x", false, Err(UrlError::Private)),
            (
                "https://169.254.169.254/latest/meta-data",
                false,
                Err(UrlError::Private),
            ),
            ("https://2130706433/x", false, Err(UrlError::Private)),
            ("https://0x7f.1/x", false, Err(UrlError::Private)),
            ("https://localhost/x", false, Err(UrlError::Private)),
            ("https://api.localhost/x", false, Err(UrlError::Private)),
            (
                "https://metadata.google.internal/x",
                false,
                Err(UrlError::Private),
            ),
            ("https://intranet/x", false, Err(UrlError::Private)),
            ("not a url", false, Err(UrlError::Malformed)),
            ("http://127.0.0.1:9000/hook", true, at("127.0.0.1")),
            ("https://localhost/x", true, ok("localhost")),
        ];
        for (url, allow, expected) in cases {
            assert_eq!(&check_url(url, *allow), expected, "{url}");
        }
    }
}

//! `GET /metrics` (SPEC §11) on `--metrics-listen`: read as Prometheus text (every line a
//! comment or a well-formed sample of a declared family; histograms cumulative and ending in
//! `+Inf` = `_count`), its counters moving exactly with the requests made, labelled by the
//! endpoint table's paths and never a path as sent; off by default, and never on the API's
//! own address.

use std::collections::{BTreeMap, HashMap};

use serde_json::json;
use tests::{Api, As, Host};

/// One sample: its family's name, its labels, its value.
#[derive(Debug)]
struct Sample {
    name: String,
    labels: BTreeMap<String, String>,
    value: f64,
}

fn valid_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == ':')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
}

/// `{a="x",b="y\"z"}` into its labels.
fn labels(text: &str) -> Result<BTreeMap<String, String>, String> {
    let mut labels = BTreeMap::new();
    let mut rest = text;
    while !rest.is_empty() {
        let (name, after) = rest
            .split_once("=\"")
            .ok_or(format!("no value in {text}"))?;
        if !valid_name(name) {
            return Err(format!("label name {name}"));
        }
        let mut value = String::new();
        let mut chars = after.char_indices();
        let end = loop {
            match chars.next() {
                Some((_, '\\')) => match chars.next() {
                    Some((_, 'n')) => value.push('\n'),
                    Some((_, c @ ('\\' | '"'))) => value.push(c),
                    other => return Err(format!("escape {other:?} in {text}")),
                },
                Some((i, '"')) => break i,
                Some((_, c)) => value.push(c),
                None => return Err(format!("unterminated {text}")),
            }
        };
        labels.insert(name.to_owned(), value);
        rest = &after[end + 1..];
        rest = rest.strip_prefix(',').unwrap_or(rest);
    }
    Ok(labels)
}

/// Reads a Prometheus text exposition strictly: every sample belongs to a family with a
/// `# TYPE`, and every histogram's buckets are cumulative and end in `+Inf` = `_count`.
fn parse(text: &str) -> Result<Vec<Sample>, String> {
    let mut types: HashMap<String, String> = HashMap::new();
    let mut samples = Vec::new();
    for line in text.lines().filter(|l| !l.is_empty()) {
        if let Some(comment) = line.strip_prefix("# ") {
            if let Some(declared) = comment.strip_prefix("TYPE ") {
                let (name, kind) = declared.split_once(' ').ok_or(line.to_owned())?;
                let known = ["counter", "gauge", "histogram", "summary", "untyped"];
                if !valid_name(name) || !known.contains(&kind) {
                    return Err(format!("bad TYPE line: {line}"));
                }
                types.insert(name.to_owned(), kind.to_owned());
            }
            continue;
        }
        let (series, value) = line.rsplit_once(' ').ok_or(format!("no value: {line}"))?;
        let value: f64 = match value {
            "+Inf" => f64::INFINITY,
            v => v.parse().map_err(|_| format!("bad value: {line}"))?,
        };
        let (name, labels) = match series.split_once('{') {
            Some((name, rest)) => (
                name,
                labels(rest.strip_suffix('}').ok_or(format!("unclosed: {line}"))?)?,
            ),
            None => (series, BTreeMap::new()),
        };
        if !valid_name(name) {
            return Err(format!("bad name: {line}"));
        }
        let family = ["_bucket", "_count", "_sum"]
            .iter()
            .find_map(|s| {
                name.strip_suffix(s)
                    .filter(|f| types.get(*f).is_some_and(|t| t == "histogram"))
            })
            .unwrap_or(name);
        if !types.contains_key(family) {
            return Err(format!("a sample of an undeclared family: {line}"));
        }
        samples.push(Sample {
            name: name.to_owned(),
            labels,
            value,
        });
    }
    // Histograms: for each series, buckets in order, never decreasing, `+Inf` = `_count`.
    let mut buckets: BTreeMap<String, Vec<(f64, f64)>> = BTreeMap::new();
    for s in samples.iter().filter(|s| s.name.ends_with("_bucket")) {
        let mut key = s.labels.clone();
        let le = key.remove("le").ok_or("a bucket without le")?;
        let le: f64 = if le == "+Inf" {
            f64::INFINITY
        } else {
            le.parse().map_err(|_| format!("le {le}"))?
        };
        buckets
            .entry(format!("{}{key:?}", s.name.trim_end_matches("_bucket")))
            .or_default()
            .push((le, s.value));
    }
    for (series, counts) in &buckets {
        let ordered = counts
            .windows(2)
            .all(|w| w[0].0 < w[1].0 && w[0].1 <= w[1].1);
        let last = counts.last().ok_or("empty histogram")?;
        let family = series.split('{').next().unwrap_or_default();
        let count = samples
            .iter()
            .find(|s| {
                s.name == format!("{family}_count") && format!("{family}{:?}", s.labels) == *series
            })
            .ok_or(format!("no _count for {series}"))?;
        if !ordered || last.0 != f64::INFINITY || last.1 != count.value {
            return Err(format!(
                "histogram {series} is not cumulative to +Inf = _count"
            ));
        }
    }
    Ok(samples)
}

/// The value of the sample `name` whose labels include `with` (0 when absent).
fn value(samples: &[Sample], name: &str, with: &[(&str, &str)]) -> f64 {
    samples
        .iter()
        .filter(|s| s.name == name)
        .filter(|s| {
            with.iter()
                .all(|(k, v)| s.labels.get(*k).map(String::as_str) == Some(*v))
        })
        .map(|s| s.value)
        .sum()
}

async fn scrape(url: &str) -> (String, Vec<Sample>) {
    let answer = reqwest::get(url).await.expect("scrape");
    assert_eq!(answer.status(), 200);
    let content_type = answer
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    assert!(
        content_type.starts_with("text/plain; version=0.0.4"),
        "{content_type}"
    );
    let text = answer.text().await.expect("text");
    let samples = parse(&text).unwrap_or_else(|e| panic!("not Prometheus text: {e}\n{text}"));
    (text, samples)
}

#[tokio::test(flavor = "multi_thread")]
async fn metrics_are_prometheus_text_and_move_with_requests() {
    let dir = tempfile::tempdir().expect("tempdir");
    let env = [("KEYGATE_METRICS_LISTEN", "127.0.0.1:0")];
    let host = Host::server_with(&dir.path().join("store"), None, &env)
        .await
        .expect("server starts");
    let url = host
        .output
        .text()
        .lines()
        .find_map(|l| l.strip_prefix("Keygate: metrics on ").map(str::to_owned))
        .expect("the metrics address is printed");
    let api = Api::new(&host.base);
    let fixture = api.admin_with_key("metered").await.expect("fixture");
    let (_, before) = scrape(&url).await;

    let verify = "/v1/keys/verify";
    let (valid, unknown) = (3, 2);
    for _ in 0..valid {
        let body = json!({"key": fixture.key});
        let answer = api
            .call("POST", verify, As::Nobody, Some(&body))
            .await
            .expect("verify");
        assert_eq!(answer.body["code"], "VALID");
    }
    for _ in 0..unknown {
        let body = json!({"key": "kg_unknownunknownunknownunknown"});
        api.call("POST", verify, As::Nobody, Some(&body))
            .await
            .expect("verify");
    }
    // A path that carries a secret: counted under its declared path only.
    let secret = "inv_SecretInvitationToken123";
    let path = format!("/v1/invitations/{secret}/accept");
    let body = json!({"name": "x", "password": "long-enough-pw"});
    api.call("POST", &path, As::Nobody, Some(&body))
        .await
        .expect("accept");
    api.call("GET", "/v1/nothing-here", As::Nobody, None)
        .await
        .expect("404");
    let (text, after) = scrape(&url).await;

    let moved =
        |name: &str, with: &[(&str, &str)]| value(&after, name, with) - value(&before, name, with);
    assert_eq!(
        moved("keygate_verifications_total", &[("code", "VALID")]),
        f64::from(valid)
    );
    assert_eq!(
        moved("keygate_verifications_total", &[("code", "NOT_FOUND")]),
        f64::from(unknown)
    );
    let at_verify = [("endpoint", verify), ("method", "POST"), ("status", "200")];
    assert_eq!(
        moved("keygate_http_requests_total", &at_verify),
        f64::from(valid + unknown)
    );
    assert_eq!(
        moved(
            "keygate_http_request_duration_seconds_count",
            &[("endpoint", verify), ("method", "POST")]
        ),
        f64::from(valid + unknown)
    );
    assert_eq!(
        moved(
            "keygate_http_requests_total",
            &[("endpoint", "/v1/invitations/{token}/accept")]
        ),
        1.0
    );
    assert_eq!(
        moved(
            "keygate_http_requests_total",
            &[("endpoint", "(no endpoint)"), ("status", "404")]
        ),
        1.0
    );
    assert!(
        !text.contains(secret),
        "a path as sent never becomes a label"
    );
    assert!(
        value(&after, "keygate_store_commit_duration_seconds_count", &[]) > 0.0,
        "the fixture's writes were committed and timed"
    );
    let lookups = value(&after, "keygate_record_cache_hits_total", &[])
        + value(&after, "keygate_record_cache_misses_total", &[]);
    assert!(lookups > 0.0, "the verification cache is measured");

    // Only on its own address; and off unless asked for.
    let on_api = api
        .call("GET", "/metrics", As::Nobody, None)
        .await
        .expect("get");
    assert_eq!(
        on_api.status, 404,
        "the API's address does not serve metrics"
    );
    let plain = Host::server(None).await.expect("server");
    assert!(
        !plain.output.text().contains("metrics on"),
        "off by default"
    );
    tests::figure(
        "metrics",
        &format!(
            "{} samples scraped, each a well-formed Prometheus line",
            after.len()
        ),
    );
}

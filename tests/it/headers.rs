//! The console's security headers on both hosts: a Content-Security-Policy that allows the
//! console's one inline script by its hash and never `'unsafe-inline'`, no MIME sniffing, no
//! referrer, no framing — the same values, computed once by `model::wire::security_headers`.

use tests::Host;

async fn check(host: &Host) {
    let index = std::fs::read_to_string(tests::repo().join("dist/index.html"))
        .expect("the console is built (cargo xtask test builds it)");
    let expected = model::wire::security_headers(&index);
    // Under `wrangler dev` the worker answers (and so the host is healthy) a moment before the
    // static assets are served: a first GET / can be 404 on a busy machine. Ask for up to 10 s.
    let mut response = reqwest::get(format!("{}/", host.base))
        .await
        .expect("GET /");
    for _ in 0..50 {
        if response.status().as_u16() != 404 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        response = reqwest::get(format!("{}/", host.base))
            .await
            .expect("GET /");
    }
    assert_eq!(response.status().as_u16(), 200);
    for (name, value) in &expected {
        let got = response.headers().get(*name).and_then(|v| v.to_str().ok());
        assert_eq!(got, Some(value.as_str()), "{}: {name}", host.name);
    }
    let csp = &expected[0].1;
    assert!(
        csp.contains("'sha256-") && !csp.contains("unsafe-inline"),
        "{csp}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn the_server_sends_the_console_security_headers() {
    let host = Host::server(Some(&tests::repo().join("dist")))
        .await
        .expect("server starts");
    check(&host).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn the_worker_sends_the_console_security_headers() {
    let host = Host::worker().await.expect("worker starts under workerd");
    check(&host).await;
}

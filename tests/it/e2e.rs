//! End to end in a real browser: WebDriver → chromedriver → headless Chromium, against the
//! server serving the built console. Screenshots land in `<target>/e2e-artifacts/`.

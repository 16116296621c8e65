//! Test harness: starts Keygate's hosts as real processes on loopback and talks HTTP to them.
//!
//! - [`Host::server`] runs the built `keygate-server` on a free port with a temporary store.
//! - [`Host::worker`] runs the built edge worker under workerd (`wrangler dev`, local KV in a
//!   temporary directory), offline.
//!
//! `cargo xtask test` builds what these need first (the server binary, the worker, the
//! console's `dist/`); run alone, a host that is not built fails with a message saying so.

pub mod browser;

use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use std::sync::Arc;

use anyhow::{Context, Result, bail, ensure};
use model::http;
use model::service::Keygate;
use model::store::MemoryStore;
use serde_json::Value;

/// The first admin every test host is bootstrapped with.
pub const ADMIN_EMAIL: &str = "admin@example.com";
/// Its password.
pub const ADMIN_PASSWORD: &str = "correct-horse-battery";

/// The repository root: the parent of the running package's directory. Cargo names that
/// directory at run time (`cargo test`, `cargo run`, and so `cargo xtask` and the bench it
/// starts); the path compiled in is only the fallback, since checkouts sharing a target
/// directory share this crate's build and the compiled path may be another checkout's.
pub fn repo() -> PathBuf {
    std::env::var_os("CARGO_MANIFEST_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")))
        .join("..")
}

/// A running host: its base URL and the process (killed, with its children, on drop).
pub struct Host {
    pub name: &'static str,
    pub base: String,
    child: Child,
    /// The temporary directory of the host's store, when the host owns it.
    _dir: Option<tempfile::TempDir>,
    /// Everything the server wrote to stdout and stderr (its logs), line by line.
    pub output: Output,
}

impl Host {
    /// The host's process id (for the server, the server itself).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

/// A host's captured output, shared with the threads that drain its pipes.
#[derive(Clone, Default)]
pub struct Output(std::sync::Arc<std::sync::Mutex<String>>);

impl Output {
    fn push(&self, line: &str) {
        if let Ok(mut text) = self.0.lock() {
            text.push_str(line);
            text.push('\n');
        }
    }

    /// Everything captured so far.
    pub fn text(&self) -> String {
        self.0.lock().map(|t| t.clone()).unwrap_or_default()
    }

    /// Everything captured once `done` holds for it, or after `limit` if it never does: a
    /// host writes a request's log line after its answer, and a pipe is drained by another
    /// thread, so what a test reads right after a response may not hold that line yet.
    pub async fn once(&self, done: impl Fn(&str) -> bool, limit: Duration) -> String {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            let text = self.text();
            if done(&text) || tokio::time::Instant::now() >= deadline {
                return text;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

impl Drop for Host {
    fn drop(&mut self) {
        // The host runs in its own process group, so wrangler's workerd child goes too.
        let _ = Command::new("kill")
            .args(["-s", "TERM", "--"])
            .arg(format!("-{}", self.child.id()))
            .status();
        let _ = self.child.wait();
    }
}

/// The file the reliability figures of a run are appended to; `cargo xtask test` empties it
/// first and prints it at the end.
pub fn figures_file() -> Result<PathBuf> {
    Ok(target_dir()?.join("reliability-figures.txt"))
}

/// Records a measured figure (requests under load, faults injected, crash rounds…): printed,
/// and appended to [`figures_file`].
pub fn figure(name: &str, line: &str) {
    use std::io::Write;
    eprintln!("figure: {name}: {line}");
    let appended = figures_file().and_then(|path| {
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)?;
        writeln!(file, "{name}: {line}")?;
        Ok(())
    });
    if let Err(e) = appended {
        eprintln!("figure: not recorded: {e:#}");
    }
}

fn free_port() -> Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

fn target_dir() -> Result<PathBuf> {
    // This test binary lives in <target>/<profile>/deps/.
    let exe = std::env::current_exe()?;
    exe.parent()
        .and_then(Path::parent)
        .map(Path::to_path_buf)
        .context("test binary has no profile directory")
}

impl Host {
    /// Starts `keygate-server` on a free port with a fresh store; `assets` serves a console.
    pub async fn server(assets: Option<&Path>) -> Result<Host> {
        let dir = tempfile::tempdir()?;
        let mut host = Self::server_with(&dir.path().join("store"), assets, &[]).await?;
        host._dir = Some(dir);
        Ok(host)
    }

    /// Starts `keygate-server` on the store in `store` (kept when the host stops), with extra
    /// environment variables.
    pub async fn server_with(
        store: &Path,
        assets: Option<&Path>,
        env: &[(&str, &str)],
    ) -> Result<Host> {
        let bin = match std::env::var_os("KEYGATE_SERVER_BIN") {
            Some(path) => PathBuf::from(path),
            None => target_dir()?.join("keygate-server"),
        };
        if !bin.exists() {
            bail!(
                "{} is not built: run the tests with `cargo xtask test`",
                bin.display()
            );
        }
        let mut command = Command::new(&bin);
        command
            .args(["--listen", "127.0.0.1:0", "--data-dir"])
            .arg(store)
            .env("KEYGATE_ADMIN_EMAIL", ADMIN_EMAIL)
            .env("KEYGATE_ADMIN_PASSWORD", ADMIN_PASSWORD)
            .env(
                "KEYGATE_LOG",
                std::env::var("KEYGATE_LOG").unwrap_or_else(|_| "warn".into()),
            )
            .envs(env.iter().copied())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0);
        if let Some(assets) = assets {
            command.arg("--assets").arg(assets);
        }
        let mut child = command
            .spawn()
            .with_context(|| format!("starting {}", bin.display()))?;
        let stdout = child.stdout.take().context("server stdout")?;
        let stderr = child.stderr.take().context("server stderr")?;
        let output = Output::default();
        let sink = output.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                sink.push(&line);
                eprintln!("{line}");
            }
        });
        // The server prints its bound address; read lines until it does.
        let sink = output.clone();
        let base = tokio::task::spawn_blocking(move || -> Result<String> {
            let mut lines = BufReader::new(stdout).lines();
            for line in lines.by_ref() {
                let line = line?;
                sink.push(&line);
                if let Some(url) = line.strip_prefix("Keygate: listening on ") {
                    let url = url.trim().to_owned();
                    // Keep draining stdout so the server never blocks on a full pipe.
                    std::thread::spawn(move || {
                        for line in lines.map_while(Result::ok) {
                            sink.push(&line);
                        }
                    });
                    return Ok(url);
                }
            }
            bail!("the server exited before listening")
        })
        .await??;
        let mut host = Host {
            name: "server",
            base,
            child,
            _dir: None,
            output,
        };
        host.wait_healthy(Duration::from_secs(20)).await?;
        Ok(host)
    }

    /// Starts the built worker under workerd with a fresh local KV.
    pub async fn worker() -> Result<Host> {
        Self::worker_with(&[]).await
    }

    /// Starts the worker with extra `wrangler dev --var NAME:VALUE` settings.
    pub async fn worker_with(vars: &[(&str, &str)]) -> Result<Host> {
        Self::worker_from("wrangler.toml", "build", vars).await
    }

    /// Starts the test-only worker built with fault injection (`POST /__faults`).
    pub async fn faulty_worker() -> Result<Host> {
        Self::worker_from("wrangler.faults.toml", "build-faults", &[]).await
    }

    async fn worker_from(config: &str, build: &str, vars: &[(&str, &str)]) -> Result<Host> {
        // Free ports are picked before wrangler binds them, so a concurrent test can take one
        // first; wrangler then exits, and a fresh pair of ports is tried.
        let mut last = None;
        for _ in 0..3 {
            match Self::try_worker(config, build, vars).await {
                Ok(host) => return Ok(host),
                Err(e) => last = Some(e),
            }
        }
        Err(last.unwrap_or_else(|| anyhow::anyhow!("worker did not start")))
    }

    async fn try_worker(config: &str, build: &str, vars: &[(&str, &str)]) -> Result<Host> {
        let repo = repo();
        let shim = repo.join(format!("edge-worker/{build}/worker/shim.mjs"));
        if !shim.exists() {
            bail!(
                "{} is not built: run the tests with `cargo xtask test`",
                shim.display()
            );
        }
        let wrangler = repo.join("node_modules/.bin/wrangler");
        let dir = tempfile::tempdir()?;
        let port = free_port()?;
        let inspector = free_port()?;
        let child = Command::new(&wrangler)
            .current_dir(repo.join("edge-worker"))
            .args([
                "dev",
                "--config",
                config,
                "--ip",
                "127.0.0.1",
                "--port",
                &port.to_string(),
            ])
            .args([
                "--inspector-port",
                &inspector.to_string(),
                "--log-level",
                "warn",
                "--show-interactive-dev-session=false",
            ])
            .arg("--persist-to")
            .arg(dir.path())
            .args(
                // The test's admin, unless the test gives its own.
                [
                    ("KEYGATE_ADMIN_EMAIL", ADMIN_EMAIL),
                    ("KEYGATE_ADMIN_PASSWORD", ADMIN_PASSWORD),
                ]
                .iter()
                .filter(|(k, _)| !vars.iter().any(|(name, _)| name == k))
                .chain(vars)
                .flat_map(|(k, v)| ["--var".to_owned(), format!("{k}:{v}")]),
            )
            .env("WRANGLER_SEND_METRICS", "false")
            .env("CLOUDFLARE_CF_FETCH_ENABLED", "false")
            .env("CI", "true")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0)
            .spawn()
            .with_context(|| format!("starting {}", wrangler.display()))?;
        let output = Output::default();
        let mut child = child;
        // The worker's log (its console) comes through wrangler: kept, and shown as before.
        for pipe in [
            child
                .stdout
                .take()
                .map(|p| Box::new(p) as Box<dyn std::io::Read + Send>),
            child
                .stderr
                .take()
                .map(|p| Box::new(p) as Box<dyn std::io::Read + Send>),
        ]
        .into_iter()
        .flatten()
        {
            let sink = output.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(pipe).lines().map_while(Result::ok) {
                    sink.push(&line);
                    eprintln!("{line}");
                }
            });
        }
        let mut host = Host {
            name: "worker",
            base: format!("http://127.0.0.1:{port}"),
            child,
            _dir: Some(dir),
            output,
        };
        host.wait_healthy(Duration::from_secs(90)).await?;
        Ok(host)
    }

    /// Kills the host with SIGKILL, as a crash would: no shutdown, no flush, no cleanup.
    pub fn kill(&mut self) -> Result<()> {
        self.child.kill()?;
        self.child.wait()?;
        Ok(())
    }

    async fn wait_healthy(&mut self, limit: Duration) -> Result<()> {
        let client = reqwest::Client::new();
        let start = Instant::now();
        while start.elapsed() < limit {
            if let Some(status) = self.child.try_wait()? {
                bail!("{} exited before it was healthy: {status}", self.name);
            }
            let answer = client.get(format!("{}/healthz", self.base)).send().await;
            if answer.is_ok_and(|r| r.status().is_success()) {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        bail!(
            "{} at {} was not healthy within {limit:?}",
            self.name,
            self.base
        )
    }
}

/// An answer: status, headers and JSON body (`Null` when empty or not JSON).
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub content_type: String,
    pub set_cookie: Option<String>,
    pub headers: reqwest::header::HeaderMap,
    pub body: Value,
}

impl Answer {
    /// The problem's `code`, for error answers.
    pub fn code(&self) -> &str {
        self.body["code"].as_str().unwrap_or("")
    }

    /// Checks a problem answer (RFC 7807): `status`, the stable `code`, the problem content
    /// type and every member of the problem.
    pub fn problem(&self, status: u16, code: &str) -> Result<()> {
        ensure!(
            self.status == status && self.code() == code,
            "expected {status} {code}, got {} {}: {}",
            self.status,
            self.code(),
            self.body
        );
        ensure!(
            self.content_type.starts_with("application/problem+json"),
            "content type {}",
            self.content_type
        );
        for field in ["type", "title", "status", "detail", "code"] {
            ensure!(
                !self.body[field].is_null(),
                "problem lacks {field}: {}",
                self.body
            );
        }
        Ok(())
    }
}

/// A signed-in admin with API keys switched on and one viewer key in the organization.
pub struct Fixture {
    pub token: String,
    pub org: String,
    /// The key's plaintext.
    pub key: String,
    pub id: String,
    pub owner: String,
}

/// A small client for one host: over HTTP, or straight into the dispatcher.
#[derive(Clone)]
pub struct Api {
    /// The host's base URL (`in-process` for [`Api::in_process`]).
    pub base: String,
    backend: Backend,
}

/// Where an [`Api`] sends its requests.
#[derive(Clone)]
enum Backend {
    Http(reqwest::Client),
    /// `model::http::handle` over a store in memory: the same dispatcher both hosts serve,
    /// without a process or a socket.
    InProcess(Arc<Keygate<MemoryStore>>),
}

/// How a call authenticates.
#[derive(Clone, Copy)]
pub enum As<'a> {
    Nobody,
    Bearer(&'a str),
    /// The session cookie, with an optional CSRF header.
    Cookie(&'a str, Option<&'a str>),
}

impl As<'_> {
    /// The headers this authentication sends, lower-case.
    fn headers(self) -> Vec<(String, String)> {
        match self {
            As::Nobody => Vec::new(),
            As::Bearer(token) => vec![("authorization".into(), format!("Bearer {token}"))],
            As::Cookie(token, csrf) => {
                let mut headers = vec![("cookie".into(), format!("keygate_session={token}"))];
                if let Some(csrf) = csrf {
                    headers.push(("x-keygate-csrf".into(), csrf.into()));
                }
                headers
            }
        }
    }
}

/// One request to the dispatcher in this process, answered as a host would: a body over
/// `wire::BODY_LIMIT` is not handed over, as neither host reads past it.
async fn dispatch(
    keygate: &Keygate<MemoryStore>,
    method: &str,
    path: &str,
    headers: Vec<(String, String)>,
    body: Option<Vec<u8>>,
) -> Result<Answer> {
    let (path, query) = match path.split_once('?') {
        Some((path, query)) => (path, Some(query)),
        None => (path, None),
    };
    let body = match body.unwrap_or_default() {
        bytes if bytes.len() > model::wire::BODY_LIMIT => http::Body::TooLarge,
        bytes => http::Body::Bytes(bytes),
    };
    let request = http::Request {
        method,
        path,
        query,
        headers: &headers,
        body,
        secure: false,
    };
    let now = time::OffsetDateTime::now_utc();
    let response = http::handle(keygate, request, now).await;
    keygate.flush_usage(now).await?;
    let mut map = reqwest::header::HeaderMap::new();
    for (name, value) in &response.headers {
        map.append(*name, value.parse()?);
    }
    let header = |name: &str| response.header(name).map(str::to_owned);
    Ok(Answer {
        status: response.status,
        content_type: header("content-type").unwrap_or_default(),
        set_cookie: header("set-cookie"),
        headers: map,
        body: serde_json::from_slice(&response.body).unwrap_or(Value::Null),
    })
}

impl Api {
    /// A client for the host at `base`.
    pub fn new(base: &str) -> Self {
        Self {
            base: base.trim_end_matches('/').to_owned(),
            backend: Backend::Http(reqwest::Client::new()),
        }
    }

    /// A fresh Keygate in this process, over an empty [`MemoryStore`], bootstrapped with
    /// [`ADMIN_EMAIL`] and [`ADMIN_PASSWORD`] as the hosts are; requests go straight to
    /// `model::http::handle`, and counted uses are flushed after each, as the worker does.
    pub async fn in_process() -> Result<Self> {
        let keygate = Keygate::new(MemoryStore::default());
        keygate
            .bootstrap(
                Some(ADMIN_EMAIL.into()),
                Some(ADMIN_PASSWORD.into()),
                time::OffsetDateTime::now_utc(),
            )
            .await?;
        Ok(Self {
            base: "in-process".into(),
            backend: Backend::InProcess(Arc::new(keygate)),
        })
    }

    fn client(&self) -> Result<&reqwest::Client> {
        match &self.backend {
            Backend::Http(client) => Ok(client),
            Backend::InProcess(_) => bail!("an in-process Api has no HTTP client"),
        }
    }

    /// Sends `method path` with an optional JSON body.
    pub async fn call(
        &self,
        method: &str,
        path: &str,
        auth: As<'_>,
        body: Option<&Value>,
    ) -> Result<Answer> {
        if let Backend::InProcess(keygate) = &self.backend {
            let mut headers = auth.headers();
            let body = body.map(serde_json::to_vec).transpose()?;
            if body.is_some() {
                headers.push(("content-type".into(), "application/json".into()));
            }
            return dispatch(keygate, method, path, headers, body).await;
        }
        let method = reqwest::Method::from_bytes(method.as_bytes())?;
        let mut req = self
            .client()?
            .request(method, format!("{}{path}", self.base));
        req = match auth {
            As::Nobody => req,
            As::Bearer(token) => req.bearer_auth(token),
            As::Cookie(token, csrf) => {
                let req = req.header("cookie", format!("keygate_session={token}"));
                match csrf {
                    Some(c) => req.header("x-keygate-csrf", c),
                    None => req,
                }
            }
        };
        if let Some(body) = body {
            req = req.json(body);
        }
        self.send(req).await
    }

    /// Sends a raw body with a content type.
    pub async fn raw(
        &self,
        method: &str,
        path: &str,
        auth: As<'_>,
        content_type: &str,
        body: Vec<u8>,
    ) -> Result<Answer> {
        if let Backend::InProcess(keygate) = &self.backend {
            let mut headers = auth.headers();
            headers.push(("content-type".into(), content_type.into()));
            return dispatch(keygate, method, path, headers, Some(body)).await;
        }
        let method = reqwest::Method::from_bytes(method.as_bytes())?;
        let mut req = self
            .client()?
            .request(method, format!("{}{path}", self.base))
            .header("content-type", content_type)
            .body(body);
        if let As::Bearer(token) = auth {
            req = req.bearer_auth(token);
        }
        self.send(req).await
    }

    /// Sends exactly what it is given: any headers, any bytes (`None` sends no body at all).
    pub async fn request(
        &self,
        method: &str,
        path: &str,
        headers: &[(String, String)],
        body: Option<Vec<u8>>,
    ) -> Result<Answer> {
        if let Backend::InProcess(keygate) = &self.backend {
            let headers = headers
                .iter()
                .map(|(n, v)| (n.to_ascii_lowercase(), v.clone()))
                .collect();
            return dispatch(keygate, method, path, headers, body).await;
        }
        let method = reqwest::Method::from_bytes(method.as_bytes())?;
        let mut req = self
            .client()?
            .request(method, format!("{}{path}", self.base));
        for (name, value) in headers {
            req = req.header(name, value);
        }
        if let Some(body) = body {
            req = req.body(body);
        }
        self.send(req).await
    }

    async fn send(&self, req: reqwest::RequestBuilder) -> Result<Answer> {
        let response = req.send().await?;
        let status = response.status().as_u16();
        let header = |name: &str| {
            response
                .headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        };
        let content_type = header("content-type").unwrap_or_default();
        let set_cookie = header("set-cookie");
        let headers = response.headers().clone();
        let bytes = response.bytes().await?;
        let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        Ok(Answer {
            status,
            content_type,
            set_cookie,
            headers,
            body,
        })
    }

    /// The id of the organization of the caller signed in with `token`.
    pub async fn org_of(&self, token: &str) -> Result<String> {
        let me = self.call("GET", "/v1/me", As::Bearer(token), None).await?;
        me.body["organization"]["id"]
            .as_str()
            .map(str::to_owned)
            .with_context(|| format!("no organization in {me:?}"))
    }

    /// Signs in as the admin, switches API keys on and creates a viewer key named `name`.
    pub async fn admin_with_key(&self, name: &str) -> Result<Fixture> {
        let (token, _) = self.login_admin().await?;
        let admin = As::Bearer(&token);
        let org = self.org_of(&token).await?;
        let enable = serde_json::json!({"api_keys_enabled": true});
        self.call("PATCH", "/v1/settings", admin, Some(&enable))
            .await?;
        let create = serde_json::json!({"name": name, "namespace": org, "role": "viewer"});
        let made = self.call("POST", "/v1/keys", admin, Some(&create)).await?;
        let field = |f: &str| {
            made.body[f]
                .as_str()
                .map(str::to_owned)
                .context("created key")
        };
        let (key, id) = (field("key")?, field("id")?);
        let owner = made.body["owner"]["id"]
            .as_str()
            .context("owner")?
            .to_owned();
        Ok(Fixture {
            token,
            org,
            key,
            id,
            owner,
        })
    }

    /// As the admin holding `admin_token`: invites `email` with `roles`; then accepts as the
    /// invitee and signs in. Returns (user id, session token).
    pub async fn join(
        &self,
        admin_token: &str,
        email: &str,
        roles: Value,
    ) -> Result<(String, String)> {
        let invite = serde_json::json!({"email": email, "roles": roles});
        let invited = self
            .call(
                "POST",
                "/v1/invitations",
                As::Bearer(admin_token),
                Some(&invite),
            )
            .await?;
        ensure!(invited.status == 201, "invite: {invited:?}");
        let token = invited.body["invitation_token"]
            .as_str()
            .context("invitation_token")?;
        let (user, session) = self.accept(token, email).await?;
        let id = user["id"].as_str().context("user id")?.to_owned();
        Ok((id, session))
    }

    /// Accepts the invitation `token` sent to `email` (a fixed name and password), then signs
    /// in. Returns (the new user as answered, session token).
    pub async fn accept(&self, token: &str, email: &str) -> Result<(Value, String)> {
        let body = serde_json::json!({"name": "Dee Veloper", "password": "long-enough-pw"});
        let accepted = self
            .call(
                "POST",
                &format!("/v1/invitations/{token}/accept"),
                As::Nobody,
                Some(&body),
            )
            .await?;
        ensure!(accepted.status == 201, "accept: {accepted:?}");
        let login = serde_json::json!({"email": email, "password": "long-enough-pw"});
        let session = self
            .call("POST", "/v1/auth/login", As::Nobody, Some(&login))
            .await?;
        ensure!(session.status == 200, "login: {session:?}");
        let token = session.body["token"].as_str().context("token")?.to_owned();
        Ok((accepted.body["user"].clone(), token))
    }

    /// Signs in as the bootstrap admin; returns (token, csrf_token).
    pub async fn login_admin(&self) -> Result<(String, String)> {
        let body = serde_json::json!({"email": ADMIN_EMAIL, "password": ADMIN_PASSWORD});
        let answer = self
            .call("POST", "/v1/auth/login", As::Nobody, Some(&body))
            .await?;
        if answer.status != 200 {
            bail!("admin login failed: {answer:?}");
        }
        let token = answer.body["token"].as_str().context("token")?.to_owned();
        let csrf = answer.body["csrf_token"]
            .as_str()
            .context("csrf_token")?
            .to_owned();
        Ok((token, csrf))
    }
}

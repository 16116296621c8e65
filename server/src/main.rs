//! `keygate-server`: parses flags, sets up tracing, bootstraps the store, binds and serves
//! until SIGTERM or SIGINT; `keygate-server backup` and `restore` copy the store out and in.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use clap::builder::BoolishValueParser;
use clap::{Parser, Subcommand};
use model::service::{GithubKeys, Keygate, Webhooks};
use server::serve::{Limits, serve};
use server::{AppState, RedbStore, router};
use time::OffsetDateTime;
use tracing_subscriber::EnvFilter;

/// Keygate's native server: the HTTP API and the console over an embedded store.
#[derive(Parser)]
#[command(version, about, args_conflicts_with_subcommands = true)]
struct Args {
    #[command(subcommand)]
    command: Option<Command>,
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:8080")]
    listen: SocketAddr,
    /// Directory of the embedded store (created when missing).
    #[arg(long, default_value = ".keygate")]
    data_dir: PathBuf,
    /// Directory of the built console (`cargo xtask`'s dist/); without it only the API is served.
    #[arg(long)]
    assets: Option<PathBuf>,
    /// Email of the first admin, used only when the store is empty.
    #[arg(long, env = "KEYGATE_ADMIN_EMAIL", hide_env_values = true)]
    admin_email: Option<String>,
    /// Password of the first admin. When unset, the server prints a one-time set-up link
    /// (valid for an hour, a new one at each start until used) for choosing it.
    #[arg(long, env = "KEYGATE_ADMIN_PASSWORD", hide_env_values = true)]
    admin_password: Option<String>,
    /// The server is reached over TLS (a proxy in front of it terminates it): the session
    /// cookie is then `Secure` and `__Host-` prefixed, and answers carry HSTS.
    #[arg(long, env = "KEYGATE_BEHIND_TLS", value_parser = BoolishValueParser::new())]
    behind_tls: bool,
    /// Most connections open at once; more are closed when accepted.
    #[arg(long, env = "KEYGATE_MAX_CONNECTIONS", default_value_t = Limits::default().max_connections)]
    max_connections: usize,
    /// Seconds a request head may take to arrive (also how long an idle connection stays).
    #[arg(long, env = "KEYGATE_HEADER_TIMEOUT", default_value_t = Limits::default().header_timeout.as_secs())]
    header_timeout: u64,
    /// Seconds a request may take once its head arrived, body included.
    #[arg(long, env = "KEYGATE_REQUEST_TIMEOUT", default_value_t = Limits::default().request_timeout.as_secs())]
    request_timeout: u64,
    /// Serve Prometheus metrics at `GET /metrics` on this address (off when unset): keep it
    /// where only the monitoring system reaches it.
    #[arg(long, env = "KEYGATE_METRICS_LISTEN")]
    metrics_listen: Option<SocketAddr>,
    /// Most records (keys, users, organizations…) kept decoded in memory for verification,
    /// a few hundred bytes each; 0 reads every verification from the store.
    #[arg(long, env = "KEYGATE_RECORD_CACHE", default_value_t = server::store::RECORD_CACHE_CAPACITY)]
    record_cache: usize,
    /// Where GitHub's secret scanning signing keys are fetched from (the partner endpoint,
    /// `POST /v1/secret-scanning/github`, checks each alert batch's signature with them).
    #[arg(long, env = "KEYGATE_GITHUB_KEYS_URL", default_value = model::scanning::GITHUB_KEYS_URL)]
    github_keys_url: String,
    /// The prefix of this deployment's keys (SPEC §2): 2–10 lowercase letters or digits,
    /// `kg` by default. Read at the first start and recorded in the store; later starts keep
    /// the recorded one (and warn when this differs), so every key made keeps verifying.
    #[arg(long, env = "KEYGATE_KEY_PREFIX")]
    key_prefix: Option<String>,
    /// Let webhooks be delivered to this host, private networks and plain `http` URLs
    /// (for tests and private deployments). Off: a webhook URL is `https` and may resolve
    /// only to public addresses, checked again at each delivery.
    #[arg(long, env = "KEYGATE_ALLOW_PRIVATE_WEBHOOKS", value_parser = BoolishValueParser::new())]
    allow_private_webhooks: bool,
    /// The header a proxy in front of the server sets to the caller's address (for example
    /// `X-Forwarded-For`, whose last entry is taken, or `X-Real-IP`): what keys with allowed
    /// networks are checked against when used as bearer credentials. Unset: the socket's peer.
    /// Set it only behind a proxy that always sets it, or callers could name any address.
    #[arg(long, env = "KEYGATE_TRUSTED_PROXY_HEADER")]
    trusted_proxy_header: Option<String>,
}

/// What `keygate-server` does besides serving.
#[derive(Subcommand)]
enum Command {
    /// Write a consistent snapshot of the store to a new file, while a server runs on it or
    /// not (SPEC §11).
    Backup {
        /// Directory of the store to back up.
        #[arg(long, default_value = ".keygate")]
        data_dir: PathBuf,
        /// The backup file to write (it must not exist).
        #[arg(long)]
        to: PathBuf,
    },
    /// Restore a backup into an empty (or new) data directory, after checking it whole.
    Restore {
        /// The backup file.
        #[arg(long)]
        from: PathBuf,
        /// The directory to restore into (empty or missing).
        #[arg(long)]
        data_dir: PathBuf,
    },
}

/// mimalloc rather than glibc's malloc: verification allocates a few dozen small blocks per
/// request on every worker thread, where glibc's arenas spent ~8 % of the server's CPU and
/// contended on their locks (measured with perf under `cargo xtask bench`).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    let done = match &args.command {
        Some(command) => copy(command),
        None => run(args).await,
    };
    match done {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("keygate-server: {e}");
            ExitCode::FAILURE
        }
    }
}

/// `backup` or `restore`: what was copied goes to stdout, for scripts.
fn copy(command: &Command) -> Result<(), String> {
    use server::backup;
    let (what, done) = match command {
        Command::Backup { data_dir, to } => ("backed up", backup::backup(data_dir, to)),
        Command::Restore { from, data_dir } => ("restored", backup::restore(from, data_dir)),
    };
    let summary = done.map_err(|e| e.to_string())?;
    println!(
        "Keygate: {what} {} entries, {} bytes, sha256 {}",
        summary.entries, summary.bytes, summary.digest
    );
    Ok(())
}

async fn run(args: Args) -> Result<(), String> {
    let filter = EnvFilter::try_from_env("KEYGATE_LOG").unwrap_or_else(|_| EnvFilter::new("info"));
    // `KEYGATE_LOG_FORMAT=json`: one JSON object per line for log collectors, with the same
    // fields as the text format.
    match std::env::var("KEYGATE_LOG_FORMAT").as_deref() {
        Ok("json") => tracing_subscriber::fmt()
            .json()
            .with_env_filter(filter)
            .init(),
        Ok("text") | Ok("") | Err(_) => tracing_subscriber::fmt().with_env_filter(filter).init(),
        Ok(other) => {
            return Err(format!(
                "KEYGATE_LOG_FORMAT is `{other}`: it is `text` (the default) or `json`"
            ));
        }
    }

    let store = RedbStore::open_with(&args.data_dir, args.record_cache)
        .map_err(|e| format!("cannot open {}: {e}", args.data_dir.display()))?;
    let client = server::fetch::Client::new().map_err(|e| format!("HTTP client: {e}"))?;
    let github = GithubKeys::new(args.github_keys_url.clone(), Arc::new(client));
    let deliveries = server::fetch::Client::webhooks(args.allow_private_webhooks)
        .map_err(|e| format!("HTTP client: {e}"))?;
    let webhooks = Webhooks::new(
        Arc::new(deliveries),
        OffsetDateTime::now_utc,
        args.allow_private_webhooks,
    );
    let now = OffsetDateTime::now_utc();
    let keygate = Keygate::new(store.clone())
        .with_github(Arc::new(github))
        .with_webhooks(Arc::new(webhooks))
        .with_meters(Arc::new(server::store::Meters::new(store.clone(), now)));
    let first = keygate
        .bootstrap(args.admin_email, args.admin_password, now)
        .await
        .map_err(|e| format!("bootstrap failed: {e}"))?;
    if let Some(first) = &first {
        println!(
            "Keygate: created the first organization and its admin {}",
            first.email
        );
    }
    let prefix = keygate
        .record_key_prefix(args.key_prefix.as_deref())
        .await
        .map_err(|e| match e {
            model::Error::Internal(reason) => reason,
            other => format!("key prefix: {other}"),
        })?;
    if let Some(warning) = prefix.warning() {
        tracing::warn!("{warning}");
    }
    let indexed = keygate
        .index_reminders(now)
        .await
        .map_err(|e| format!("expiry reminders: {e}"))?;
    if indexed > 0 {
        tracing::info!(
            keys = indexed,
            "expiry reminders scheduled for existing keys"
        );
    }
    // Until the first admin has chosen a password, every start prints a fresh link (the
    // earlier one stops working): never a password, which a log would keep.
    let setup = match first.and_then(|f| f.setup_token) {
        Some(token) => Some(token),
        None => keygate
            .renew_setup(now, true)
            .await
            .map_err(|e| format!("set-up link: {e}"))?,
    };

    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .map_err(|e| format!("cannot listen on {}: {e}", args.listen))?;
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    let metrics = match args.metrics_listen {
        Some(at) => {
            let handle = server::metrics::install()?;
            let listener = tokio::net::TcpListener::bind(at)
                .await
                .map_err(|e| format!("cannot listen on {at} for metrics: {e}"))?;
            let bound = listener.local_addr().map_err(|e| e.to_string())?;
            println!("Keygate: metrics on http://{bound}/metrics");
            Some((listener, handle))
        }
        None => None,
    };
    let state = AppState::new(keygate, args.behind_tls)
        .with_trusted_proxy_header(args.trusted_proxy_header);
    let (stop_tasks, tasks_stopped) = tokio::sync::watch::channel(false);
    let stopped = |mut rx: tokio::sync::watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|stop| *stop).await;
    };
    let flusher = tokio::spawn(server::http::flush_usage_until(
        state.keygate.clone(),
        stopped(tasks_stopped.clone()),
    ));
    let deliverer = tokio::spawn(server::http::deliver_webhooks_until(
        state.keygate.clone(),
        stopped(tasks_stopped.clone()),
    ));
    let control = tokio::spawn(server::backup::serve_control(
        args.data_dir.clone(),
        store.clone(),
        stopped(tasks_stopped.clone()),
    ));
    let exporter = metrics.map(|(listener, handle)| {
        tokio::spawn(server::metrics::serve(
            listener,
            handle,
            store.clone(),
            stopped(tasks_stopped.clone()),
        ))
    });
    let purger = tokio::spawn(server::http::purge_expired_until(
        store,
        stopped(tasks_stopped),
    ));
    let app = router(state, args.assets);
    tracing::info!(%addr, "serving");
    println!("Keygate: listening on http://{addr}");
    if let Some(token) = setup {
        // Printed once, to this console only; only its hash is stored.
        println!(
            "{}",
            model::service::setup_notice(&format!("http://{addr}"), &token)
        );
    }
    let limits = Limits {
        max_connections: args.max_connections,
        header_timeout: std::time::Duration::from_secs(args.header_timeout),
        request_timeout: std::time::Duration::from_secs(args.request_timeout),
    };
    serve(listener, app, limits, shutdown()).await;
    let _ = stop_tasks.send(true);
    let _ = flusher.await;
    let _ = deliverer.await;
    let _ = purger.await;
    let _ = control.await;
    if let Some(exporter) = exporter {
        let _ = exporter.await;
    }
    tracing::info!("stopped");
    Ok(())
}

async fn shutdown() {
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {},
        _ = terminate => {},
    }
}

//! `keygate-server`: parses flags, sets up tracing, bootstraps the store, binds and serves
//! until SIGTERM or SIGINT.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use model::service::Keygate;
use server::{AppState, RedbStore, router};
use time::OffsetDateTime;
use tracing_subscriber::EnvFilter;

/// Keygate's native server: the HTTP API and the console over an embedded store.
#[derive(Parser)]
#[command(version, about)]
struct Args {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:8080")]
    listen: SocketAddr,
    /// Directory of the embedded store (created when missing).
    #[arg(long, default_value = ".keygate")]
    data_dir: PathBuf,
    /// Directory of the built console (Trunk's dist/); without it only the API is served.
    #[arg(long)]
    assets: Option<PathBuf>,
    /// Email of the first admin, used only when the store is empty.
    #[arg(long, env = "KEYGATE_ADMIN_EMAIL", hide_env_values = true)]
    admin_email: Option<String>,
    /// Password of the first admin; generated and printed once when unset.
    #[arg(long, env = "KEYGATE_ADMIN_PASSWORD", hide_env_values = true)]
    admin_password: Option<String>,
    /// Most records (keys, users, organizations…) kept decoded in memory for verification,
    /// a few hundred bytes each; 0 reads every verification from the store.
    #[arg(long, env = "KEYGATE_RECORD_CACHE", default_value_t = server::store::RECORD_CACHE_CAPACITY)]
    record_cache: usize,
}

/// mimalloc rather than glibc's malloc: verification allocates a few dozen small blocks per
/// request on every worker thread, where glibc's arenas spent ~8 % of the server's CPU and
/// contended on their locks (measured with perf under `cargo xtask bench`).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> ExitCode {
    match run(Args::parse()).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("keygate-server: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn run(args: Args) -> Result<(), String> {
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_env("KEYGATE_LOG").unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .init();

    let store = RedbStore::open_with(&args.data_dir, args.record_cache)
        .map_err(|e| format!("cannot open {}: {e}", args.data_dir.display()))?;
    let keygate = Keygate::new(store);
    let first = keygate
        .bootstrap(
            args.admin_email,
            args.admin_password,
            OffsetDateTime::now_utc(),
        )
        .await
        .map_err(|e| format!("bootstrap failed: {e}"))?;
    if let Some(first) = first {
        println!(
            "Keygate: created the first organization and its admin {}",
            first.email
        );
        if let Some(password) = first.generated_password {
            // Printed once, to this console only; it is never logged or stored in plaintext.
            println!("Keygate: sign in with password {password} (shown only this once)");
        }
    }

    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .map_err(|e| format!("cannot listen on {}: {e}", args.listen))?;
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    let state = AppState::new(keygate, !addr.ip().is_loopback());
    let (stop_flush, flush_stopped) = tokio::sync::oneshot::channel::<()>();
    let flusher = tokio::spawn(server::http::flush_usage_until(
        state.keygate.clone(),
        async {
            let _ = flush_stopped.await;
        },
    ));
    let app = router(state, args.assets);
    tracing::info!(%addr, "serving");
    println!("Keygate: listening on http://{addr}");
    // Answers leave at once rather than waiting on Nagle's algorithm for an earlier segment's
    // acknowledgement (axum leaves TCP_NODELAY off).
    let listener = axum::serve::ListenerExt::tap_io(listener, |tcp| {
        if let Err(e) = tcp.set_nodelay(true) {
            tracing::debug!(error = %e, "TCP_NODELAY not set");
        }
    });
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown())
        .await
        .map_err(|e| e.to_string())?;
    let _ = stop_flush.send(());
    let _ = flusher.await;
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

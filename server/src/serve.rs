//! Serving the app on a listener so that slow, idle or too many clients cannot starve it
//! (SPEC §11): hyper's own header read timeout, tower-http's request timeout, and a cap on
//! open connections held by the listener loop. Nothing here is a hand-written timer.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::Request;
use axum::http::StatusCode;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tower::Service;
use tower_http::timeout::TimeoutLayer;

/// What a connection may cost before the server cuts it.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Most connections open at once; one more is closed as soon as it is accepted.
    pub max_connections: usize,
    /// How long a request head may take to arrive, counted from the connection's start or the
    /// previous answer: also how long a keep-alive connection may sit idle.
    pub header_timeout: Duration,
    /// How long a request may take once its head arrived, body included: 408 after that.
    pub request_timeout: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_connections: 10_000,
            header_timeout: Duration::from_secs(20),
            request_timeout: Duration::from_secs(30),
        }
    }
}

/// Serves `app` on `listener` within `limits` until `stop` resolves, then lets open
/// requests finish (for at most 10 s).
pub async fn serve(
    listener: TcpListener,
    app: Router,
    limits: Limits,
    stop: impl std::future::Future<Output = ()>,
) {
    let app = app.layer(TimeoutLayer::with_status_code(
        StatusCode::REQUEST_TIMEOUT,
        limits.request_timeout,
    ));
    let permits = Arc::new(tokio::sync::Semaphore::new(limits.max_connections));
    let graceful = GracefulShutdown::new();
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout);
    tokio::pin!(stop);
    loop {
        let (tcp, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(connection) => connection,
                Err(e) => {
                    // Out of file descriptors, usually: give the open connections a moment.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut stop => break,
        };
        let Ok(permit) = Arc::clone(&permits).try_acquire_owned() else {
            tracing::debug!("connection refused: too many open");
            continue;
        };
        // Answers leave at once rather than waiting on Nagle's algorithm for an earlier
        // segment's acknowledgement.
        if let Err(e) = tcp.set_nodelay(true) {
            tracing::debug!(error = %e, "TCP_NODELAY not set");
        }
        let service = app.clone();
        // The peer's address, for what is throttled per address (leak reports).
        let hyper_service = hyper::service::service_fn(move |mut request: Request<Incoming>| {
            request
                .extensions_mut()
                .insert(axum::extract::ConnectInfo(peer));
            service.clone().call(request)
        });
        let connection = graceful.watch(builder.serve_connection(TokioIo::new(tcp), hyper_service));
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::debug!(error = %e, "connection ended");
            }
            drop(permit);
        });
    }
    drop(listener);
    tokio::select! {
        () = graceful.shutdown() => {}
        () = tokio::time::sleep(Duration::from_secs(10)) => {
            tracing::warn!("connections still open at shutdown were cut");
        }
    }
}

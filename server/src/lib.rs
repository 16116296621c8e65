//! The native host: Keygate's HTTP API (an axum router over `model`'s operations), the redb
//! store (with its online backup), and the built console served from `--assets`.
//!
//! [`router`] is the whole app as a function, so it can be served by `main.rs` or driven in a
//! test; `main.rs` only parses flags, sets up tracing, binds and serves.

pub mod backup;
pub mod fetch;
pub mod http;
pub mod metrics;
pub mod serve;
pub mod store;

pub use http::{AppState, router};
pub use store::RedbStore;

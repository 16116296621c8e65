//! Keygate's domain model, shared by every host.
//!
//! This crate knows nothing of HTTP frameworks, Workers KV, tokio or the DOM. It holds:
//! - [`key`]: the API key format (generation, parsing, checksum, secret hashing);
//! - [`domain`]: the records Keygate stores (organizations, users, sessions, keys);
//! - [`api`]: the JSON shapes of the HTTP API, used by the hosts and the console alike;
//! - [`rules`]: the business rules as pure functions over those types;
//! - [`store`]: the [`store::Store`] trait both hosts implement, and the store's key schema;
//! - [`service`]: the operations (bootstrap, login, create key, verify…) over a `Store`.
//!
//! A host is an adapter: it turns HTTP into calls of [`service::Keygate`] and its
//! [`error::Error`] back into problem JSON.

pub mod api;
pub mod domain;
pub mod error;
pub mod http;
pub mod id;
pub mod key;
#[cfg(feature = "openapi")]
pub mod openapi;
pub mod password;
pub mod rules;
pub mod service;
pub mod store;
pub mod wire;

pub use error::Error;

/// The OpenAPI document both hosts serve at `GET /openapi.json`, generated from the code by
/// `cargo xtask openapi` (see `openapi.rs`, behind the `openapi` feature).
pub const OPENAPI_JSON: &str = include_str!("../openapi.json");

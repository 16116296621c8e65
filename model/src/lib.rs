//! Keygate's domain model, shared by every host.
//!
//! This crate knows nothing of HTTP frameworks, Workers KV, tokio or the DOM. Its modules form
//! one-way layers, each using only those before it ([`LAYERS`]; `tests/layers.rs` checks):
//! - [`key`]: the API key format (generation, parsing, checksum, secret hashing), and [`id`];
//! - [`domain`]: the records Keygate stores and the value enums they hold;
//! - [`error`]: the one error type, with its status and stable code;
//! - [`rules`]: the business rules as pure functions over records and values;
//! - [`meter`]: usage policies (rate limits, credits, allowed networks) and the pure meter that
//!   checks and spends them;
//! - [`scanning`]: GitHub's secret scanning signing keys and signatures;
//! - [`webhook`]: webhook secrets, Standard Webhooks signatures, the retry schedule, and where
//!   a webhook may be delivered;
//! - [`password`], [`store`]: password hashing, the [`store::Store`] trait both hosts
//!   implement and the store's key schema;
//! - [`api`]: the JSON shapes of the HTTP API (requests, and views made `From` records);
//! - [`service`]: the operations (bootstrap, login, create key, verify…) over a `Store`;
//! - [`wire`]: what crosses HTTP besides bodies (credentials, cookies, decoding, gateway headers);
//! - [`http`]: the endpoint table and the host-neutral dispatcher both hosts serve;
//! - `openapi`: the OpenAPI document, generated from the table.
//!
//! A host is a transport: it turns its requests into [`http::Request`]s and answers the
//! [`http::Response`] it gets back.

/// The model's modules from the bottom up: a module may use only the modules before it.
pub const LAYERS: &[&str] = &[
    "key", "id", "domain", "error", "rules", "meter", "scanning", "webhook", "password", "store",
    "api", "service", "wire", "http", "openapi",
];

pub mod api;
pub mod domain;
pub mod error;
pub mod http;
pub mod id;
pub mod key;
pub mod meter;
#[cfg(feature = "openapi")]
pub mod openapi;
pub mod password;
pub mod rules;
pub mod scanning;
pub mod service;
pub mod store;
pub mod webhook;
pub mod wire;

pub use error::Error;

/// The OpenAPI document both hosts serve at `GET /openapi.json`, generated from the code by
/// `cargo xtask openapi` (see `openapi.rs`, behind the `openapi` feature).
pub const OPENAPI_JSON: &str = include_str!("../openapi.json");

//! Keygate's one integration-test binary: the HTTP contract against both hosts, and the
//! console end to end in a real browser.

mod authz;
mod backup;
mod badinput;
mod contract;
mod crash;
mod e2e;
mod exact;
mod faults;
mod gateway;
mod headers;
mod load;
mod metrics;
mod prefix;
mod scanning;
mod server;
mod setup;
mod upgrade;
mod webhooks;

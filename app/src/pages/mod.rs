//! The console's pages.

pub mod keys;
pub mod login;

//! The console's pages.

pub mod admin;
pub mod invitation;
pub mod key_actions;
pub mod keys;
pub mod login;
pub mod setup;

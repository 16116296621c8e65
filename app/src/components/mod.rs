//! Reusable pieces of the console.

pub mod error_note;
pub mod new_key;

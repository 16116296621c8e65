//! Reusable pieces of the console.

pub mod confirm;
pub mod copy;
pub mod dialog;
pub mod error_note;
pub mod key_cells;
pub mod new_key;
pub mod pager;
pub mod row_menu;
pub mod table;
pub mod usage_chart;

//! Filtering a list of keys by search text and status, as a plain type the tables apply. The
//! search itself is `model::api::KeyView::matches` (the same function behind the API's `q`), with
//! the browser's lowercasing ([`lowercase`]).

use model::api::KeyView;
use model::domain::KeyStatus;

/// The search box and status filter above a key table.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KeyFilter {
    /// Matched against name, id and owner name or email.
    pub q: String,
    /// `None` shows every status.
    pub status: Option<KeyStatus>,
}

impl KeyFilter {
    /// Whether `key` passes the filter.
    pub fn matches(&self, key: &KeyView) -> bool {
        key.matches_by(&self.q, lowercase) && self.status.is_none_or(|s| key.status == s)
    }

    /// The keys that pass, in their order.
    pub fn apply(&self, keys: impl IntoIterator<Item = KeyView>) -> Vec<KeyView> {
        keys.into_iter().filter(|k| self.matches(k)).collect()
    }
}

/// `text` lowercased by the browser (`String.prototype.toLowerCase`): the same Unicode default
/// case mapping as `str::to_lowercase`, without compiling Rust's case tables into the wasm.
pub fn lowercase(text: &str) -> String {
    js_sys::JsString::from(text).to_lower_case().into()
}

/// Every status, in the order the filter offers them.
pub const STATUSES: [KeyStatus; 3] = [KeyStatus::Active, KeyStatus::Expired, KeyStatus::Revoked];

/// The word shown for a status (also its CSS class and `<option>` value).
pub fn status_name(status: KeyStatus) -> &'static str {
    match status {
        KeyStatus::Active => "active",
        KeyStatus::Expired => "expired",
        KeyStatus::Revoked => "revoked",
    }
}

/// The status of an `<option>` value; an empty or unknown value means every status.
pub fn parse_status(value: &str) -> Option<KeyStatus> {
    STATUSES.into_iter().find(|s| status_name(*s) == value)
}

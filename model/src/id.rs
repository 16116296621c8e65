//! Opaque, prefixed ids (`org_…`, `usr_…`, `key_…`…): 12 random base62 chars after the prefix.

use crate::key::{ID_LEN, random_base62};

/// The kinds of object that carry an id, with their prefixes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Organization,
    Application,
    Workspace,
    UserGroup,
    User,
    Key,
    Grant,
    Resource,
    Event,
    Invitation,
    Webhook,
    Message,
    Attempt,
}

impl Kind {
    /// The id prefix, including its `_`.
    pub const fn prefix(self) -> &'static str {
        match self {
            Kind::Organization => "org_",
            Kind::Application => "app_",
            Kind::Workspace => "ws_",
            Kind::UserGroup => "grp_",
            Kind::User => "usr_",
            Kind::Key => "key_",
            Kind::Grant => "gnt_",
            Kind::Resource => "res_",
            Kind::Event => "evt_",
            Kind::Invitation => "inv_",
            Kind::Webhook => "wh_",
            Kind::Message => "msg_",
            Kind::Attempt => "att_",
        }
    }

    /// Whether `id` is shaped like an id of this kind. Shape only: existence is the store's.
    pub fn matches(self, id: &str) -> bool {
        id.strip_prefix(self.prefix()).is_some_and(|rest| {
            rest.len() == ID_LEN && rest.bytes().all(|b| b.is_ascii_alphanumeric())
        })
    }
}

/// A fresh random id of `kind`.
pub fn new_id(kind: Kind) -> Result<String, getrandom::Error> {
    Ok(format!("{}{}", kind.prefix(), random_base62(ID_LEN)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_carry_their_prefix_and_match_their_kind_only() {
        let id = new_id(Kind::User).expect("csprng");
        assert!(id.starts_with("usr_"));
        assert!(Kind::User.matches(&id));
        assert!(!Kind::Key.matches(&id));
        assert!(!Kind::User.matches("usr_short"));
    }
}

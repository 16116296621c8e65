//! Ids as people read them: who acted (a member by name and email), what was acted on (a link
//! to the key, member or namespace), and namespaces by name. Plain data, built from one page
//! of members and the namespaces the console lists; an id it does not know reads as the id.

use std::collections::HashMap;

use model::api::{Actor, NamespaceView, OrganizationView, UserView};

use crate::route::{AdminPage, Route};

/// The names behind the ids of one organization.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Names {
    /// Members: id → (name, email).
    users: HashMap<String, (String, String)>,
    /// The organization, its applications, workspaces and user groups: id → name.
    namespaces: HashMap<String, String>,
}

/// An actor as shown: a primary line and, for a member, the email below it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Label {
    pub primary: String,
    pub secondary: Option<String>,
}

/// A target as shown: its label, and where it links (`None` when there is no page for it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub label: String,
    pub href: Option<String>,
    /// The raw id, for the hover title and copying.
    pub id: String,
}

impl Names {
    /// The names of `organization`, its `members` and its `namespaces`.
    pub fn new(
        organization: &OrganizationView,
        members: impl IntoIterator<Item = UserView>,
        namespaces: impl IntoIterator<Item = NamespaceView>,
    ) -> Names {
        let mut names = Names::default();
        names
            .namespaces
            .insert(organization.id.clone(), organization.name.clone());
        for n in namespaces {
            names.namespaces.insert(n.id, n.name);
        }
        for u in members {
            names.users.insert(u.id, (u.name, u.email));
        }
        names
    }

    /// `Ann Lee` with `ann@example.com` below, for a member; `API key key_…` for a key;
    /// `Keygate` for the instance itself (with what told it of a leak below); the id when
    /// nothing better is known.
    pub fn actor(&self, actor: &Actor) -> Label {
        match actor.kind.as_str() {
            "user" => match self.users.get(&actor.id) {
                Some((name, email)) => Label {
                    primary: name.clone(),
                    secondary: Some(email.clone()),
                },
                None => Label {
                    primary: format!("former member {}", actor.id),
                    secondary: None,
                },
            },
            "key" => Label {
                primary: format!("API key {}", actor.id),
                secondary: None,
            },
            // Keygate itself; for a leak, who told it (`public report`, a secret scanner).
            "instance" => Label {
                primary: "Keygate".into(),
                secondary: (actor.id != "instance").then(|| actor.id.clone()),
            },
            other => Label {
                primary: format!("{other} {}", actor.id),
                secondary: None,
            },
        }
    }

    /// What a principal, namespace or other id reads as in a sentence: a member's name, a
    /// namespace's name, or the id itself.
    pub fn name(&self, id: &str) -> String {
        self.users
            .get(id)
            .map(|(name, _)| name.clone())
            .or_else(|| self.namespaces.get(id).cloned())
            .unwrap_or_else(|| id.to_owned())
    }

    /// The target of an event: a key links to its usage and events, a member to *Members*, a
    /// webhook to *Webhooks*, a namespace to *Namespaces*, by name where it is known.
    pub fn target(&self, id: &str) -> Target {
        let page = if id.starts_with("key_") {
            Some(AdminPage::Events(Some(id.to_owned())))
        } else if id.starts_with("usr_") {
            Some(AdminPage::Members)
        } else if id.starts_with("wh_") {
            Some(AdminPage::Webhooks)
        } else if ["org_", "app_", "ws_", "grp_"]
            .iter()
            .any(|p| id.starts_with(p))
        {
            Some(AdminPage::Namespaces)
        } else {
            None
        };
        Target {
            label: self.name(id),
            href: page.map(|p| Route::Admin(p).href()),
            id: id.to_owned(),
        }
    }
}

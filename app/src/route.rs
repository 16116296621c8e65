//! Where the console is, as a plain type read from and written to the URL's fragment
//! (`#/admin/keys`). The fragment never reaches a server, so an invitation token in it stays out
//! of request logs and `Referer` headers.

/// A page of the console.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    /// *My API keys*, the signed-in start page.
    MyKeys,
    /// A page of the management console (admins).
    Admin(AdminPage),
    /// Accepting an invitation, with its one-time token.
    Invitation(String),
    /// Choosing the first admin's password, with the set-up link's one-time token.
    Setup(String),
}

/// The management console's pages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AdminPage {
    /// The admin's landing page: keys and their use at a glance.
    Overview,
    Keys,
    Settings,
    /// The audit log; with a key id, its events and usage chart.
    Events(Option<String>),
    Members,
    Namespaces,
    Permissions,
    Webhooks,
}

impl Route {
    /// The route of a fragment such as `#/admin/events/key_…`; anything unknown is *My keys*.
    pub fn parse(fragment: &str) -> Route {
        let path = fragment.trim_start_matches('#').trim_matches('/');
        let mut parts = path.split('/').filter(|p| !p.is_empty());
        match (parts.next(), parts.next(), parts.next()) {
            (Some("invitation"), Some(token), None) => Route::Invitation(token.to_owned()),
            (Some("setup"), Some(token), None) => Route::Setup(token.to_owned()),
            (Some("admin"), Some(page), rest) => Route::Admin(match (page, rest) {
                ("overview", None) => AdminPage::Overview,
                ("settings", None) => AdminPage::Settings,
                ("events", key) => AdminPage::Events(key.map(str::to_owned)),
                ("members", None) => AdminPage::Members,
                ("namespaces", None) => AdminPage::Namespaces,
                ("permissions", None) => AdminPage::Permissions,
                ("webhooks", None) => AdminPage::Webhooks,
                _ => AdminPage::Keys,
            }),
            _ => Route::MyKeys,
        }
    }

    /// The fragment of this route, for links.
    pub fn href(&self) -> String {
        match self {
            Route::MyKeys => "#/".into(),
            Route::Invitation(token) => format!("#/invitation/{token}"),
            Route::Setup(token) => format!("#/setup/{token}"),
            Route::Admin(page) => match page {
                AdminPage::Overview => "#/admin/overview".into(),
                AdminPage::Keys => "#/admin/keys".into(),
                AdminPage::Settings => "#/admin/settings".into(),
                AdminPage::Events(None) => "#/admin/events".into(),
                AdminPage::Events(Some(key)) => format!("#/admin/events/{key}"),
                AdminPage::Members => "#/admin/members".into(),
                AdminPage::Namespaces => "#/admin/namespaces".into(),
                AdminPage::Permissions => "#/admin/permissions".into(),
                AdminPage::Webhooks => "#/admin/webhooks".into(),
            },
        }
    }

    /// The route the browser shows now.
    pub fn current() -> Route {
        web_sys::window()
            .and_then(|w| w.location().hash().ok())
            .map(|h| Route::parse(&h))
            .unwrap_or(Route::MyKeys)
    }

    /// Shows this route (the `hashchange` listener then updates the page).
    pub fn go(&self) {
        if let Some(window) = web_sys::window() {
            let _ = window.location().set_hash(&self.href());
        }
    }
}

/// The full invitation link for `token`, on this console's origin.
pub fn invitation_link(token: &str) -> String {
    let origin = web_sys::window()
        .and_then(|w| w.location().origin().ok())
        .unwrap_or_default();
    format!("{origin}/{}", Route::Invitation(token.to_owned()).href())
}

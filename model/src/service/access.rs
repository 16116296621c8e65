//! What a caller holds where: namespaces looked up within an organization, a principal's
//! grants and live rights, and the checks the other operations make (SPEC §1, §4.3).
//!
//! Namespaces are not hierarchical for access: a grant in an application says nothing about
//! its workspaces. The one exception is how workspaces and application user groups are
//! *managed*: `workspaces.write` / `usergroups.write` in an application manages the
//! workspaces / user groups inside it.

use std::sync::Arc;

use super::namespaces::view;
use super::{Caller, Keygate, Via};
use crate::api::{NamespaceKind, NamespaceView};
use crate::domain::{Grant, Namespace, Organization, Role, User};
use crate::error::{Error, Result};
use crate::rules::{self, Rights};
use crate::store::{Store, get_json, get_shared, schema};

impl<S: Store> Keygate<S> {
    /// The namespace record of `id` in `org` (`None` for the organization itself), shared
    /// with the store's record cache: most callers only check that it exists.
    pub(crate) async fn namespace_in(
        &self,
        org: &Organization,
        id: &str,
    ) -> Result<Option<Arc<Namespace>>> {
        if id == org.id {
            return Ok(None);
        }
        match get_shared::<S, Namespace>(&self.store, &schema::namespace(id)).await? {
            Some(ns) if ns.org == org.id => Ok(Some(ns)),
            _ => Err(Error::NotFound("namespace")),
        }
    }

    /// What `user` holds in `namespace` now: every permission for an admin, else the union of
    /// its own grants and its groups' grants there. Another organization's id is `NotFound`.
    pub(crate) async fn rights_in(
        &self,
        user: &User,
        org: &Organization,
        namespace: &str,
    ) -> Result<Rights> {
        self.namespace_in(org, namespace).await?;
        if user.has(Role::Admin) {
            return Ok(Rights::all_of(org.catalogue()));
        }
        let mut rights = Rights::default();
        let mut principals = vec![user.id.clone()];
        for entry in self.list_all(&schema::user_groups(&user.id)).await? {
            principals.push(schema::id_of(&entry).to_owned());
        }
        for principal in principals {
            for grant in self.grants_of(&principal).await? {
                if grant.namespace == namespace {
                    rights.grant(&grant.permission, grant.resources.as_deref());
                }
            }
        }
        Ok(rights)
    }

    /// Every grant naming `principal`.
    pub(crate) async fn grants_of(&self, principal: &str) -> Result<Vec<Grant>> {
        let mut grants = Vec::new();
        for entry in self.list_all(&schema::principal_grants(principal)).await? {
            if let Some(g) =
                get_json::<S, Grant>(&self.store, &schema::grant(schema::id_of(&entry))).await?
            {
                grants.push(g);
            }
        }
        Ok(grants)
    }

    /// Every key under `prefix` (index scans of bounded size per page); nothing under a prefix
    /// longer than any store key.
    pub(crate) async fn list_all(&self, prefix: &str) -> Result<Vec<String>> {
        let mut out = Vec::new();
        if prefix.len() > crate::store::MAX_KEY_BYTES {
            return Ok(out);
        }
        let mut cursor = None;
        loop {
            let page = self.store.list(prefix, cursor.as_deref(), 1000).await?;
            out.extend(page.keys);
            match page.cursor {
                Some(next) => cursor = Some(next),
                None => return Ok(out),
            }
        }
    }

    /// Every namespace of the organization, the organization first.
    pub(crate) async fn all_namespaces(&self, org: &Organization) -> Result<Vec<NamespaceView>> {
        let mut out = vec![NamespaceView {
            id: org.id.clone(),
            kind: NamespaceKind::Organization,
            name: org.name.clone(),
            parent: None,
        }];
        for entry in self.list_all(&schema::org_namespaces(&org.id)).await? {
            if let Some(ns) =
                get_json::<S, Namespace>(&self.store, &schema::namespace(schema::id_of(&entry)))
                    .await?
            {
                out.push(view(&ns));
            }
        }
        Ok(out)
    }

    /// Whether the caller holds `permission` on the whole of `namespace` (a grant limited to
    /// some resources does not manage the namespace), with a key's effective rights when it
    /// authenticated with a key (which acts inside its own namespace only).
    pub(super) async fn holds(
        &self,
        caller: &Caller,
        namespace: &str,
        permission: &str,
    ) -> Result<bool> {
        let user_rights = self.rights_in(&caller.user, &caller.org, namespace).await?;
        match &caller.via {
            Via::Session { .. } => Ok(user_rights.allows_everywhere(permission)),
            Via::Key(key) if key.namespace == namespace => {
                Ok(rules::effective(&key.access, &user_rights).allows_everywhere(permission))
            }
            Via::Key(_) => Ok(false),
        }
    }

    /// May the caller manage (`write`) or see (`read`) namespace `ns` of kind workspace/usergroup?
    pub(super) async fn may(&self, caller: &Caller, ns: &Namespace, action: &str) -> Result<bool> {
        let family = match ns.kind {
            NamespaceKind::Workspace => "workspaces",
            NamespaceKind::Usergroup => "usergroups",
            _ => {
                return Ok(
                    caller.user.has(Role::Admin) && matches!(caller.via, Via::Session { .. })
                );
            }
        };
        let permission = format!("{family}.{action}");
        if let Some(parent) = &ns.parent
            && self.holds(caller, parent, &permission).await?
        {
            return Ok(true);
        }
        if action == "read" && self.holds(caller, &ns.id, &permission).await? {
            return Ok(true);
        }
        // A key sees its own namespace whatever its permissions (SPEC §4.3).
        Ok(matches!(&caller.via, Via::Key(k) if action == "read" && k.namespace == ns.id))
    }

    /// Refuses a change of `ns` the caller may not make: 403 when it may at least see `ns`,
    /// 404 when it may not even know it exists.
    pub(super) async fn require_write(&self, caller: &Caller, ns: &Namespace) -> Result<()> {
        if self.may(caller, ns, "write").await? {
            Ok(())
        } else if self.may(caller, ns, "read").await? {
            Err(Error::Forbidden("this needs the write permission"))
        } else {
            Err(Error::NotFound("namespace"))
        }
    }
}

//! Namespaces (applications, workspaces, user groups), user-group membership, the permission
//! catalogue and grants — and from them, what a user holds in a namespace (SPEC §1, §4.3).
//!
//! Namespaces are not hierarchical for access: a grant in an application says nothing about
//! its workspaces. The one exception is how workspaces and application user groups are
//! *managed*: `workspaces.write` / `usergroups.write` in an application manages the
//! workspaces / user groups inside it.

use std::sync::Arc;

use serde_json::json;

use super::events::record;
use super::{Caller, Keygate, Via, found, page_by_id, page_limit};
use crate::api::{
    GrantQuery, GrantRequest, NamespaceKind, NamespaceRequest, NamespaceView, Page, PageQuery,
    PermissionRequest, PermissionView,
};
use crate::domain::{
    Grant, KeyRecord, Namespace, Organization, PermissionDef, Role, Timestamp, User,
};
use crate::error::{Error, Result};
use crate::id::{Kind, new_id};
use crate::rules::{self, BUILTIN_PERMISSIONS, Rights};
use crate::store::{Batch, Store, get_json, get_shared, schema};

fn view(ns: &Namespace) -> NamespaceView {
    NamespaceView {
        id: ns.id.clone(),
        kind: ns.kind,
        name: ns.name.clone(),
        parent: ns.parent.clone(),
    }
}

/// A namespace's name as stored: trimmed, 1 to 100 characters, no control characters. The
/// console applies it too before renaming.
pub fn namespace_name(raw: &str) -> Result<String> {
    let name = raw.trim();
    if name.is_empty() || name.chars().count() > 100 || name.chars().any(char::is_control) {
        return Err(Error::invalid("name", "a name of 1 to 100 characters"));
    }
    Ok(name.to_owned())
}

/// Whether `name` is a well-formed permission: lower-case dotted words, like `datasets.read`.
pub fn valid_permission(name: &str) -> bool {
    let words: Vec<&str> = name.split('.').collect();
    name.len() <= 100
        && words.len() >= 2
        && words.iter().all(|w| {
            w.chars().next().is_some_and(|c| c.is_ascii_lowercase())
                && w.chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-')
        })
}

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
    async fn holds(&self, caller: &Caller, namespace: &str, permission: &str) -> Result<bool> {
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
    async fn may(&self, caller: &Caller, ns: &Namespace, action: &str) -> Result<bool> {
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
    async fn require_write(&self, caller: &Caller, ns: &Namespace) -> Result<()> {
        if self.may(caller, ns, "write").await? {
            Ok(())
        } else if self.may(caller, ns, "read").await? {
            Err(Error::Forbidden("this needs the write permission"))
        } else {
            Err(Error::NotFound("namespace"))
        }
    }

    async fn get_ns(&self, caller: &Caller, id: &str, kind: NamespaceKind) -> Result<Namespace> {
        match self.namespace_in(&caller.org, id).await {
            Ok(Some(ns)) if ns.kind == kind => Ok(Arc::unwrap_or_clone(ns)),
            Err(Error::Store(e)) => Err(Error::Store(e)),
            _ => Err(Error::NotFound("namespace")),
        }
    }

    /// `GET /v1/apps`, `/v1/workspaces`, `/v1/usergroups`: what the caller may see; a key
    /// sees only its own namespace (or its application).
    pub async fn list_namespaces(
        &self,
        caller: &Caller,
        kind: NamespaceKind,
        query: PageQuery,
    ) -> Result<Page<NamespaceView>> {
        let limit = page_limit(query.limit)? as usize;
        let mut items = Vec::new();
        for ns in self.all_namespaces(&caller.org).await? {
            if ns.kind != kind || query.cursor.as_deref().is_some_and(|c| ns.id.as_str() <= c) {
                continue;
            }
            let visible = match (&caller.via, kind) {
                (Via::Session { .. }, _) if caller.user.has(Role::Admin) => true,
                (_, NamespaceKind::Application) => match &caller.via {
                    Via::Key(key) => {
                        key.namespace == ns.id
                            || self
                                .parent_app(&caller.org, &key.namespace)
                                .await?
                                .as_deref()
                                == Some(ns.id.as_str())
                    }
                    Via::Session { .. } => !self
                        .rights_in(&caller.user, &caller.org, &ns.id)
                        .await?
                        .is_empty(),
                },
                _ => {
                    let record = self.get_ns(caller, &ns.id, kind).await?;
                    self.may(caller, &record, "read").await?
                }
            };
            if visible {
                items.push(ns);
            }
        }
        Ok(page_by_id(items, limit, |i| i.id.as_str()))
    }

    async fn parent_app(&self, org: &Organization, namespace: &str) -> Result<Option<String>> {
        // Absent or another organization's: no application. A failing store stays an error.
        Ok(found(self.namespace_in(org, namespace).await)?
            .flatten()
            .and_then(|ns| match ns.kind {
                NamespaceKind::Application => Some(ns.id.clone()),
                _ => ns
                    .parent
                    .clone()
                    .filter(|p| p.starts_with(Kind::Application.prefix())),
            }))
    }

    /// `POST /v1/apps` (admins), `/v1/workspaces` and `/v1/usergroups` (with `….write` in the parent).
    pub async fn create_namespace(
        &self,
        caller: &Caller,
        kind: NamespaceKind,
        req: NamespaceRequest,
        now: Timestamp,
    ) -> Result<NamespaceView> {
        let name = namespace_name(&req.name)?;
        let (parent, id_kind) = match kind {
            NamespaceKind::Application => {
                caller.require_admin()?;
                (None, Kind::Application)
            }
            NamespaceKind::Workspace => {
                let app = req.app.ok_or_else(|| {
                    Error::invalid("app", "a workspace belongs to an application")
                })?;
                (Some(app), Kind::Workspace)
            }
            NamespaceKind::Usergroup => {
                let parent = req.parent.ok_or_else(|| {
                    Error::invalid("parent", "the organization or an application")
                })?;
                (Some(parent), Kind::UserGroup)
            }
            NamespaceKind::Organization => {
                return Err(Error::invalid("kind", "use POST /v1/organizations"));
            }
        };
        let ns = Namespace {
            id: new_id(id_kind)?,
            org: caller.org.id.clone(),
            kind,
            name,
            parent,
            created_at: now,
        };
        if let Some(parent) = &ns.parent {
            let parent_ns = self.namespace_in(&caller.org, parent).await?;
            let parent_ok = matches!(
                (kind, parent_ns.as_ref().map(|p| p.kind)),
                (NamespaceKind::Workspace, Some(NamespaceKind::Application))
                    | (
                        NamespaceKind::Usergroup,
                        None | Some(NamespaceKind::Application)
                    )
            );
            if !parent_ok {
                return Err(Error::invalid(
                    "parent",
                    "a workspace's parent is an application; a user group's the organization or an application",
                ));
            }
            if !self.may(caller, &ns, "write").await? {
                return Err(Error::Forbidden(
                    "this needs the write permission for these namespaces in the parent",
                ));
            }
        }
        let mut batch = Batch::default();
        batch.put(schema::namespace(&ns.id), &ns)?;
        batch.mark(format!("{}{}", schema::org_namespaces(&ns.org), ns.id));
        record(
            &mut batch,
            &ns.org,
            caller.actor(),
            "namespace.created",
            Some(&ns.id),
            json!({"name": ns.name, "parent": ns.parent}),
            now,
        )?;
        self.store.commit(batch).await?;
        Ok(view(&ns))
    }

    /// `GET /v1/workspaces/{id}`, `/v1/usergroups/{id}`.
    pub async fn get_namespace(
        &self,
        caller: &Caller,
        kind: NamespaceKind,
        id: &str,
    ) -> Result<NamespaceView> {
        let ns = self.get_ns(caller, id, kind).await?;
        if !self.may(caller, &ns, "read").await? {
            return Err(Error::NotFound("namespace"));
        }
        Ok(view(&ns))
    }

    /// `PATCH /v1/workspaces/{id}`, `/v1/usergroups/{id}`: renames.
    pub async fn rename_namespace(
        &self,
        caller: &Caller,
        kind: NamespaceKind,
        id: &str,
        name: &str,
        now: Timestamp,
    ) -> Result<NamespaceView> {
        let mut ns = self.get_ns(caller, id, kind).await?;
        self.require_write(caller, &ns).await?;
        ns.name = namespace_name(name)?;
        let mut batch = Batch::default();
        batch.put(schema::namespace(&ns.id), &ns)?;
        record(
            &mut batch,
            &ns.org,
            caller.actor(),
            "namespace.updated",
            Some(&ns.id),
            json!({"name": ns.name}),
            now,
        )?;
        self.store.commit(batch).await?;
        Ok(view(&ns))
    }

    /// `DELETE /v1/workspaces/{id}`, `/v1/usergroups/{id}`, with the grants in or of it.
    pub async fn delete_namespace(
        &self,
        caller: &Caller,
        kind: NamespaceKind,
        id: &str,
        now: Timestamp,
    ) -> Result<()> {
        let ns = self.get_ns(caller, id, kind).await?;
        self.require_write(caller, &ns).await?;
        let mut batch = Batch::default();
        batch.delete(schema::namespace(&ns.id));
        batch.delete(format!("{}{}", schema::org_namespaces(&ns.org), ns.id));
        for entry in self.list_all(&schema::org_grants(&ns.org)).await? {
            if let Some(g) =
                get_json::<S, Grant>(&self.store, &schema::grant(schema::id_of(&entry))).await?
                && (g.namespace == ns.id || g.principal == ns.id)
            {
                delete_grant_into(&mut batch, &ns.org, &g);
            }
        }
        for entry in self.list_all(&schema::group_members(&ns.id)).await? {
            let user = schema::id_of(&entry).to_owned();
            batch.delete(entry);
            batch.delete(format!("{}{}", schema::user_groups(&user), ns.id));
        }
        record(
            &mut batch,
            &ns.org,
            caller.actor(),
            "namespace.deleted",
            Some(&ns.id),
            json!({"name": ns.name}),
            now,
        )?;
        self.store.commit(batch).await?;
        Ok(())
    }

    /// `POST /v1/usergroups/{id}/members` and `DELETE …/members/{user}` (admins only).
    pub async fn set_group_member(
        &self,
        caller: &Caller,
        group: &str,
        user: &str,
        member: bool,
        now: Timestamp,
    ) -> Result<()> {
        let ns = self.get_ns(caller, group, NamespaceKind::Usergroup).await?;
        if !self.may(caller, &ns, "read").await? {
            return Err(Error::NotFound("namespace"));
        }
        // A group's members hold its grants: joining one is a grant of rights, which only an
        // admin gives (SPEC §1). `usergroups.write` manages groups, never their membership,
        // and a key never changes it (§4.2).
        let admin = caller.user.has(Role::Admin) && matches!(caller.via, Via::Session { .. });
        if !admin {
            return Err(Error::Forbidden(
                "only an admin adds or removes a user group's members",
            ));
        }
        let target = get_json::<S, User>(&self.store, &schema::user(user)).await?;
        if target.is_none_or(|u| u.org != caller.org.id) {
            return Err(Error::NotFound("user"));
        }
        let mut batch = Batch::default();
        let (a, b) = (
            format!("{}{user}", schema::group_members(group)),
            format!("{}{group}", schema::user_groups(user)),
        );
        if member {
            batch.mark(a).mark(b);
        } else {
            batch.delete(a).delete(b);
        }
        let kind = if member {
            "usergroup.member_added"
        } else {
            "usergroup.member_removed"
        };
        record(
            &mut batch,
            &caller.org.id,
            caller.actor(),
            kind,
            Some(group),
            json!({"user": user}),
            now,
        )?;
        self.store.commit(batch).await?;
        Ok(())
    }

    /// `GET /v1/permissions`: the catalogue.
    pub async fn permissions(&self, caller: &Caller) -> Result<Page<PermissionView>> {
        let builtin = BUILTIN_PERMISSIONS.iter().map(|p| PermissionView {
            name: (*p).into(),
            description: None,
            builtin: true,
        });
        let custom = caller.org.permissions.iter().map(|p| PermissionView {
            name: p.name.clone(),
            description: p.description.clone(),
            builtin: false,
        });
        Ok(Page {
            items: builtin.chain(custom).collect(),
            next_cursor: None,
        })
    }

    /// `POST /v1/permissions` (admins): adds to the catalogue.
    pub async fn define_permission(
        &self,
        caller: &Caller,
        req: PermissionRequest,
        now: Timestamp,
    ) -> Result<PermissionView> {
        caller.require_admin()?;
        if !valid_permission(&req.name) {
            return Err(Error::invalid(
                "name",
                "lower-case dotted words, like datasets.read",
            ));
        }
        if caller.org.catalogue().any(|p| p == req.name) {
            return Err(Error::Conflict(
                "this permission is already in the catalogue",
            ));
        }
        let description = rules::description(req.description)?;
        let mut org = caller.org.clone();
        org.permissions.push(PermissionDef {
            name: req.name.clone(),
            description: description.clone(),
        });
        let mut batch = Batch::default();
        batch.put(schema::org(&org.id), &org)?;
        record(
            &mut batch,
            &org.id,
            caller.actor(),
            "permission.defined",
            None,
            json!({"name": req.name}),
            now,
        )?;
        self.store.commit(batch).await?;
        Ok(PermissionView {
            name: req.name,
            description,
            builtin: false,
        })
    }

    /// `GET /v1/grants?principal=&namespace=` (admins).
    pub async fn grants(&self, caller: &Caller, query: GrantQuery) -> Result<Page<Grant>> {
        caller.require_admin()?;
        let limit = page_limit(query.limit)? as usize;
        let prefix = match &query.principal {
            Some(p) => schema::principal_grants(p),
            None => schema::org_grants(&caller.org.id),
        };
        let mut items = Vec::new();
        for entry in self.list_all(&prefix).await? {
            let id = schema::id_of(&entry);
            if query.cursor.as_deref().is_some_and(|c| id <= c) {
                continue;
            }
            if let Some(g) = get_json::<S, Grant>(&self.store, &schema::grant(id)).await?
                && found(self.namespace_in(&caller.org, &g.namespace).await)?.is_some()
                && query.namespace.as_deref().is_none_or(|n| g.namespace == n)
            {
                items.push(g);
            }
        }
        Ok(page_by_id(items, limit, |i| i.id.as_str()))
    }

    /// `POST /v1/grants` (admins).
    pub async fn create_grant(
        &self,
        caller: &Caller,
        req: GrantRequest,
        now: Timestamp,
    ) -> Result<Grant> {
        caller.require_admin()?;
        self.namespace_in(&caller.org, &req.namespace).await?;
        let mut key = None;
        let principal_ok = if Kind::User.matches(&req.principal) {
            get_json::<S, User>(&self.store, &schema::user(&req.principal))
                .await?
                .is_some_and(|u| u.org == caller.org.id)
        } else if Kind::UserGroup.matches(&req.principal) {
            matches!(
                found(self.namespace_in(&caller.org, &req.principal).await)?,
                Some(Some(_))
            )
        } else if Kind::Key.matches(&req.principal) {
            key = get_json::<S, KeyRecord>(&self.store, &schema::key(&req.principal))
                .await?
                .filter(|k| k.org == caller.org.id);
            key.is_some()
        } else {
            false
        };
        if !principal_ok {
            return Err(Error::NotFound("principal"));
        }
        if !caller.org.catalogue().any(|p| p == req.permission) {
            return Err(Error::invalid(
                "permission",
                "not in the organization's catalogue",
            ));
        }
        if let Some(ids) = &req.resources {
            rules::check_resource_ids("resources", ids)?;
        }
        let grant = Grant {
            id: new_id(Kind::Grant)?,
            principal: req.principal,
            namespace: req.namespace,
            permission: req.permission,
            resources: req.resources,
        };
        let mut batch = Batch::default();
        batch.put(schema::grant(&grant.id), &grant)?;
        if let Some(mut key) = key {
            key.grants.insert(grant.id.clone());
            batch.put(schema::key(&key.id), &key)?;
        }
        batch.mark(format!(
            "{}{}",
            schema::principal_grants(&grant.principal),
            grant.id
        ));
        batch.mark(format!(
            "{}{}",
            schema::org_grants(&caller.org.id),
            grant.id
        ));
        record(
            &mut batch,
            &caller.org.id,
            caller.actor(),
            "grant.changed",
            Some(&grant.id),
            json!({"added": grant}),
            now,
        )?;
        self.store.commit(batch).await?;
        Ok(grant)
    }

    /// `DELETE /v1/grants/{id}` (admins).
    pub async fn delete_grant(&self, caller: &Caller, id: &str, now: Timestamp) -> Result<()> {
        caller.require_admin()?;
        let grant = get_json::<S, Grant>(&self.store, &schema::grant(id))
            .await?
            .ok_or(Error::NotFound("grant"))?;
        if self
            .store
            .get(&format!(
                "{}{}",
                schema::org_grants(&caller.org.id),
                grant.id
            ))
            .await?
            .is_none()
        {
            return Err(Error::NotFound("grant"));
        }
        let mut batch = Batch::default();
        delete_grant_into(&mut batch, &caller.org.id, &grant);
        let key = if Kind::Key.matches(&grant.principal) {
            get_json::<S, KeyRecord>(&self.store, &schema::key(&grant.principal)).await?
        } else {
            None
        };
        if let Some(mut key) = key {
            key.grants.remove(&grant.id);
            batch.put(schema::key(&key.id), &key)?;
        }
        record(
            &mut batch,
            &caller.org.id,
            caller.actor(),
            "grant.changed",
            Some(&grant.id),
            json!({"removed": grant}),
            now,
        )?;
        self.store.commit(batch).await?;
        Ok(())
    }
}

/// Adds the deletion of `grant` and its index entries to `batch`.
pub(crate) fn delete_grant_into(batch: &mut Batch, org: &str, grant: &Grant) {
    batch.delete(schema::grant(&grant.id));
    batch.delete(format!(
        "{}{}",
        schema::principal_grants(&grant.principal),
        grant.id
    ));
    batch.delete(format!("{}{}", schema::org_grants(org), grant.id));
}

#[cfg(test)]
mod tests {
    use super::valid_permission;

    #[test]
    fn permission_names_are_dotted_lower_case_words() {
        for ok in ["datasets.read", "a.b.c", "data-sets.re_ad2"] {
            assert!(valid_permission(ok), "{ok}");
        }
        for bad in [
            "datasets",
            "Datasets.read",
            "a..b",
            ".a",
            "a.",
            "a b.c",
            "1a.b",
        ] {
            assert!(!valid_permission(bad), "{bad}");
        }
    }
}

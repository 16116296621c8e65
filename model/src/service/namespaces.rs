//! Namespaces (applications, workspaces, user groups) and user-group membership (SPEC §1).

use std::sync::Arc;

use serde_json::json;

use super::catalogue::delete_grant_into;
use super::events::record;
use super::{Caller, Keygate, Via, found, page_by_id, page_limit};
use crate::api::{NamespaceKind, NamespaceRequest, NamespaceView, Page, PageQuery};
use crate::domain::{Grant, Namespace, Organization, Role, Timestamp, User};
use crate::error::{Error, Result};
use crate::id::{Kind, new_id};
use crate::rules::namespace_name;
use crate::store::{Batch, Store, get_json, schema};

pub(super) fn view(ns: &Namespace) -> NamespaceView {
    NamespaceView {
        id: ns.id.clone(),
        kind: ns.kind,
        name: ns.name.clone(),
        parent: ns.parent.clone(),
    }
}

impl<S: Store> Keygate<S> {
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
}

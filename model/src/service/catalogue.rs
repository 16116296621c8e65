//! The permission catalogue and grants (SPEC §1).

use serde_json::json;

use super::events::record;
use super::{Caller, Keygate, found, page_by_id, page_limit};
use crate::api::{GrantQuery, GrantRequest, GrantView, Page, PermissionRequest, PermissionView};
use crate::domain::{Grant, KeyRecord, PermissionDef, Timestamp, User};
use crate::error::{Error, Result};
use crate::id::{Kind, new_id};
use crate::rules::valid_permission;
use crate::rules::{self, BUILTIN_PERMISSIONS};
use crate::store::{Batch, Store, get_json, schema};

impl<S: Store> Keygate<S> {
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
    pub async fn grants(&self, caller: &Caller, query: GrantQuery) -> Result<Page<GrantView>> {
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
        Ok(page_by_id(items, limit, |i| i.id.as_str()).map(|g| GrantView::from(&g)))
    }

    /// `POST /v1/grants` (admins).
    pub async fn create_grant(
        &self,
        caller: &Caller,
        req: GrantRequest,
        now: Timestamp,
    ) -> Result<GrantView> {
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
        Ok(GrantView::from(&grant))
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

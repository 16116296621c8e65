//! Resources (SPEC §1, seed 003): objects in a namespace, owned by a user or by the key that
//! created them. Reading needs `resources.read` on the resource, changing it
//! `resources.write`; an owner keeps both on what it owns.

use serde_json::json;

use super::events::record;
use super::{Caller, Keygate, Via, found, page_by_id, page_limit};
use crate::api::{Page, ResourcePatch, ResourceQuery, ResourceRequest, ResourceView};
use crate::domain::{Owner, OwnerKind, Resource, Timestamp};
use crate::error::{Error, Result};
use crate::id::{Kind, new_id};
use crate::rules::Rights;
use crate::store::{Batch, Store, get_json, schema};

fn text(field: &'static str, raw: &str) -> Result<String> {
    let value = raw.trim();
    if value.is_empty() || value.chars().count() > 100 || value.chars().any(char::is_control) {
        return Err(Error::invalid(field, "1 to 100 characters"));
    }
    Ok(value.to_owned())
}

impl Caller {
    fn owner(&self) -> Owner {
        match &self.via {
            Via::Session { .. } => Owner {
                kind: OwnerKind::User,
                id: self.user.id.clone(),
            },
            Via::Key(key) => Owner {
                kind: OwnerKind::Key,
                id: key.id.clone(),
            },
        }
    }
}

impl<S: Store> Keygate<S> {
    /// The caller's rights in `namespace`: a key's effective rights inside its own namespace
    /// (nothing elsewhere), a user's own otherwise.
    async fn caller_rights(&self, caller: &Caller, namespace: &str) -> Result<Rights> {
        match &caller.via {
            Via::Session { .. } => self.rights_in(&caller.user, &caller.org, namespace).await,
            Via::Key(key) if key.namespace == namespace => {
                self.effective_rights(key, &caller.user, &caller.org).await
            }
            Via::Key(_) => {
                self.namespace_in(&caller.org, namespace).await?;
                Ok(Rights::default())
            }
        }
    }

    async fn may_resource(
        &self,
        caller: &Caller,
        resource: &Resource,
        permission: &str,
    ) -> Result<bool> {
        if resource.owner == caller.owner() {
            return Ok(true);
        }
        Ok(self
            .caller_rights(caller, &resource.namespace)
            .await?
            .allows(permission, Some(&resource.id)))
    }

    /// A resource of the caller's organization that the caller may read.
    async fn readable(&self, caller: &Caller, id: &str) -> Result<Resource> {
        let resource = get_json::<S, Resource>(&self.store, &schema::resource(id))
            .await?
            .ok_or(Error::NotFound("resource"))?;
        if found(self.namespace_in(&caller.org, &resource.namespace).await)?.is_none()
            || !self
                .may_resource(caller, &resource, "resources.read")
                .await?
        {
            return Err(Error::NotFound("resource"));
        }
        Ok(resource)
    }

    /// `POST /v1/resources`: owned by the caller — the user, or the key it authenticates with.
    pub async fn create_resource(
        &self,
        caller: &Caller,
        req: ResourceRequest,
        now: Timestamp,
    ) -> Result<ResourceView> {
        let rights = self.caller_rights(caller, &req.namespace).await?;
        if !rights.allows_everywhere("resources.write") {
            return Err(Error::Forbidden(
                "creating resources needs resources.write on the whole namespace",
            ));
        }
        let resource = Resource {
            id: new_id(Kind::Resource)?,
            namespace: req.namespace,
            kind: text("kind", &req.kind)?,
            name: text("name", &req.name)?,
            owner: caller.owner(),
        };
        let mut batch = Batch::default();
        put_resource(&mut batch, &resource)?;
        record(
            &mut batch,
            &caller.org.id,
            caller.actor(),
            "resource.created",
            Some(&resource.id),
            json!({"namespace": resource.namespace, "owner": resource.owner}),
            now,
        )?;
        self.store.commit(batch).await?;
        Ok(ResourceView::from(&resource))
    }

    /// `GET /v1/resources?namespace=`: the resources the caller may read.
    pub async fn resources(
        &self,
        caller: &Caller,
        query: ResourceQuery,
    ) -> Result<Page<ResourceView>> {
        let limit = page_limit(query.limit)? as usize;
        let namespace = query.namespace.clone().or_else(|| match &caller.via {
            Via::Key(key) => Some(key.namespace.clone()),
            Via::Session { .. } => None,
        });
        let namespace =
            namespace.ok_or_else(|| Error::invalid("namespace", "name the namespace to list"))?;
        let rights = self.caller_rights(caller, &namespace).await?;
        let owner = caller.owner();
        let mut items = Vec::new();
        for entry in self
            .list_all(&schema::namespace_resources(&namespace))
            .await?
        {
            let id = schema::id_of(&entry);
            if query.cursor.as_deref().is_some_and(|c| id <= c) {
                continue;
            }
            if let Some(r) = get_json::<S, Resource>(&self.store, &schema::resource(id)).await?
                && (r.owner == owner || rights.allows("resources.read", Some(&r.id)))
            {
                items.push(r);
            }
        }
        Ok(page_by_id(items, limit, |i| i.id.as_str()).map(|r| ResourceView::from(&r)))
    }

    /// `GET /v1/resources/{id}`.
    pub async fn get_resource(&self, caller: &Caller, id: &str) -> Result<ResourceView> {
        Ok(ResourceView::from(&self.readable(caller, id).await?))
    }

    /// `PATCH /v1/resources/{id}`: renames.
    pub async fn rename_resource(
        &self,
        caller: &Caller,
        id: &str,
        req: ResourcePatch,
        now: Timestamp,
    ) -> Result<ResourceView> {
        let mut resource = self.readable(caller, id).await?;
        if !self
            .may_resource(caller, &resource, "resources.write")
            .await?
        {
            return Err(Error::Forbidden(
                "changing a resource needs resources.write on it",
            ));
        }
        resource.name = text("name", &req.name)?;
        let mut batch = Batch::default();
        batch.put(schema::resource(&resource.id), &resource)?;
        record(
            &mut batch,
            &caller.org.id,
            caller.actor(),
            "resource.updated",
            Some(&resource.id),
            json!({"name": resource.name}),
            now,
        )?;
        self.store.commit(batch).await?;
        Ok(ResourceView::from(&resource))
    }

    /// `DELETE /v1/resources/{id}`.
    pub async fn delete_resource(&self, caller: &Caller, id: &str, now: Timestamp) -> Result<()> {
        let resource = self.readable(caller, id).await?;
        if !self
            .may_resource(caller, &resource, "resources.write")
            .await?
        {
            return Err(Error::Forbidden(
                "deleting a resource needs resources.write on it",
            ));
        }
        let mut batch = Batch::default();
        delete_resource_into(&mut batch, &resource);
        record(
            &mut batch,
            &caller.org.id,
            caller.actor(),
            "resource.deleted",
            Some(&resource.id),
            json!({}),
            now,
        )?;
        self.store.commit(batch).await?;
        Ok(())
    }

    /// The resources `owner` (a user or key id) owns.
    pub(crate) async fn owned_by(&self, owner: &str) -> Result<Vec<Resource>> {
        let mut out = Vec::new();
        for entry in self.list_all(&schema::owned_resources(owner)).await? {
            if let Some(r) =
                get_json::<S, Resource>(&self.store, &schema::resource(schema::id_of(&entry)))
                    .await?
            {
                out.push(r);
            }
        }
        Ok(out)
    }
}

/// Adds `resource` and its index entries to `batch`.
pub(crate) fn put_resource(batch: &mut Batch, resource: &Resource) -> Result<()> {
    batch.put(schema::resource(&resource.id), resource)?;
    batch.mark(format!(
        "{}{}",
        schema::namespace_resources(&resource.namespace),
        resource.id
    ));
    batch.mark(format!(
        "{}{}",
        schema::owned_resources(&resource.owner.id),
        resource.id
    ));
    Ok(())
}

/// Adds the deletion of `resource` and its index entries to `batch`.
pub(crate) fn delete_resource_into(batch: &mut Batch, resource: &Resource) {
    batch.delete(schema::resource(&resource.id));
    batch.delete(format!(
        "{}{}",
        schema::namespace_resources(&resource.namespace),
        resource.id
    ));
    batch.delete(format!(
        "{}{}",
        schema::owned_resources(&resource.owner.id),
        resource.id
    ));
}

//! Organizations, invitations and members (SPEC §1, §7): people join by a one-time invitation
//! from an admin; admins assign roles and remove members.

use std::collections::BTreeSet;

use serde_json::json;

use super::events::record;
use super::{Caller, Keygate, normalize_email, page_limit, token_hash, user_view};
use crate::api::{
    AcceptRequest, AcceptResponse, CreateOrganizationRequest, CreatedOrganization,
    InvitationResponse, InviteRequest, OrganizationView, Page, PageQuery, RolesPatch, UserView,
};
use crate::domain::{Invitation, Organization, PasswordHash, Role, Settings, Timestamp, User};
use crate::error::{Error, Result};
use crate::id::{Kind, new_id};
use crate::key::random_base62;
use crate::password;
use crate::store::{Batch, Store, get_json, schema};

/// Prefix of invitation tokens.
pub const INVITATION_PREFIX: &str = "kgi_";
/// How long an invitation can be accepted.
pub const INVITATION_TTL: time::Duration = time::Duration::days(7);
/// Shortest password accepted (NIST SP 800-63B's minimum).
pub const MIN_PASSWORD_CHARS: usize = 8;

fn display_name(raw: &str) -> Result<String> {
    let name = raw.trim();
    if name.is_empty() || name.chars().count() > 100 || name.chars().any(char::is_control) {
        return Err(Error::invalid("name", "a name of 1 to 100 characters"));
    }
    Ok(name.to_owned())
}

impl<S: Store> Keygate<S> {
    async fn invite_into(
        &self,
        batch: &mut Batch,
        org: &str,
        email: &str,
        roles: BTreeSet<Role>,
        now: Timestamp,
    ) -> Result<String> {
        if self.store.get(&schema::email(email)).await?.is_some() {
            return Err(Error::Conflict("a member with this email already exists"));
        }
        let token = format!("{INVITATION_PREFIX}{}", random_base62(43)?);
        let invitation = Invitation {
            org: org.to_owned(),
            email: email.to_owned(),
            roles,
            expires_at: now + INVITATION_TTL,
        };
        batch.put(schema::invitation(&token_hash(&token)), &invitation)?;
        Ok(token)
    }

    /// `POST /v1/invitations` (admins): a one-time token for `email` to join with `roles`.
    pub async fn invite(
        &self,
        caller: &Caller,
        req: InviteRequest,
        now: Timestamp,
    ) -> Result<InvitationResponse> {
        caller.require_admin()?;
        let email = normalize_email(&req.email)?;
        let roles: BTreeSet<Role> = req.roles.into_iter().collect();
        let mut batch = Batch::default();
        let token = self
            .invite_into(&mut batch, &caller.org.id, &email, roles.clone(), now)
            .await?;
        record(
            &mut batch,
            &caller.org.id,
            caller.actor(),
            "member.invited",
            None,
            json!({"email": email, "roles": roles}),
            now,
        )?;
        self.store.commit(batch).await?;
        Ok(InvitationResponse {
            invitation_token: token,
        })
    }

    /// `POST /v1/invitations/{token}/accept`: sets the name and password; the token is spent.
    pub async fn accept(
        &self,
        token: &str,
        req: AcceptRequest,
        now: Timestamp,
    ) -> Result<AcceptResponse> {
        let key = schema::invitation(&token_hash(token));
        let invitation: Invitation = get_json(&self.store, &key)
            .await?
            .ok_or(Error::NotFound("invitation"))?;
        if invitation.expires_at <= now {
            return Err(Error::NotFound("invitation"));
        }
        let name = display_name(&req.name)?;
        let chars = req.password.chars().count();
        if !(MIN_PASSWORD_CHARS..=1024).contains(&chars) {
            return Err(Error::invalid(
                "password",
                format!("at least {MIN_PASSWORD_CHARS} characters"),
            ));
        }
        if self
            .store
            .get(&schema::email(&invitation.email))
            .await?
            .is_some()
        {
            return Err(Error::Conflict("a member with this email already exists"));
        }
        let user = User {
            id: new_id(Kind::User)?,
            org: invitation.org.clone(),
            email: invitation.email.clone(),
            name,
            roles: invitation.roles.clone(),
            password_hash: PasswordHash(password::hash(&req.password)?),
            created_at: now,
        };
        let mut batch = Batch::default();
        batch.put(schema::user(&user.id), &user)?;
        batch.put(schema::email(&user.email), &user.id)?;
        batch.mark(schema::org_user(&user.org, &user.id));
        batch.delete(key);
        let actor = crate::api::Actor {
            kind: "user".into(),
            id: user.id.clone(),
        };
        record(
            &mut batch,
            &user.org,
            actor,
            "member.joined",
            Some(&user.id),
            json!({"email": user.email}),
            now,
        )?;
        self.store.commit(batch).await?;
        Ok(AcceptResponse {
            user: user_view(&user),
        })
    }

    /// `GET /v1/members`: the organization's members (any signed-in member may list them, to
    /// pick who receives a deleted key's resources).
    pub async fn members(&self, caller: &Caller, query: PageQuery) -> Result<Page<UserView>> {
        caller.require_user("an API key cannot list members")?;
        let limit = page_limit(query.limit)?;
        let page = self
            .store
            .list(
                &schema::org_users(&caller.org.id),
                query.cursor.as_deref(),
                limit as usize,
            )
            .await?;
        let mut items = Vec::with_capacity(page.keys.len());
        for entry in &page.keys {
            if let Some(user) =
                get_json::<S, User>(&self.store, &schema::user(schema::id_of(entry))).await?
            {
                items.push(user_view(&user));
            }
        }
        Ok(Page {
            items,
            next_cursor: page.cursor,
        })
    }

    async fn member_of(&self, caller: &Caller, id: &str) -> Result<User> {
        let user = get_json::<S, User>(&self.store, &schema::user(id))
            .await?
            .ok_or(Error::NotFound("member"))?;
        if user.org != caller.org.id {
            return Err(Error::NotFound("member"));
        }
        Ok(user)
    }

    async fn admin_count(&self, org: &str) -> Result<usize> {
        let mut count = 0;
        let mut cursor = None;
        loop {
            let page = self
                .store
                .list(&schema::org_users(org), cursor.as_deref(), 1000)
                .await?;
            for entry in &page.keys {
                let user =
                    get_json::<S, User>(&self.store, &schema::user(schema::id_of(entry))).await?;
                count += usize::from(user.is_some_and(|u| u.has(Role::Admin)));
            }
            match page.cursor {
                Some(next) => cursor = Some(next),
                None => return Ok(count),
            }
        }
    }

    /// `PATCH /v1/members/{id}` (admins): sets the roles. The last admin keeps its role.
    pub async fn set_roles(
        &self,
        caller: &Caller,
        id: &str,
        req: RolesPatch,
        now: Timestamp,
    ) -> Result<UserView> {
        caller.require_admin()?;
        let mut user = self.member_of(caller, id).await?;
        let roles: BTreeSet<Role> = req.roles.into_iter().collect();
        if user.has(Role::Admin)
            && !roles.contains(&Role::Admin)
            && self.admin_count(&user.org).await? <= 1
        {
            return Err(Error::Conflict("an organization keeps at least one admin"));
        }
        let before = user.roles.clone();
        user.roles = roles;
        let mut batch = Batch::default();
        batch.put(schema::user(&user.id), &user)?;
        let details = json!({"from": before, "to": user.roles});
        record(
            &mut batch,
            &user.org,
            caller.actor(),
            "member.roles_changed",
            Some(&user.id),
            details,
            now,
        )?;
        self.store.commit(batch).await?;
        Ok(user_view(&user))
    }

    /// `DELETE /v1/members/{id}` (admins): the member leaves; its sessions and keys stop working
    /// at once, since both are checked against membership on every use.
    pub async fn remove_member(&self, caller: &Caller, id: &str, now: Timestamp) -> Result<()> {
        caller.require_admin()?;
        let user = self.member_of(caller, id).await?;
        if user.id == caller.user.id {
            return Err(Error::Conflict("an admin cannot remove itself"));
        }
        let mut batch = Batch::default();
        batch.delete(schema::user(&user.id));
        batch.delete(schema::email(&user.email));
        batch.delete(schema::org_user(&user.org, &user.id));
        record(
            &mut batch,
            &user.org,
            caller.actor(),
            "member.removed",
            Some(&user.id),
            json!({"email": user.email}),
            now,
        )?;
        self.store.commit(batch).await?;
        Ok(())
    }

    /// `GET /v1/organizations`: the caller's organization.
    pub async fn organizations(&self, caller: &Caller) -> Result<Page<OrganizationView>> {
        Ok(Page {
            items: vec![OrganizationView {
                id: caller.org.id.clone(),
                name: caller.org.name.clone(),
            }],
            next_cursor: None,
        })
    }

    /// `POST /v1/organizations`: only the instance's first admin creates organizations; whoever
    /// accepts the returned invitation becomes the new organization's admin and developer.
    pub async fn create_organization(
        &self,
        caller: &Caller,
        req: CreateOrganizationRequest,
        now: Timestamp,
    ) -> Result<CreatedOrganization> {
        caller.require_admin()?;
        let first: Option<String> = get_json(&self.store, &schema::instance_admin()).await?;
        if first.as_deref() != Some(caller.user.id.as_str()) {
            return Err(Error::Forbidden(
                "only the instance's first admin creates organizations",
            ));
        }
        let name = display_name(&req.name)?;
        let email = normalize_email(&req.admin_email)?;
        let org = Organization {
            id: new_id(Kind::Organization)?,
            name,
            settings: Settings::default(),
            permissions: Vec::new(),
            created_at: now,
        };
        let mut batch = Batch::default();
        batch.put(schema::org(&org.id), &org)?;
        let token = self
            .invite_into(
                &mut batch,
                &org.id,
                &email,
                [Role::Admin, Role::Developer].into(),
                now,
            )
            .await?;
        // The new organization's log names the instance, not a user of another organization:
        // nothing crosses from one organization to another. The creator's own log keeps who.
        let instance = crate::api::Actor {
            kind: "instance".into(),
            id: "instance".into(),
        };
        record(
            &mut batch,
            &org.id,
            instance,
            "member.invited",
            None,
            json!({"email": email, "roles": ["admin", "developer"]}),
            now,
        )?;
        record(
            &mut batch,
            &caller.org.id,
            caller.actor(),
            "organization.created",
            Some(&org.id),
            json!({"name": org.name, "admin_email": email}),
            now,
        )?;
        self.store.commit(batch).await?;
        Ok(CreatedOrganization {
            organization: OrganizationView {
                id: org.id,
                name: org.name,
            },
            invitation_token: token,
        })
    }
}

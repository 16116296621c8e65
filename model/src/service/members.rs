//! Organizations, invitations and members (SPEC §1, §7): people join by a one-time invitation
//! from an admin; admins assign roles and remove members.

use std::collections::BTreeSet;

use serde_json::json;

use super::auth::org_token;
use super::events::record;
use super::{Caller, Keygate, normalize_email, page_limit, token_hash, user_view};
use crate::api::{
    AcceptRequest, AcceptResponse, CreateOrganizationRequest, CreatedOrganization,
    InvitationResponse, InvitationView, InviteRequest, OrganizationView, Page, PageQuery,
    RolesPatch, UserView,
};
use crate::domain::{Invitation, Organization, PasswordHash, Role, Settings, Timestamp, User};
use crate::error::{Error, Result};
use crate::id::{Kind, new_id};
use crate::password;
use crate::store::{Batch, Store, get_json, schema};

/// Prefix of invitation tokens.
pub const INVITATION_PREFIX: &str = "kgi_";
/// How long an invitation can be accepted.
pub const INVITATION_TTL: time::Duration = time::Duration::days(7);
/// Shortest password accepted (NIST SP 800-63B's minimum).
pub const MIN_PASSWORD_CHARS: usize = 8;

/// A member's display name: trimmed, 1 to 100 characters, no control characters.
pub(crate) fn display_name(raw: &str) -> Result<String> {
    let name = raw.trim();
    if name.is_empty() || name.chars().count() > 100 || name.chars().any(char::is_control) {
        return Err(Error::invalid("name", "a name of 1 to 100 characters"));
    }
    Ok(name.to_owned())
}

/// A password a member may choose: [`MIN_PASSWORD_CHARS`] to 1024 characters.
pub(crate) fn check_password(password: &str) -> Result<()> {
    if (MIN_PASSWORD_CHARS..=1024).contains(&password.chars().count()) {
        Ok(())
    } else {
        Err(Error::invalid(
            "password",
            format!("{MIN_PASSWORD_CHARS} to 1024 characters"),
        ))
    }
}

fn invitation_view(invitation: &Invitation) -> InvitationView {
    InvitationView {
        id: invitation.id.clone(),
        email: invitation.email.clone(),
        roles: invitation.roles.iter().copied().collect(),
        invited_by: invitation.invited_by.clone(),
        created_at: invitation.created_at,
        expires_at: invitation.expires_at,
    }
}

impl<S: Store> Keygate<S> {
    /// Adds a new invitation to `batch` and returns its token. Whether the email already
    /// belongs to a user elsewhere is not looked at: inviting answers alike for any email, so
    /// an admin learns nothing of other organizations (the invitee learns it on accepting).
    fn invite_into(
        batch: &mut Batch,
        org: &str,
        email: &str,
        roles: BTreeSet<Role>,
        invited_by: Option<&str>,
        now: Timestamp,
    ) -> Result<String> {
        let token = org_token(INVITATION_PREFIX, org)?;
        let hash = token_hash(&token);
        let invitation = Invitation {
            id: new_id(Kind::Invitation)?,
            org: org.to_owned(),
            email: email.to_owned(),
            roles,
            invited_by: invited_by.map(str::to_owned),
            created_at: Some(now),
            expires_at: now + INVITATION_TTL,
        };
        let at = invitation.expires_at;
        batch.put_expiring(schema::invitation(&hash), &invitation, at)?;
        batch.put_expiring(
            format!("{}{}", schema::org_invitations(org), invitation.id),
            &hash,
            at,
        )?;
        Ok(token)
    }

    /// `POST /v1/invitations` (admins): a one-time token for `email` to join with `roles`.
    /// An email that is already a member of this organization is a conflict (the admin sees
    /// its members anyway); any other email, in use elsewhere or not, is invited alike.
    pub async fn invite(
        &self,
        caller: &Caller,
        req: InviteRequest,
        now: Timestamp,
    ) -> Result<InvitationResponse> {
        caller.require_admin()?;
        let email = normalize_email(&req.email)?;
        if let Some(id) = get_json::<S, String>(&self.store, &schema::email(&email)).await?
            && get_json::<S, User>(&self.store, &schema::user(&id))
                .await?
                .is_some_and(|u| u.org == caller.org.id)
        {
            return Err(Error::Conflict("a member with this email already exists"));
        }
        let roles: BTreeSet<Role> = req.roles.into_iter().collect();
        let mut batch = Batch::default();
        let token = Self::invite_into(
            &mut batch,
            &caller.org.id,
            &email,
            roles.clone(),
            Some(&caller.user.id),
            now,
        )?;
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

    /// The organization's pending invitations, with their token hashes, oldest id first.
    async fn pending_invitations(
        &self,
        org: &str,
        now: Timestamp,
    ) -> Result<Vec<(String, Invitation)>> {
        let mut out = Vec::new();
        for entry in self.list_all(&schema::org_invitations(org)).await? {
            let Some(hash) = get_json::<S, String>(&self.store, &entry).await? else {
                continue;
            };
            if let Some(invitation) =
                get_json::<S, Invitation>(&self.store, &schema::invitation(&hash)).await?
                && invitation.org == org
                && invitation.expires_at > now
            {
                out.push((hash, invitation));
            }
        }
        Ok(out)
    }

    /// `GET /v1/invitations` (admins): the pending invitations, never their tokens.
    pub async fn invitations(
        &self,
        caller: &Caller,
        query: PageQuery,
        now: Timestamp,
    ) -> Result<Page<InvitationView>> {
        caller.require_admin()?;
        let limit = page_limit(query.limit)? as usize;
        let items = self
            .pending_invitations(&caller.org.id, now)
            .await?
            .into_iter()
            .map(|(_, i)| invitation_view(&i))
            .filter(|i| query.cursor.as_deref().is_none_or(|c| i.id.as_str() > c))
            .collect();
        Ok(super::page_by_id(items, limit, |i| i.id.as_str()))
    }

    /// `DELETE /v1/invitations/{id}` (admins): the invitation's link stops working.
    pub async fn revoke_invitation(&self, caller: &Caller, id: &str, now: Timestamp) -> Result<()> {
        caller.require_admin()?;
        let pending = self.pending_invitations(&caller.org.id, now).await?;
        let Some((hash, invitation)) = pending.into_iter().find(|(_, i)| i.id == id) else {
            return Err(Error::NotFound("invitation"));
        };
        let mut batch = Batch::default();
        revoke_invitation_into(&mut batch, caller, &hash, &invitation, "revoked", now)?;
        self.store.commit(batch).await?;
        Ok(())
    }

    /// Adds, to `batch`, the end of every pending invitation `admin` made: an invitation
    /// carries its inviter's authority, and dies when the inviter is removed or loses `admin`.
    async fn revoke_invitations_by(
        &self,
        batch: &mut Batch,
        caller: &Caller,
        admin: &str,
        now: Timestamp,
    ) -> Result<()> {
        for (hash, invitation) in self.pending_invitations(&caller.org.id, now).await? {
            if invitation.invited_by.as_deref() == Some(admin) {
                revoke_invitation_into(batch, caller, &hash, &invitation, "inviter left", now)?;
            }
        }
        Ok(())
    }

    /// `POST /v1/invitations/{token}/accept`: sets the name and password; the token is spent.
    /// An email that already belongs to a user (of any organization) cannot join twice: that
    /// is said here, to whoever holds the invitation, and not to the admin who invited.
    pub async fn accept(
        &self,
        token: &str,
        req: AcceptRequest,
        now: Timestamp,
    ) -> Result<AcceptResponse> {
        let name = display_name(&req.name)?;
        check_password(&req.password)?;
        // Hashed before the turn: Argon2 never holds up other changes.
        let password_hash = PasswordHash(password::hash(&req.password)?);
        let _turn = self.store.turn().await;
        let hash = token_hash(token);
        let key = schema::invitation(&hash);
        let invitation = get_json::<S, Invitation>(&self.store, &key)
            .await?
            .filter(|i| i.expires_at > now)
            .ok_or(Error::NotFound("invitation"))?;
        if let Some(inviter) = &invitation.invited_by {
            let still_admin = get_json::<S, User>(&self.store, &schema::user(inviter))
                .await?
                .is_some_and(|u| u.org == invitation.org && u.has(Role::Admin));
            if !still_admin {
                return Err(Error::NotFound("invitation"));
            }
        }
        if self
            .store
            .get(&schema::email(&invitation.email))
            .await?
            .is_some()
        {
            return Err(Error::Conflict(
                "this email already belongs to a Keygate account; sign in with it, or ask for an invitation to another address",
            ));
        }
        let user = User {
            id: new_id(Kind::User)?,
            org: invitation.org.clone(),
            email: invitation.email.clone(),
            name,
            roles: invitation.roles.clone(),
            password_hash: Some(password_hash),
            created_at: now,
        };
        let mut batch = Batch::default();
        batch.put(schema::user(&user.id), &user)?;
        batch.put(schema::email(&user.email), &user.id)?;
        batch.mark(schema::org_user(&user.org, &user.id));
        batch.delete(key);
        if !invitation.id.is_empty() {
            batch.delete(format!(
                "{}{}",
                schema::org_invitations(&invitation.org),
                invitation.id
            ));
        }
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
        if before.contains(&Role::Admin) && !user.has(Role::Admin) {
            self.revoke_invitations_by(&mut batch, caller, &user.id, now)
                .await?;
        }
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
        self.revoke_invitations_by(&mut batch, caller, &user.id, now)
            .await?;
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
        let token = Self::invite_into(
            &mut batch,
            &org.id,
            &email,
            [Role::Admin, Role::Developer].into(),
            None,
            now,
        )?;
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

/// Adds the end of `invitation` (stored under `hash`) and its event to `batch`.
fn revoke_invitation_into(
    batch: &mut Batch,
    caller: &Caller,
    hash: &str,
    invitation: &Invitation,
    reason: &str,
    now: Timestamp,
) -> Result<()> {
    batch.delete(schema::invitation(hash));
    batch.delete(format!(
        "{}{}",
        schema::org_invitations(&invitation.org),
        invitation.id
    ));
    record(
        batch,
        &invitation.org,
        caller.actor(),
        "invitation.revoked",
        Some(&invitation.id),
        json!({"email": invitation.email, "reason": reason}),
        now,
    )
}

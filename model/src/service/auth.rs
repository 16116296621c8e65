//! Authentication and sessions: the first start and its set-up link, signing in (with its
//! throttle) and out, who a credential is, and `GET /v1/me`.

use super::*;

/// How a request presents itself.
#[derive(Clone, Copy)]
pub enum Credential<'a> {
    /// Nothing.
    None,
    /// `Authorization: Bearer …`: a session token or an API key. No CSRF header is needed.
    Bearer(&'a str),
    /// The session cookie, with the CSRF header if one was sent.
    Cookie {
        token: &'a str,
        csrf: Option<&'a str>,
    },
}

/// Who is calling, once authenticated.
#[derive(Debug, Clone)]
pub struct Caller {
    pub user: User,
    pub org: Organization,
    pub via: Via,
}

/// What the caller authenticated with.
#[derive(Debug, Clone)]
pub enum Via {
    /// A session, stored under `token_hash`.
    Session {
        token_hash: String,
        session: Session,
    },
    /// An API key, acting with its effective rights inside its namespace only (SPEC §4.2).
    Key(Box<KeyRecord>),
}

impl Caller {
    pub(crate) fn require_user(&self, what: &'static str) -> Result<()> {
        match self.via {
            Via::Session { .. } => Ok(()),
            Via::Key(_) => Err(Error::Forbidden(what)),
        }
    }

    pub(crate) fn require_admin(&self) -> Result<()> {
        self.require_user("an API key cannot change settings, members or roles")?;
        if self.user.has(Role::Admin) {
            Ok(())
        } else {
            Err(Error::Forbidden("this needs the admin role"))
        }
    }
}

/// Failed sign-ins allowed per email within [`LOGIN_WINDOW`] before 429 `rate_limited`.
pub const MAX_LOGIN_FAILURES: u32 = 5;
/// The window over which failed sign-ins are counted.
pub const LOGIN_WINDOW: time::Duration = time::Duration::minutes(15);

/// Failed sign-ins of one email in the current window.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub(super) struct LoginThrottle {
    pub(super) failures: u32,
    #[serde(with = "time::serde::rfc3339")]
    pub(super) window_start: Timestamp,
}

/// The result of a first start.
#[derive(Debug, Clone)]
pub struct Bootstrapped {
    pub organization: String,
    pub email: String,
    /// Set when the host gave no password: the token of the one-time set-up link
    /// (`/#/setup/<token>`, [`SETUP_TTL`]) to print once, on the host's console.
    pub setup_token: Option<String>,
}

/// Prefix of set-up tokens.
pub const SETUP_PREFIX: &str = "kgu_";
/// How long a set-up link works; a host started again after that prints a new one.
pub const SETUP_TTL: time::Duration = time::Duration::hours(1);

/// The line a host prints for a set-up link's `token`, on the console served at `origin`.
pub fn setup_notice(origin: &str, token: &str) -> String {
    format!(
        "Keygate: choose the first admin's password at {origin}/#/setup/{token} (valid for {} minutes)",
        SETUP_TTL.whole_minutes()
    )
}

/// Adds a fresh set-up link for `user` to `batch` (replacing any earlier one) and returns its
/// token; only its hash is stored. The record stays, expired, until the link is used: its
/// presence is what tells a later start that the first admin still has no password.
pub(super) fn setup_into(batch: &mut Batch, user: &User, now: Timestamp) -> Result<String> {
    let token = org_token(SETUP_PREFIX, &user.org)?;
    let setup = crate::domain::SetupToken {
        token_hash: token_hash(&token),
        user: user.id.clone(),
        expires_at: now + SETUP_TTL,
    };
    batch.put(schema::setup(), &setup)?;
    Ok(token)
}

/// What a start made of `KEYGATE_KEY_PREFIX` ([`Keygate::record_key_prefix`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyPrefixAtStart {
    /// The prefix new keys get.
    pub prefix: String,
    /// The prefix asked for, when it differs from the recorded one (which stays).
    pub ignored: Option<String>,
}

impl KeyPrefixAtStart {
    /// What the host logs as a warning, when the prefix asked for was not taken.
    pub fn warning(&self) -> Option<String> {
        self.ignored.as_ref().map(|ignored| {
            format!(
                "KEYGATE_KEY_PREFIX={ignored} is ignored: this deployment's keys start with `{}_`, recorded at its first start",
                self.prefix
            )
        })
    }
}

/// The length of the secret part of session, invitation and set-up tokens.
const TOKEN_SECRET_LEN: usize = 43;

/// A fresh session, invitation or set-up token (`prefix` is [`SESSION_PREFIX`],
/// `kgi_` or [`SETUP_PREFIX`]) of organization `org`: the prefix, the organization id's
/// random part, `_`, then 43 random base62 characters. The organization is not secret (its
/// id is in every answer about it); it is there so that a host keeping one store per
/// organization finds a token's without a lookup ([`token_org`]). Only the token's hash is
/// stored, so the whole token stays the credential.
pub(crate) fn org_token(prefix: &str, org: &str) -> Result<String> {
    let body = org
        .strip_prefix(Kind::Organization.prefix())
        .ok_or_else(|| Error::Internal(format!("`{org}` is not an organization id")))?;
    Ok(format!(
        "{prefix}{body}_{}",
        random_base62(TOKEN_SECRET_LEN)?
    ))
}

/// The organization a session, invitation or set-up token was made for, read from its
/// shape alone (nothing says the token is live). `None` for a token of another shape, such
/// as those made before tokens carried their organization: they stay valid, and a host that
/// routes by organization looks them up instead.
pub fn token_org(token: &str) -> Option<String> {
    let rest = [
        SESSION_PREFIX,
        super::members::INVITATION_PREFIX,
        SETUP_PREFIX,
    ]
    .iter()
    .find_map(|prefix| token.strip_prefix(prefix))?;
    let (body, secret) = rest.split_once('_')?;
    let org = format!("{}{body}", Kind::Organization.prefix());
    (Kind::Organization.matches(&org)
        && secret.len() == TOKEN_SECRET_LEN
        && secret.bytes().all(|b| b.is_ascii_alphanumeric()))
    .then_some(org)
}

/// Hex SHA-256 of a session token: the store key of its session.
pub fn token_hash(token: &str) -> String {
    hex(&Sha256::digest(token.as_bytes()))
}

pub(crate) fn normalize_email(raw: &str) -> Result<String> {
    let email = raw.trim().to_lowercase();
    let valid = email.len() <= 254
        && email.split_once('@').is_some_and(|(local, domain)| {
            !local.is_empty() && domain.contains('.') || domain == "localhost"
        })
        && !email.chars().any(|c| c.is_whitespace() || c.is_control());
    if valid {
        Ok(email)
    } else {
        Err(Error::invalid("email", "not a valid email address"))
    }
}

impl<S: Store> Keygate<S> {
    /// First start: if the store has never been bootstrapped, creates the organization and its
    /// first admin (roles admin + developer). Without a password the admin has none yet, and
    /// the answer carries a one-time set-up link's token instead: a generated password
    /// printed to a log would be a standing credential there. Returns `None` when already
    /// done.
    pub async fn bootstrap(
        &self,
        email: Option<String>,
        password: Option<String>,
        now: Timestamp,
    ) -> Result<Option<Bootstrapped>> {
        if self.store.get(&schema::bootstrap()).await?.is_some() {
            return Ok(None);
        }
        let email = normalize_email(email.as_deref().unwrap_or(DEFAULT_ADMIN_EMAIL))?;
        let password_hash = match password.filter(|p| !p.is_empty()) {
            Some(p) => Some(PasswordHash(password::hash(&p)?)),
            None => None,
        };
        let org = Organization {
            id: new_id(Kind::Organization)?,
            name: "Keygate".into(),
            settings: Settings::default(),
            permissions: Vec::new(),
            created_at: now,
        };
        let user = User {
            id: new_id(Kind::User)?,
            org: org.id.clone(),
            email: email.clone(),
            name: "Administrator".into(),
            roles: [Role::Admin, Role::Developer].into(),
            password_hash,
            created_at: now,
        };
        let mut batch = Batch::default();
        let setup_token = match user.password_hash {
            Some(_) => None,
            None => Some(setup_into(&mut batch, &user, now)?),
        };
        batch.put(schema::org(&org.id), &org)?;
        batch.put(schema::user(&user.id), &user)?;
        batch.put(schema::email(&email), &user.id)?;
        batch.mark(schema::org_user(&org.id, &user.id));
        batch.put(schema::instance_admin(), &user.id)?;
        batch.put(schema::bootstrap(), &org.id)?;
        self.store.commit(batch).await?;
        Ok(Some(Bootstrapped {
            organization: org.id,
            email,
            setup_token,
        }))
    }

    /// At every start: the deployment's key prefix (SPEC §2). The first start records
    /// `wanted` (`KEYGATE_KEY_PREFIX`; `kg` when unset); later starts keep what was recorded,
    /// and say when `wanted` differs, so that the host can warn (every key made keeps its own
    /// prefix in its record, so none stops verifying whatever happens here). A `wanted` that is
    /// not 2–10 lowercase letters or digits (or is `kgs`/`kgi`, the prefixes of sessions and
    /// invitations) is refused, and nothing is recorded. Hosts call it as they start, before
    /// they serve (the edge's control object in its first request's turn).
    pub async fn record_key_prefix(&self, wanted: Option<&str>) -> Result<KeyPrefixAtStart> {
        let wanted = wanted.map(str::trim).filter(|w| !w.is_empty());
        if let Some(w) = wanted
            && !crate::key::valid_prefix(w)
        {
            // The operator's to fix, not a client's: a host stops (the server) or fails every
            // request with this in its log (the edge).
            return Err(Error::Internal(format!(
                "KEYGATE_KEY_PREFIX must be 2 to 10 lowercase letters or digits, other than kgs and kgi; it is `{w}`"
            )));
        }
        if let Some(recorded) = get_json::<S, String>(&self.store, &schema::key_prefix()).await? {
            let ignored = wanted.filter(|w| *w != recorded).map(str::to_owned);
            return Ok(KeyPrefixAtStart {
                prefix: recorded,
                ignored,
            });
        }
        let prefix = wanted.unwrap_or(crate::key::DEFAULT_PREFIX).to_owned();
        let mut batch = Batch::default();
        batch.put(schema::key_prefix(), &prefix)?;
        self.store.commit(batch).await?;
        Ok(KeyPrefixAtStart {
            prefix,
            ignored: None,
        })
    }

    /// The prefix new keys get: the recorded one, or `kg` before any was recorded.
    pub(crate) async fn key_prefix(&self) -> Result<String> {
        Ok(get_json::<S, String>(&self.store, &schema::key_prefix())
            .await?
            .unwrap_or_else(|| crate::key::DEFAULT_PREFIX.to_owned()))
    }

    /// At a later start: while the first admin has not chosen a password, a new set-up
    /// link's token to print — when `replace` (the server: every start prints a fresh link,
    /// and the earlier one stops working), or when no earlier link still works (the worker,
    /// whose isolates each start: one link at a time). `None` once a password is set.
    ///
    /// One store read when nothing is pending (the set-up record exists only until the link is
    /// used), so that every start — each isolate's, at the edge — costs next to nothing.
    pub async fn renew_setup(&self, now: Timestamp, replace: bool) -> Result<Option<String>> {
        let _turn = self.store.turn().await;
        let Some(current) =
            get_json::<S, crate::domain::SetupToken>(&self.store, &schema::setup()).await?
        else {
            return Ok(None);
        };
        if current.expires_at > now && !replace {
            return Ok(None);
        }
        let user = get_json::<S, User>(&self.store, &schema::user(&current.user)).await?;
        let Some(user) = user.filter(|u| u.password_hash.is_none()) else {
            return Ok(None);
        };
        let mut batch = Batch::default();
        let token = setup_into(&mut batch, &user, now)?;
        self.store.commit(batch).await?;
        Ok(Some(token))
    }

    /// `POST /v1/setup/{token}`: the first admin chooses its password (and, optionally, its
    /// name) through the set-up link; the link is spent.
    pub async fn setup(
        &self,
        token: &str,
        req: crate::api::SetupRequest,
        now: Timestamp,
    ) -> Result<crate::api::AcceptResponse> {
        let name = req.name.as_deref().map(members::display_name).transpose()?;
        members::check_password(&req.password)?;
        // Hashed before the turn: Argon2 never holds up other changes.
        let hash = PasswordHash(password::hash(&req.password)?);
        let _turn = self.store.turn().await;
        let setup = get_json::<S, crate::domain::SetupToken>(&self.store, &schema::setup())
            .await?
            .filter(|s| s.expires_at > now)
            .filter(|s| {
                subtle::ConstantTimeEq::ct_eq(s.token_hash.as_bytes(), token_hash(token).as_bytes())
                    .into()
            })
            .ok_or(Error::NotFound("set-up link"))?;
        let mut user = get_json::<S, User>(&self.store, &schema::user(&setup.user))
            .await?
            .filter(|u| u.password_hash.is_none())
            .ok_or(Error::NotFound("set-up link"))?;
        user.password_hash = Some(hash);
        if let Some(name) = name {
            user.name = name;
        }
        let mut batch = Batch::default();
        batch.put(schema::user(&user.id), &user)?;
        batch.delete(schema::setup());
        let actor = crate::api::Actor {
            kind: "user".into(),
            id: user.id.clone(),
        };
        events::record(
            &mut batch,
            &user.org,
            actor,
            "member.password_set",
            Some(&user.id),
            serde_json::json!({"email": user.email, "through": "set-up link"}),
            now,
        )?;
        self.store.commit(batch).await?;
        Ok(crate::api::AcceptResponse {
            user: user_view(&user),
        })
    }

    /// Signs in: a wrong email and a wrong password answer the same, in the same time. An
    /// email that is not an email at all (too long, no `@`) is 422 and writes nothing.
    ///
    /// The attempt is counted before the password is tried, in the store's turn, so however
    /// many sign-ins for one email race, at most [`MAX_LOGIN_FAILURES`] passwords are tried
    /// per [`LOGIN_WINDOW`] (SPEC §10); a success gives its own count back. The password is
    /// checked outside the turn, so a flood of sign-ins never holds up other changes.
    pub async fn login(&self, req: LoginRequest, now: Timestamp) -> Result<LoginResponse> {
        let email = normalize_email(&req.email)?;
        let throttle_key = schema::login_throttle(&email);
        {
            let _turn = self.store.turn().await;
            let mut batch = Batch::default();
            self.count_failure(&mut batch, &throttle_key, now).await?;
            self.store.commit(batch).await?;
        }
        let user = match get_json::<S, String>(&self.store, &schema::email(&email)).await? {
            Some(id) => get_json::<S, User>(&self.store, &schema::user(&id)).await?,
            None => None,
        };
        let ok = match user.as_ref().and_then(|u| u.password_hash.as_ref()) {
            Some(hash) => password::verify(&req.password, &hash.0),
            None => {
                password::verify(&req.password, password::decoy());
                false
            }
        };
        let _turn = self.store.turn().await;
        let mut batch = Batch::default();
        let Some(user) = user.filter(|_| ok) else {
            // The attempt stays counted, whether or not the email exists, so both answer
            // alike; a known email's organization audits it.
            self.record_login_failure(&mut batch, &email, now).await?;
            if !batch.ops.is_empty() {
                self.store.commit(batch).await?;
            }
            return Err(Error::InvalidCredentials);
        };
        let token = org_token(SESSION_PREFIX, &user.org)?;
        let session = Session {
            user: user.id.clone(),
            org: user.org.clone(),
            csrf_token: random_base62(32)?,
            expires_at: now + rules::SESSION_TTL,
        };
        batch.put_expiring(
            schema::session(&token_hash(&token)),
            &session,
            session.expires_at,
        )?;
        match self.live_throttle(&throttle_key, now).await? {
            Some(t) if t.failures > 1 => {
                let kept = LoginThrottle {
                    failures: t.failures - 1,
                    ..t
                };
                batch.put_expiring(throttle_key, &kept, kept.window_start + LOGIN_WINDOW)?;
            }
            _ => {
                batch.delete(throttle_key);
            }
        }
        self.store.commit(batch).await?;
        Ok(LoginResponse {
            token,
            csrf_token: session.csrf_token,
            user: user_view(&user),
        })
    }

    /// Counts one more failure under throttle `key` into `batch`, or answers 429
    /// `rate_limited` when [`MAX_LOGIN_FAILURES`] are already counted in its running
    /// [`LOGIN_WINDOW`]: the one throttle of sign-in and of leak reports.
    pub(super) async fn count_failure(
        &self,
        batch: &mut Batch,
        key: &str,
        now: Timestamp,
    ) -> Result<()> {
        let (failures, window_start) = self
            .live_throttle(key, now)
            .await?
            .map_or((0, now), |t| (t.failures, t.window_start));
        if failures >= MAX_LOGIN_FAILURES {
            return Err(Error::RateLimited);
        }
        let counted = LoginThrottle {
            failures: failures + 1,
            window_start,
        };
        batch.put_expiring(key.to_owned(), &counted, window_start + LOGIN_WINDOW)?;
        Ok(())
    }

    /// The sign-in attempts counted for `key` in the window that is still running at `now`.
    pub(super) async fn live_throttle(
        &self,
        key: &str,
        now: Timestamp,
    ) -> Result<Option<LoginThrottle>> {
        Ok(get_json::<S, LoginThrottle>(&self.store, key)
            .await?
            .filter(|t| t.window_start + LOGIN_WINDOW > now))
    }

    /// Audits a failed login against a known email's organization (an unknown email has no
    /// organization to audit in). The event names the email, never the password tried.
    pub(super) async fn record_login_failure(
        &self,
        batch: &mut Batch,
        email: &str,
        now: Timestamp,
    ) -> Result<()> {
        let Some(id) = get_json::<S, String>(&self.store, &schema::email(email)).await? else {
            return Ok(());
        };
        let Some(user) = get_json::<S, User>(&self.store, &schema::user(&id)).await? else {
            return Ok(());
        };
        let actor = crate::api::Actor {
            kind: "user".into(),
            id: user.id.clone(),
        };
        events::record(
            batch,
            &user.org,
            actor,
            "login.failed",
            Some(&user.id),
            serde_json::json!({"email": email}),
            now,
        )
    }

    /// Ends the caller's session.
    pub async fn logout(&self, caller: &Caller) -> Result<()> {
        let Via::Session { token_hash, .. } = &caller.via else {
            return Err(Error::Forbidden("an API key has no session to end"));
        };
        let mut batch = Batch::default();
        batch.delete(schema::session(token_hash));
        self.store.commit(batch).await?;
        Ok(())
    }

    /// Resolves a credential to a caller. `mutating` calls made with the cookie must carry the
    /// session's CSRF token.
    pub async fn authenticate(
        &self,
        credential: Credential<'_>,
        mutating: bool,
        now: Timestamp,
    ) -> Result<Caller> {
        let (token, csrf) = match credential {
            Credential::None => return Err(Error::Unauthenticated),
            Credential::Bearer(token) if crate::key::looks_like_key(token) => {
                return self.authenticate_key(token, now).await;
            }
            Credential::Bearer(token) => (token, None),
            Credential::Cookie { token, csrf } => (token, Some(csrf)),
        };
        let hash = token_hash(token);
        let session: Session = get_json(&self.store, &schema::session(&hash))
            .await?
            .ok_or(Error::Unauthenticated)?;
        if session.expires_at <= now {
            return Err(Error::Unauthenticated);
        }
        if let Some(sent) = csrf {
            let ok = sent.is_some_and(|s| {
                subtle::ConstantTimeEq::ct_eq(s.as_bytes(), session.csrf_token.as_bytes()).into()
            });
            if mutating && !ok {
                return Err(Error::CsrfRequired);
            }
        }
        let (user, org) = self
            .member(&session.user)
            .await?
            .ok_or(Error::Unauthenticated)?;
        Ok(Caller {
            user: Arc::unwrap_or_clone(user),
            org: Arc::unwrap_or_clone(org),
            via: Via::Session {
                token_hash: hash,
                session,
            },
        })
    }

    pub(super) async fn authenticate_key(&self, token: &str, now: Timestamp) -> Result<Caller> {
        let verdict = self.check_key(token, now).await?;
        match verdict {
            Checked::Usable { record, owner, org } => Ok(Caller {
                user: Arc::unwrap_or_clone(owner),
                org: Arc::unwrap_or_clone(org),
                via: Via::Key(Box::new(Arc::unwrap_or_clone(record))),
            }),
            _ => Err(Error::Unauthenticated),
        }
    }

    /// `GET /v1/me`.
    pub async fn me(&self, caller: &Caller) -> Result<MeResponse> {
        let mut namespaces = Vec::new();
        for ns in self.all_namespaces(&caller.org).await? {
            let rights = match &caller.via {
                Via::Session { .. } => self.rights_in(&caller.user, &caller.org, &ns.id).await?,
                Via::Key(record) if record.namespace == ns.id => {
                    self.effective_rights(record, &caller.user, &caller.org)
                        .await?
                }
                Via::Key(_) => continue,
            };
            if !rights.is_empty() || matches!(caller.via, Via::Key(_)) {
                namespaces.push(MeNamespace {
                    id: ns.id,
                    kind: ns.kind,
                    name: ns.name,
                    permissions: rights.permissions().map(str::to_owned).collect(),
                    scopes: rights.to_scopes(),
                });
            }
        }
        Ok(MeResponse {
            user: user_view(&caller.user),
            organization: OrganizationView {
                id: caller.org.id.clone(),
                name: caller.org.name.clone(),
            },
            roles: caller.user.roles.iter().copied().collect(),
            namespaces,
            csrf_token: match &caller.via {
                Via::Session { session, .. } => Some(session.csrf_token.clone()),
                Via::Key(_) => None,
            },
            max_expiry_days: caller.org.settings.max_expiry_days,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ORG: &str = "org_Ab3dEf6hIj9L";

    #[test]
    fn tokens_carry_their_organization_and_nothing_else_reads_as_one() {
        for prefix in [SESSION_PREFIX, members::INVITATION_PREFIX, SETUP_PREFIX] {
            let token = org_token(prefix, ORG).expect("csprng");
            assert_eq!(
                token.len(),
                prefix.len() + 12 + 1 + TOKEN_SECRET_LEN,
                "{token}"
            );
            assert_eq!(token_org(&token).as_deref(), Some(ORG), "{token}");
            // Never mistaken for an API key, whatever the deployment's key prefix.
            assert!(!crate::key::looks_like_key(&token), "{token}");
            // Two tokens of one organization share only the organization.
            let other = org_token(prefix, ORG).expect("csprng");
            assert_ne!(token, other);
        }
        let secret = "a".repeat(TOKEN_SECRET_LEN);
        let table = [
            // Made before tokens carried their organization: valid, but found by lookup.
            (format!("kgs_{}", "a".repeat(43)), None),
            (format!("kgs_Ab3dEf6hIj9L_{secret}"), Some(ORG)),
            (format!("kgi_Ab3dEf6hIj9L_{secret}"), Some(ORG)),
            (format!("kgu_Ab3dEf6hIj9L_{secret}"), Some(ORG)),
            // Not one of the three prefixes.
            (format!("kg_Ab3dEf6hIj9L_{secret}"), None),
            (format!("kgx_Ab3dEf6hIj9L_{secret}"), None),
            // An organization part of the wrong length or alphabet.
            (format!("kgs_Ab3dEf6hIj9_{secret}"), None),
            (format!("kgs_Ab3dEf6hIj9LM_{secret}"), None),
            (format!("kgs_Ab3dEf6hIj-L_{secret}"), None),
            // A secret of the wrong length or alphabet.
            (format!("kgs_Ab3dEf6hIj9L_{}", "a".repeat(42)), None),
            (format!("kgs_Ab3dEf6hIj9L_{}", "a".repeat(44)), None),
            (format!("kgs_Ab3dEf6hIj9L_{}_", "a".repeat(42)), None),
            ("kgs_".to_owned(), None),
            (String::new(), None),
        ];
        for (token, org) in table {
            assert_eq!(token_org(&token).as_deref(), org, "{token}");
        }
        assert!(org_token(SESSION_PREFIX, "usr_Ab3dEf6hIj9L").is_err());
    }

    proptest::proptest! {
        #[test]
        fn no_text_makes_token_org_panic_or_invent_an_organization(text in ".{0,80}") {
            if let Some(org) = token_org(&text) {
                proptest::prop_assert!(Kind::Organization.matches(&org));
                proptest::prop_assert!(text.contains(&org["org_".len()..]));
            }
        }
    }
}

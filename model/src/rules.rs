//! Keygate's business rules as pure functions over plain types: written once, here, and
//! called by every host and by the console where it needs to agree with the hosts.

use std::collections::{BTreeSet, HashMap};

use time::Duration;

pub use crate::domain::BUILTIN_PERMISSIONS;
use crate::domain::{
    Access, KeyRecord, KeyRole, KeyStatus, PermissionScope, Timestamp, VerifyCode,
};
use crate::error::{Error, Result};
use crate::key::KeyRef;

/// Longest key name, in characters.
pub const MAX_NAME_CHARS: usize = 100;
/// Longest key description, in characters.
pub const MAX_DESCRIPTION_CHARS: usize = 1000;
/// How long a console session lasts.
pub const SESSION_TTL: Duration = Duration::hours(12);

/// A key name: trimmed, non-empty, at most [`MAX_NAME_CHARS`] characters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyName(String);

impl TryFrom<String> for KeyName {
    type Error = Error;

    fn try_from(raw: String) -> Result<Self> {
        let name = raw.trim();
        if name.is_empty() {
            return Err(Error::invalid("name", "a key needs a name"));
        }
        if name.chars().count() > MAX_NAME_CHARS {
            return Err(Error::invalid(
                "name",
                format!("at most {MAX_NAME_CHARS} characters"),
            ));
        }
        if name.chars().any(char::is_control) {
            return Err(Error::invalid("name", "control characters are not allowed"));
        }
        Ok(Self(name.to_owned()))
    }
}

impl KeyName {
    /// The validated name.
    pub fn into_inner(self) -> String {
        self.0
    }
}

/// A description: `None` when absent or blank, at most [`MAX_DESCRIPTION_CHARS`] characters.
pub fn description(raw: Option<String>) -> Result<Option<String>> {
    match raw.map(|d| d.trim().to_owned()) {
        Some(d) if d.chars().count() > MAX_DESCRIPTION_CHARS => Err(Error::invalid(
            "description",
            format!("at most {MAX_DESCRIPTION_CHARS} characters"),
        )),
        Some(d) if d.is_empty() => Ok(None),
        other => Ok(other),
    }
}

/// The expiry rule of SPEC §3.1: in the future, and within the organization's maximum, which
/// makes an expiry required when set.
pub fn check_expiry(
    expires_at: Option<Timestamp>,
    now: Timestamp,
    max_days: Option<u32>,
) -> Result<()> {
    match (expires_at, max_days) {
        (Some(at), _) if at <= now => Err(Error::invalid(
            "expires_at",
            "the expiry must be in the future",
        )),
        (Some(at), Some(days)) if at > now + Duration::days(i64::from(days)) => {
            Err(Error::invalid(
                "expires_at",
                format!("the organization allows keys of at most {days} days"),
            ))
        }
        (None, Some(days)) => Err(Error::invalid(
            "expires_at",
            format!("an expiry is required: the organization allows keys of at most {days} days"),
        )),
        _ => Ok(()),
    }
}

/// Which resources a permission covers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scope {
    /// Every resource in the namespace.
    All,
    /// Only these resources.
    Only(BTreeSet<String>),
}

impl Scope {
    fn from_resources(resources: Option<&[String]>) -> Self {
        match resources {
            None => Scope::All,
            Some(ids) => Scope::Only(ids.iter().cloned().collect()),
        }
    }

    fn union(&self, other: &Scope) -> Scope {
        match (self, other) {
            (Scope::All, _) | (_, Scope::All) => Scope::All,
            (Scope::Only(a), Scope::Only(b)) => Scope::Only(a.union(b).cloned().collect()),
        }
    }

    fn intersect(&self, other: &Scope) -> Scope {
        match (self, other) {
            (Scope::All, s) | (s, Scope::All) => s.clone(),
            (Scope::Only(a), Scope::Only(b)) => Scope::Only(a.intersection(b).cloned().collect()),
        }
    }

    fn covers(&self, resource: Option<&str>) -> bool {
        match (self, resource) {
            (Scope::All, _) => true,
            // Without a resource named, a resource-limited grant still answers "may do this
            // to some resources"; a resource-specific check must name the resource.
            (Scope::Only(ids), None) => !ids.is_empty(),
            (Scope::Only(ids), Some(r)) => ids.contains(r),
        }
    }
}

/// What a principal may do in one namespace: permission → resource scope.
///
/// Hashed (foldhash, randomly seeded) rather than ordered: answering "is this permission
/// held?" is on every verification, and a B-tree of permission names spent more time in
/// string comparisons than the rest of the ceiling check. Listings sort on the way out.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Rights(HashMap<String, Scope, foldhash::fast::RandomState>);

impl Rights {
    /// Every permission of `catalogue` on every resource: what an admin holds.
    pub fn all_of<'a>(catalogue: impl IntoIterator<Item = &'a str>) -> Self {
        Self(
            catalogue
                .into_iter()
                .map(|p| (p.to_owned(), Scope::All))
                .collect(),
        )
    }

    /// Adds a grant of `permission`, limited to `resources` when given (union with what is held).
    pub fn grant(&mut self, permission: &str, resources: Option<&[String]>) {
        let scope = Scope::from_resources(resources);
        let merged = match self.0.get(permission) {
            Some(held) => held.union(&scope),
            None => scope,
        };
        self.0.insert(permission.to_owned(), merged);
    }

    /// Adds everything `other` holds (union, resource limits merged).
    pub fn merge(&mut self, other: &Rights) {
        for (permission, scope) in &other.0 {
            let merged = match self.0.get(permission) {
                Some(held) => held.union(scope),
                None => scope.clone(),
            };
            self.0.insert(permission.clone(), merged);
        }
    }

    /// Whether nothing is held.
    pub fn is_empty(&self) -> bool {
        self.0
            .values()
            .all(|s| matches!(s, Scope::Only(ids) if ids.is_empty()))
    }

    /// Whether `permission` is held, on `resource` when one is named; with none named,
    /// whether it is held on anything at all (a verification without a resource: the answer
    /// lists the resource limits). Checks of Keygate's own API that act on the namespace as a
    /// whole use [`Rights::allows_everywhere`] instead.
    pub fn allows(&self, permission: &str, resource: Option<&str>) -> bool {
        self.0.get(permission).is_some_and(|s| s.covers(resource))
    }

    /// Whether `permission` is held on every resource of the namespace: a grant without a
    /// resource list. What a namespace-wide action needs (creating resources, managing
    /// workspaces or user groups, receiving a deleted key's resources): a grant on some
    /// resources says nothing of the others, nor of resources not created yet.
    pub fn allows_everywhere(&self, permission: &str) -> bool {
        self.0.get(permission) == Some(&Scope::All)
    }

    /// The permission names held, sorted.
    pub fn permissions(&self) -> impl Iterator<Item = &str> {
        self.held().into_iter().map(|(p, _)| p)
    }

    /// The wire form, sorted by permission: one entry per permission with its resource limit.
    pub fn to_scopes(&self) -> Vec<PermissionScope> {
        self.held()
            .into_iter()
            .map(|(p, s)| PermissionScope {
                permission: p.to_owned(),
                resources: match s {
                    Scope::All => None,
                    Scope::Only(ids) => Some(ids.iter().cloned().collect()),
                },
            })
            .collect()
    }

    /// What is held on something (not an empty resource list), sorted by permission.
    fn held(&self) -> Vec<(&str, &Scope)> {
        let mut held: Vec<_> = self
            .0
            .iter()
            .filter(|(_, s)| s.covers(None))
            .map(|(p, s)| (p.as_str(), s))
            .collect();
        held.sort_unstable_by_key(|(p, _)| *p);
        held
    }
}

/// Whether `permission` is a read permission (`….read`), the only kind a viewer key gets.
pub fn is_read(permission: &str) -> bool {
    permission == "read" || permission.ends_with(".read")
}

/// Checks that a key may declare `access` given what its creator holds in the namespace now
/// (SPEC §3.1): every requested permission must be held there, and every resource it names
/// must be a well-formed resource id the creator holds it on. A permission declared without
/// a resource list needs only to be held: held on some resources, the key's permission
/// covers exactly those, now and as the creator's grants change (the live ceiling, seed 000).
pub fn check_declared(access: &Access, creator: &Rights) -> Result<()> {
    if let Access::Permissions(list) = access {
        if list.is_empty() {
            return Err(Error::invalid(
                "permissions",
                "name at least one permission, or a role",
            ));
        }
        for scope in list {
            let ok = match &scope.resources {
                None => creator.allows(&scope.permission, None),
                Some(ids) if ids.is_empty() => {
                    return Err(Error::invalid(
                        "permissions",
                        "a resource list cannot be empty",
                    ));
                }
                Some(ids) => {
                    // An id is data the gateway forwards: only ids can be named, never text
                    // that could read as a separator or another permission downstream.
                    check_resource_ids("permissions", ids)?;
                    ids.iter()
                        .all(|r| creator.allows(&scope.permission, Some(r)))
                }
            };
            if !ok {
                return Err(Error::PermissionNotHeld(scope.permission.clone()));
            }
        }
    }
    Ok(())
}

/// Checks a declared resource list (of a key's permissions or a grant): non-empty, at most
/// [`MAX_RESOURCES`] ids, each a well-formed `res_…` id.
pub fn check_resource_ids(field: &'static str, ids: &[String]) -> Result<()> {
    if ids.is_empty() || ids.len() > MAX_RESOURCES {
        return Err(Error::invalid(
            field,
            format!("a resource list names 1 to {MAX_RESOURCES} res_… ids"),
        ));
    }
    if ids.iter().any(|r| !crate::id::Kind::Resource.matches(r)) {
        return Err(Error::invalid(
            field,
            "a resource list names res_… ids, and nothing else",
        ));
    }
    Ok(())
}

/// Most resource ids one permission of a key or one grant may name.
pub const MAX_RESOURCES: usize = 100;

/// What a key's own record says of a presented secret now (SPEC §4.1), before its creator
/// is consulted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SecretCheck {
    /// Neither the current secret nor a rolled one still in its grace period: answered like
    /// an unknown key.
    Unknown,
    /// The secret is the key's, but the key is revoked or expired.
    Refused(VerifyCode),
    /// The secret is the key's and the key is active.
    Active,
}

/// Checks a parsed `key` against `record` at `now`: its prefix must be the record's (a key
/// re-spelled with another prefix and a fresh checksum is not this key), its secret the
/// current one or, after a roll, the previous one until its grace period ends; then the
/// status, revocation before expiry. Hashes are compared in constant time.
pub fn check_secret(record: &KeyRecord, key: &KeyRef<'_>, now: Timestamp) -> SecretCheck {
    if key.prefix() != record.prefix() {
        return SecretCheck::Unknown;
    }
    let presented = &key.secret_hash();
    let current = record.secret_hash.matches(presented);
    let in_grace = record
        .previous
        .as_ref()
        .is_some_and(|p| p.until > now && p.hash.matches(presented));
    if !(current || in_grace) {
        return SecretCheck::Unknown;
    }
    match record.status(now) {
        KeyStatus::Revoked => SecretCheck::Refused(VerifyCode::Revoked),
        KeyStatus::Expired => SecretCheck::Refused(VerifyCode::Expired),
        KeyStatus::Active => SecretCheck::Active,
    }
}

/// Whether a key declaring `access` may do `permission` (to `resource`, when named) given what
/// its creator holds now: exactly `effective(access, creator).allows(permission, resource)`
/// (a property test holds them equal), without building the rights. The verification hot
/// path's ceiling check.
pub fn permits(
    access: &Access,
    creator: &Rights,
    permission: &str,
    resource: Option<&str>,
) -> bool {
    let Some(held) = creator.0.get(permission) else {
        return false;
    };
    match access {
        Access::Role(KeyRole::Editor) => held.covers(resource),
        Access::Role(KeyRole::Viewer) => is_read(permission) && held.covers(resource),
        Access::Permissions(list) => list.iter().filter(|d| d.permission == permission).any(|d| {
            match (d.resources.as_deref(), resource) {
                (None, r) => held.covers(r),
                (Some(ids), Some(r)) => ids.iter().any(|id| id == r) && held.covers(Some(r)),
                (Some(ids), None) => ids.iter().any(|id| held.covers(Some(id))),
            }
        }),
    }
}

/// The ceiling (SPEC §3.2): what a key may do is what it declares ∩ what its creator holds
/// in its namespace at the moment of use, resource limits included.
pub fn effective(access: &Access, creator: &Rights) -> Rights {
    match access {
        Access::Role(KeyRole::Editor) => creator.clone(),
        Access::Role(KeyRole::Viewer) => Rights(
            creator
                .0
                .iter()
                .filter(|(p, _)| is_read(p))
                .map(|(p, s)| (p.clone(), s.clone()))
                .collect(),
        ),
        Access::Permissions(list) => {
            let mut out = Rights::default();
            for declared in list {
                if let Some(held) = creator.0.get(&declared.permission) {
                    let want = Scope::from_resources(declared.resources.as_deref());
                    let scope = want.intersect(held);
                    let merged = match out.0.get(&declared.permission) {
                        Some(prev) => prev.union(&scope),
                        None => scope,
                    };
                    out.0.insert(declared.permission.clone(), merged);
                }
            }
            out
        }
    }
}

/// The key search of SPEC §7/§8: `q` matches when one of a key's `fields` (its name, id, and
/// owner's name and email: `api::KeyView::matches`) contains it, case-insensitively. An empty
/// `q` matches everything. Both the API's `q` and the console's search box use this, the
/// console with the browser's `toLowerCase` as `lower` (the same Unicode default case
/// mapping) so that its wasm does not carry Rust's case tables.
pub fn search_matches(fields: &[&str], q: &str, lower: impl Fn(&str) -> String) -> bool {
    let q = lower(q.trim());
    q.is_empty() || fields.iter().any(|field| lower(field).contains(&q))
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

#[cfg(test)]
mod tests {
    use proptest::prelude::*;
    use time::macros::datetime;

    use super::*;

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

    fn scope(p: &str, r: Option<&[&str]>) -> PermissionScope {
        PermissionScope {
            permission: p.into(),
            resources: r.map(|r| r.iter().map(|s| s.to_string()).collect()),
        }
    }

    #[test]
    fn names_are_trimmed_and_bounded() {
        assert!(KeyName::try_from("   ".to_string()).is_err());
        assert!(KeyName::try_from("a".repeat(101)).is_err());
        assert_eq!(
            KeyName::try_from(" ci ".to_string())
                .expect("valid")
                .into_inner(),
            "ci"
        );
        assert!(KeyName::try_from("ünïcødé ✓".to_string()).is_ok());
    }

    #[test]
    fn expiry_must_be_future_and_within_the_maximum() {
        let now = datetime!(2026-01-01 0:00 UTC);
        assert!(check_expiry(None, now, None).is_ok());
        assert!(check_expiry(Some(now), now, None).is_err());
        assert!(check_expiry(Some(now + Duration::days(30)), now, Some(30)).is_ok());
        assert!(check_expiry(Some(now + Duration::days(31)), now, Some(30)).is_err());
        assert!(check_expiry(None, now, Some(30)).is_err());
    }

    #[test]
    fn a_resource_limited_creator_limits_the_key() {
        let mut creator = Rights::default();
        creator.grant("datasets.edit", Some(&["res_a".into(), "res_b".into()]));
        creator.grant("datasets.read", None);
        let key = Access::Permissions(vec![
            scope("datasets.edit", None),
            scope("datasets.read", None),
        ]);
        let eff = effective(&key, &creator);
        assert!(eff.allows("datasets.edit", Some("res_a")));
        assert!(!eff.allows("datasets.edit", Some("res_c")));
        assert!(eff.allows("datasets.read", Some("res_c")));
        // Seed 000: "Edit all datasets" is offered to a creator who holds it on two, and the
        // key's permission then covers those two, as the ceiling above shows.
        assert!(check_declared(&key, &creator).is_ok());
        // Naming a resource the creator does not hold it on is refused at creation…
        let beyond = Access::Permissions(vec![scope("datasets.edit", Some(&["res_cccccccccccc"]))]);
        assert!(
            matches!(check_declared(&beyond, &creator), Err(Error::PermissionNotHeld(p)) if p == "datasets.edit")
        );
        // …as is a permission not held on anything.
        let other = Access::Permissions(vec![scope("billing.admin", None)]);
        assert!(matches!(
            check_declared(&other, &creator),
            Err(Error::PermissionNotHeld(_))
        ));
        // A grant on some resources is not a grant on the namespace.
        assert!(creator.allows("datasets.edit", None));
        assert!(!creator.allows_everywhere("datasets.edit"));
        assert!(creator.allows_everywhere("datasets.read"));
    }

    #[test]
    fn declared_resources_are_well_formed_ids_only() {
        let creator = Rights::all_of(["datasets.read"]);
        for ids in [
            vec!["res_a,datasets.edit,billing.admin"],
            vec!["res_A1b2C3d4E5f6", "res_A1b2C3d4E5f6|x"],
            vec!["usr_A1b2C3d4E5f6"],
            vec![""],
        ] {
            let key = Access::Permissions(vec![scope("datasets.read", Some(&ids))]);
            assert!(
                matches!(
                    check_declared(&key, &creator),
                    Err(Error::Validation {
                        field: "permissions",
                        ..
                    })
                ),
                "{ids:?}"
            );
        }
        let many: Vec<String> = (0..=MAX_RESOURCES)
            .map(|i| format!("res_{i:012}"))
            .collect();
        assert!(check_resource_ids("resources", &many).is_err());
        assert!(check_resource_ids("resources", &many[..MAX_RESOURCES]).is_ok());
    }

    #[test]
    fn viewer_gets_only_reads_and_editor_everything() {
        let creator = Rights::all_of(BUILTIN_PERMISSIONS);
        let viewer = effective(&Access::Role(KeyRole::Viewer), &creator);
        assert!(viewer.permissions().all(is_read));
        assert_eq!(viewer.permissions().count(), 3);
        assert_eq!(effective(&Access::Role(KeyRole::Editor), &creator), creator);
    }

    fn arb_rights() -> impl Strategy<Value = Rights> {
        let perm = prop::sample::select(vec!["a.read", "a.write", "b.read", "b.edit"]);
        let res = prop::option::of(prop::collection::vec(
            prop::sample::select(vec!["r1", "r2", "r3"]),
            0..3,
        ));
        prop::collection::vec((perm, res), 0..6).prop_map(|grants| {
            let mut r = Rights::default();
            for (p, res) in grants {
                let ids: Option<Vec<String>> =
                    res.map(|v| v.into_iter().map(String::from).collect());
                r.grant(p, ids.as_deref());
            }
            r
        })
    }

    fn arb_access() -> impl Strategy<Value = Access> {
        let perm = prop::sample::select(vec!["a.read", "a.write", "b.read", "b.edit", "c.read"]);
        let res = prop::option::of(prop::collection::vec(
            prop::sample::select(vec!["r1", "r2", "r3"]),
            0..3,
        ));
        prop_oneof![
            Just(Access::Role(KeyRole::Viewer)),
            Just(Access::Role(KeyRole::Editor)),
            prop::collection::vec((perm, res), 0..5).prop_map(|v| Access::Permissions(
                v.into_iter()
                    .map(|(p, r)| PermissionScope {
                        permission: p.into(),
                        resources: r.map(|r| r.into_iter().map(String::from).collect())
                    })
                    .collect()
            )),
        ]
    }

    proptest! {
        /// The ceiling never grants more than the creator holds, whatever the grants.
        #[test]
        fn ceiling_never_exceeds_the_creator(creator in arb_rights(), access in arb_access(),
                                             p in prop::sample::select(vec!["a.read", "a.write", "b.read", "b.edit", "c.read"]),
                                             r in prop::option::of(prop::sample::select(vec!["r1", "r2", "r3", "r4"]))) {
            let eff = effective(&access, &creator);
            if eff.allows(p, r) {
                prop_assert!(creator.allows(p, r));
            }
        }

        /// The hot path's check answers exactly what the full ceiling answers.
        #[test]
        fn permits_is_the_ceiling_without_building_it(creator in arb_rights(), access in arb_access(),
                                                      p in prop::sample::select(vec!["a.read", "a.write", "b.read", "b.edit", "c.read"]),
                                                      r in prop::option::of(prop::sample::select(vec!["r1", "r2", "r3", "r4"]))) {
            prop_assert_eq!(permits(&access, &creator, p, r), effective(&access, &creator).allows(p, r));
        }
    }
}

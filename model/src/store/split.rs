//! Which organization each record of a store belongs to: what a host that kept every
//! organization in one store (the edge's single control object) needs to hand each
//! organization its records once it keeps one store per organization and one for the
//! instance. Written once here, from the key schema, so no host restates it.
//!
//! Most keys name their owner: an organization (`event:{org}:…`, `ix:org-keys:{org}:…`),
//! or an id whose record names the organization (`usage:{key}:…`, `ix:user-keys:{user}:…`,
//! `wh-queue:{webhook}:…`). Sessions, invitations and outbox entries carry it in their
//! value. Grants and resources are their namespace's.

use std::collections::{BTreeMap, HashMap};

use serde::Deserialize;

use super::schema::{self, Home};

/// Where the records of a whole store go ([`split`]).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Split {
    /// Each organization's store keys, by organization id.
    pub organizations: BTreeMap<String, Vec<String>>,
    /// The directory's keys ([`Home::Directory`] and [`Home::Constant`]).
    pub directory: Vec<String>,
    /// Keys every organization's store takes a copy of: the constants, and the markers a
    /// store keeps of itself (expiry reminders indexed).
    pub everywhere: Vec<String>,
    /// Keys whose organization nothing in the store names any more (what an id that is gone
    /// left behind): no organization's, so no store takes them.
    pub unplaced: Vec<String>,
}

impl Split {
    /// The organization `key` went to, if any.
    pub fn organization_of(&self, key: &str) -> Option<&str> {
        self.organizations
            .iter()
            .find(|(_, keys)| keys.iter().any(|k| k == key))
            .map(|(org, _)| org.as_str())
    }
}

/// A record that names its organization.
#[derive(Deserialize)]
struct Org {
    org: String,
}

/// A record that lives in a namespace (grants, resources).
#[derive(Deserialize)]
struct InNamespace {
    namespace: String,
}

/// Records whose id names what they belong to, by prefix.
const BY_ID: [&str; 7] = [
    "v1:org:",
    "v1:user:",
    "v1:key:",
    "v1:ns:",
    "v1:grant:",
    "v1:res:",
    "v1:webhook:",
];

/// Records that carry their organization in their value.
const BY_VALUE: [&str; 3] = ["v1:session:", "v1:invitation:", "v1:outbox:"];

/// Keys `v1:{kind}:{owner}:…` whose second segment is the id they belong to.
const BY_SEGMENT: [&str; 7] = [
    "v1:event:",
    "v1:credits:",
    "v1:usage:",
    "v1:usage-summary:",
    "v1:usage-org:",
    "v1:wh-queue:",
    "v1:wh-attempt:",
];

/// Where each of `records` (store key, value) goes. Values that do not decode leave their
/// key unplaced, never misplaced.
pub fn split<'a>(records: impl IntoIterator<Item = (&'a str, &'a [u8])>) -> Split {
    let records: Vec<(&str, &[u8])> = records.into_iter().collect();
    // The organization of each id whose record names it, and the namespace of each grant
    // and resource (whose organization is the namespace's).
    let mut owner: HashMap<&str, String> = HashMap::new();
    let mut namespace: HashMap<&str, String> = HashMap::new();
    for (key, value) in &records {
        let Some((prefix, id)) = BY_ID
            .iter()
            .find_map(|p| key.strip_prefix(p).map(|id| (*p, id)))
        else {
            continue;
        };
        match prefix {
            "v1:org:" => {
                owner.insert(id, id.to_owned());
            }
            "v1:grant:" | "v1:res:" => {
                if let Ok(r) = serde_json::from_slice::<InNamespace>(value) {
                    namespace.insert(id, r.namespace);
                }
            }
            _ => {
                if let Ok(r) = serde_json::from_slice::<Org>(value) {
                    owner.insert(id, r.org);
                }
            }
        }
    }
    let org_of = |id: &str| -> Option<String> {
        if id.starts_with(crate::id::Kind::Organization.prefix()) {
            return Some(id.to_owned());
        }
        owner.get(id).cloned().or_else(|| {
            let ns = namespace.get(id)?;
            if ns.starts_with(crate::id::Kind::Organization.prefix()) {
                Some(ns.clone())
            } else {
                owner.get(ns.as_str()).cloned()
            }
        })
    };

    let mut split = Split::default();
    for (key, value) in &records {
        match schema::home(key) {
            Home::Directory => {
                split.directory.push((*key).to_owned());
                continue;
            }
            Home::Constant => {
                split.directory.push((*key).to_owned());
                split.everywhere.push((*key).to_owned());
                continue;
            }
            Home::Organization => {}
        }
        if *key == schema::reminders_indexed() {
            split.everywhere.push((*key).to_owned());
            continue;
        }
        let org = if let Some(id) = BY_ID.iter().find_map(|p| key.strip_prefix(p)) {
            org_of(id)
        } else if BY_VALUE.iter().any(|p| key.starts_with(p)) {
            serde_json::from_slice::<Org>(value).ok().map(|r| r.org)
        } else if let Some(rest) = BY_SEGMENT.iter().find_map(|p| key.strip_prefix(p)) {
            org_of(rest.split(':').next().unwrap_or(rest))
        } else if key.starts_with(&schema::reminders()) || key.starts_with(&schema::webhooks()) {
            // `ix:reminder:{due}:{key}`, `ix:webhooks:{webhook}`: the id ends the entry.
            org_of(schema::id_of(key))
        } else if let Some(rest) = key.strip_prefix("v1:ix:") {
            // `ix:{index}:{owner}:{entry}`: an organization's, a user's, a group's, a
            // namespace's, a principal's or an owner's index. An entry outlives its owner
            // when a member is removed (`ix:user-keys:{user}:…` stays with the keys): its
            // entry's id (the key) still names the organization.
            rest.split(':')
                .nth(1)
                .and_then(org_of)
                .or_else(|| org_of(schema::id_of(key)))
        } else {
            None
        };
        match org {
            Some(org) => split
                .organizations
                .entry(org)
                .or_default()
                .push((*key).to_owned()),
            None => split.unplaced.push((*key).to_owned()),
        }
    }
    split
}

/// The organization a store key (or a prefix of keys) names by itself, without its value:
/// an organization's record, events, usage and indexes (`v1:org:{org}`, `v1:event:{org}:…`,
/// `v1:ix:org-keys:{org}:…`). The same reading as [`split`]'s, so the two never disagree.
pub fn named_organization(key: &str) -> Option<String> {
    split([(key, &[][..])]).organizations.into_keys().next()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_record_goes_to_the_organization_it_names() {
        let (a, b) = ("org_AAAAAAAAAAAA", "org_BBBBBBBBBBBB");
        let named = |org: &str| format!(r#"{{"org":"{org}"}}"#).into_bytes();
        let records: Vec<(String, Vec<u8>)> = vec![
            (format!("v1:org:{a}"), b"{}".to_vec()),
            (format!("v1:org:{b}"), b"{}".to_vec()),
            ("v1:user:usr_1".into(), named(a)),
            ("v1:key:key_1".into(), named(b)),
            ("v1:ns:grp_1".into(), named(b)),
            (
                "v1:grant:gnt_1".into(),
                br#"{"namespace":"grp_1"}"#.to_vec(),
            ),
            (
                "v1:grant:gnt_2".into(),
                format!(r#"{{"namespace":"{a}"}}"#).into_bytes(),
            ),
            ("v1:session:ab".into(), named(a)),
            (format!("v1:event:{b}:1:evt_1"), b"{}".to_vec()),
            ("v1:usage:key_1:000000000001:w".into(), b"{}".to_vec()),
            ("v1:ix:user-keys:usr_1:1:key_1".into(), b"1".to_vec()),
            // The user is gone: the entry's key still names the organization.
            ("v1:ix:user-keys:usr_gone:1:key_1".into(), b"1".to_vec()),
            (format!("v1:ix:org-keys:{a}:1:key_1"), b"1".to_vec()),
            (
                "v1:ix:reminder:00000000000000000001:key_1".into(),
                b"1".to_vec(),
            ),
            ("v1:email:x@example.com".into(), b"\"usr_1\"".to_vec()),
            ("v1:key-prefix".into(), b"\"kg\"".to_vec()),
            ("v1:reminders-indexed".into(), b"1".to_vec()),
            // Nothing names these: unplaced, never guessed.
            ("v1:session:cd".into(), b"not json".to_vec()),
            ("v1:usage-summary:key_gone".into(), b"{}".to_vec()),
        ];
        let split = split(records.iter().map(|(k, v)| (k.as_str(), v.as_slice())));
        let table = [
            (format!("v1:org:{a}"), Some(a)),
            (format!("v1:org:{b}"), Some(b)),
            ("v1:user:usr_1".into(), Some(a)),
            ("v1:key:key_1".into(), Some(b)),
            ("v1:grant:gnt_1".into(), Some(b)),
            ("v1:grant:gnt_2".into(), Some(a)),
            ("v1:session:ab".into(), Some(a)),
            (format!("v1:event:{b}:1:evt_1"), Some(b)),
            ("v1:usage:key_1:000000000001:w".into(), Some(b)),
            // A user's index is the user's organization's, even when the entry names
            // another's key (which no operation writes).
            ("v1:ix:user-keys:usr_1:1:key_1".into(), Some(a)),
            ("v1:ix:user-keys:usr_gone:1:key_1".into(), Some(b)),
            (format!("v1:ix:org-keys:{a}:1:key_1"), Some(a)),
            ("v1:ix:reminder:00000000000000000001:key_1".into(), Some(b)),
            ("v1:email:x@example.com".into(), None),
        ];
        for (key, org) in table {
            assert_eq!(split.organization_of(&key), org, "{key}");
        }
        assert_eq!(split.directory, ["v1:email:x@example.com", "v1:key-prefix"]);
        assert_eq!(split.everywhere, ["v1:key-prefix", "v1:reminders-indexed"]);
        assert_eq!(
            split.unplaced,
            ["v1:session:cd", "v1:usage-summary:key_gone"]
        );
    }

    #[test]
    fn a_key_names_its_organization_only_when_its_text_says() {
        let org = "org_AAAAAAAAAAAA";
        let table: &[(String, Option<&str>)] = &[
            (format!("v1:org:{org}"), Some(org)),
            (format!("v1:event:{org}:"), Some(org)),
            (format!("v1:ix:org-keys:{org}:"), Some(org)),
            (format!("v1:ix:org-users:{org}:usr_1"), Some(org)),
            (format!("v1:usage-org:{org}:0000000001:w"), Some(org)),
            // An id whose record would say: nothing without the record.
            ("v1:user:usr_1".into(), None),
            ("v1:ix:user-keys:usr_1:".into(), None),
            ("v1:session:ab".into(), None),
            ("v1:email:a@example.com".into(), None),
            ("v1:key-prefix".into(), None),
        ];
        for (key, named) in table {
            assert_eq!(named_organization(key).as_deref(), *named, "{key}");
        }
    }
}

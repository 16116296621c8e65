//! The generate-key form as a plain type: the view binds its fields, this turns them into a
//! request using `model`'s own rules, so the console refuses exactly what the hosts refuse.

use model::api::CreateKeyRequest;
use model::domain::{KeyRole, PermissionScope};
use model::rules::KeyName;
use time::{Date, OffsetDateTime, Time};

/// What the person chose for the key's rights.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RightsChoice {
    Role(KeyRole),
    /// Explicit permissions, picked from what the person holds in the namespace.
    Permissions(Vec<String>),
}

/// The fields of the *Generate new key* dialog.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewKeyForm {
    pub name: String,
    pub description: String,
    pub namespace: String,
    pub rights: RightsChoice,
    /// `YYYY-MM-DD` from a date input; the key expires at the end of that day (UTC).
    pub expiry: String,
}

impl NewKeyForm {
    /// An empty form for `namespace`, with the least-privileged role preselected.
    pub fn new(namespace: String) -> Self {
        Self {
            name: String::new(),
            description: String::new(),
            namespace,
            rights: RightsChoice::Role(KeyRole::Viewer),
            expiry: String::new(),
        }
    }

    /// The request to send, or the message to show by the field at fault.
    pub fn to_request(&self) -> Result<CreateKeyRequest, String> {
        let name = KeyName::try_from(self.name.clone()).map_err(|e| e.to_string())?;
        let (role, permissions) = match &self.rights {
            RightsChoice::Role(role) => (Some(*role), None),
            RightsChoice::Permissions(list) if list.is_empty() => {
                return Err("pick at least one permission, or a role".into());
            }
            RightsChoice::Permissions(list) => (
                None,
                Some(
                    list.iter()
                        .map(|p| PermissionScope {
                            permission: p.clone(),
                            resources: None,
                        })
                        .collect(),
                ),
            ),
        };
        let expires_at = match self.expiry.trim() {
            "" => None,
            day => Some(end_of_day(day).ok_or_else(|| "expiry: pick a date".to_string())?),
        };
        Ok(CreateKeyRequest {
            name: name.into_inner(),
            description: Some(self.description.clone()).filter(|d| !d.trim().is_empty()),
            namespace: self.namespace.clone(),
            role,
            permissions,
            expires_at,
        })
    }
}

/// The last second of `day` (`YYYY-MM-DD`) in UTC.
fn end_of_day(day: &str) -> Option<OffsetDateTime> {
    let format = time::macros::format_description!("[year]-[month]-[day]");
    let date = Date::parse(day, &format).ok()?;
    Some(
        date.with_time(Time::from_hms(23, 59, 59).ok()?)
            .assume_utc(),
    )
}

/// The least-privilege hint shown next to the permission picker.
pub fn least_privilege_hint(selected: usize, held: usize) -> String {
    match selected {
        0 => "Pick only what the script needs: a key can do no more than you can.".into(),
        n if n == held => "This key gets every permission you hold here; fewer is safer.".into(),
        n => format!("{n} of the {held} permissions you hold here."),
    }
}

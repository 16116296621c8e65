//! The generate-key form as a plain type: the view binds its fields, this turns them into a
//! request using `model`'s own rules, so the console refuses exactly what the hosts refuse.

use model::api::CreateKeyRequest;
use model::domain::{KeyRole, PermissionScope};
use model::rules::{KeyName, check_expiry, description};
use time::{Date, Duration, OffsetDateTime, Time};

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

    /// The request to send, or the message to show by the field at fault. `now` and the
    /// organization's `max_expiry_days` bound the expiry exactly as the hosts will.
    pub fn to_request(
        &self,
        now: OffsetDateTime,
        max_expiry_days: Option<u32>,
    ) -> Result<CreateKeyRequest, String> {
        let name = KeyName::try_from(self.name.clone()).map_err(|e| e.to_string())?;
        let description = description(Some(self.description.clone())).map_err(|e| e.to_string())?;
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
            day => {
                let end = end_of_day(day).ok_or_else(|| "expiry: pick a date".to_string())?;
                // The last allowed day ends at the maximum itself, not at its midnight; a later
                // day stays as picked, for the rule to refuse.
                let limit = max_expiry_days.map(|days| now + Duration::days(i64::from(days)));
                Some(match limit {
                    Some(limit) if end > limit && end.date() == limit.date() => limit,
                    _ => end,
                })
            }
        };
        check_expiry(expires_at, now, max_expiry_days).map_err(|e| e.to_string())?;
        Ok(CreateKeyRequest {
            name: name.into_inner(),
            description,
            namespace: self.namespace.clone(),
            role,
            permissions,
            expires_at,
            ..Default::default()
        })
    }
}

/// The first and last day the expiry picker offers (`YYYY-MM-DD`): from today, and up to the
/// organization's maximum when there is one.
pub fn expiry_bounds(
    now: OffsetDateTime,
    max_expiry_days: Option<u32>,
) -> (String, Option<String>) {
    let last =
        max_expiry_days.map(|days| (now + Duration::days(i64::from(days))).date().to_string());
    (now.date().to_string(), last)
}

/// Now, from the browser's clock.
pub fn now() -> OffsetDateTime {
    let millis = js_sys::Date::now() as i128;
    OffsetDateTime::from_unix_timestamp_nanos(millis * 1_000_000)
        .unwrap_or(OffsetDateTime::UNIX_EPOCH)
}

/// The last second of `day` (`YYYY-MM-DD`) in UTC.
fn end_of_day(day: &str) -> Option<OffsetDateTime> {
    let date = parse_day(day)?;
    Some(
        date.with_time(Time::from_hms(23, 59, 59).ok()?)
            .assume_utc(),
    )
}

/// A `YYYY-MM-DD` day, as a date input gives it. Parsed by hand: `time`'s format-description
/// parser would add its generic machinery to the wasm for this one shape.
pub fn parse_day(day: &str) -> Option<Date> {
    let mut parts = day.split('-');
    let mut number = |digits: usize| {
        parts
            .next()
            .filter(|p| p.len() == digits && p.bytes().all(|b| b.is_ascii_digit()))
            .and_then(|p| p.parse::<u16>().ok())
    };
    let (year, month, day) = (number(4)?, number(2)?, number(2)?);
    if parts.next().is_some() {
        return None;
    }
    let month = time::Month::try_from(u8::try_from(month).ok()?).ok()?;
    Date::from_calendar_date(i32::from(year), month, u8::try_from(day).ok()?).ok()
}

/// The least-privilege hint shown next to the permission picker.
pub fn least_privilege_hint(selected: usize, held: usize) -> String {
    match selected {
        0 => "Pick only what the script needs: a key can do no more than you can.".into(),
        n if n == held => "This key gets every permission you hold here; fewer is safer.".into(),
        n => format!("{n} of the {held} permissions you hold here."),
    }
}

/// What a permission picked without a resource list will cover, when the person holds it on
/// some resources only (seed 000: "Edit all datasets" then edits those): `None` when it is held
/// on every resource of the namespace.
pub fn coverage_hint(scope: &model::domain::PermissionScope) -> Option<String> {
    let ids = scope.resources.as_ref()?;
    let (count, noun) = match ids.len() {
        1 => (String::from("the one resource"), "it"),
        n => (format!("the {n} resources"), "them"),
    };
    Some(format!(
        "applies only to {count} you hold it on ({}), and to any you are given later; nothing else, while you hold {noun}",
        ids.join(", ")
    ))
}

/// The management console's settings form: text fields as typed, turned into a patch of only
/// what changed. The hosts check the ranges; their answer is shown next to the form.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SettingsForm {
    pub api_keys_enabled: bool,
    /// Days, or empty for no maximum.
    pub max_expiry_days: String,
    pub max_active_keys_per_user: String,
    /// Verifications per hour, or empty for no threshold.
    pub extensive_use_per_hour: String,
}

impl SettingsForm {
    /// The form showing `settings`.
    pub fn from_settings(settings: &model::api::SettingsView) -> Self {
        let text = |n: Option<u64>| n.map(|n| n.to_string()).unwrap_or_default();
        Self {
            api_keys_enabled: settings.api_keys_enabled,
            max_expiry_days: text(settings.max_expiry_days.map(u64::from)),
            max_active_keys_per_user: settings.max_active_keys_per_user.to_string(),
            extensive_use_per_hour: text(settings.extensive_use_per_hour),
        }
    }

    /// The changes from `current`, or which field is not a number.
    pub fn to_patch(
        &self,
        current: &model::api::SettingsView,
    ) -> Result<model::api::SettingsPatch, String> {
        fn optional<T: std::str::FromStr>(field: &str, raw: &str) -> Result<Option<T>, String> {
            match raw.trim() {
                "" => Ok(None),
                n => n
                    .parse()
                    .map(Some)
                    .map_err(|_| format!("{field}: a whole number, or empty for none")),
            }
        }
        let max_expiry_days = optional::<u32>("max_expiry_days", &self.max_expiry_days)?;
        let extensive = optional::<u64>("extensive_use_per_hour", &self.extensive_use_per_hour)?;
        let max_active: u32 = self
            .max_active_keys_per_user
            .trim()
            .parse()
            .map_err(|_| "max_active_keys_per_user: a whole number".to_string())?;
        Ok(model::api::SettingsPatch {
            api_keys_enabled: (self.api_keys_enabled != current.api_keys_enabled)
                .then_some(self.api_keys_enabled),
            max_expiry_days: (max_expiry_days != current.max_expiry_days)
                .then_some(max_expiry_days),
            max_active_keys_per_user: (max_active != current.max_active_keys_per_user)
                .then_some(max_active),
            extensive_use_per_hour: (extensive != current.extensive_use_per_hour)
                .then_some(extensive),
        })
    }
}

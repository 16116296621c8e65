//! The organization's API key settings (SPEC §5).

use super::*;

impl<S: Store> Keygate<S> {
    /// `GET /v1/settings` (admin only).
    pub async fn settings(&self, caller: &Caller) -> Result<SettingsView> {
        caller.require_admin()?;
        Ok(SettingsView::from(&caller.org.settings))
    }

    /// `PATCH /v1/settings` (admin only).
    pub async fn update_settings(
        &self,
        caller: &Caller,
        patch: SettingsPatch,
        now: Timestamp,
    ) -> Result<SettingsView> {
        caller.require_admin()?;
        let mut org = caller.org.clone();
        let s = &mut org.settings;
        if let Some(on) = patch.api_keys_enabled {
            s.api_keys_enabled = on;
        }
        if let Some(days) = patch.max_expiry_days {
            if days.is_some_and(|d| !(1..=36_500).contains(&d)) {
                return Err(Error::invalid(
                    "max_expiry_days",
                    "between 1 and 36500 days, or null",
                ));
            }
            s.max_expiry_days = days;
        }
        if let Some(max) = patch.max_active_keys_per_user {
            if !(1..=1000).contains(&max) {
                return Err(Error::invalid(
                    "max_active_keys_per_user",
                    "between 1 and 1000",
                ));
            }
            s.max_active_keys_per_user = max;
        }
        if let Some(threshold) = patch.extensive_use_per_hour {
            if threshold == Some(0) {
                return Err(Error::invalid(
                    "extensive_use_per_hour",
                    "at least 1, or null",
                ));
            }
            s.extensive_use_per_hour = threshold;
        }
        let mut batch = Batch::default();
        batch.put(schema::org(&org.id), &org)?;
        events::record(
            &mut batch,
            &org.id,
            caller.actor(),
            "settings.updated",
            Some(&org.id),
            serde_json::to_value(&org.settings)?,
            now,
        )?;
        self.store.commit(batch).await?;
        Ok(SettingsView::from(&org.settings))
    }
}

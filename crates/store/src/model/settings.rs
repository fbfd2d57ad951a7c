//! The organization's defaults: mode and script control.

use super::*;

impl Store {
    /// The organization's defaults (mode, script control).
    pub async fn settings(&self, org_id: i64) -> Result<OrganizationDoc, StoreError> {
        self.ensure_org_state(org_id).await?;
        let (name, mode, until, capture_into, script_control): (String, String, Option<String>, Option<String>, i64) =
            sqlx::query_as(
                "SELECT o.name, s.mode, s.mode_until, s.capture_into, s.script_control FROM org_state s \
                 JOIN organizations o ON o.id = s.org_id WHERE s.org_id = $1",
            )
            .bind(org_id)
            .fetch_one(self.pool())
            .await?;
        Ok(OrganizationDoc {
            name: Some(name),
            mode: Some(mode),
            until,
            capture_into,
            script_control: Some(script_control == 1),
        })
    }

    /// Change the organization's defaults.
    pub async fn set_settings(&self, change: Change<'_>, doc: &OrganizationDoc) -> Result<(), StoreError> {
        let before = self.settings(change.org_id).await?;
        let mut tx = self.begin().await?;
        sqlx::query(
            "UPDATE org_state SET mode = $1, mode_until = $2, capture_into = $3, script_control = $4 WHERE org_id = $5",
        )
        .bind(doc.mode.clone().unwrap_or_else(|| "monitor".into()))
        .bind(&doc.until)
        .bind(&doc.capture_into)
        .bind(flag(doc.script_control.unwrap_or(false)))
        .bind(change.org_id)
        .execute(&mut *tx)
        .await?;
        let after = OrganizationDoc { name: before.name.clone(), ..doc.clone() };
        self.commit(tx, change, "update", "organization settings", Some(json(&before)), Some(json(&after))).await
    }
}

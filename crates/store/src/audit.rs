//! The audit log: who changed what, when, with the object before and after.

use crate::{Store, StoreError, now_ms};

/// A transaction of the store: every audited change runs in one, with its audit entry.
pub(crate) type Tx = sqlx::Transaction<'static, sqlx::Any>;

/// One change.
#[derive(Clone, Debug, PartialEq, Eq, sqlx::FromRow)]
pub struct AuditEntry {
    /// Id, increasing.
    pub id: i64,
    /// When, Unix milliseconds.
    pub at_ms: i64,
    /// Who: `user NAME` or `token NAME of USER`.
    pub actor: String,
    /// What was done: `create`, `update`, `delete`, `login`…
    pub action: String,
    /// What it was done to: `user alice`, `policy 12`…
    pub object: String,
    /// The object before, as JSON, when it existed.
    pub before_json: Option<String>,
    /// The object after, as JSON, when it still exists.
    pub after_json: Option<String>,
}

/// Record a change within a transaction (for changes that bump no version).
pub(crate) async fn log_in(
    tx: &mut Tx,
    change: crate::Change<'_>,
    action: &str,
    object: &str,
    before_json: Option<String>,
    after_json: Option<String>,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO audit_log (org_id, at_ms, actor, action, object, before_json, after_json) \
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(change.org_id)
    .bind(now_ms())
    .bind(change.actor)
    .bind(action)
    .bind(object)
    .bind(before_json)
    .bind(after_json)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

impl Store {
    /// Record a change in an organization's audit log.
    pub async fn audit(
        &self,
        org_id: i64,
        actor: &str,
        action: &str,
        object: &str,
        before_json: Option<&str>,
        after_json: Option<&str>,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO audit_log (org_id, at_ms, actor, action, object, before_json, after_json) \
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(org_id)
        .bind(now_ms())
        .bind(actor)
        .bind(action)
        .bind(object)
        .bind(before_json)
        .bind(after_json)
        .execute(self.pool())
        .await?;
        Ok(())
    }

    /// The newest `limit` entries of an organization's log, newest first.
    pub async fn audit_log(&self, org_id: i64, limit: i64) -> Result<Vec<AuditEntry>, StoreError> {
        Ok(sqlx::query_as(
            "SELECT id, at_ms, actor, action, object, before_json, after_json FROM audit_log \
             WHERE org_id = $1 ORDER BY id DESC LIMIT $2",
        )
        .bind(org_id)
        .bind(limit)
        .fetch_all(self.pool())
        .await?)
    }
}

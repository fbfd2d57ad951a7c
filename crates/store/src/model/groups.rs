//! Computer groups and their enrollment tokens.

use super::*;

impl Store {
    /// The organization's computer groups, by path.
    pub async fn groups(&self, org_id: i64) -> Result<Vec<GroupRow>, StoreError> {
        #[allow(clippy::type_complexity)]
        let rows: Vec<(
            i64,
            String,
            Option<String>,
            Option<String>,
            Option<String>,
            Option<String>,
            i64,
            Option<i64>,
            Option<i64>,
        )> = sqlx::query_as(
            "SELECT g.id, g.path, g.mode, g.mode_until, g.capture_into, g.enroll_token_hash, \
             (SELECT COUNT(*) FROM computers c WHERE c.group_id = g.id), g.enroll_expires_ms, g.enroll_uses_left \
             FROM computer_groups g WHERE g.org_id = $1 ORDER BY g.path",
        )
        .bind(org_id)
        .fetch_all(self.pool())
        .await?;
        let now = now_ms();
        Ok(rows
            .into_iter()
            .map(|(id, path, mode, until, capture_into, token, computers, expires, uses)| GroupRow {
                id,
                doc: GroupDoc { path, mode, until, capture_into },
                enrollment_open: token.is_some() && expires.is_none_or(|t| t > now) && uses.is_none_or(|u| u > 0),
                enrollment_expires_ms: token.as_ref().and(expires),
                enrollment_uses_left: token.as_ref().and(uses),
                computers,
            })
            .collect())
    }

    async fn group(&self, org_id: i64, id: i64) -> Result<GroupRow, StoreError> {
        self.groups(org_id).await?.into_iter().find(|g| g.id == id).ok_or(StoreError::NotFound("group"))
    }

    /// Add a group (its parent path must exist, except for a top-level group).
    pub async fn create_group(&self, change: Change<'_>, doc: &GroupDoc) -> Result<i64, StoreError> {
        let groups = self.groups(change.org_id).await?;
        if groups.iter().any(|g| g.doc.path.eq_ignore_ascii_case(&doc.path)) {
            return Err(StoreError::Exists { what: "group", name: doc.path.clone() });
        }
        if let Some((parent, _)) = doc.path.rsplit_once('/')
            && !groups.iter().any(|g| g.doc.path.eq_ignore_ascii_case(parent))
        {
            return Err(StoreError::Invalid(format!("group {parent:?} does not exist; create it first")));
        }
        let mut tx = self.begin().await?;
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO computer_groups (org_id, path, mode, mode_until, capture_into, created_ms) \
             VALUES ($1, $2, $3, $4, $5, $6) RETURNING id",
        )
        .bind(change.org_id)
        .bind(&doc.path)
        .bind(&doc.mode)
        .bind(&doc.until)
        .bind(&doc.capture_into)
        .bind(now_ms())
        .fetch_one(&mut *tx)
        .await?;
        self.commit(tx, change, "create", &format!("group {}", doc.path), None, Some(json(doc))).await?;
        Ok(id)
    }

    /// Change a group's mode (its path stays).
    pub async fn update_group(&self, change: Change<'_>, id: i64, doc: &GroupDoc) -> Result<(), StoreError> {
        let before = self.group(change.org_id, id).await?;
        let mut tx = self.begin().await?;
        sqlx::query(
            "UPDATE computer_groups SET mode = $1, mode_until = $2, capture_into = $3 WHERE id = $4 AND org_id = $5",
        )
        .bind(&doc.mode)
        .bind(&doc.until)
        .bind(&doc.capture_into)
        .bind(id)
        .bind(change.org_id)
        .execute(&mut *tx)
        .await?;
        let after = GroupDoc { path: before.doc.path.clone(), ..doc.clone() };
        let object = format!("group {}", before.doc.path);
        self.commit(tx, change, "update", &object, Some(json(&before.doc)), Some(json(&after))).await
    }

    /// Remove an empty group (no computers, no subgroups).
    pub async fn delete_group(&self, change: Change<'_>, id: i64) -> Result<(), StoreError> {
        let groups = self.groups(change.org_id).await?;
        let group = groups.iter().find(|g| g.id == id).ok_or(StoreError::NotFound("group"))?;
        let prefix = format!("{}/", group.doc.path.to_ascii_lowercase());
        if group.computers > 0 || groups.iter().any(|g| g.doc.path.to_ascii_lowercase().starts_with(&prefix)) {
            return Err(StoreError::Invalid(format!(
                "group {:?} still holds computers or subgroups; move or remove them first",
                group.doc.path
            )));
        }
        let object = format!("group {}", group.doc.path);
        self.delete_row(change, "computer_groups", id, &object, json(&group.doc)).await
    }

    /// A new enrollment token for a group (the previous one stops working), valid until
    /// `limits.expires_ms` and for `limits.uses` enrollments when given. Returned once;
    /// only its hash is kept.
    pub async fn rotate_enrollment_token(
        &self,
        change: Change<'_>,
        id: i64,
        limits: crate::TokenLimits,
    ) -> Result<String, StoreError> {
        let group = self.group(change.org_id, id).await?;
        let token = format!("pce_{}", random_hex(24)?);
        let mut tx = self.begin().await?;
        sqlx::query(
            "UPDATE computer_groups SET enroll_token_hash = $1, enroll_expires_ms = $2, enroll_uses_left = $3 \
             WHERE id = $4 AND org_id = $5",
        )
        .bind(sha256_hex(&token))
        .bind(limits.expires_ms)
        .bind(limits.uses)
        .bind(id)
        .bind(change.org_id)
        .execute(&mut *tx)
        .await?;
        let object = format!("enrollment token of group {}", group.doc.path);
        let after = serde_json::json!({ "expires_ms": limits.expires_ms, "uses": limits.uses }).to_string();
        crate::audit::log_in(&mut tx, change, "create", &object, None, Some(after)).await?;
        tx.commit().await?;
        Ok(token)
    }

    /// Revoke a group's enrollment token: no agent enrolls with it any more (enrolled
    /// agents keep their own credentials).
    pub async fn revoke_enrollment_token(&self, change: Change<'_>, id: i64) -> Result<(), StoreError> {
        let group = self.group(change.org_id, id).await?;
        let mut tx = self.begin().await?;
        sqlx::query(
            "UPDATE computer_groups SET enroll_token_hash = NULL, enroll_expires_ms = NULL, enroll_uses_left = NULL \
             WHERE id = $1 AND org_id = $2",
        )
        .bind(id)
        .bind(change.org_id)
        .execute(&mut *tx)
        .await?;
        let object = format!("enrollment token of group {}", group.doc.path);
        crate::audit::log_in(&mut tx, change, "revoke", &object, None, None).await?;
        tx.commit().await?;
        Ok(())
    }
}

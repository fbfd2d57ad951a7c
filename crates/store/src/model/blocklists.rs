//! Blocklist packages: hashes, metadata rules, approvals.

use super::*;

impl Store {
    /// The organization's blocklist packages, by name.
    pub async fn blocklists(&self, org_id: i64) -> Result<Vec<BlocklistRow>, StoreError> {
        let rows: Vec<(i64, String, Option<String>, String, i64, i64)> = sqlx::query_as(
            "SELECT b.id, b.name, b.description, b.rules_json, b.created_ms, \
             (SELECT COUNT(*) FROM blocklist_hashes h WHERE h.blocklist_id = b.id) FROM blocklists b \
             WHERE b.org_id = $1 ORDER BY b.name",
        )
        .bind(org_id)
        .fetch_all(self.pool())
        .await?;
        let approvals: Vec<(i64, String, String, String, i64)> = sqlx::query_as(
            "SELECT a.blocklist_id, a.scope, a.status, a.approved_by, a.approved_ms FROM blocklist_approvals a \
             JOIN blocklists b ON b.id = a.blocklist_id WHERE b.org_id = $1 ORDER BY a.scope",
        )
        .bind(org_id)
        .fetch_all(self.pool())
        .await?;
        rows.into_iter()
            .map(|(id, name, description, rules, created_ms, hash_count)| {
                Ok(BlocklistRow {
                    id,
                    name,
                    description,
                    rules: from_json(&rules, "blocklist rules")?,
                    hash_count,
                    approvals: approvals
                        .iter()
                        .filter(|a| a.0 == id)
                        .map(|a| ApprovalRow {
                            scope: a.1.clone(),
                            status: a.2.clone(),
                            approved_by: a.3.clone(),
                            approved_ms: a.4,
                        })
                        .collect(),
                    created_ms,
                })
            })
            .collect()
    }

    /// One blocklist package.
    pub async fn blocklist(&self, org_id: i64, id: i64) -> Result<BlocklistRow, StoreError> {
        self.blocklists(org_id).await?.into_iter().find(|b| b.id == id).ok_or(StoreError::NotFound("blocklist"))
    }

    /// A package's hashes, sorted.
    pub async fn blocklist_hashes(&self, org_id: i64, id: i64) -> Result<Vec<(String, String)>, StoreError> {
        Ok(sqlx::query_as(
            "SELECT h.hash, h.kind FROM blocklist_hashes h JOIN blocklists b ON b.id = h.blocklist_id \
             WHERE b.org_id = $1 AND b.id = $2 ORDER BY h.hash",
        )
        .bind(org_id)
        .bind(id)
        .fetch_all(self.pool())
        .await?)
    }

    /// Add an empty package.
    pub async fn create_blocklist(
        &self,
        change: Change<'_>,
        name: &str,
        description: Option<&str>,
    ) -> Result<i64, StoreError> {
        if self.blocklists(change.org_id).await?.iter().any(|b| b.name.eq_ignore_ascii_case(name)) {
            return Err(StoreError::Exists { what: "blocklist", name: name.to_owned() });
        }
        let mut tx = self.begin().await?;
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO blocklists (org_id, name, description, rules_json, created_ms) VALUES ($1, $2, $3, '[]', $4) \
             RETURNING id",
        )
        .bind(change.org_id)
        .bind(name)
        .bind(description)
        .bind(now_ms())
        .fetch_one(&mut *tx)
        .await?;
        let after = serde_json::json!({ "name": name, "description": description }).to_string();
        self.commit(tx, change, "create", &format!("blocklist {name}"), None, Some(after)).await?;
        Ok(id)
    }

    /// Add hashes (`(lower-case hex, kind)`); those already in the package are skipped.
    /// Returns how many were new.
    pub async fn add_blocklist_hashes(
        &self,
        change: Change<'_>,
        id: i64,
        hashes: &[(String, &'static str)],
    ) -> Result<u64, StoreError> {
        let package = self.blocklist(change.org_id, id).await?;
        let mut tx = self.begin().await?;
        let mut added = 0;
        for (hash, kind) in hashes {
            added += sqlx::query(
                "INSERT INTO blocklist_hashes (blocklist_id, hash, kind) VALUES ($1, $2, $3) \
                 ON CONFLICT (blocklist_id, hash) DO NOTHING",
            )
            .bind(id)
            .bind(hash)
            .bind(*kind)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        }
        let after = serde_json::json!({ "added": added, "offered": hashes.len(),
            "hashes": hashes.iter().map(|h| &h.0).collect::<Vec<_>>() })
        .to_string();
        let object = format!("hashes of blocklist {}", package.name);
        self.commit(tx, change, "add", &object, None, Some(after)).await?;
        Ok(added)
    }

    /// Replace a package's metadata rules.
    pub async fn set_blocklist_rules(&self, change: Change<'_>, id: i64, rules: &[RuleDoc]) -> Result<(), StoreError> {
        let package = self.blocklist(change.org_id, id).await?;
        let mut tx = self.begin().await?;
        sqlx::query("UPDATE blocklists SET rules_json = $1 WHERE id = $2 AND org_id = $3")
            .bind(json(&rules))
            .bind(id)
            .bind(change.org_id)
            .execute(&mut *tx)
            .await?;
        let object = format!("rules of blocklist {}", package.name);
        self.commit(tx, change, "update", &object, Some(json(&package.rules)), Some(json(&rules))).await
    }

    /// Approve a package at a scope (`enforce` denies what it matches; `monitor` reports).
    pub async fn approve_blocklist(
        &self,
        change: Change<'_>,
        id: i64,
        scope: &str,
        status: &str,
    ) -> Result<(), StoreError> {
        let package = self.blocklist(change.org_id, id).await?;
        let before = package.approvals.iter().find(|a| a.scope == scope).cloned();
        let mut tx = self.begin().await?;
        sqlx::query(
            "INSERT INTO blocklist_approvals (blocklist_id, scope, status, approved_by, approved_ms) \
             VALUES ($1, $2, $3, $4, $5) ON CONFLICT (blocklist_id, scope) DO UPDATE SET status = $3, \
             approved_by = $4, approved_ms = $5",
        )
        .bind(id)
        .bind(scope)
        .bind(status)
        .bind(change.actor)
        .bind(now_ms())
        .execute(&mut *tx)
        .await?;
        let after = serde_json::json!({ "scope": scope, "status": status }).to_string();
        let object = format!("blocklist {} at {scope}", package.name);
        self.commit(tx, change, "approve", &object, before.map(|b| json(&b)), Some(after)).await
    }

    /// Withdraw an approval.
    pub async fn revoke_blocklist(&self, change: Change<'_>, id: i64, scope: &str) -> Result<(), StoreError> {
        let package = self.blocklist(change.org_id, id).await?;
        let before =
            package.approvals.iter().find(|a| a.scope == scope).cloned().ok_or(StoreError::NotFound("approval"))?;
        let mut tx = self.begin().await?;
        sqlx::query("DELETE FROM blocklist_approvals WHERE blocklist_id = $1 AND scope = $2")
            .bind(id)
            .bind(scope)
            .execute(&mut *tx)
            .await?;
        let object = format!("blocklist {} at {scope}", package.name);
        self.commit(tx, change, "revoke", &object, Some(json(&before)), None).await
    }

    /// Remove a package with its hashes and approvals.
    pub async fn delete_blocklist(&self, change: Change<'_>, id: i64) -> Result<(), StoreError> {
        let package = self.blocklist(change.org_id, id).await?;
        let mut tx = self.begin().await?;
        sqlx::query("DELETE FROM blocklist_hashes WHERE blocklist_id = $1").bind(id).execute(&mut *tx).await?;
        sqlx::query("DELETE FROM blocklist_approvals WHERE blocklist_id = $1").bind(id).execute(&mut *tx).await?;
        sqlx::query("DELETE FROM blocklists WHERE id = $1 AND org_id = $2")
            .bind(id)
            .bind(change.org_id)
            .execute(&mut *tx)
            .await?;
        let object = format!("blocklist {}", package.name);
        self.commit(tx, change, "delete", &object, Some(json(&package)), None).await
    }
}

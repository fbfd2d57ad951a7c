//! The ordered policy list, its hit counts and unused policies.

use super::*;

impl Store {
    /// The organization's policies in decision order.
    pub async fn policies(&self, org_id: i64) -> Result<Vec<PolicyRow>, StoreError> {
        self.ensure_org_state(org_id).await?;
        #[derive(sqlx::FromRow)]
        struct Row {
            id: i64,
            name: String,
            description: Option<String>,
            position: i64,
            applications_json: String,
            action: String,
            ringfence: Option<String>,
            scope: String,
            status: String,
            enabled: i64,
            expires: Option<String>,
            created_ms: i64,
            hits: i64,
            last_matched_ms: Option<i64>,
            builtin: i64,
        }
        let rows: Vec<Row> = sqlx::query_as(
            "SELECT id, name, description, position, applications_json, action, ringfence, scope, status, enabled, \
             expires, created_ms, hits, last_matched_ms, builtin FROM policies WHERE org_id = $1 ORDER BY position, id",
        )
        .bind(org_id)
        .fetch_all(self.pool())
        .await?;
        rows.into_iter()
            .map(|r| {
                Ok(PolicyRow {
                    id: r.id,
                    doc: PolicyDoc {
                        name: r.name,
                        description: r.description,
                        position: r.position,
                        applications: from_json(&r.applications_json, "policy applications")?,
                        action: r.action,
                        ringfence: r.ringfence,
                        scope: Some(r.scope),
                        status: Some(r.status),
                        enabled: Some(r.enabled == 1),
                        expires: r.expires,
                    },
                    created_ms: r.created_ms,
                    hits: r.hits,
                    last_matched_ms: r.last_matched_ms,
                    builtin: r.builtin == 1,
                })
            })
            .collect()
    }

    /// One policy.
    pub async fn policy(&self, org_id: i64, id: i64) -> Result<PolicyRow, StoreError> {
        self.policies(org_id).await?.into_iter().find(|p| p.id == id).ok_or(StoreError::NotFound("policy"))
    }

    /// Add a policy; a position of 0 or less puts it last.
    pub async fn create_policy(&self, change: Change<'_>, doc: &PolicyDoc) -> Result<i64, StoreError> {
        let stored = self.placed(change.org_id, doc).await?;
        let mut tx = self.begin().await?;
        let id = insert_policy(&mut tx, change.org_id, &stored).await?;
        self.commit(tx, change, "create", &format!("policy {}", stored.name), None, Some(json(&stored))).await?;
        Ok(id)
    }

    /// Replace a policy. A built-in policy keeps its name, applications and action.
    pub async fn update_policy(&self, change: Change<'_>, id: i64, doc: &PolicyDoc) -> Result<(), StoreError> {
        let before = self.policy(change.org_id, id).await?;
        if before.builtin
            && (doc.name != before.doc.name
                || doc.applications != before.doc.applications
                || doc.action != before.doc.action)
        {
            return Err(StoreError::Invalid(format!(
                "{:?} is built in: its name, applications and action are fixed; it can be moved, switched off, re-scoped or set to monitor",
                before.doc.name
            )));
        }
        if !doc.name.eq_ignore_ascii_case(&before.doc.name)
            && self.policies(change.org_id).await?.iter().any(|p| p.doc.name.eq_ignore_ascii_case(&doc.name))
        {
            return Err(StoreError::Exists { what: "policy", name: doc.name.clone() });
        }
        let position = if doc.position > 0 { doc.position } else { before.doc.position };
        let after = PolicyDoc { position, ..doc.clone() };
        let mut tx = self.begin().await?;
        sqlx::query(
            "UPDATE policies SET name = $1, description = $2, position = $3, applications_json = $4, action = $5, \
             ringfence = $6, scope = $7, status = $8, enabled = $9, expires = $10 WHERE id = $11 AND org_id = $12",
        )
        .bind(&after.name)
        .bind(&after.description)
        .bind(position)
        .bind(json(&after.applications))
        .bind(&after.action)
        .bind(&after.ringfence)
        .bind(after.scope.clone().unwrap_or_else(|| "organization".into()))
        .bind(after.status.clone().unwrap_or_else(|| "enforce".into()))
        .bind(flag(after.enabled.unwrap_or(true)))
        .bind(&after.expires)
        .bind(id)
        .bind(change.org_id)
        .execute(&mut *tx)
        .await?;
        let object = format!("policy {}", before.doc.name);
        self.commit(tx, change, "update", &object, Some(json(&before.doc)), Some(json(&after))).await
    }

    /// Remove policies (all or none: a built-in or unknown id refuses the whole request).
    pub async fn delete_policies(&self, change: Change<'_>, ids: &[i64]) -> Result<Vec<String>, StoreError> {
        let policies = self.policies(change.org_id).await?;
        let mut doomed = Vec::new();
        for id in ids {
            let p = policies.iter().find(|p| p.id == *id).ok_or(StoreError::NotFound("policy"))?;
            if p.builtin {
                return Err(StoreError::Invalid(format!(
                    "{:?} is built in and cannot be removed; switch it off instead",
                    p.doc.name
                )));
            }
            doomed.push(p);
        }
        let mut tx = self.begin().await?;
        for p in &doomed {
            sqlx::query("DELETE FROM policies WHERE id = $1 AND org_id = $2")
                .bind(p.id)
                .bind(change.org_id)
                .execute(&mut *tx)
                .await?;
        }
        let names: Vec<String> = doomed.iter().map(|p| p.doc.name.clone()).collect();
        let before: Vec<&PolicyDoc> = doomed.iter().map(|p| &p.doc).collect();
        let object =
            if names.len() == 1 { format!("policy {}", names[0]) } else { format!("{} policies", names.len()) };
        self.commit(tx, change, "delete", &object, Some(json(&before)), None).await?;
        Ok(names)
    }

    /// Move a policy in the order; positions are renumbered 10, 20, 30…
    pub async fn move_policy(&self, change: Change<'_>, id: i64, to: Move) -> Result<(), StoreError> {
        let mut policies = self.policies(change.org_id).await?;
        let from = policies.iter().position(|p| p.id == id).ok_or(StoreError::NotFound("policy"))?;
        let before: Vec<(String, i64)> = policies.iter().map(|p| (p.doc.name.clone(), p.doc.position)).collect();
        let moved = policies.remove(from);
        let name = moved.doc.name.clone();
        let target = match to {
            Move::Up => from.saturating_sub(1),
            Move::Down => (from + 1).min(policies.len()),
            Move::Top => 0,
            Move::Bottom => policies.len(),
        };
        policies.insert(target, moved);
        let mut tx = self.begin().await?;
        for (i, p) in policies.iter().enumerate() {
            let position = (i as i64 + 1) * 10;
            if p.doc.position != position {
                sqlx::query("UPDATE policies SET position = $1 WHERE id = $2 AND org_id = $3")
                    .bind(position)
                    .bind(p.id)
                    .bind(change.org_id)
                    .execute(&mut *tx)
                    .await?;
            }
        }
        let after: Vec<(String, i64)> =
            policies.iter().enumerate().map(|(i, p)| (p.doc.name.clone(), (i as i64 + 1) * 10)).collect();
        let action = match to {
            Move::Up => "move up",
            Move::Down => "move down",
            Move::Top => "move to top",
            Move::Bottom => "move to bottom",
        };
        self.commit(tx, change, action, &format!("policy {name}"), Some(json(&before)), Some(json(&after))).await
    }

    /// Count matches reported by an agent (no version bump, no audit: this is use, not change).
    /// Counts saturate at [`MAX_HITS`] (SQLite's integers overflow with an error, not a
    /// wrap) and a match time is taken only if it is not in the future.
    pub async fn record_hits(&self, org_id: i64, hits: &[PolicyHit]) -> Result<(), StoreError> {
        let now = now_ms();
        for PolicyHit { policy, count, last_ms } in hits {
            let count = i64::try_from(*count).unwrap_or(MAX_HITS).min(MAX_HITS);
            let last_ms = (*last_ms).clamp(0, now);
            sqlx::query(
                "UPDATE policies SET hits = CASE WHEN hits >= $1 - $2 THEN $1 ELSE hits + $2 END, \
                 last_matched_ms = CASE WHEN last_matched_ms IS NULL OR last_matched_ms < $3 THEN $3 \
                 ELSE last_matched_ms END WHERE org_id = $4 AND name = $5",
            )
            .bind(MAX_HITS)
            .bind(count)
            .bind(last_ms)
            .bind(org_id)
            .bind(policy)
            .execute(self.pool())
            .await?;
        }
        Ok(())
    }

    /// Policies not matched since `since_ms` (or never), except built-ins and those created
    /// after `created_before_ms`.
    pub async fn unused_policies(
        &self,
        org_id: i64,
        since_ms: i64,
        created_before_ms: i64,
    ) -> Result<Vec<PolicyRow>, StoreError> {
        Ok(self
            .policies(org_id)
            .await?
            .into_iter()
            .filter(|p| {
                !p.builtin && p.created_ms < created_before_ms && p.last_matched_ms.is_none_or(|t| t < since_ms)
            })
            .collect())
    }
}

impl Store {
    /// Create `applications` and one policy that uses them, in one transaction with one audit
    /// entry named `action` (`accept baseline`, `approve request`): one change, never half of
    /// one. Fails before writing anything when a name is taken.
    pub async fn create_policy_with_applications(
        &self,
        change: Change<'_>,
        action: &str,
        applications: &[ApplicationDoc],
        policy: &PolicyDoc,
    ) -> Result<i64, StoreError> {
        let existing = self.applications(change.org_id).await?;
        for a in applications {
            if existing.iter().any(|e| e.doc.name.eq_ignore_ascii_case(&a.name))
                || applications.iter().filter(|b| b.name.eq_ignore_ascii_case(&a.name)).count() > 1
            {
                return Err(StoreError::Exists { what: "application", name: a.name.clone() });
            }
        }
        let stored = self.placed(change.org_id, policy).await?;
        let mut tx = self.begin().await?;
        for a in applications {
            super::applications::insert_application(&mut tx, change.org_id, a).await?;
        }
        let id = insert_policy(&mut tx, change.org_id, &stored).await?;
        let after = serde_json::json!({ "applications": applications, "policy": stored }).to_string();
        self.commit(tx, change, action, &format!("policy {}", stored.name), None, Some(after)).await?;
        Ok(id)
    }
}

impl Store {
    /// Add `rules` to the application `name` — made with `description` if there is none —
    /// and, if given, a policy for it; one transaction, one audit entry (what an
    /// Installation window captured). Rules already there are not added twice.
    pub async fn add_application_rules(
        &self,
        change: Change<'_>,
        action: &str,
        name: &str,
        description: Option<&str>,
        rules: &[RuleDoc],
        policy: Option<&PolicyDoc>,
    ) -> Result<(), StoreError> {
        let existing =
            self.applications(change.org_id).await?.into_iter().find(|a| a.doc.name.eq_ignore_ascii_case(name));
        let placed = match policy {
            Some(p) => Some(self.placed(change.org_id, p).await?),
            None => None,
        };
        let mut tx = self.begin().await?;
        let (before, after) = match &existing {
            Some(row) => {
                let mut after = row.doc.clone();
                for r in rules {
                    if !after.rules.contains(r) {
                        after.rules.push(r.clone());
                    }
                }
                sqlx::query("UPDATE applications SET rules_json = $1 WHERE id = $2 AND org_id = $3")
                    .bind(json(&after.rules))
                    .bind(row.id)
                    .bind(change.org_id)
                    .execute(&mut *tx)
                    .await?;
                (Some(json(&row.doc)), after)
            }
            None => {
                let doc = ApplicationDoc {
                    name: name.to_owned(),
                    description: description.map(str::to_owned),
                    rules: rules.to_vec(),
                    except: Vec::new(),
                };
                super::applications::insert_application(&mut tx, change.org_id, &doc).await?;
                (None, doc)
            }
        };
        if let Some(p) = &placed {
            insert_policy(&mut tx, change.org_id, p).await?;
        }
        let after = serde_json::json!({ "application": after, "policy": placed }).to_string();
        self.commit(
            tx,
            change,
            action,
            &format!("application {}", existing.map_or(name.to_owned(), |e| e.doc.name)),
            before,
            Some(after),
        )
        .await
    }

    /// `doc` as it will be stored: its name not taken, a position of 0 or less made last.
    async fn placed(&self, org_id: i64, doc: &PolicyDoc) -> Result<PolicyDoc, StoreError> {
        let policies = self.policies(org_id).await?;
        if policies.iter().any(|p| p.doc.name.eq_ignore_ascii_case(&doc.name)) {
            return Err(StoreError::Exists { what: "policy", name: doc.name.clone() });
        }
        let position = if doc.position > 0 {
            doc.position
        } else {
            policies.iter().map(|p| p.doc.position).max().unwrap_or(0) + 10
        };
        Ok(PolicyDoc { position, ..doc.clone() })
    }
}

/// Insert a placed policy ([`Store::placed`]) in `tx`; its id.
async fn insert_policy(tx: &mut Tx, org_id: i64, stored: &PolicyDoc) -> Result<i64, StoreError> {
    Ok(sqlx::query_scalar(
        "INSERT INTO policies (org_id, name, description, position, applications_json, action, ringfence, scope, \
         status, enabled, expires, created_ms) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12) RETURNING id",
    )
    .bind(org_id)
    .bind(&stored.name)
    .bind(&stored.description)
    .bind(stored.position)
    .bind(json(&stored.applications))
    .bind(&stored.action)
    .bind(&stored.ringfence)
    .bind(stored.scope.clone().unwrap_or_else(|| "organization".into()))
    .bind(stored.status.clone().unwrap_or_else(|| "enforce".into()))
    .bind(flag(stored.enabled.unwrap_or(true)))
    .bind(&stored.expires)
    .bind(now_ms())
    .fetch_one(&mut **tx)
    .await?)
}

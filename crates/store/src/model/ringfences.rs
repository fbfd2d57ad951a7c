//! Ringfence profiles.

use super::*;

impl Store {
    /// The organization's ringfence profiles, by name.
    pub async fn ringfences(&self, org_id: i64) -> Result<Vec<RingfenceRow>, StoreError> {
        let rows: Vec<(i64, String, i64)> =
            sqlx::query_as("SELECT id, doc_json, created_ms FROM ringfences WHERE org_id = $1 ORDER BY name")
                .bind(org_id)
                .fetch_all(self.pool())
                .await?;
        rows.into_iter()
            .map(|(id, doc, created_ms)| {
                Ok(RingfenceRow { id, doc: from_json(&doc, "ringfence profile")?, created_ms })
            })
            .collect()
    }

    /// One ringfence profile.
    pub async fn ringfence(&self, org_id: i64, id: i64) -> Result<RingfenceRow, StoreError> {
        self.ringfences(org_id).await?.into_iter().find(|r| r.id == id).ok_or(StoreError::NotFound("ringfence"))
    }

    /// Add a ringfence profile.
    pub async fn create_ringfence(&self, change: Change<'_>, doc: &RingfenceDoc) -> Result<i64, StoreError> {
        if self.ringfences(change.org_id).await?.iter().any(|r| r.doc.name.eq_ignore_ascii_case(&doc.name)) {
            return Err(StoreError::Exists { what: "ringfence", name: doc.name.clone() });
        }
        let mut tx = self.begin().await?;
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO ringfences (org_id, name, doc_json, created_ms) VALUES ($1, $2, $3, $4) RETURNING id",
        )
        .bind(change.org_id)
        .bind(&doc.name)
        .bind(json(doc))
        .bind(now_ms())
        .fetch_one(&mut *tx)
        .await?;
        self.commit(tx, change, "create", &format!("ringfence {}", doc.name), None, Some(json(doc))).await?;
        Ok(id)
    }

    /// Replace a ringfence profile's rules (its name stays: policies use it).
    pub async fn update_ringfence(&self, change: Change<'_>, id: i64, doc: &RingfenceDoc) -> Result<(), StoreError> {
        let before = self.ringfence(change.org_id, id).await?;
        let after = RingfenceDoc { name: before.doc.name.clone(), ..doc.clone() };
        let mut tx = self.begin().await?;
        sqlx::query("UPDATE ringfences SET doc_json = $1 WHERE id = $2 AND org_id = $3")
            .bind(json(&after))
            .bind(id)
            .bind(change.org_id)
            .execute(&mut *tx)
            .await?;
        let object = format!("ringfence {}", before.doc.name);
        self.commit(tx, change, "update", &object, Some(json(&before.doc)), Some(json(&after))).await
    }

    /// Remove a ringfence profile no policy uses.
    pub async fn delete_ringfence(&self, change: Change<'_>, id: i64) -> Result<(), StoreError> {
        let before = self.ringfence(change.org_id, id).await?;
        let users: Vec<String> = self
            .policies(change.org_id)
            .await?
            .into_iter()
            .filter(|p| p.doc.ringfence.as_deref().is_some_and(|r| r.eq_ignore_ascii_case(&before.doc.name)))
            .map(|p| p.doc.name)
            .collect();
        let object = format!("ringfence {}", before.doc.name);
        refuse_if_used(&format!("ringfence {:?}", before.doc.name), &users, "change or remove those policies first")?;
        self.delete_row(change, "ringfences", id, &object, json(&before.doc)).await
    }
}

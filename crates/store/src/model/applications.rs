//! Custom applications (the built-in ones live in the catalogue).

use super::*;

impl Store {
    /// The organization's custom applications, by name.
    pub async fn applications(&self, org_id: i64) -> Result<Vec<ApplicationRow>, StoreError> {
        let rows: Vec<(i64, String, Option<String>, String, String, i64)> = sqlx::query_as(
            "SELECT id, name, description, rules_json, except_json, created_ms FROM applications WHERE org_id = $1 \
             ORDER BY name",
        )
        .bind(org_id)
        .fetch_all(self.pool())
        .await?;
        rows.into_iter()
            .map(|(id, name, description, rules, except, created_ms)| {
                Ok(ApplicationRow {
                    id,
                    doc: ApplicationDoc {
                        name,
                        description,
                        rules: from_json(&rules, "application rules")?,
                        except: from_json(&except, "application exclusions")?,
                    },
                    created_ms,
                })
            })
            .collect()
    }

    async fn application(&self, org_id: i64, id: i64) -> Result<ApplicationRow, StoreError> {
        self.applications(org_id).await?.into_iter().find(|a| a.id == id).ok_or(StoreError::NotFound("application"))
    }

    /// Add a custom application.
    pub async fn create_application(&self, change: Change<'_>, doc: &ApplicationDoc) -> Result<i64, StoreError> {
        if self.applications(change.org_id).await?.iter().any(|a| a.doc.name.eq_ignore_ascii_case(&doc.name)) {
            return Err(StoreError::Exists { what: "application", name: doc.name.clone() });
        }
        let mut tx = self.begin().await?;
        let id = insert_application(&mut tx, change.org_id, doc).await?;
        self.commit(tx, change, "create", &format!("application {}", doc.name), None, Some(json(doc))).await?;
        Ok(id)
    }

    /// Replace an application's description and rules (its name stays: policies use it).
    pub async fn update_application(
        &self,
        change: Change<'_>,
        id: i64,
        doc: &ApplicationDoc,
    ) -> Result<(), StoreError> {
        let before = self.application(change.org_id, id).await?;
        let mut tx = self.begin().await?;
        sqlx::query(
            "UPDATE applications SET description = $1, rules_json = $2, except_json = $3 WHERE id = $4 AND org_id = $5",
        )
        .bind(&doc.description)
        .bind(json(&doc.rules))
        .bind(json(&doc.except))
        .bind(id)
        .bind(change.org_id)
        .execute(&mut *tx)
        .await?;
        let after = ApplicationDoc { name: before.doc.name.clone(), ..doc.clone() };
        let object = format!("application {}", before.doc.name);
        self.commit(tx, change, "update", &object, Some(json(&before.doc)), Some(json(&after))).await
    }

    /// Remove an application no policy uses.
    pub async fn delete_application(&self, change: Change<'_>, id: i64) -> Result<(), StoreError> {
        let before = self.application(change.org_id, id).await?;
        let users: Vec<String> = self
            .policies(change.org_id)
            .await?
            .into_iter()
            .filter(|p| p.doc.applications.iter().any(|a| a.eq_ignore_ascii_case(&before.doc.name)))
            .map(|p| p.doc.name)
            .collect();
        let object = format!("application {}", before.doc.name);
        refuse_if_used(&format!("application {:?}", before.doc.name), &users, "remove it from those policies first")?;
        self.delete_row(change, "applications", id, &object, json(&before.doc)).await
    }
}

/// Insert an application in `tx`; its id.
pub(super) async fn insert_application(tx: &mut Tx, org_id: i64, doc: &ApplicationDoc) -> Result<i64, StoreError> {
    Ok(sqlx::query_scalar(
        "INSERT INTO applications (org_id, name, description, rules_json, except_json, created_ms) \
         VALUES ($1, $2, $3, $4, $5, $6) RETURNING id",
    )
    .bind(org_id)
    .bind(&doc.name)
    .bind(&doc.description)
    .bind(json(&doc.rules))
    .bind(json(&doc.except))
    .bind(now_ms())
    .fetch_one(&mut **tx)
    .await?)
}

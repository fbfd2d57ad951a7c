//! Computers: the enrolled agents' machines, their group and mode.

use super::*;

impl Store {
    /// The organization's computers, by name.
    pub async fn computers(&self, org_id: i64) -> Result<Vec<ComputerRow>, StoreError> {
        self.computers_where(org_id, None).await
    }

    pub(crate) async fn computers_where(&self, org_id: i64, id: Option<i64>) -> Result<Vec<ComputerRow>, StoreError> {
        #[derive(sqlx::FromRow)]
        struct Row {
            id: i64,
            name: String,
            group_path: Option<String>,
            os: String,
            mode: Option<String>,
            mode_until: Option<String>,
            capture_into: Option<String>,
            host_json: Option<String>,
            agent_version: Option<String>,
            enrolled_ms: i64,
            last_seen_ms: Option<i64>,
            bundle_version: i64,
            bundle_error: Option<String>,
        }
        let rows: Vec<Row> = sqlx::query_as(
            "SELECT c.id, c.name, g.path AS group_path, c.os, c.mode, c.mode_until, c.capture_into, c.host_json, \
             c.agent_version, c.enrolled_ms, c.last_seen_ms, c.bundle_version, c.bundle_error FROM computers c \
             LEFT JOIN computer_groups g ON g.id = c.group_id WHERE c.org_id = $1 AND ($2 = 0 OR c.id = $2) ORDER BY c.name",
        )
        .bind(org_id)
        .bind(id.unwrap_or(0))
        .fetch_all(self.pool())
        .await?;
        Ok(rows
            .into_iter()
            .map(|r| ComputerRow {
                id: r.id,
                doc: ComputerDoc {
                    name: r.name,
                    group: r.group_path,
                    os: Some(r.os),
                    mode: r.mode,
                    until: r.mode_until,
                    capture_into: r.capture_into,
                },
                host_json: r.host_json,
                agent_version: r.agent_version,
                enrolled_ms: r.enrolled_ms,
                last_seen_ms: r.last_seen_ms,
                bundle_version: r.bundle_version,
                bundle_error: r.bundle_error,
            })
            .collect())
    }

    /// One computer.
    pub async fn computer(&self, org_id: i64, id: i64) -> Result<ComputerRow, StoreError> {
        self.computers_where(org_id, Some(id)).await?.pop().ok_or(StoreError::NotFound("computer"))
    }

    /// Move a computer to another group and set or clear its own mode.
    pub async fn update_computer(&self, change: Change<'_>, id: i64, doc: &ComputerDoc) -> Result<(), StoreError> {
        let before = self.computer(change.org_id, id).await?;
        let group_id = match &doc.group {
            Some(path) => Some(
                self.groups(change.org_id)
                    .await?
                    .into_iter()
                    .find(|g| g.doc.path.eq_ignore_ascii_case(path))
                    .map(|g| g.id)
                    .ok_or_else(|| StoreError::Invalid(format!("group {path:?} does not exist")))?,
            ),
            None => None,
        };
        let mut tx = self.begin().await?;
        sqlx::query(
            "UPDATE computers SET group_id = $1, mode = $2, mode_until = $3, capture_into = $4 WHERE id = $5 AND org_id = $6",
        )
        .bind(group_id)
        .bind(&doc.mode)
        .bind(&doc.until)
        .bind(&doc.capture_into)
        .bind(id)
        .bind(change.org_id)
        .execute(&mut *tx)
        .await?;
        let after = ComputerDoc { name: before.doc.name.clone(), os: before.doc.os.clone(), ..doc.clone() };
        let object = format!("computer {}", before.doc.name);
        self.commit(tx, change, "update", &object, Some(json(&before.doc)), Some(json(&after))).await
    }

    /// Remove a computer: its credential stops working, its events go with it.
    pub async fn delete_computer(&self, change: Change<'_>, id: i64) -> Result<(), StoreError> {
        let before = self.computer(change.org_id, id).await?;
        let mut tx = self.begin().await?;
        sqlx::query("DELETE FROM events WHERE computer_id = $1").bind(id).execute(&mut *tx).await?;
        sqlx::query("DELETE FROM computers WHERE id = $1 AND org_id = $2")
            .bind(id)
            .bind(change.org_id)
            .execute(&mut *tx)
            .await?;
        let object = format!("computer {}", before.doc.name);
        self.commit(tx, change, "delete", &object, Some(json(&before.doc)), None).await
    }
}

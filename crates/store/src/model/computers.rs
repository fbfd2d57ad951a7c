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
            packages_ms: Option<i64>,
            package_count: i64,
            events_lost: i64,
        }
        let rows: Vec<Row> = sqlx::query_as(
            "SELECT c.id, c.name, g.path AS group_path, c.os, c.mode, c.mode_until, c.capture_into, c.host_json, \
             c.agent_version, c.enrolled_ms, c.last_seen_ms, c.bundle_version, c.bundle_error, c.packages_ms, c.events_lost, \
             (SELECT COUNT(*) FROM computer_packages p WHERE p.computer_id = c.id) AS package_count FROM computers c \
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
                packages_ms: r.packages_ms,
                package_count: r.package_count,
                events_lost: r.events_lost,
            })
            .collect())
    }

    /// Every computer's id and model entry (name, group, OS, mode), and nothing else: what
    /// checking and compiling the model needs, read in one pass however many there are.
    pub async fn computer_docs(&self, org_id: i64) -> Result<Vec<(i64, ComputerDoc)>, StoreError> {
        type Row = (i64, String, Option<String>, String, Option<String>, Option<String>, Option<String>);
        let rows: Vec<Row> = sqlx::query_as(
            "SELECT c.id, c.name, g.path, c.os, c.mode, c.mode_until, c.capture_into FROM computers c \
             LEFT JOIN computer_groups g ON g.id = c.group_id WHERE c.org_id = $1 ORDER BY c.name",
        )
        .bind(org_id)
        .fetch_all(self.pool())
        .await?;
        Ok(rows
            .into_iter()
            .map(|(id, name, group, os, mode, until, capture_into)| {
                (id, ComputerDoc { name, group, os: Some(os), mode, until, capture_into })
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
        sqlx::query("DELETE FROM computer_packages WHERE computer_id = $1").bind(id).execute(&mut *tx).await?;
        sqlx::query("DELETE FROM computers WHERE id = $1 AND org_id = $2")
            .bind(id)
            .bind(change.org_id)
            .execute(&mut *tx)
            .await?;
        let object = format!("computer {}", before.doc.name);
        self.commit(tx, change, "delete", &object, Some(json(&before.doc)), None).await
    }

    /// Replace what a computer's agent said is installed (one transaction: a reader sees the
    /// old list or the new one). `packages` must be checked and without repeated
    /// `(name, arch)` pairs; the agent API does that.
    pub async fn set_computer_packages(
        &self,
        computer_id: i64,
        packages: &[PackageRow],
        at_ms: i64,
    ) -> Result<(), StoreError> {
        /// Rows per INSERT: 3 parameters each, far below either database's limit.
        const CHUNK: usize = 400;
        let mut tx = self.begin().await?;
        sqlx::query("DELETE FROM computer_packages WHERE computer_id = $1").bind(computer_id).execute(&mut *tx).await?;
        for chunk in packages.chunks(CHUNK) {
            let mut sql = String::from("INSERT INTO computer_packages (computer_id, name, arch, version) VALUES ");
            for i in 0..chunk.len() {
                let b = 2 + 3 * i;
                if i > 0 {
                    sql.push(',');
                }
                sql.push_str(&format!("($1, ${b}, ${}, ${})", b + 1, b + 2));
            }
            // Only placeholders are formatted into the text; every value is bound.
            let mut q = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(computer_id);
            for p in chunk {
                q = q.bind(&p.name).bind(&p.arch).bind(&p.version);
            }
            q.execute(&mut *tx).await?;
        }
        sqlx::query("UPDATE computers SET packages_ms = $1 WHERE id = $2")
            .bind(at_ms)
            .bind(computer_id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    /// A computer's installed packages by name, those whose name contains `filter` (ASCII
    /// case ignored), at most `limit`.
    pub async fn computer_packages(
        &self,
        org_id: i64,
        computer_id: i64,
        filter: &str,
        limit: i64,
    ) -> Result<Vec<PackageRow>, StoreError> {
        let pattern = format!("%{}%", filter.to_ascii_lowercase().replace(['%', '_', '\\'], ""));
        let rows: Vec<(String, String, String)> = sqlx::query_as(
            "SELECT p.name, p.arch, p.version FROM computer_packages p JOIN computers c ON c.id = p.computer_id \
             WHERE c.org_id = $1 AND p.computer_id = $2 AND LOWER(p.name) LIKE $3 ORDER BY p.name, p.arch LIMIT $4",
        )
        .bind(org_id)
        .bind(computer_id)
        .bind(pattern)
        .bind(limit)
        .fetch_all(self.pool())
        .await?;
        Ok(rows.into_iter().map(|(name, arch, version)| PackageRow { name, arch, version }).collect())
    }

    /// Every package name installed on some computer of the organization, with on how many.
    pub async fn organization_packages(&self, org_id: i64) -> Result<Vec<(String, i64)>, StoreError> {
        Ok(sqlx::query_as(
            "SELECT p.name, COUNT(DISTINCT p.computer_id) FROM computer_packages p JOIN computers c ON c.id = p.computer_id \
             WHERE c.org_id = $1 GROUP BY p.name ORDER BY p.name",
        )
        .bind(org_id)
        .fetch_all(self.pool())
        .await?)
    }
}

fn bypass_context(computer_id: i64) -> String {
    format!("computers.bypass_key:{computer_id}")
}

impl Store {
    /// Keep the key a computer's agent made for offline bypass codes, sealed.
    pub async fn set_bypass_key(&self, computer_id: i64, key: &[u8; 32]) -> Result<(), StoreError> {
        let sealed = self.keys.seal(crate::hex(key).as_bytes(), &bypass_context(computer_id))?;
        sqlx::query("UPDATE computers SET bypass_key = $1 WHERE id = $2")
            .bind(sealed)
            .bind(computer_id)
            .execute(self.pool())
            .await?;
        Ok(())
    }

    /// Issue the next bypass code's counter for a computer: its key and the counter, counted
    /// and audited (what it grants, never the code) in one transaction. `None` when its agent
    /// has not registered a key.
    pub async fn issue_bypass(
        &self,
        change: Change<'_>,
        computer_id: i64,
        grants: &str,
    ) -> Result<Option<([u8; 32], u64)>, StoreError> {
        let c = self.computer(change.org_id, computer_id).await?;
        let stored: Option<String> =
            sqlx::query_scalar("SELECT bypass_key FROM computers WHERE id = $1 AND org_id = $2")
                .bind(computer_id)
                .bind(change.org_id)
                .fetch_one(self.pool())
                .await?;
        let Some(stored) = stored else { return Ok(None) };
        let what = format!("the bypass key of computer {}", c.doc.name);
        let opened = self.keys.open(&stored, &bypass_context(computer_id), &what)?;
        if let crate::secrets::Opened::Plain(_) = opened {
            return Err(crate::SecretKeyError::Unsealed(what).into());
        }
        let key = crate::secrets::unhex(opened.text())
            .and_then(|b| <[u8; 32]>::try_from(b).ok())
            .ok_or_else(|| StoreError::Corrupt(what))?;
        let mut tx = self.begin().await?;
        let counter: i64 = sqlx::query_scalar(
            "UPDATE computers SET bypass_counter = bypass_counter + 1 WHERE id = $1 AND org_id = $2 RETURNING bypass_counter",
        )
        .bind(computer_id)
        .bind(change.org_id)
        .fetch_one(&mut *tx)
        .await?;
        let object = format!("computer {}", c.doc.name);
        let after = serde_json::json!({ "bypass_code": counter, "grants": grants }).to_string();
        crate::audit::log_in(&mut tx, change, "issue bypass code", &object, None, Some(after)).await?;
        tx.commit().await?;
        Ok(Some((key, counter as u64)))
    }
}

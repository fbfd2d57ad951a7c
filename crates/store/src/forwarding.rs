//! Forwarding destinations (each with its cursor, lease and last error) and event retention
//! per organization. Neither bumps the model version: agents are not concerned.
//!
//! At least once: a destination's cursor is the last event id it received, moved only after
//! a batch was delivered, and only by the server process holding the destination's lease.
//! On PostgreSQL, ids are handed out before commit, so an event committed late could carry
//! an id below one already forwarded: batches only take events received more than
//! [`SETTLE_MS`] ago, far longer than an insert's transaction.

use crate::audit::log_in;
use crate::{Change, Store, StoreError, now_ms};
use serde::Serialize;

/// Events younger than this (by the time the server received them) wait for the next batch.
pub const SETTLE_MS: i64 = 5_000;

/// A destination, as the console and the API show it (the token never leaves the store).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, sqlx::FromRow)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ForwarderRow {
    /// Id.
    pub id: i64,
    /// Name, unique in the organization.
    pub name: String,
    /// `syslog+tcp://HOST:PORT`, `syslog+tls://HOST:PORT`, `http(s)://…`.
    pub url: String,
    /// The CA certificates trusted for TLS (PEM), if not the Mozilla roots.
    pub ca_pem: Option<String>,
    /// Whether a bearer token is set.
    #[sqlx(try_from = "i64")]
    pub has_token: BoolFlag,
    /// Sending.
    #[sqlx(try_from = "i64")]
    pub enabled: BoolFlag,
    /// The last event id delivered.
    pub cursor_id: i64,
    /// Events delivered so far.
    pub sent: i64,
    /// When a batch last went, Unix milliseconds.
    pub last_sent_ms: Option<i64>,
    /// The last failure, kept until a batch goes again.
    pub last_error: Option<String>,
    /// When it failed.
    pub last_error_ms: Option<i64>,
    /// Events stored and not yet delivered.
    pub backlog: i64,
}

/// A 0/1 column read as a boolean.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(transparent)]
pub struct BoolFlag(pub bool);

impl From<i64> for BoolFlag {
    fn from(v: i64) -> BoolFlag {
        BoolFlag(v != 0)
    }
}

/// What an administrator sets of a destination.
#[derive(Clone, Debug, Default)]
pub struct ForwarderSpec {
    /// Name.
    pub name: String,
    /// URL, checked by the caller.
    pub url: String,
    /// CA certificates (PEM), checked by the caller.
    pub ca_pem: Option<String>,
    /// Sending.
    pub enabled: bool,
}

/// What becomes of the token on an update.
#[derive(Clone, Debug)]
pub enum TokenChange {
    /// Left as it is.
    Keep,
    /// Replaced.
    Set(String),
    /// Removed.
    Clear,
}

/// A destination to send to, with its token opened (for the forwarding loop only).
#[derive(Clone, Debug)]
pub struct ForwarderJob {
    /// Id.
    pub id: i64,
    /// Organization.
    pub org_id: i64,
    /// Its name.
    pub organization: String,
    /// URL.
    pub url: String,
    /// CA certificates.
    pub ca_pem: Option<String>,
    /// The bearer token, opened; `Err` if it does not open with this server's keys.
    pub token: Result<Option<String>, String>,
    /// The last event id delivered.
    pub cursor_id: i64,
}

/// One event to forward.
#[derive(Clone, Debug, sqlx::FromRow)]
pub struct ForwardEvent {
    /// Id.
    pub id: i64,
    /// Computer name.
    pub computer: String,
    /// Received, Unix milliseconds.
    pub received_ms: i64,
    /// The record, JSON.
    pub record_json: String,
}

/// How long an organization keeps its events; `None`: no limit.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, serde::Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Retention {
    /// Events received longer ago than this many days go.
    pub days: Option<i64>,
    /// Beyond this many events, the oldest go.
    pub events: Option<i64>,
}

fn token_context(org_id: i64, name: &str) -> String {
    format!("forwarder token of organization {org_id}, destination {name}")
}

const ROW: &str = "f.id, f.name, f.url, f.ca_pem, CAST(CASE WHEN f.token_sealed IS NULL THEN 0 ELSE 1 END AS BIGINT) AS has_token, \
                   f.enabled, f.cursor_id, f.sent, f.last_sent_ms, f.last_error, f.last_error_ms, \
                   (SELECT COUNT(*) FROM events e WHERE e.org_id = f.org_id AND e.id > f.cursor_id) AS backlog";

impl Store {
    /// The organization's destinations, by name.
    pub async fn forwarders(&self, org_id: i64) -> Result<Vec<ForwarderRow>, StoreError> {
        let q = format!("SELECT {ROW} FROM forwarders f WHERE f.org_id = $1 ORDER BY f.name");
        Ok(sqlx::query_as(sqlx::AssertSqlSafe(q)).bind(org_id).fetch_all(self.pool()).await?)
    }

    /// One destination.
    pub async fn forwarder(&self, org_id: i64, id: i64) -> Result<ForwarderRow, StoreError> {
        let q = format!("SELECT {ROW} FROM forwarders f WHERE f.org_id = $1 AND f.id = $2");
        sqlx::query_as(sqlx::AssertSqlSafe(q))
            .bind(org_id)
            .bind(id)
            .fetch_optional(self.pool())
            .await?
            .ok_or(StoreError::NotFound("forwarding destination"))
    }

    /// Add a destination. `from_start`: it receives every stored event; else only those
    /// stored from now on (a new SIEM is not flooded with history).
    pub async fn create_forwarder(
        &self,
        change: Change<'_>,
        spec: &ForwarderSpec,
        token: Option<&str>,
        from_start: bool,
    ) -> Result<i64, StoreError> {
        let sealed =
            token.map(|t| self.keys.seal(t.as_bytes(), &token_context(change.org_id, &spec.name))).transpose()?;
        let mut tx = self.begin().await?;
        let cursor: i64 = if from_start {
            0
        } else {
            sqlx::query_scalar("SELECT COALESCE(MAX(id), 0) FROM events WHERE org_id = $1")
                .bind(change.org_id)
                .fetch_one(&mut *tx)
                .await?
        };
        let id: Result<i64, sqlx::Error> = sqlx::query_scalar(
            "INSERT INTO forwarders (org_id, name, url, ca_pem, token_sealed, enabled, cursor_id, created_ms) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING id",
        )
        .bind(change.org_id)
        .bind(&spec.name)
        .bind(&spec.url)
        .bind(&spec.ca_pem)
        .bind(&sealed)
        .bind(i64::from(spec.enabled))
        .bind(cursor)
        .bind(now_ms())
        .fetch_one(&mut *tx)
        .await;
        let id = match id {
            Err(sqlx::Error::Database(d)) if d.is_unique_violation() => {
                return Err(StoreError::Exists { what: "forwarding destination", name: spec.name.clone() });
            }
            other => other?,
        };
        let after = serde_json::json!({"name": spec.name, "url": spec.url, "enabled": spec.enabled,
            "ca": spec.ca_pem.is_some(), "token": token.is_some(), "from_start": from_start});
        log_in(
            &mut tx,
            change,
            "create",
            &format!("forwarding destination {}", spec.name),
            None,
            Some(after.to_string()),
        )
        .await?;
        tx.commit().await?;
        Ok(id)
    }

    /// Change a destination. A new URL keeps the cursor: the new receiver gets what the old
    /// one had not. Renaming reseals the token (it is bound to the name).
    pub async fn update_forwarder(
        &self,
        change: Change<'_>,
        id: i64,
        spec: &ForwarderSpec,
        token: TokenChange,
    ) -> Result<(), StoreError> {
        let before = self.forwarder(change.org_id, id).await?;
        let mut tx = self.begin().await?;
        let stored: Option<String> = sqlx::query_scalar("SELECT token_sealed FROM forwarders WHERE id = $1")
            .bind(id)
            .fetch_one(&mut *tx)
            .await?;
        let context = token_context(change.org_id, &spec.name);
        let sealed = match token {
            TokenChange::Clear => None,
            TokenChange::Set(t) => Some(self.keys.seal(t.as_bytes(), &context)?),
            TokenChange::Keep => match stored {
                None => None,
                Some(s) => {
                    let what = format!("forwarding destination {}'s token", before.name);
                    let opened = self.keys.open(&s, &token_context(change.org_id, &before.name), &what)?;
                    Some(self.keys.seal(opened.text().as_bytes(), &context)?)
                }
            },
        };
        let updated = sqlx::query(
            "UPDATE forwarders SET name = $1, url = $2, ca_pem = $3, enabled = $4, token_sealed = $5 \
             WHERE id = $6 AND org_id = $7",
        )
        .bind(&spec.name)
        .bind(&spec.url)
        .bind(&spec.ca_pem)
        .bind(i64::from(spec.enabled))
        .bind(&sealed)
        .bind(id)
        .bind(change.org_id)
        .execute(&mut *tx)
        .await;
        match updated {
            Err(sqlx::Error::Database(d)) if d.is_unique_violation() => {
                return Err(StoreError::Exists { what: "forwarding destination", name: spec.name.clone() });
            }
            other => other?,
        };
        let view = |name: &str, url: &str, enabled: bool, token: bool| {
            serde_json::json!({"name": name, "url": url, "enabled": enabled, "token": token}).to_string()
        };
        log_in(
            &mut tx,
            change,
            "update",
            &format!("forwarding destination {}", spec.name),
            Some(view(&before.name, &before.url, before.enabled.0, before.has_token.0)),
            Some(view(&spec.name, &spec.url, spec.enabled, sealed.is_some())),
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Remove a destination (a batch on its way finishes; its cursor goes with it).
    pub async fn delete_forwarder(&self, change: Change<'_>, id: i64) -> Result<(), StoreError> {
        let before = self.forwarder(change.org_id, id).await?;
        let mut tx = self.begin().await?;
        sqlx::query("DELETE FROM forwarders WHERE id = $1 AND org_id = $2")
            .bind(id)
            .bind(change.org_id)
            .execute(&mut *tx)
            .await?;
        let object = format!("forwarding destination {}", before.name);
        let before = serde_json::json!({"name": before.name, "url": before.url}).to_string();
        log_in(&mut tx, change, "delete", &object, Some(before), None).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Every enabled destination of every organization, tokens opened.
    pub async fn forwarder_jobs(&self) -> Result<Vec<ForwarderJob>, StoreError> {
        type Row = (i64, i64, String, String, Option<String>, Option<String>, i64, String);
        let rows: Vec<Row> = sqlx::query_as(
            "SELECT f.id, f.org_id, o.name, f.url, f.ca_pem, f.token_sealed, f.cursor_id, f.name \
             FROM forwarders f JOIN organizations o ON o.id = f.org_id WHERE f.enabled = 1 ORDER BY f.id",
        )
        .fetch_all(self.pool())
        .await?;
        Ok(rows
            .into_iter()
            .map(|(id, org_id, organization, url, ca_pem, sealed, cursor_id, name)| {
                let what = format!("forwarding destination {name}'s token");
                let token = match sealed {
                    None => Ok(None),
                    Some(s) => self
                        .keys
                        .open(&s, &token_context(org_id, &name), &what)
                        .map(|o| Some(o.text().to_owned()))
                        .map_err(|e| e.to_string()),
                };
                ForwarderJob { id, org_id, organization, url, ca_pem, token, cursor_id }
            })
            .collect())
    }

    /// Take (or keep) a destination's lease until `until_ms`: `false` if another server
    /// process holds it.
    pub async fn lease_forwarder(&self, id: i64, owner: &str, until_ms: i64) -> Result<bool, StoreError> {
        let taken = sqlx::query(
            "UPDATE forwarders SET lease_owner = $1, lease_until_ms = $2 \
             WHERE id = $3 AND enabled = 1 AND (lease_owner = $1 OR lease_owner IS NULL OR lease_until_ms < $4)",
        )
        .bind(owner)
        .bind(until_ms)
        .bind(id)
        .bind(now_ms())
        .execute(self.pool())
        .await?;
        Ok(taken.rows_affected() == 1)
    }

    /// A destination's cursor now (`None`: it is gone).
    pub async fn forwarder_cursor(&self, id: i64) -> Result<Option<i64>, StoreError> {
        Ok(sqlx::query_scalar("SELECT cursor_id FROM forwarders WHERE id = $1")
            .bind(id)
            .fetch_optional(self.pool())
            .await?)
    }

    /// The next events after `after_id`, oldest first, received before the settling time.
    pub async fn events_to_forward(
        &self,
        org_id: i64,
        after_id: i64,
        limit: i64,
    ) -> Result<Vec<ForwardEvent>, StoreError> {
        Ok(sqlx::query_as(
            "SELECT e.id, c.name AS computer, e.received_ms, e.record_json FROM events e \
             JOIN computers c ON c.id = e.computer_id \
             WHERE e.org_id = $1 AND e.id > $2 AND e.received_ms <= $3 ORDER BY e.id LIMIT $4",
        )
        .bind(org_id)
        .bind(after_id)
        .bind(now_ms() - SETTLE_MS)
        .bind(limit.clamp(1, 10_000))
        .fetch_all(self.pool())
        .await?)
    }

    /// A batch up to `cursor_id` was delivered; `false` (nothing changed) if `owner` lost
    /// the lease meanwhile or the destination is gone.
    pub async fn forwarded(&self, id: i64, owner: &str, cursor_id: i64, n: i64) -> Result<bool, StoreError> {
        let moved = sqlx::query(
            "UPDATE forwarders SET cursor_id = $1, sent = sent + $2, last_sent_ms = $3, last_error = NULL, \
             last_error_ms = NULL WHERE id = $4 AND lease_owner = $5 AND cursor_id < $1",
        )
        .bind(cursor_id)
        .bind(n)
        .bind(now_ms())
        .bind(id)
        .bind(owner)
        .execute(self.pool())
        .await?;
        Ok(moved.rows_affected() == 1)
    }

    /// A batch did not go: keep why, for the console.
    pub async fn forward_failed(&self, id: i64, owner: &str, error: &str) -> Result<(), StoreError> {
        let error: String = error.chars().take(500).collect();
        sqlx::query("UPDATE forwarders SET last_error = $1, last_error_ms = $2 WHERE id = $3 AND lease_owner = $4")
            .bind(error)
            .bind(now_ms())
            .bind(id)
            .bind(owner)
            .execute(self.pool())
            .await?;
        Ok(())
    }

    /// The organization's retention.
    pub async fn retention(&self, org_id: i64) -> Result<Retention, StoreError> {
        self.ensure_org_state(org_id).await?;
        let (days, events): (Option<i64>, Option<i64>) =
            sqlx::query_as("SELECT retention_days, retention_events FROM org_state WHERE org_id = $1")
                .bind(org_id)
                .fetch_one(self.pool())
                .await?;
        Ok(Retention { days, events })
    }

    /// Change the organization's retention (checked by the caller).
    pub async fn set_retention(&self, change: Change<'_>, r: Retention) -> Result<(), StoreError> {
        let before = self.retention(change.org_id).await?;
        let mut tx = self.begin().await?;
        sqlx::query("UPDATE org_state SET retention_days = $1, retention_events = $2 WHERE org_id = $3")
            .bind(r.days)
            .bind(r.events)
            .bind(change.org_id)
            .execute(&mut *tx)
            .await?;
        let json = |r: &Retention| serde_json::to_string(r).expect("plain data");
        log_in(&mut tx, change, "update", "event retention", Some(json(&before)), Some(json(&r))).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Organizations with a retention limit.
    pub async fn retentions(&self) -> Result<Vec<(i64, Retention)>, StoreError> {
        let rows: Vec<(i64, Option<i64>, Option<i64>)> = sqlx::query_as(
            "SELECT org_id, retention_days, retention_events FROM org_state \
             WHERE retention_days IS NOT NULL OR retention_events IS NOT NULL",
        )
        .fetch_all(self.pool())
        .await?;
        Ok(rows.into_iter().map(|(org, days, events)| (org, Retention { days, events })).collect())
    }

    /// Apply the organization's retention at `now_ms`, `batch` events per transaction (so
    /// agents' inserts wait for one short delete at most, never for the whole prune). Events
    /// an enabled destination has not received yet are kept. Returns how many went.
    pub async fn prune_events(&self, org_id: i64, now_ms: i64, batch: i64) -> Result<u64, StoreError> {
        let r = self.retention(org_id).await?;
        let batch = batch.clamp(1, 10_000);
        let forwarded: Option<i64> =
            sqlx::query_scalar("SELECT MIN(cursor_id) FROM forwarders WHERE org_id = $1 AND enabled = 1")
                .bind(org_id)
                .fetch_one(self.pool())
                .await?;
        let by_age = match r.days.filter(|d| *d >= 0) {
            // The newest event received before the age limit: it and older ones go.
            Some(days) => self.newest_before(org_id, now_ms - days.saturating_mul(86_400_000)).await?,
            None => 0,
        };
        let by_count = match r.events.filter(|n| *n >= 0) {
            // The newest event beyond the count: it and older ones go.
            Some(keep) => sqlx::query_scalar::<_, i64>(
                "SELECT id FROM events WHERE org_id = $1 ORDER BY id DESC LIMIT 1 OFFSET $2",
            )
            .bind(org_id)
            .bind(keep)
            .fetch_optional(self.pool())
            .await?
            .unwrap_or(0),
            None => 0,
        };
        let upto = by_age.max(by_count).min(forwarded.unwrap_or(i64::MAX));
        if upto <= 0 {
            return Ok(0);
        }
        let mut deleted = 0;
        loop {
            let gone = sqlx::query(
                "DELETE FROM events WHERE id IN \
                 (SELECT id FROM events WHERE org_id = $1 AND id <= $2 ORDER BY id LIMIT $3)",
            )
            .bind(org_id)
            .bind(upto)
            .bind(batch)
            .execute(self.pool())
            .await?
            .rows_affected();
            deleted += gone;
            if gone < batch as u64 {
                return Ok(deleted);
            }
            tokio::task::yield_now().await;
        }
    }

    /// The highest id of the organization's events received before `cutoff_ms` (0: none).
    async fn newest_before(&self, org_id: i64, cutoff_ms: i64) -> Result<i64, StoreError> {
        let id: Option<i64> = sqlx::query_scalar("SELECT MAX(id) FROM events WHERE org_id = $1 AND received_ms < $2")
            .bind(org_id)
            .bind(cutoff_ms)
            .fetch_one(self.pool())
            .await?;
        Ok(id.unwrap_or(0))
    }
}

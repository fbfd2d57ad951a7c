//! Events delivered by agents: stored once each (keyed by computer and the record's hash),
//! listed with filters.

use crate::{Store, StoreError, now_ms};
use serde::Serialize;

/// What the console filters on and shows of an event, kept in columns beside the whole
/// record (a `portcullis_events::Record`, decoded and bounded by the server where it came in).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, serde::Deserialize, sqlx::FromRow)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct EventFields {
    /// When it happened on the agent, Unix milliseconds.
    pub at_ms: i64,
    /// The event kind's wire name (`deny`, `would-deny`, `ringfence-deny`…).
    pub event: String,
    /// `allow` or `deny`.
    pub verdict: String,
    /// The mode that applied.
    pub mode: String,
    /// The deciding policy.
    pub policy: Option<String>,
    /// The one-line reason.
    pub reason: String,
    /// File path.
    pub file_path: String,
    /// File SHA-256, hex.
    pub file_sha256: String,
    /// File kind.
    pub file_kind: String,
    /// The process's executable.
    pub process_exe: Option<String>,
    /// The user.
    pub user_name: Option<String>,
    /// The whole record, JSON, as the agent wrote it.
    pub record_json: String,
}

/// An event to store.
#[derive(Clone, Debug, Default)]
pub struct NewEvent {
    /// Idempotency key (hash of the record's bytes).
    pub key: String,
    /// What is stored.
    pub fields: EventFields,
}

/// A stored event.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, sqlx::FromRow)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct EventRow {
    /// Id, increasing.
    pub id: i64,
    /// The computer's name.
    pub computer: String,
    /// What was stored.
    #[sqlx(flatten)]
    #[serde(flatten)]
    pub fields: EventFields,
}

/// Which events to list; every field given must hold.
#[derive(Clone, Debug, Default)]
pub struct EventFilter {
    /// Computer name, exactly.
    pub computer: Option<String>,
    /// Verdict (`allow`/`deny`) or event kind (`deny`, `would-deny`, `candidate`, `overload`,
    /// `ringfence-deny`, `ringfence-would-deny`).
    pub verdict: Option<String>,
    /// Part of the file path, or the start of its SHA-256.
    pub file: Option<String>,
    /// Deciding policy, exactly.
    pub policy: Option<String>,
    /// From this time on, Unix milliseconds.
    pub from_ms: Option<i64>,
    /// Before this time.
    pub to_ms: Option<i64>,
    /// Only ids below this (the next page).
    pub before_id: Option<i64>,
    /// At most this many (capped at 1000).
    pub limit: i64,
}

const COLUMNS: &str = "e.id, c.name AS computer, e.at_ms, e.event, e.verdict, e.mode, e.policy, e.reason, e.file_path, \
                       e.file_sha256, e.file_kind, e.process_exe, e.user_name, e.record_json";

impl Store {
    /// Store a computer's events; returns (stored now, already there).
    pub async fn insert_events(
        &self,
        org_id: i64,
        computer_id: i64,
        events: &[NewEvent],
    ) -> Result<(u64, u64), StoreError> {
        let mut tx = self.begin().await?;
        // After the connection was had: the forwarding cursor's settling time counts from
        // here (see `forwarding::SETTLE_MS`).
        let received = now_ms();
        let mut stored = 0;
        for NewEvent { key, fields: e } in events {
            stored += sqlx::query(
                "INSERT INTO events (org_id, computer_id, event_key, at_ms, received_ms, event, verdict, mode, policy, \
                 reason, file_path, file_sha256, file_kind, process_exe, user_name, record_json) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16) \
                 ON CONFLICT (computer_id, event_key) DO NOTHING",
            )
            .bind(org_id)
            .bind(computer_id)
            .bind(key)
            .bind(e.at_ms)
            .bind(received)
            .bind(&e.event)
            .bind(&e.verdict)
            .bind(&e.mode)
            .bind(&e.policy)
            .bind(&e.reason)
            .bind(&e.file_path)
            .bind(&e.file_sha256)
            .bind(&e.file_kind)
            .bind(&e.process_exe)
            .bind(&e.user_name)
            .bind(&e.record_json)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        }
        tx.commit().await?;
        Ok((stored, events.len() as u64 - stored))
    }

    /// Events matching `filter`, newest first.
    pub async fn events(&self, org_id: i64, filter: &EventFilter) -> Result<Vec<EventRow>, StoreError> {
        enum Param {
            Text(String),
            Number(i64),
        }
        let mut sql =
            format!("SELECT {COLUMNS} FROM events e JOIN computers c ON c.id = e.computer_id WHERE e.org_id = $1");
        let mut params: Vec<Param> = Vec::new();
        // Each clause's one placeholder mark is numbered here, in order ($1 is the organization).
        let mut add = |sql: &mut String, clause: &str, value: Param| {
            params.push(value);
            sql.push_str(&clause.replace('?', &format!("${}", params.len() + 1)));
        };
        if let Some(c) = &filter.computer {
            add(&mut sql, " AND c.name = ?", Param::Text(c.clone()));
        }
        if let Some(v) = &filter.verdict {
            let clause = if matches!(v.as_str(), "allow" | "deny") { " AND e.verdict = ?" } else { " AND e.event = ?" };
            add(&mut sql, clause, Param::Text(v.clone()));
        }
        if let Some(f) = filter.file.as_ref().filter(|f| !f.is_empty()) {
            let escaped = f.replace('\\', "\\\\").replace('%', "\\%").replace('_', "\\_");
            add(&mut sql, " AND (e.file_path LIKE ? ESCAPE '\\'", Param::Text(format!("%{escaped}%")));
            add(&mut sql, " OR e.file_sha256 LIKE ?)", Param::Text(format!("{}%", escaped.to_ascii_lowercase())));
        }
        if let Some(p) = &filter.policy {
            add(&mut sql, " AND e.policy = ?", Param::Text(p.clone()));
        }
        if let Some(v) = filter.from_ms {
            add(&mut sql, " AND e.at_ms >= ?", Param::Number(v));
        }
        if let Some(v) = filter.to_ms {
            add(&mut sql, " AND e.at_ms < ?", Param::Number(v));
        }
        if let Some(v) = filter.before_id {
            add(&mut sql, " AND e.id < ?", Param::Number(v));
        }
        add(&mut sql, " ORDER BY e.id DESC LIMIT ?", Param::Number(filter.limit.clamp(1, 1000)));
        let mut query = sqlx::query_as::<_, EventRow>(sqlx::AssertSqlSafe(sql)).bind(org_id);
        for p in params {
            query = match p {
                Param::Text(t) => query.bind(t),
                Param::Number(n) => query.bind(n),
            };
        }
        Ok(query.fetch_all(self.pool()).await?)
    }

    /// One event.
    pub async fn event(&self, org_id: i64, id: i64) -> Result<EventRow, StoreError> {
        let sql = format!(
            "SELECT {COLUMNS} FROM events e JOIN computers c ON c.id = e.computer_id WHERE e.org_id = $1 AND e.id = $2"
        );
        sqlx::query_as(sqlx::AssertSqlSafe(sql))
            .bind(org_id)
            .bind(id)
            .fetch_optional(self.pool())
            .await?
            .ok_or(StoreError::NotFound("event"))
    }
}

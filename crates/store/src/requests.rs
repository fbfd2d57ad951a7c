//! Approval requests: a user whose program was denied asks for it (through the agent), an
//! approver decides. The denied event is kept with the request as the agent recorded it.

use crate::{Change, Store, StoreError, now_ms};
use serde::Serialize;

/// A request as the agent API stores it (checked there).
#[derive(Clone, Debug)]
pub struct NewApprovalRequest {
    /// The agent's id for it.
    pub key: String,
    /// Why the user needs the program.
    pub reason: String,
    /// Who asks.
    pub requester: Option<String>,
    /// The denied event's fields.
    pub event: crate::EventFields,
}

/// A stored request.
#[derive(Clone, Debug, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ApprovalRequestRow {
    /// Id.
    pub id: i64,
    /// The agent's id for it.
    pub key: String,
    /// The computer it comes from.
    pub computer: String,
    /// Why the user needs the program.
    pub reason: String,
    /// Who asks.
    pub requester: Option<String>,
    /// The denied event's fields.
    pub event: crate::EventFields,
    /// On how many of the organization's computers an event names the same file (SHA-256).
    pub seen_on: i64,
    /// `pending`, `approved` or `rejected`.
    pub status: String,
    /// The approver's note.
    pub note: Option<String>,
    /// The policy an approval made.
    pub policy: Option<String>,
    /// Who decided.
    pub decided_by: Option<String>,
    /// Asked at, Unix milliseconds.
    pub created_ms: i64,
    /// Decided at.
    pub decided_ms: Option<i64>,
}

/// How one request stands, as the agent is told.
pub type RequestState = (String, String, Option<String>, Option<String>, Option<i64>);

#[derive(sqlx::FromRow)]
struct Row {
    id: i64,
    request_key: String,
    computer: String,
    reason: String,
    requester: Option<String>,
    event_json: String,
    seen_on: i64,
    status: String,
    note: Option<String>,
    policy: Option<String>,
    decided_by: Option<String>,
    created_ms: i64,
    decided_ms: Option<i64>,
}

const SELECT: &str = "SELECT r.id, r.request_key, c.name AS computer, r.reason, r.requester, r.event_json, \
     (SELECT COUNT(DISTINCT e.computer_id) FROM events e WHERE e.org_id = r.org_id AND e.file_sha256 = r.file_sha256 \
      AND r.file_sha256 <> '') AS seen_on, r.status, r.note, r.policy, r.decided_by, r.created_ms, r.decided_ms \
     FROM approval_requests r JOIN computers c ON c.id = r.computer_id";

impl Store {
    /// Keep new requests from a computer (one already kept, by its key, is left as it is).
    pub async fn insert_requests(
        &self,
        org_id: i64,
        computer_id: i64,
        rows: &[NewApprovalRequest],
    ) -> Result<(), StoreError> {
        let mut tx = self.begin().await?;
        for r in rows {
            sqlx::query(
                "INSERT INTO approval_requests (org_id, computer_id, request_key, reason, requester, file_path, \
                 file_sha256, event_json, created_ms) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) \
                 ON CONFLICT (computer_id, request_key) DO NOTHING",
            )
            .bind(org_id)
            .bind(computer_id)
            .bind(&r.key)
            .bind(&r.reason)
            .bind(&r.requester)
            .bind(&r.event.file_path)
            .bind(&r.event.file_sha256)
            .bind(serde_json::to_string(&r.event).expect("plain data"))
            .bind(now_ms())
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// How a computer's requests stand, by the agent's ids (unknown ids are left out).
    pub async fn request_states(&self, computer_id: i64, keys: &[String]) -> Result<Vec<RequestState>, StoreError> {
        let mut out = Vec::new();
        for key in keys {
            let row: Option<RequestState> = sqlx::query_as(
                "SELECT request_key, status, note, policy, decided_ms FROM approval_requests \
                 WHERE computer_id = $1 AND request_key = $2",
            )
            .bind(computer_id)
            .bind(key)
            .fetch_optional(self.pool())
            .await?;
            out.extend(row);
        }
        Ok(out)
    }

    /// The organization's requests, newest first; only those with `status` when given.
    pub async fn approval_requests(
        &self,
        org_id: i64,
        status: Option<&str>,
    ) -> Result<Vec<ApprovalRequestRow>, StoreError> {
        let sql = format!("{SELECT} WHERE r.org_id = $1 AND ($2 = '' OR r.status = $2) ORDER BY r.id DESC LIMIT 1000");
        let rows: Vec<Row> = sqlx::query_as(sqlx::AssertSqlSafe(sql))
            .bind(org_id)
            .bind(status.unwrap_or(""))
            .fetch_all(self.pool())
            .await?;
        rows.into_iter().map(row).collect()
    }

    /// One request.
    pub async fn approval_request(&self, org_id: i64, id: i64) -> Result<ApprovalRequestRow, StoreError> {
        let sql = format!("{SELECT} WHERE r.org_id = $1 AND r.id = $2");
        let r: Option<Row> =
            sqlx::query_as(sqlx::AssertSqlSafe(sql)).bind(org_id).bind(id).fetch_optional(self.pool()).await?;
        row(r.ok_or(StoreError::NotFound("approval request"))?)
    }

    /// Decide a pending request (`approved` with the policy made, or `rejected`), audited.
    pub async fn decide_request(
        &self,
        change: Change<'_>,
        id: i64,
        status: &str,
        note: Option<&str>,
        policy: Option<&str>,
    ) -> Result<(), StoreError> {
        let before = self.approval_request(change.org_id, id).await?;
        let mut tx = self.begin().await?;
        let done = sqlx::query(
            "UPDATE approval_requests SET status = $1, note = $2, policy = $3, decided_by = $4, decided_ms = $5 \
             WHERE id = $6 AND org_id = $7 AND status = 'pending'",
        )
        .bind(status)
        .bind(note)
        .bind(policy)
        .bind(change.actor)
        .bind(now_ms())
        .bind(id)
        .bind(change.org_id)
        .execute(&mut *tx)
        .await?;
        if done.rows_affected() != 1 {
            return Err(StoreError::Conflict(format!("request {id} was decided already ({})", before.status)));
        }
        let object = format!("approval request {id} ({} on {})", before.event.file_path, before.computer);
        let after = serde_json::json!({ "status": status, "note": note, "policy": policy }).to_string();
        crate::audit::log_in(&mut tx, change, status, &object, None, Some(after)).await?;
        tx.commit().await?;
        Ok(())
    }
}

fn row(r: Row) -> Result<ApprovalRequestRow, StoreError> {
    let event =
        serde_json::from_str(&r.event_json).map_err(|_| StoreError::Corrupt(format!("approval request {}", r.id)))?;
    Ok(ApprovalRequestRow {
        id: r.id,
        key: r.request_key,
        computer: r.computer,
        reason: r.reason,
        requester: r.requester,
        event,
        seen_on: r.seen_on,
        status: r.status,
        note: r.note,
        policy: r.policy,
        decided_by: r.decided_by,
        created_ms: r.created_ms,
        decided_ms: r.decided_ms,
    })
}

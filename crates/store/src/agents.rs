//! Agents: enrollment with a group's token, then a credential of their own; their contact
//! and what they report about their host.
//!
//! Enrolling never takes over a computer: a name that is taken (ignoring ASCII case) is
//! re-keyed only when the request proves the computer's current credential, and otherwise
//! held as a *pending* enrollment until an administrator accepts or rejects it.

use crate::{Store, StoreError, now_ms, random_hex, sha256_hex};
use serde::Serialize;

/// Pending enrollments an organization may hold at once; more are refused (quota).
pub const MAX_PENDING: i64 = 100;

/// Agents' contacts written by one statement: 4 parameters each, well under SQLite's and
/// PostgreSQL's limits on parameters per statement.
pub const SEEN_PER_STATEMENT: usize = 500;

/// An enrolled agent, as its credential identifies it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AgentIdentity {
    /// The computer's id.
    pub computer_id: i64,
    /// Its organization.
    pub org_id: i64,
    /// The organization's name.
    pub org_name: String,
    /// The computer's name.
    pub name: String,
}

/// What an agent enrolls with (the server has checked and bounded the host facts).
#[derive(Clone, Debug)]
pub struct Enrollment<'a> {
    /// The group's enrollment token.
    pub token: &'a str,
    /// The host name, which becomes the computer's name.
    pub hostname: &'a str,
    /// `linux`, `windows` or `macos`.
    pub os: &'a str,
    /// Everything the agent reported, JSON.
    pub host_json: &'a str,
    /// The agent's version.
    pub agent_version: &'a str,
    /// The credential of the computer of this name, when the agent claims to be it.
    pub current_credential: Option<&'a str>,
    /// The credential to give it, for a client that cannot keep one the server makes (a
    /// Santa client's is derived from its machine id and the group's token); `None`: a new
    /// random one.
    pub credential: Option<&'a str>,
}

/// How an enrollment ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Enrolled {
    /// A new computer, or the same computer with a new credential (a re-key).
    Active {
        /// Who it is now.
        identity: AgentIdentity,
        /// Its credential (shown once).
        credential: String,
        /// Whether this was a re-key of an existing computer.
        rekeyed: bool,
    },
    /// The name is taken: held for an administrator.
    Pending {
        /// The pending request's id.
        id: i64,
        /// The organization.
        org_id: i64,
        /// The organization's name.
        org_name: String,
        /// The name asked for.
        name: String,
        /// The credential the agent will use once accepted.
        credential: String,
    },
}

/// An enrollment held for an administrator.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PendingRow {
    /// Id.
    pub id: i64,
    /// The computer name asked for.
    pub name: String,
    /// The group whose token was used (none if it was removed since).
    pub group: Option<String>,
    /// Operating system.
    pub os: String,
    /// What the agent reported, JSON.
    pub host_json: String,
    /// Its version.
    pub agent_version: String,
    /// When, Unix milliseconds.
    pub requested_ms: i64,
    /// The computer of that name now enrolled (if any): the one this request would replace.
    pub existing_computer: Option<i64>,
}

/// One agent's contact, to record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Seen {
    /// The computer.
    pub computer_id: i64,
    /// When, Unix milliseconds.
    pub at_ms: i64,
    /// The bundle version it enforces.
    pub bundle_version: i64,
    /// Host JSON and agent version, when the agent reported them.
    pub host: Option<(String, String)>,
    /// Why the agent refused the last bundle (none: it enforces what it was sent).
    pub bundle_error: Option<String>,
    /// Events it could not keep since it last said so (added up).
    pub events_lost: u64,
}

/// An enrollment token's limits.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TokenLimits {
    /// It stops working at this time, Unix milliseconds.
    pub expires_ms: Option<i64>,
    /// It works this many times.
    pub uses: Option<i64>,
}

/// A second computer of a name inserted at the same moment: the unique index on
/// (org_id, lower(name)) refuses it.
fn name_taken(name: &str) -> impl FnOnce(sqlx::Error) -> StoreError + '_ {
    move |err| match &err {
        sqlx::Error::Database(d) if d.is_unique_violation() => {
            StoreError::Exists { what: "computer", name: name.to_owned() }
        }
        _ => StoreError::from(err),
    }
}

fn same_secret(a: &str, b: &str) -> bool {
    bool::from(subtle::ConstantTimeEq::ct_eq(a.as_bytes(), b.as_bytes()))
}

impl Store {
    /// Enroll a computer into the group whose token this is and give it a credential
    /// (returned once, stored as a hash). The token must be current (not revoked, not
    /// expired, uses left). A name that is taken is re-keyed when `current_credential`
    /// is that computer's credential, and held as pending otherwise.
    pub async fn enroll(&self, e: &Enrollment<'_>) -> Result<Enrolled, StoreError> {
        let now = now_ms();
        #[allow(clippy::type_complexity)]
        let group: Option<(i64, i64, String, String, Option<i64>, Option<i64>)> = sqlx::query_as(
            "SELECT g.id, g.org_id, g.path, o.name, g.enroll_expires_ms, g.enroll_uses_left FROM computer_groups g \
             JOIN organizations o ON o.id = g.org_id WHERE g.enroll_token_hash = $1",
        )
        .bind(sha256_hex(e.token))
        .fetch_optional(self.pool())
        .await?;
        let Some((group_id, org_id, path, org_name, expires, uses_left)) = group else {
            return Err(StoreError::NotFound("enrollment token"));
        };
        if expires.is_some_and(|t| t <= now) || uses_left.is_some_and(|u| u <= 0) {
            return Err(StoreError::NotFound("enrollment token"));
        }
        let name = e.hostname.trim();
        if name.is_empty() || name.len() > 253 {
            return Err(StoreError::Invalid("the host name must be 1 to 253 characters".into()));
        }
        let existing: Option<(i64, String, Option<String>)> = sqlx::query_as(
            "SELECT id, name, credential_hash FROM computers WHERE org_id = $1 AND lower(name) = lower($2)",
        )
        .bind(org_id)
        .bind(name)
        .fetch_optional(self.pool())
        .await?;
        let credential = match e.credential {
            Some(c) => c.to_owned(),
            None => format!("pca_{}", random_hex(32)?),
        };
        let mut tx = self.begin().await?;
        let actor = format!("agent {name}");
        let change = crate::Change { org_id, actor: &actor };
        let after = serde_json::json!({ "name": name, "group": path, "os": e.os, "agent_version": e.agent_version });
        if let Some((computer_id, stored_name, stored_hash)) = existing {
            let proves = e
                .current_credential
                .zip(stored_hash.as_deref())
                .is_some_and(|(c, stored)| same_secret(&sha256_hex(c.trim()), stored));
            if proves {
                sqlx::query(
                    "UPDATE computers SET credential_hash = $1, os = $2, host_json = $3, agent_version = $4, \
                     last_seen_ms = $5 WHERE id = $6",
                )
                .bind(sha256_hex(&credential))
                .bind(e.os)
                .bind(e.host_json)
                .bind(e.agent_version)
                .bind(now)
                .bind(computer_id)
                .execute(&mut *tx)
                .await?;
                let object = format!("computer {stored_name}");
                crate::audit::log_in(&mut tx, change, "rekey", &object, None, Some(after.to_string())).await?;
                tx.commit().await?;
                let identity = AgentIdentity { computer_id, org_id, org_name, name: stored_name };
                return Ok(Enrolled::Active { identity, credential, rekeyed: true });
            }
            let pending: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM pending_enrollments WHERE org_id = $1")
                .bind(org_id)
                .fetch_one(&mut *tx)
                .await?;
            if pending >= MAX_PENDING {
                return Err(StoreError::Quota(format!(
                    "{MAX_PENDING} enrollments already wait for an administrator in this organization"
                )));
            }
            self.use_token(&mut tx, group_id, uses_left).await?;
            let id: i64 = sqlx::query_scalar(
                "INSERT INTO pending_enrollments (org_id, group_id, name, os, host_json, agent_version, credential_hash, \
                 requested_ms) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING id",
            )
            .bind(org_id)
            .bind(group_id)
            .bind(name)
            .bind(e.os)
            .bind(e.host_json)
            .bind(e.agent_version)
            .bind(sha256_hex(&credential))
            .bind(now)
            .fetch_one(&mut *tx)
            .await?;
            let object = format!("computer {name}");
            crate::audit::log_in(&mut tx, change, "enroll pending", &object, None, Some(after.to_string())).await?;
            tx.commit().await?;
            return Ok(Enrolled::Pending { id, org_id, org_name, name: name.to_owned(), credential });
        }
        self.use_token(&mut tx, group_id, uses_left).await?;
        // The unique index on (org_id, lower(name)) refuses a second computer of this name
        // enrolled at the same moment.
        let computer_id: i64 = sqlx::query_scalar(
            "INSERT INTO computers (org_id, group_id, name, os, credential_hash, host_json, agent_version, enrolled_ms, \
             last_seen_ms) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $8) RETURNING id",
        )
        .bind(org_id)
        .bind(group_id)
        .bind(name)
        .bind(e.os)
        .bind(sha256_hex(&credential))
        .bind(e.host_json)
        .bind(e.agent_version)
        .bind(now)
        .fetch_one(&mut *tx)
        .await
        .map_err(name_taken(name))?;
        // Logged, but no new version: the organization's document holds no computers, so a
        // new one changes no other agent's bundle (its own first poll fetches it).
        let object = format!("computer {name}");
        crate::audit::log_in(&mut tx, change, "enroll", &object, None, Some(after.to_string())).await?;
        tx.commit().await?;
        let identity = AgentIdentity { computer_id, org_id, org_name, name: name.to_owned() };
        Ok(Enrolled::Active { identity, credential, rekeyed: false })
    }

    /// Count one use of a group's token; refused when another enrollment took the last.
    async fn use_token(
        &self,
        tx: &mut crate::audit::Tx,
        group_id: i64,
        uses_left: Option<i64>,
    ) -> Result<(), StoreError> {
        if uses_left.is_none() {
            return Ok(());
        }
        let done = sqlx::query(
            "UPDATE computer_groups SET enroll_uses_left = enroll_uses_left - 1 WHERE id = $1 AND enroll_uses_left > 0",
        )
        .bind(group_id)
        .execute(&mut **tx)
        .await?;
        if done.rows_affected() == 1 { Ok(()) } else { Err(StoreError::NotFound("enrollment token")) }
    }

    /// Whether `token` is the current, unexpired enrollment token of the group computer
    /// `computer_id` is in (a Santa client proves itself with it on every request: revoking
    /// or rotating the token cuts its Macs off).
    pub async fn token_is_of_computers_group(&self, token: &str, computer_id: i64) -> Result<bool, StoreError> {
        let expires: Option<Option<i64>> = sqlx::query_scalar(
            "SELECT g.enroll_expires_ms FROM computers c JOIN computer_groups g ON g.id = c.group_id \
             WHERE c.id = $1 AND g.enroll_token_hash = $2",
        )
        .bind(computer_id)
        .bind(sha256_hex(token.trim()))
        .fetch_optional(self.pool())
        .await?;
        Ok(matches!(expires, Some(e) if e.is_none_or(|t| t > now_ms())))
    }

    /// Whether a credential belongs to an enrollment that waits for an administrator.
    pub async fn is_pending(&self, credential: &str) -> Result<bool, StoreError> {
        let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM pending_enrollments WHERE credential_hash = $1")
            .bind(sha256_hex(credential))
            .fetch_one(self.pool())
            .await?;
        Ok(n > 0)
    }

    /// The organization's pending enrollments, oldest first.
    pub async fn pending_enrollments(&self, org_id: i64) -> Result<Vec<PendingRow>, StoreError> {
        Ok(self.pending_where(org_id, None).await?.into_iter().map(|(row, ..)| row).collect())
    }

    /// Pending enrollments (one, when `id` is given) with the credential hash and group id
    /// each would take.
    async fn pending_where(
        &self,
        org_id: i64,
        id: Option<i64>,
    ) -> Result<Vec<(PendingRow, String, Option<i64>)>, StoreError> {
        #[derive(sqlx::FromRow)]
        struct Row {
            id: i64,
            name: String,
            group_path: Option<String>,
            os: String,
            host_json: String,
            agent_version: String,
            requested_ms: i64,
            existing_computer: Option<i64>,
            credential_hash: String,
            group_id: Option<i64>,
        }
        let rows: Vec<Row> = sqlx::query_as(
            "SELECT p.id, p.name, g.path AS group_path, p.os, p.host_json, p.agent_version, p.requested_ms, \
             (SELECT c.id FROM computers c WHERE c.org_id = p.org_id AND lower(c.name) = lower(p.name)) \
             AS existing_computer, p.credential_hash, p.group_id \
             FROM pending_enrollments p LEFT JOIN computer_groups g ON g.id = p.group_id \
             WHERE p.org_id = $1 AND ($2 = 0 OR p.id = $2) ORDER BY p.requested_ms, p.id",
        )
        .bind(org_id)
        .bind(id.unwrap_or(0))
        .fetch_all(self.pool())
        .await?;
        Ok(rows
            .into_iter()
            .map(|r| {
                let row = PendingRow {
                    id: r.id,
                    name: r.name,
                    group: r.group_path,
                    os: r.os,
                    host_json: r.host_json,
                    agent_version: r.agent_version,
                    requested_ms: r.requested_ms,
                    existing_computer: r.existing_computer,
                };
                (row, r.credential_hash, r.group_id)
            })
            .collect())
    }

    async fn pending(&self, org_id: i64, id: i64) -> Result<(PendingRow, String, Option<i64>), StoreError> {
        self.pending_where(org_id, Some(id)).await?.pop().ok_or(StoreError::NotFound("pending enrollment"))
    }

    /// Accept a pending enrollment: the computer of its name (if any) takes the pending
    /// agent's credential — the old one stops working — and keeps its group and mode; with
    /// no such computer, a new one joins the token's group. Returns the computer's id.
    pub async fn accept_enrollment(&self, change: crate::Change<'_>, id: i64) -> Result<i64, StoreError> {
        let (p, credential_hash, group_id) = self.pending(change.org_id, id).await?;
        let now = now_ms();
        let mut tx = self.begin().await?;
        sqlx::query("DELETE FROM pending_enrollments WHERE id = $1").bind(id).execute(&mut *tx).await?;
        let computer_id = match p.existing_computer {
            Some(computer_id) => {
                sqlx::query(
                    "UPDATE computers SET credential_hash = $1, os = $2, host_json = $3, agent_version = $4, \
                     enrolled_ms = $5, bundle_version = 0, bundle_error = NULL WHERE id = $6 AND org_id = $7",
                )
                .bind(&credential_hash)
                .bind(&p.os)
                .bind(&p.host_json)
                .bind(&p.agent_version)
                .bind(now)
                .bind(computer_id)
                .bind(change.org_id)
                .execute(&mut *tx)
                .await?;
                computer_id
            }
            None => sqlx::query_scalar(
                "INSERT INTO computers (org_id, group_id, name, os, credential_hash, host_json, agent_version, \
                     enrolled_ms) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING id",
            )
            .bind(change.org_id)
            .bind(group_id)
            .bind(&p.name)
            .bind(&p.os)
            .bind(&credential_hash)
            .bind(&p.host_json)
            .bind(&p.agent_version)
            .bind(now)
            .fetch_one(&mut *tx)
            .await
            .map_err(name_taken(&p.name))?,
        };
        let after = serde_json::json!({ "name": p.name, "group": p.group, "os": p.os, "replaced": p.existing_computer.is_some() });
        crate::audit::log_in(
            &mut tx,
            change,
            "accept enrollment",
            &format!("computer {}", p.name),
            None,
            Some(after.to_string()),
        )
        .await?;
        tx.commit().await?;
        Ok(computer_id)
    }

    /// Reject a pending enrollment: its credential never works.
    pub async fn reject_enrollment(&self, change: crate::Change<'_>, id: i64) -> Result<(), StoreError> {
        let (p, ..) = self.pending(change.org_id, id).await?;
        let mut tx = self.begin().await?;
        sqlx::query("DELETE FROM pending_enrollments WHERE id = $1 AND org_id = $2")
            .bind(id)
            .bind(change.org_id)
            .execute(&mut *tx)
            .await?;
        let before = serde_json::json!({ "name": p.name, "group": p.group, "os": p.os });
        crate::audit::log_in(
            &mut tx,
            change,
            "reject enrollment",
            &format!("computer {}", p.name),
            Some(before.to_string()),
            None,
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Enrolled agents by organization: `(organization, seen since `since_ms`, not seen since)`,
    /// for the metrics endpoint.
    pub async fn agent_presence(&self, since_ms: i64) -> Result<Vec<(String, i64, i64)>, StoreError> {
        let rows: Vec<(String, i64, i64)> = sqlx::query_as(
            "SELECT o.name, \
                    CAST(SUM(CASE WHEN c.last_seen_ms >= $1 THEN 1 ELSE 0 END) AS BIGINT), \
                    CAST(SUM(CASE WHEN c.last_seen_ms >= $1 THEN 0 ELSE 1 END) AS BIGINT) \
             FROM computers c JOIN organizations o ON o.id = c.org_id \
             WHERE c.credential_hash IS NOT NULL GROUP BY o.name ORDER BY o.name",
        )
        .bind(since_ms)
        .fetch_all(self.pool())
        .await?;
        Ok(rows)
    }

    /// The agent a credential belongs to.
    pub async fn agent(&self, credential: &str) -> Result<Option<AgentIdentity>, StoreError> {
        let row: Option<(i64, i64, String, String)> = sqlx::query_as(
            "SELECT c.id, c.org_id, o.name, c.name FROM computers c JOIN organizations o ON o.id = c.org_id \
             WHERE c.credential_hash = $1",
        )
        .bind(sha256_hex(credential))
        .fetch_optional(self.pool())
        .await?;
        Ok(row.map(|(computer_id, org_id, org_name, name)| AgentIdentity { computer_id, org_id, org_name, name }))
    }

    /// Note agents' contacts in one transaction: `(computer, when, bundle version, host JSON
    /// and agent version when reported)`. Servers collect these and write them about once a
    /// second, so thousands of polling agents cost one write, not thousands: the contacts go
    /// [`SEEN_PER_STATEMENT`] to a statement, in the order of their computers (two servers
    /// writing overlapping sets lock rows in the same order).
    pub async fn agents_seen(&self, seen: &[Seen]) -> Result<(), StoreError> {
        if seen.is_empty() {
            return Ok(());
        }
        let mut seen: Vec<&Seen> = seen.iter().collect();
        seen.sort_by_key(|s| s.computer_id);
        let mut tx = self.begin().await?;
        for chunk in seen.chunks(SEEN_PER_STATEMENT) {
            let rows: Vec<String> = (0..chunk.len())
                .map(|i| format!("(${}, ${}, ${}, ${})", 4 * i + 1, 4 * i + 2, 4 * i + 3, 4 * i + 4))
                .collect();
            let sql = format!(
                "WITH seen (id, at_ms, version, error) AS (VALUES {}) \
                 UPDATE computers SET last_seen_ms = seen.at_ms, bundle_version = seen.version, \
                 bundle_error = seen.error FROM seen WHERE computers.id = seen.id",
                rows.join(", ")
            );
            // Only placeholders are formatted into the text; every value is bound.
            let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
            for s in chunk {
                query = query.bind(s.computer_id).bind(s.at_ms).bind(s.bundle_version).bind(&s.bundle_error);
            }
            query.execute(&mut *tx).await?;
        }
        for s in seen {
            if s.events_lost > 0 {
                sqlx::query("UPDATE computers SET events_lost = events_lost + $1 WHERE id = $2")
                    .bind(i64::try_from(s.events_lost).unwrap_or(i64::MAX))
                    .bind(s.computer_id)
                    .execute(&mut *tx)
                    .await?;
            }
            if let Some((host_json, agent_version)) = &s.host {
                sqlx::query("UPDATE computers SET host_json = $1, agent_version = $2 WHERE id = $3")
                    .bind(host_json)
                    .bind(agent_version)
                    .bind(s.computer_id)
                    .execute(&mut *tx)
                    .await?;
            }
        }
        tx.commit().await?;
        Ok(())
    }
}

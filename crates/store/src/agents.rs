//! Agents: enrollment with a group's token, then a credential of their own; their contact
//! and what they report about their host.

use crate::{Store, StoreError, now_ms, random_hex, sha256_hex};

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

/// What an agent enrolls with.
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
}

impl Store {
    /// Enroll a computer into the group whose token this is and give it a credential
    /// (returned once, stored as a hash). A computer of the same name enrolling again
    /// replaces its old credential.
    pub async fn enroll(&self, e: &Enrollment<'_>) -> Result<(AgentIdentity, String), StoreError> {
        let group: Option<(i64, i64, String, String)> = sqlx::query_as(
            "SELECT g.id, g.org_id, g.path, o.name FROM computer_groups g JOIN organizations o ON o.id = g.org_id \
             WHERE g.enroll_token_hash = $1",
        )
        .bind(sha256_hex(e.token))
        .fetch_optional(self.pool())
        .await?;
        let Some((group_id, org_id, path, org_name)) = group else {
            return Err(StoreError::NotFound("enrollment token"));
        };
        let name = e.hostname.trim();
        if name.is_empty() || name.len() > 253 {
            return Err(StoreError::Invalid("the host name must be 1 to 253 characters".into()));
        }
        let credential = format!("pca_{}", random_hex(32)?);
        let now = now_ms();
        let mut tx = self.begin().await?;
        let computer_id: i64 = sqlx::query_scalar(
            "INSERT INTO computers (org_id, group_id, name, os, credential_hash, host_json, agent_version, enrolled_ms, \
             last_seen_ms) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $8) \
             ON CONFLICT (org_id, name) DO UPDATE SET group_id = $2, os = $4, credential_hash = $5, host_json = $6, \
             agent_version = $7, enrolled_ms = $8, last_seen_ms = $8, bundle_version = 0 RETURNING id",
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
        .await?;
        let after = serde_json::json!({ "name": name, "group": path, "os": e.os, "agent_version": e.agent_version });
        // Logged, but no new version: the organization's document holds no computers, so a
        // new one changes no other agent's bundle (its own first poll fetches it).
        sqlx::query(
            "INSERT INTO audit_log (org_id, at_ms, actor, action, object, before_json, after_json) \
             VALUES ($1, $2, $3, 'enroll', $4, NULL, $5)",
        )
        .bind(org_id)
        .bind(now)
        .bind(format!("agent {name}"))
        .bind(format!("computer {name}"))
        .bind(after.to_string())
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok((AgentIdentity { computer_id, org_id, org_name, name: name.to_owned() }, credential))
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
    /// second, so thousands of polling agents cost one write, not thousands.
    pub async fn agents_seen(&self, seen: &[Seen]) -> Result<(), StoreError> {
        if seen.is_empty() {
            return Ok(());
        }
        let mut tx = self.begin().await?;
        for s in seen {
            match &s.host {
                Some((host_json, agent_version)) => {
                    sqlx::query(
                        "UPDATE computers SET last_seen_ms = $1, bundle_version = $2, host_json = $3, agent_version = $4 \
                         WHERE id = $5",
                    )
                    .bind(s.at_ms)
                    .bind(s.bundle_version)
                    .bind(host_json)
                    .bind(agent_version)
                    .bind(s.computer_id)
                    .execute(&mut *tx)
                    .await?;
                }
                None => {
                    sqlx::query("UPDATE computers SET last_seen_ms = $1, bundle_version = $2 WHERE id = $3")
                        .bind(s.at_ms)
                        .bind(s.bundle_version)
                        .bind(s.computer_id)
                        .execute(&mut *tx)
                        .await?;
                }
            }
        }
        tx.commit().await?;
        Ok(())
    }
}

//! The organization's model: settings, computer groups, computers, applications, policies
//! and blocklist packages, kept as policy-file documents
//! ([`portcullis_policy_file::document`]) so that [`Store::document`] reads back exactly
//! what an agent's bundle holds.
//!
//! Every change runs in one transaction with its audit entry (before and after, as JSON)
//! and a bump of the organization's version, which is what agents long-poll on: a change is
//! either saved, logged and announced, or none of these.

use crate::secrets::{Opened, SecretKeyError};
use crate::{Store, StoreError, hex, now_ms, random_hex, sha256_hex};
use portcullis_policy_file::document::{
    ApplicationDoc, BlocklistDoc, ComputerDoc, Document, GroupDoc, OrganizationDoc, PolicyDoc, RingfenceDoc, RuleDoc,
};
use portcullis_protocol::{BundleKey, BundlePublicKey, KeyEndorsement, MAX_KEY_CHAIN, PolicyHit};
use serde::Serialize;

mod applications;
mod blocklists;
mod computers;
mod groups;
mod keys;
mod policies;
mod ringfences;
mod settings;

pub(crate) use crate::audit::Tx;
pub use keys::SealReport;

/// The most matches a policy counts (2^53: still exact as a JSON number).
pub const MAX_HITS: i64 = 1 << 53;

/// Who makes a change, in which organization: every change is scoped and logged by it.
#[derive(Clone, Copy, Debug)]
pub struct Change<'a> {
    /// The organization.
    pub org_id: i64,
    /// `user NAME` or `token of NAME`, as the audit log shows it.
    pub actor: &'a str,
}

/// A computer group.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct GroupRow {
    /// Id.
    pub id: i64,
    /// Path and mode.
    #[serde(flatten)]
    pub doc: GroupDoc,
    /// Whether agents can enroll into it (a token exists, not expired, uses left).
    pub enrollment_open: bool,
    /// When the token stops working, Unix milliseconds.
    pub enrollment_expires_ms: Option<i64>,
    /// Enrollments the token has left.
    pub enrollment_uses_left: Option<i64>,
    /// Computers directly in it.
    pub computers: i64,
}

/// A computer (an enrolled agent).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ComputerRow {
    /// Id.
    pub id: i64,
    /// Name, group, OS and mode override.
    #[serde(flatten)]
    pub doc: ComputerDoc,
    /// What the agent reported about its host, JSON.
    pub host_json: Option<String>,
    /// The agent's version.
    pub agent_version: Option<String>,
    /// Enrolled at, Unix milliseconds.
    pub enrolled_ms: i64,
    /// Last contact, Unix milliseconds.
    pub last_seen_ms: Option<i64>,
    /// The bundle version the agent last said it enforces.
    pub bundle_version: i64,
    /// Why the agent refused the last bundle it was sent, as it reported.
    pub bundle_error: Option<String>,
    /// When the agent last reported its installed packages, Unix milliseconds.
    pub packages_ms: Option<i64>,
    /// How many packages it reported.
    pub package_count: i64,
    /// Events its agent could not keep (its spool's filesystem full), as it reported them.
    pub events_lost: i64,
}

/// A package installed on a computer, as its agent reported it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PackageRow {
    /// `dpkg:openssh-server`, `rpm:bash`.
    pub name: String,
    /// Architecture.
    pub arch: String,
    /// Installed version.
    pub version: String,
}

/// A custom application.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ApplicationRow {
    /// Id.
    pub id: i64,
    /// Name, description, rules.
    #[serde(flatten)]
    pub doc: ApplicationDoc,
    /// Created at.
    pub created_ms: i64,
}

/// A ringfence profile.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RingfenceRow {
    /// Id.
    pub id: i64,
    /// The profile: name, description, files, network, children.
    #[serde(flatten)]
    pub doc: RingfenceDoc,
    /// Created at.
    pub created_ms: i64,
}

/// A policy with its use.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PolicyRow {
    /// Id.
    pub id: i64,
    /// The policy as a document.
    #[serde(flatten)]
    pub doc: PolicyDoc,
    /// Created at.
    pub created_ms: i64,
    /// Matches reported by agents.
    pub hits: i64,
    /// The last match reported, Unix milliseconds.
    pub last_matched_ms: Option<i64>,
    /// Shipped with the product: may be moved, disabled or re-scoped, not removed.
    pub builtin: bool,
}

/// Where a blocklist package is approved.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ApprovalRow {
    /// `organization`, `group:PATH` or `computer:NAME`.
    pub scope: String,
    /// `enforce` or `monitor`.
    pub status: String,
    /// Who approved it.
    pub approved_by: String,
    /// When.
    pub approved_ms: i64,
}

/// A blocklist package (its hashes are counted here, listed by [`Store::blocklist_hashes`]).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct BlocklistRow {
    /// Id.
    pub id: i64,
    /// Name.
    pub name: String,
    /// For people.
    pub description: Option<String>,
    /// Metadata rules.
    pub rules: Vec<RuleDoc>,
    /// Number of hashes.
    pub hash_count: i64,
    /// Approvals.
    pub approvals: Vec<ApprovalRow>,
    /// Created at.
    pub created_ms: i64,
}

/// Where to move a policy in the ordered list.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Move {
    /// One place earlier (decides before the one it passes).
    Up,
    /// One place later.
    Down,
    /// First.
    Top,
    /// Last.
    Bottom,
}

/// The built-in policy every organization starts with: deny the catalog's reported builds.
pub const BUILTIN_REPORTED_POLICY: &str = "Deny reported compromised builds (Built-In)";

/// What a sealed bundle seed is bound to: its organization's row.
fn seed_context(org_id: i64) -> String {
    format!("org_state.bundle_seed of organization {org_id}")
}

fn json<T: Serialize>(value: &T) -> String {
    serde_json::to_string(value).expect("model rows are plain data and always serialize")
}

fn from_json<T: serde::de::DeserializeOwned>(text: &str, what: &str) -> Result<T, StoreError> {
    serde_json::from_str(text).map_err(|e| StoreError::Corrupt(format!("{what}: {e}")))
}

fn flag(b: bool) -> i64 {
    i64::from(b)
}

/// Refuse to remove `what` while the policies in `users` name it; `fix` says what to do.
fn refuse_if_used(what: &str, users: &[String], fix: &str) -> Result<(), StoreError> {
    if users.is_empty() {
        return Ok(());
    }
    let names = users.iter().map(|u| format!("{u:?}")).collect::<Vec<_>>().join(", ");
    Err(StoreError::Invalid(format!("{what} is used by {names}; {fix}")))
}

impl Store {
    /// Delete one row of the organization's `table` (a fixed table name), in one
    /// transaction with its audit entry (`object`, and the row as it was) and a version bump.
    async fn delete_row(
        &self,
        change: Change<'_>,
        table: &'static str,
        id: i64,
        object: &str,
        before: String,
    ) -> Result<(), StoreError> {
        let mut tx = self.begin().await?;
        sqlx::query(sqlx::AssertSqlSafe(format!("DELETE FROM {table} WHERE id = $1 AND org_id = $2")))
            .bind(id)
            .bind(change.org_id)
            .execute(&mut *tx)
            .await?;
        self.commit(tx, change, "delete", object, Some(before), None).await
    }

    pub(crate) async fn begin(&self) -> Result<Tx, StoreError> {
        Ok(self.pool().begin().await?)
    }

    /// Log the change, announce a new version and commit.
    pub(crate) async fn commit(
        &self,
        mut tx: Tx,
        change: Change<'_>,
        action: &str,
        object: &str,
        before: Option<String>,
        after: Option<String>,
    ) -> Result<(), StoreError> {
        crate::audit::log_in(&mut tx, change, action, object, before, after).await?;
        let bumped = sqlx::query("UPDATE org_state SET version = version + 1 WHERE org_id = $1")
            .bind(change.org_id)
            .execute(&mut *tx)
            .await?;
        if bumped.rows_affected() != 1 {
            return Err(StoreError::NotFound("organization"));
        }
        if self.backend() == crate::Backend::Postgres {
            // Delivered to every server's listener when (and only if) this commits.
            sqlx::query("SELECT pg_notify($1, $2)")
                .bind(crate::versions::CHANNEL)
                .bind(change.org_id.to_string())
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Make the organization's state row (version, bundle key, defaults) and its built-in
    /// policies, once.
    pub(crate) async fn ensure_org_state(&self, org_id: i64) -> Result<(), StoreError> {
        let exists: Option<i64> = sqlx::query_scalar("SELECT version FROM org_state WHERE org_id = $1")
            .bind(org_id)
            .fetch_optional(self.pool())
            .await?;
        if exists.is_some() {
            return Ok(());
        }
        let mut tx = self.begin().await?;
        let made = sqlx::query(
            "INSERT INTO org_state (org_id, version, bundle_seed, mode) VALUES ($1, 1, $2, 'monitor') \
             ON CONFLICT (org_id) DO NOTHING",
        )
        .bind(org_id)
        .bind(self.keys.seal(random_hex(32)?.as_bytes(), &seed_context(org_id))?)
        .execute(&mut *tx)
        .await?;
        if made.rows_affected() == 1 {
            let reported: Vec<String> = portcullis_catalog::builtin_applications()
                .iter()
                .filter(|a| a.name.contains("[Reported]"))
                .map(|a| a.name.clone())
                .collect();
            sqlx::query(
                "INSERT INTO policies (org_id, name, description, position, applications_json, action, scope, status, \
                 enabled, created_ms, builtin) VALUES ($1, $2, $3, 10, $4, 'deny', 'organization', 'enforce', 1, $5, 1)",
            )
            .bind(org_id)
            .bind(BUILTIN_REPORTED_POLICY)
            .bind("Denies the published builds of compromised software (the catalogue's [Reported] applications).")
            .bind(json(&reported))
            .bind(now_ms())
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// The organization's version: it grows with every change to its model.
    pub async fn org_version(&self, org_id: i64) -> Result<i64, StoreError> {
        self.ensure_org_state(org_id).await?;
        Ok(sqlx::query_scalar("SELECT version FROM org_state WHERE org_id = $1")
            .bind(org_id)
            .fetch_one(self.pool())
            .await?)
    }

    /// Every organization's version (what a server polls to learn of other servers' changes).
    pub async fn org_versions(&self) -> Result<Vec<(i64, i64)>, StoreError> {
        Ok(sqlx::query_as("SELECT org_id, version FROM org_state").fetch_all(self.pool()).await?)
    }

    // ----- the whole model --------------------------------------------------------------

    /// The organization's model as a policy document, without computers (an agent's bundle
    /// adds its own computer), with the version it was read at.
    pub async fn document(&self, org_id: i64) -> Result<(i64, Document), StoreError> {
        // Read the version first: a change made while reading bumps it again, so the
        // document is never newer-looking than what it holds.
        let version = self.org_version(org_id).await?;
        let organization = self.settings(org_id).await?;
        let groups = self.groups(org_id).await?.into_iter().map(|g| g.doc).collect();
        let applications = self.applications(org_id).await?.into_iter().map(|a| a.doc).collect();
        let policies = self.policies(org_id).await?.into_iter().map(|p| p.doc).collect();
        let ringfences = self.ringfences(org_id).await?.into_iter().map(|r| r.doc).collect();
        let mut blocklists = Vec::new();
        for b in self.blocklists(org_id).await? {
            if b.hash_count == 0 && b.rules.is_empty() {
                // Still being filled: it matches nothing, and a package without rules is
                // not a valid policy item.
                continue;
            }
            let hashes: Vec<String> = self.blocklist_hashes(org_id, b.id).await?.into_iter().map(|h| h.0).collect();
            let (approved, monitor): (Vec<_>, Vec<_>) = b.approvals.into_iter().partition(|a| a.status == "enforce");
            blocklists.push(BlocklistDoc {
                name: b.name,
                description: b.description,
                hashes: (!hashes.is_empty()).then_some(hashes),
                rules: b.rules,
                approved: approved.into_iter().map(|a| a.scope).collect(),
                approved_monitor: monitor.into_iter().map(|a| a.scope).collect(),
            });
        }
        Ok((
            version,
            Document {
                organization: Some(organization),
                groups,
                computers: Vec::new(),
                applications,
                blocklists,
                policies,
                ringfences,
            },
        ))
    }
}

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

pub(crate) type Tx = sqlx::Transaction<'static, sqlx::Any>;

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
}

/// A custom application.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
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

impl Store {
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
            "INSERT INTO org_state (org_id, version, bundle_seed, mode) VALUES ($1, 1, $2, 'secured') \
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

    /// The organization's ed25519 bundle key (its seed unsealed).
    pub async fn bundle_key(&self, org_id: i64) -> Result<BundleKey, StoreError> {
        self.ensure_org_state(org_id).await?;
        let stored: String = sqlx::query_scalar("SELECT bundle_seed FROM org_state WHERE org_id = $1")
            .bind(org_id)
            .fetch_one(self.pool())
            .await?;
        Ok(BundleKey::from_seed(self.open_seed(org_id, &stored)?.1))
    }

    /// How the organization's current bundle key was reached from its first: the
    /// endorsements of its rotations, oldest first (the last [`MAX_KEY_CHAIN`]).
    pub async fn bundle_key_chain(&self, org_id: i64) -> Result<Vec<KeyEndorsement>, StoreError> {
        let rows: Vec<(String,)> = sqlx::query_as(
            "SELECT endorsement FROM bundle_key_endorsements WHERE org_id = $1 ORDER BY seq DESC LIMIT $2",
        )
        .bind(org_id)
        .bind(MAX_KEY_CHAIN as i64)
        .fetch_all(self.pool())
        .await?;
        rows.into_iter()
            .rev()
            .map(|(j,)| {
                serde_json::from_str(&j).map_err(|e| StoreError::Corrupt(format!("bundle key endorsement: {e}")))
            })
            .collect()
    }

    /// Replace the organization's bundle key with a new one, endorsed by the old: agents
    /// follow it with their next bundle (the version rises, so every agent gets one), and
    /// the old seed is gone. Returns the new public key.
    pub async fn rotate_bundle_key(&self, change: Change<'_>) -> Result<BundlePublicKey, StoreError> {
        self.ensure_org_state(change.org_id).await?;
        let (stored, organization): (String, String) = sqlx::query_as(
            "SELECT s.bundle_seed, o.name FROM org_state s JOIN organizations o ON o.id = s.org_id WHERE s.org_id = $1",
        )
        .bind(change.org_id)
        .fetch_one(self.pool())
        .await?;
        let old = BundleKey::from_seed(self.open_seed(change.org_id, &stored)?.1);
        let mut seed = [0u8; 32];
        getrandom::fill(&mut seed).map_err(|e| StoreError::Hashing(e.to_string()))?;
        let new = BundleKey::from_seed(seed);
        let now = now_ms();
        let endorsement = old.endorse(&organization, &new.public(), now);
        let sealed = self.keys.seal(hex(&seed).as_bytes(), &seed_context(change.org_id))?;
        let mut tx = self.begin().await?;
        // Only over the seed just read: two rotations at once must not both endorse from it.
        let replaced = sqlx::query("UPDATE org_state SET bundle_seed = $1 WHERE org_id = $2 AND bundle_seed = $3")
            .bind(&sealed)
            .bind(change.org_id)
            .bind(&stored)
            .execute(&mut *tx)
            .await?;
        if replaced.rows_affected() != 1 {
            return Err(StoreError::Invalid("the bundle key changed meanwhile (another rotation); try again".into()));
        }
        sqlx::query(
            "INSERT INTO bundle_key_endorsements (org_id, seq, public_key, endorsement, created_ms) \
             VALUES ($1, (SELECT COALESCE(MAX(seq), 0) + 1 FROM bundle_key_endorsements WHERE org_id = $1), $2, $3, $4)",
        )
        .bind(change.org_id)
        .bind(new.public().to_hex())
        .bind(json(&endorsement))
        .bind(now)
        .execute(&mut *tx)
        .await?;
        let (before, after) = (old.public().to_hex(), new.public().to_hex());
        self.commit(tx, change, "rotate", "bundle key", Some(json(&before)), Some(json(&after))).await?;
        Ok(new.public())
    }

    /// Seal every bundle seed with the first secret key: seeds stored before sealing
    /// existed, and seeds sealed with an older key. Returns how many were sealed again.
    pub(crate) async fn reseal_bundle_seeds(&self) -> Result<u64, StoreError> {
        let rows: Vec<(i64, String)> =
            sqlx::query_as("SELECT org_id, bundle_seed FROM org_state").fetch_all(self.pool()).await?;
        let mut resealed = 0;
        for (org_id, stored) in rows {
            let (opened, seed) = match self.open_seed(org_id, &stored) {
                Ok(o) => o,
                // A key the server was not given: the operator's key file is wrong, and
                // nothing would sign; stop here and say which key is needed.
                Err(e @ StoreError::Secret(SecretKeyError::UnknownKey { .. })) => return Err(e),
                // One damaged row fails its organization's bundles (and says so), not the
                // start of the server for every other organization.
                Err(_) => continue,
            };
            if matches!(opened, Opened::Current(_)) {
                continue;
            }
            let sealed = self.keys.seal(hex(&seed).as_bytes(), &seed_context(org_id))?;
            // Over the value read only: a rotation meanwhile wins.
            let done = sqlx::query("UPDATE org_state SET bundle_seed = $1 WHERE org_id = $2 AND bundle_seed = $3")
                .bind(&sealed)
                .bind(org_id)
                .bind(&stored)
                .execute(self.pool())
                .await?;
            resealed += done.rows_affected();
        }
        Ok(resealed)
    }

    /// A stored seed opened, and as bytes.
    fn open_seed(&self, org_id: i64, stored: &str) -> Result<(Opened, [u8; 32]), StoreError> {
        let what = format!("the bundle signing key of organization {org_id}");
        let opened = self.keys.open(stored, &seed_context(org_id), &what)?;
        let text = opened.text();
        let bytes: Option<Vec<u8>> = (0..text.len())
            .step_by(2)
            .map(|i| text.get(i..i + 2).and_then(|h| u8::from_str_radix(h, 16).ok()))
            .collect();
        let seed = bytes.and_then(|b| <[u8; 32]>::try_from(b).ok()).ok_or_else(|| StoreError::Corrupt(what))?;
        Ok((opened, seed))
    }

    // ----- settings -------------------------------------------------------------------

    /// The organization's defaults (mode, script control).
    pub async fn settings(&self, org_id: i64) -> Result<OrganizationDoc, StoreError> {
        self.ensure_org_state(org_id).await?;
        let (name, mode, until, capture_into, script_control): (String, String, Option<String>, Option<String>, i64) =
            sqlx::query_as(
                "SELECT o.name, s.mode, s.mode_until, s.capture_into, s.script_control FROM org_state s \
                 JOIN organizations o ON o.id = s.org_id WHERE s.org_id = $1",
            )
            .bind(org_id)
            .fetch_one(self.pool())
            .await?;
        Ok(OrganizationDoc {
            name: Some(name),
            mode: Some(mode),
            until,
            capture_into,
            script_control: Some(script_control == 1),
        })
    }

    /// Change the organization's defaults.
    pub async fn set_settings(&self, change: Change<'_>, doc: &OrganizationDoc) -> Result<(), StoreError> {
        let before = self.settings(change.org_id).await?;
        let mut tx = self.begin().await?;
        sqlx::query(
            "UPDATE org_state SET mode = $1, mode_until = $2, capture_into = $3, script_control = $4 WHERE org_id = $5",
        )
        .bind(doc.mode.clone().unwrap_or_else(|| "secured".into()))
        .bind(&doc.until)
        .bind(&doc.capture_into)
        .bind(flag(doc.script_control.unwrap_or(false)))
        .bind(change.org_id)
        .execute(&mut *tx)
        .await?;
        let after = OrganizationDoc { name: before.name.clone(), ..doc.clone() };
        self.commit(tx, change, "update", "organization settings", Some(json(&before)), Some(json(&after))).await
    }

    // ----- groups ---------------------------------------------------------------------

    /// The organization's computer groups, by path.
    pub async fn groups(&self, org_id: i64) -> Result<Vec<GroupRow>, StoreError> {
        #[allow(clippy::type_complexity)]
        let rows: Vec<(
            i64,
            String,
            Option<String>,
            Option<String>,
            Option<String>,
            Option<String>,
            i64,
            Option<i64>,
            Option<i64>,
        )> = sqlx::query_as(
            "SELECT g.id, g.path, g.mode, g.mode_until, g.capture_into, g.enroll_token_hash, \
             (SELECT COUNT(*) FROM computers c WHERE c.group_id = g.id), g.enroll_expires_ms, g.enroll_uses_left \
             FROM computer_groups g WHERE g.org_id = $1 ORDER BY g.path",
        )
        .bind(org_id)
        .fetch_all(self.pool())
        .await?;
        let now = now_ms();
        Ok(rows
            .into_iter()
            .map(|(id, path, mode, until, capture_into, token, computers, expires, uses)| GroupRow {
                id,
                doc: GroupDoc { path, mode, until, capture_into },
                enrollment_open: token.is_some() && expires.is_none_or(|t| t > now) && uses.is_none_or(|u| u > 0),
                enrollment_expires_ms: token.as_ref().and(expires),
                enrollment_uses_left: token.as_ref().and(uses),
                computers,
            })
            .collect())
    }

    async fn group(&self, org_id: i64, id: i64) -> Result<GroupRow, StoreError> {
        self.groups(org_id).await?.into_iter().find(|g| g.id == id).ok_or(StoreError::NotFound("group"))
    }

    /// Add a group (its parent path must exist, except for a top-level group).
    pub async fn create_group(&self, change: Change<'_>, doc: &GroupDoc) -> Result<i64, StoreError> {
        let groups = self.groups(change.org_id).await?;
        if groups.iter().any(|g| g.doc.path.eq_ignore_ascii_case(&doc.path)) {
            return Err(StoreError::Exists { what: "group", name: doc.path.clone() });
        }
        if let Some((parent, _)) = doc.path.rsplit_once('/')
            && !groups.iter().any(|g| g.doc.path.eq_ignore_ascii_case(parent))
        {
            return Err(StoreError::Invalid(format!("group {parent:?} does not exist; create it first")));
        }
        let mut tx = self.begin().await?;
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO computer_groups (org_id, path, mode, mode_until, capture_into, created_ms) \
             VALUES ($1, $2, $3, $4, $5, $6) RETURNING id",
        )
        .bind(change.org_id)
        .bind(&doc.path)
        .bind(&doc.mode)
        .bind(&doc.until)
        .bind(&doc.capture_into)
        .bind(now_ms())
        .fetch_one(&mut *tx)
        .await?;
        self.commit(tx, change, "create", &format!("group {}", doc.path), None, Some(json(doc))).await?;
        Ok(id)
    }

    /// Change a group's mode (its path stays).
    pub async fn update_group(&self, change: Change<'_>, id: i64, doc: &GroupDoc) -> Result<(), StoreError> {
        let before = self.group(change.org_id, id).await?;
        let mut tx = self.begin().await?;
        sqlx::query(
            "UPDATE computer_groups SET mode = $1, mode_until = $2, capture_into = $3 WHERE id = $4 AND org_id = $5",
        )
        .bind(&doc.mode)
        .bind(&doc.until)
        .bind(&doc.capture_into)
        .bind(id)
        .bind(change.org_id)
        .execute(&mut *tx)
        .await?;
        let after = GroupDoc { path: before.doc.path.clone(), ..doc.clone() };
        let object = format!("group {}", before.doc.path);
        self.commit(tx, change, "update", &object, Some(json(&before.doc)), Some(json(&after))).await
    }

    /// Remove an empty group (no computers, no subgroups).
    pub async fn delete_group(&self, change: Change<'_>, id: i64) -> Result<(), StoreError> {
        let groups = self.groups(change.org_id).await?;
        let group = groups.iter().find(|g| g.id == id).ok_or(StoreError::NotFound("group"))?;
        let prefix = format!("{}/", group.doc.path.to_ascii_lowercase());
        if group.computers > 0 || groups.iter().any(|g| g.doc.path.to_ascii_lowercase().starts_with(&prefix)) {
            return Err(StoreError::Invalid(format!(
                "group {:?} still holds computers or subgroups; move or remove them first",
                group.doc.path
            )));
        }
        let mut tx = self.begin().await?;
        sqlx::query("DELETE FROM computer_groups WHERE id = $1 AND org_id = $2")
            .bind(id)
            .bind(change.org_id)
            .execute(&mut *tx)
            .await?;
        let object = format!("group {}", group.doc.path);
        self.commit(tx, change, "delete", &object, Some(json(&group.doc)), None).await
    }

    /// A new enrollment token for a group (the previous one stops working), valid until
    /// `limits.expires_ms` and for `limits.uses` enrollments when given. Returned once;
    /// only its hash is kept.
    pub async fn rotate_enrollment_token(
        &self,
        change: Change<'_>,
        id: i64,
        limits: crate::TokenLimits,
    ) -> Result<String, StoreError> {
        let group = self.group(change.org_id, id).await?;
        let token = format!("pce_{}", random_hex(24)?);
        let mut tx = self.begin().await?;
        sqlx::query(
            "UPDATE computer_groups SET enroll_token_hash = $1, enroll_expires_ms = $2, enroll_uses_left = $3 \
             WHERE id = $4 AND org_id = $5",
        )
        .bind(sha256_hex(&token))
        .bind(limits.expires_ms)
        .bind(limits.uses)
        .bind(id)
        .bind(change.org_id)
        .execute(&mut *tx)
        .await?;
        let object = format!("enrollment token of group {}", group.doc.path);
        let after = serde_json::json!({ "expires_ms": limits.expires_ms, "uses": limits.uses }).to_string();
        crate::audit::log_in(&mut tx, change, "create", &object, None, Some(after)).await?;
        tx.commit().await?;
        Ok(token)
    }

    /// Revoke a group's enrollment token: no agent enrolls with it any more (enrolled
    /// agents keep their own credentials).
    pub async fn revoke_enrollment_token(&self, change: Change<'_>, id: i64) -> Result<(), StoreError> {
        let group = self.group(change.org_id, id).await?;
        let mut tx = self.begin().await?;
        sqlx::query(
            "UPDATE computer_groups SET enroll_token_hash = NULL, enroll_expires_ms = NULL, enroll_uses_left = NULL \
             WHERE id = $1 AND org_id = $2",
        )
        .bind(id)
        .bind(change.org_id)
        .execute(&mut *tx)
        .await?;
        let object = format!("enrollment token of group {}", group.doc.path);
        crate::audit::log_in(&mut tx, change, "revoke", &object, None, None).await?;
        tx.commit().await?;
        Ok(())
    }

    // ----- computers ------------------------------------------------------------------

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

    // ----- applications ---------------------------------------------------------------

    /// The organization's custom applications, by name.
    pub async fn applications(&self, org_id: i64) -> Result<Vec<ApplicationRow>, StoreError> {
        let rows: Vec<(i64, String, Option<String>, String, i64)> = sqlx::query_as(
            "SELECT id, name, description, rules_json, created_ms FROM applications WHERE org_id = $1 ORDER BY name",
        )
        .bind(org_id)
        .fetch_all(self.pool())
        .await?;
        rows.into_iter()
            .map(|(id, name, description, rules, created_ms)| {
                Ok(ApplicationRow {
                    id,
                    doc: ApplicationDoc { name, description, rules: from_json(&rules, "application rules")? },
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
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO applications (org_id, name, description, rules_json, created_ms) VALUES ($1, $2, $3, $4, $5) \
             RETURNING id",
        )
        .bind(change.org_id)
        .bind(&doc.name)
        .bind(&doc.description)
        .bind(json(&doc.rules))
        .bind(now_ms())
        .fetch_one(&mut *tx)
        .await?;
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
        sqlx::query("UPDATE applications SET description = $1, rules_json = $2 WHERE id = $3 AND org_id = $4")
            .bind(&doc.description)
            .bind(json(&doc.rules))
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
        if !users.is_empty() {
            return Err(StoreError::Invalid(format!(
                "application {:?} is used by {}; remove it from those policies first",
                before.doc.name,
                users.iter().map(|u| format!("{u:?}")).collect::<Vec<_>>().join(", ")
            )));
        }
        let mut tx = self.begin().await?;
        sqlx::query("DELETE FROM applications WHERE id = $1 AND org_id = $2")
            .bind(id)
            .bind(change.org_id)
            .execute(&mut *tx)
            .await?;
        let object = format!("application {}", before.doc.name);
        self.commit(tx, change, "delete", &object, Some(json(&before.doc)), None).await
    }

    // ----- ringfences -----------------------------------------------------------------

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
        if !users.is_empty() {
            return Err(StoreError::Invalid(format!(
                "ringfence {:?} is used by {}; change or remove those policies first",
                before.doc.name,
                users.iter().map(|u| format!("{u:?}")).collect::<Vec<_>>().join(", ")
            )));
        }
        let mut tx = self.begin().await?;
        sqlx::query("DELETE FROM ringfences WHERE id = $1 AND org_id = $2")
            .bind(id)
            .bind(change.org_id)
            .execute(&mut *tx)
            .await?;
        let object = format!("ringfence {}", before.doc.name);
        self.commit(tx, change, "delete", &object, Some(json(&before.doc)), None).await
    }

    // ----- policies -------------------------------------------------------------------

    /// The organization's policies in decision order.
    pub async fn policies(&self, org_id: i64) -> Result<Vec<PolicyRow>, StoreError> {
        self.ensure_org_state(org_id).await?;
        #[derive(sqlx::FromRow)]
        struct Row {
            id: i64,
            name: String,
            description: Option<String>,
            position: i64,
            applications_json: String,
            action: String,
            ringfence: Option<String>,
            scope: String,
            status: String,
            enabled: i64,
            expires: Option<String>,
            created_ms: i64,
            hits: i64,
            last_matched_ms: Option<i64>,
            builtin: i64,
        }
        let rows: Vec<Row> = sqlx::query_as(
            "SELECT id, name, description, position, applications_json, action, ringfence, scope, status, enabled, \
             expires, created_ms, hits, last_matched_ms, builtin FROM policies WHERE org_id = $1 ORDER BY position, id",
        )
        .bind(org_id)
        .fetch_all(self.pool())
        .await?;
        rows.into_iter()
            .map(|r| {
                Ok(PolicyRow {
                    id: r.id,
                    doc: PolicyDoc {
                        name: r.name,
                        description: r.description,
                        position: r.position,
                        applications: from_json(&r.applications_json, "policy applications")?,
                        action: r.action,
                        ringfence: r.ringfence,
                        scope: Some(r.scope),
                        status: Some(r.status),
                        enabled: Some(r.enabled == 1),
                        expires: r.expires,
                    },
                    created_ms: r.created_ms,
                    hits: r.hits,
                    last_matched_ms: r.last_matched_ms,
                    builtin: r.builtin == 1,
                })
            })
            .collect()
    }

    /// One policy.
    pub async fn policy(&self, org_id: i64, id: i64) -> Result<PolicyRow, StoreError> {
        self.policies(org_id).await?.into_iter().find(|p| p.id == id).ok_or(StoreError::NotFound("policy"))
    }

    /// Add a policy; a position of 0 or less puts it last.
    pub async fn create_policy(&self, change: Change<'_>, doc: &PolicyDoc) -> Result<i64, StoreError> {
        let policies = self.policies(change.org_id).await?;
        if policies.iter().any(|p| p.doc.name.eq_ignore_ascii_case(&doc.name)) {
            return Err(StoreError::Exists { what: "policy", name: doc.name.clone() });
        }
        let position = if doc.position > 0 {
            doc.position
        } else {
            policies.iter().map(|p| p.doc.position).max().unwrap_or(0) + 10
        };
        let stored = PolicyDoc { position, ..doc.clone() };
        let mut tx = self.begin().await?;
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO policies (org_id, name, description, position, applications_json, action, ringfence, scope, \
             status, enabled, expires, created_ms) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12) RETURNING id",
        )
        .bind(change.org_id)
        .bind(&stored.name)
        .bind(&stored.description)
        .bind(position)
        .bind(json(&stored.applications))
        .bind(&stored.action)
        .bind(&stored.ringfence)
        .bind(stored.scope.clone().unwrap_or_else(|| "organization".into()))
        .bind(stored.status.clone().unwrap_or_else(|| "enforce".into()))
        .bind(flag(stored.enabled.unwrap_or(true)))
        .bind(&stored.expires)
        .bind(now_ms())
        .fetch_one(&mut *tx)
        .await?;
        self.commit(tx, change, "create", &format!("policy {}", stored.name), None, Some(json(&stored))).await?;
        Ok(id)
    }

    /// Replace a policy. A built-in policy keeps its name, applications and action.
    pub async fn update_policy(&self, change: Change<'_>, id: i64, doc: &PolicyDoc) -> Result<(), StoreError> {
        let before = self.policy(change.org_id, id).await?;
        if before.builtin
            && (doc.name != before.doc.name
                || doc.applications != before.doc.applications
                || doc.action != before.doc.action)
        {
            return Err(StoreError::Invalid(format!(
                "{:?} is built in: its name, applications and action are fixed; it can be moved, switched off, re-scoped or set to monitor",
                before.doc.name
            )));
        }
        if !doc.name.eq_ignore_ascii_case(&before.doc.name)
            && self.policies(change.org_id).await?.iter().any(|p| p.doc.name.eq_ignore_ascii_case(&doc.name))
        {
            return Err(StoreError::Exists { what: "policy", name: doc.name.clone() });
        }
        let position = if doc.position > 0 { doc.position } else { before.doc.position };
        let after = PolicyDoc { position, ..doc.clone() };
        let mut tx = self.begin().await?;
        sqlx::query(
            "UPDATE policies SET name = $1, description = $2, position = $3, applications_json = $4, action = $5, \
             ringfence = $6, scope = $7, status = $8, enabled = $9, expires = $10 WHERE id = $11 AND org_id = $12",
        )
        .bind(&after.name)
        .bind(&after.description)
        .bind(position)
        .bind(json(&after.applications))
        .bind(&after.action)
        .bind(&after.ringfence)
        .bind(after.scope.clone().unwrap_or_else(|| "organization".into()))
        .bind(after.status.clone().unwrap_or_else(|| "enforce".into()))
        .bind(flag(after.enabled.unwrap_or(true)))
        .bind(&after.expires)
        .bind(id)
        .bind(change.org_id)
        .execute(&mut *tx)
        .await?;
        let object = format!("policy {}", before.doc.name);
        self.commit(tx, change, "update", &object, Some(json(&before.doc)), Some(json(&after))).await
    }

    /// Remove policies (all or none: a built-in or unknown id refuses the whole request).
    pub async fn delete_policies(&self, change: Change<'_>, ids: &[i64]) -> Result<Vec<String>, StoreError> {
        let policies = self.policies(change.org_id).await?;
        let mut doomed = Vec::new();
        for id in ids {
            let p = policies.iter().find(|p| p.id == *id).ok_or(StoreError::NotFound("policy"))?;
            if p.builtin {
                return Err(StoreError::Invalid(format!(
                    "{:?} is built in and cannot be removed; switch it off instead",
                    p.doc.name
                )));
            }
            doomed.push(p);
        }
        let mut tx = self.begin().await?;
        for p in &doomed {
            sqlx::query("DELETE FROM policies WHERE id = $1 AND org_id = $2")
                .bind(p.id)
                .bind(change.org_id)
                .execute(&mut *tx)
                .await?;
        }
        let names: Vec<String> = doomed.iter().map(|p| p.doc.name.clone()).collect();
        let before: Vec<&PolicyDoc> = doomed.iter().map(|p| &p.doc).collect();
        let object =
            if names.len() == 1 { format!("policy {}", names[0]) } else { format!("{} policies", names.len()) };
        self.commit(tx, change, "delete", &object, Some(json(&before)), None).await?;
        Ok(names)
    }

    /// Move a policy in the order; positions are renumbered 10, 20, 30…
    pub async fn move_policy(&self, change: Change<'_>, id: i64, to: Move) -> Result<(), StoreError> {
        let mut policies = self.policies(change.org_id).await?;
        let from = policies.iter().position(|p| p.id == id).ok_or(StoreError::NotFound("policy"))?;
        let before: Vec<(String, i64)> = policies.iter().map(|p| (p.doc.name.clone(), p.doc.position)).collect();
        let moved = policies.remove(from);
        let name = moved.doc.name.clone();
        let target = match to {
            Move::Up => from.saturating_sub(1),
            Move::Down => (from + 1).min(policies.len()),
            Move::Top => 0,
            Move::Bottom => policies.len(),
        };
        policies.insert(target, moved);
        let mut tx = self.begin().await?;
        for (i, p) in policies.iter().enumerate() {
            let position = (i as i64 + 1) * 10;
            if p.doc.position != position {
                sqlx::query("UPDATE policies SET position = $1 WHERE id = $2 AND org_id = $3")
                    .bind(position)
                    .bind(p.id)
                    .bind(change.org_id)
                    .execute(&mut *tx)
                    .await?;
            }
        }
        let after: Vec<(String, i64)> =
            policies.iter().enumerate().map(|(i, p)| (p.doc.name.clone(), (i as i64 + 1) * 10)).collect();
        let action = match to {
            Move::Up => "move up",
            Move::Down => "move down",
            Move::Top => "move to top",
            Move::Bottom => "move to bottom",
        };
        self.commit(tx, change, action, &format!("policy {name}"), Some(json(&before)), Some(json(&after))).await
    }

    /// Count matches reported by an agent (no version bump, no audit: this is use, not change).
    /// Counts saturate at [`MAX_HITS`] (SQLite's integers overflow with an error, not a
    /// wrap) and a match time is taken only if it is not in the future.
    pub async fn record_hits(&self, org_id: i64, hits: &[PolicyHit]) -> Result<(), StoreError> {
        let now = now_ms();
        for PolicyHit { policy, count, last_ms } in hits {
            let count = i64::try_from(*count).unwrap_or(MAX_HITS).min(MAX_HITS);
            let last_ms = (*last_ms).clamp(0, now);
            sqlx::query(
                "UPDATE policies SET hits = CASE WHEN hits >= $1 - $2 THEN $1 ELSE hits + $2 END, \
                 last_matched_ms = CASE WHEN last_matched_ms IS NULL OR last_matched_ms < $3 THEN $3 \
                 ELSE last_matched_ms END WHERE org_id = $4 AND name = $5",
            )
            .bind(MAX_HITS)
            .bind(count)
            .bind(last_ms)
            .bind(org_id)
            .bind(policy)
            .execute(self.pool())
            .await?;
        }
        Ok(())
    }

    /// Policies not matched since `since_ms` (or never), except built-ins and those created
    /// after `created_before_ms`.
    pub async fn unused_policies(
        &self,
        org_id: i64,
        since_ms: i64,
        created_before_ms: i64,
    ) -> Result<Vec<PolicyRow>, StoreError> {
        Ok(self
            .policies(org_id)
            .await?
            .into_iter()
            .filter(|p| {
                !p.builtin && p.created_ms < created_before_ms && p.last_matched_ms.is_none_or(|t| t < since_ms)
            })
            .collect())
    }

    // ----- blocklists -----------------------------------------------------------------

    /// The organization's blocklist packages, by name.
    pub async fn blocklists(&self, org_id: i64) -> Result<Vec<BlocklistRow>, StoreError> {
        let rows: Vec<(i64, String, Option<String>, String, i64, i64)> = sqlx::query_as(
            "SELECT b.id, b.name, b.description, b.rules_json, b.created_ms, \
             (SELECT COUNT(*) FROM blocklist_hashes h WHERE h.blocklist_id = b.id) FROM blocklists b \
             WHERE b.org_id = $1 ORDER BY b.name",
        )
        .bind(org_id)
        .fetch_all(self.pool())
        .await?;
        let approvals: Vec<(i64, String, String, String, i64)> = sqlx::query_as(
            "SELECT a.blocklist_id, a.scope, a.status, a.approved_by, a.approved_ms FROM blocklist_approvals a \
             JOIN blocklists b ON b.id = a.blocklist_id WHERE b.org_id = $1 ORDER BY a.scope",
        )
        .bind(org_id)
        .fetch_all(self.pool())
        .await?;
        rows.into_iter()
            .map(|(id, name, description, rules, created_ms, hash_count)| {
                Ok(BlocklistRow {
                    id,
                    name,
                    description,
                    rules: from_json(&rules, "blocklist rules")?,
                    hash_count,
                    approvals: approvals
                        .iter()
                        .filter(|a| a.0 == id)
                        .map(|a| ApprovalRow {
                            scope: a.1.clone(),
                            status: a.2.clone(),
                            approved_by: a.3.clone(),
                            approved_ms: a.4,
                        })
                        .collect(),
                    created_ms,
                })
            })
            .collect()
    }

    /// One blocklist package.
    pub async fn blocklist(&self, org_id: i64, id: i64) -> Result<BlocklistRow, StoreError> {
        self.blocklists(org_id).await?.into_iter().find(|b| b.id == id).ok_or(StoreError::NotFound("blocklist"))
    }

    /// A package's hashes, sorted.
    pub async fn blocklist_hashes(&self, org_id: i64, id: i64) -> Result<Vec<(String, String)>, StoreError> {
        Ok(sqlx::query_as(
            "SELECT h.hash, h.kind FROM blocklist_hashes h JOIN blocklists b ON b.id = h.blocklist_id \
             WHERE b.org_id = $1 AND b.id = $2 ORDER BY h.hash",
        )
        .bind(org_id)
        .bind(id)
        .fetch_all(self.pool())
        .await?)
    }

    /// Add an empty package.
    pub async fn create_blocklist(
        &self,
        change: Change<'_>,
        name: &str,
        description: Option<&str>,
    ) -> Result<i64, StoreError> {
        if self.blocklists(change.org_id).await?.iter().any(|b| b.name.eq_ignore_ascii_case(name)) {
            return Err(StoreError::Exists { what: "blocklist", name: name.to_owned() });
        }
        let mut tx = self.begin().await?;
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO blocklists (org_id, name, description, rules_json, created_ms) VALUES ($1, $2, $3, '[]', $4) \
             RETURNING id",
        )
        .bind(change.org_id)
        .bind(name)
        .bind(description)
        .bind(now_ms())
        .fetch_one(&mut *tx)
        .await?;
        let after = serde_json::json!({ "name": name, "description": description }).to_string();
        self.commit(tx, change, "create", &format!("blocklist {name}"), None, Some(after)).await?;
        Ok(id)
    }

    /// Add hashes (`(lower-case hex, kind)`); those already in the package are skipped.
    /// Returns how many were new.
    pub async fn add_blocklist_hashes(
        &self,
        change: Change<'_>,
        id: i64,
        hashes: &[(String, &'static str)],
    ) -> Result<u64, StoreError> {
        let package = self.blocklist(change.org_id, id).await?;
        let mut tx = self.begin().await?;
        let mut added = 0;
        for (hash, kind) in hashes {
            added += sqlx::query(
                "INSERT INTO blocklist_hashes (blocklist_id, hash, kind) VALUES ($1, $2, $3) \
                 ON CONFLICT (blocklist_id, hash) DO NOTHING",
            )
            .bind(id)
            .bind(hash)
            .bind(*kind)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        }
        let after = serde_json::json!({ "added": added, "offered": hashes.len(),
            "hashes": hashes.iter().map(|h| &h.0).collect::<Vec<_>>() })
        .to_string();
        let object = format!("hashes of blocklist {}", package.name);
        self.commit(tx, change, "add", &object, None, Some(after)).await?;
        Ok(added)
    }

    /// Replace a package's metadata rules.
    pub async fn set_blocklist_rules(&self, change: Change<'_>, id: i64, rules: &[RuleDoc]) -> Result<(), StoreError> {
        let package = self.blocklist(change.org_id, id).await?;
        let mut tx = self.begin().await?;
        sqlx::query("UPDATE blocklists SET rules_json = $1 WHERE id = $2 AND org_id = $3")
            .bind(json(&rules))
            .bind(id)
            .bind(change.org_id)
            .execute(&mut *tx)
            .await?;
        let object = format!("rules of blocklist {}", package.name);
        self.commit(tx, change, "update", &object, Some(json(&package.rules)), Some(json(&rules))).await
    }

    /// Approve a package at a scope (`enforce` denies what it matches; `monitor` reports).
    pub async fn approve_blocklist(
        &self,
        change: Change<'_>,
        id: i64,
        scope: &str,
        status: &str,
    ) -> Result<(), StoreError> {
        let package = self.blocklist(change.org_id, id).await?;
        let before = package.approvals.iter().find(|a| a.scope == scope).cloned();
        let mut tx = self.begin().await?;
        sqlx::query(
            "INSERT INTO blocklist_approvals (blocklist_id, scope, status, approved_by, approved_ms) \
             VALUES ($1, $2, $3, $4, $5) ON CONFLICT (blocklist_id, scope) DO UPDATE SET status = $3, \
             approved_by = $4, approved_ms = $5",
        )
        .bind(id)
        .bind(scope)
        .bind(status)
        .bind(change.actor)
        .bind(now_ms())
        .execute(&mut *tx)
        .await?;
        let after = serde_json::json!({ "scope": scope, "status": status }).to_string();
        let object = format!("blocklist {} at {scope}", package.name);
        self.commit(tx, change, "approve", &object, before.map(|b| json(&b)), Some(after)).await
    }

    /// Withdraw an approval.
    pub async fn revoke_blocklist(&self, change: Change<'_>, id: i64, scope: &str) -> Result<(), StoreError> {
        let package = self.blocklist(change.org_id, id).await?;
        let before =
            package.approvals.iter().find(|a| a.scope == scope).cloned().ok_or(StoreError::NotFound("approval"))?;
        let mut tx = self.begin().await?;
        sqlx::query("DELETE FROM blocklist_approvals WHERE blocklist_id = $1 AND scope = $2")
            .bind(id)
            .bind(scope)
            .execute(&mut *tx)
            .await?;
        let object = format!("blocklist {} at {scope}", package.name);
        self.commit(tx, change, "revoke", &object, Some(json(&before)), None).await
    }

    /// Remove a package with its hashes and approvals.
    pub async fn delete_blocklist(&self, change: Change<'_>, id: i64) -> Result<(), StoreError> {
        let package = self.blocklist(change.org_id, id).await?;
        let mut tx = self.begin().await?;
        sqlx::query("DELETE FROM blocklist_hashes WHERE blocklist_id = $1").bind(id).execute(&mut *tx).await?;
        sqlx::query("DELETE FROM blocklist_approvals WHERE blocklist_id = $1").bind(id).execute(&mut *tx).await?;
        sqlx::query("DELETE FROM blocklists WHERE id = $1 AND org_id = $2")
            .bind(id)
            .bind(change.org_id)
            .execute(&mut *tx)
            .await?;
        let object = format!("blocklist {}", package.name);
        self.commit(tx, change, "delete", &object, Some(json(&package)), None).await
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

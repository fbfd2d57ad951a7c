//! The organization's bundle signing key: sealed at rest, rotated with an endorsement.

use super::*;

impl Store {
    /// The organization's ed25519 bundle key (its seed unsealed).
    pub async fn bundle_key(&self, org_id: i64) -> Result<BundleKey, StoreError> {
        self.ensure_org_state(org_id).await?;
        let stored = self.stored_seed(org_id).await?;
        Ok(BundleKey::from_seed(self.open_seed(org_id, &stored)?))
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
        let stored = self.stored_seed(change.org_id).await?;
        let old = BundleKey::from_seed(self.open_seed(change.org_id, &stored)?);
        self.replace_bundle_key(change, &stored, &old, "rotate").await
    }

    /// Give the organization a new bundle key that no earlier key endorses, for when its
    /// seed cannot be opened (a lost secret key, a damaged or forged row) or must be
    /// distrusted. Agents enrolled before keep enforcing their last bundle and report every
    /// newer one as refused until they enroll again. Returns the new public key.
    pub async fn reset_bundle_key(&self, change: Change<'_>) -> Result<BundlePublicKey, StoreError> {
        self.ensure_org_state(change.org_id).await?;
        let stored = self.stored_seed(change.org_id).await?;
        let before = match self.open_seed(change.org_id, &stored) {
            Ok(seed) => BundleKey::from_seed(seed).public().to_hex(),
            Err(e) => format!("unreadable: {e}"),
        };
        let (seed, new) = new_bundle_key()?;
        let sealed = self.keys.seal(hex(&seed).as_bytes(), &seed_context(change.org_id))?;
        let mut tx = self.begin().await?;
        sqlx::query("UPDATE org_state SET bundle_seed = $1 WHERE org_id = $2")
            .bind(&sealed)
            .bind(change.org_id)
            .execute(&mut *tx)
            .await?;
        // No chain leads from the old key to this one.
        sqlx::query("DELETE FROM bundle_key_endorsements WHERE org_id = $1")
            .bind(change.org_id)
            .execute(&mut *tx)
            .await?;
        let after = new.public().to_hex();
        self.commit(tx, change, "reset", "bundle key", Some(json(&before)), Some(json(&after))).await?;
        Ok(new.public())
    }

    /// The organization's stored (sealed) seed, as the database holds it.
    async fn stored_seed(&self, org_id: i64) -> Result<String, StoreError> {
        Ok(sqlx::query_scalar("SELECT bundle_seed FROM org_state WHERE org_id = $1")
            .bind(org_id)
            .fetch_one(self.pool())
            .await?)
    }

    /// A new key endorsed by `old`, over the seed `stored` only: two rotations at once must
    /// not both endorse from it.
    async fn replace_bundle_key(
        &self,
        change: Change<'_>,
        stored: &str,
        old: &BundleKey,
        action: &str,
    ) -> Result<BundlePublicKey, StoreError> {
        let organization: String = sqlx::query_scalar("SELECT name FROM organizations WHERE id = $1")
            .bind(change.org_id)
            .fetch_one(self.pool())
            .await?;
        let (seed, new) = new_bundle_key()?;
        let now = now_ms();
        let endorsement = old.endorse(&organization, &new.public(), now);
        let sealed = self.keys.seal(hex(&seed).as_bytes(), &seed_context(change.org_id))?;
        let mut tx = self.begin().await?;
        let replaced = sqlx::query("UPDATE org_state SET bundle_seed = $1 WHERE org_id = $2 AND bundle_seed = $3")
            .bind(&sealed)
            .bind(change.org_id)
            .bind(stored)
            .execute(&mut *tx)
            .await?;
        if replaced.rows_affected() != 1 {
            return Err(StoreError::Conflict("the bundle key changed meanwhile (another rotation); try again".into()));
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
        self.commit(tx, change, action, "bundle key", Some(json(&before)), Some(json(&after))).await?;
        Ok(new.public())
    }

    /// At start: every bundle seed sealed with the first secret key. A seed sealed with an
    /// older key is sealed again (the seed never left the seal). A seed stored in plain text
    /// by a version from before sealing is *replaced*, by a rotation it endorses: backups
    /// and freed database pages still hold it, so it must stop signing. That happens once
    /// per database; afterwards a plain seed is refused ([`SecretKeyError::Unsealed`]).
    ///
    /// A seed that does not open fails its own organization's bundles (reported here, and
    /// repaired with [`Store::reset_bundle_key`]), not the start of the server — unless no
    /// seed opens and some name a key that is not given: then the key file is the wrong one.
    pub(crate) async fn seal_bundle_seeds(&self) -> Result<SealReport, StoreError> {
        let sealed_before: Option<i64> = sqlx::query_scalar("SELECT set_ms FROM store_flags WHERE name = $1")
            .bind(SEEDS_SEALED)
            .fetch_optional(self.pool())
            .await?;
        let rows: Vec<(i64, String)> =
            sqlx::query_as("SELECT org_id, bundle_seed FROM org_state ORDER BY org_id").fetch_all(self.pool()).await?;
        let mut report = SealReport::default();
        let mut opened_any = false;
        let mut unknown_key = None;
        for (org_id, stored) in rows {
            let opened = match self.keys.open(&stored, &seed_context(org_id), &seed_what(org_id)) {
                Ok(o) => o,
                Err(e) => {
                    let e = StoreError::from(e);
                    report.damaged.push((org_id, e.to_string()));
                    if matches!(e, StoreError::Secret(SecretKeyError::UnknownKey { .. })) {
                        unknown_key.get_or_insert(e);
                    }
                    continue;
                }
            };
            let seed = match parse_seed(opened.text()) {
                Some(seed) => seed,
                None => {
                    report.damaged.push((org_id, StoreError::Corrupt(seed_what(org_id)).to_string()));
                    continue;
                }
            };
            opened_any = true;
            match opened {
                Opened::Current(_) => {}
                Opened::Older(_) => {
                    let sealed = self.keys.seal(hex(&seed).as_bytes(), &seed_context(org_id))?;
                    // Over the value read only: a rotation meanwhile wins.
                    let done =
                        sqlx::query("UPDATE org_state SET bundle_seed = $1 WHERE org_id = $2 AND bundle_seed = $3")
                            .bind(&sealed)
                            .bind(org_id)
                            .bind(&stored)
                            .execute(self.pool())
                            .await?;
                    report.resealed += done.rows_affected();
                }
                Opened::Plain(_) if sealed_before.is_some() => {
                    report.damaged.push((org_id, SecretKeyError::Unsealed(seed_what(org_id)).to_string()));
                }
                Opened::Plain(_) => {
                    let change = Change { org_id, actor: "server (sealing a signing key from before sealing)" };
                    match self.replace_bundle_key(change, &stored, &BundleKey::from_seed(seed), "rotate").await {
                        Ok(_) => report.rotated += 1,
                        // Another server starting at the same moment did it.
                        Err(StoreError::Conflict(_)) => {}
                        Err(e) => return Err(e),
                    }
                }
            }
        }
        if let Some(e) = unknown_key
            && !opened_any
        {
            return Err(e);
        }
        sqlx::query("INSERT INTO store_flags (name, set_ms) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING")
            .bind(SEEDS_SEALED)
            .bind(now_ms())
            .execute(self.pool())
            .await?;
        Ok(report)
    }

    /// A stored seed opened: sealed with one of the given keys, as 32 bytes.
    fn open_seed(&self, org_id: i64, stored: &str) -> Result<[u8; 32], StoreError> {
        let opened = self.keys.open(stored, &seed_context(org_id), &seed_what(org_id))?;
        if let Opened::Plain(_) = opened {
            // Every seed was sealed when the store started.
            return Err(SecretKeyError::Unsealed(seed_what(org_id)).into());
        }
        parse_seed(opened.text()).ok_or_else(|| StoreError::Corrupt(seed_what(org_id)))
    }

    /// The id of the secret key the organization's seed is sealed with, if it is sealed.
    pub async fn bundle_seed_sealed_with(&self, org_id: i64) -> Result<Option<String>, StoreError> {
        self.ensure_org_state(org_id).await?;
        let stored = self.stored_seed(org_id).await?;
        Ok(stored.strip_prefix("v1.").and_then(|rest| rest.split('.').next()).map(str::to_owned))
    }
}

/// The flag [`Store::seal_bundle_seeds`] sets once every seed is sealed.
const SEEDS_SEALED: &str = "bundle_seeds_sealed";

/// What sealing the bundle seeds at start did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SealReport {
    /// Seeds sealed again with the first secret key.
    pub resealed: u64,
    /// Seeds from before sealing, replaced by an endorsed rotation.
    pub rotated: u64,
    /// Organizations whose seed does not open, and why: their bundles fail until
    /// `portcullis server reset-bundle-key` gives them a new key.
    pub damaged: Vec<(i64, String)>,
}

fn seed_what(org_id: i64) -> String {
    format!("the bundle signing key of organization {org_id}")
}

fn parse_seed(text: &str) -> Option<[u8; 32]> {
    let bytes: Option<Vec<u8>> =
        (0..text.len()).step_by(2).map(|i| text.get(i..i + 2).and_then(|h| u8::from_str_radix(h, 16).ok())).collect();
    bytes.and_then(|b| <[u8; 32]>::try_from(b).ok())
}

fn new_bundle_key() -> Result<([u8; 32], BundleKey), StoreError> {
    let mut seed = [0u8; 32];
    getrandom::fill(&mut seed).map_err(StoreError::NoRandomness)?;
    Ok((seed, BundleKey::from_seed(seed)))
}

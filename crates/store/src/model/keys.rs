//! The organization's bundle signing key: sealed at rest, rotated with an endorsement.

use super::*;

impl Store {
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
}

//! Backups: a consistent copy of a SQLite database taken while the server runs, and the one
//! thing a restore must do besides putting the file back — move every organization's model
//! version past anything its agents may hold, or they would refuse the restored policy as
//! "not newer" and keep enforcing what the backup no longer has.

use crate::{Backend, Store, StoreError, now_ms};
use std::path::Path;

/// An organization's model version before and after [`Store::continue_versions`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VersionJump {
    /// The organization.
    pub organization: String,
    /// The version the restored database held.
    pub before: i64,
    /// The version it continues from.
    pub after: i64,
}

impl Store {
    /// Copy the database into `to` (a new file, mode 0600), consistent as of one moment,
    /// while the server keeps serving (SQLite's `VACUUM INTO`: readers and writers go on).
    /// SQLite only; PostgreSQL is backed up with its own `pg_dump`.
    pub async fn backup_to(&self, to: &Path) -> Result<(), StoreError> {
        use std::os::unix::fs::OpenOptionsExt;
        if self.backend != Backend::Sqlite {
            return Err(StoreError::Invalid(
                "a PostgreSQL database is backed up with pg_dump (see the README); this command copies SQLite only"
                    .into(),
            ));
        }
        // VACUUM INTO takes an empty file: made here first, so it is private from the start.
        std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(to)
            .map_err(|e| StoreError::Database(sqlx::Error::Io(e)))?;
        let done = sqlx::query("VACUUM INTO $1").bind(to.to_string_lossy().into_owned()).execute(&self.pool).await;
        if let Err(e) = done {
            let _ = std::fs::remove_file(to);
            return Err(e.into());
        }
        Ok(())
    }

    /// After a restore: every organization's model version jumps to now in milliseconds (or
    /// one more than it was, if that is higher), above any version an agent was sent before
    /// the restore — unless more than a thousand changes a second were saved since the
    /// backup — and it counts up from there.
    pub async fn continue_versions(&self) -> Result<Vec<VersionJump>, StoreError> {
        let rows: Vec<(String, i64)> = sqlx::query_as(
            "SELECT o.name, s.version FROM org_state s JOIN organizations o ON o.id = s.org_id ORDER BY o.name",
        )
        .fetch_all(&self.pool)
        .await?;
        let floor = now_ms();
        sqlx::query("UPDATE org_state SET version = CASE WHEN version + 1 > $1 THEN version + 1 ELSE $1 END")
            .bind(floor)
            .execute(&self.pool)
            .await?;
        Ok(rows
            .into_iter()
            .map(|(organization, before)| VersionJump { organization, after: (before + 1).max(floor), before })
            .collect())
    }

    /// Write everything in the SQLite write-ahead log into the database file and close the
    /// pool, so the file alone is the whole database (before it is moved into place).
    pub async fn checkpoint_and_close(self) -> Result<(), StoreError> {
        if self.backend == Backend::Sqlite {
            sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)").execute(&self.pool).await?;
        }
        self.pool.close().await;
        Ok(())
    }
}

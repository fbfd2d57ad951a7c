//! How servers sharing one PostgreSQL database learn of each other's changes: every change
//! that raises an organization's model version sends `NOTIFY portcullis_versions, 'ORG_ID'`
//! in its own transaction (so it is delivered when, and only if, the change commits), and
//! each server LISTENs. No server polls for versions.

use crate::{Backend, Store, StoreError};

/// The channel versions are announced on.
pub(crate) const CHANNEL: &str = "portcullis_versions";

/// What a [`VersionFeed`] says.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VersionNews {
    /// This organization's version changed.
    Changed(i64),
    /// The connection was lost and made again: announcements may have been missed, so read
    /// every organization's version once.
    Resync,
}

/// Announcements of changed versions, from every server sharing the database.
pub struct VersionFeed {
    listener: sqlx::postgres::PgListener,
}

impl std::fmt::Debug for VersionFeed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("VersionFeed")
    }
}

impl VersionFeed {
    /// The next announcement; reconnects by itself after a lost connection (and says
    /// [`VersionNews::Resync`] then).
    pub async fn next(&mut self) -> Result<VersionNews, StoreError> {
        Ok(match self.listener.try_recv().await? {
            Some(n) => n.payload().trim().parse().map_or(VersionNews::Resync, VersionNews::Changed),
            None => VersionNews::Resync,
        })
    }
}

impl Store {
    /// PostgreSQL: a feed of the organizations whose version changed on any server. `None`
    /// for SQLite, which one server has to itself.
    pub async fn version_feed(&self) -> Result<Option<VersionFeed>, StoreError> {
        if self.backend != Backend::Postgres {
            return Ok(None);
        }
        let mut listener = sqlx::postgres::PgListener::connect(self.url.expose()).await?;
        listener.listen(CHANNEL).await?;
        Ok(Some(VersionFeed { listener }))
    }
}

/// A database URL, which may hold a password: never printed.
#[derive(Clone)]
pub(crate) struct DatabaseUrl(std::sync::Arc<str>);

impl DatabaseUrl {
    pub(crate) fn new(url: &str) -> DatabaseUrl {
        DatabaseUrl(url.into())
    }

    pub(crate) fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for DatabaseUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("DatabaseUrl(…)")
    }
}

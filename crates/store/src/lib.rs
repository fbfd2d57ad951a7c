//! Portcullis server storage: one code path over SQLite (the embedded default, one file, WAL)
//! and PostgreSQL (`postgres://…`, for several stateless servers sharing one database).
//!
//! Queries go through sqlx's `Any` driver and stick to what both databases share: `$N`
//! placeholders, `RETURNING`, times as BIGINT Unix milliseconds, flags as 0/1 BIGINTs.
//! Each backend has its own migrations folder with the same tables and columns.
//!
//! Secrets never reach the database in the clear: passwords are argon2 hashes, session ids and
//! API tokens are stored as SHA-256 hashes (a database leak yields no usable credential), and
//! the bundle signing seeds, which every server must be able to use, are sealed with a key
//! kept outside the database ([`SecretKeys`]).

mod accounts;
mod agents;
mod audit;
mod backup;
mod events;
mod forwarding;
mod model;
mod requests;
mod secrets;
mod versions;

pub use accounts::{
    ADDRESS_FAILURES, LoginError, Role, Session, SessionRow, THROTTLE_FAILURES, TokenOptions, TokenRow, TokenUse, User,
    UserInfo,
};
pub use agents::{AgentIdentity, Enrolled, Enrollment, MAX_PENDING, PendingRow, SEEN_PER_STATEMENT, Seen, TokenLimits};
pub use audit::AuditEntry;
pub use backup::VersionJump;
pub use events::{EventFields, EventFilter, EventRow, NewEvent};
pub use forwarding::{
    BoolFlag, ForwardEvent, ForwarderJob, ForwarderRow, ForwarderSpec, Retention, SETTLE_MS, TokenChange,
};
pub use model::{
    ApplicationRow, ApprovalRow, BUILTIN_REPORTED_POLICY, BlocklistRow, Change, ComputerRow, GroupRow, MAX_HITS, Move,
    PackageRow, PolicyRow, RingfenceRow, SealReport,
};
pub use requests::{ApprovalRequestRow, NewApprovalRequest, RequestState};
pub use secrets::{SecretKeyError, SecretKeys};
pub use versions::{VersionFeed, VersionNews};

use sqlx::Connection;

type AnyPool = sqlx::Pool<sqlx::Any>;
type AnyPoolOptions = sqlx::pool::PoolOptions<sqlx::Any>;
use std::str::FromStr;

/// Why a storage call failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The database URL is not one this store understands.
    #[error("unsupported database URL {0:?}: use sqlite://PATH or postgres://USER:PASSWORD@HOST/DB")]
    Url(String),
    /// The database refused or failed.
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
    /// A migration failed.
    #[error("database migration: {0}")]
    Migration(#[from] sqlx::migrate::MigrateError),
    /// A name is taken.
    #[error("{what} {name:?} already exists")]
    Exists {
        /// What kind of thing.
        what: &'static str,
        /// Its name.
        name: String,
    },
    /// Something was not found.
    #[error("{0} not found")]
    NotFound(&'static str),
    /// The request contradicts the model (names a missing parent, removes something in use).
    #[error("{0}")]
    Invalid(String),
    /// Stored data does not read back (hand-edited database?).
    #[error("stored data does not read back: {0}")]
    Corrupt(String),
    /// A quota is used up (pending enrollments, an agent's reports); try later.
    #[error("{0}")]
    Quota(String),
    /// Hashing failed (bad parameters).
    #[error("password hashing: {0}")]
    Hashing(String),
    /// The system gave no random bytes.
    #[error("the system gave no random bytes")]
    NoRandomness(#[source] getrandom::Error),
    /// A row changed while it was being changed (another change won); try again.
    #[error("{0}")]
    Conflict(String),
    /// A sealed secret could not be opened (wrong or missing secret key).
    #[error(transparent)]
    Secret(#[from] SecretKeyError),
}

impl StoreError {
    /// No database connection was free in time: a burst, worth trying again shortly.
    pub fn is_busy(&self) -> bool {
        matches!(self, StoreError::Database(sqlx::Error::PoolTimedOut))
    }
}

/// Which database is behind the pool.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    /// SQLite, one file.
    Sqlite,
    /// PostgreSQL.
    Postgres,
}

/// A connection pool with the schema migrated.
#[derive(Clone, Debug)]
pub struct Store {
    pool: AnyPool,
    backend: Backend,
    /// The URL, for the PostgreSQL listener (never printed).
    url: versions::DatabaseUrl,
    keys: std::sync::Arc<SecretKeys>,
    sealing: SealReport,
}

static SQLITE: sqlx::migrate::Migrator = sqlx::migrate!("migrations/sqlite");
static POSTGRES: sqlx::migrate::Migrator = sqlx::migrate!("migrations/postgres");

/// The id under which a session is listed and ended (`Store::sessions`), from its cookie
/// value: the SHA-256 the database keeps, which names the session and cannot open it.
pub fn session_list_id(cookie: &str) -> String {
    sha256_hex(cookie)
}

/// Unix milliseconds now.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64)
}

impl Store {
    /// Connect to `url` (`sqlite://PATH`, created if missing, or `postgres://…`), bring the
    /// schema up to date and seal every stored secret with the first of `keys` (secrets
    /// sealed with another of `keys`, or stored before sealing existed, are sealed again).
    /// A secret sealed with a key not in `keys` fails the connection, naming the key.
    pub async fn connect(url: &str, keys: SecretKeys) -> Result<Store, StoreError> {
        sqlx::any::install_default_drivers();
        let backend = if url.starts_with("sqlite:") {
            Backend::Sqlite
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Backend::Postgres
        } else {
            return Err(StoreError::Url(url.to_owned()));
        };
        if backend == Backend::Sqlite {
            private_sqlite_file(url)?;
            // WAL is a property of the file: set it once, with the file created if missing.
            use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode};
            let opts =
                SqliteConnectOptions::from_str(url)?.create_if_missing(true).journal_mode(SqliteJournalMode::Wal);
            sqlx::ConnectOptions::connect(&opts).await?.close().await?;
        }
        let pool = AnyPoolOptions::new()
            .max_connections(16)
            .after_connect(move |conn, _| {
                Box::pin(async move {
                    if backend == Backend::Sqlite {
                        // WAL with NORMAL sync: a process crash loses nothing; only a power cut
                        // can lose the last commits. Writers queue for up to 60 s rather than
                        // failing with "database is locked" when thousands of agents report.
                        sqlx::Executor::execute(&mut *conn, "PRAGMA synchronous = NORMAL").await?;
                        sqlx::Executor::execute(&mut *conn, "PRAGMA busy_timeout = 60000").await?;
                    }
                    Ok(())
                })
            })
            .connect(url)
            .await?;
        match backend {
            Backend::Sqlite => SQLITE.run(&pool).await?,
            Backend::Postgres => POSTGRES.run(&pool).await?,
        }
        let mut store = Store {
            pool,
            backend,
            url: versions::DatabaseUrl::new(url),
            keys: std::sync::Arc::new(keys),
            sealing: SealReport::default(),
        };
        store.sealing = store.seal_bundle_seeds().await?;
        Ok(store)
    }

    /// What [`Store::connect`] did to the bundle signing seeds, and which do not open.
    pub fn sealing(&self) -> &SealReport {
        &self.sealing
    }

    /// The ids of the secret keys (the sealing key first), safe to show.
    pub fn secret_key_ids(&self) -> Vec<String> {
        self.keys.ids()
    }

    /// Which database this is.
    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// Create an organization; its name must be new.
    pub async fn create_organization(&self, name: &str) -> Result<i64, StoreError> {
        let exists: Option<i64> = sqlx::query_scalar("SELECT id FROM organizations WHERE name = $1")
            .bind(name)
            .fetch_optional(&self.pool)
            .await?;
        if exists.is_some() {
            return Err(StoreError::Exists { what: "organization", name: name.to_owned() });
        }
        let id = sqlx::query_scalar("INSERT INTO organizations (name, created_ms) VALUES ($1, $2) RETURNING id")
            .bind(name)
            .bind(now_ms())
            .fetch_one(&self.pool)
            .await?;
        self.ensure_org_state(id).await?;
        Ok(id)
    }

    /// The id of an organization by name.
    pub async fn organization_id(&self, name: &str) -> Result<Option<i64>, StoreError> {
        Ok(sqlx::query_scalar("SELECT id FROM organizations WHERE name = $1")
            .bind(name)
            .fetch_optional(&self.pool)
            .await?)
    }

    pub(crate) fn pool(&self) -> &AnyPool {
        &self.pool
    }

    /// The connection pool now: (open connections, idle among them, most it opens).
    pub fn pool_use(&self) -> (u32, u32, u32) {
        let idle = u32::try_from(self.pool.num_idle()).unwrap_or(u32::MAX);
        (self.pool.size(), idle, self.pool.options().get_max_connections())
    }
}

/// The database holds every tenant's data and the bundle signing seeds: its directory is
/// made 0700 when it is created here, the file is created 0600 (SQLite gives its -wal and
/// -shm files the database file's mode) and an existing file readable by others is made
/// 0600.
fn private_sqlite_file(url: &str) -> Result<(), StoreError> {
    use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
    let path = url.trim_start_matches("sqlite:").trim_start_matches("//");
    let path = path.split('?').next().unwrap_or_default();
    if path.is_empty() || path.starts_with(':') {
        return Ok(());
    }
    let path = std::path::Path::new(path);
    let io = |e: std::io::Error| StoreError::Database(sqlx::Error::Io(e));
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty() && !d.exists()) {
        std::fs::DirBuilder::new().recursive(true).mode(0o700).create(dir).map_err(io)?;
    }
    match std::fs::metadata(path) {
        Ok(m) if m.permissions().mode() & 0o077 != 0 => {
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).map_err(io)?;
            for suffix in ["-wal", "-shm"] {
                let side = std::path::PathBuf::from(format!("{}{suffix}", path.display()));
                if side.exists() {
                    std::fs::set_permissions(&side, std::fs::Permissions::from_mode(0o600)).map_err(io)?;
                }
            }
        }
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(path).map_err(io)?;
        }
        Err(e) => return Err(io(e)),
    }
    Ok(())
}

/// Random bytes as lower-case hex.
pub(crate) fn random_hex(bytes: usize) -> Result<String, StoreError> {
    let mut buf = vec![0u8; bytes];
    getrandom::fill(&mut buf).map_err(StoreError::NoRandomness)?;
    Ok(hex(&buf))
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

pub(crate) fn sha256_hex(text: &str) -> String {
    use sha2::Digest;
    hex(&sha2::Sha256::digest(text.as_bytes()))
}

//! Users, roles, passwords, sessions, API tokens and login throttling.

use crate::{Store, StoreError, now_ms, random_hex, sha256_hex};
use argon2::{Argon2, PasswordHash, PasswordHasher, PasswordVerifier};

/// What a user may do.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// Everything in the organization, users included.
    Admin,
    /// Approve and change policies, blocklists and applications.
    Approver,
    /// Read everything, change nothing.
    Auditor,
}

impl Role {
    /// The name stored and shown.
    pub fn name(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Approver => "approver",
            Role::Auditor => "auditor",
        }
    }

    /// Parse a stored or requested name.
    pub fn from_name(name: &str) -> Option<Role> {
        match name {
            "admin" => Some(Role::Admin),
            "approver" => Some(Role::Approver),
            "auditor" => Some(Role::Auditor),
            _ => None,
        }
    }

    /// Whether this role may change the organization's model (policies, applications,
    /// blocklists, groups).
    pub fn can_change(self) -> bool {
        matches!(self, Role::Admin | Role::Approver)
    }
}

/// A user as the server sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct User {
    /// Id.
    pub id: i64,
    /// Organization id: every query a user makes is scoped to it.
    pub org_id: i64,
    /// Organization name.
    pub org_name: String,
    /// Login name.
    pub name: String,
    /// Role.
    pub role: Role,
}

/// A logged-in session.
#[derive(Clone, Debug)]
pub struct Session {
    /// The user.
    pub user: User,
    /// The token every state-changing request of this session must carry.
    pub csrf: String,
}

/// Why a login was refused.
#[derive(Debug, thiserror::Error)]
pub enum LoginError {
    /// Wrong organization, user or password (not told apart, on purpose).
    #[error("wrong organization, user or password")]
    Wrong,
    /// Too many failures for this user recently.
    #[error("too many failed logins; try again in {retry_after_s} s")]
    Throttled {
        /// Seconds until the next attempt is accepted.
        retry_after_s: i64,
    },
    /// Storage failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Failed logins allowed per user within [`THROTTLE_WINDOW_MS`].
pub const THROTTLE_FAILURES: i64 = 5;
/// The throttling window.
pub const THROTTLE_WINDOW_MS: i64 = 5 * 60 * 1000;
/// How long a session lasts.
pub const SESSION_MS: i64 = 12 * 60 * 60 * 1000;

#[derive(sqlx::FromRow)]
struct UserRow {
    id: i64,
    org_id: i64,
    org_name: String,
    name: String,
    role: String,
}

impl UserRow {
    fn into_user(self) -> User {
        User {
            id: self.id,
            org_id: self.org_id,
            org_name: self.org_name,
            name: self.name,
            // The column's CHECK constraint admits only the three names.
            role: Role::from_name(&self.role).unwrap_or(Role::Auditor),
        }
    }
}

const USER_COLUMNS: &str = "u.id AS id, u.org_id AS org_id, o.name AS org_name, u.name AS name, u.role AS role";

async fn hash_password(password: String) -> Result<String, StoreError> {
    // argon2 is deliberately slow: keep it off the async workers.
    tokio::task::spawn_blocking(move || Argon2::default().hash_password(password.as_bytes()).map(|h| h.to_string()))
        .await
        .map_err(|e| StoreError::Hashing(e.to_string()))?
        .map_err(|e| StoreError::Hashing(e.to_string()))
}

/// Whether `password` matches `stored`; with no stored hash (an unknown user) a hash of a
/// throw-away password is checked instead, so that timing does not tell users apart.
async fn password_matches(password: String, stored: Option<String>) -> bool {
    static UNKNOWN_USER: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    tokio::task::spawn_blocking(move || {
        let known = stored.is_some();
        let stored = stored.unwrap_or_else(|| {
            UNKNOWN_USER
                .get_or_init(|| {
                    Argon2::default().hash_password(b"no such user").map(|h| h.to_string()).unwrap_or_default()
                })
                .clone()
        });
        let ok = PasswordHash::new(&stored)
            .is_ok_and(|h| Argon2::default().verify_password(password.as_bytes(), &h).is_ok());
        ok && known
    })
    .await
    .unwrap_or(false)
}

impl Store {
    /// Create a user in an organization.
    pub async fn create_user(&self, org_id: i64, name: &str, role: Role, password: &str) -> Result<i64, StoreError> {
        let exists: Option<i64> = sqlx::query_scalar("SELECT id FROM users WHERE org_id = $1 AND name = $2")
            .bind(org_id)
            .bind(name)
            .fetch_optional(self.pool())
            .await?;
        if exists.is_some() {
            return Err(StoreError::Exists { what: "user", name: name.to_owned() });
        }
        let hash = hash_password(password.to_owned()).await?;
        Ok(sqlx::query_scalar(
            "INSERT INTO users (org_id, name, role, password_hash, created_ms) VALUES ($1, $2, $3, $4, $5) RETURNING id",
        )
        .bind(org_id)
        .bind(name)
        .bind(role.name())
        .bind(hash)
        .bind(now_ms())
        .fetch_one(self.pool())
        .await?)
    }

    /// Check a login and open a session. Failures are counted per organization and user:
    /// after [`THROTTLE_FAILURES`] within [`THROTTLE_WINDOW_MS`], attempts are refused until
    /// the window passes, whatever the password.
    pub async fn login(&self, organization: &str, user: &str, password: &str) -> Result<(String, Session), LoginError> {
        // Length-prefixed, so that no two (organization, user) pairs share a key.
        let key = format!("{}:{organization}/{user}", organization.len());
        let now = now_ms();
        let window: Option<(i64, i64)> =
            sqlx::query_as("SELECT failures, window_start_ms FROM login_failures WHERE key = $1")
                .bind(&key)
                .fetch_optional(self.pool())
                .await
                .map_err(StoreError::from)?;
        if let Some((failures, start)) = window
            && now - start < THROTTLE_WINDOW_MS
            && failures >= THROTTLE_FAILURES
        {
            return Err(LoginError::Throttled { retry_after_s: (start + THROTTLE_WINDOW_MS - now) / 1000 + 1 });
        }
        let sql = format!(
            "SELECT {USER_COLUMNS}, u.password_hash AS password_hash FROM users u JOIN organizations o ON o.id = u.org_id \
             WHERE o.name = $1 AND u.name = $2"
        );
        let row: Option<(i64, i64, String, String, String, String)> = sqlx::query_as(sqlx::AssertSqlSafe(sql))
            .bind(organization)
            .bind(user)
            .fetch_optional(self.pool())
            .await
            .map_err(StoreError::from)?;
        let ok = password_matches(password.to_owned(), row.as_ref().map(|r| r.5.clone())).await;
        let Some((id, org_id, org_name, name, role, _)) = row.filter(|_| ok) else {
            self.count_failure(&key, now).await?;
            return Err(LoginError::Wrong);
        };
        sqlx::query("DELETE FROM login_failures WHERE key = $1")
            .bind(&key)
            .execute(self.pool())
            .await
            .map_err(StoreError::from)?;
        let user = UserRow { id, org_id, org_name, name, role }.into_user();
        let sid = random_hex(32)?;
        let csrf = random_hex(32)?;
        sqlx::query(
            "INSERT INTO sessions (id_hash, user_id, csrf, created_ms, expires_ms) VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(sha256_hex(&sid))
        .bind(user.id)
        .bind(&csrf)
        .bind(now)
        .bind(now + SESSION_MS)
        .execute(self.pool())
        .await
        .map_err(StoreError::from)?;
        Ok((sid, Session { user, csrf }))
    }

    async fn count_failure(&self, key: &str, now: i64) -> Result<(), StoreError> {
        // A new window starts when the old one has passed.
        sqlx::query(
            "INSERT INTO login_failures (key, failures, window_start_ms) VALUES ($1, 1, $2) \
             ON CONFLICT (key) DO UPDATE SET \
               failures = CASE WHEN $2 - login_failures.window_start_ms >= $3 THEN 1 ELSE login_failures.failures + 1 END, \
               window_start_ms = CASE WHEN $2 - login_failures.window_start_ms >= $3 THEN $2 ELSE login_failures.window_start_ms END",
        )
        .bind(key)
        .bind(now)
        .bind(THROTTLE_WINDOW_MS)
        .execute(self.pool())
        .await?;
        Ok(())
    }

    /// The session a cookie names, if it is current.
    pub async fn session(&self, sid: &str) -> Result<Option<Session>, StoreError> {
        let sql = format!(
            "SELECT {USER_COLUMNS}, s.csrf AS csrf FROM sessions s JOIN users u ON u.id = s.user_id \
             JOIN organizations o ON o.id = u.org_id WHERE s.id_hash = $1 AND s.expires_ms > $2"
        );
        let row: Option<(i64, i64, String, String, String, String)> = sqlx::query_as(sqlx::AssertSqlSafe(sql))
            .bind(sha256_hex(sid))
            .bind(now_ms())
            .fetch_optional(self.pool())
            .await?;
        Ok(row.map(|(id, org_id, org_name, name, role, csrf)| Session {
            user: UserRow { id, org_id, org_name, name, role }.into_user(),
            csrf,
        }))
    }

    /// End a session.
    pub async fn logout(&self, sid: &str) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM sessions WHERE id_hash = $1").bind(sha256_hex(sid)).execute(self.pool()).await?;
        Ok(())
    }

    /// Make an API token for a user; the token is returned once and stored only as a hash.
    pub async fn create_token(&self, user_id: i64, name: &str) -> Result<String, StoreError> {
        let token = format!("pct_{}", random_hex(32)?);
        sqlx::query("INSERT INTO api_tokens (user_id, name, token_hash, created_ms) VALUES ($1, $2, $3, $4)")
            .bind(user_id)
            .bind(name)
            .bind(sha256_hex(&token))
            .bind(now_ms())
            .execute(self.pool())
            .await?;
        Ok(token)
    }

    /// The user an API token belongs to, unless it was revoked.
    pub async fn user_by_token(&self, token: &str) -> Result<Option<User>, StoreError> {
        let sql = format!(
            "SELECT {USER_COLUMNS} FROM api_tokens t JOIN users u ON u.id = t.user_id \
             JOIN organizations o ON o.id = u.org_id WHERE t.token_hash = $1 AND t.revoked = 0"
        );
        let row: Option<UserRow> =
            sqlx::query_as(sqlx::AssertSqlSafe(sql)).bind(sha256_hex(token)).fetch_optional(self.pool()).await?;
        Ok(row.map(UserRow::into_user))
    }
}

//! Users, roles, passwords, sessions, API tokens and login throttling.

use crate::{Change, Store, StoreError, now_ms, random_hex, sha256_hex};
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
    /// Too many logins are being checked at once.
    #[error("the server is busy checking other logins; try again in a few seconds")]
    Busy,
    /// Storage failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

static HASHING: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(CONCURRENT_HASHES);

async fn hashing_slot() -> Result<tokio::sync::SemaphorePermit<'static>, LoginError> {
    match tokio::time::timeout(HASH_WAIT, HASHING.acquire()).await {
        Ok(Ok(permit)) => Ok(permit),
        _ => Err(LoginError::Busy),
    }
}

/// A user as an administrator sees it.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct UserInfo {
    /// Id.
    pub id: i64,
    /// Login name.
    pub name: String,
    /// `admin`, `approver` or `auditor`.
    pub role: String,
    /// Disabled users cannot log in; their sessions and tokens stop working.
    pub disabled: bool,
    /// Created at, Unix milliseconds.
    pub created_ms: i64,
}

/// An API token, as listed (never the token itself).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TokenRow {
    /// Id.
    pub id: i64,
    /// Its name.
    pub name: String,
    /// Whose it is.
    pub user: String,
    /// Created at.
    pub created_ms: i64,
    /// Stops working at, if set.
    pub expires_ms: Option<i64>,
    /// May only read.
    pub read_only: bool,
    /// Revoked.
    pub revoked: bool,
    /// Last used, Unix milliseconds (written at most once a minute).
    pub last_used_ms: Option<i64>,
}

/// How a new API token may be used.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TokenOptions {
    /// It stops working at this time, Unix milliseconds.
    pub expires_ms: Option<i64>,
    /// It may only read (GET), whatever its user's role.
    pub read_only: bool,
}

/// The user behind an API token, and what the token allows.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TokenUse {
    /// The user.
    pub user: User,
    /// The token may only read.
    pub read_only: bool,
    /// The token's id.
    pub token_id: i64,
}

/// A session, as listed (its id is the SHA-256 of the cookie: it names the session and
/// cannot be used as one).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SessionRow {
    /// SHA-256 of the cookie value, hex.
    pub id: String,
    /// Opened at.
    pub created_ms: i64,
    /// Ends at.
    pub expires_ms: i64,
}

/// Failed logins allowed per user within [`THROTTLE_WINDOW_MS`].
pub const THROTTLE_FAILURES: i64 = 5;
/// Failed logins allowed per client address within [`THROTTLE_WINDOW_MS`], whatever the user.
pub const ADDRESS_FAILURES: i64 = 20;
/// Password hashes computed at once; more logins wait (at most [`HASH_WAIT`]) or are
/// refused as throttled, so a flood of logins cannot take every core.
pub const CONCURRENT_HASHES: usize = 2;
/// How long a login waits for a hashing slot.
pub const HASH_WAIT: std::time::Duration = std::time::Duration::from_secs(10);
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
    // Busy is the server being loaded, not failing: a quota (429), never an internal error.
    let _slot = hashing_slot().await.map_err(|e| StoreError::Quota(e.to_string()))?;
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
    let Ok(_slot) = hashing_slot().await else { return false };
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

    /// Check a login and open a session (no client address known: only the per-user limit).
    pub async fn login(&self, organization: &str, user: &str, password: &str) -> Result<(String, Session), LoginError> {
        self.login_from(organization, user, password, None).await
    }

    /// Check a login from `client` (an address) and open a session. Every attempt is
    /// counted *before* the password is checked, in one statement per key, so parallel
    /// attempts cannot slip past the limit: after [`THROTTLE_FAILURES`] attempts for the
    /// organization and user, or [`ADDRESS_FAILURES`] from one address, within
    /// [`THROTTLE_WINDOW_MS`], attempts are refused until the window passes, whatever the
    /// password. A success clears the user's count and takes its attempt back from the
    /// address's. Disabled users cannot log in.
    pub async fn login_from(
        &self,
        organization: &str,
        user: &str,
        password: &str,
        client: Option<&str>,
    ) -> Result<(String, Session), LoginError> {
        // Length-prefixed, so that no two (organization, user) pairs share a key.
        let key = format!("{}:{organization}/{user}", organization.len());
        let address = client.map(|a| format!("addr:{a}"));
        let now = now_ms();
        if let Some(a) = &address
            && let Some(retry) = self.count_attempt(a, now, ADDRESS_FAILURES).await?
        {
            return Err(LoginError::Throttled { retry_after_s: retry });
        }
        if let Some(retry) = self.count_attempt(&key, now, THROTTLE_FAILURES).await? {
            return Err(LoginError::Throttled { retry_after_s: retry });
        }
        let sql = format!(
            "SELECT {USER_COLUMNS}, u.password_hash AS password_hash FROM users u JOIN organizations o ON o.id = u.org_id \
             WHERE o.name = $1 AND u.name = $2 AND u.disabled = 0"
        );
        let row: Option<(i64, i64, String, String, String, String)> = sqlx::query_as(sqlx::AssertSqlSafe(sql))
            .bind(organization)
            .bind(user)
            .fetch_optional(self.pool())
            .await
            .map_err(StoreError::from)?;
        let ok = password_matches(password.to_owned(), row.as_ref().map(|r| r.5.clone())).await;
        let Some((id, org_id, org_name, name, role, _)) = row.filter(|_| ok) else {
            return Err(LoginError::Wrong);
        };
        sqlx::query("DELETE FROM login_failures WHERE key = $1")
            .bind(&key)
            .execute(self.pool())
            .await
            .map_err(StoreError::from)?;
        if let Some(a) = &address {
            sqlx::query("UPDATE login_failures SET failures = failures - 1 WHERE key = $1 AND failures > 0")
                .bind(a)
                .execute(self.pool())
                .await
                .map_err(StoreError::from)?;
        }
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

    /// Count one attempt under `key`; `Some(seconds to wait)` when it is over `limit`.
    async fn count_attempt(&self, key: &str, now: i64, limit: i64) -> Result<Option<i64>, StoreError> {
        // A new window starts when the old one has passed.
        let (failures, start): (i64, i64) = sqlx::query_as(
            "INSERT INTO login_failures (key, failures, window_start_ms) VALUES ($1, 1, $2) \
             ON CONFLICT (key) DO UPDATE SET \
               failures = CASE WHEN $2 - login_failures.window_start_ms >= $3 THEN 1 ELSE login_failures.failures + 1 END, \
               window_start_ms = CASE WHEN $2 - login_failures.window_start_ms >= $3 THEN $2 ELSE login_failures.window_start_ms END \
             RETURNING failures, window_start_ms",
        )
        .bind(key)
        .bind(now)
        .bind(THROTTLE_WINDOW_MS)
        .fetch_one(self.pool())
        .await?;
        Ok((failures > limit).then(|| (start + THROTTLE_WINDOW_MS - now) / 1000 + 1))
    }

    /// The session a cookie names, if it is current.
    pub async fn session(&self, sid: &str) -> Result<Option<Session>, StoreError> {
        let sql = format!(
            "SELECT {USER_COLUMNS}, s.csrf AS csrf FROM sessions s JOIN users u ON u.id = s.user_id \
             JOIN organizations o ON o.id = u.org_id WHERE s.id_hash = $1 AND s.expires_ms > $2 AND u.disabled = 0"
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
        self.create_token_with(user_id, name, TokenOptions::default()).await
    }

    /// Make an API token that expires or may only read.
    pub async fn create_token_with(&self, user_id: i64, name: &str, opts: TokenOptions) -> Result<String, StoreError> {
        let token = format!("pct_{}", random_hex(32)?);
        sqlx::query(
            "INSERT INTO api_tokens (user_id, name, token_hash, created_ms, expires_ms, read_only) \
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(user_id)
        .bind(name)
        .bind(sha256_hex(&token))
        .bind(now_ms())
        .bind(opts.expires_ms)
        .bind(i64::from(opts.read_only))
        .execute(self.pool())
        .await?;
        Ok(token)
    }

    /// The user an API token belongs to, unless it was revoked, has expired or its user is
    /// disabled.
    pub async fn user_by_token(&self, token: &str) -> Result<Option<User>, StoreError> {
        Ok(self.token_use(token).await?.map(|t| t.user))
    }

    /// The user behind an API token and what the token allows (see [`Store::user_by_token`]).
    pub async fn token_use(&self, token: &str) -> Result<Option<TokenUse>, StoreError> {
        let now = now_ms();
        let sql = format!(
            "SELECT {USER_COLUMNS}, t.read_only AS read_only, t.id AS token_id, t.last_used_ms AS last_used_ms \
             FROM api_tokens t JOIN users u ON u.id = t.user_id \
             JOIN organizations o ON o.id = u.org_id WHERE t.token_hash = $1 AND t.revoked = 0 AND u.disabled = 0 \
             AND (t.expires_ms IS NULL OR t.expires_ms > $2)"
        );
        #[allow(clippy::type_complexity)]
        let row: Option<(i64, i64, String, String, String, i64, i64, Option<i64>)> =
            sqlx::query_as(sqlx::AssertSqlSafe(sql))
                .bind(sha256_hex(token))
                .bind(now)
                .fetch_optional(self.pool())
                .await?;
        let Some((id, org_id, org_name, name, role, read_only, token_id, last_used)) = row else { return Ok(None) };
        if last_used.is_none_or(|t| now - t > 60_000) {
            sqlx::query("UPDATE api_tokens SET last_used_ms = $1 WHERE id = $2")
                .bind(now)
                .bind(token_id)
                .execute(self.pool())
                .await?;
        }
        Ok(Some(TokenUse {
            user: UserRow { id, org_id, org_name, name, role }.into_user(),
            read_only: read_only != 0,
            token_id,
        }))
    }

    /// An organization's API tokens (one user's, when `user_id` is given), newest first.
    pub async fn tokens(&self, org_id: i64, user_id: Option<i64>) -> Result<Vec<TokenRow>, StoreError> {
        #[allow(clippy::type_complexity)]
        let rows: Vec<(i64, String, String, i64, Option<i64>, i64, i64, Option<i64>)> = sqlx::query_as(
            "SELECT t.id, t.name, u.name, t.created_ms, t.expires_ms, t.read_only, t.revoked, t.last_used_ms \
             FROM api_tokens t JOIN users u ON u.id = t.user_id WHERE u.org_id = $1 AND ($2 = 0 OR u.id = $2) \
             ORDER BY t.id DESC",
        )
        .bind(org_id)
        .bind(user_id.unwrap_or(0))
        .fetch_all(self.pool())
        .await?;
        Ok(rows
            .into_iter()
            .map(|(id, name, user, created_ms, expires_ms, read_only, revoked, last_used_ms)| TokenRow {
                id,
                name,
                user,
                created_ms,
                expires_ms,
                read_only: read_only != 0,
                revoked: revoked != 0,
                last_used_ms,
            })
            .collect())
    }

    /// Revoke a token of the organization (one user's only, when `user_id` is given).
    pub async fn revoke_token(&self, change: Change<'_>, id: i64, user_id: Option<i64>) -> Result<(), StoreError> {
        let token = self
            .tokens(change.org_id, user_id)
            .await?
            .into_iter()
            .find(|t| t.id == id)
            .ok_or(StoreError::NotFound("token"))?;
        let mut tx = self.begin().await?;
        sqlx::query("UPDATE api_tokens SET revoked = 1 WHERE id = $1").bind(id).execute(&mut *tx).await?;
        let object = format!("token {} of {}", token.name, token.user);
        crate::audit::log_in(&mut tx, change, "revoke", &object, None, None).await?;
        tx.commit().await?;
        Ok(())
    }

    /// A user's current sessions.
    pub async fn sessions(&self, user_id: i64) -> Result<Vec<SessionRow>, StoreError> {
        let rows: Vec<(String, i64, i64)> = sqlx::query_as(
            "SELECT id_hash, created_ms, expires_ms FROM sessions WHERE user_id = $1 AND expires_ms > $2 \
             ORDER BY created_ms DESC",
        )
        .bind(user_id)
        .bind(now_ms())
        .fetch_all(self.pool())
        .await?;
        Ok(rows.into_iter().map(|(id, created_ms, expires_ms)| SessionRow { id, created_ms, expires_ms }).collect())
    }

    /// End one of a user's sessions by its listed id, or all of them (`None`: "log out
    /// everywhere"). Returns how many ended.
    pub async fn end_sessions(&self, change: Change<'_>, user: &User, id: Option<&str>) -> Result<u64, StoreError> {
        let mut tx = self.begin().await?;
        let done = sqlx::query("DELETE FROM sessions WHERE user_id = $1 AND ($2 = '' OR id_hash = $2)")
            .bind(user.id)
            .bind(id.unwrap_or(""))
            .execute(&mut *tx)
            .await?
            .rows_affected();
        if id.is_some() && done == 0 {
            return Err(StoreError::NotFound("session"));
        }
        let action = if id.is_some() { "end session" } else { "log out everywhere" };
        crate::audit::log_in(&mut tx, change, action, &format!("user {}", user.name), None, None).await?;
        tx.commit().await?;
        Ok(done)
    }

    // ----- user management ---------------------------------------------------------------

    /// The organization's users.
    pub async fn users(&self, org_id: i64) -> Result<Vec<UserInfo>, StoreError> {
        let rows: Vec<(i64, String, String, i64, i64)> =
            sqlx::query_as("SELECT id, name, role, disabled, created_ms FROM users WHERE org_id = $1 ORDER BY name")
                .bind(org_id)
                .fetch_all(self.pool())
                .await?;
        Ok(rows
            .into_iter()
            .map(|(id, name, role, disabled, created_ms)| UserInfo {
                id,
                name,
                role,
                disabled: disabled != 0,
                created_ms,
            })
            .collect())
    }

    async fn user_info(&self, org_id: i64, id: i64) -> Result<UserInfo, StoreError> {
        self.users(org_id).await?.into_iter().find(|u| u.id == id).ok_or(StoreError::NotFound("user"))
    }

    /// Refuse a change that would leave the organization without an enabled admin.
    async fn keep_an_admin(&self, org_id: i64, except: i64) -> Result<(), StoreError> {
        let others: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM users WHERE org_id = $1 AND role = 'admin' AND disabled = 0 AND id <> $2",
        )
        .bind(org_id)
        .bind(except)
        .fetch_one(self.pool())
        .await?;
        if others == 0 {
            return Err(StoreError::Invalid(
                "the organization would have no enabled admin left; make another user admin first".into(),
            ));
        }
        Ok(())
    }

    /// Change a user's role or enable/disable them. Disabling ends their sessions (their
    /// tokens stop working while disabled).
    pub async fn update_user(
        &self,
        change: Change<'_>,
        id: i64,
        role: Option<Role>,
        disabled: Option<bool>,
    ) -> Result<(), StoreError> {
        let before = self.user_info(change.org_id, id).await?;
        let role = role.map_or(before.role.clone(), |r| r.name().to_owned());
        let disabled = disabled.unwrap_or(before.disabled);
        if before.role == "admin" && !before.disabled && (role != "admin" || disabled) {
            self.keep_an_admin(change.org_id, id).await?;
        }
        let mut tx = self.begin().await?;
        sqlx::query("UPDATE users SET role = $1, disabled = $2 WHERE id = $3 AND org_id = $4")
            .bind(&role)
            .bind(i64::from(disabled))
            .bind(id)
            .bind(change.org_id)
            .execute(&mut *tx)
            .await?;
        if disabled {
            sqlx::query("DELETE FROM sessions WHERE user_id = $1").bind(id).execute(&mut *tx).await?;
        }
        let after = UserInfo { role, disabled, ..before.clone() };
        let (b, a) = (serde_json::to_string(&before).ok(), serde_json::to_string(&after).ok());
        crate::audit::log_in(&mut tx, change, "update", &format!("user {}", before.name), b, a).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Remove a user with their sessions and tokens (their audit entries stay).
    pub async fn delete_user(&self, change: Change<'_>, id: i64) -> Result<(), StoreError> {
        let before = self.user_info(change.org_id, id).await?;
        if before.role == "admin" && !before.disabled {
            self.keep_an_admin(change.org_id, id).await?;
        }
        let mut tx = self.begin().await?;
        sqlx::query("DELETE FROM sessions WHERE user_id = $1").bind(id).execute(&mut *tx).await?;
        sqlx::query("DELETE FROM api_tokens WHERE user_id = $1").bind(id).execute(&mut *tx).await?;
        sqlx::query("DELETE FROM users WHERE id = $1 AND org_id = $2")
            .bind(id)
            .bind(change.org_id)
            .execute(&mut *tx)
            .await?;
        let b = serde_json::to_string(&before).ok();
        crate::audit::log_in(&mut tx, change, "delete", &format!("user {}", before.name), b, None).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Set a user's password (an admin's reset, or the user's own change after the caller
    /// checked the current one); every session of that user ends.
    pub async fn set_password(&self, change: Change<'_>, id: i64, password: &str) -> Result<(), StoreError> {
        let user = self.user_info(change.org_id, id).await?;
        let hash = hash_password(password.to_owned()).await?;
        let mut tx = self.begin().await?;
        sqlx::query("UPDATE users SET password_hash = $1 WHERE id = $2 AND org_id = $3")
            .bind(hash)
            .bind(id)
            .bind(change.org_id)
            .execute(&mut *tx)
            .await?;
        sqlx::query("DELETE FROM sessions WHERE user_id = $1").bind(id).execute(&mut *tx).await?;
        crate::audit::log_in(&mut tx, change, "set password", &format!("user {}", user.name), None, None).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Whether `password` is this user's current password (for a self-service change).
    pub async fn password_is(&self, user_id: i64, password: &str) -> Result<bool, StoreError> {
        let stored: Option<String> = sqlx::query_scalar("SELECT password_hash FROM users WHERE id = $1")
            .bind(user_id)
            .fetch_optional(self.pool())
            .await?;
        Ok(stored.is_some() && password_matches(password.to_owned(), stored).await)
    }
}

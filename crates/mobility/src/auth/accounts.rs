//! Accounts: users (`portal.users`) and operators (`portal.admin_users`), their passwords,
//! suspension, and login.

use sqlx::Row;
use tsp_hub::HubError;

use super::limits::RateError;
use super::{Auth, AuthError, Principal, Role, Session, Throttled};

/// A login request: a user by email or an operator by username.
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Login {
    /// A user's email.
    pub email: Option<String>,
    /// An operator's username.
    pub username: Option<String>,
    /// The password.
    pub password: String,
}

/// Why a login got no session. The HTTP answer is the same for every `Refused`.
#[derive(Debug, thiserror::Error)]
pub enum LoginError {
    /// Wrong name or password, an account that cannot log in, or a malformed request.
    #[error("invalid credentials")]
    Refused,
    /// Too many failures lately for the account or the address.
    #[error("too many failed logins; retry later")]
    Throttled(Throttled),
    /// A store failed.
    #[error(transparent)]
    Store(#[from] HubError),
}

/// A user to create.
#[derive(Debug, Clone)]
pub struct NewUser {
    /// Their email (unique).
    pub email: String,
    /// Their display name.
    pub name: String,
}

fn user_tag(id: u64) -> String {
    format!("user:{id}")
}

const MAX_PASSWORD: usize = 1024;

fn check_password(password: &str) -> Result<(), AuthError> {
    if password.chars().count() < 12 || password.len() > MAX_PASSWORD {
        return Err(AuthError::Invalid {
            field: "password",
            message: format!("12 to {MAX_PASSWORD} characters"),
        });
    }
    Ok(())
}

/// Whether user `id` may act: `status = 'active'`, read through the cache (tag `user:<id>`),
/// so a suspension made with [`Auth::suspend_user`] counts everywhere at once and one made
/// directly in MySQL within `cache.l1_ttl` + `cache.l2_ttl`.
pub(super) async fn is_active(auth: &Auth, id: u64) -> Result<bool, HubError> {
    let portal = auth.inner.portal.clone();
    let (status, _) = auth
        .inner
        .cache
        .get_or_load(&user_tag(id), "status", || async move {
            portal
                .timed(
                    "user status",
                    sqlx::query_scalar::<_, String>(
                        "SELECT CAST(status AS CHAR) FROM users WHERE id = ?",
                    )
                    .bind(id)
                    .fetch_optional(portal.pool()),
                )
                .await
        })
        .await?;
    Ok(status.as_deref() == Some("active"))
}

impl Auth {
    /// Creates a user (no password yet: they cannot log in until one is set).
    pub async fn create_user(&self, user: &NewUser) -> Result<u64, AuthError> {
        let email = user.email.trim();
        if !email.contains('@') || email.len() > 255 {
            return Err(AuthError::Invalid {
                field: "email",
                message: "an email address of at most 255 characters".into(),
            });
        }
        if user.name.trim().is_empty() || user.name.len() > 120 {
            return Err(AuthError::Invalid {
                field: "name",
                message: "1-120 characters".into(),
            });
        }
        let portal = &self.inner.portal;
        let done = portal
            .timed(
                "user create",
                sqlx::query("INSERT INTO users (email, display_name) VALUES (?, ?)")
                    .bind(email)
                    .bind(user.name.trim())
                    .execute(portal.pool()),
            )
            .await
            .map_err(
                |e| match e.cause().and_then(|c| c.downcast_ref::<sqlx::Error>()) {
                    Some(sqlx::Error::Database(d)) if d.is_unique_violation() => {
                        AuthError::Invalid {
                            field: "email",
                            message: "already taken".into(),
                        }
                    }
                    _ => AuthError::Store(e),
                },
            )?;
        Ok(done.last_insert_id())
    }

    /// Sets user `id`'s password.
    pub async fn set_user_password(&self, id: u64, password: String) -> Result<(), AuthError> {
        check_password(&password)?;
        let hash = self.hash(password).await?;
        let portal = &self.inner.portal;
        let done = portal
            .timed(
                "user password",
                sqlx::query("UPDATE users SET password_hash = ? WHERE id = ?")
                    .bind(hash)
                    .bind(id)
                    .execute(portal.pool()),
            )
            .await?;
        if done.rows_affected() == 0 {
            return Err(AuthError::NotFound(format!("user {id}")));
        }
        Ok(())
    }

    /// Creates (or, if the name exists, updates the role and password of) an operator.
    pub async fn create_operator(
        &self,
        username: &str,
        role: Role,
        password: String,
    ) -> Result<u64, AuthError> {
        let valid = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-');
        if username.is_empty() || username.len() > 64 || !username.chars().all(valid) {
            return Err(AuthError::Invalid {
                field: "username",
                message: "1-64 characters: letters, digits, `.`, `_`, `-`".into(),
            });
        }
        check_password(&password)?;
        let hash = self.hash(password).await?;
        let portal = &self.inner.portal;
        portal
            .timed(
                "operator create",
                sqlx::query(
                    "INSERT INTO admin_users (username, password_hash, role) VALUES (?, ?, ?) \
                     ON DUPLICATE KEY UPDATE password_hash = VALUES(password_hash), role = VALUES(role)",
                )
                .bind(username)
                .bind(hash)
                .bind(role.as_str())
                .execute(portal.pool()),
            )
            .await?;
        let id: u64 = portal
            .timed(
                "operator create",
                sqlx::query_scalar("SELECT id FROM admin_users WHERE username = ?")
                    .bind(username)
                    .fetch_one(portal.pool()),
            )
            .await?;
        Ok(id)
    }

    /// Sets user `id`'s status (`active` or `suspended`) and makes every process see it
    /// before returning; a suspension also ends the user's sessions.
    pub async fn set_user_status(&self, id: u64, active: bool) -> Result<(), AuthError> {
        let portal = &self.inner.portal;
        let status = if active { "active" } else { "suspended" };
        let exists: Option<u64> = portal
            .timed(
                "user status",
                sqlx::query_scalar("SELECT id FROM users WHERE id = ?")
                    .bind(id)
                    .fetch_optional(portal.pool()),
            )
            .await?;
        if exists.is_none() {
            return Err(AuthError::NotFound(format!("user {id}")));
        }
        portal
            .timed(
                "user status",
                sqlx::query("UPDATE users SET status = ? WHERE id = ? AND status <> 'deleted'")
                    .bind(status)
                    .bind(id)
                    .execute(portal.pool()),
            )
            .await?;
        self.inner.cache.invalidate(&[user_tag(id)]).await?;
        if !active {
            self.end_all_sessions(&Principal::User { id }).await?;
        }
        Ok(())
    }

    async fn hash(&self, password: String) -> Result<String, AuthError> {
        self.inner
            .hasher
            .hash(password)
            .await
            .map_err(|message| AuthError::Invalid {
                field: "auth.argon2",
                message,
            })
    }

    /// Checks `login` and starts a session. Every refusal does the same work (an unknown name
    /// checks a decoy hash) and gives the same answer; failures count per account and address.
    pub async fn login(&self, login: Login, address: &str) -> Result<Session, LoginError> {
        let account = match (&login.email, &login.username) {
            (Some(e), None) => format!("email:{}", e.trim().to_lowercase()),
            (None, Some(u)) => format!("operator:{u}"),
            _ => return Err(LoginError::Refused),
        };
        self.login_allowed(&account, address)
            .await
            .map_err(|e| match e {
                RateError::Throttled(t) => LoginError::Throttled(t),
                RateError::Store(s) => LoginError::Store(s),
            })?;
        let found = self.account(&login).await?;
        let (principal, hash, usable) = match found {
            Some((p, h, usable)) => (Some(p), h, usable),
            None => (None, None, false),
        };
        let password = login.password;
        let ok = password.len() <= MAX_PASSWORD && self.inner.hasher.verify(password, hash).await;
        match principal {
            Some(p) if ok && usable => {
                self.login_succeeded(&account, address).await?;
                Ok(self.start_session(&p).await?)
            }
            _ => {
                self.login_failed(&account, address).await?;
                Err(LoginError::Refused)
            }
        }
    }

    /// The account a login names: its principal, password hash, and whether it may log in.
    async fn account(
        &self,
        login: &Login,
    ) -> Result<Option<(Principal, Option<String>, bool)>, HubError> {
        let portal = &self.inner.portal;
        if let Some(email) = &login.email {
            let row = portal
                .timed(
                    "login",
                    sqlx::query(
                        "SELECT id, password_hash, CAST(status AS CHAR) FROM users WHERE email = ?",
                    )
                    .bind(email.trim())
                    .fetch_optional(portal.pool()),
                )
                .await?;
            return Ok(row.map(|r| {
                let status: String = r.get(2);
                (
                    Principal::User { id: r.get(0) },
                    r.get(1),
                    status == "active",
                )
            }));
        }
        let Some(username) = &login.username else {
            return Ok(None);
        };
        let row = portal
            .timed(
                "login",
                sqlx::query("SELECT id, password_hash, CAST(role AS CHAR) FROM admin_users WHERE username = ?")
                    .bind(username)
                    .fetch_optional(portal.pool()),
            )
            .await?;
        Ok(row.and_then(|r| {
            let role = Role::parse(&r.get::<String, _>(2))?;
            Some((
                Principal::Operator { id: r.get(0), role },
                Some(r.get(1)),
                true,
            ))
        }))
    }
}

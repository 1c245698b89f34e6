//! Accounts: users (`portal.users`) and operators (`portal.admin_users`), their passwords,
//! suspension, and login.

use async_recursion::async_recursion as boxed;
use sqlx::Row;
use tsp_hub::HubError;

use super::limits::RateError;
use super::{Auth, AuthError, Principal, Role, Session, Throttled, sessions};

/// A login request: a user by email or an operator by username.
#[derive(Debug, Clone, serde::Deserialize, utoipa::ToSchema)]
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

fn operator_tag(id: u64) -> String {
    format!("operator:{id}")
}

/// An account a login names, as the database resolved it.
struct Account {
    principal: Principal,
    /// Its password hash, if one is set.
    hash: Option<String>,
    /// Whether it may log in (a user who is active; any operator).
    usable: bool,
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

/// One text column of row `id`, read through the cache under `tag` (`sql` selects it by id).
async fn cached_column(
    auth: &Auth,
    tag: &str,
    op: &'static str,
    sql: &'static str,
    id: u64,
) -> Result<Option<String>, HubError> {
    let portal = auth.inner.portal.clone();
    let (value, _) = auth
        .inner
        .cache
        .get_or_load(tag, op, || async move {
            portal
                .timed(
                    op,
                    sqlx::query_scalar::<_, String>(sql)
                        .bind(id)
                        .fetch_optional(portal.pool()),
                )
                .await
        })
        .await?;
    Ok(value)
}

/// Whether user `id` may act: `status = 'active'`, read through the cache (tag `user:<id>`),
/// so a suspension made with [`Auth::suspend_user`] counts everywhere at once and one made
/// directly in MySQL within `cache.l1_ttl` + `cache.l2_ttl`.
pub(super) async fn is_active(auth: &Auth, id: u64) -> Result<bool, HubError> {
    let sql = "SELECT CAST(status AS CHAR) FROM users WHERE id = ?";
    let status = cached_column(auth, &user_tag(id), "user status", sql, id).await?;
    Ok(status.as_deref() == Some("active"))
}

/// Operator `id`'s role now, read through the cache (tag `operator:<id>`); `None` when the
/// operator no longer exists. A session's principal carries the role it logged in with; this
/// is what each request is judged by, so a role changed in MySQL by hand counts within
/// `cache.l1_ttl` + `cache.l2_ttl`, and one changed with `admins create` at once.
pub(super) async fn operator_role(auth: &Auth, id: u64) -> Result<Option<Role>, HubError> {
    let sql = "SELECT CAST(role AS CHAR) FROM admin_users WHERE id = ?";
    let role = cached_column(auth, &operator_tag(id), "operator role", sql, id).await?;
    Ok(role.as_deref().and_then(Role::parse))
}

impl Auth {
    /// Creates a user (no password yet: they cannot log in until one is set).
    #[boxed]
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
    #[boxed]
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
        // Sessions begun with the old password end (docs/security.md#revocation).
        self.end_all_sessions(&Principal::User { id }).await?;
        Ok(())
    }

    /// Creates (or, if the name exists, updates the role and password of) an operator.
    #[boxed]
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
        // A changed role or password ends the sessions that had the old ones.
        self.inner.cache.invalidate(&[operator_tag(id)]).await?;
        self.end_all_sessions(&Principal::Operator { id, role })
            .await?;
        Ok(id)
    }

    /// Operator `username`'s id.
    #[boxed]
    pub async fn operator_id(&self, username: &str) -> Result<u64, AuthError> {
        let portal = &self.inner.portal;
        let id: Option<u64> = portal
            .timed(
                "operator id",
                sqlx::query_scalar("SELECT id FROM admin_users WHERE username = ?")
                    .bind(username)
                    .fetch_optional(portal.pool()),
            )
            .await?;
        id.ok_or_else(|| AuthError::NotFound(format!("operator {username}")))
    }

    /// Ends every session of operator `username`, in every process before returning; how many
    /// were live.
    #[boxed]
    pub async fn revoke_operator_sessions(&self, username: &str) -> Result<u64, AuthError> {
        let id = self.operator_id(username).await?;
        // The role in the principal does not matter: sessions are indexed by subject.
        let ended = self
            .end_all_sessions(&Principal::Operator {
                id,
                role: Role::Viewer,
            })
            .await?;
        Ok(ended)
    }

    /// Deletes operator `username` and ends their sessions everywhere before returning.
    #[boxed]
    pub async fn delete_operator(&self, username: &str) -> Result<(), AuthError> {
        let id = self.operator_id(username).await?;
        let portal = &self.inner.portal;
        portal
            .timed(
                "operator delete",
                sqlx::query("DELETE FROM admin_users WHERE id = ?")
                    .bind(id)
                    .execute(portal.pool()),
            )
            .await?;
        self.inner.cache.invalidate(&[operator_tag(id)]).await?;
        self.end_all_sessions(&Principal::Operator {
            id,
            role: Role::Viewer,
        })
        .await?;
        Ok(())
    }

    /// Marks user `id` deleted (they can no longer log in or act; their data stays for its
    /// retention) and ends their sessions everywhere before returning.
    #[boxed]
    pub async fn delete_user(&self, id: u64) -> Result<(), AuthError> {
        self.set_user_state(id, "deleted").await
    }

    /// Sets user `id`'s status (`active` or `suspended`) and makes every process see it
    /// before returning; a suspension also ends the user's sessions.
    #[boxed]
    pub async fn set_user_status(&self, id: u64, active: bool) -> Result<(), AuthError> {
        self.set_user_state(id, if active { "active" } else { "suspended" })
            .await
    }

    /// Sets user `id`'s status; a deleted user stays deleted. Every change ends the user's
    /// sessions (generation bump), so none begun under another status survives it.
    async fn set_user_state(&self, id: u64, status: &str) -> Result<(), AuthError> {
        let portal = &self.inner.portal;
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
        self.end_all_sessions(&Principal::User { id }).await?;
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
    /// checks a decoy hash) and gives the same answer. Each attempt is counted against the
    /// account (as the database resolves the name, so spellings it treats as one account count
    /// as one) and the address *before* its password is checked; a success gives it back.
    #[boxed]
    pub async fn login(&self, login: Login, address: &str) -> Result<Session, LoginError> {
        let named = match (&login.email, &login.username) {
            (Some(e), None) => format!("email:{}", e.trim().to_lowercase()),
            (None, Some(u)) => format!("operator:{}", u.trim().to_lowercase()),
            _ => return Err(LoginError::Refused),
        };
        let first = self.account(&login).await?;
        let counted = first
            .as_ref()
            .map(|a| a.principal.subject())
            .unwrap_or(named);
        self.reserve_guess(&counted, address)
            .await
            .map_err(|e| match e {
                RateError::Throttled(t) => LoginError::Throttled(t),
                RateError::Store(s) => LoginError::Store(s),
            })?;
        // The generation is read before the account is read again: a change committed before
        // that second read is what the password is checked against, and one committed after it
        // has bumped the generation past this session's (docs/security.md#revocation).
        let (generation, found) = match &first {
            Some(a) => (
                sessions::read_generation(self, &a.principal.subject()).await?,
                self.account(&login).await?,
            ),
            None => (0, None),
        };
        let same = |a: &Account| {
            first.as_ref().map(|f| f.principal.subject()) == Some(a.principal.subject())
        };
        let (principal, hash, usable) = match found {
            Some(a) if same(&a) => (Some(a.principal), a.hash, a.usable),
            Some(a) => (None, a.hash, false),
            None => (None, None, false),
        };
        let password = login.password;
        let ok = password.len() <= MAX_PASSWORD && self.inner.hasher.verify(password, hash).await;
        match principal {
            Some(p) if ok && usable => {
                self.guess_succeeded(&counted, address).await?;
                Ok(sessions::create(self, &p, generation).await?)
            }
            _ => Err(LoginError::Refused),
        }
    }

    /// The account a login names: its principal, password hash, and whether it may log in.
    async fn account(&self, login: &Login) -> Result<Option<Account>, HubError> {
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
                Account {
                    principal: Principal::User { id: r.get(0) },
                    hash: r.get(1),
                    usable: status == "active",
                }
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
            Some(Account {
                principal: Principal::Operator { id: r.get(0), role },
                hash: Some(r.get(1)),
                usable: true,
            })
        }))
    }
}

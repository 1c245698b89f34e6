//! Login, logout, and revoking a user's sessions.

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Extension, Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use tsp_mobility::auth::{AuthError, Login, LoginError, Principal, Role, Scope, Session};
use utoipa::ToSchema;

use super::caller::Caller;
use super::errors::too_many;
use super::errors::{ApiError, ErrorBody, answer, error};
use super::queries::readable_user;
use super::state::AppState;

/// `POST /auth/logout`.
#[derive(Serialize, ToSchema)]
pub(super) struct LoggedOut {
    /// Whether the session was still open.
    ended: bool,
}

/// `DELETE /users/{id}/sessions`.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(super) struct UserSessionsEnded {
    /// The user.
    user_id: u64,
    /// Sessions ended.
    ended: u64,
}

/// `DELETE /operators/{name}/sessions`.
#[derive(Serialize, ToSchema)]
pub(super) struct OperatorSessionsEnded {
    /// The operator.
    operator: String,
    /// Sessions ended.
    ended: u64,
}

/// Log in: a user by email, or an operator by username.
///
/// Any refusal (unknown name, wrong password, malformed body) is the same 401 after the same
/// work; repeated failures get 429.
#[utoipa::path(
    post,
    path = "/auth/login",
    tag = "sessions",
    request_body = Login,
    responses(
        (status = 200, description = "A new session; its token is shown once.", body = Session),
        (status = 401, description = "Refused.", body = ErrorBody),
    )
)]
pub(super) async fn login(
    State(s): State<AppState>,
    Extension(caller): Extension<Caller>,
    body: Bytes,
) -> Response {
    // A malformed body is refused like a wrong password: the answer says nothing more.
    let Ok(login) = serde_json::from_slice::<Login>(&body) else {
        return refused();
    };
    match s.app.auth().login(login, &caller.address.to_string()).await {
        Ok(session) => Json(session).into_response(),
        Err(LoginError::Refused) => refused(),
        Err(LoginError::Throttled(t)) => too_many(t),
        Err(LoginError::Store(e)) => ApiError::Store(e.to_string()).into_response(),
    }
}

fn refused() -> Response {
    error(StatusCode::UNAUTHORIZED, "invalid credentials")
}

/// Log out: end the presented session.
#[utoipa::path(
    post,
    path = "/auth/logout",
    tag = "sessions",
    responses((status = 200, description = "The session is over.", body = LoggedOut))
)]
pub(super) async fn logout(
    State(s): State<AppState>,
    Extension(caller): Extension<Caller>,
) -> Response {
    let Some(credential) = caller.credential else {
        return refused();
    };
    answer(
        s.app
            .auth()
            .end_session(&credential)
            .await
            .map(|ended| LoggedOut { ended })
            .map_err(|e| ApiError::Store(e.to_string())),
    )
}

/// End every session of a user: the user themselves, or an operator.
#[utoipa::path(
    delete,
    path = "/users/{id}/sessions",
    tag = "sessions",
    params(("id" = u64, Path, minimum = 1, description = "The user.")),
    responses(
        (status = 200, description = "Their sessions are over.", body = UserSessionsEnded),
        (status = 400, description = "Not a user id.", body = ErrorBody),
        (status = 403, description = "Another user's sessions.", body = ErrorBody),
    )
)]
pub(super) async fn revoke_all(
    State(s): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> Response {
    answer(
        async {
            // The user, or an operator (`admin` is what makes one: `Principal::is_operator`).
            let id = readable_user(&caller, &id, Scope::Admin)?;
            let ended = s
                .app
                .auth()
                .end_all_sessions(&Principal::User { id })
                .await
                .map_err(|e| ApiError::Store(e.to_string()))?;
            Ok(UserSessionsEnded { user_id: id, ended })
        }
        .await,
    )
}

/// End every session of an operator: the operator themselves, an admin, or a key with `admin`.
#[utoipa::path(
    delete,
    path = "/operators/{name}/sessions",
    tag = "sessions",
    params(("name" = String, Path, description = "The operator's username.")),
    responses(
        (status = 200, description = "Their sessions are over.", body = OperatorSessionsEnded),
        (status = 403, description = "Another operator's sessions, and not an admin.", body = ErrorBody),
        (status = 404, description = "No such operator (said only to those who may end sessions).", body = ErrorBody),
    )
)]
pub(super) async fn revoke_operator(
    State(s): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(name): Path<String>,
) -> Response {
    answer(
        async {
            let who = caller.who()?;
            let auth = s.app.auth();
            let admin = match who {
                Principal::Operator { role, .. } => *role == Role::Admin,
                Principal::Key { .. } => who.has(Scope::Admin),
                Principal::User { .. } => false,
            };
            let id = match auth.operator_id(&name).await {
                Ok(id) => Some(id),
                Err(AuthError::NotFound(_)) => None,
                Err(e) => return Err(ApiError::Store(e.to_string())),
            };
            let own = matches!(who, Principal::Operator { id: me, .. } if Some(*me) == id);
            if !(admin || own) {
                return Err(super::errors::forbidden());
            }
            let Some(id) = id else {
                return Err(ApiError::Client(
                    StatusCode::NOT_FOUND,
                    format!("operator {name} not found"),
                ));
            };
            // Sessions are indexed by subject: the role does not matter here.
            let ended = auth
                .end_all_sessions(&Principal::Operator {
                    id,
                    role: Role::Viewer,
                })
                .await
                .map_err(|e| ApiError::Store(e.to_string()))?;
            Ok(OperatorSessionsEnded {
                operator: name,
                ended,
            })
        }
        .await,
    )
}

//! Login, logout, and revoking a user's sessions.

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Extension, Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;
use tsp_mobility::auth::{AuthError, Login, LoginError, Principal, Role, Scope};

use super::caller::Caller;
use super::errors::too_many;
use super::errors::{ApiError, answer, error};
use super::queries::readable_user;
use super::state::AppState;

/// `POST /auth/login`: `{"email","password"}` or `{"username","password"}` → a session. Any
/// refusal is the same 401 after the same work; repeated failures get 429.
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

/// `POST /auth/logout`: ends the presented session.
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
            .map(|ended| json!({"ended": ended}))
            .map_err(|e| ApiError::Store(e.to_string())),
    )
}

/// `DELETE /users/{id}/sessions`: ends every session of the user (the user, or an operator).
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
            Ok(json!({"userId": id, "ended": ended}))
        }
        .await,
    )
}

/// `DELETE /operators/{name}/sessions`: ends every session of an operator (the operator
/// themselves, an admin, or a key with `admin`). 404 for no such operator, to those allowed.
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
            Ok(json!({"operator": name, "ended": ended}))
        }
        .await,
    )
}

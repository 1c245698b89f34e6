//! Who is calling: what the guard found, for handlers (`Extension<Caller>`).

use std::net::IpAddr;

use axum::http::StatusCode;
use tsp_mobility::auth::Principal;

use super::errors::ApiError;

/// Who is calling, for handlers (`Extension<Caller>`).
#[derive(Debug, Clone)]
pub struct Caller {
    /// `None` on public routes.
    pub(super) principal: Option<Principal>,
    /// The bearer credential as presented (logout ends this session).
    pub(super) credential: Option<String>,
    /// The client's address.
    pub(super) address: IpAddr,
}

impl Caller {
    /// The principal of an authenticated route (the guard has checked there is one).
    pub(super) fn who(&self) -> Result<&Principal, ApiError> {
        self.principal
            .as_ref()
            .ok_or_else(|| ApiError::Client(StatusCode::UNAUTHORIZED, "unauthorized".into()))
    }
}

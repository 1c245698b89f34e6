//! The principals a credential can stand for, and what each may do by default.

use serde::{Deserialize, Serialize};

/// What an API key (or an operator's role) allows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Scope {
    /// Enqueue jobs (any type but `trip.complete`, which needs `trips:write`).
    #[serde(rename = "jobs:write")]
    JobsWrite,
    /// Read any job.
    #[serde(rename = "jobs:read")]
    JobsRead,
    /// Enqueue `trip.complete` for any user.
    #[serde(rename = "trips:write")]
    TripsWrite,
    /// Read any user's stats and points.
    #[serde(rename = "users:read")]
    UsersRead,
    /// Read analytics.
    #[serde(rename = "analytics:read")]
    AnalyticsRead,
    /// Operate the service: retry jobs, pause queues, read metrics and full health.
    #[serde(rename = "admin")]
    Admin,
}

impl Scope {
    /// Every scope.
    pub const ALL: [Scope; 6] = [
        Scope::JobsWrite,
        Scope::JobsRead,
        Scope::TripsWrite,
        Scope::UsersRead,
        Scope::AnalyticsRead,
        Scope::Admin,
    ];

    /// The scope's name (`jobs:write`).
    pub fn as_str(self) -> &'static str {
        match self {
            Scope::JobsWrite => "jobs:write",
            Scope::JobsRead => "jobs:read",
            Scope::TripsWrite => "trips:write",
            Scope::UsersRead => "users:read",
            Scope::AnalyticsRead => "analytics:read",
            Scope::Admin => "admin",
        }
    }

    /// The scope named `name`.
    pub fn parse(name: &str) -> Option<Scope> {
        Scope::ALL.into_iter().find(|s| s.as_str() == name)
    }
}

/// An operator's role (`portal.admin_users.role`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Reads everything.
    Viewer,
    /// Also writes jobs and operates queues.
    Operator,
    /// Everything.
    Admin,
}

impl Role {
    /// The role's name.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::Operator => "operator",
            Role::Admin => "admin",
        }
    }

    /// The role named `name`.
    pub fn parse(name: &str) -> Option<Role> {
        [Role::Viewer, Role::Operator, Role::Admin]
            .into_iter()
            .find(|r| r.as_str() == name)
    }

    fn allows(self, scope: Scope) -> bool {
        match scope {
            Scope::JobsRead | Scope::UsersRead | Scope::AnalyticsRead => true,
            Scope::JobsWrite | Scope::TripsWrite | Scope::Admin => self >= Role::Operator,
        }
    }
}

/// Who a request acts for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum Principal {
    /// A platform user (`portal.users`): acts on their own data only.
    User {
        /// `portal.users.id`.
        id: u64,
    },
    /// An operator (`portal.admin_users`).
    Operator {
        /// `portal.admin_users.id`.
        id: u64,
        /// Their role.
        role: Role,
    },
    /// A service key (`portal.api_keys`).
    Key {
        /// `portal.api_keys.id`.
        id: u64,
        /// What it allows.
        scopes: Vec<Scope>,
    },
}

impl Principal {
    /// Whether it holds `scope` (a user holds none: their rights are ownership).
    pub fn has(&self, scope: Scope) -> bool {
        match self {
            Principal::User { .. } => false,
            Principal::Operator { role, .. } => role.allows(scope),
            Principal::Key { scopes, .. } => scopes.contains(&scope),
        }
    }

    /// Whether it may operate the service (an operator or admin, or a key with `admin`).
    pub fn is_operator(&self) -> bool {
        self.has(Scope::Admin)
    }

    /// The user it is, if it is one.
    pub fn user_id(&self) -> Option<u64> {
        match self {
            Principal::User { id } => Some(*id),
            _ => None,
        }
    }

    /// A short, stable name: `user:5`, `operator:2`, `key:7` (rate limits, logs, activity).
    pub fn subject(&self) -> String {
        match self {
            Principal::User { id } => format!("user:{id}"),
            Principal::Operator { id, .. } => format!("operator:{id}"),
            Principal::Key { id, .. } => format!("key:{id}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_grant_scopes_in_order() {
        let viewer = Principal::Operator {
            id: 1,
            role: Role::Viewer,
        };
        assert!(viewer.has(Scope::JobsRead) && !viewer.has(Scope::JobsWrite));
        assert!(!viewer.is_operator());
        let op = Principal::Operator {
            id: 1,
            role: Role::Operator,
        };
        assert!(op.has(Scope::TripsWrite) && op.is_operator());
        let user = Principal::User { id: 3 };
        assert!(Scope::ALL.iter().all(|s| !user.has(*s)));
        let key = Principal::Key {
            id: 2,
            scopes: vec![Scope::UsersRead],
        };
        assert!(key.has(Scope::UsersRead) && !key.has(Scope::JobsRead));
        for s in Scope::ALL {
            assert_eq!(Scope::parse(s.as_str()), Some(s));
        }
    }
}

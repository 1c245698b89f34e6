//! How a composition root turns instance names into the handles its components receive: each
//! lookup that fails is noted, and the component is refused once, naming every instance the
//! configuration lacks, before any job runs.

use crate::{Hub, HubError, InfluxStore, MongoStore, MysqlStore, RedisStore};

/// Looks instances up on one hub for one component, collecting the missing ones.
pub struct Resolver<'h> {
    hub: &'h Hub,
    missing: Vec<String>,
}

impl<'h> Resolver<'h> {
    /// A resolver on `hub`.
    pub fn new(hub: &'h Hub) -> Resolver<'h> {
        Resolver {
            hub,
            missing: Vec::new(),
        }
    }

    /// MySQL instance `name`, or `None` after noting it missing.
    pub fn mysql(&mut self, name: &str) -> Option<MysqlStore> {
        let found = self.hub.mysql(name).cloned();
        self.take(found)
    }

    /// Redis instance `name`, or `None` after noting it missing.
    pub fn redis(&mut self, name: &str) -> Option<RedisStore> {
        let found = self.hub.redis(name).cloned();
        self.take(found)
    }

    /// MongoDB instance `name`, or `None` after noting it missing.
    pub fn mongo(&mut self, name: &str) -> Option<MongoStore> {
        let found = self.hub.mongo(name).cloned();
        self.take(found)
    }

    /// InfluxDB instance `name`, or `None` after noting it missing.
    pub fn influx(&mut self, name: &str) -> Option<InfluxStore> {
        let found = self.hub.influx(name).cloned();
        self.take(found)
    }

    fn take<T>(&mut self, found: Result<T, HubError>) -> Option<T> {
        match found {
            Ok(store) => Some(store),
            Err(HubError::UnknownInstance { store, instance }) => {
                self.missing.push(format!("{store}.{instance}"));
                None
            }
            Err(other) => {
                self.missing.push(other.to_string());
                None
            }
        }
    }

    /// What `build` makes of the handles looked up, or [`HubError::MissingInstances`] naming
    /// every one that was missing.
    ///
    /// # Errors
    /// [`HubError::MissingInstances`] when a lookup failed.
    pub fn finish<T>(
        self,
        component: &'static str,
        build: impl FnOnce() -> Option<T>,
    ) -> Result<T, HubError> {
        match build() {
            Some(built) if self.missing.is_empty() => Ok(built),
            _ => Err(HubError::MissingInstances {
                component,
                missing: self.missing.join(", "),
            }),
        }
    }
}

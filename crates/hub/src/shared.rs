//! [`Shared`]: a value every clone of a store sees and that is replaced whole, such as the
//! credentials in use after a rotation (docs/store-security.md#rotation).

use std::sync::{Arc, RwLock};

/// A value shared by every clone, read as an `Arc` snapshot and replaced whole.
pub(crate) struct Shared<T>(Arc<RwLock<Arc<T>>>);

impl<T> Clone for Shared<T> {
    fn clone(&self) -> Self {
        Shared(self.0.clone())
    }
}

impl<T> Shared<T> {
    pub(crate) fn new(value: T) -> Self {
        Shared(Arc::new(RwLock::new(Arc::new(value))))
    }

    /// The value now. A poisoned lock still holds a whole value (writers only swap an `Arc`).
    pub(crate) fn get(&self) -> Arc<T> {
        match self.0.read() {
            Ok(g) => g.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// Replaces the value for every clone.
    pub(crate) fn set(&self, value: T) {
        let value = Arc::new(value);
        match self.0.write() {
            Ok(mut g) => *g = value,
            Err(poisoned) => *poisoned.into_inner() = value,
        }
    }
}

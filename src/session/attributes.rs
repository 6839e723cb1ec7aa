//! Typed, named values that users hang on a session.

use std::any::Any;
use std::collections::HashMap;
use std::sync::Mutex;

/// Attribute storage: a name maps to a value of any `Send + Sync` type.
///
/// The lock is held only for one map operation (and, on reads, the value's `clone`),
/// never across a callback, so any thread can use attributes at any time.
#[derive(Default)]
pub(crate) struct Attributes {
    map: Mutex<HashMap<String, Box<dyn Any + Send + Sync>>>,
}

impl Attributes {
    fn map(&self) -> std::sync::MutexGuard<'_, HashMap<String, Box<dyn Any + Send + Sync>>> {
        // A panic elsewhere while the lock was held cannot leave the map half-changed
        // (every operation is one HashMap call), so a poisoned lock is still usable.
        self.map
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Stores `value` under `key`, returning what was there.
    pub(crate) fn set<T: Any + Send + Sync>(
        &self,
        key: &str,
        value: T,
    ) -> Option<Box<dyn Any + Send + Sync>> {
        self.map().insert(key.to_owned(), Box::new(value))
    }

    /// A clone of the value under `key`, if it is a `T`.
    pub(crate) fn get<T: Any + Clone>(&self, key: &str) -> Option<T> {
        self.map()
            .get(key)
            .and_then(|v| v.downcast_ref::<T>())
            .cloned()
    }

    /// Removes and returns the value under `key`.
    pub(crate) fn remove(&self, key: &str) -> Option<Box<dyn Any + Send + Sync>> {
        self.map().remove(key)
    }

    /// Whether a value is stored under `key`.
    pub(crate) fn contains(&self, key: &str) -> bool {
        self.map().contains_key(key)
    }
}

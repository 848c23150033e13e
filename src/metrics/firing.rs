//! The rules' firings open now (waiting for their resolving event), for the status page and
//! `/api/v1/status`: each engine's reactor opens and closes its own.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};

/// An open firing, as the page shows it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Firing {
    pub engine: String,
    pub rule: String,
    /// Its actor's name (a container's), else its ID.
    pub name: String,
    /// The event that opened it.
    pub action: String,
    pub since_nano: i64,
}

/// By engine, rule and actor ID.
type Key = (Arc<str>, String, String);

#[derive(Debug, Default)]
pub struct FiringNow(Mutex<BTreeMap<Key, Firing>>);

impl FiringNow {
    fn map(&self) -> MutexGuard<'_, BTreeMap<Key, Firing>> {
        // A panic while holding it leaves whole entries behind.
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn open(&self, engine: &Arc<str>, actor_id: &str, firing: Firing) {
        let key = (engine.clone(), firing.rule.clone(), actor_id.to_owned());
        self.map().insert(key, firing);
    }

    pub fn close(&self, engine: &Arc<str>, rule: &str, actor_id: &str) {
        self.map()
            .remove(&(engine.clone(), rule.to_owned(), actor_id.to_owned()));
    }

    /// Every one, by engine, rule and actor.
    pub fn list(&self) -> Vec<Firing> {
        self.map().values().cloned().collect()
    }
}

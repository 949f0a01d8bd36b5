//! An in-memory store for tests of everything above the store contract. Nothing persists.

use std::collections::BTreeMap;
use std::sync::Mutex;

use super::{Entry, Store, Summary};
use crate::clock::now;
use crate::error::Result;

#[derive(Debug, Default)]
pub struct MemoryStore {
    entries: Mutex<BTreeMap<String, (Entry, Option<u64>)>>,
}

impl MemoryStore {
    fn entries(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, (Entry, Option<u64>)>> {
        self.entries
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl Store for MemoryStore {
    fn find(&self, keys: &[String]) -> Result<Option<Entry>> {
        let mut entries = self.entries();
        let Some(key) = keys.iter().find(|key| entries.contains_key(*key)) else {
            return Ok(None);
        };
        let Some((entry, last_used)) = entries.get_mut(key) else {
            return Ok(None);
        };
        *last_used = Some(now());
        Ok(Some(entry.clone()))
    }

    fn put(&self, key: &str, mut entry: Entry) -> Result<()> {
        let mut entries = self.entries();
        if let Some((old, _)) = entries.get(key) {
            entry.created = old.created;
        }
        entries.insert(key.to_owned(), (entry, None));
        Ok(())
    }

    fn remove(&self, keys: &[String]) -> Result<Option<String>> {
        let mut entries = self.entries();
        Ok(keys
            .iter()
            .find_map(|key| entries.remove(key))
            .map(|(entry, _)| entry.server_url))
    }

    fn list(&self) -> Result<Vec<Summary>> {
        let mut list: Vec<Summary> = self
            .entries()
            .values()
            .map(|(entry, last_used)| Summary {
                last_used: *last_used,
                ..Summary::from(entry)
            })
            .collect();
        list.sort_by(|a, b| a.server_url.cmp(&b.server_url));
        Ok(list)
    }

    /// Under the map's mutex, which is this store's lock.
    fn update(&self, key: &str, change: &mut dyn FnMut(&mut Option<Entry>) -> bool) -> Result<()> {
        let mut entries = self.entries();
        let mut slot = entries.get(key).map(|(entry, _)| entry.clone());
        if change(&mut slot) {
            match slot {
                Some(entry) => {
                    let last_used = entries.get(key).and_then(|(_, used)| *used);
                    entries.insert(key.to_owned(), (entry, last_used));
                }
                None => {
                    entries.remove(key);
                }
            }
        }
        Ok(())
    }
}

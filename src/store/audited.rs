//! Any store, with every action recorded in the [access log](crate::audit) after it is done.
//!
//! Wrapping the store (rather than each caller) puts the audit hook in one place: whichever
//! store the configuration picks, every `get`, `store`, `erase` and `list` of the helper and of
//! `coffer` is logged, outside the vault lock and after the answer is known.

use super::{Entry, Store, Summary};
use crate::audit::{AccessLog, Action, Event, Outcome};
use crate::error::Result;
use crate::warning::{Warning, Warnings};

#[derive(Debug)]
pub struct Audited<S> {
    inner: S,
    log: AccessLog,
    /// Where a log that cannot be written is told.
    warnings: Warnings,
}

impl<S: Store> Audited<S> {
    pub fn new(inner: S, log: AccessLog, warnings: Warnings) -> Self {
        Audited {
            inner,
            log,
            warnings,
        }
    }

    /// Logs `action`; `found` tells whether a successful result found what it looked for.
    fn record<T>(
        &self,
        action: Action,
        registry: Option<String>,
        result: &Result<T>,
        found: impl FnOnce(&T) -> bool,
    ) {
        let (outcome, error) = match result {
            Ok(value) if found(value) => (Outcome::Ok, None),
            Ok(_) => (Outcome::NotFound, None),
            Err(e) => (Outcome::Failed, Some(e.to_string())),
        };
        // What the store served that the person should know of: in the log, and on the terminal.
        let warning = self.inner.warning();
        if let Some(warning) = &warning {
            self.warnings.push(warning.clone());
        }
        let event = Event {
            error,
            warning: warning.map(|w| w.to_string()),
            ..Event::now(action, registry, outcome)
        };
        match self.log.append(&event) {
            Ok(()) => {}
            // No vault folder: nothing exists to audit, and the log never creates one.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => self.warnings.push(Warning::new(format!(
                "cannot write the access log {}: {e}",
                self.log.path().display()
            ))),
        }
    }
}

impl<S: Store> Store for Audited<S> {
    fn find(&self, keys: &[String]) -> Result<Option<Entry>> {
        let found = self.inner.find(keys);
        let registry = match &found {
            Ok(Some(entry)) => Some(entry.server_url.clone()),
            _ => keys.first().cloned(),
        };
        self.record(Action::Get, registry, &found, Option::is_some);
        found
    }

    /// One `get` line for the whole answer: found, not found, or failed with its cause, also
    /// when the lookup went through and the token after it did not.
    fn get(
        &self,
        keys: &[String],
        answer: &mut dyn FnMut(Option<Entry>) -> Result<Option<Entry>>,
    ) -> Result<Option<Entry>> {
        let found = self.inner.find(keys);
        let registry = match &found {
            Ok(Some(entry)) => Some(entry.server_url.clone()),
            _ => keys.first().cloned(),
        };
        let answered = found.and_then(&mut *answer);
        self.record(Action::Get, registry, &answered, Option::is_some);
        answered
    }

    fn peek(&self, keys: &[String]) -> Result<Option<Entry>> {
        self.inner.peek(keys)
    }

    fn put(&self, key: &str, entry: Entry) -> Result<()> {
        let registry = entry.server_url.clone();
        let stored = self.inner.put(key, entry);
        self.record(Action::Store, Some(registry), &stored, |_| true);
        stored
    }

    /// One write of the inner store, one `store` line per entry.
    fn put_all(&self, entries: Vec<(String, Entry)>) -> Result<()> {
        let registries: Vec<String> = entries.iter().map(|(_, e)| e.server_url.clone()).collect();
        let stored = self.inner.put_all(entries);
        for registry in registries {
            self.record(Action::Store, Some(registry), &stored, |_| true);
        }
        stored
    }

    fn remove(&self, keys: &[String]) -> Result<Option<String>> {
        let removed = self.inner.remove(keys);
        let registry = match &removed {
            Ok(Some(url)) => Some(url.clone()),
            _ => keys.first().cloned(),
        };
        self.record(Action::Erase, registry, &removed, Option::is_some);
        removed
    }

    /// Logged as a `store` when the change wrote a new credential (its `updated` time moved),
    /// else as an `update` (a token renewal, a kept credential).
    fn update(&self, key: &str, change: &mut dyn FnMut(&mut Option<Entry>) -> bool) -> Result<()> {
        let mut action = Action::Update;
        let mut registry = key.to_owned();
        let updated = self.inner.update(key, &mut |slot| {
            let before = slot.as_ref().map(|entry| entry.updated);
            let changed = change(slot);
            if let Some(entry) = slot.as_ref() {
                registry.clone_from(&entry.server_url);
                if changed && before != Some(entry.updated) {
                    action = Action::Store;
                }
            }
            changed
        });
        self.record(action, Some(registry), &updated, |_| true);
        updated
    }

    fn list(&self) -> Result<Vec<Summary>> {
        let list = self.inner.list();
        self.record(Action::List, None, &list, |_| true);
        list
    }

    fn warning(&self) -> Option<Warning> {
        self.inner.warning()
    }
}

#[cfg(test)]
mod tests {
    use secrecy::SecretString;

    use super::*;
    use crate::store::memory::MemoryStore;

    fn entry(url: &str, secret: &str) -> Entry {
        Entry {
            server_url: url.into(),
            username: "alice".into(),
            secret: SecretString::from(secret),
            created: 0,
            updated: 0,
            tokens: None,
            description: None,
        }
    }

    #[test]
    fn every_action_is_logged_once_without_its_secret() {
        let dir = tempfile::tempdir().expect("temp dir");
        let log = AccessLog::new(dir.path().join("access.log"));
        let store = Audited::new(MemoryStore::default(), log.clone(), Warnings::default());
        let keys = |k: &str| vec![k.to_owned(), "//fallback".to_owned()];
        store
            .put("//ghcr.io", entry("ghcr.io", "hunter2-secret"))
            .expect("put");
        assert!(store.find(&keys("//ghcr.io")).expect("find").is_some());
        assert!(store.find(&keys("//quay.io")).expect("find").is_none());
        assert_eq!(store.list().expect("list").len(), 1);
        assert_eq!(
            store.remove(&keys("//ghcr.io")).expect("remove").as_deref(),
            Some("ghcr.io")
        );
        assert!(store.remove(&keys("//ghcr.io")).expect("remove").is_none());

        let (events, unreadable) = log.read().expect("read");
        assert_eq!(unreadable, 0);
        let seen: Vec<_> = events
            .iter()
            .map(|e| (e.action, e.registry.as_deref(), e.outcome))
            .collect();
        assert_eq!(
            seen,
            [
                (Action::Store, Some("ghcr.io"), Outcome::Ok),
                (Action::Get, Some("ghcr.io"), Outcome::Ok),
                (Action::Get, Some("//quay.io"), Outcome::NotFound),
                (Action::List, None, Outcome::Ok),
                (Action::Erase, Some("ghcr.io"), Outcome::Ok),
                (Action::Erase, Some("//ghcr.io"), Outcome::NotFound),
            ]
        );
        let text = std::fs::read_to_string(log.path()).expect("read");
        assert!(!text.contains("hunter2"));
    }

    #[test]
    fn a_log_that_cannot_be_written_is_a_warning_not_a_failure() {
        let dir = tempfile::tempdir().expect("temp dir");
        // A folder where the log file should be: every append fails.
        let log = AccessLog::new(dir.path().to_owned());
        let warnings = Warnings::default();
        let store = Audited::new(MemoryStore::default(), log, warnings.clone());
        store
            .put("//ghcr.io", entry("ghcr.io", "hunter2-secret"))
            .expect("put");
        let said: Vec<String> = warnings.take().iter().map(ToString::to_string).collect();
        assert_eq!(said.len(), 1, "{said:?}");
        assert!(
            said[0].starts_with("cannot write the access log"),
            "{said:?}"
        );
        assert!(!said[0].contains("hunter2"), "{said:?}");
    }

    #[test]
    fn a_get_is_logged_by_its_answer_not_by_its_lookup() {
        let dir = tempfile::tempdir().expect("temp dir");
        let log = AccessLog::new(dir.path().join("access.log"));
        let store = Audited::new(MemoryStore::default(), log.clone(), Warnings::default());
        store
            .put("//ghcr.io", entry("ghcr.io", "hunter2-secret"))
            .expect("put");
        let failing = |_: Option<Entry>| -> Result<Option<Entry>> {
            Err(crate::token::TokenError::NoCredential.into())
        };
        // A stored entry whose token fails, and nothing stored with a token that fails (chain
        // mode with no identity): both failures, with their cause.
        for key in ["//ghcr.io", "//quay.io"] {
            let got = store.get(&[key.to_owned()], &mut |found| failing(found));
            assert!(got.is_err());
        }
        // Nothing stored and nothing minted: not found.
        let got = store.get(&["//docker.io".to_owned()], &mut Ok);
        assert!(got.expect("get").is_none());
        let (events, _) = log.read().expect("read");
        let seen: Vec<_> = events
            .iter()
            .skip(1)
            .map(|e| (e.registry.as_deref(), e.outcome, e.error.is_some()))
            .collect();
        assert_eq!(
            seen,
            [
                (Some("ghcr.io"), Outcome::Failed, true),
                (Some("//quay.io"), Outcome::Failed, true),
                (Some("//docker.io"), Outcome::NotFound, false),
            ]
        );
        assert!(
            events[1]
                .error
                .as_deref()
                .is_some_and(|e| e.contains("coffer holds only")),
            "{:?}",
            events[1].error
        );
    }
}

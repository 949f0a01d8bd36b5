//! Erases that could not be done when they were asked for.
//!
//! A `docker logout` while the vault is locked reaches the helper, which cannot rewrite a vault
//! it cannot open, and docker ignores the helper's failure and says the logout worked. So the
//! erase is written down here (the registry, the time and why: never a secret), the person is
//! told on the terminal, `coffer ls` and `coffer doctor` show it, and the next command that
//! opens the vault finishes it before doing anything else. A `get` for that registry then finds
//! nothing, as the logout meant.

use std::fs;
use std::io::ErrorKind;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::files;
use crate::files::FileError;
use crate::paths::Paths;

/// One erase still to be done.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pending {
    /// The server URL as the client asked to erase it.
    pub registry: String,
    /// Unix seconds.
    pub at: u64,
    /// Why it could not be done, e.g. "vault locked".
    pub reason: String,
}

#[derive(Debug, Clone)]
pub struct PendingErases {
    path: PathBuf,
    lock: PathBuf,
}

impl PendingErases {
    pub fn new(paths: &Paths) -> Self {
        PendingErases {
            path: paths.home().join("erase-pending.json"),
            lock: paths.home().join("erase-pending.lock"),
        }
    }

    /// Whether anything is pending: one `stat` on the hot path.
    pub fn any(&self) -> bool {
        fs::symlink_metadata(&self.path).is_ok()
    }

    /// Every pending erase, oldest first.
    pub fn list(&self) -> Result<Vec<Pending>> {
        match fs::read(&self.path) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| {
                FileError::io("read the pending erases in", &self.path)(std::io::Error::new(
                    ErrorKind::InvalidData,
                    e,
                ))
                .into()
            }),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(Vec::new()),
            Err(e) => Err(FileError::io("read", &self.path)(e).into()),
        }
    }

    /// Writes down an erase to finish later; a registry already pending keeps its first time.
    pub fn record(&self, registry: &str, reason: &str) -> Result<()> {
        let _lock = self.lock()?;
        let mut pending = self.list()?;
        if !pending.iter().any(|p| p.registry == registry) {
            pending.push(Pending {
                registry: registry.to_owned(),
                at: crate::clock::now(),
                reason: reason.to_owned(),
            });
        }
        self.save(&pending)
    }

    /// Tries every pending erase with `erase`, which says whether it removed an entry; returns
    /// those that did. One that fails again stays; one that found nothing is done too.
    pub fn settle(&self, mut erase: impl FnMut(&str) -> Result<bool>) -> Result<Vec<Pending>> {
        if !self.any() {
            return Ok(Vec::new());
        }
        let _lock = self.lock()?;
        let mut left = Vec::new();
        let mut removed = Vec::new();
        let pending = self.list()?;
        let before = pending.len();
        for entry in pending {
            match erase(&entry.registry) {
                Ok(true) => removed.push(entry),
                Ok(false) => {}
                Err(_) => left.push(entry),
            }
        }
        if left.len() != before {
            self.save(&left)?;
        }
        Ok(removed)
    }

    fn lock(&self) -> Result<files::Lock> {
        Ok(files::lock(&self.lock, files::LOCK_TIMEOUT)?)
    }

    fn save(&self, pending: &[Pending]) -> Result<()> {
        if pending.is_empty() {
            return match fs::remove_file(&self.path) {
                Err(e) if e.kind() != ErrorKind::NotFound => {
                    Err(FileError::io("remove", &self.path)(e).into())
                }
                _ => Ok(()),
            };
        }
        let json = serde_json::to_vec_pretty(pending)
            .map_err(|e| FileError::io("encode", &self.path)(e.into()))?;
        Ok(files::write_atomic(&self.path, &json)?)
    }
}

/// The reason an erase failed, in the words `coffer ls` shows: "logout failed (vault locked)".
pub fn reason(error: &Error) -> Option<&'static str> {
    match error {
        Error::Locked => Some("vault locked"),
        Error::WrongPassphrase { .. } => Some("wrong passphrase"),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recorded_erases_are_kept_until_they_succeed() {
        let dir = tempfile::tempdir().expect("temp dir");
        let pending = PendingErases::new(&Paths::new(dir.path()));
        assert!(!pending.any());
        pending.record("ghcr.io", "vault locked").expect("record");
        pending.record("quay.io", "vault locked").expect("record");
        pending.record("ghcr.io", "vault locked").expect("twice");
        assert_eq!(pending.list().expect("list").len(), 2);

        let done = pending
            .settle(|registry| match registry {
                "ghcr.io" => Ok(true),
                _ => Err(Error::Locked),
            })
            .expect("settle");
        assert_eq!(done.len(), 1);
        assert_eq!(done[0].registry, "ghcr.io");
        let left = pending.list().expect("list");
        assert_eq!(left.len(), 1);
        assert_eq!(left[0].registry, "quay.io");

        let done = pending.settle(|_| Ok(false)).expect("settle");
        assert!(
            done.is_empty(),
            "nothing was there to erase: nothing is reported"
        );
        assert!(!pending.any(), "an empty list leaves no file");
    }
}

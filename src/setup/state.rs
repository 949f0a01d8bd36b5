//! What `coffer setup` replaced, kept in `setup.json` beside coffer's config, so that undoing
//! restores exactly that. Read and written only under the setup lock.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::{Result, SetupError, io};
use crate::files;
use crate::paths::Paths;

#[derive(Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub(super) struct State {
    /// For each docker config file coffer set (its real path), the `credsStore` it had before:
    /// `null` when it had none.
    pub docker: BTreeMap<PathBuf, Option<String>>,
}

impl State {
    pub fn load(paths: &Paths) -> Result<State> {
        let path = paths.setup_state();
        match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| SetupError::Unreadable {
                path,
                message: format!("is not a setup record coffer can read ({e})"),
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(State::default()),
            Err(source) => Err(io("read", &path)(source)),
        }
    }

    /// Writes the record atomically, or removes it once there is nothing left to undo.
    pub fn save(&self, paths: &Paths) -> Result<()> {
        let path = paths.setup_state();
        if self.docker.is_empty() {
            return match std::fs::remove_file(&path) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(io("remove", &path)(e)),
                _ => Ok(()),
            };
        }
        let mut bytes =
            serde_json::to_vec_pretty(self).map_err(|e| io("encode", &path)(e.into()))?;
        bytes.push(b'\n');
        files::write_atomic(&path, &bytes)?;
        Ok(())
    }
}

/// Held around every read-modify-write of a tool's configuration and the record.
pub(super) fn lock(paths: &Paths) -> Result<files::Lock> {
    let path = paths.setup_lock();
    if let Some(dir) = path.parent() {
        files::ensure_private_dir(dir)?;
    }
    Ok(files::lock(&path, files::LOCK_TIMEOUT)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn record_round_trips_and_disappears_when_empty() {
        let dir = tempfile::tempdir().expect("temp dir");
        let paths = Paths::new(dir.path());
        assert_eq!(State::load(&paths).expect("load"), State::default());
        let mut state = State::default();
        state
            .docker
            .insert("/a/config.json".into(), Some("desktop".into()));
        state.docker.insert("/b/config.json".into(), None);
        state.save(&paths).expect("save");
        assert_eq!(State::load(&paths).expect("load"), state);
        State::default().save(&paths).expect("save empty");
        assert!(!paths.setup_state().exists());
    }
}

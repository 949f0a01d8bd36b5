//! Where coffer keeps its files: `COFFER_HOME` when set, else the platform's directories.

use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Paths {
    home: PathBuf,
    config_dir: PathBuf,
}

impl Paths {
    pub fn new(home: impl Into<PathBuf>) -> Self {
        let home = home.into();
        Paths {
            config_dir: home.clone(),
            home,
        }
    }

    /// `COFFER_HOME` if set, otherwise e.g. `~/.local/share/coffer` and `~/.config/coffer`.
    pub fn from_env() -> Result<Self> {
        if let Some(home) = std::env::var_os("COFFER_HOME").filter(|home| !home.is_empty()) {
            return Ok(Paths::new(home));
        }
        let dirs = directories::ProjectDirs::from("", "", "coffer").ok_or(Error::NoHome)?;
        Ok(Paths {
            home: dirs.data_local_dir().to_path_buf(),
            config_dir: dirs.config_dir().to_path_buf(),
        })
    }

    /// The folder holding the vault, its lock and its non-secret state.
    pub fn home(&self) -> &Path {
        &self.home
    }

    pub fn vault(&self) -> PathBuf {
        self.home.join("vault.coffer")
    }

    pub fn lock(&self) -> PathBuf {
        self.home.join("vault.lock")
    }

    /// One empty file per entry, named by its lookup tag, whose mtime is the entry's last use.
    pub fn used_marks(&self) -> PathBuf {
        self.home.join("used")
    }

    /// The access log: one line per credential action (see [`crate::audit`]).
    pub fn access_log(&self) -> PathBuf {
        self.home.join("access.log")
    }

    pub fn config(&self) -> PathBuf {
        self.config_dir.join("config.toml")
    }
}

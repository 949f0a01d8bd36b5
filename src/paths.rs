//! Where coffer keeps its files: `COFFER_HOME` when set, else the platform's directories.

use std::path::{Path, PathBuf};

/// Why coffer cannot tell where its files are.
#[derive(Debug, thiserror::Error)]
pub enum PathsError {
    #[error(
        "invalid profile name {0:?}: use up to 64 letters, digits, '-', '_' or '.', not starting with '.'"
    )]
    Profile(String),
    #[error("cannot find a home directory for the vault; set COFFER_HOME")]
    NoHome,
    #[error(transparent)]
    ForeignHome(#[from] crate::ownership::ForeignHome),
}

type Result<T> = std::result::Result<T, PathsError>;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Paths {
    home: PathBuf,
    config_dir: PathBuf,
    /// The profile these paths are narrowed to, if any.
    profile: Option<String>,
}

impl Paths {
    pub fn new(home: impl Into<PathBuf>) -> Self {
        let home = home.into();
        Paths {
            config_dir: home.clone(),
            home,
            profile: None,
        }
    }

    /// `COFFER_HOME` if set, otherwise e.g. `~/.local/share/coffer` and `~/.config/coffer`;
    /// then the profile named by `COFFER_PROFILE`, if any.
    pub fn from_env() -> Result<Self> {
        let profile = std::env::var("COFFER_PROFILE")
            .ok()
            .filter(|p| !p.is_empty());
        Self::for_profile(profile.as_deref())
    }

    /// The user's paths, narrowed to `profile` when one is given.
    pub fn for_profile(profile: Option<&str>) -> Result<Self> {
        crate::ownership::refuse_foreign_home()?;
        let base =
            if let Some(home) = std::env::var_os("COFFER_HOME").filter(|home| !home.is_empty()) {
                Paths::new(home)
            } else {
                let dirs =
                    directories::ProjectDirs::from("", "", "coffer").ok_or(PathsError::NoHome)?;
                Paths {
                    home: dirs.data_local_dir().to_path_buf(),
                    config_dir: dirs.config_dir().to_path_buf(),
                    profile: None,
                }
            };
        match profile {
            Some(name) => base.profile(name),
            None => Ok(base),
        }
    }

    /// A profile: an isolated set of credentials (its own vault, key, config and log) under
    /// `profiles/NAME`, so one service's credentials are not every service's.
    pub fn profile(&self, name: &str) -> Result<Self> {
        let valid = !name.is_empty()
            && name.len() <= 64
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
            && !name.starts_with('.');
        if !valid {
            return Err(PathsError::Profile(name.to_owned()));
        }
        Ok(Paths {
            profile: Some(name.to_owned()),
            ..Paths::new(self.home.join("profiles").join(name))
        })
    }

    /// The profile these paths are narrowed to; `None` for the user's own credentials.
    pub fn profile_name(&self) -> Option<&str> {
        self.profile.as_deref()
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

    /// What `coffer setup` changed, so `coffer setup --undo` can put it back.
    pub fn setup_state(&self) -> PathBuf {
        self.config_dir.join("setup.json")
    }

    pub fn setup_lock(&self) -> PathBuf {
        self.config_dir.join("setup.lock")
    }
}

/// The `coffer` binary beside this one (this one, in `coffer`), else the one on PATH: the
/// helper runs it for what it does not link (minting through the clouds' SDKs, the agent).
pub fn coffer_program() -> PathBuf {
    std::env::current_exe()
        .ok()
        .and_then(|exe| exe.parent().map(|dir| dir.join("coffer")))
        .filter(|path| path.is_file())
        .unwrap_or_else(|| "coffer".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn profiles_are_separate_homes_with_safe_names() {
        let base = Paths::new("/base");
        let ci = base.profile("ci-runner_2").expect("valid");
        assert_eq!(
            ci.vault(),
            Path::new("/base/profiles/ci-runner_2/vault.coffer")
        );
        assert_eq!(
            ci.config(),
            Path::new("/base/profiles/ci-runner_2/config.toml")
        );
        for bad in ["", "..", ".hidden", "a/b", "x y", &"n".repeat(65)] {
            assert!(base.profile(bad).is_err(), "{bad:?} accepted");
        }
    }
}

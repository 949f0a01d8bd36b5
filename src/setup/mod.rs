//! Pointing container tools at coffer, reversibly.
//!
//! - [`docker`]: `credsStore` in docker's `config.json`. The value it replaces is recorded
//!   (`setup.json` beside coffer's config) so that undoing puts exactly that value back.
//! - [`podman`]: a `registries.conf.d` drop-in for podman, skopeo and buildah, which ignore
//!   `credsStore`.
//!
//! A setting that is already right is not written at all, so running a setup twice changes
//! nothing the second time: no rewrite, no new backup.

pub mod docker;
pub mod podman;
mod state;

use std::path::{Path, PathBuf};

/// The helper's name as the tools spell it: they run `docker-credential-coffer`.
pub const HELPER: &str = "coffer";

#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    #[error("{}: {message}; coffer edits only files it can read: fix it, then run this again", path.display())]
    Unreadable { path: PathBuf, message: String },
    #[error("{} exists and was not written by coffer; move it aside, then run this again", path.display())]
    NotOurs { path: PathBuf },
    #[error("cannot find your home directory: set HOME")]
    NoHome,
    #[error(transparent)]
    File(#[from] crate::files::FileError),
    #[error(transparent)]
    AuthFile(#[from] crate::auth_file::AuthFileError),
}

pub type Result<T, E = SetupError> = std::result::Result<T, E>;

/// What a setup did to a file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// It was already as wanted, and was not written.
    Unchanged,
    /// It was written; the old file, if there was one, was copied to `backup` first.
    Written { backup: Option<PathBuf> },
    /// It was a file of coffer's own, and was removed.
    Removed,
}

fn home() -> Result<PathBuf> {
    directories::BaseDirs::new()
        .map(|dirs| dirs.home_dir().to_path_buf())
        .ok_or(SetupError::NoHome)
}

fn io(action: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> SetupError {
    let error = crate::files::FileError::io(action, path);
    move |source| SetupError::File(error(source))
}

//! podman, skopeo and buildah (all built on containers/image) ignore docker's `credsStore`.
//! They run the helpers that `credential-helpers` in registries.conf lists, for every
//! registry: a login is stored by the first helper that accepts it, and a lookup asks each in
//! turn. coffer sets that list with a drop-in of its own,
//! `~/.config/containers/registries.conf.d/coffer.conf`, which containers/image reads whether
//! or not the user has a registries.conf of their own, and which overrides the system's list.
//! Undoing is removing that one file; nothing of the user's is edited.
//!
//! The list is coffer alone. With `containers-auth.json` after it, a login coffer could not
//! store (no passphrase available) would quietly be written to auth.json in plaintext instead.
//! The price: logins kept in auth.json files are no longer read, so [`Report::plaintext`]
//! names them, to be logged in again (or imported).

use std::fs;
use std::path::{Path, PathBuf};

use super::{Change, HELPER, Result, SetupError, io};
use crate::files;

const MARK: &str = "# Written by `coffer setup podman`";
const NAME: &str = "coffer.conf";

fn content() -> String {
    format!(
        "{MARK}; `coffer setup --undo podman` removes it.\n\
         # podman, skopeo and buildah keep every registry login in coffer's vault.\n\
         credential-helpers = [\"{HELPER}\"]\n"
    )
}

/// `~/.config/containers/registries.conf.d/coffer.conf`. containers/image finds it from
/// `$HOME`, not `$XDG_CONFIG_HOME`.
pub fn drop_in_path() -> Result<PathBuf> {
    Ok(super::home()?
        .join(".config/containers/registries.conf.d")
        .join(NAME))
}

#[derive(Debug)]
pub struct Report {
    pub path: PathBuf,
    pub change: Change,
    /// Drop-ins read after coffer's that set `credential-helpers` themselves, and so win.
    pub overridden_by: Vec<PathBuf>,
    /// Auth files holding unencrypted logins, which the tools stop reading, with their counts.
    pub plaintext: Vec<(PathBuf, usize)>,
}

/// Writes coffer's drop-in (or leaves it, if it is already there as written).
pub fn enable(drop_in: &Path, auth_files: &[PathBuf]) -> Result<Report> {
    let wanted = content();
    let change = match fs::read_to_string(drop_in) {
        Ok(existing) if existing == wanted => Change::Unchanged,
        Ok(existing) if !existing.starts_with(MARK) => {
            return Err(SetupError::NotOurs {
                path: drop_in.to_path_buf(),
            });
        }
        Ok(_) => {
            files::write_atomic(drop_in, wanted.as_bytes())?;
            Change::Written { backup: None }
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            if let Some(dir) = drop_in.parent() {
                fs::create_dir_all(dir).map_err(io("create", dir))?;
            }
            files::write_atomic(drop_in, wanted.as_bytes())?;
            Change::Written { backup: None }
        }
        Err(e) => return Err(io("read", drop_in)(e)),
    };
    Ok(Report {
        path: drop_in.to_path_buf(),
        change,
        overridden_by: overriding(drop_in),
        plaintext: plaintext(auth_files),
    })
}

/// Removes coffer's drop-in; a file of that name that coffer did not write is left alone.
pub fn disable(drop_in: &Path) -> Result<Report> {
    let change = match fs::read_to_string(drop_in) {
        Ok(existing) if existing.starts_with(MARK) => {
            fs::remove_file(drop_in).map_err(io("remove", drop_in))?;
            Change::Removed
        }
        Ok(_) => Change::Unchanged,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Change::Unchanged,
        Err(e) => return Err(io("read", drop_in)(e)),
    };
    Ok(Report {
        path: drop_in.to_path_buf(),
        change,
        overridden_by: Vec::new(),
        plaintext: Vec::new(),
    })
}

/// The auth files containers/image reads when no helper is configured, in its order: the
/// per-session `$XDG_RUNTIME_DIR/containers/auth.json`, `$XDG_CONFIG_HOME/containers/auth.json`,
/// then docker's config.
pub fn auth_files() -> Result<Vec<PathBuf>> {
    let home = super::home()?;
    let mut found = Vec::new();
    if let Some(runtime) = std::env::var_os("XDG_RUNTIME_DIR").filter(|v| !v.is_empty()) {
        found.push(PathBuf::from(runtime).join("containers/auth.json"));
    }
    let config = std::env::var_os("XDG_CONFIG_HOME")
        .filter(|v| !v.is_empty())
        .map_or_else(|| home.join(".config"), PathBuf::from);
    found.push(config.join("containers/auth.json"));
    found.push(super::docker::config_path()?);
    found.dedup();
    Ok(found)
}

fn plaintext(auth_files: &[PathBuf]) -> Vec<(PathBuf, usize)> {
    auth_files
        .iter()
        .map(|path| {
            let logins = crate::auth_file::AuthFile::read(path).map_or(0, |f| f.plaintext());
            (path.clone(), logins)
        })
        .filter(|(_, count)| *count > 0)
        .collect()
}

/// Drop-ins are read in name order and the last `credential-helpers` wins.
fn overriding(drop_in: &Path) -> Vec<PathBuf> {
    let Some(dir) = drop_in.parent() else {
        return Vec::new();
    };
    let Ok(entries) = fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut later: Vec<PathBuf> = entries
        .flatten()
        .map(|entry| entry.path())
        .filter(|path| {
            path.extension().is_some_and(|e| e == "conf")
                && path.file_name() > drop_in.file_name()
                && fs::read_to_string(path)
                    .ok()
                    .and_then(|text| text.parse::<toml::Table>().ok())
                    .is_some_and(|table| table.contains_key("credential-helpers"))
        })
        .collect();
    later.sort();
    later
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn enable_is_idempotent_and_undo_removes_only_our_file() {
        let dir = tempfile::tempdir().expect("temp dir");
        let drop_in = dir.path().join("registries.conf.d").join(NAME);
        let auth = dir.path().join("auth.json");
        fs::write(&auth, r#"{"auths": {"quay.io": {"auth": "eDp5"}}}"#).expect("auth");

        let report = enable(&drop_in, std::slice::from_ref(&auth)).expect("enable");
        assert_eq!(report.change, Change::Written { backup: None });
        assert_eq!(report.plaintext, [(auth.clone(), 1)]);
        let text = fs::read_to_string(&drop_in).expect("drop-in");
        let table: toml::Table = text.parse().expect("valid TOML");
        assert_eq!(
            table["credential-helpers"],
            toml::Value::Array(vec!["coffer".into()])
        );
        assert_eq!(
            enable(&drop_in, &[]).expect("again").change,
            Change::Unchanged
        );

        let later = drop_in.with_file_name("mine.conf");
        fs::write(&later, "credential-helpers = [\"pass\"]\n").expect("later");
        fs::write(
            drop_in.with_file_name("00-early.conf"),
            "credential-helpers = []\n",
        )
        .expect("early");
        assert_eq!(enable(&drop_in, &[]).expect("again").overridden_by, [later]);

        assert_eq!(disable(&drop_in).expect("undo").change, Change::Removed);
        assert!(!drop_in.exists());
        assert_eq!(disable(&drop_in).expect("twice").change, Change::Unchanged);
    }

    #[test]
    fn a_file_coffer_did_not_write_is_never_replaced_or_removed() {
        let dir = tempfile::tempdir().expect("temp dir");
        let drop_in = dir.path().join(NAME);
        fs::write(&drop_in, "credential-helpers = [\"pass\"]\n").expect("write");
        assert!(matches!(
            enable(&drop_in, &[]),
            Err(SetupError::NotOurs { .. })
        ));
        assert_eq!(disable(&drop_in).expect("undo").change, Change::Unchanged);
        assert_eq!(
            fs::read_to_string(&drop_in).expect("read"),
            "credential-helpers = [\"pass\"]\n"
        );
    }
}

//! docker: `credsStore` in `config.json` names the helper docker runs for every registry that
//! `credHelpers` does not name. Setting it to coffer keeps every other key as it was, in its
//! order; the value it replaces is recorded so that [`disable`] puts it back.

use std::path::{Path, PathBuf};

use serde_json::{Map, Value};

use super::state::{self, State};
use super::{Change, HELPER, Result};
use crate::auth_file::AuthFile;
use crate::paths::Paths;

const KEY: &str = "credsStore";

/// `$DOCKER_CONFIG/config.json`, or `~/.docker/config.json`: where docker reads it.
pub fn config_path() -> Result<PathBuf> {
    crate::auth_file::docker_config().ok_or(super::SetupError::NoHome)
}

#[derive(Debug)]
pub struct Report {
    /// The file as edited: symlinks resolved.
    pub path: PathBuf,
    pub change: Change,
    /// `credsStore` before and after.
    pub before: Option<String>,
    pub after: Option<String>,
    /// Credentials that sit unencrypted in `auths`.
    pub plaintext: usize,
}

/// Sets `credsStore` to coffer, recording the value it replaces.
pub fn enable(paths: &Paths, config: &Path) -> Result<Report> {
    let _lock = state::lock(paths)?;
    let mut file = AuthFile::read(config)?;
    let before = creds_store(&file.object);
    let plaintext = file.plaintext();
    if before.as_deref() == Some(HELPER) {
        return Ok(Report {
            path: file.path,
            change: Change::Unchanged,
            after: before.clone(),
            before,
            plaintext,
        });
    }
    // The record is written first: if the edit is interrupted, undoing still knows the old value.
    let mut record = State::load(paths)?;
    record.docker.insert(file.path.clone(), before.clone());
    record.save(paths)?;
    file.object
        .insert(KEY.to_owned(), Value::String(HELPER.to_owned()));
    let change = Change::Written {
        backup: file.write()?.backup,
    };
    Ok(Report {
        path: file.path,
        change,
        before,
        after: Some(HELPER.to_owned()),
        plaintext,
    })
}

/// Puts back the `credsStore` that [`enable`] replaced (removing the key if there was none),
/// but only while it still names coffer: a value someone chose since is theirs to keep.
pub fn disable(paths: &Paths, config: &Path) -> Result<Report> {
    let _lock = state::lock(paths)?;
    let mut file = AuthFile::read(config)?;
    let before = creds_store(&file.object);
    let plaintext = file.plaintext();
    let mut record = State::load(paths)?;
    let recorded = record.docker.remove(&file.path);
    if before.as_deref() != Some(HELPER) {
        if recorded.is_some() {
            record.save(paths)?;
        }
        return Ok(Report {
            path: file.path,
            change: Change::Unchanged,
            after: before.clone(),
            before,
            plaintext,
        });
    }
    // Without a record (set by hand, or under another COFFER_HOME) the key is removed: docker
    // must never be left naming a helper that is about to disappear.
    let after = recorded.flatten();
    match &after {
        Some(value) => {
            file.object
                .insert(KEY.to_owned(), Value::String(value.clone()));
        }
        None => {
            file.object.shift_remove(KEY);
        }
    }
    let change = Change::Written {
        backup: file.write()?.backup,
    };
    record.save(paths)?;
    Ok(Report {
        path: file.path,
        change,
        before,
        after,
        plaintext,
    })
}

fn creds_store(config: &Map<String, Value>) -> Option<String> {
    config.get(KEY).and_then(Value::as_str).map(str::to_owned)
}

#[cfg(test)]
mod tests {
    use std::fs;
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    struct Case {
        _dir: tempfile::TempDir,
        paths: Paths,
        config: PathBuf,
    }

    fn case(content: Option<&str>) -> Case {
        let dir = tempfile::tempdir().expect("temp dir");
        let paths = Paths::new(dir.path().join("coffer"));
        let config = dir.path().join("docker/config.json");
        if let Some(content) = content {
            fs::create_dir(dir.path().join("docker")).expect("mkdir");
            fs::write(&config, content).expect("write");
        }
        Case {
            _dir: dir,
            paths,
            config,
        }
    }

    fn backups(config: &Path) -> usize {
        fs::read_dir(config.parent().expect("dir"))
            .expect("list")
            .filter(|e| {
                e.as_ref()
                    .is_ok_and(|e| e.file_name().to_string_lossy().ends_with(".bak"))
            })
            .count()
    }

    #[test]
    fn enable_then_disable_restores_the_previous_helper_and_keeps_the_rest() {
        let original = r#"{"auths": {"r.example": {}}, "credsStore": "desktop", "psFormat": "x"}"#;
        let case = case(Some(original));
        let report = enable(&case.paths, &case.config).expect("enable");
        assert_eq!(report.before.as_deref(), Some("desktop"));
        let Change::Written {
            backup: Some(backup),
        } = &report.change
        else {
            panic!("{:?}", report.change)
        };
        assert_eq!(fs::read_to_string(backup).expect("backup"), original);
        let text = fs::read_to_string(&case.config).expect("config");
        let value: Map<String, Value> = serde_json::from_str(&text).expect("json");
        assert_eq!(
            value.keys().collect::<Vec<_>>(),
            ["auths", "credsStore", "psFormat"]
        );
        assert_eq!(value["credsStore"], "coffer");

        let again = enable(&case.paths, &case.config).expect("again");
        assert_eq!(again.change, Change::Unchanged);
        assert_eq!(fs::read_to_string(&case.config).expect("config"), text);
        assert_eq!(backups(&case.config), 1);

        let undo = disable(&case.paths, &case.config).expect("disable");
        assert_eq!(undo.after.as_deref(), Some("desktop"));
        let value: Map<String, Value> =
            serde_json::from_slice(&fs::read(&case.config).expect("config")).expect("json");
        let expected: Map<String, Value> = serde_json::from_str(original).expect("json");
        assert_eq!(value, expected);
        assert!(!case.paths.setup_state().exists(), "record dropped");
        assert_eq!(
            disable(&case.paths, &case.config).expect("twice").change,
            Change::Unchanged
        );
    }

    #[test]
    fn a_missing_file_is_created_private_and_undo_removes_the_key() {
        let case = case(None);
        let report = enable(&case.paths, &case.config).expect("enable");
        assert_eq!(report.change, Change::Written { backup: None });
        assert_eq!(
            fs::read_to_string(&case.config).expect("config"),
            "{\n\t\"credsStore\": \"coffer\"\n}\n"
        );
        let dir_mode = fs::metadata(case.config.parent().expect("dir"))
            .expect("stat")
            .permissions()
            .mode();
        assert_eq!(dir_mode & 0o777, 0o700);
        disable(&case.paths, &case.config).expect("disable");
        assert_eq!(fs::read_to_string(&case.config).expect("config"), "{}\n");
    }

    #[test]
    fn the_file_mode_is_kept_and_a_symlink_stays_a_link() {
        let case = case(Some("{}"));
        let real = case.config.with_file_name("real.json");
        fs::rename(&case.config, &real).expect("move");
        fs::set_permissions(&real, fs::Permissions::from_mode(0o644)).expect("chmod");
        std::os::unix::fs::symlink(&real, &case.config).expect("link");
        enable(&case.paths, &case.config).expect("enable");
        assert!(
            fs::symlink_metadata(&case.config)
                .expect("stat")
                .file_type()
                .is_symlink()
        );
        assert_eq!(
            fs::metadata(&real).expect("stat").permissions().mode() & 0o777,
            0o644
        );
        assert!(
            fs::read_to_string(&real)
                .expect("read")
                .contains("\"coffer\"")
        );
    }

    #[test]
    fn invalid_json_is_left_untouched() {
        let case = case(Some("{\"auths\": {"));
        let error = enable(&case.paths, &case.config).expect_err("refused");
        assert!(error.to_string().contains("is not valid JSON"), "{error}");
        assert_eq!(
            fs::read_to_string(&case.config).expect("config"),
            "{\"auths\": {"
        );
        assert_eq!(backups(&case.config), 0);
        assert!(!case.paths.setup_state().exists());
    }

    #[test]
    fn undo_leaves_a_helper_chosen_since_alone() {
        let case = case(Some("{}"));
        enable(&case.paths, &case.config).expect("enable");
        fs::write(&case.config, r#"{"credsStore": "pass"}"#).expect("user change");
        let undo = disable(&case.paths, &case.config).expect("disable");
        assert_eq!(undo.change, Change::Unchanged);
        assert_eq!(undo.after.as_deref(), Some("pass"));
        assert_eq!(
            fs::read_to_string(&case.config).expect("config"),
            r#"{"credsStore": "pass"}"#
        );
        assert!(!case.paths.setup_state().exists());
    }
}

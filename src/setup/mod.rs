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

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use serde::Serialize;
use serde_json::{Map, Value};

use crate::files;

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
    File(#[from] crate::Error),
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
    let error = crate::Error::io(action, path);
    move |source| SetupError::File(error(source))
}

/// A JSON object read from a file, with what it takes to write it back faithfully: key order
/// (serde_json's `preserve_order`), the file's permissions, and a link left a link.
#[derive(Debug)]
struct JsonFile {
    /// The file itself, symlinks resolved, so the write replaces the target and not the link.
    path: PathBuf,
    /// The bytes read; `None` when there was no file.
    original: Option<Vec<u8>>,
    mode: u32,
    object: Map<String, Value>,
}

impl JsonFile {
    fn read(path: &Path) -> Result<JsonFile> {
        let path = match fs::canonicalize(path) {
            Ok(real) => real,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                std::path::absolute(path).map_err(io("find the absolute path of", path))?
            }
            Err(source) => return Err(io("resolve", path)(source)),
        };
        match fs::read(&path) {
            Ok(bytes) => {
                let mode = fs::metadata(&path)
                    .map_err(io("read the permissions of", &path))?
                    .permissions()
                    .mode()
                    & 0o7777;
                let object = parse_object(&path, &bytes)?;
                Ok(JsonFile {
                    path,
                    original: Some(bytes),
                    mode,
                    object,
                })
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(JsonFile {
                path,
                original: None,
                mode: 0o600,
                object: Map::new(),
            }),
            Err(source) => Err(io("read", &path)(source)),
        }
    }

    /// Backs up the old file, if there was one, then replaces it atomically.
    fn write(&self) -> Result<Change> {
        let backup = match &self.original {
            Some(bytes) => Some(backup(&self.path, bytes, self.mode)?),
            None => {
                if let Some(dir) = self.path.parent().filter(|dir| !dir.exists()) {
                    files::ensure_private_dir(dir)?;
                }
                None
            }
        };
        files::write_atomic_mode(&self.path, &to_bytes(&self.path, &self.object)?, self.mode)?;
        Ok(Change::Written { backup })
    }
}

/// Reads a JSON object; an empty file is an empty object, as docker reads it.
fn parse_object(path: &Path, bytes: &[u8]) -> Result<Map<String, Value>> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(Map::new());
    }
    // serde_json's messages give a position and the kind of error, never the text itself.
    match serde_json::from_slice::<Value>(bytes) {
        Ok(Value::Object(object)) => Ok(object),
        Ok(_) => Err(SetupError::Unreadable {
            path: path.to_path_buf(),
            message: "holds JSON that is not an object".to_owned(),
        }),
        Err(e) => Err(SetupError::Unreadable {
            path: path.to_path_buf(),
            message: format!("is not valid JSON ({e})"),
        }),
    }
}

/// Indented with tabs and with a final newline, as docker and podman write their files.
fn to_bytes(path: &Path, object: &Map<String, Value>) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    let formatter = serde_json::ser::PrettyFormatter::with_indent(b"\t");
    let mut serializer = serde_json::Serializer::with_formatter(&mut out, formatter);
    object
        .serialize(&mut serializer)
        .map_err(|e| io("encode", path)(e.into()))?;
    out.push(b'\n');
    Ok(out)
}

/// Keeps `bytes` as `<name>.<UTC time>.bak` beside `path`, with the file's own permissions
/// (a backup holds whatever the file held), never replacing an earlier backup.
fn backup(path: &Path, bytes: &[u8], mode: u32) -> Result<PathBuf> {
    let stamp: String = crate::clock::rfc3339_now()
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .collect();
    let name = path.file_name().unwrap_or_default().to_string_lossy();
    let mut attempt = 1;
    loop {
        let suffix = if attempt == 1 {
            String::new()
        } else {
            format!("-{attempt}")
        };
        let candidate = path.with_file_name(format!("{name}.{stamp}{suffix}.bak"));
        match OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&candidate)
        {
            Ok(mut file) => {
                file.set_permissions(fs::Permissions::from_mode(mode))
                    .and_then(|()| file.write_all(bytes))
                    .and_then(|()| file.sync_all())
                    .map_err(io("write the backup", &candidate))?;
                return Ok(candidate);
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => attempt += 1,
            Err(source) => return Err(io("create the backup", &candidate)(source)),
        }
    }
}

/// Credentials kept inline in a docker-format file's `auths`: a base64 `auth` or an identity
/// token. `{}` entries (what docker records when a helper holds the secret) do not count.
pub fn plaintext_auths(config: &Map<String, Value>) -> usize {
    config
        .get("auths")
        .and_then(Value::as_object)
        .map_or(0, |auths| {
            auths
                .values()
                .filter(|entry| {
                    ["auth", "identitytoken"].iter().any(|field| {
                        entry
                            .get(field)
                            .and_then(Value::as_str)
                            .is_some_and(|v| !v.is_empty())
                    })
                })
                .count()
        })
}

/// The plaintext credentials in a docker-format file, 0 when it is missing or unreadable.
pub fn plaintext_auths_in(path: &Path) -> usize {
    fs::read(path)
        .ok()
        .and_then(|bytes| parse_object(path, &bytes).ok())
        .map_or(0, |object| plaintext_auths(&object))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_order_and_values_survive_a_round_trip() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("config.json");
        fs::write(
            &path,
            r#"{"zeta": 1, "auths": {"b": {}, "a": {"auth": "eDp5"}}, "alpha": [true, null, 2.5], "psFormat": "table {{.ID}}\t{{.Image}}"}"#,
        )
        .expect("write");
        let file = JsonFile::read(&path).expect("read");
        let keys: Vec<_> = file.object.keys().cloned().collect();
        assert_eq!(keys, ["zeta", "auths", "alpha", "psFormat"]);
        let bytes = to_bytes(&path, &file.object).expect("encode");
        let again: Map<String, Value> = serde_json::from_slice(&bytes).expect("parse");
        assert_eq!(again, file.object);
        assert_eq!(
            again["auths"]
                .as_object()
                .expect("auths")
                .keys()
                .collect::<Vec<_>>(),
            ["b", "a"]
        );
        assert!(bytes.starts_with(b"{\n\t\"zeta\": 1,\n"), "{bytes:?}");
    }

    #[test]
    fn empty_file_is_an_empty_object_and_other_json_is_refused() {
        let path = Path::new("config.json");
        assert!(parse_object(path, b" \n").expect("empty").is_empty());
        for bad in [&b"[1]"[..], b"{\"a\": ", b"nul"] {
            let error = parse_object(path, bad).expect_err("refused");
            assert!(matches!(error, SetupError::Unreadable { .. }), "{error}");
        }
    }

    #[test]
    fn plaintext_counts_only_inline_secrets() {
        let config: Map<String, Value> = serde_json::from_str(
            r#"{"auths": {"a": {"auth": "eDp5"}, "b": {}, "c": {"identitytoken": "t"}, "d": {"auth": ""}}}"#,
        )
        .expect("json");
        assert_eq!(plaintext_auths(&config), 2);
        assert_eq!(plaintext_auths(&Map::new()), 0);
    }

    #[test]
    fn backups_never_replace_each_other_and_keep_the_mode() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("config.json");
        let first = backup(&path, b"one", 0o640).expect("first");
        let second = backup(&path, b"two", 0o640).expect("second");
        assert_ne!(first, second);
        assert_eq!(fs::read(&first).expect("read"), b"one");
        assert_eq!(fs::read(&second).expect("read"), b"two");
        let mode = fs::metadata(&first).expect("stat").permissions().mode() & 0o777;
        assert_eq!(mode, 0o640);
    }
}

//! docker's `config.json` and containers' `auth.json` (the same format): the one module that
//! reads and edits them, for `coffer setup`, `coffer import`, `coffer doctor` and the search for
//! plaintext copies.
//!
//! - Reads are bounded and never block: a file that is a FIFO, a device (`/dev/zero` behind a
//!   symlink) or larger than [`MAX_LEN`] gets a clear error instead of a hang or gigabytes in
//!   memory; one that cannot be read is said to be unreadable, never taken for empty.
//! - Writes replace the file a symlink points to, never the link, keep the file's mode and key
//!   order, and copy the old file aside first. A copy that holds plaintext secrets is named
//!   `<name>.<UTC time>.plaintext.bak`, so nobody mistakes it for harmless.
//! - [`scrub`] removes imported secrets by editing the syntax tree (jsonc-parser's CST), so every
//!   byte outside the removed members stays as it was.

use std::collections::HashSet;
use std::fs::{self, File, OpenOptions};
use std::io::{ErrorKind, Read, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use base64ct::{Base64, Encoding};
use jsonc_parser::cst::{CstInputValue, CstRootNode};
use secrecy::SecretString;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use zeroize::Zeroizing;

use crate::files::FileError;

/// docker's config.json or a containers auth.json that coffer cannot read or edit.
#[derive(Debug, thiserror::Error)]
pub enum AuthFileError {
    #[error("{} {message}; coffer reads and edits only regular JSON files it can read: fix it, then run this again", path.display())]
    Refused { path: PathBuf, message: String },
    #[error(transparent)]
    File(#[from] FileError),
}

type Result<T> = std::result::Result<T, AuthFileError>;
use crate::files;
use crate::import::Found;

/// Larger files are refused: a config with a thousand logins is some 200 KB.
pub const MAX_LEN: usize = 4 << 20;

fn refused(path: &Path, message: impl Into<String>) -> AuthFileError {
    AuthFileError::Refused {
        path: path.to_path_buf(),
        message: message.into(),
    }
}

/// The file's bytes (`None`: it does not exist), read without blocking and at most
/// [`MAX_LEN`] of them, from a regular file only.
pub fn read_bounded(path: &Path) -> Result<Option<Zeroizing<Vec<u8>>>> {
    let file = match OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY)
        .open(path)
    {
        Ok(file) => file,
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(None),
        Err(e) if e.kind() == ErrorKind::PermissionDenied => {
            return Err(refused(
                path,
                "cannot be read (permission denied): `ls -l` shows who owns it",
            ));
        }
        Err(e) => return Err(FileError::io("open", path)(e).into()),
    };
    let metadata = file.metadata().map_err(FileError::io("inspect", path))?;
    if !metadata.is_file() {
        return Err(refused(
            path,
            "is not a regular file (a FIFO, a device or a socket)",
        ));
    }
    let mut bytes = Zeroizing::new(Vec::with_capacity(
        usize::try_from(metadata.len())
            .unwrap_or(MAX_LEN)
            .min(MAX_LEN)
            + 1,
    ));
    (&file)
        .take(MAX_LEN as u64 + 1)
        .read_to_end(&mut bytes)
        .map_err(FileError::io("read", path))?;
    if bytes.len() > MAX_LEN {
        return Err(refused(
            path,
            format!("is larger than {} MiB", MAX_LEN >> 20),
        ));
    }
    Ok(Some(bytes))
}

/// A JSON object read from a file, with what it takes to write it back faithfully: key order
/// (serde_json's `preserve_order`), the file's permissions, and a link left a link.
/// Its `Debug` names the file and its top-level keys only: `auths` holds base64 passwords.
pub struct AuthFile {
    /// The file itself, symlinks resolved, so a write replaces the target and not the link.
    pub path: PathBuf,
    /// The bytes read; `None` when there was no file.
    original: Option<Zeroizing<Vec<u8>>>,
    mode: u32,
    pub object: Map<String, Value>,
}

impl std::fmt::Debug for AuthFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuthFile")
            .field("path", &self.path)
            .field("mode", &format_args!("{:o}", self.mode))
            .field("keys", &self.object.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

/// What a write did: the old file, if there was one, is kept at `backup`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Written {
    pub backup: Option<PathBuf>,
}

impl AuthFile {
    /// Reads the file at `path` (an empty object when there is none).
    pub fn read(path: &Path) -> Result<AuthFile> {
        let path = resolve(path)?;
        let Some(bytes) = read_bounded(&path)? else {
            return Ok(AuthFile {
                path,
                original: None,
                mode: 0o600,
                object: Map::new(),
            });
        };
        let mode = fs::metadata(&path)
            .map_err(FileError::io("read the permissions of", &path))?
            .permissions()
            .mode()
            & 0o7777;
        let object = parse_object(&path, &bytes)?;
        Ok(AuthFile {
            path,
            original: Some(bytes),
            mode,
            object,
        })
    }

    pub fn exists(&self) -> bool {
        self.original.is_some()
    }

    /// A top-level string setting, e.g. `credsStore`.
    pub fn string(&self, key: &str) -> Option<&str> {
        self.object.get(key).and_then(Value::as_str)
    }

    /// Credentials kept inline in `auths`, not through a helper.
    pub fn plaintext(&self) -> usize {
        plaintext_auths(&self.object)
    }

    /// Backs up the old file, if there was one, then replaces it atomically.
    pub fn write(&self) -> Result<Written> {
        let backup = match &self.original {
            Some(bytes) => {
                let plaintext = parse_object(&self.path, bytes)
                    .map(|object| plaintext_auths(&object) > 0)
                    .unwrap_or(true);
                Some(backup(&self.path, bytes, self.mode, plaintext)?)
            }
            None => {
                if let Some(dir) = self.path.parent().filter(|dir| !dir.exists()) {
                    files::ensure_private_dir(dir)?;
                }
                None
            }
        };
        files::write_atomic_mode(&self.path, &to_bytes(&self.path, &self.object)?, self.mode)?;
        Ok(Written { backup })
    }

    /// Every credential in the plaintext `auths`: `auth` is base64 of `user:password`; an
    /// identity token is kept with the username `<token>`, as docker itself stores it through a
    /// helper.
    pub fn credentials(&self) -> Result<Vec<Found>> {
        let Some(bytes) = &self.original else {
            return Err(refused(&self.path, "does not exist"));
        };
        credentials_in(&self.path, bytes)
    }
}

/// The file a path names, symlinks resolved; a path that does not exist yet, made absolute.
fn resolve(path: &Path) -> Result<PathBuf> {
    match fs::canonicalize(path) {
        Ok(real) => Ok(real),
        Err(e) if e.kind() == ErrorKind::NotFound => {
            Ok(std::path::absolute(path)
                .map_err(FileError::io("find the absolute path of", path))?)
        }
        Err(source) => Err(FileError::io("resolve", path)(source).into()),
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
        Ok(_) => Err(refused(path, "holds JSON that is not an object")),
        Err(e) => Err(refused(path, format!("is not valid JSON ({e})"))),
    }
}

/// Indented with tabs and with a final newline, as docker and podman write their files.
fn to_bytes(path: &Path, object: &Map<String, Value>) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    let formatter = serde_json::ser::PrettyFormatter::with_indent(b"\t");
    let mut serializer = serde_json::Serializer::with_formatter(&mut out, formatter);
    object
        .serialize(&mut serializer)
        .map_err(|e| FileError::io("encode", path)(e.into()))?;
    out.push(b'\n');
    Ok(out)
}

/// The part of a backup's name that says it holds plaintext secrets.
pub const PLAINTEXT_MARK: &str = ".plaintext.bak";

/// Keeps `bytes` as `<name>.<UTC time>.bak` beside `path` (`.plaintext.bak` when they hold
/// plaintext secrets), with the file's own permissions (a backup holds whatever the file held),
/// never replacing an earlier backup.
fn backup(path: &Path, bytes: &[u8], mode: u32, plaintext: bool) -> Result<PathBuf> {
    let stamp: String = crate::clock::rfc3339_now()
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .collect();
    let name = path.file_name().unwrap_or_default().to_string_lossy();
    let kind = if plaintext { PLAINTEXT_MARK } else { ".bak" };
    let mut attempt = 1;
    loop {
        let suffix = if attempt == 1 {
            String::new()
        } else {
            format!("-{attempt}")
        };
        let candidate = path.with_file_name(format!("{name}.{stamp}{suffix}{kind}"));
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
                    .map_err(FileError::io("write the backup", &candidate))?;
                return Ok(candidate);
            }
            Err(e) if e.kind() == ErrorKind::AlreadyExists => attempt += 1,
            Err(source) => {
                return Err(FileError::io("create the backup", &candidate)(source).into());
            }
        }
    }
}

/// Credentials kept inline in a docker-format file's `auths`: a base64 `auth`, an identity
/// token or a password. `{}` entries (what docker records when a helper holds the secret) do
/// not count.
pub fn plaintext_auths(config: &Map<String, Value>) -> usize {
    config
        .get("auths")
        .and_then(Value::as_object)
        .map_or(0, |auths| {
            auths
                .values()
                .filter(|entry| {
                    SECRET_MEMBERS.iter().any(|field| {
                        entry
                            .get(field)
                            .and_then(Value::as_str)
                            .is_some_and(|v| !v.is_empty())
                    })
                })
                .count()
        })
}

/// The members of an `auths` entry that hold secrets; `scrub` removes exactly these.
const SECRET_MEMBERS: [&str; 4] = ["auth", "identitytoken", "password", "registrytoken"];

/// An `auths` entry as docker, podman and skopeo write it.
#[derive(Deserialize, Default)]
#[serde(default)]
struct AuthEntry {
    auth: Option<Zeroizing<String>>,
    identitytoken: Option<Zeroizing<String>>,
    username: Option<String>,
    password: Option<Zeroizing<String>>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct AuthsFile {
    auths: std::collections::BTreeMap<String, AuthEntry>,
}

fn credentials_in(path: &Path, bytes: &[u8]) -> Result<Vec<Found>> {
    let file: AuthsFile = serde_json::from_slice(bytes).map_err(|e| {
        refused(
            path,
            format!(
                "is not valid JSON (line {}, column {})",
                e.line(),
                e.column()
            ),
        )
    })?;
    let mut found = Vec::new();
    for (server_url, entry) in file.auths {
        let bad = |what: &str| refused(path, format!("has an entry for {server_url} {what}"));
        if let Some(token) = entry.identitytoken.filter(|t| !t.is_empty()) {
            found.push(Found {
                server_url,
                username: "<token>".to_owned(),
                secret: SecretString::from(token.as_str()),
            });
        } else if let Some(auth) = entry.auth.filter(|a| !a.is_empty()) {
            let decoded = Zeroizing::new(
                Base64::decode_vec(auth.trim())
                    .map_err(|_| bad("with an `auth` that is not base64"))?,
            );
            let text = std::str::from_utf8(&decoded)
                .map_err(|_| bad("with an `auth` that is not UTF-8"))?;
            let (username, password) = text
                .split_once(':')
                .ok_or_else(|| bad("with an `auth` without `user:password`"))?;
            found.push(Found {
                server_url,
                username: username.to_owned(),
                secret: SecretString::from(password),
            });
        } else if let (Some(username), Some(password)) = (entry.username, entry.password) {
            found.push(Found {
                server_url,
                username,
                secret: SecretString::from(password.as_str()),
            });
        }
    }
    Ok(found)
}

/// How the scrubbed file keeps its credentials reachable: docker through `credsStore`,
/// podman and skopeo through `credHelpers` per registry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    CredsStore,
    CredHelpers,
}

/// What `scrub` changed.
#[derive(Debug)]
pub struct Scrubbed {
    /// The file edited: symlinks resolved.
    pub path: PathBuf,
    /// The original, plaintext secrets and all; `None` when nothing was removed.
    pub backup: Option<PathBuf>,
    /// Registries whose secret members were removed.
    pub registries: Vec<String>,
    /// The `credsStore` or `credHelpers` members added so clients ask coffer.
    pub routed: Vec<String>,
    /// A `credsStore` naming another helper, left as it is.
    pub other_creds_store: Option<String>,
}

/// Removes the secret members of `registries`' `auths` entries from the JSON file at `path`
/// (the file a symlink points to), after copying it to a `.plaintext.bak` backup. The member,
/// its separator and the whitespace before it go; every other byte stays. Where nothing routes
/// the client to coffer yet, `route` adds `"credsStore": "coffer"` or a `credHelpers` member per
/// registry, so the credentials stay reachable. The file is replaced atomically, 0600 or
/// narrower.
pub fn scrub(path: &Path, registries: &[String], route: Route) -> Result<Scrubbed> {
    let path = resolve(path)?;
    let bytes = read_bounded(&path)?.ok_or_else(|| refused(&path, "does not exist"))?;
    let mode = fs::metadata(&path)
        .map_err(FileError::io("read the permissions of", &path))?
        .permissions()
        .mode()
        & 0o7777;
    let original = std::str::from_utf8(&bytes).map_err(|_| refused(&path, "is not UTF-8"))?;
    let root = CstRootNode::parse(original, &Default::default())
        .map_err(|e| refused(&path, format!("cannot be edited: {e}")))?;
    let object = root
        .object_value()
        .ok_or_else(|| refused(&path, "is not a JSON object"))?;
    let mut scrubbed = Scrubbed {
        path: path.clone(),
        backup: None,
        registries: Vec::new(),
        routed: Vec::new(),
        other_creds_store: None,
    };
    if let Some(auths) = object.object_value("auths") {
        // One pass over the file's entries: a lookup per registry would be quadratic.
        let wanted: HashSet<&str> = registries.iter().map(String::as_str).collect();
        for prop in auths.properties() {
            let Some(registry) = prop.name().and_then(|name| name.decoded_value().ok()) else {
                continue;
            };
            let Some(entry) = prop.object_value().filter(|_| wanted.contains(&*registry)) else {
                continue;
            };
            let mut removed = false;
            for member in SECRET_MEMBERS {
                if let Some(prop) = entry.get(member) {
                    prop.remove();
                    removed = true;
                }
            }
            if removed {
                scrubbed.registries.push(registry);
            }
        }
    }
    let value_of = |prop: jsonc_parser::cst::CstObjectProp| {
        prop.value()
            .and_then(|v| v.as_string_lit())
            .and_then(|s| s.decoded_value().ok())
    };
    match route {
        Route::CredsStore => match object.get("credsStore").map(value_of) {
            None => {
                object.append("credsStore", CstInputValue::String("coffer".into()));
                scrubbed.routed.push("credsStore".into());
            }
            Some(Some(name)) if name == "coffer" => {}
            Some(name) => scrubbed.other_creds_store = Some(name.unwrap_or_default()),
        },
        Route::CredHelpers => {
            let helpers = object.object_value_or_set("credHelpers");
            let routed: HashSet<String> = helpers
                .properties()
                .iter()
                .filter_map(|prop| prop.name()?.decoded_value().ok())
                .collect();
            for registry in &scrubbed.registries {
                if !routed.contains(registry) {
                    helpers.append(registry, CstInputValue::String("coffer".into()));
                    scrubbed.routed.push(format!("credHelpers.{registry}"));
                }
            }
        }
    }
    if scrubbed.registries.is_empty() {
        return Ok(scrubbed);
    }
    let edited = Zeroizing::new(root.to_string());
    // The edit must parse and hold no imported secret member any more.
    let check: Value = serde_json::from_str(&edited)
        .map_err(|_| refused(&path, "did not parse after editing; nothing was changed"))?;
    let leftover = scrubbed.registries.iter().any(|registry| {
        SECRET_MEMBERS
            .iter()
            .any(|m| check["auths"][registry.as_str()].get(*m).is_some())
    });
    if leftover {
        return Err(refused(
            &path,
            "still held a secret after editing; nothing was changed",
        ));
    }
    scrubbed.backup = Some(backup(&path, &bytes, 0o600, true)?);
    // A file that held secrets becomes private to its user, whatever else it keeps.
    files::write_atomic_mode(&path, edited.as_bytes(), mode & !0o077)?;
    Ok(scrubbed)
}

/// A file holding plaintext logins: one a tool reads (`live`), or a copy of one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlaintextFile {
    pub path: PathBuf,
    pub logins: usize,
    pub live: bool,
}

impl PlaintextFile {
    /// The one piece of advice setup, import and doctor give for it.
    pub fn advice(&self) -> String {
        if self.live {
            let tool = if self.path.file_name().is_some_and(|n| n == "config.json") {
                "docker"
            } else {
                "podman"
            };
            scrub_advice(tool, &self.path)
        } else {
            "check that your logins work through coffer (`coffer ls`, a pull), then \
             `coffer forget-plaintext` deletes every plaintext copy"
                .to_owned()
        }
    }
}

/// How to move the plaintext logins of `path`, a file `coffer import TOOL` reads, into coffer.
pub fn scrub_advice(tool: &str, path: &Path) -> String {
    format!(
        "`coffer import {tool} --file {} --scrub` moves them into coffer and removes them from \
         the file",
        path.display()
    )
}

/// Every file in `dirs` (not below) that holds plaintext logins: the files the tools read
/// (`config.json`, `auth.json`) and any copy of them (backups, by whoever made them). Files
/// that cannot be read or parsed are skipped: they hold nothing this can find.
pub fn plaintext_files(dirs: &[PathBuf]) -> Vec<PlaintextFile> {
    let mut found = Vec::new();
    for dir in dirs {
        let Ok(entries) = fs::read_dir(dir) else {
            continue;
        };
        let mut paths: Vec<PathBuf> = entries
            .flatten()
            .filter(|e| e.file_type().is_ok_and(|t| t.is_file()))
            .map(|e| e.path())
            .filter(|p| {
                let name = p.file_name().unwrap_or_default().to_string_lossy();
                name.contains(".json") || name.ends_with(".bak") || name.contains("backup")
            })
            .collect();
        paths.sort();
        for path in paths {
            if found.iter().any(|f: &PlaintextFile| f.path == path) {
                continue;
            }
            let logins = read_bounded(&path)
                .ok()
                .flatten()
                .and_then(|bytes| parse_object(&path, &bytes).ok())
                .map_or(0, |object| plaintext_auths(&object));
            if logins > 0 {
                let name = path.file_name().unwrap_or_default();
                let live = name == "config.json" || name == "auth.json";
                found.push(PlaintextFile { path, logins, live });
            }
        }
    }
    found
}

/// `$DOCKER_CONFIG/config.json`, or `~/.docker/config.json`: where docker reads it (`None`
/// without a home directory).
pub fn docker_config() -> Option<PathBuf> {
    match std::env::var_os("DOCKER_CONFIG").filter(|v| !v.is_empty()) {
        Some(dir) => Some(PathBuf::from(dir).join("config.json")),
        None => {
            directories::BaseDirs::new().map(|dirs| dirs.home_dir().join(".docker/config.json"))
        }
    }
}

/// Where docker and podman keep their configuration: the folders searched for plaintext.
pub fn config_dirs() -> Vec<PathBuf> {
    let var = |name: &str| {
        std::env::var_os(name)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
    };
    let home = var("HOME");
    let mut dirs = Vec::new();
    if let Ok(config) = docker_config().ok_or(())
        && let Some(dir) = config.parent()
    {
        dirs.push(dir.to_path_buf());
    }
    dirs.extend(home.as_ref().map(|h| h.join(".docker")));
    dirs.extend(var("XDG_RUNTIME_DIR").map(|d| d.join("containers")));
    dirs.extend(
        var("XDG_CONFIG_HOME")
            .or_else(|| home.as_ref().map(|h| h.join(".config")))
            .map(|d| d.join("containers")),
    );
    dirs.extend(var("REGISTRY_AUTH_FILE").and_then(|f| f.parent().map(Path::to_path_buf)));
    let mut unique = Vec::new();
    for dir in dirs {
        let real = fs::canonicalize(&dir).unwrap_or(dir);
        if !unique.contains(&real) {
            unique.push(real);
        }
    }
    unique
}

/// Deletes the copies (never the live files: their logins must be imported first).
pub fn remove_copies(found: &[PlaintextFile]) -> Result<Vec<PathBuf>> {
    let mut removed = Vec::new();
    for copy in found.iter().filter(|f| !f.live) {
        fs::remove_file(&copy.path).map_err(FileError::io("remove", &copy.path))?;
        removed.push(copy.path.clone());
    }
    if let Some(dir) = removed.first().and_then(|p| p.parent()) {
        let _ = File::open(dir).and_then(|d| d.sync_all());
    }
    Ok(removed)
}

#[cfg(test)]
mod tests {
    use secrecy::ExposeSecret;

    use super::*;

    /// As docker 28 writes it (json.MarshalIndent with tabs), with one login by password, one
    /// by identity token, one through a helper, and a setting of its own.
    const DOCKER_CONFIG: &str = "{\n\t\"auths\": {\n\t\t\"ghcr.io\": {\n\t\t\t\"auth\": \"YWxpY2U6cGFzczp3b3Jk\"\n\t\t},\n\t\t\"https://index.docker.io/v1/\": {\n\t\t\t\"auth\": \"\",\n\t\t\t\"identitytoken\": \"refresh-me\"\n\t\t},\n\t\t\"quay.io\": {}\n\t},\n\t\"psFormat\": \"table {{.ID}}\\u003c\"\n}";

    fn write(dir: &Path, text: &str) -> PathBuf {
        let path = dir.join("config.json");
        fs::write(&path, text).expect("write");
        path
    }

    #[test]
    fn key_order_and_values_survive_a_round_trip() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = write(
            dir.path(),
            r#"{"zeta": 1, "auths": {"b": {}, "a": {"auth": "eDp5"}}, "alpha": [true, null, 2.5], "psFormat": "table {{.ID}}\t{{.Image}}"}"#,
        );
        let file = AuthFile::read(&path).expect("read");
        let keys: Vec<_> = file.object.keys().cloned().collect();
        assert_eq!(keys, ["zeta", "auths", "alpha", "psFormat"]);
        let bytes = to_bytes(&path, &file.object).expect("encode");
        let again: Map<String, Value> = serde_json::from_slice(&bytes).expect("parse");
        assert_eq!(again, file.object);
        assert!(bytes.starts_with(b"{\n\t\"zeta\": 1,\n"), "{bytes:?}");
    }

    #[test]
    fn empty_file_is_an_empty_object_and_other_json_is_refused() {
        let path = Path::new("config.json");
        assert!(parse_object(path, b" \n").expect("empty").is_empty());
        for bad in [&b"[1]"[..], b"{\"a\": ", b"nul"] {
            let error = parse_object(path, bad).expect_err("refused");
            assert!(matches!(error, AuthFileError::Refused { .. }), "{error}");
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
    fn backups_never_replace_each_other_keep_the_mode_and_say_plaintext() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("config.json");
        let first = backup(&path, b"one", 0o640, false).expect("first");
        let second = backup(&path, b"two", 0o640, true).expect("second");
        let third = backup(&path, b"three", 0o640, true).expect("third");
        assert_ne!(second, third);
        assert!(first.to_string_lossy().ends_with(".bak"));
        assert!(!first.to_string_lossy().contains("plaintext"));
        assert!(second.to_string_lossy().ends_with(PLAINTEXT_MARK));
        assert_eq!(fs::read(&second).expect("read"), b"two");
        let mode = fs::metadata(&first).expect("stat").permissions().mode() & 0o777;
        assert_eq!(mode, 0o640);
    }

    #[test]
    fn fifos_devices_and_huge_files_are_refused_at_once() {
        let dir = tempfile::tempdir().expect("temp dir");
        let link = dir.path().join("config.json");
        std::os::unix::fs::symlink("/dev/zero", &link).expect("symlink");
        let error = AuthFile::read(&link).expect_err("device").to_string();
        assert!(error.contains("not a regular file"), "{error}");

        let fifo = dir.path().join("auth.json");
        let status = std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .expect("mkfifo");
        assert!(status.success());
        let error = AuthFile::read(&fifo).expect_err("fifo").to_string();
        assert!(error.contains("not a regular file"), "{error}");

        let big = dir.path().join("big.json");
        File::create(&big)
            .and_then(|f| f.set_len(MAX_LEN as u64 + 1))
            .expect("big");
        let error = AuthFile::read(&big).expect_err("big").to_string();
        assert!(error.contains("larger than"), "{error}");
    }

    #[test]
    fn auths_decode_passwords_and_keep_identity_tokens() {
        let dir = tempfile::tempdir().expect("temp dir");
        let file = AuthFile::read(&write(dir.path(), DOCKER_CONFIG)).expect("read");
        let found = file.credentials().expect("import");
        let found: Vec<(&str, &str, &str)> = found
            .iter()
            .map(|f| {
                (
                    f.server_url.as_str(),
                    f.username.as_str(),
                    f.secret.expose_secret(),
                )
            })
            .collect();
        assert_eq!(
            found,
            [
                ("ghcr.io", "alice", "pass:word"),
                ("https://index.docker.io/v1/", "<token>", "refresh-me"),
            ]
        );
    }

    #[test]
    fn bad_auth_is_refused_without_quoting_it() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = write(
            dir.path(),
            r#"{"auths":{"r.example":{"auth":"!!secret!!"}}}"#,
        );
        let error = AuthFile::read(&path)
            .and_then(|f| f.credentials())
            .expect_err("not base64")
            .to_string();
        assert!(
            error.contains("r.example") && !error.contains("secret!!"),
            "{error}"
        );
    }

    #[test]
    fn scrub_removes_only_the_secret_members_and_routes_docker_to_coffer() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = write(dir.path(), DOCKER_CONFIG);
        let registries = [
            "ghcr.io".to_owned(),
            "https://index.docker.io/v1/".to_owned(),
        ];
        let scrubbed = scrub(&path, &registries, Route::CredsStore).expect("scrub");
        assert_eq!(scrubbed.registries, registries);
        assert_eq!(scrubbed.routed, ["credsStore"]);
        assert_eq!(
            fs::read_to_string(&path).expect("read"),
            "{\n\t\"auths\": {\n\t\t\"ghcr.io\": {},\n\t\t\"https://index.docker.io/v1/\": {},\n\t\t\"quay.io\": {}\n\t},\n\t\"psFormat\": \"table {{.ID}}\\u003c\",\n\t\"credsStore\": \"coffer\"\n}"
        );
        let backup = scrubbed.backup.expect("backup");
        assert!(backup.to_string_lossy().ends_with(PLAINTEXT_MARK));
        assert_eq!(fs::read_to_string(&backup).expect("backup"), DOCKER_CONFIG);
    }

    #[test]
    fn scrub_through_a_symlink_edits_the_target_and_keeps_the_link() {
        let dir = tempfile::tempdir().expect("temp dir");
        fs::create_dir(dir.path().join("real")).expect("mkdir");
        let target = write(&dir.path().join("real"), DOCKER_CONFIG);
        let link = dir.path().join("config.json");
        std::os::unix::fs::symlink(&target, &link).expect("symlink");
        scrub(&link, &["ghcr.io".to_owned()], Route::CredsStore).expect("scrub");
        assert!(
            fs::symlink_metadata(&link)
                .expect("stat")
                .file_type()
                .is_symlink()
        );
        let text = fs::read_to_string(&target).expect("target");
        assert!(!text.contains("YWxpY2U6cGFzczp3b3Jk"), "{text}");
    }

    #[test]
    fn plaintext_files_finds_live_files_and_copies_and_removes_only_copies() {
        let dir = tempfile::tempdir().expect("temp dir");
        write(dir.path(), DOCKER_CONFIG);
        fs::write(dir.path().join("config.json.1.bak"), DOCKER_CONFIG).expect("copy");
        fs::write(dir.path().join("config.json.2.bak"), "{}").expect("clean copy");
        fs::write(dir.path().join("notes.txt"), DOCKER_CONFIG).expect("other");
        let found = plaintext_files(&[dir.path().to_path_buf()]);
        let seen: Vec<(String, usize, bool)> = found
            .iter()
            .map(|f| {
                (
                    f.path
                        .file_name()
                        .expect("name")
                        .to_string_lossy()
                        .into_owned(),
                    f.logins,
                    f.live,
                )
            })
            .collect();
        assert_eq!(
            seen,
            [
                ("config.json".to_owned(), 2, true),
                ("config.json.1.bak".to_owned(), 2, false)
            ]
        );
        assert!(found[0].advice().contains("coffer import docker"));
        assert!(found[1].advice().contains("coffer forget-plaintext"));
        let removed = remove_copies(&found).expect("remove");
        assert_eq!(removed, [dir.path().join("config.json.1.bak")]);
        assert!(dir.path().join("config.json").exists());
        assert!(dir.path().join("config.json.2.bak").exists());
    }
}

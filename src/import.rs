//! Credentials from where people have them today: the plaintext `auths` of docker's config.json
//! and of podman/skopeo's auth.json, and the stores of other credential helpers (pass,
//! secretservice, ...) read through those helpers' own `list` and `get`.
//!
//! `scrub` then removes the imported secrets from a JSON file by editing its syntax tree
//! (jsonc-parser's CST), so every byte outside the removed members stays as it was.

use std::collections::{BTreeMap, HashSet};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use base64ct::{Base64, Encoding};
use jsonc_parser::cst::{CstInputValue, CstRootNode};
use secrecy::SecretString;
use serde::Deserialize;
use zeroize::Zeroizing;

use crate::error::{Error, Result};
use crate::files;

/// One credential found in a source.
#[derive(Debug)]
pub struct Found {
    pub server_url: String,
    pub username: String,
    pub secret: SecretString,
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
    auths: BTreeMap<String, AuthEntry>,
}

fn import_error(path: &Path, what: impl std::fmt::Display) -> Error {
    Error::Import(format!("{}: {what}", path.display()))
}

/// Every credential in the plaintext `auths` of a docker config.json or containers auth.json:
/// `auth` is base64 of `user:password`; an identity token is kept with the username `<token>`,
/// as docker itself stores it through a helper.
pub fn from_auths_file(path: &Path) -> Result<Vec<Found>> {
    let bytes = Zeroizing::new(std::fs::read(path).map_err(Error::io("read", path))?);
    let file: AuthsFile = serde_json::from_slice(&bytes).map_err(|e| {
        import_error(
            path,
            format_args!("not valid JSON (line {}, column {})", e.line(), e.column()),
        )
    })?;
    let mut found = Vec::new();
    for (server_url, entry) in file.auths {
        let bad =
            |what: &str| import_error(path, format_args!("the entry for {server_url} {what}"));
        if let Some(token) = entry.identitytoken.filter(|t| !t.is_empty()) {
            found.push(Found {
                server_url,
                username: "<token>".to_owned(),
                secret: SecretString::from(token.as_str()),
            });
        } else if let Some(auth) = entry.auth.filter(|a| !a.is_empty()) {
            let decoded = Zeroizing::new(
                Base64::decode_vec(auth.trim())
                    .map_err(|_| bad("has an `auth` that is not base64"))?,
            );
            let text = std::str::from_utf8(&decoded)
                .map_err(|_| bad("has an `auth` that is not UTF-8"))?;
            let (username, password) = text
                .split_once(':')
                .ok_or_else(|| bad("has an `auth` without `user:password`"))?;
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

/// Every credential of `docker-credential-<helper>`, through its own `list` and `get`.
pub fn from_helper(helper: &str) -> Result<Vec<Found>> {
    let program = format!("docker-credential-{helper}");
    let list = run_helper(&program, "list", "unused")?;
    let list: BTreeMap<String, String> = serde_json::from_slice(&list)
        .map_err(|_| Error::Import(format!("{program} list did not answer a JSON object")))?;
    #[derive(Deserialize)]
    struct Got {
        #[serde(rename = "Username")]
        username: String,
        #[serde(rename = "Secret")]
        secret: Zeroizing<String>,
    }
    list.into_keys()
        .map(|server_url| {
            let reply = run_helper(&program, "get", &server_url)?;
            let got: Got = serde_json::from_slice(&reply).map_err(|_| {
                Error::Import(format!(
                    "{program} get {server_url} did not answer credentials"
                ))
            })?;
            Ok(Found {
                server_url,
                username: got.username,
                secret: SecretString::from(got.secret.as_str()),
            })
        })
        .collect()
}

fn run_helper(program: &str, action: &str, input: &str) -> Result<Zeroizing<Vec<u8>>> {
    let mut child = Command::new(program)
        .arg(action)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .map_err(|e| Error::Import(format!("cannot run {program}: {e}; is it on PATH?")))?;
    if let Some(mut stdin) = child.stdin.take() {
        // A helper that exits without reading is reported by its status below.
        let _ = stdin.write_all(input.as_bytes());
    }
    let out = child
        .wait_with_output()
        .map_err(|e| Error::Import(format!("{program} {action}: {e}")))?;
    let stdout = Zeroizing::new(out.stdout);
    if !out.status.success() {
        // A helper's error is one line on stdout; it never holds the secret it failed to get.
        let message = String::from_utf8_lossy(&stdout).trim().to_owned();
        return Err(Error::Import(format!(
            "{program} {action} failed ({}): {message}",
            out.status
        )));
    }
    Ok(stdout)
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
    pub backup: PathBuf,
    /// Registries whose secret members were removed.
    pub registries: Vec<String>,
    /// The `credsStore` or `credHelpers` members added so clients ask coffer.
    pub routed: Vec<String>,
    /// A `credsStore` naming another helper, left as it is.
    pub other_creds_store: Option<String>,
}

/// Removes the secret members of `registries`' `auths` entries from the JSON file at `path`,
/// after copying it to `<path>.coffer-backup` (0600). The member, its separator and the
/// whitespace before it go; every other byte stays. Where nothing routes the client to coffer
/// yet, `route` adds `"credsStore": "coffer"` or a `credHelpers` member per registry, so the
/// credentials stay reachable. The file is replaced atomically.
pub fn scrub(path: &Path, registries: &[String], route: Route) -> Result<Scrubbed> {
    let original = Zeroizing::new(std::fs::read_to_string(path).map_err(Error::io("read", path))?);
    let root = CstRootNode::parse(&original, &Default::default())
        .map_err(|e| import_error(path, format_args!("cannot be edited: {e}")))?;
    let object = root
        .object_value()
        .ok_or_else(|| import_error(path, "is not a JSON object"))?;
    let mut scrubbed = Scrubbed {
        backup: backup_path(path),
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
    let check: serde_json::Value = serde_json::from_str(&edited)
        .map_err(|_| import_error(path, "the edited file did not parse; nothing was changed"))?;
    let leftover = scrubbed.registries.iter().any(|registry| {
        SECRET_MEMBERS
            .iter()
            .any(|m| check["auths"][registry.as_str()].get(*m).is_some())
    });
    if leftover {
        return Err(import_error(
            path,
            "a secret was still there after editing; nothing was changed",
        ));
    }
    files::write_atomic(&scrubbed.backup, original.as_bytes())?;
    files::write_atomic(path, edited.as_bytes())?;
    Ok(scrubbed)
}

pub fn backup_path(path: &Path) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(".coffer-backup");
    path.with_file_name(name)
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
        std::fs::write(&path, text).expect("write");
        path
    }

    #[test]
    fn auths_decode_passwords_and_keep_identity_tokens() {
        let dir = tempfile::tempdir().expect("temp dir");
        let found = from_auths_file(&write(dir.path(), DOCKER_CONFIG)).expect("import");
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
        let error = from_auths_file(&path).expect_err("not base64").to_string();
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
            std::fs::read_to_string(&path).expect("read"),
            "{\n\t\"auths\": {\n\t\t\"ghcr.io\": {},\n\t\t\"https://index.docker.io/v1/\": {},\n\t\t\"quay.io\": {}\n\t},\n\t\"psFormat\": \"table {{.ID}}\\u003c\",\n\t\"credsStore\": \"coffer\"\n}"
        );
        assert_eq!(
            std::fs::read_to_string(&scrubbed.backup).expect("backup"),
            DOCKER_CONFIG
        );
    }
}

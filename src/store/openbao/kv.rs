//! The layout in the KV secrets engine: one KV entry per stored key at
//! `<mount>/<prefix>/<escaped key>`, with string fields that `bao kv put` can write too:
//!
//! | field         | holds                                                        |
//! |---------------|--------------------------------------------------------------|
//! | `username`    | the registry user name (required)                            |
//! | `secret`      | the password or token (required)                             |
//! | `server_url`  | the URL as the client sent it (default: the key)             |
//! | `description` | whose credential it is                                       |
//! | `created`, `updated` | Unix seconds, as decimal text                         |
//!
//! Other fields (a `.dockerconfigjson` an operator keeps beside them) are kept on every write.
//!
//! A key is a registry host with an optional `scheme://` and `/path`; it becomes one KV name:
//! ASCII letters, digits and `-_.:@` stay as they are (so `ghcr.io` and `registry.local:5000`
//! are written as such), every other byte is `%XX` (`https:%2F%2Fquay.io`,
//! `registry.example%2Fteam`), and so is a leading `.` (so no name is `..`).
//!
//! KV version 2 (read from the mount) is addressed through `data/`, `metadata/` and `delete/`,
//! and every write is a check-and-set against the version read; version 1 has neither, so
//! there the last writer wins.

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, percent_decode_str, utf8_percent_encode};
use reqwest::Method;
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use serde_json::{Map, Value};

use super::client::{Call, Client};
use super::error::BaoError;
use super::settings;
use crate::store::Entry;

const KEPT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b':')
    .remove(b'@');

/// The KV name of a stored key: a key without a scheme (`//ghcr.io`, as `docker login ghcr.io`
/// stores it) is named by its host and path alone.
pub fn escape(key: &str) -> String {
    let bare = key.strip_prefix("//").unwrap_or(key);
    let escaped = utf8_percent_encode(bare, KEPT).to_string();
    match escaped.strip_prefix('.') {
        Some(rest) => format!("%2E{rest}"),
        None => escaped,
    }
}

/// The stored key of a KV name, if it is one coffer could have written.
pub fn unescape(name: &str) -> Option<String> {
    let bare = percent_decode_str(name).decode_utf8().ok()?.into_owned();
    if bare.is_empty() || bare.starts_with('/') {
        return None;
    }
    let key = if bare.contains("://") {
        bare
    } else {
        format!("//{bare}")
    };
    (escape(&key) == name).then_some(key)
}

/// Which KV engine the mount runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, Deserialize)]
pub enum Version {
    V1,
    V2,
}

/// Where the entries are, checked once: a mount and a prefix of plain segments.
#[derive(Debug, Clone)]
pub struct Layout {
    mount: String,
    prefix: Vec<String>,
}

impl Layout {
    pub fn new(mount: &str, prefix: &str) -> Result<Layout, BaoError> {
        fn bad<'v>(
            what: &'static str,
            value: &'v str,
        ) -> impl FnOnce(&'static str) -> BaoError + 'v {
            move |problem| BaoError::Layout {
                what,
                value: value.to_owned(),
                problem,
            }
        }
        Ok(Layout {
            mount: settings::mount_segments(mount)
                .map_err(bad("the KV mount", mount))?
                .join("/"),
            prefix: settings::segments(prefix).map_err(bad("the prefix", prefix))?,
        })
    }

    pub fn mount(&self) -> &str {
        &self.mount
    }

    /// The path people give `bao kv`: `secret/coffer/registries/ghcr.io`.
    pub fn shown(&self, key: &str) -> String {
        let mut parts = vec![self.mount.clone()];
        parts.extend(self.prefix.iter().cloned());
        parts.push(escape(key));
        parts.join("/")
    }

    /// The API path of `key` (or of the prefix folder, for `None`) under `area` (`data`,
    /// `metadata`, `delete` on v2; nothing on v1).
    fn path(&self, version: Version, area: &str, name: Option<&str>) -> Vec<String> {
        let mut parts: Vec<String> = self.mount.split('/').map(str::to_owned).collect();
        if version == Version::V2 {
            parts.push(area.to_owned());
        }
        parts.extend(self.prefix.iter().cloned());
        if let Some(name) = name {
            parts.push(name.to_owned());
        }
        parts
    }
}

/// A KV entry as read: its fields, and the version a check-and-set write must name (0 when
/// nothing was ever written there).
pub struct Read {
    pub fields: Option<Map<String, Value>>,
    pub version: u64,
}

impl std::fmt::Debug for Read {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Read")
            .field("present", &self.fields.is_some())
            .field("version", &self.version)
            .finish()
    }
}

/// The outcome of a check-and-set write.
#[derive(Debug, PartialEq, Eq)]
pub enum Written {
    Done,
    /// Someone wrote in between: read again.
    Conflict,
}

#[derive(Deserialize)]
struct V2Data {
    data: Option<V2Inner>,
}
#[derive(Deserialize)]
struct V2Inner {
    data: Option<Map<String, Value>>,
    metadata: Option<V2Meta>,
}
#[derive(Deserialize)]
struct V2Meta {
    #[serde(default)]
    version: u64,
}
#[derive(Deserialize)]
struct V1Data {
    data: Option<Map<String, Value>>,
}
#[derive(Deserialize)]
struct Keys {
    data: KeyList,
}
#[derive(Deserialize)]
struct KeyList {
    #[serde(default)]
    keys: Vec<String>,
}

/// One mount, through one client with one token.
#[derive(Debug)]
pub struct Kv<'a> {
    pub client: &'a Client,
    pub token: &'a SecretString,
    pub layout: &'a Layout,
    pub version: Version,
}

impl Kv<'_> {
    fn call<'c>(&'c self, segments: &'c [String]) -> Call<'c> {
        Call {
            segments: segments.iter().map(String::as_str).collect(),
            ..Call::default()
        }
        .with_token(self.token)
    }

    pub fn read(&self, key: &str) -> Result<Read, BaoError> {
        let name = escape(key);
        let path = self.layout.path(self.version, "data", Some(&name));
        let answer = self.client.send(Method::GET, &self.call(&path))?;
        let what = format!("reading {}", self.layout.shown(key));
        match (answer.status, self.version) {
            (200, Version::V2) => {
                let data = answer.json::<V2Data>(&what)?.data;
                let version = data
                    .as_ref()
                    .and_then(|d| d.metadata.as_ref())
                    .map_or(0, |m| m.version);
                Ok(Read {
                    fields: data.and_then(|d| d.data),
                    version,
                })
            }
            (200, Version::V1) => Ok(Read {
                fields: answer.json::<V1Data>(&what)?.data,
                version: 0,
            }),
            // Missing, or (v2) soft-deleted: the body then still names the latest version.
            (404, Version::V2) => Ok(Read {
                fields: None,
                version: answer
                    .json::<V2Data>(&what)
                    .ok()
                    .and_then(|d| d.data?.metadata)
                    .map_or(0, |m| m.version),
            }),
            (404, Version::V1) => Ok(Read {
                fields: None,
                version: 0,
            }),
            _ => Err(answer.refused(what)),
        }
    }

    /// Writes `fields` if the entry is still at `version`.
    pub fn write(
        &self,
        key: &str,
        fields: &Map<String, Value>,
        version: u64,
    ) -> Result<Written, BaoError> {
        let name = escape(key);
        let path = self.layout.path(self.version, "data", Some(&name));
        let body = match self.version {
            Version::V2 => serde_json::json!({"options": {"cas": version}, "data": fields}),
            Version::V1 => Value::Object(fields.clone()),
        };
        let answer = self
            .client
            .send(Method::POST, &self.call(&path).with_json(&body))?;
        if answer.ok() {
            return Ok(Written::Done);
        }
        if answer.status == 400 && answer.errors().contains("check-and-set") {
            return Ok(Written::Conflict);
        }
        Err(answer.refused(format!("writing {}", self.layout.shown(key))))
    }

    /// Removes the entry at `version`: on v2 a soft delete of that version only (so a newer
    /// write is never deleted unseen, and `bao kv undelete` brings it back), on v1 for good.
    pub fn delete(&self, key: &str, version: u64) -> Result<(), BaoError> {
        let name = escape(key);
        let answer = match self.version {
            Version::V2 => {
                let path = self.layout.path(self.version, "delete", Some(&name));
                let body = serde_json::json!({"versions": [version]});
                self.client
                    .send(Method::POST, &self.call(&path).with_json(&body))?
            }
            Version::V1 => {
                let path = self.layout.path(self.version, "", Some(&name));
                self.client.send(Method::DELETE, &self.call(&path))?
            }
        };
        if answer.ok() || answer.status == 404 {
            return Ok(());
        }
        Err(answer.refused(format!("deleting {}", self.layout.shown(key))))
    }

    /// Every stored key under the prefix (names coffer could not have written are skipped).
    pub fn list(&self) -> Result<Vec<String>, BaoError> {
        let path = self.layout.path(self.version, "metadata", None);
        let mut call = self.call(&path);
        call.query = vec![("list", "true")];
        let answer = self.client.send(Method::GET, &call)?;
        match answer.status {
            200 => Ok(answer
                .json::<Keys>("listing the prefix")?
                .data
                .keys
                .iter()
                .filter(|name| !name.ends_with('/'))
                .filter_map(|name| unescape(name))
                .collect()),
            404 => Ok(Vec::new()),
            _ => Err(answer.refused("listing the prefix")),
        }
    }
}

/// The entry in a KV entry's fields, or one line saying what is wrong with them.
pub fn decode(layout: &Layout, key: &str, fields: &Map<String, Value>) -> Result<Entry, BaoError> {
    let bad = |problem: String| BaoError::BadEntry {
        path: layout.shown(key),
        problem,
    };
    let text = |name: &str| -> Result<Option<&str>, BaoError> {
        match fields.get(name) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s)),
            Some(_) => Err(bad(format!("has a field `{name}` that is not a string"))),
        }
    };
    let required = |name: &str| text(name)?.ok_or_else(|| bad(format!("has no field `{name}`")));
    let time = |name: &str| -> Result<u64, BaoError> {
        match fields.get(name) {
            None | Some(Value::Null) => Ok(0),
            Some(Value::Number(n)) => n
                .as_u64()
                .ok_or_else(|| bad(format!("has a field `{name}` that is not Unix seconds"))),
            Some(Value::String(s)) => s
                .trim()
                .parse()
                .map_err(|_| bad(format!("has a field `{name}` that is not Unix seconds"))),
            Some(_) => Err(bad(format!(
                "has a field `{name}` that is not Unix seconds"
            ))),
        }
    };
    let username = required("username")?;
    let secret = required("secret")?;
    if username.len() > crate::store::MAX_USERNAME {
        return Err(bad(format!(
            "has a `username` longer than {} bytes",
            crate::store::MAX_USERNAME
        )));
    }
    Ok(Entry {
        server_url: text("server_url")?
            .unwrap_or(key.strip_prefix("//").unwrap_or(key))
            .to_owned(),
        username: username.to_owned(),
        secret: SecretString::from(secret.to_owned()),
        created: time("created")?,
        updated: time("updated")?,
        tokens: None,
        description: text("description")?.map(str::to_owned),
    })
}

/// `entry` written over `fields`, keeping the fields coffer does not own.
pub fn encode(entry: &Entry, mut fields: Map<String, Value>) -> Map<String, Value> {
    let mut set = |name: &str, value: Option<String>| match value {
        Some(value) => {
            fields.insert(name.to_owned(), Value::String(value));
        }
        None => {
            fields.remove(name);
        }
    };
    set("server_url", Some(entry.server_url.clone()));
    set("username", Some(entry.username.clone()));
    set("secret", Some(entry.secret.expose_secret().to_owned()));
    set("description", entry.description.clone());
    set("created", Some(entry.created.to_string()));
    set("updated", Some(entry.updated.to_string()));
    fields
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_escape_to_one_name_and_back() {
        for (key, name) in [
            ("//ghcr.io", "ghcr.io"),
            ("//registry.local:5000", "registry.local:5000"),
            ("https://quay.io", "https:%2F%2Fquay.io"),
            ("http://quay.io/team", "http:%2F%2Fquay.io%2Fteam"),
            (
                "//registry.example/team/app",
                "registry.example%2Fteam%2Fapp",
            ),
            ("//r.example/../../sys", "r.example%2F..%2F..%2Fsys"),
            ("//..", "%2E."),
            ("//registry.example/ünï", "registry.example%2F%C3%BCn%C3%AF"),
        ] {
            assert_eq!(escape(key), name);
            assert_eq!(unescape(name).as_deref(), Some(key));
        }
        // Names coffer never writes are not keys.
        for foreign in ["a/b", "%zz", "", "..", "sp ace", "%41", "%2Fx"] {
            assert_eq!(unescape(foreign), None, "{foreign}");
        }
    }

    #[test]
    fn a_layout_with_dot_segments_is_refused() {
        assert!(Layout::new("secret", "coffer/../sys").is_err());
        assert!(Layout::new("", "coffer").is_err());
        assert!(Layout::new("secret", "a%2F").is_err());
        let layout = Layout::new("/kv/team/", "/coffer/registries/").expect("layout");
        assert_eq!(layout.shown("ghcr.io"), "kv/team/coffer/registries/ghcr.io");
        assert_eq!(
            layout.path(Version::V2, "data", Some("x")),
            ["kv", "team", "data", "coffer", "registries", "x"]
        );
        assert_eq!(
            layout.path(Version::V1, "data", None),
            ["kv", "team", "coffer", "registries"]
        );
    }

    #[test]
    fn fields_decode_with_clear_errors() {
        let layout = Layout::new("secret", "coffer").expect("layout");
        let fields = |json: Value| json.as_object().expect("object").clone();
        let entry = decode(
            &layout,
            "//ghcr.io",
            &fields(serde_json::json!({"username": "u", "secret": "s", "created": 5, "updated": "7", "other": 1})),
        )
        .expect("decode");
        assert_eq!(
            (entry.server_url.as_str(), entry.created, entry.updated),
            ("ghcr.io", 5, 7)
        );
        for (json, says) in [
            (
                serde_json::json!({"secret": "s"}),
                "has no field `username`",
            ),
            (
                serde_json::json!({"username": "u", "secret": 5}),
                "`secret` that is not a string",
            ),
            (
                serde_json::json!({"username": "u", "secret": "s", "created": "soon"}),
                "not Unix seconds",
            ),
        ] {
            let error = decode(&layout, "ghcr.io", &fields(json)).expect_err("bad");
            let line = error.to_string();
            assert!(
                line.contains(says) && line.contains("secret/coffer/ghcr.io"),
                "{line}"
            );
        }
        let kept = encode(
            &entry,
            fields(serde_json::json!({"other": 1, "description": "old"})),
        );
        assert_eq!(kept.get("other"), Some(&Value::from(1)));
        assert!(!kept.contains_key("description"));
        assert_eq!(kept.get("secret"), Some(&Value::from("s")));
    }
}

//! Where entries are kept. Every store answers the same small contract over exact keys; the
//! matching of server URLs to keys lives in [`crate::server_url`] and is applied by
//! [`crate::credentials`], once, for every store.

pub mod file;
pub mod memory;

use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};

use crate::error::Result;

/// One credential with its metadata. Serialized only inside a sealed record.
#[derive(Debug, Serialize, Deserialize)]
pub struct Entry {
    /// The server URL exactly as the client sent it.
    #[serde(rename = "url")]
    pub server_url: String,
    #[serde(rename = "user")]
    pub username: String,
    #[serde(serialize_with = "expose")]
    pub secret: SecretString,
    /// Unix seconds.
    pub created: u64,
    pub updated: u64,
}

fn expose<S: serde::Serializer>(secret: &SecretString, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_str(secret.expose_secret())
}

/// What `list` and `coffer ls` show of an entry: never the secret.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Summary {
    pub server_url: String,
    pub username: String,
    pub created: u64,
    pub updated: u64,
    pub last_used: Option<u64>,
}

impl From<&Entry> for Summary {
    fn from(entry: &Entry) -> Self {
        Summary {
            server_url: entry.server_url.clone(),
            username: entry.username.clone(),
            created: entry.created,
            updated: entry.updated,
            last_used: None,
        }
    }
}

/// The contract every store keeps. Keys are the canonical keys of [`crate::server_url`].
pub trait Store: std::fmt::Debug {
    /// The entry under the first of `keys` that is present.
    fn find(&self, keys: &[String]) -> Result<Option<Entry>>;
    /// Inserts or replaces the entry under `key`; a replaced entry keeps its `created` time.
    fn put(&self, key: &str, entry: Entry) -> Result<()>;
    /// [`Store::put`] for many entries; stores that rewrite a file override it to write once.
    fn put_all(&self, entries: Vec<(String, Entry)>) -> Result<()> {
        entries
            .into_iter()
            .try_for_each(|(key, entry)| self.put(&key, entry))
    }
    /// Removes the entry under the first of `keys` that is present, returning its server URL.
    fn remove(&self, keys: &[String]) -> Result<Option<String>>;
    /// Every entry's summary, sorted by server URL.
    fn list(&self) -> Result<Vec<Summary>>;
}

pub fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

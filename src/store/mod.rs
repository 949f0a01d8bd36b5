//! Where entries are kept. Every store answers the same small contract over exact keys; the
//! matching of server URLs to keys lives in [`crate::server_url`] and is applied by
//! [`crate::credentials`], once, for every store.

pub mod audited;
pub mod description;
pub mod file;
pub mod keychain_items;
pub mod memory;
pub mod openbao;
pub mod used;

use secrecy::SecretString;
use serde::{Deserialize, Serialize};

use crate::error::Result;
use crate::token::state::{TokenState, TokenSummary};

/// The longest username coffer stores (registries' are far shorter).
pub const MAX_USERNAME: usize = 4096;

/// One credential with its metadata. Serialized only inside a sealed record.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Entry {
    /// The server URL exactly as the client sent it.
    #[serde(rename = "url")]
    pub server_url: String,
    #[serde(rename = "user")]
    pub username: String,
    #[serde(serialize_with = "crate::serde_secret::expose")]
    pub secret: SecretString,
    /// Unix seconds.
    pub created: u64,
    pub updated: u64,
    /// Tokens derived from this credential (the token vault); absent in Basic entries, so
    /// vaults written before it existed read as they are.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tokens: Option<TokenState>,
    /// Whose credential this is ("ci-runner-7, team payments"): not secret, but kept inside the
    /// sealed record like the rest, so no plaintext file names the machines and teams.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

impl Entry {
    /// When what this entry hands out stops working: the expiry of the derived token it
    /// carries in place of the credential, if any (Unix seconds).
    pub fn expires_at(&self) -> Option<u64> {
        let token = self.tokens.as_ref()?.token.as_ref()?;
        if token.username == self.username {
            token.expires_at
        } else {
            None
        }
    }
}

/// What `list` and `coffer ls` show of an entry: never the secret.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Summary {
    pub server_url: String,
    pub username: String,
    pub created: u64,
    pub updated: u64,
    pub last_used: Option<u64>,
    pub description: Option<String>,
    /// The derived token's times and last exchange; never the token.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tokens: Option<TokenSummary>,
}

impl From<&Entry> for Summary {
    fn from(entry: &Entry) -> Self {
        Summary {
            server_url: entry.server_url.clone(),
            username: entry.username.clone(),
            created: entry.created,
            updated: entry.updated,
            last_used: None,
            description: entry.description.clone(),
            tokens: entry.tokens.as_ref().map(TokenSummary::from),
        }
    }
}

/// The contract every store keeps. Keys are the canonical keys of [`crate::server_url`].
pub trait Store: std::fmt::Debug {
    /// The entry under the first of `keys` that is present.
    fn find(&self, keys: &[String]) -> Result<Option<Entry>>;
    /// A client's `get`: [`Store::find`], then `answer` turns what was found into what the
    /// client gets (a token derived from it, or a chain-mode token where nothing is stored). The
    /// audited store logs the outcome of the whole, so a `get` that fails after the lookup is
    /// logged as failed, never as found or not found.
    fn get(
        &self,
        keys: &[String],
        answer: &mut dyn FnMut(Option<Entry>) -> Result<Option<Entry>>,
    ) -> Result<Option<Entry>> {
        answer(self.find(keys)?)
    }
    /// [`Store::find`], but not a use of the entry: neither logged nor marked as used (the
    /// token keeper reading an entry again under its lock).
    fn peek(&self, keys: &[String]) -> Result<Option<Entry>> {
        self.find(keys)
    }
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
    /// Reads, changes and writes back the entry under `key` as one step, under the store's own
    /// lock, so that no other writer (another process's `store`, a token renewal) comes between
    /// the read and the write and nothing acknowledged is lost. `change` may fill, replace or
    /// empty the slot, and says whether it changed anything; nothing is written when it did not.
    /// Required: a default made of `find` then `put` would be exactly the race it exists to stop.
    fn update(&self, key: &str, change: &mut dyn FnMut(&mut Option<Entry>) -> bool) -> Result<()>;
    /// What the last call did that its caller should be told though it succeeded (the central
    /// store serving a cached entry while no server answers); taken once.
    fn warning(&self) -> Option<crate::warning::Warning> {
        None
    }
}

/// A store chosen at run time is still a store.
impl<S: Store + ?Sized> Store for Box<S> {
    fn find(&self, keys: &[String]) -> Result<Option<Entry>> {
        (**self).find(keys)
    }
    fn get(
        &self,
        keys: &[String],
        answer: &mut dyn FnMut(Option<Entry>) -> Result<Option<Entry>>,
    ) -> Result<Option<Entry>> {
        (**self).get(keys, answer)
    }
    fn peek(&self, keys: &[String]) -> Result<Option<Entry>> {
        (**self).peek(keys)
    }
    fn put(&self, key: &str, entry: Entry) -> Result<()> {
        (**self).put(key, entry)
    }
    fn put_all(&self, entries: Vec<(String, Entry)>) -> Result<()> {
        (**self).put_all(entries)
    }
    fn remove(&self, keys: &[String]) -> Result<Option<String>> {
        (**self).remove(keys)
    }
    fn list(&self) -> Result<Vec<Summary>> {
        (**self).list()
    }
    fn update(&self, key: &str, change: &mut dyn FnMut(&mut Option<Entry>) -> bool) -> Result<()> {
        (**self).update(key, change)
    }
    fn warning(&self) -> Option<crate::warning::Warning> {
        (**self).warning()
    }
}

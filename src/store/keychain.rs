//! Entries as items of the OS keychain: one item per entry, service `coffer`, account = the
//! entry's canonical key, so a lookup is one keychain query and no local file is involved.
//!
//! An item holds the entry's JSON (server URL as sent, username, secret, created, updated),
//! the same record the file vault seals, so every platform keeps the same metadata. Listing
//! enumerates the service's items (Secret Service attribute search on Linux).
//!
//! A keychain may cap an item's size (Windows: 2560 bytes). An entry too large for it is sealed
//! in an overflow file vault whose key is itself a keychain item, and the keychain item keeps
//! the entry's metadata with `in_vault` set: listing still needs only the keychain.

use std::collections::HashMap;
use std::path::PathBuf;

use secrecy::SecretString;
use serde::{Deserialize, Serialize};

use super::file::{FileStore, decode, encode};
use super::{Entry, Store, Summary};
use crate::error::{Error, Result};
use crate::files;
use crate::keychain::Keychain;
use crate::paths::Paths;
use crate::unlock::Unlocker;

/// The keychain service of coffer's entries (`secret-tool search service coffer`).
pub const SERVICE: &str = "coffer";

/// The largest item the platform's keychain accepts, when it has a limit.
pub const PLATFORM_LIMIT: Option<usize> = if cfg!(target_os = "windows") {
    Some(2560)
} else {
    None
};

#[derive(Debug)]
pub struct KeychainStore {
    keychain: Keychain,
    home: PathBuf,
    overflow: FileStore,
    limit: Option<usize>,
}

/// What a keychain item holds: the entry, or its metadata when the secret is in the overflow vault.
struct Item {
    entry: Entry,
    in_vault: bool,
}

/// The item of an oversize entry: its metadata, an empty secret, and `in_vault`.
#[derive(Serialize)]
struct Stub<'a> {
    #[serde(flatten)]
    entry: &'a Entry,
    in_vault: bool,
}

/// The one field an item has beyond an entry's.
#[derive(Deserialize)]
struct Marker {
    #[serde(default)]
    in_vault: bool,
}

impl KeychainStore {
    /// Entries in `keychain`; oversize ones in a keychain-sealed vault under `paths`' home.
    pub fn new(keychain: Keychain, paths: &Paths) -> Self {
        KeychainStore::with_limit(keychain, paths, PLATFORM_LIMIT)
    }

    /// The same with an explicit item size limit (tests exercise the overflow path with it).
    pub fn with_limit(keychain: Keychain, paths: &Paths, limit: Option<usize>) -> Self {
        let home = paths.home().to_path_buf();
        let overflow = FileStore::new(
            Paths::new(home.join("keychain-overflow")),
            Unlocker {
                new_vault_in_keychain: true,
                ..Unlocker::default()
            },
        );
        KeychainStore {
            keychain,
            home,
            overflow,
            limit,
        }
    }

    fn read(&self, key: &str) -> Result<Option<Item>> {
        let Some(bytes) = self.keychain.read(SERVICE, key)? else {
            return Ok(None);
        };
        Ok(Some(decode_item(&bytes)?))
    }

    fn write(&self, key: &str, server_url: &str, bytes: &[u8]) -> Result<()> {
        let label = format!("coffer: {server_url}");
        let attributes = HashMap::from([("server", server_url)]);
        self.keychain
            .write(SERVICE, key, &label, &attributes, bytes)
    }

    fn fits(&self, bytes: &[u8]) -> bool {
        self.limit.is_none_or(|limit| bytes.len() <= limit)
    }

    /// Writers take a lock so an entry and its overflow record never disagree.
    fn with_lock<T>(&self, action: impl FnOnce() -> Result<T>) -> Result<T> {
        files::ensure_private_dir(&self.home)?;
        let _lock = files::lock(&self.home.join("keychain.lock"), files::LOCK_TIMEOUT)?;
        action()
    }
}

impl Store for KeychainStore {
    fn find(&self, keys: &[String]) -> Result<Option<Entry>> {
        for key in keys {
            let Some(item) = self.read(key)? else {
                continue;
            };
            if !item.in_vault {
                return Ok(Some(item.entry));
            }
            return match self.overflow.find(std::slice::from_ref(key))? {
                Some(entry) => Ok(Some(entry)),
                None => Err(Error::Keychain(format!(
                    "the keychain entry for {} says its secret is in {}, which lacks it; \
                     log in to that registry again",
                    item.entry.server_url,
                    self.overflow.paths().vault().display()
                ))),
            };
        }
        Ok(None)
    }

    fn put(&self, key: &str, mut entry: Entry) -> Result<()> {
        self.with_lock(|| {
            let old = self.read(key)?;
            if let Some(old) = &old {
                entry.created = old.entry.created;
            }
            let whole = encode(&entry)?;
            if self.fits(&whole) {
                self.write(key, &entry.server_url, &whole)?;
                if old.is_some_and(|old| old.in_vault) {
                    self.overflow.remove(&[key.to_owned()])?;
                }
                return Ok(());
            }
            let metadata = Entry {
                server_url: entry.server_url.clone(),
                username: entry.username.clone(),
                secret: SecretString::from(""),
                created: entry.created,
                updated: entry.updated,
                tokens: None,
                description: entry.description.clone(),
            };
            let stub = serde_json::to_vec(&Stub {
                entry: &metadata,
                in_vault: true,
            })
            .map_err(Error::entry)?;
            // The secret goes to the vault first, so the item never points at nothing.
            self.overflow.put(key, entry)?;
            self.write(key, &metadata.server_url, &stub)
        })
    }

    fn remove(&self, keys: &[String]) -> Result<Option<String>> {
        self.with_lock(|| {
            for key in keys {
                let Some(item) = self.read(key)? else {
                    continue;
                };
                self.keychain.delete(SERVICE, key)?;
                if item.in_vault {
                    self.overflow.remove(std::slice::from_ref(key))?;
                }
                return Ok(Some(item.entry.server_url));
            }
            Ok(None)
        })
    }

    fn list(&self) -> Result<Vec<Summary>> {
        let mut list = self
            .keychain
            .all(SERVICE)?
            .iter()
            .map(|bytes| decode_item(bytes).map(|item| Summary::from(&item.entry)))
            .collect::<Result<Vec<_>>>()?;
        list.sort_by(|a, b| a.server_url.cmp(&b.server_url));
        Ok(list)
    }
}

fn decode_item(bytes: &[u8]) -> Result<Item> {
    let entry = decode(bytes)?;
    let marker: Marker = serde_json::from_slice(bytes).map_err(Error::entry)?;
    Ok(Item {
        entry,
        in_vault: marker.in_vault,
    })
}

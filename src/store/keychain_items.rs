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
//!
//! Writers (`put`, `update`, `remove`) hold `keychain.lock` in coffer's home across their read
//! and write, so a token renewal and a `docker login` never interleave. Last uses are marks in
//! `keychain-used/`, named by an HMAC of the entry's key under its own secret: a `get` writes
//! nothing to the keychain, and the names say nothing without the secrets.

use std::collections::HashMap;
use std::path::PathBuf;

use hmac::{Hmac, Mac};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

use super::file::{FileStore, encode};
use super::used::{self, UsedMarks};
use super::{Entry, Store, Summary};
use crate::error::{Error, Result};
use crate::files;
use crate::os::keychain::{self, Keychain};
use crate::paths::Paths;
use crate::unlock::Unlocker;

/// The keychain service of coffer's entries (`secret-tool search service coffer`).
pub const SERVICE: &str = "coffer";

/// The keychain service of a set of credentials: [`SERVICE`] for the user's own, `coffer:NAME`
/// for profile NAME's, so that one profile's items are never another's.
pub fn service_of(paths: &Paths) -> String {
    match paths.profile_name() {
        Some(name) => format!("{SERVICE}:{name}"),
        None => SERVICE.to_owned(),
    }
}

/// The largest item the platform's keychain accepts, when it has a limit.
pub const PLATFORM_LIMIT: Option<usize> = if cfg!(target_os = "windows") {
    Some(2560)
} else {
    None
};

#[derive(Debug)]
pub struct KeychainStore {
    keychain: Keychain,
    /// [`service_of`] these credentials.
    service: String,
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

/// An item of coffer's service that is not a coffer entry: its account and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unreadable {
    pub service: String,
    pub account: String,
    pub reason: String,
}

impl Unreadable {
    /// The platform's command that deletes this one item and nothing else.
    pub fn delete_command(&self) -> String {
        keychain::delete_command(&self.service, &self.account)
    }
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
            service: service_of(paths),
            home,
            overflow,
            limit,
        }
    }

    /// Items of coffer's service that are not coffer entries (written by hand or by another
    /// program): `list` passes over them, `coffer doctor` names them.
    pub fn unreadable(&self) -> Result<Vec<Unreadable>> {
        Ok(self
            .items()?
            .into_iter()
            .filter_map(|(account, item)| {
                item.err().map(|reason| Unreadable {
                    service: self.service.clone(),
                    account,
                    reason,
                })
            })
            .collect())
    }

    /// Every item of the service, decoded where it can be.
    fn items(&self) -> Result<Vec<(String, std::result::Result<Item, String>)>> {
        Ok(self
            .keychain
            .all(&self.service)?
            .into_iter()
            .map(|(account, bytes)| {
                let item = decode_item(&bytes);
                (account, item)
            })
            .collect())
    }

    fn read(&self, key: &str) -> Result<Option<Item>> {
        let Some(bytes) = self.keychain.read(&self.service, key)? else {
            return Ok(None);
        };
        decode_item(&bytes).map(Some).map_err(|reason| {
            let unreadable = Unreadable {
                service: self.service.clone(),
                account: key.to_owned(),
                reason,
            };
            Error::NotAnEntry {
                delete_command: unreadable.delete_command(),
                service: unreadable.service,
                account: unreadable.account,
                reason: unreadable.reason,
            }
        })
    }

    /// The whole entry under `key`, its secret from the overflow vault when it is there.
    fn find_one(&self, key: &str) -> Result<Option<Entry>> {
        let Some(item) = self.read(key)? else {
            return Ok(None);
        };
        if !item.in_vault {
            return Ok(Some(item.entry));
        }
        match self.overflow.find(&[key.to_owned()])? {
            Some(entry) => Ok(Some(entry)),
            None => Err(Error::OverflowMissing {
                server_url: item.entry.server_url,
                vault: self.overflow.paths().vault(),
            }),
        }
    }

    fn write(&self, key: &str, server_url: &str, bytes: &[u8]) -> Result<()> {
        let label = format!("coffer: {server_url}");
        let attributes = HashMap::from([("server", server_url)]);
        Ok(self
            .keychain
            .write(&self.service, key, &label, &attributes, bytes)?)
    }

    fn fits(&self, bytes: &[u8]) -> bool {
        self.limit.is_none_or(|limit| bytes.len() <= limit)
    }

    /// Writers take a lock so that read-modify-writes never interleave and an entry and its
    /// overflow record never disagree.
    fn with_lock<T>(&self, action: impl FnOnce() -> Result<T>) -> Result<T> {
        files::ensure_private_dir(&self.home)?;
        let _lock = files::lock(&self.home.join("keychain.lock"), files::LOCK_TIMEOUT)?;
        action()
    }

    /// [`Store::put`], under the lock.
    fn put_locked(&self, key: &str, mut entry: Entry) -> Result<()> {
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
    }

    /// Removes the item under `key` (and its overflow record), under the lock.
    fn remove_locked(&self, key: &str) -> Result<Option<String>> {
        let Some(item) = self.read(key)? else {
            return Ok(None);
        };
        self.keychain.delete(&self.service, key)?;
        if item.in_vault {
            self.overflow.remove(&[key.to_owned()])?;
        } else {
            self.used().forget(&use_tag(&item.entry, key));
        }
        Ok(Some(item.entry.server_url))
    }

    fn used(&self) -> UsedMarks {
        UsedMarks::new(self.home.join("keychain-used"))
    }
}

/// The name of an entry's last-use mark: keyed by its secret, so only someone who holds the
/// secrets can tell which mark is whose. (An oversize entry's mark is the overflow vault's.)
fn use_tag(entry: &Entry, key: &str) -> [u8; 32] {
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(entry.secret.expose_secret().as_bytes())
        .expect("HMAC takes a key of any length");
    mac.update(b"coffer keychain use\0");
    mac.update(key.as_bytes());
    mac.finalize().into_bytes().into()
}

impl Store for KeychainStore {
    fn find(&self, keys: &[String]) -> Result<Option<Entry>> {
        for key in keys {
            let Some(item) = self.read(key)? else {
                continue;
            };
            if !item.in_vault {
                self.used().mark(&use_tag(&item.entry, key));
                return Ok(Some(item.entry));
            }
            return self.find_one(key);
        }
        Ok(None)
    }

    /// A read that is not a use: no last-use mark.
    fn peek(&self, keys: &[String]) -> Result<Option<Entry>> {
        for key in keys {
            if let Some(entry) = self.find_one(key)? {
                return Ok(Some(entry));
            }
        }
        Ok(None)
    }

    fn put(&self, key: &str, entry: Entry) -> Result<()> {
        self.with_lock(|| self.put_locked(key, entry))
    }

    fn remove(&self, keys: &[String]) -> Result<Option<String>> {
        self.with_lock(|| {
            for key in keys {
                if let Some(url) = self.remove_locked(key)? {
                    return Ok(Some(url));
                }
            }
            Ok(None)
        })
    }

    /// Every coffer entry; items of the service that are not coffer entries are passed over
    /// (one stray item must not hide every credential from docker) and named by `coffer doctor`.
    fn list(&self) -> Result<Vec<Summary>> {
        let items = self.items()?;
        let last_uses = self.used().all();
        let overflow_uses: HashMap<String, Option<u64>> = if items
            .iter()
            .any(|(_, item)| matches!(item, Ok(i) if i.in_vault))
        {
            self.overflow
                .list()?
                .into_iter()
                .map(|summary| (summary.server_url, summary.last_used))
                .collect()
        } else {
            HashMap::new()
        };
        let mut list: Vec<Summary> = items
            .into_iter()
            .filter_map(|(account, item)| {
                let item = item.ok()?;
                let last_used = if item.in_vault {
                    overflow_uses.get(&item.entry.server_url).copied().flatten()
                } else {
                    used::last_use(&last_uses, &use_tag(&item.entry, &account))
                };
                Some(Summary {
                    last_used,
                    ..Summary::from(&item.entry)
                })
            })
            .collect();
        list.sort_by(|a, b| a.server_url.cmp(&b.server_url));
        Ok(list)
    }

    /// Under `keychain.lock`, like every writer of this store.
    fn update(&self, key: &str, change: &mut dyn FnMut(&mut Option<Entry>) -> bool) -> Result<()> {
        self.with_lock(|| {
            let mut slot = self.find_one(key)?;
            let existed = slot.is_some();
            if !change(&mut slot) {
                return Ok(());
            }
            match slot {
                Some(entry) => self.put_locked(key, entry),
                None if existed => self.remove_locked(key).map(|_| ()),
                None => Ok(()),
            }
        })
    }
}

/// The item's entry, or in words why it is none (never quoting the item: it may hold a secret).
fn decode_item(bytes: &[u8]) -> std::result::Result<Item, String> {
    let why = |e: serde_json::Error| format!("{:?} error at column {}", e.classify(), e.column());
    let entry: Entry = serde_json::from_slice(bytes).map_err(why)?;
    let marker: Marker = serde_json::from_slice(bytes).map_err(why)?;
    Ok(Item {
        entry,
        in_vault: marker.in_vault,
    })
}

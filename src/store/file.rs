//! The embedded default store: an encrypted vault file that needs no other service.
//!
//! Reads take no lock: writers replace the file atomically, so a reader sees the old or the new
//! vault, whole. Every read-modify-write holds the vault lock, so parallel `docker login`s
//! never lose an entry.

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io::{ErrorKind, Read};
use std::os::unix::fs::FileExt;
use std::sync::{Mutex, PoisonError};

use zeroize::Zeroizing;

use super::used::{self, UsedMarks};
use super::{Entry, Store, Summary};
use crate::error::{Error, Result};
use crate::files;
use crate::files::FileError;
use crate::paths::Paths;
use crate::secret_buffer::SecretBuffer;
use crate::server_url::ServerUrl;
use crate::unlock::Unlocker;
use crate::vault::format::{self, KeyHeader};
use crate::vault::{self, OpenVault, VaultError, VaultKey};

/// What a `get` reads first: the whole of a small vault, the header and start of a large one.
const FIRST_READ: usize = 64 * 1024;

#[derive(Debug)]
pub struct FileStore {
    paths: Paths,
    unlocker: Unlocker,
    key_cache: KeyCache,
}

/// The data key once unlocked, for the header it belongs to: a process that reads the vault
/// again (a `get` renewing a token under the refresh lock) does not pay for the KDF twice.
#[derive(Default)]
struct KeyCache(Mutex<Option<VaultKey>>);

impl std::fmt::Debug for KeyCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("KeyCache")
    }
}

impl FileStore {
    pub fn new(paths: Paths, unlocker: Unlocker) -> Self {
        FileStore {
            paths,
            unlocker,
            key_cache: KeyCache::default(),
        }
    }

    pub fn paths(&self) -> &Paths {
        &self.paths
    }

    pub fn exists(&self) -> bool {
        self.paths.vault().exists()
    }

    /// Creates an empty vault; refuses to replace one.
    pub fn init(&self) -> Result<()> {
        self.with_lock(|| {
            if self.read_bytes()?.is_some() {
                return Err(Error::VaultExists {
                    path: self.paths.vault(),
                });
            }
            let key = self.unlocker.new_vault_key(&self.paths.vault())?;
            self.write(&key, &BTreeMap::new())
        })
    }

    /// Opens the vault and checks every record: the deep check `coffer doctor` runs.
    pub fn verify(&self) -> Result<usize> {
        let bytes = self.read_bytes()?.ok_or_else(|| Error::NoVault {
            path: self.paths.vault(),
        })?;
        let key = self.vault_key(&bytes)?;
        Ok(self.decode_all(&bytes, &key)?.len())
    }

    /// The vault's key header (`None`: no vault yet): it names the vault's cached key.
    pub fn key_header(&self) -> Result<Option<KeyHeader>> {
        self.read_bytes()?
            .map(|bytes| vault::key_header(&bytes).map_err(|e| self.damaged(e)))
            .transpose()
    }

    /// The data key from the vault's own sealing, never from the unlock cache, proven by the
    /// vault's seal: what `coffer unlock` caches.
    pub fn unseal(&self) -> Result<VaultKey> {
        let bytes = self.read_bytes()?.ok_or_else(|| Error::NoVault {
            path: self.paths.vault(),
        })?;
        let key = self.unsealed_key(&bytes)?;
        self.open(&bytes, &key)?;
        Ok(key)
    }

    /// Replaces the vault's sealing with `new`, whose key was made from `old` (the data key
    /// re-wrapped: a passphrase change) or is new (a key rotation: every record is sealed again
    /// under a new data key and vault id). `old` must come from [`Self::unseal`]: an unlocked
    /// terminal is not enough to lock its owner out. Returns the number of entries kept.
    pub fn rekey(&self, old: &VaultKey, new: &VaultKey) -> Result<usize> {
        self.with_lock(|| {
            let bytes = self.read_bytes()?.ok_or_else(|| Error::NoVault {
                path: self.paths.vault(),
            })?;
            let header = vault::key_header(&bytes).map_err(|e| self.damaged(e))?;
            if header != *old.header() {
                return Err(Error::ChangedMeanwhile {
                    path: self.paths.vault(),
                });
            }
            let entries = self.decode_all(&bytes, old)?;
            self.write(new, &entries)?;
            Ok(entries.len())
        })
    }

    /// The vault file's bytes, after checking that nobody else can read them.
    fn read_bytes(&self) -> Result<Option<Vec<u8>>> {
        let Some((file, len)) = self.open_file()? else {
            return Ok(None);
        };
        let mut bytes = Vec::with_capacity(len);
        (&file)
            .read_to_end(&mut bytes)
            .map_err(FileError::io("read", self.paths.vault()))?;
        Ok(Some(bytes))
    }

    /// The header, table and seal of the vault file (`len` bytes long): all a lookup needs
    /// before its one record, so a `get` reads 240 KB of a 10,000-entry vault, not 1.8 MB.
    fn read_sealed_part(&self, file: &File, len: usize) -> Result<Vec<u8>> {
        let mut bytes = vec![0u8; len.min(FIRST_READ)];
        self.read_at(file, &mut bytes, 0)?;
        // Past the end of the file, the parser reports the truncation.
        if let Some(sealed) = format::sealed_len(&bytes).filter(|&n| n > bytes.len() && n <= len) {
            let start = bytes.len();
            bytes.resize(sealed, 0);
            self.read_at(file, &mut bytes[start..], start)?;
        }
        Ok(bytes)
    }

    fn read_at(&self, file: &File, into: &mut [u8], at: usize) -> Result<()> {
        file.read_exact_at(into, at as u64)
            .map_err(|e| match e.kind() {
                ErrorKind::UnexpectedEof => self.damaged(VaultError::Truncated),
                _ => FileError::io("read", self.paths.vault())(e).into(),
            })
    }

    /// The vault file, open for reading, and its length, after checking that nobody else can
    /// read it. Writers replace the file, never change it, so the length holds while it is open.
    fn open_file(&self) -> Result<Option<(File, usize)>> {
        let path = self.paths.vault();
        let file = match File::open(&path) {
            Ok(file) => file,
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(None),
            Err(e) if e.kind() == ErrorKind::PermissionDenied => {
                return Err(FileError::Unreadable { path }.into());
            }
            Err(e) => {
                return Err(FileError::Io {
                    action: "open",
                    path,
                    source: e,
                }
                .into());
            }
        };
        let home = self.paths.home();
        files::check_private(
            home,
            &fs::metadata(home).map_err(FileError::io("inspect", home))?,
        )?;
        let metadata = file.metadata().map_err(FileError::io("inspect", &path))?;
        files::check_private(&path, &metadata)?;
        let len = usize::try_from(metadata.len()).map_err(|_| self.damaged(VaultError::Damaged))?;
        Ok(Some((file, len)))
    }

    fn vault_key(&self, bytes: &[u8]) -> Result<VaultKey> {
        let header = vault::key_header(bytes).map_err(|e| self.damaged(e))?;
        let mut cache = self
            .key_cache
            .0
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        // Same header, same wrapped key: the data key unwrapped from it before is still right.
        if let Some(key) = cache.as_ref().filter(|key| *key.header() == header) {
            return Ok(VaultKey::from_cache(&header, key.data_key().clone()));
        }
        let key = self.unlocker.vault_key(&self.paths.vault(), &header)?;
        *cache = Some(VaultKey::from_cache(&header, key.data_key().clone()));
        Ok(key)
    }

    /// [`Self::vault_key`] without the unlock cache.
    fn unsealed_key(&self, bytes: &[u8]) -> Result<VaultKey> {
        let header = vault::key_header(bytes).map_err(|e| self.damaged(e))?;
        self.unlocker.unseal(&self.paths.vault(), &header)
    }

    fn open<'b>(&self, bytes: &'b [u8], key: &VaultKey) -> Result<OpenVault<'b>> {
        OpenVault::open(bytes, key).map_err(|e| self.damaged(e))
    }

    fn decode_all(&self, bytes: &[u8], key: &VaultKey) -> Result<BTreeMap<String, Entry>> {
        let vault = self.open(bytes, key)?;
        let records = vault.records().map_err(|e| self.damaged(e))?;
        records
            .iter()
            .map(|(_, plain)| decode(plain).and_then(|entry| Ok((entry_key(&entry)?, entry))))
            .collect()
    }

    fn write(&self, key: &VaultKey, entries: &BTreeMap<String, Entry>) -> Result<()> {
        let plain: Vec<(&str, Zeroizing<Vec<u8>>)> = entries
            .iter()
            .map(|(name, entry)| Ok((name.as_str(), encode(entry)?)))
            .collect::<Result<_>>()?;
        let bytes = vault::encode(
            key,
            plain.iter().map(|(name, json)| (*name, json.as_slice())),
        );
        Ok(files::write_atomic(&self.paths.vault(), &bytes)?)
    }

    fn with_lock<T>(&self, action: impl FnOnce() -> Result<T>) -> Result<T> {
        files::ensure_private_dir(self.paths.home())?;
        let _lock = files::lock(&self.paths.lock(), files::LOCK_TIMEOUT)?;
        files::remove_stale_temps(&self.paths.vault());
        action()
    }

    /// Read-modify-write under the lock; creates the vault on first use.
    fn modify<T>(
        &self,
        change: impl FnOnce(&mut BTreeMap<String, Entry>, &VaultKey) -> T,
    ) -> Result<T> {
        self.with_lock(|| {
            let (key, mut entries) = self.load_or_new()?;
            let outcome = change(&mut entries, &key);
            self.write(&key, &entries)?;
            Ok(outcome)
        })
    }

    /// The vault's key and entries; a new key and no entries when there is no vault yet.
    fn load_or_new(&self) -> Result<(VaultKey, BTreeMap<String, Entry>)> {
        match self.read_bytes()? {
            Some(bytes) => {
                let key = self.vault_key(&bytes)?;
                let entries = self.decode_all(&bytes, &key)?;
                Ok((key, entries))
            }
            None => Ok((
                self.unlocker.new_vault_key(&self.paths.vault())?,
                BTreeMap::new(),
            )),
        }
    }

    fn damaged(&self, source: VaultError) -> Error {
        Error::Vault {
            path: self.paths.vault(),
            source,
        }
    }

    /// Reads the header and table, then the one record it returns; `mark` records the use.
    fn lookup(&self, keys: &[String], mark: bool) -> Result<Option<Entry>> {
        let Some((file, len)) = self.open_file()? else {
            return Ok(None);
        };
        let sealed = self.read_sealed_part(&file, len)?;
        let key = self.vault_key(&sealed)?;
        let vault = self.open(&sealed, &key)?;
        let Some((_, row)) = vault.locate(keys) else {
            return Ok(None);
        };
        // The row is authenticated by the seal, so its length is one coffer wrote.
        let mut record = vec![0u8; row.len as usize];
        self.read_at(&file, &mut record, row.offset as usize)?;
        let plain = vault
            .open_record(row, &record)
            .map_err(|e| self.damaged(e))?;
        if mark {
            self.used().mark(&row.tag);
        }
        decode(&plain).map(Some)
    }

    fn used(&self) -> UsedMarks {
        UsedMarks::new(self.paths.used_marks())
    }
}

impl Store for FileStore {
    /// The hot path of every pull: reads the header and table, then the one record it returns.
    fn find(&self, keys: &[String]) -> Result<Option<Entry>> {
        self.lookup(keys, true)
    }

    fn peek(&self, keys: &[String]) -> Result<Option<Entry>> {
        self.lookup(keys, false)
    }

    fn put(&self, key: &str, entry: Entry) -> Result<()> {
        self.put_all(vec![(key.to_owned(), entry)])
    }

    /// One read-modify-write for all of them: one vault rewrite instead of one per entry.
    fn put_all(&self, new: Vec<(String, Entry)>) -> Result<()> {
        self.modify(|entries, _| {
            for (key, mut entry) in new {
                if let Some(old) = entries.get(&key) {
                    entry.created = old.created;
                }
                entries.insert(key, entry);
            }
        })
    }

    /// Writes only when something was removed: erasing what is not there changes nothing.
    fn remove(&self, keys: &[String]) -> Result<Option<String>> {
        if !self.exists() {
            return Ok(None);
        }
        self.with_lock(|| {
            let (vault_key, mut entries) = self.load_or_new()?;
            let Some((key, entry)) = keys.iter().find_map(|key| entries.remove_entry(key)) else {
                return Ok(None);
            };
            self.write(&vault_key, &entries)?;
            self.used().forget(&vault_key.lookup_tag(&key));
            Ok(Some(entry.server_url))
        })
    }

    /// Under the vault lock; writes only when `change` changed something.
    fn update(&self, key: &str, change: &mut dyn FnMut(&mut Option<Entry>) -> bool) -> Result<()> {
        self.with_lock(|| {
            let (vault_key, mut entries) = self.load_or_new()?;
            let mut slot = entries.remove(key);
            let existed = slot.is_some();
            if !change(&mut slot) {
                return Ok(());
            }
            match slot {
                Some(entry) => {
                    entries.insert(key.to_owned(), entry);
                }
                None if existed => {
                    self.used().forget(&vault_key.lookup_tag(key));
                }
                None => {}
            }
            self.write(&vault_key, &entries)
        })
    }

    fn list(&self) -> Result<Vec<Summary>> {
        let Some(bytes) = self.read_bytes()? else {
            return Ok(Vec::new());
        };
        let key = self.vault_key(&bytes)?;
        let vault = self.open(&bytes, &key)?;
        let last_uses = self.used().all();
        let mut list = vault
            .records()
            .map_err(|e| self.damaged(e))?
            .iter()
            .map(|(tag, plain)| {
                Ok(Summary {
                    last_used: used::last_use(&last_uses, tag),
                    ..Summary::from(&decode(plain)?)
                })
            })
            .collect::<Result<Vec<_>>>()?;
        list.sort_by(|a, b| a.server_url.cmp(&b.server_url));
        Ok(list)
    }
}

pub(super) fn decode(plain: &[u8]) -> Result<Entry> {
    serde_json::from_slice(plain).map_err(Error::entry)
}

pub(super) fn encode(entry: &Entry) -> Result<Zeroizing<Vec<u8>>> {
    let mut json = SecretBuffer::default();
    serde_json::to_writer(&mut json, entry).map_err(Error::entry)?;
    Ok(json.into_inner())
}

fn entry_key(entry: &Entry) -> Result<String> {
    Ok(ServerUrl::parse(&entry.server_url)?.key())
}

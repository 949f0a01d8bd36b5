//! Which store serves: decided once, recorded in config.toml, never probed again.
//!
//! - `file`: the vault file, sealed by a passphrase or by a key kept in the OS keychain (the
//!   vault's header says which);
//! - `keychain`: one OS-keychain item per entry (the item store);
//! - `openbao`: the central store, KV entries in OpenBao or Vault ([`crate::store::openbao`]).
//!
//! Until a store is recorded (`auto`, the default), the first entry stored, or `coffer init`,
//! chooses and records it: where the OS keychain answers and is unlocked (a desktop), a vault
//! sealed by a key in it, whose key the unlock cache then holds so that `get` costs what an
//! unlocked vault costs; where there is no keychain at all (no session bus, no Secret Service), a
//! vault sealed by a passphrase. A keychain that is there but locked or failing is an error: a
//! passing state never makes a lasting choice. An earlier coffer's entries settle it too: a vault
//! file means `file`, keychain items mean `keychain`.
//!
//! After that, every call opens the recorded store without asking anything else. A context that
//! cannot reach it (no D-Bus in an ssh session or a cron job, a locked keychain) fails with one
//! line saying where the credentials are and what to do; it never answers "not found" and never
//! writes elsewhere. `coffer migrate` moves entries and the record; `COFFER_BACKEND` overrides
//! the record for one process.

use std::sync::OnceLock;

use crate::config::{Backend, Config};
use crate::error::{Error, Result};
use crate::os::keychain::{Keychain, Unusable};
use crate::paths::Paths;
use crate::store::file::FileStore;
use crate::store::keychain_items::KeychainStore;
use crate::store::openbao::OpenBaoStore;
use crate::store::{Entry, Store, Summary};
use crate::unlock::Unlocker;
use crate::unlock::cache::Timeout;
use crate::vault::crypto::KdfParams;

pub const ENV: &str = "COFFER_BACKEND";

/// Where the setting came from, for `coffer doctor`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    Environment,
    Config,
    /// Nothing recorded yet.
    Default,
}

/// The store in use, and why.
#[derive(Debug)]
pub struct Choice {
    /// `Keychain`, `File`, or `Auto` while nothing is chosen.
    pub used: Backend,
    pub origin: Origin,
}

impl Choice {
    /// One line for people: e.g. "the file vault, by backend = "file" in config.toml".
    pub fn explain(&self) -> String {
        let store = match self.used {
            Backend::Keychain => "the OS keychain, one item per entry",
            Backend::File => "the file vault",
            Backend::OpenBao => "the central store on OpenBao/Vault",
            Backend::Auto => {
                return "none chosen yet: the first stored entry (or `coffer init`) chooses a \
                        vault sealed by the OS keychain where one is unlocked, else one sealed by \
                        a passphrase, and records it in config.toml"
                    .to_owned();
            }
        };
        match self.origin {
            Origin::Environment => format!("{store}, by {ENV}={}", self.used.name()),
            _ => format!(
                "{store}, by backend = \"{}\" in config.toml",
                self.used.name()
            ),
        }
    }
}

/// The backend setting in force. `COFFER_BACKEND=auto` defers to config.toml.
pub fn configured(paths: &Paths) -> Result<(Backend, Origin)> {
    setting(&Config::load(paths)?)
}

fn setting(config: &Config) -> Result<(Backend, Origin)> {
    if let Some(value) = std::env::var_os(ENV).filter(|v| !v.is_empty()) {
        let value = value.to_string_lossy();
        match value.as_ref() {
            "auto" => {}
            "keychain" => return Ok((Backend::Keychain, Origin::Environment)),
            "file" => return Ok((Backend::File, Origin::Environment)),
            "openbao" => return Ok((Backend::OpenBao, Origin::Environment)),
            _ => {
                return Err(Error::UnknownBackend {
                    variable: ENV,
                    value: value.into_owned(),
                });
            }
        }
    }
    Ok(match config.backend {
        Some(Backend::Auto) | None => (Backend::Auto, Origin::Default),
        Some(backend) => (backend, Origin::Config),
    })
}

/// Opens the store in use. Nothing is probed when a store is recorded; config.toml is read once.
pub fn open(paths: &Paths) -> Result<(Box<dyn Store>, Choice)> {
    let config = Config::load(paths)?;
    let (asked, origin) = setting(&config)?;
    let store: Box<dyn Store> = match asked {
        Backend::File => Box::new(vault_store(paths, &config)),
        Backend::Keychain => Box::new(item_store(paths, origin)?),
        Backend::OpenBao => Box::new(OpenBaoStore::new(paths, &config.openbao.resolved())?),
        // A vault of an earlier coffer settles it without asking the keychain.
        Backend::Auto if settled(paths, asked) == Backend::File => {
            // Best effort: a read-only home still serves, and the vault decides again next time.
            let _ = record(paths, Backend::File);
            return Ok((
                Box::new(vault_store(paths, &config)),
                Choice {
                    used: Backend::File,
                    origin: Origin::Config,
                },
            ));
        }
        Backend::Auto => Box::new(Undecided {
            paths: paths.clone(),
            chosen: OnceLock::new(),
        }),
    };
    Ok((
        store,
        Choice {
            used: asked,
            origin,
        },
    ))
}

/// The file vault, its keychain-sealed key kept in the unlock cache for the unlock window.
/// The central store that config.toml and the `BAO_*`/`VAULT_*` environment describe.
pub fn central_store(paths: &Paths) -> Result<OpenBaoStore> {
    OpenBaoStore::new(paths, &Config::load(paths)?.openbao.resolved())
}

pub fn file_store(paths: &Paths) -> Result<FileStore> {
    Ok(vault_store(paths, &Config::load(paths)?))
}

fn vault_store(paths: &Paths, config: &Config) -> FileStore {
    FileStore::new(
        paths.clone(),
        Unlocker {
            cache_keychain_unseal: Some(keychain_window(config)),
            ..Unlocker::default()
        },
    )
}

/// The one rule for sealing a new vault where nothing was asked: by a key in the OS keychain
/// where it answers and is unlocked, by a passphrase where there is none at all; a keychain
/// that is there but locked or failing decides nothing (`Err`): a passing state never makes a
/// lasting choice.
pub fn seals_with_keychain(
    keychain: &std::result::Result<Keychain, Unusable>,
) -> std::result::Result<bool, Unusable> {
    match keychain {
        Ok(_) => Ok(true),
        Err(why) if why.absent() => Ok(false),
        Err(why) => Err(why.clone()),
    }
}

/// What `auto` means here now: an earlier coffer's vault settles it as `file` (the next call
/// records that); otherwise it stays undecided until the first entry.
pub fn settled(paths: &Paths, asked: Backend) -> Backend {
    match asked {
        Backend::Auto if paths.vault().exists() => Backend::File,
        other => other,
    }
}

/// The file vault for a command that may create it (the first entry, `coffer init`,
/// `coffer migrate --to file`): a new vault is sealed by the OS keychain when `keychain` is
/// usable, by a passphrase when there is none, and not created while it is locked or failing.
pub fn new_vault_store(
    paths: &Paths,
    keychain: &std::result::Result<Keychain, Unusable>,
) -> Result<FileStore> {
    let mut store = file_store(paths)?;
    if !paths.vault().exists() {
        let in_keychain = seals_with_keychain(keychain).map_err(|why| undecidable(&why))?;
        store = FileStore::new(
            paths.clone(),
            Unlocker {
                new_vault_in_keychain: in_keychain,
                cache_keychain_unseal: Some(keychain_window(&Config::load(paths)?)),
                ..Unlocker::default()
            },
        );
    }
    Ok(store)
}

/// Writes `backend` to config.toml, keeping every other setting.
pub fn record(paths: &Paths, backend: Backend) -> Result<()> {
    let mut config = Config::load(paths)?;
    if config.backend != Some(backend) {
        config.backend = Some(backend);
        config.save(paths)?;
    }
    Ok(())
}

/// How long a key unsealed through the keychain stays in the unlock cache: the unlock timeout,
/// but never "until logout" (the kernel cannot see a desktop logout or a keychain being
/// locked, so an unbounded cache would outlive both).
fn keychain_window(config: &Config) -> Timeout {
    match config.unlock.timeout {
        Some(timeout) if timeout.seconds().is_some() => timeout,
        _ => Timeout::DEFAULT,
    }
}

/// The item store, or the one line that says it cannot be reached here.
fn item_store(paths: &Paths, origin: Origin) -> Result<KeychainStore> {
    let keychain = Keychain::open().map_err(|why| {
        let by = match origin {
            Origin::Environment => format!("{ENV}=keychain"),
            _ => format!("backend = \"keychain\" in {}", paths.config().display()),
        };
        Error::KeychainStoreUnreachable { by, why }
    })?;
    Ok(KeychainStore::new(keychain, paths))
}

fn undecidable(why: &Unusable) -> Error {
    Error::Undecidable { why: why.clone() }
}

/// The store before any is chosen: reads find nothing (or an earlier coffer's keychain items),
/// and the first write chooses, creates and records the store.
#[derive(Debug)]
struct Undecided {
    paths: Paths,
    chosen: OnceLock<Box<dyn Store>>,
}

impl Undecided {
    /// The store to read, if any holds entries: only an earlier coffer's keychain items can.
    /// Without a session bus this asks nothing.
    fn for_reading(&self) -> Result<Option<&dyn Store>> {
        if let Some(store) = self.chosen.get() {
            return Ok(Some(&**store));
        }
        match Keychain::open() {
            Ok(keychain) => {
                let items = KeychainStore::new(keychain, &self.paths);
                if items.list()?.is_empty() {
                    return Ok(None);
                }
                record(&self.paths, Backend::Keychain)?;
                Ok(Some(self.keep(Box::new(items))))
            }
            Err(why) if why.absent() => Ok(None),
            Err(why) => Err(undecidable(&why)),
        }
    }

    /// Chooses, creates and records the store: the first entry's moment.
    fn for_writing(&self) -> Result<&dyn Store> {
        if let Some(store) = self.chosen.get() {
            return Ok(&**store);
        }
        let keychain = Keychain::open();
        if let Ok(keychain) = &keychain {
            let items = KeychainStore::new(keychain.clone(), &self.paths);
            if !items.list()?.is_empty() {
                record(&self.paths, Backend::Keychain)?;
                return Ok(self.keep(Box::new(items)));
            }
        }
        let vault = new_vault_store(&self.paths, &keychain)?;
        match vault.init() {
            Ok(()) | Err(Error::VaultExists { .. }) => {}
            Err(error) => return Err(error),
        }
        // Recorded only once the vault exists: whoever reads the record finds the vault.
        record(&self.paths, Backend::File)?;
        Ok(self.keep(Box::new(vault)))
    }

    fn keep(&self, store: Box<dyn Store>) -> &dyn Store {
        let _ = self.chosen.set(store);
        &**self.chosen.get().expect("set just above")
    }
}

impl Store for Undecided {
    fn find(&self, keys: &[String]) -> Result<Option<Entry>> {
        match self.for_reading()? {
            Some(store) => store.find(keys),
            None => Ok(None),
        }
    }

    fn peek(&self, keys: &[String]) -> Result<Option<Entry>> {
        match self.for_reading()? {
            Some(store) => store.peek(keys),
            None => Ok(None),
        }
    }

    fn put(&self, key: &str, entry: Entry) -> Result<()> {
        self.for_writing()?.put(key, entry)
    }

    fn put_all(&self, entries: Vec<(String, Entry)>) -> Result<()> {
        self.for_writing()?.put_all(entries)
    }

    fn remove(&self, keys: &[String]) -> Result<Option<String>> {
        match self.for_reading()? {
            Some(store) => store.remove(keys),
            None => Ok(None),
        }
    }

    fn list(&self) -> Result<Vec<Summary>> {
        match self.for_reading()? {
            Some(store) => store.list(),
            None => Ok(Vec::new()),
        }
    }

    fn update(&self, key: &str, change: &mut dyn FnMut(&mut Option<Entry>) -> bool) -> Result<()> {
        self.for_writing()?.update(key, change)
    }
}

/// What seals a new vault: `coffer init --sealing`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Sealing {
    /// The OS keychain where one answers and is unlocked, else a passphrase.
    Auto,
    /// A key from the passphrase by Argon2id: works anywhere, asks for the passphrase.
    Passphrase,
    /// A random key kept in the OS keychain: no passphrase, while the keychain is reachable.
    Keychain,
}

/// `coffer init`: a new vault with these Argon2id parameters (MiB of memory, iterations),
/// sealed as asked, recorded as the store in use so that every later call opens it without
/// probing anything. Returns whether its key is kept in the OS keychain.
pub fn create_vault(
    paths: &Paths,
    memory_mib: u32,
    iterations: u32,
    sealing: Sealing,
) -> Result<bool> {
    let params = KdfParams {
        memory_kib: memory_mib.saturating_mul(1024),
        iterations,
        parallelism: 1,
    };
    if !params.within_bounds() {
        return Err(Error::KdfOutOfBounds);
    }
    if let (Backend::Keychain, origin) = configured(paths)?
        && origin != Origin::Environment
    {
        return Err(Error::VaultBesideKeychain {
            config: paths.config(),
        });
    }
    let in_keychain = match sealing {
        Sealing::Keychain => true,
        Sealing::Passphrase => false,
        Sealing::Auto => seals_with_keychain(&Keychain::open())
            .map_err(|why| Error::SealingUndecidable { why })?,
    };
    let store = FileStore::new(
        paths.clone(),
        Unlocker {
            new_vault_params: Some(params),
            new_vault_in_keychain: in_keychain,
            ..Unlocker::default()
        },
    );
    store.init()?;
    record(paths, Backend::File)?;
    Ok(in_keychain)
}

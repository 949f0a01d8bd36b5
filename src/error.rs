//! The library's errors. Each message is one line that says what happened and what to do.

use std::path::PathBuf;

use crate::files::FileError;
use crate::os::keychain::{KeychainError, Unusable};
use crate::paths::PathsError;
use crate::server_url::UrlError;
use crate::token::TokenError;
use crate::vault::VaultError;
use crate::vault::crypto::KdfParams;

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Url(#[from] UrlError),
    #[error(transparent)]
    File(#[from] FileError),
    #[error(transparent)]
    Paths(#[from] PathsError),
    #[error("{}: {source}", path.display())]
    Vault { path: PathBuf, source: VaultError },
    #[error(
        "the vault is locked and no passphrase is available: run `coffer unlock` in a terminal, \
         or set COFFER_PASSPHRASE_FILE to a 0600 file holding the passphrase; see: docs/unlocking.md"
    )]
    Locked,
    /// A first run with nothing to seal a new vault with: the way forward is creating it.
    #[error(
        "no vault yet at {} and no passphrase to create one: set COFFER_PASSPHRASE_FILE to a 0600 \
         file holding a new passphrase, or run `coffer init` in a terminal; see: docs/unlocking.md",
        path.display()
    )]
    NoPassphraseForNewVault { path: PathBuf },
    /// The passphrase a source gave does not open the vault. Running `coffer unlock` would read
    /// the same source again, so the advice names the source.
    #[error(
        "{}: cannot unlock the vault: the passphrase is wrong, or the vault header is damaged; \
         the passphrase came from {from}: {fix}; see: docs/unlocking.md",
        path.display()
    )]
    WrongPassphrase {
        path: PathBuf,
        from: String,
        fix: String,
    },
    /// An erase that could not be done now; it is recorded and finished later.
    #[error(
        "{registry} was NOT erased: {cause}; the erase is recorded and the next coffer command \
         that opens the vault finishes it (`coffer unlock` does it now); see: \
         docs/troubleshooting.md#a-logout-the-vault-refuses"
    )]
    ErasePending {
        registry: String,
        #[source]
        cause: Box<Error>,
    },
    #[error(
        "the passphrase of {} was changed by another process meanwhile; nothing was changed: \
         run `coffer passwd` again",
        path.display()
    )]
    ChangedMeanwhile { path: PathBuf },
    #[error("no vault yet at {}: run `coffer init` (or `docker login`, which creates it)", path.display())]
    NoVault { path: PathBuf },
    #[error("a vault already exists at {}; use `coffer passwd` to change its passphrase", path.display())]
    VaultExists { path: PathBuf },
    #[error(transparent)]
    Passphrase(#[from] crate::unlock::passphrase::PassphraseError),
    #[error(transparent)]
    Unlock(#[from] crate::secret_cache::CacheError),
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    #[error("the {what} is longer than {max} bytes; refusing it")]
    TooLong { what: &'static str, max: usize },
    #[error("nothing is stored for {0}; `coffer ls` shows what is")]
    NothingStored(String),
    #[error(
        "{server_url} holds an identity token, which {format} cannot use; leave it out with \
         --registry"
    )]
    ExportNeedsPassword { server_url: String, format: String },
    #[error("cannot build the archive: {0}")]
    ExportArchive(#[source] std::io::Error),
    #[error("cannot encode YAML: {0}")]
    ExportYaml(#[source] serde_norway::Error),
    #[error("cannot encode JSON: {0}")]
    ExportJson(#[source] EntryError),
    #[error(
        "{first} and {second} are both {key:?} in {format}, which holds one credential per name, so one would be lost; export them one at a time with --registry, or remove the one not needed with `coffer rm`"
    )]
    ExportCollision {
        format: &'static str,
        key: String,
        first: String,
        second: String,
    },
    #[error(
        "{first} and {second} are the same registry to coffer ({key}), so importing both would keep only one; remove one of them from the source, then import again"
    )]
    ImportCollision {
        key: String,
        first: String,
        second: String,
    },
    #[error(transparent)]
    Token(#[from] TokenError),
    #[error(transparent)]
    OpenBao(#[from] crate::store::openbao::error::BaoError),
    #[error(transparent)]
    Keychain(#[from] KeychainError),
    /// A keychain-sealed vault whose keychain cannot be reached here: where the credentials
    /// are, and that `coffer unlock` in the desktop session opens them for every session.
    #[error(
        "coffer's credentials are in {}, sealed by a key in the OS keychain, which cannot be \
         reached here: {why}; {}; see: docs/storage.md#the-store-chosen-once",
        path.display(),
        if why.absent() {
            "run `coffer unlock` in your desktop session: it opens the vault for every \
             session of yours (ssh, cron) until the unlock timeout"
        } else {
            why.fix()
        }
    )]
    SealedVaultKeychainUnreachable {
        path: PathBuf,
        #[source]
        why: Unusable,
    },
    #[error(
        "this vault is sealed by a key in the OS keychain, and the keychain has none for it \
         (service {service}, account {account}); restore that keychain, or the vault cannot be opened"
    )]
    NoSealingKey {
        service: &'static str,
        account: String,
    },
    #[error(
        "the keychain item {service}/{account} is not a 256-bit key; it was changed outside coffer"
    )]
    BadSealingKey {
        service: &'static str,
        account: String,
    },
    /// A keychain item under coffer's service that does not decode as an entry.
    #[error(
        "the keychain item (service {service}, account {account}) is not a coffer entry \
         ({reason}); delete that one item with `{delete_command}`, then store the credential again"
    )]
    NotAnEntry {
        service: String,
        account: String,
        reason: String,
        delete_command: String,
    },
    #[error(
        "the keychain entry for {server_url} says its secret is in {}, which lacks it; log in \
         to that registry again",
        vault.display()
    )]
    OverflowMissing { server_url: String, vault: PathBuf },
    /// The recorded item store, in a context that cannot reach the keychain.
    #[error(
        "coffer's credentials are in the OS keychain ({by}), which cannot be reached here: \
         {why}; {}; see: docs/storage.md#the-store-chosen-once",
        if why.absent() {
            "use coffer from your desktop session, or there run `coffer migrate --to file` \
             (a vault sealed by the keychain, open to every session of yours while unlocked)"
        } else {
            why.fix()
        }
    )]
    KeychainStoreUnreachable {
        by: String,
        #[source]
        why: Unusable,
    },
    #[error(
        "Argon2id parameters out of bounds: memory {}..={} MiB, iterations {}..={}",
        KdfParams::MIN.memory_kib / 1024,
        KdfParams::MAX.memory_kib / 1024,
        KdfParams::MIN.iterations,
        KdfParams::MAX.iterations
    )]
    KdfOutOfBounds,
    #[error(
        "the store in use is the OS keychain (backend = \"keychain\" in {}); `coffer migrate \
         --to file` moves its entries to a new vault",
        config.display()
    )]
    VaultBesideKeychain { config: PathBuf },
    #[error(
        "the OS keychain {why}; {}, or choose `--sealing passphrase`; see: \
         docs/storage.md#the-store-chosen-once",
        why.fix()
    )]
    SealingUndecidable {
        #[source]
        why: Unusable,
    },
    /// No store chosen yet, and a keychain that is there but locked or failing.
    #[error(
        "coffer has not chosen where to keep credentials yet, and the OS keychain {why}; {}, or \
         choose a passphrase-sealed vault with `coffer init --sealing passphrase`; see: \
         docs/storage.md#the-store-chosen-once",
        why.fix()
    )]
    Undecidable {
        #[source]
        why: Unusable,
    },
    #[error("{variable} must be auto, keychain, file or openbao, not {value:?}")]
    UnknownBackend {
        variable: &'static str,
        value: String,
    },
    #[error("{0} did not read back from the target store; it was left in the source")]
    NotReadBack(String),
    #[error(transparent)]
    Description(#[from] crate::store::description::DescriptionError),
    #[error(transparent)]
    Import(#[from] crate::import::ImportError),
    #[error(transparent)]
    AuthFile(#[from] crate::auth_file::AuthFileError),
    #[error("stored entry is unreadable ({0}); the vault was written by an incompatible coffer")]
    Entry(#[source] EntryError),
}

/// A stored entry's JSON that does not decode (or encode). Shown as its kind and column only,
/// in `Display` and `Debug` alike: serde_json's own message may quote the record, secret
/// included.
pub struct EntryError(pub serde_json::Error);

impl std::fmt::Debug for EntryError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "EntryError({self})")
    }
}

impl std::fmt::Display for EntryError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0.column() {
            0 => write!(f, "{:?}", self.0.classify()),
            column => write!(f, "{:?} at column {column}", self.0.classify()),
        }
    }
}

impl std::error::Error for EntryError {}

impl From<Unusable> for Error {
    fn from(why: Unusable) -> Self {
        Error::Keychain(KeychainError::Unusable(why))
    }
}

impl Error {
    /// A stored entry that does not decode or encode.
    pub fn entry(source: serde_json::Error) -> Error {
        Error::Entry(EntryError(source))
    }
}

//! Turning a vault's key header into its data key: from an unlock cache when one holds it,
//! from the OS keychain for a keychain-sealed vault, else from a passphrase.

pub mod cache;
pub mod keychain_sealed;
pub mod passphrase;

use std::path::Path;

use secrecy::ExposeSecret;

use crate::error::{Error, Result};
use crate::vault::crypto::{self, KdfParams};
use crate::vault::format::{KeyHeader, Sealing};
use crate::vault::{self, NewSealing, VaultError, VaultKey};

/// Obtains vault keys for the file store.
#[derive(Debug, Default)]
pub struct Unlocker {
    /// Argon2id work factors for a vault created by this process.
    pub new_vault_params: Option<KdfParams>,
    /// Seal a vault created by this process with a key kept in the OS keychain.
    pub new_vault_in_keychain: bool,
    /// Keep a data key that was unsealed through the OS keychain in the unlock cache for this
    /// long, so that the keychain is asked once per window rather than on every `get`.
    pub cache_keychain_unseal: Option<cache::Timeout>,
}

impl Unlocker {
    /// The data key of the existing vault at `path`: from the unlock cache (`coffer unlock`)
    /// when it holds one, else from the vault's own sealing.
    pub fn vault_key(&self, path: &Path, header: &KeyHeader) -> Result<VaultKey> {
        if let Some(key) = cache::lookup(&header.vault_id)? {
            return Ok(VaultKey::from_cache(header, key));
        }
        self.unseal(path, header)
    }

    /// The data key from the vault's sealing (the passphrase), never from the unlock cache.
    pub fn unseal(&self, path: &Path, header: &KeyHeader) -> Result<VaultKey> {
        let in_vault = |source| Error::Vault {
            path: path.to_path_buf(),
            source,
        };
        match header.sealing {
            Sealing::Passphrase(_) => {
                let (passphrase, source) =
                    passphrase::read("coffer vault passphrase: ", false)?.ok_or(Error::Locked)?;
                let kek = vault::derive_kek(passphrase.expose_secret().as_bytes(), header)
                    .map_err(in_vault)?;
                VaultKey::unwrap(header, &kek).map_err(|error| match error {
                    VaultError::WrongKey => wrong_passphrase(path, &source),
                    other => in_vault(other),
                })
            }
            Sealing::Keychain => {
                let key = VaultKey::unwrap(header, &keychain_sealed::kek(path, header)?)
                    .map_err(in_vault)?;
                if let Some(timeout) = self.cache_keychain_unseal {
                    // Best effort: without a cache the next `get` asks the keychain again.
                    let _ = cache::store(&header.vault_id, key.data_key(), timeout);
                }
                Ok(key)
            }
        }
    }

    /// A key for a new vault, sealed by a key in the keychain or by a passphrase from the
    /// usual sources.
    pub fn new_vault_key(&self, path: &Path) -> Result<VaultKey> {
        if self.new_vault_in_keychain {
            return keychain_sealed::new_vault_key();
        }
        let (passphrase, _) =
            passphrase::read("new coffer vault passphrase: ", true)?.ok_or_else(|| {
                Error::NoPassphraseForNewVault {
                    path: path.to_path_buf(),
                }
            })?;
        let params = self.new_vault_params.unwrap_or(KdfParams::DEFAULT);
        Ok(key_for_new_passphrase(
            passphrase.expose_secret(),
            params,
            None,
        ))
    }
}

/// Says which source gave the wrong passphrase and how to fix that source: `coffer unlock`
/// reads the same sources in the same order, so it is advice only for a typed passphrase.
fn wrong_passphrase(path: &Path, source: &passphrase::Source) -> Error {
    let fix = match source {
        passphrase::Source::File(file) => format!(
            "put the right passphrase in {} (or unset {} and run `coffer unlock` in a terminal)",
            file.display(),
            passphrase::FILE_VAR
        ),
        passphrase::Source::SystemdCredential(file) => format!(
            "put the right passphrase in the unit's credential {}",
            file.display()
        ),
        passphrase::Source::Environment => format!(
            "set {} to the right passphrase (or unset it and run `coffer unlock` in a terminal)",
            passphrase::VALUE_VAR
        ),
        passphrase::Source::Terminal => "type it again".to_owned(),
    };
    Error::WrongPassphrase {
        path: path.to_path_buf(),
        from: source.to_string(),
        fix,
    }
}

/// A passphrase-sealed key: a new data key, or `existing` re-wrapped (passphrase change).
pub fn key_for_new_passphrase(
    passphrase: &str,
    params: KdfParams,
    existing: Option<&VaultKey>,
) -> VaultKey {
    let salt = crypto::random_bytes();
    let kek = crypto::derive_from_passphrase(passphrase.as_bytes(), &salt, params);
    let sealing = NewSealing::Passphrase(params);
    match existing {
        Some(key) => key.rewrap(sealing, salt, &kek),
        None => VaultKey::generate(sealing, salt, &kek),
    }
}

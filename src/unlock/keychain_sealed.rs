//! A vault sealed by a random 256-bit key-encryption key kept in the OS keychain, so nobody
//! types a passphrase. The item is named by the vault's id: several vaults never share a key.

use std::path::Path;

use crate::error::{Error, Result};
use crate::os::keychain::{Keychain, Unusable};
use crate::vault::crypto::{self, KEY_LEN};
use crate::vault::format::KeyHeader;
use crate::vault::{NewSealing, VaultKey};

/// The keychain service of vault keys (`secret-tool search service coffer-vault-key`).
pub const SERVICE: &str = "coffer-vault-key";

fn account(vault_id: &[u8; 16]) -> String {
    vault_id.iter().map(|b| format!("{b:02x}")).collect()
}

/// A new vault's data key, wrapped by a new key-encryption key that is stored in the keychain.
pub fn new_vault_key() -> Result<VaultKey> {
    let keychain = Keychain::open()?;
    let kek = crypto::random_key();
    let key = VaultKey::generate(NewSealing::Keychain, crypto::random_bytes(), &kek);
    let id = account(&key.header().vault_id);
    keychain.write(
        SERVICE,
        &id,
        &format!("coffer vault key {id}"),
        &Default::default(),
        kek.as_ref(),
    )?;
    Ok(key)
}

/// The key-encryption key of the keychain-sealed vault at `path`, from the keychain.
pub fn kek(path: &Path, header: &KeyHeader) -> Result<crypto::Key> {
    let id = account(&header.vault_id);
    let keychain = Keychain::open().map_err(|why| unreachable(path, &why))?;
    let bytes = keychain
        .read(SERVICE, &id)?
        .ok_or_else(|| Error::NoSealingKey {
            service: SERVICE,
            account: id.clone(),
        })?;
    let mut kek = zeroize::Zeroizing::new([0u8; KEY_LEN]);
    if bytes.len() != KEY_LEN {
        return Err(Error::BadSealingKey {
            service: SERVICE,
            account: id,
        });
    }
    kek.copy_from_slice(&bytes);
    Ok(kek)
}

fn unreachable(path: &Path, why: &Unusable) -> Error {
    Error::SealedVaultKeychainUnreachable {
        path: path.to_path_buf(),
        why: why.clone(),
    }
}

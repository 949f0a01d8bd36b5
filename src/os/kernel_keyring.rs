//! The unlock cache in the Linux kernel's user keyring (`keyrings(7)`): a `user` key named
//! `coffer:vault:<vault id>` in `@u`, whose payload is the data key followed by its expiry.
//!
//! The kernel enforces the timeout (the key is gone when it expires, whatever coffer does), the
//! payload lives in unswappable kernel memory rather than in a process that could be dumped, and
//! a `get` reads it with three system calls. The key grants read and search to processes of the
//! same user, which is the same boundary as the agent's socket: a service whose session keyring
//! does not link `@u` (systemd's default for system services) still finds it.

use linux_keyutils::{KeyError, KeyPermissionsBuilder, KeyRing, KeyRingIdentifier, Permission};
use zeroize::Zeroizing;

use crate::unlock::cache::{Cached, Timeout, Unavailable, VaultId};
use crate::vault::crypto::Key;

/// The data key, then its expiry in Unix seconds (little-endian; 0 for none).
const PAYLOAD_LEN: usize = 32 + 8;

fn description(id: &VaultId) -> String {
    format!("coffer:vault:{}", crate::unlock::cache::hex(id))
}

fn user_keyring() -> Result<KeyRing, Unavailable> {
    KeyRing::from_special_id(KeyRingIdentifier::User, true).map_err(unavailable)
}

fn unavailable(error: KeyError) -> Unavailable {
    Unavailable(match error {
        KeyError::PermissionDenied => {
            "keyctl is not permitted here (a container's seccomp filter?)".to_owned()
        }
        KeyError::Unknown(libc::ENOSYS) => "this kernel has no keyrings (ENOSYS)".to_owned(),
        other => format!("keyctl failed: {other:?}"),
    })
}

/// Errors that mean "no such key now" rather than "the keyring does not work".
fn is_absent(error: KeyError) -> bool {
    matches!(
        error,
        KeyError::KeyDoesNotExist | KeyError::KeyExpired | KeyError::KeyRevoked
    )
}

/// Whether keyctl works here at all.
pub fn probe() -> Result<(), Unavailable> {
    user_keyring().map(|_| ())
}

pub fn lookup(id: &VaultId) -> Result<Option<Cached>, Unavailable> {
    let key = match user_keyring()?.search(&description(id)) {
        Ok(key) => key,
        Err(e) if is_absent(e) => return Ok(None),
        Err(e) => return Err(unavailable(e)),
    };
    let mut payload = Zeroizing::new([0u8; PAYLOAD_LEN]);
    match key.read(&mut *payload) {
        Ok(PAYLOAD_LEN) => {}
        // Not a payload coffer wrote; the passphrase decides.
        Ok(_) => return Ok(None),
        Err(e) if is_absent(e) => return Ok(None),
        Err(e) => return Err(unavailable(e)),
    }
    let mut data_key = Zeroizing::new([0u8; 32]);
    data_key.copy_from_slice(&payload[..32]);
    let mut expiry = [0u8; 8];
    expiry.copy_from_slice(&payload[32..]);
    let expires_at = Some(u64::from_le_bytes(expiry)).filter(|&at| at != 0);
    Ok(Some(Cached {
        key: data_key,
        expires_at,
    }))
}

pub fn store(
    id: &VaultId,
    data_key: &Key,
    timeout: Timeout,
    expires_at: Option<u64>,
) -> Result<(), Unavailable> {
    let ring = user_keyring()?;
    // Linking @u into this process's keyring makes what we add to it "possessed" by us, so
    // the permission and timeout calls below succeed even when the session keyring does not
    // link @u. Done before adding, so a failure here leaves nothing behind.
    KeyRing::from_special_id(KeyRingIdentifier::Process, true)
        .and_then(|process| process.link_keyring_id(KeyRingIdentifier::User))
        .map_err(unavailable)?;
    let mut payload = Zeroizing::new([0u8; PAYLOAD_LEN]);
    payload[..32].copy_from_slice(data_key.as_ref());
    payload[32..].copy_from_slice(&expires_at.unwrap_or(0).to_le_bytes());
    let key = ring
        .add_key(&description(id), &*payload)
        .map_err(unavailable)?;
    // The user's other processes may not possess the key (a service's private session
    // keyring), so they get read and search; changing it stays with its possessor.
    let perms = KeyPermissionsBuilder::builder()
        .posessor(Permission::ALL)
        .user(Permission::VIEW | Permission::READ | Permission::SEARCH)
        .build();
    // The kernel takes an unsigned int; 0 means no timeout (until `coffer lock` or the
    // user's last logout).
    let seconds = timeout.seconds().map_or(0, |s| s.min(u64::from(u32::MAX))) as usize;
    let finished = key.set_perms(perms).and_then(|()| key.set_timeout(seconds));
    if let Err(e) = finished {
        let _ = key.invalidate();
        return Err(unavailable(e));
    }
    Ok(())
}

/// Invalidates the vault's key at once; `true` if there was one.
pub fn clear(id: &VaultId) -> Result<bool, Unavailable> {
    match user_keyring()?.search(&description(id)) {
        Ok(key) => key.invalidate().map(|()| true).map_err(unavailable),
        Err(e) if is_absent(e) => Ok(false),
        Err(e) => Err(unavailable(e)),
    }
}

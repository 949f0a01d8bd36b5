//! The unlock cache in the Linux kernel's user keyring (`keyrings(7)`): a `user` key in `@u`
//! per cached secret (`coffer:vault:<vault id>` for a vault's data key, `coffer:token:<identity>`
//! for a chain-mode token), each with a kernel-enforced timeout.
//!
//! The kernel enforces the timeout (the key is gone when it expires, whatever coffer does), the
//! payload lives in unswappable kernel memory rather than in a process that could be dumped, and
//! a `get` reads it with three system calls. The key grants read and search to processes of the
//! same user, which is the same boundary as the agent's socket: a service whose session keyring
//! does not link `@u` (systemd's default for system services) still finds it.

use linux_keyutils::{KeyError, KeyPermissionsBuilder, KeyRing, KeyRingIdentifier, Permission};
use zeroize::Zeroizing;

use super::Unavailable;

/// The most a kernel `user` key holds.
const MAX_PAYLOAD: usize = 32 * 1024;
/// Enough for a vault key and for most registry tokens.
const TYPICAL_PAYLOAD: usize = 2 * 1024;

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

/// The payload of the key named `description`; `None` when there is none (or it expired).
pub fn read(description: &str) -> Result<Option<Zeroizing<Vec<u8>>>, Unavailable> {
    let key = match user_keyring()?.search(description) {
        Ok(key) => key,
        Err(e) if is_absent(e) => return Ok(None),
        Err(e) => return Err(unavailable(e)),
    };
    // Every `get` reads here: a buffer the size of a vault key or a token, so the process touches
    // (and wipes) no more memory than that. The kernel says how long the payload is, so a longer
    // one is read again, at its size.
    let mut size = TYPICAL_PAYLOAD;
    loop {
        let mut payload = Zeroizing::new(vec![0u8; size]);
        match key.read(&mut *payload) {
            Ok(length) if length <= size => {
                payload.truncate(length);
                return Ok(Some(payload));
            }
            Ok(length) if length <= MAX_PAYLOAD && size < length => size = length,
            // Not a payload coffer wrote.
            Ok(_) => return Ok(None),
            Err(e) if is_absent(e) => return Ok(None),
            Err(e) => return Err(unavailable(e)),
        }
    }
}

/// Adds (or replaces) the key `description`, gone after `timeout_seconds` (0: until it is
/// invalidated or the user's last logout).
pub fn write(description: &str, payload: &[u8], timeout_seconds: u64) -> Result<(), Unavailable> {
    let ring = user_keyring()?;
    // Linking @u into this process's keyring makes what we add to it "possessed" by us, so
    // the permission and timeout calls below succeed even when the session keyring does not
    // link @u. Done before adding, so a failure here leaves nothing behind.
    KeyRing::from_special_id(KeyRingIdentifier::Process, true)
        .and_then(|process| process.link_keyring_id(KeyRingIdentifier::User))
        .map_err(unavailable)?;
    let key = ring.add_key(description, payload).map_err(unavailable)?;
    // The user's other processes may not possess the key (a service's private session
    // keyring), so they get read and search; changing it stays with its possessor.
    let perms = KeyPermissionsBuilder::builder()
        .posessor(Permission::ALL)
        .user(Permission::VIEW | Permission::READ | Permission::SEARCH)
        .build();
    // The kernel takes an unsigned int.
    let seconds = timeout_seconds.min(u64::from(u32::MAX)) as usize;
    let finished = key.set_perms(perms).and_then(|()| key.set_timeout(seconds));
    if let Err(e) = finished {
        let _ = key.invalidate();
        return Err(unavailable(e));
    }
    Ok(())
}

/// Invalidates the key `description` at once; `true` if there was one.
pub fn invalidate(description: &str) -> Result<bool, Unavailable> {
    match user_keyring()?.search(description) {
        Ok(key) => key.invalidate().map(|()| true).map_err(unavailable),
        Err(e) if is_absent(e) => Ok(false),
        Err(e) => Err(unavailable(e)),
    }
}

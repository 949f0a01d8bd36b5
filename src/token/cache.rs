//! The token cache of chain mode where there is no vault: `user` keys in the Linux kernel's
//! user keyring (`keyrings(7)`), `coffer:token:<identity>` holding the token and its times,
//! each with a kernel-enforced timeout at the token's expiry. Nothing reaches a disk, and a
//! token outlives neither its lifetime nor the user's last login session.
//!
//! A failed renewal leaves `coffer:token-failure:<identity>` for `retry_after`, so concurrent
//! and following `get`s do not hammer the cloud while it is down.

use super::state::Derived;

/// Why the keyring cannot be used here (keyctl forbidden, no keyrings, not Linux).
#[derive(Debug)]
pub struct Unavailable(pub String);

#[cfg(target_os = "linux")]
pub use linux::{failure, lookup, store, store_failure};

#[cfg(not(target_os = "linux"))]
pub use elsewhere::{failure, lookup, store, store_failure};

#[cfg(target_os = "linux")]
mod linux {
    use std::time::Duration;

    use linux_keyutils::{
        Key, KeyError, KeyPermissionsBuilder, KeyRing, KeyRingIdentifier, Permission,
    };
    use zeroize::Zeroizing;

    use super::*;

    /// A token with its JSON is a few KiB; the kernel's `user` keys take up to 32 KiB.
    const MAX_PAYLOAD: usize = 32 * 1024;

    fn unavailable(error: KeyError) -> Unavailable {
        Unavailable(format!("keyctl failed: {error:?}"))
    }

    fn is_absent(error: KeyError) -> bool {
        matches!(
            error,
            KeyError::KeyDoesNotExist | KeyError::KeyExpired | KeyError::KeyRevoked
        )
    }

    fn user_keyring() -> Result<KeyRing, Unavailable> {
        KeyRing::from_special_id(KeyRingIdentifier::User, true).map_err(unavailable)
    }

    fn find(description: &str) -> Result<Option<Key>, Unavailable> {
        match user_keyring()?.search(description) {
            Ok(key) => Ok(Some(key)),
            Err(e) if is_absent(e) => Ok(None),
            Err(e) => Err(unavailable(e)),
        }
    }

    fn read(description: &str) -> Result<Option<Zeroizing<Vec<u8>>>, Unavailable> {
        let Some(key) = find(description)? else {
            return Ok(None);
        };
        let mut buffer = Zeroizing::new(vec![0u8; MAX_PAYLOAD]);
        match key.read(&mut *buffer) {
            Ok(length) if length <= MAX_PAYLOAD => {
                buffer.truncate(length);
                Ok(Some(buffer))
            }
            Ok(_) => Ok(None),
            Err(e) if is_absent(e) => Ok(None),
            Err(e) => Err(unavailable(e)),
        }
    }

    /// Adds (or replaces) a key readable by the user's processes, gone after `lifetime`.
    fn write(description: &str, payload: &[u8], lifetime: Duration) -> Result<(), Unavailable> {
        let ring = user_keyring()?;
        // Possessing @u through this process's keyring lets us set the permissions and timeout
        // below even when the session keyring does not link @u (as for the unlock cache).
        KeyRing::from_special_id(KeyRingIdentifier::Process, true)
            .and_then(|process| process.link_keyring_id(KeyRingIdentifier::User))
            .map_err(unavailable)?;
        let key = ring.add_key(description, payload).map_err(unavailable)?;
        let perms = KeyPermissionsBuilder::builder()
            .posessor(Permission::ALL)
            .user(Permission::VIEW | Permission::READ | Permission::SEARCH)
            .build();
        let seconds = lifetime.as_secs().clamp(1, u64::from(u32::MAX)) as usize;
        let finished = key.set_perms(perms).and_then(|()| key.set_timeout(seconds));
        if let Err(e) = finished {
            let _ = key.invalidate();
            return Err(unavailable(e));
        }
        Ok(())
    }

    fn token_key(identity: &str) -> String {
        format!("coffer:token:{identity}")
    }

    fn failure_key(identity: &str) -> String {
        format!("coffer:token-failure:{identity}")
    }

    pub fn lookup(identity: &str) -> Result<Option<Derived>, Unavailable> {
        Ok(read(&token_key(identity))?.and_then(|bytes| serde_json::from_slice(&bytes).ok()))
    }

    /// Caches a token until it expires; a token without expiry is kept for an hour.
    pub fn store(identity: &str, token: &Derived) -> Result<(), Unavailable> {
        let now = crate::store::now();
        let lifetime = token.expires_at.map_or(3600, |at| at.saturating_sub(now));
        if lifetime == 0 {
            return Ok(());
        }
        let payload =
            Zeroizing::new(serde_json::to_vec(token).map_err(|e| Unavailable(e.to_string()))?);
        write(
            &token_key(identity),
            &payload,
            Duration::from_secs(lifetime),
        )
    }

    /// The last renewal's failure, while it is younger than `retry_after`.
    pub fn failure(identity: &str) -> Option<String> {
        let bytes = read(&failure_key(identity)).ok()??;
        String::from_utf8(bytes.to_vec()).ok()
    }

    pub fn store_failure(
        identity: &str,
        message: &str,
        retry_after: Duration,
    ) -> Result<(), Unavailable> {
        if retry_after.is_zero() {
            return Ok(());
        }
        write(&failure_key(identity), message.as_bytes(), retry_after)
    }
}

#[cfg(not(target_os = "linux"))]
mod elsewhere {
    use std::time::Duration;

    use super::*;

    fn unavailable() -> Unavailable {
        Unavailable("the kernel keyring exists only on Linux".to_owned())
    }

    pub fn lookup(_: &str) -> Result<Option<Derived>, Unavailable> {
        Err(unavailable())
    }

    pub fn store(_: &str, _: &Derived) -> Result<(), Unavailable> {
        Err(unavailable())
    }

    pub fn failure(_: &str) -> Option<String> {
        None
    }

    pub fn store_failure(_: &str, _: &str, _: Duration) -> Result<(), Unavailable> {
        Err(unavailable())
    }
}

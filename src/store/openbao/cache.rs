//! What a node remembers between `get`s, in [`crate::secret_cache`]'s slots:
//! the kernel keyring with a kernel-enforced expiry, or where keyctl is forbidden a `coffer
//! agent`. Nothing reaches a disk.
//!
//! Per store and identity (a hash of the addresses, namespace, layout and login settings):
//! - `bao-login-<id>`: the session (token, lease, renewal time, the mount's KV version), until
//!   the token expires;
//! - `bao-entries-<id>`: the entries read (and the keys found absent), each with the time it was
//!   read. An entry younger than `cache_for` answers without a request; one younger than
//!   `stale_for` answers only while no server does. The slot expires `stale_for` after its last
//!   write, so nothing outlives that;
//! - `bao-secret-id-<id>`: an unwrapped AppRole secret-id, for logging in again;
//! - `bao-state-<id>`: not secret: the last login failure (for back-off) and the last error, the
//!   last stale answer, for `coffer doctor`.
//!
//! A cache that cannot be written is no error: the next `get` asks the server again.

use std::collections::BTreeMap;

use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use super::auth::Session;
use crate::clock::now;
use crate::secret_cache::{self, Slot};
use crate::store::Entry;

/// The longest a failed login keeps the next one waiting.
const MAX_BACKOFF: u64 = 300;

#[derive(Debug, Clone)]
pub struct Cache {
    id: String,
}

/// An entry as read at `at`; `entry: None` records that the key was absent.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Cached {
    pub at: u64,
    pub entry: Option<Entry>,
}

/// Not secret: what `coffer doctor` tells about the last requests.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct State {
    /// Consecutive failed logins, the last one's time, whether the server was away, and why.
    #[serde(default)]
    pub failed_logins: u32,
    #[serde(default)]
    pub failed_at: u64,
    #[serde(default)]
    pub away: bool,
    #[serde(default)]
    pub last_error: Option<String>,
    #[serde(default)]
    pub last_error_at: u64,
    /// The last time an entry was served past `cache_for` because no server answered.
    #[serde(default)]
    pub served_stale_at: u64,
}

impl State {
    /// Seconds until a login may be tried again, if it must wait.
    pub fn backoff_left(&self, at: u64) -> Option<u64> {
        if self.failed_logins == 0 {
            return None;
        }
        let wait = 1u64
            .checked_shl(self.failed_logins.saturating_sub(1).min(16))
            .unwrap_or(MAX_BACKOFF)
            .min(MAX_BACKOFF);
        let until = self.failed_at.saturating_add(wait);
        (at < until).then(|| until - at)
    }
}

impl Cache {
    pub fn new(id: String) -> Cache {
        Cache { id }
    }

    fn slot(&self, kind: &'static str) -> Slot {
        Slot::new(kind, self.id.clone())
    }

    pub fn session(&self) -> Option<Session> {
        let held = secret_cache::lookup(&self.slot("bao-login")).ok()??;
        serde_json::from_slice(&held.secret).ok()
    }

    pub fn keep_session(&self, session: &Session) {
        let at = now();
        // A token that never expires is kept a day, then looked up again.
        let until = session.expires_at.unwrap_or(at + 86_400);
        if until <= at {
            return;
        }
        if let Ok(payload) = serde_json::to_vec(session).map(Zeroizing::new) {
            let _ = secret_cache::store(&self.slot("bao-login"), &payload, Some(until));
        }
    }

    pub fn forget_session(&self) {
        let _ = secret_cache::clear(&self.slot("bao-login"));
    }

    pub fn entries(&self) -> BTreeMap<String, Cached> {
        secret_cache::lookup(&self.slot("bao-entries"))
            .ok()
            .flatten()
            .and_then(|held| serde_json::from_slice(&held.secret).ok())
            .unwrap_or_default()
    }

    /// Records what was read (or written) for each key, dropping what is older than `keep`.
    pub fn keep_entries(&self, read: impl IntoIterator<Item = (String, Option<Entry>)>, keep: u64) {
        let at = now();
        let mut entries = self.entries();
        entries.retain(|_, cached| cached.at.saturating_add(keep) > at);
        for (key, entry) in read {
            entries.insert(key, Cached { at, entry });
        }
        if keep == 0 {
            return;
        }
        if let Ok(payload) = serde_json::to_vec(&entries).map(Zeroizing::new) {
            let _ = secret_cache::store(&self.slot("bao-entries"), &payload, Some(at + keep));
        }
    }

    /// Forgets every entry (a denied or revoked node serves nothing it read before).
    pub fn forget_entries(&self) {
        let _ = secret_cache::clear(&self.slot("bao-entries"));
    }

    pub fn secret_id(&self) -> Option<SecretString> {
        let held = secret_cache::lookup(&self.slot("bao-secret-id")).ok()??;
        String::from_utf8(held.secret.to_vec())
            .ok()
            .map(SecretString::from)
    }

    pub fn keep_secret_id(&self, secret_id: &SecretString) {
        let _ = secret_cache::store(
            &self.slot("bao-secret-id"),
            secret_id.expose_secret().as_bytes(),
            None,
        );
    }

    pub fn state(&self) -> State {
        secret_cache::lookup(&self.slot("bao-state"))
            .ok()
            .flatten()
            .and_then(|held| serde_json::from_slice(&held.secret).ok())
            .unwrap_or_default()
    }

    /// Changes the state; it lives a day after its last change.
    pub fn change_state(&self, change: impl FnOnce(&mut State)) {
        let mut state = self.state();
        change(&mut state);
        if let Ok(payload) = serde_json::to_vec(&state) {
            let _ = secret_cache::store(&self.slot("bao-state"), &payload, Some(now() + 86_400));
        }
    }

    /// Forgets everything this identity cached (`coffer logout`-like cleanups and tests).
    pub fn clear(&self) {
        for kind in ["bao-login", "bao-entries", "bao-secret-id", "bao-state"] {
            let _ = secret_cache::clear(&self.slot(kind));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failed_logins_back_off_exponentially_up_to_five_minutes() {
        let state = |failed_logins| State {
            failed_logins,
            failed_at: 1000,
            ..State::default()
        };
        assert_eq!(state(0).backoff_left(1000), None);
        assert_eq!(state(1).backoff_left(1000), Some(1));
        assert_eq!(state(1).backoff_left(1001), None);
        assert_eq!(state(4).backoff_left(1002), Some(6));
        assert_eq!(state(30).backoff_left(1000), Some(300));
    }
}

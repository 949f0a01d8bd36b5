//! The token cache of chain mode where there is no vault: slots of the
//! [`secret_cache`](crate::secret_cache), `token-<identity>` holding the token and its times until the
//! token expires. That is the Linux kernel's user keyring with a kernel-enforced timeout, or,
//! where keyctl is forbidden (a container's seccomp filter), a `coffer agent` that wipes the
//! token and exits at its expiry. Nothing reaches a disk, and a token outlives neither its
//! lifetime nor the user's last login session.
//!
//! A failed renewal leaves `token-failure-<identity>` for `retry_after`, so concurrent and
//! following `get`s do not hammer the cloud while it is down.

use std::time::Duration;

use zeroize::Zeroizing;

use super::state::Derived;
use crate::clock::now;
use crate::secret_cache::{self, CacheError, Slot, State};

type Result<T> = std::result::Result<T, CacheError>;

/// How long a token that states no expiry is kept.
const UNSTATED_LIFETIME: u64 = 3600;

fn token_slot(identity: &str) -> Slot {
    Slot::new("token", identity.to_owned())
}

fn failure_slot(identity: &str) -> Slot {
    Slot::new("token-failure", identity.to_owned())
}

/// The cached token of `identity`; `None` when there is none, or nowhere to keep one.
pub fn lookup(identity: &str) -> Result<Option<Derived>> {
    Ok(secret_cache::lookup(&token_slot(identity))?
        .and_then(|held| serde_json::from_slice(&held.secret).ok()))
}

/// Caches a token until it expires; a token without expiry is kept for an hour.
pub fn store(identity: &str, token: &Derived) -> Result<()> {
    let now = now();
    let expires_at = token
        .expires_at
        .unwrap_or(now.saturating_add(UNSTATED_LIFETIME));
    if expires_at <= now {
        return Ok(());
    }
    // A token of strings and numbers always serializes.
    let Ok(payload) = serde_json::to_vec(token).map(Zeroizing::new) else {
        return Ok(());
    };
    secret_cache::store(&token_slot(identity), &payload, Some(expires_at)).map(|_| ())
}

/// Where this process would cache a minted token, in words for `coffer token status`: the first
/// mechanism that works here, and why the ones before it do not.
pub fn place() -> String {
    let states = match secret_cache::status(None) {
        Ok(states) => states,
        Err(error) => return format!("nowhere: {error}"),
    };
    let mut passed_over = Vec::new();
    for (mechanism, state) in states {
        match state {
            State::Unavailable(why) => passed_over.push(format!("{mechanism}: {why}")),
            _ if passed_over.is_empty() => return format!("{mechanism}, until each token expires"),
            _ => {
                return format!(
                    "{mechanism}, until each token expires ({} is unavailable)",
                    passed_over.join("; ")
                );
            }
        }
    }
    format!(
        "nowhere, so every get asks the cloud: {}",
        passed_over.join("; ")
    )
}

/// The last renewal's failure, while it is younger than `retry_after`.
pub fn failure(identity: &str) -> Option<String> {
    let held = secret_cache::lookup(&failure_slot(identity)).ok()??;
    String::from_utf8(held.secret.to_vec()).ok()
}

pub fn store_failure(identity: &str, message: &str, retry_after: Duration) -> Result<()> {
    if retry_after.is_zero() {
        return Ok(());
    }
    let expires_at = now().saturating_add(retry_after.as_secs().max(1));
    secret_cache::store(
        &failure_slot(identity),
        message.as_bytes(),
        Some(expires_at),
    )
    .map(|_| ())
}

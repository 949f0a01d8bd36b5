//! The unlock cache: after `coffer unlock`, a vault's data key is kept for a while so that
//! `get`, `store` and `list` need neither the passphrase nor an Argon2id run.
//!
//! Two mechanisms, tried in this order:
//! 1. [`keyring`]: the Linux kernel's user keyring. The kernel enforces the timeout, no process
//!    of ours stays behind holding the key, and reading it costs three system calls.
//! 2. [`agent`]: a small `coffer agent` process holding the key in locked memory behind a
//!    0700 Unix socket, where the keyring is missing or forbidden (containers often refuse
//!    `keyctl` through seccomp).
//!
//! A key is cached under the vault's random id, and it is the data key itself: the vault's seal
//! proves it right on every use, so a stale or foreign key can only fail to open the vault.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::{agent, keyring};
use crate::error::{Error, Result};
use crate::vault::crypto::Key;

/// Forces one mechanism (`keyring` or `agent`), as if the other were unavailable.
pub const MECHANISM_VAR: &str = "COFFER_UNLOCK_MECHANISM";

/// The random id in a vault's header that names its cached key.
pub type VaultId = [u8; 16];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mechanism {
    Keyring,
    Agent,
}

/// Every mechanism, in order of preference.
static ALL: [Mechanism; 2] = [Mechanism::Keyring, Mechanism::Agent];

impl Mechanism {
    fn name(self) -> &'static str {
        match self {
            Mechanism::Keyring => "keyring",
            Mechanism::Agent => "agent",
        }
    }
}

impl fmt::Display for Mechanism {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Mechanism::Keyring => "the kernel keyring",
            Mechanism::Agent => "the coffer agent",
        })
    }
}

/// The mechanisms this process may use, in order of preference.
pub fn mechanisms() -> Result<&'static [Mechanism]> {
    let Some(forced) = std::env::var_os(MECHANISM_VAR).filter(|v| !v.is_empty()) else {
        return Ok(&ALL);
    };
    ALL.iter()
        .position(|m| forced == m.name())
        .map(|at| &ALL[at..=at])
        .ok_or(Error::Unlock(UnlockError::UnknownMechanism))
}

/// Why a mechanism cannot be used here, in words for `coffer doctor`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unavailable(pub String);

impl fmt::Display for Unavailable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A cached key and when it expires (Unix seconds; `None`: at `coffer lock` or logout).
/// Its `Debug` shows the expiry, never the key.
pub struct Cached {
    pub key: Key,
    pub expires_at: Option<u64>,
}

impl fmt::Debug for Cached {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Cached")
            .field("expires_at", &self.expires_at)
            .finish_non_exhaustive()
    }
}

/// The cached data key of the vault `id`, from the first mechanism that holds one.
/// A mechanism that fails counts as holding nothing: the caller falls back to the passphrase.
pub fn lookup(id: &VaultId) -> Result<Option<Key>> {
    for &mechanism in mechanisms()? {
        let found = match mechanism {
            Mechanism::Keyring => keyring::lookup(id),
            Mechanism::Agent => agent::lookup(id),
        };
        if let Ok(Some(cached)) = found {
            return Ok(Some(cached.key));
        }
    }
    Ok(None)
}

/// Where `coffer unlock` put the key, and why it skipped what it skipped.
#[derive(Debug)]
pub struct Stored {
    pub mechanism: Mechanism,
    pub skipped: Vec<(Mechanism, Unavailable)>,
}

/// Keeps `key` for `timeout` in the first mechanism that works, replacing any earlier unlock.
pub fn store(id: &VaultId, key: &Key, timeout: Timeout) -> Result<Stored> {
    clear(id)?;
    let expires_at = timeout.expires_at(now());
    let mut skipped = Vec::new();
    for &mechanism in mechanisms()? {
        let stored = match mechanism {
            Mechanism::Keyring => keyring::store(id, key, timeout, expires_at),
            Mechanism::Agent => agent::start(id, key, expires_at),
        };
        match stored {
            Ok(()) => return Ok(Stored { mechanism, skipped }),
            Err(why) => skipped.push((mechanism, why)),
        }
    }
    Err(Error::Unlock(UnlockError::NowhereToKeep(skipped)))
}

/// Why `coffer unlock` could not keep a key, for a caller to match.
#[derive(Debug, thiserror::Error)]
pub enum UnlockError {
    #[error("{MECHANISM_VAR} must be `keyring` or `agent`; unset it to let coffer choose")]
    UnknownMechanism,
    /// Every mechanism, with why it could not keep the key.
    #[error(
        "cannot keep the vault unlocked here ({}); set COFFER_PASSPHRASE_FILE instead",
        reasons(.0)
    )]
    NowhereToKeep(Vec<(Mechanism, Unavailable)>),
}

fn reasons(skipped: &[(Mechanism, Unavailable)]) -> String {
    skipped
        .iter()
        .map(|(mechanism, why)| format!("{mechanism}: {why}"))
        .collect::<Vec<_>>()
        .join("; ")
}

/// Forgets the key of the vault `id` everywhere; returns the mechanisms that held it.
pub fn clear(id: &VaultId) -> Result<Vec<Mechanism>> {
    let mut cleared = Vec::new();
    for &mechanism in mechanisms()? {
        let held = match mechanism {
            Mechanism::Keyring => keyring::clear(id),
            Mechanism::Agent => agent::lock(id),
        };
        if held.unwrap_or(false) {
            cleared.push(mechanism);
        }
    }
    Ok(cleared)
}

/// What one mechanism knows about a vault, for `coffer doctor`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum State {
    Unavailable(Unavailable),
    Locked,
    /// Unlocked until `expires_at` (Unix seconds, `None`: until lock or logout); an agent's pid.
    Unlocked {
        expires_at: Option<u64>,
        pid: Option<u32>,
    },
}

/// Each usable mechanism's state for the vault `id` (`None`: no vault yet). Never reads the
/// agent's key.
pub fn status(id: Option<&VaultId>) -> Result<Vec<(Mechanism, State)>> {
    Ok(mechanisms()?
        .iter()
        .map(|&mechanism| {
            let probed = match mechanism {
                Mechanism::Keyring => keyring::probe(),
                Mechanism::Agent => agent::probe(),
            };
            let found = probed.and_then(|()| match (mechanism, id) {
                (_, None) => Ok(None),
                (Mechanism::Keyring, Some(id)) => {
                    keyring::lookup(id).map(|c| c.map(|c| (c.expires_at, None)))
                }
                (Mechanism::Agent, Some(id)) => {
                    agent::status(id).map(|s| s.map(|(pid, expires_at)| (expires_at, Some(pid))))
                }
            });
            let state = match found {
                Ok(Some((expires_at, pid))) => State::Unlocked { expires_at, pid },
                Ok(None) => State::Locked,
                Err(why) => State::Unavailable(why),
            };
            (mechanism, state)
        })
        .collect())
}

pub use crate::clock::now;

/// How long `coffer unlock` keeps a vault open: whole seconds, or until `coffer lock`/logout,
/// spelt `0` or any zero duration (`0s`); a fraction of a second rounds up, never to "never".
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Timeout(Option<Duration>);

impl Timeout {
    pub const DEFAULT: Timeout = Timeout(Some(Duration::from_secs(15 * 60)));

    /// Whole seconds, `None` for no timeout.
    pub fn seconds(self) -> Option<u64> {
        self.0.map(|d| d.as_secs())
    }

    pub fn expires_at(self, now: u64) -> Option<u64> {
        self.seconds().map(|s| now.saturating_add(s))
    }
}

impl FromStr for Timeout {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        let text = text.trim();
        if text == "0" {
            return Ok(Timeout(None));
        }
        let duration = humantime::parse_duration(text).map_err(|_| {
            format!("`{text}` is not a duration: write e.g. 15m, 1h30m, 90s, or 0 (or 0s) for no timeout")
        })?;
        // Round up: the keyring counts whole seconds, and "500ms" must not mean "no timeout".
        let seconds = duration.as_secs() + u64::from(duration.subsec_nanos() > 0);
        Ok(Timeout((seconds > 0).then(|| Duration::from_secs(seconds))))
    }
}

impl TryFrom<String> for Timeout {
    type Error = String;

    fn try_from(text: String) -> Result<Self, String> {
        text.parse()
    }
}

impl From<Timeout> for String {
    fn from(timeout: Timeout) -> String {
        match timeout.0 {
            Some(duration) => humantime::format_duration(duration).to_string(),
            None => "0".to_owned(),
        }
    }
}

impl fmt::Display for Timeout {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(duration) => write!(f, "{}", humantime::format_duration(duration)),
            None => f.write_str("until `coffer lock` or logout"),
        }
    }
}

/// The `[unlock]` section of `config.toml`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct UnlockConfig {
    /// How long `coffer unlock` keeps the vault open when `--timeout` is not given.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub timeout: Option<Timeout>,
}

impl UnlockConfig {
    pub fn is_default(&self) -> bool {
        *self == UnlockConfig::default()
    }
}

/// Lower-case hex of a vault id: how the keyring and the agent's socket name a vault.
pub fn hex(id: &VaultId) -> String {
    id.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timeouts_parse_round_up_and_print() {
        let parse = |text: &str| text.parse::<Timeout>();
        assert_eq!(parse("15m"), Ok(Timeout::DEFAULT));
        assert_eq!(parse("0"), Ok(Timeout(None)));
        assert_eq!(parse("1500ms").map(Timeout::seconds), Ok(Some(2)));
        assert_eq!(parse("0s"), Ok(Timeout(None)));
        assert!(parse("soon").is_err());
        assert_eq!(String::from(Timeout::DEFAULT), "15m");
        assert_eq!(Timeout::DEFAULT.expires_at(100), Some(1000));
        assert_eq!(Timeout(None).expires_at(100), None);
    }

    #[test]
    fn config_section_reads_a_timeout() {
        let config: UnlockConfig = toml::from_str("timeout = \"1h\"").expect("parses");
        assert_eq!(config.timeout.and_then(Timeout::seconds), Some(3600));
        assert!(toml::from_str::<UnlockConfig>("timeout = \"later\"").is_err());
        assert!(toml::from_str::<UnlockConfig>("timout = \"1h\"").is_err());
    }
}

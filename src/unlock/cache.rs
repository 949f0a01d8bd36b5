//! The unlock cache: after `coffer unlock`, a vault's data key held in the
//! [`secret_cache`](crate::secret_cache) (the kernel keyring or the agent), so that `get`,
//! `store` and `list` need neither the passphrase nor an Argon2id run.
//!
//! A vault's key is cached under the vault's random id, and it is the data key itself: the
//! vault's seal proves it right on every use, so a stale or foreign key can only fail to open
//! the vault.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use crate::clock::now;
use crate::secret_cache::{self, CacheError, Mechanism, Slot, State, Stored};
use crate::vault::crypto::{KEY_LEN, Key};

type Result<T, E = CacheError> = std::result::Result<T, E>;

/// The random id in a vault's header that names its cached key.
pub type VaultId = [u8; 16];

/// Where a vault's data key is kept.
fn vault_slot(id: &VaultId) -> Slot {
    Slot::new("vault", hex(id))
}

/// The cached data key of the vault `id`, if any.
pub fn lookup(id: &VaultId) -> Result<Option<Key>> {
    Ok(secret_cache::lookup(&vault_slot(id))?.and_then(|held| {
        // Not a key coffer cached: the passphrase decides.
        let key: [u8; KEY_LEN] = held.secret.as_slice().try_into().ok()?;
        Some(Zeroizing::new(key))
    }))
}

/// Keeps `key` for `timeout`, replacing any earlier unlock.
pub fn store(id: &VaultId, key: &Key, timeout: Timeout) -> Result<Stored> {
    secret_cache::store(&vault_slot(id), key.as_ref(), timeout.expires_at(now()))
}

/// Forgets the key of the vault `id` everywhere; returns the mechanisms that held it.
pub fn clear(id: &VaultId) -> Result<Vec<Mechanism>> {
    secret_cache::clear(&vault_slot(id))
}

/// Each usable mechanism's state for the vault `id` (`None`: no vault yet). Never reads the
/// agent's key.
pub fn status(id: Option<&VaultId>) -> Result<Vec<(Mechanism, State)>> {
    secret_cache::status(id.map(vault_slot).as_ref())
}

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

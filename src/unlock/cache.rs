//! The unlock cache: secrets kept in memory, never on disk, until they expire. After `coffer
//! unlock` it holds a vault's data key, so that `get`, `store` and `list` need neither the
//! passphrase nor an Argon2id run; in chain mode it holds the minted tokens of a node that has
//! no vault ([`crate::token::cache`]).
//!
//! Two mechanisms, tried in this order:
//! 1. [`kernel_keyring`]: the Linux kernel's user keyring. The kernel enforces the timeout, no process
//!    of ours stays behind holding the secret, and reading it costs three system calls.
//! 2. [`agent`]: a small `coffer agent` process per secret, holding it in locked memory behind
//!    a 0700 Unix socket until it expires, where the keyring is missing or forbidden
//!    (containers often refuse `keyctl` through seccomp).
//!
//! A vault's key is cached under the vault's random id, and it is the data key itself: the
//! vault's seal proves it right on every use, so a stale or foreign key can only fail to open
//! the vault.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use super::agent;
use crate::error::{Error, Result};
use crate::os::kernel_keyring;
use crate::vault::crypto::{KEY_LEN, Key};

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

    /// Whether the mechanism works here at all.
    fn probe(self) -> Result<(), Unavailable> {
        match self {
            Mechanism::Keyring => kernel_keyring::probe(),
            Mechanism::Agent => agent::probe(),
        }
    }

    fn lookup(self, slot: &Slot) -> Result<Option<Held>, Unavailable> {
        match self {
            Mechanism::Keyring => keyring_lookup(slot),
            Mechanism::Agent => agent::lookup(slot),
        }
    }

    fn store(self, slot: &Slot, secret: &[u8], expires_at: Option<u64>) -> Result<(), Unavailable> {
        match self {
            Mechanism::Keyring => keyring_store(slot, secret, expires_at),
            Mechanism::Agent => agent::start(slot, secret, expires_at),
        }
    }

    /// Forgets the slot now; `true` if the mechanism held it.
    fn clear(self, slot: &Slot) -> Result<bool, Unavailable> {
        match self {
            Mechanism::Keyring => kernel_keyring::invalidate(&slot.keyring_description()),
            Mechanism::Agent => agent::forget(slot),
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

/// What a cached secret is and whose: the kernel keyring names it `coffer:<kind>:<id>`, the
/// agent's socket `<kind>-<id>.sock`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Slot {
    kind: &'static str,
    id: String,
}

impl Slot {
    /// `kind` is lower-case words joined by `-`, `id` lower-case hex: both go into file names.
    pub fn new(kind: &'static str, id: String) -> Slot {
        Slot { kind, id }
    }

    /// Where a vault's data key is kept.
    pub fn vault(id: &VaultId) -> Slot {
        Slot::new("vault", hex(id))
    }

    fn keyring_description(&self) -> String {
        format!("coffer:{}:{}", self.kind, self.id)
    }

    /// How the agent names the slot: its socket's file name without `.sock`.
    pub fn name(&self) -> String {
        format!("{}-{}", self.kind, self.id)
    }
}

/// A cached secret and when it expires (Unix seconds; `None`: at `coffer lock` or logout).
/// Its `Debug` shows the expiry, never the secret.
pub struct Held {
    pub secret: Zeroizing<Vec<u8>>,
    pub expires_at: Option<u64>,
}

impl fmt::Debug for Held {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Held")
            .field("expires_at", &self.expires_at)
            .finish_non_exhaustive()
    }
}

/// In the keyring a slot's payload is the secret followed by its expiry in Unix seconds
/// (little-endian; 0 for none): the kernel enforces the timeout but does not tell it.
fn keyring_lookup(slot: &Slot) -> Result<Option<Held>, Unavailable> {
    Ok(
        kernel_keyring::read(&slot.keyring_description())?.and_then(|mut payload| {
            let at = payload.len().checked_sub(8)?;
            let expiry = u64::from_le_bytes(payload[at..].try_into().ok()?);
            payload.truncate(at);
            Some(Held {
                secret: payload,
                expires_at: Some(expiry).filter(|&at| at != 0),
            })
        }),
    )
}

fn keyring_store(slot: &Slot, secret: &[u8], expires_at: Option<u64>) -> Result<(), Unavailable> {
    let mut payload = Zeroizing::new(Vec::with_capacity(secret.len() + 8));
    payload.extend_from_slice(secret);
    payload.extend_from_slice(&expires_at.unwrap_or(0).to_le_bytes());
    // 0 is the kernel's "no timeout"; an expiry already past still gets one second.
    let timeout = expires_at.map_or(0, |at| at.saturating_sub(now()).max(1));
    kernel_keyring::write(&slot.keyring_description(), &payload, timeout)
}

/// The secret in `slot`, from the first mechanism that holds it. A mechanism that fails
/// counts as holding nothing: the caller falls back to the passphrase, or mints.
pub fn lookup_slot(slot: &Slot) -> Result<Option<Held>> {
    Ok(mechanisms()?
        .iter()
        .find_map(|mechanism| mechanism.lookup(slot).ok().flatten()))
}

/// Where a secret was put, and why the mechanisms before it were skipped.
#[derive(Debug)]
pub struct Stored {
    pub mechanism: Mechanism,
    pub skipped: Vec<(Mechanism, Unavailable)>,
}

/// Keeps `secret` in `slot` until `expires_at` (`None`: until cleared or logout) in the first
/// mechanism that works, replacing what the slot held anywhere.
pub fn store_slot(slot: &Slot, secret: &[u8], expires_at: Option<u64>) -> Result<Stored> {
    clear_slot(slot)?;
    let mut skipped = Vec::new();
    for &mechanism in mechanisms()? {
        match mechanism.store(slot, secret, expires_at) {
            Ok(()) => return Ok(Stored { mechanism, skipped }),
            Err(why) => skipped.push((mechanism, why)),
        }
    }
    Err(Error::Unlock(UnlockError::NowhereToKeep(skipped)))
}

/// Forgets `slot` everywhere; returns the mechanisms that held it.
pub fn clear_slot(slot: &Slot) -> Result<Vec<Mechanism>> {
    Ok(mechanisms()?
        .iter()
        .copied()
        .filter(|mechanism| mechanism.clear(slot).unwrap_or(false))
        .collect())
}

/// The cached data key of the vault `id`, if any.
pub fn lookup(id: &VaultId) -> Result<Option<Key>> {
    Ok(lookup_slot(&Slot::vault(id))?.and_then(|held| {
        // Not a key coffer cached: the passphrase decides.
        let key: [u8; KEY_LEN] = held.secret.as_slice().try_into().ok()?;
        Some(Zeroizing::new(key))
    }))
}

/// Keeps `key` for `timeout`, replacing any earlier unlock.
pub fn store(id: &VaultId, key: &Key, timeout: Timeout) -> Result<Stored> {
    store_slot(&Slot::vault(id), key.as_ref(), timeout.expires_at(now()))
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
    clear_slot(&Slot::vault(id))
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
            let slot = id.map(Slot::vault);
            let found = mechanism.probe().and_then(|()| match (mechanism, slot) {
                (_, None) => Ok(None),
                (Mechanism::Keyring, Some(slot)) => {
                    keyring_lookup(&slot).map(|held| held.map(|held| (held.expires_at, None)))
                }
                (Mechanism::Agent, Some(slot)) => agent::status(&slot)
                    .map(|status| status.map(|(pid, expires_at)| (expires_at, Some(pid)))),
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

//! Secrets kept in memory, never on disk, until they expire: a vault's data key after `coffer
//! unlock` ([`crate::unlock::cache`]), chain mode's minted tokens on a node that has no vault
//! ([`crate::token::cache`]).
//!
//! Two mechanisms, tried in this order:
//! 1. [`kernel_keyring`]: the Linux kernel's user keyring. The kernel enforces the timeout, no
//!    process of ours stays behind holding the secret, and reading it costs three system calls.
//! 2. [`agent`]: a small `coffer agent` process per secret, holding it in locked memory behind
//!    a 0700 Unix socket until it expires, where the keyring is missing or forbidden
//!    (containers often refuse `keyctl` through seccomp).

pub mod agent;

use std::fmt;

use zeroize::Zeroizing;

use crate::clock::now;
use crate::os::{Unavailable, kernel_keyring};

/// Forces one mechanism (`keyring` or `agent`), as if the other were unavailable.
pub const MECHANISM_VAR: &str = "COFFER_UNLOCK_MECHANISM";

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
        .ok_or(CacheError::UnknownMechanism)
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
pub fn lookup(slot: &Slot) -> Result<Option<Held>> {
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
pub fn store(slot: &Slot, secret: &[u8], expires_at: Option<u64>) -> Result<Stored> {
    clear(slot)?;
    let mut skipped = Vec::new();
    for &mechanism in mechanisms()? {
        match mechanism.store(slot, secret, expires_at) {
            Ok(()) => return Ok(Stored { mechanism, skipped }),
            Err(why) => skipped.push((mechanism, why)),
        }
    }
    Err(CacheError::NowhereToKeep(skipped))
}

/// Forgets `slot` everywhere; returns the mechanisms that held it.
pub fn clear(slot: &Slot) -> Result<Vec<Mechanism>> {
    Ok(mechanisms()?
        .iter()
        .copied()
        .filter(|mechanism| mechanism.clear(slot).unwrap_or(false))
        .collect())
}

/// Why a secret cannot be kept, for a caller to match.
#[derive(Debug, thiserror::Error)]
pub enum CacheError {
    #[error("{MECHANISM_VAR} must be `keyring` or `agent`; unset it to let coffer choose")]
    UnknownMechanism,
    /// Every mechanism, with why it could not keep the secret.
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

type Result<T, E = CacheError> = std::result::Result<T, E>;

/// What one mechanism knows about a slot, for `coffer doctor`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum State {
    Unavailable(Unavailable),
    Locked,
    /// Held until `expires_at` (Unix seconds, `None`: until lock or logout); an agent's pid.
    Unlocked {
        expires_at: Option<u64>,
        pid: Option<u32>,
    },
}

/// Each usable mechanism's state for `slot` (`None`: nothing to look for, only whether each
/// mechanism works). Never reads the agent's secret.
pub fn status(slot: Option<&Slot>) -> Result<Vec<(Mechanism, State)>> {
    Ok(mechanisms()?
        .iter()
        .map(|&mechanism| {
            let found = mechanism.probe().and_then(|()| match (mechanism, slot) {
                (_, None) => Ok(None),
                (Mechanism::Keyring, Some(slot)) => {
                    keyring_lookup(slot).map(|held| held.map(|held| (held.expires_at, None)))
                }
                (Mechanism::Agent, Some(slot)) => agent::status(slot)
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

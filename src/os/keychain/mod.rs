//! The OS keychain (not the kernel keyring: that is [`super::kernel_keyring`]), through the
//! keyring v4 ecosystem (`keyring-core` and the store crates that keyring 4 links by default):
//! the Secret Service over zbus on Linux and the BSDs, the macOS Keychain, the Windows
//! Credential Manager, each in its own file beside this one. Items are named by a service and a
//! user, and hold opaque bytes; this module adds what coffer needs on top: a cheap check that
//! the keychain is there and unlocked before anything waits on it, enumeration of one service's
//! items, and errors that say what to do.

use std::collections::HashMap;
use std::sync::Arc;

use keyring_core::{CredentialStore, Entry};
use zeroize::Zeroizing;

/// What went wrong with the keychain, with what to do.
#[derive(Debug, thiserror::Error)]
pub enum KeychainError {
    #[error("{0}; {fix}", fix = .0.fix())]
    Unusable(#[from] Unusable),
    #[error("the keychain refused access ({0}); {fix}", fix = Unusable::Locked.fix())]
    Refused(#[source] keyring_core::Error),
    #[error(
        "{count} keychain items are named {service}/{user} where coffer keeps one; delete them \
         with `{command}` and store that credential again"
    )]
    Ambiguous {
        count: usize,
        service: String,
        user: String,
        command: String,
    },
    #[error("the keychain failed: {0}")]
    Failed(#[source] keyring_core::Error),
}

type Result<T, E = KeychainError> = std::result::Result<T, E>;

#[cfg(all(
    unix,
    not(any(target_os = "macos", target_os = "ios", target_os = "android"))
))]
pub mod secret_service;

#[cfg(target_os = "macos")]
#[path = "../not_built_here/macos_keychain.rs"]
pub mod macos_keychain;

#[cfg(target_os = "windows")]
#[path = "../not_built_here/windows_credential_manager.rs"]
pub mod windows_credential_manager;

#[cfg(target_os = "macos")]
use self::macos_keychain as platform;
#[cfg(all(
    unix,
    not(any(target_os = "macos", target_os = "ios", target_os = "android"))
))]
use self::secret_service as platform;
#[cfg(target_os = "windows")]
use self::windows_credential_manager as platform;

/// Why the keychain cannot be used here, with the one command that fixes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Unusable {
    /// No session D-Bus to reach a Secret Service through.
    NoSession,
    /// A session bus, but nothing on it provides `org.freedesktop.secrets`.
    NoService(String),
    /// The Secret Service answers, but its default collection (the login keyring) is locked.
    Locked,
    /// Anything else the keychain answered.
    Failed(String),
}

impl std::fmt::Display for Unusable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Unusable::NoSession => f.write_str(
                "no D-Bus session (DBUS_SESSION_BUS_ADDRESS is unset and there is no \
                 $XDG_RUNTIME_DIR/bus), so no Secret Service can be reached",
            ),
            Unusable::NoService(detail) => write!(
                f,
                "the session bus has no Secret Service (org.freedesktop.secrets): {detail}"
            ),
            Unusable::Locked => {
                f.write_str("the Secret Service's default collection (login keyring) is locked")
            }
            Unusable::Failed(detail) => write!(f, "the keychain failed: {detail}"),
        }
    }
}

impl std::error::Error for Unusable {}

impl Unusable {
    /// The one command that makes the keychain usable here. Never "use another store": a
    /// store that was chosen is not silently replaced (`coffer migrate` moves entries).
    pub fn fix(&self) -> &'static str {
        match self {
            Unusable::NoSession => {
                "run it in your desktop session (or inside `dbus-run-session -- $SHELL` with a \
                 Secret Service)"
            }
            Unusable::NoService(_) => {
                "install and start a Secret Service: `sudo apt install gnome-keyring` \
                 (it starts on demand in a desktop session)"
            }
            Unusable::Locked => {
                "unlock it: `gnome-keyring-daemon --replace --unlock` (reads the password on \
                 stdin), or log in to the desktop once"
            }
            Unusable::Failed(_) => "check the keychain with `coffer doctor` and try again",
        }
    }

    /// Whether this context has no keychain at all (as opposed to one that is locked or
    /// failing): where coffer decides on a store, such a context gets the passphrase vault.
    pub fn absent(&self) -> bool {
        matches!(self, Unusable::NoSession | Unusable::NoService(_))
    }
}

/// An open, unlocked keychain.
#[derive(Clone)]
pub struct Keychain {
    store: Arc<CredentialStore>,
}

impl std::fmt::Debug for Keychain {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Keychain")
            .field("store", &self.store.vendor())
            .finish()
    }
}

impl Keychain {
    /// Opens the platform keychain after checking, cheaply, that it is there and unlocked:
    /// without a session bus no connection is even tried.
    pub fn open() -> std::result::Result<Keychain, Unusable> {
        platform::probe()?;
        Ok(Keychain {
            store: platform::store()?,
        })
    }

    /// The bytes stored under `service`/`user`, if any.
    pub fn read(&self, service: &str, user: &str) -> Result<Option<Zeroizing<Vec<u8>>>> {
        match self.entry(service, user, None)?.get_secret() {
            Ok(bytes) => Ok(Some(Zeroizing::new(bytes))),
            Err(keyring_core::Error::NoEntry) => Ok(None),
            Err(e) => Err(failure(e, service, user)),
        }
    }

    /// Creates or replaces the item `service`/`user`. `label` and `attributes` describe it in
    /// keychain browsers (`secret-tool search`, Seahorse) where the platform keeps them.
    pub fn write(
        &self,
        service: &str,
        user: &str,
        label: &str,
        attributes: &HashMap<&str, &str>,
        bytes: &[u8],
    ) -> Result<()> {
        let entry = self.entry(service, user, Some(label))?;
        entry
            .set_secret(bytes)
            .map_err(|e| failure(e, service, user))?;
        platform::describe(&entry, attributes).map_err(|e| failure(e, service, user))
    }

    /// Deletes the item; `false` when there was none.
    pub fn delete(&self, service: &str, user: &str) -> Result<bool> {
        match self.entry(service, user, None)?.delete_credential() {
            Ok(()) => Ok(true),
            Err(keyring_core::Error::NoEntry) => Ok(false),
            Err(e) => Err(failure(e, service, user)),
        }
    }

    /// Every item of `service`: its user (account) and its bytes.
    pub fn all(&self, service: &str) -> Result<Vec<(String, Zeroizing<Vec<u8>>)>> {
        let spec = platform::search_spec(service);
        let spec: HashMap<&str, &str> = spec.iter().map(|(k, v)| (*k, v.as_str())).collect();
        self.store
            .search(&spec)
            .map_err(|e| failure(e, service, "*"))?
            .into_iter()
            .map(|entry| {
                let user = entry
                    .get_specifiers()
                    .map(|(_, user)| user)
                    .unwrap_or_default();
                let bytes = entry.get_secret().map_err(|e| failure(e, service, &user))?;
                Ok((user, Zeroizing::new(bytes)))
            })
            .collect()
    }

    fn entry(&self, service: &str, user: &str, label: Option<&str>) -> Result<Entry> {
        let modifiers = platform::modifiers(label);
        self.store
            .build(service, user, Some(&modifiers))
            .map_err(|e| failure(e, service, user))
    }
}

/// The platform's own command that deletes exactly the item(s) `service`/`user`, for messages:
/// coffer never suggests one that would delete more.
pub fn delete_command(service: &str, user: &str) -> String {
    platform::delete_command(service, user)
}

/// `text` as one single-quoted POSIX shell word.
pub(super) fn shell_quote(text: &str) -> String {
    format!("'{}'", text.replace('\'', r"'\''"))
}

fn failure(error: keyring_core::Error, service: &str, user: &str) -> KeychainError {
    match error {
        keyring_core::Error::NoStorageAccess(_) => KeychainError::Refused(error),
        keyring_core::Error::Ambiguous(items) => KeychainError::Ambiguous {
            count: items.len(),
            service: service.to_owned(),
            user: user.to_owned(),
            command: delete_command(service, user),
        },
        other => KeychainError::Failed(other),
    }
}

//! The OS keychain, through the keyring v4 ecosystem (`keyring-core` and the store crates that
//! keyring 4 links by default): the Secret Service over zbus on Linux and the BSDs, the macOS
//! Keychain, the Windows Credential Manager. Items are named by a service and a user, and hold
//! opaque bytes; this module adds what coffer needs on top: a cheap check that the keychain is
//! there and unlocked before anything waits on it, enumeration of one service's items, and
//! errors that say what to do.

use std::collections::HashMap;
use std::sync::Arc;

use keyring_core::{CredentialStore, Entry};
use zeroize::Zeroizing;

use crate::error::{Error, Result};

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

impl Unusable {
    /// The one command that makes the keychain usable (or tells coffer not to want it).
    pub fn fix(&self) -> &'static str {
        match self {
            Unusable::NoSession => {
                "run coffer inside a desktop session or `dbus-run-session -- $SHELL`; \
                 or `export COFFER_BACKEND=file` to use the file vault"
            }
            Unusable::NoService(_) => {
                "install and start a Secret Service: `sudo apt install gnome-keyring` \
                 (it starts on demand in a desktop session)"
            }
            Unusable::Locked => {
                "unlock it: `gnome-keyring-daemon --replace --unlock` (reads the password on \
                 stdin), or log in to the desktop once"
            }
            Unusable::Failed(_) => "`export COFFER_BACKEND=file` to use the file vault instead",
        }
    }
}

impl From<Unusable> for Error {
    fn from(why: Unusable) -> Self {
        Error::Keychain(format!("{why}; {}", why.fix()))
    }
}

/// An open, unlocked keychain.
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
            Err(e) => Err(failure(e)),
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
        entry.set_secret(bytes).map_err(failure)?;
        platform::describe(&entry, attributes).map_err(failure)
    }

    /// Deletes the item; `false` when there was none.
    pub fn delete(&self, service: &str, user: &str) -> Result<bool> {
        match self.entry(service, user, None)?.delete_credential() {
            Ok(()) => Ok(true),
            Err(keyring_core::Error::NoEntry) => Ok(false),
            Err(e) => Err(failure(e)),
        }
    }

    /// The bytes of every item of `service`.
    pub fn all(&self, service: &str) -> Result<Vec<Zeroizing<Vec<u8>>>> {
        let spec = platform::search_spec(service);
        let spec: HashMap<&str, &str> = spec.iter().map(|(k, v)| (*k, v.as_str())).collect();
        self.store
            .search(&spec)
            .map_err(failure)?
            .into_iter()
            .map(|entry| entry.get_secret().map(Zeroizing::new).map_err(failure))
            .collect()
    }

    fn entry(&self, service: &str, user: &str, label: Option<&str>) -> Result<Entry> {
        let modifiers = platform::modifiers(label);
        self.store
            .build(service, user, Some(&modifiers))
            .map_err(failure)
    }
}

fn failure(error: keyring_core::Error) -> Error {
    match error {
        keyring_core::Error::NoStorageAccess(detail) => Error::Keychain(format!(
            "the keychain refused access ({detail}); {}",
            Unusable::Locked.fix()
        )),
        keyring_core::Error::Ambiguous(items) => Error::Keychain(format!(
            "{} keychain items match one coffer entry; remove the extra ones \
             (e.g. with `secret-tool clear service coffer`) and log in again",
            items.len()
        )),
        other => Error::Keychain(format!("the keychain failed: {other}")),
    }
}

#[cfg(all(
    unix,
    not(any(target_os = "macos", target_os = "ios", target_os = "android"))
))]
mod platform {
    //! The Secret Service, over a pure-Rust D-Bus connection (zbus): no libdbus needed.

    use std::collections::HashMap;
    use std::path::PathBuf;
    use std::sync::Arc;

    use keyring_core::{CredentialStore, Entry};
    use secret_service::EncryptionType;
    use secret_service::blocking::SecretService;

    use super::Unusable;

    /// The session bus address the way zbus finds it: the variable, else the systemd user bus.
    pub fn session_bus() -> Option<String> {
        if let Some(address) = std::env::var("DBUS_SESSION_BUS_ADDRESS")
            .ok()
            .filter(|a| !a.is_empty())
        {
            return Some(address);
        }
        let runtime = std::env::var_os("XDG_RUNTIME_DIR").filter(|d| !d.is_empty())?;
        let socket = PathBuf::from(runtime).join("bus");
        socket
            .exists()
            .then(|| format!("unix:path={}", socket.display()))
    }

    /// No bus: answer at once. A bus: one plain (unencrypted, no key exchange) session with
    /// the Secret Service to read whether the default collection is unlocked, so nothing later
    /// waits on an unlock prompt that cannot be shown.
    pub fn probe() -> Result<(), Unusable> {
        session_bus().ok_or(Unusable::NoSession)?;
        let service = SecretService::connect(EncryptionType::Plain).map_err(|e| match e {
            secret_service::Error::Unavailable => {
                Unusable::NoService("nothing answers for it".into())
            }
            secret_service::Error::Zbus(zbus::Error::MethodError(name, detail, _))
                if name.as_str() == "org.freedesktop.DBus.Error.ServiceUnknown" =>
            {
                Unusable::NoService(detail.unwrap_or_else(|| name.to_string()))
            }
            other => Unusable::Failed(other.to_string()),
        })?;
        let collection = service.get_default_collection().map_err(|e| match e {
            secret_service::Error::NoResult => {
                Unusable::NoService("it has no default collection".into())
            }
            other => Unusable::Failed(other.to_string()),
        })?;
        match collection.is_locked() {
            Ok(false) => Ok(()),
            Ok(true) => Err(Unusable::Locked),
            Err(e) => Err(Unusable::Failed(e.to_string())),
        }
    }

    pub fn store() -> Result<Arc<CredentialStore>, Unusable> {
        zbus_secret_service_keyring_store::Store::new()
            .map(|store| store as Arc<CredentialStore>)
            .map_err(|e| Unusable::Failed(e.to_string()))
    }

    pub fn modifiers(label: Option<&str>) -> HashMap<&str, &str> {
        label.map(|l| ("label", l)).into_iter().collect()
    }

    /// Extra attributes for `secret-tool search`; the store sets `service` and `username`.
    pub fn describe(entry: &Entry, attributes: &HashMap<&str, &str>) -> keyring_core::Result<()> {
        if attributes.is_empty() {
            return Ok(());
        }
        entry.update_attributes(attributes)
    }

    pub fn search_spec(service: &str) -> Vec<(&'static str, String)> {
        vec![("service", service.to_owned())]
    }
}

#[cfg(target_os = "macos")]
mod platform {
    //! The user's login keychain (generic passwords). Compiled for macOS, not tested here.

    use std::collections::HashMap;
    use std::sync::Arc;

    use keyring_core::{CredentialStore, Entry};

    use super::Unusable;

    /// The login keychain always exists; a locked one fails the first access with a clear error.
    pub fn probe() -> Result<(), Unusable> {
        Ok(())
    }

    pub fn store() -> Result<Arc<CredentialStore>, Unusable> {
        apple_native_keyring_store::keychain::Store::new()
            .map(|store| store as Arc<CredentialStore>)
            .map_err(|e| Unusable::Failed(e.to_string()))
    }

    pub fn modifiers(_label: Option<&str>) -> HashMap<&str, &str> {
        HashMap::new()
    }

    /// Generic passwords carry only service and account.
    pub fn describe(_entry: &Entry, _attributes: &HashMap<&str, &str>) -> keyring_core::Result<()> {
        Ok(())
    }

    pub fn search_spec(service: &str) -> Vec<(&'static str, String)> {
        vec![("service", service.to_owned())]
    }
}

#[cfg(target_os = "windows")]
mod platform {
    //! The Windows Credential Manager (generic credentials named `<user>.<service>`).
    //! Compiled for Windows in principle, not tested here.

    use std::collections::HashMap;
    use std::sync::Arc;

    use keyring_core::{CredentialStore, Entry};

    use super::Unusable;

    pub fn probe() -> Result<(), Unusable> {
        Ok(())
    }

    pub fn store() -> Result<Arc<CredentialStore>, Unusable> {
        windows_native_keyring_store::Store::new()
            .map(|store| store as Arc<CredentialStore>)
            .map_err(|e| Unusable::Failed(e.to_string()))
    }

    pub fn modifiers(_label: Option<&str>) -> HashMap<&str, &str> {
        HashMap::new()
    }

    pub fn describe(_entry: &Entry, _attributes: &HashMap<&str, &str>) -> keyring_core::Result<()> {
        Ok(())
    }

    /// Enumeration matches target names by regular expression; coffer's service names are
    /// plain words, so they need no escaping.
    pub fn search_spec(service: &str) -> Vec<(&'static str, String)> {
        vec![("pattern", format!(r"\.{service}$"))]
    }
}

/// Where the Secret Service would be reached, for `coffer doctor`.
#[cfg(all(
    unix,
    not(any(target_os = "macos", target_os = "ios", target_os = "android"))
))]
pub fn session_bus() -> Option<String> {
    platform::session_bus()
}

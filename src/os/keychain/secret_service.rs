//! The Secret Service, over a pure-Rust D-Bus connection (zbus): no libdbus needed.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;

use keyring_core::{CredentialStore, Entry};
use secret_service::EncryptionType;
use secret_service::blocking::SecretService;

use crate::os::keychain::{Unusable, shell_quote};

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
        secret_service::Error::Unavailable => Unusable::NoService("nothing answers for it".into()),
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

/// `secret-tool clear` deletes every item matching all the attributes given: with service and
/// username it deletes exactly that item (or its duplicates), never the other entries.
pub fn delete_command(service: &str, user: &str) -> String {
    format!(
        "secret-tool clear service {} username {}",
        shell_quote(service),
        shell_quote(user)
    )
}

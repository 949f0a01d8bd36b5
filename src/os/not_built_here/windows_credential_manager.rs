//! The Windows Credential Manager (generic credentials named `<user>.<service>`).
//! Compiled for Windows in principle, not tested here.

use std::collections::HashMap;
use std::sync::Arc;

use keyring_core::{CredentialStore, Entry};

use crate::os::keychain::Unusable;

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

/// Deletes the one generic credential with this target name (`<user>.<service>`).
pub fn delete_command(service: &str, user: &str) -> String {
    format!("cmdkey /delete:\"{user}.{service}\"")
}

//! The user's login keychain (generic passwords). Compiled for macOS, not tested here.

use std::collections::HashMap;
use std::sync::Arc;

use keyring_core::{CredentialStore, Entry};

use crate::os::keychain::{Unusable, shell_quote};

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

/// Deletes the one generic password with this service and account.
pub fn delete_command(service: &str, user: &str) -> String {
    format!(
        "security delete-generic-password -s {} -a {}",
        shell_quote(service),
        shell_quote(user)
    )
}

//! What the providers share: their settings as typed structs, an issuer's refusal as an error,
//! and the loopback rule for hosts.

use reqwest::Url;
use serde::de::DeserializeOwned;

use super::TokenError;
use super::http::{display, is_loopback};
use super::settings::SettingsError;

/// For modes without settings of their own.
pub fn no_options(options: &toml::Table) -> Result<(), SettingsError> {
    match options.keys().next() {
        Some(key) => Err(SettingsError::Unknown(key.clone())),
        None => Ok(()),
    }
}

/// A provider's settings as its own type (`#[serde(deny_unknown_fields)]` refuses misspellings).
pub fn options<T: DeserializeOwned>(options: &toml::Table) -> Result<T, SettingsError> {
    T::deserialize(toml::Value::Table(options.clone()))
        .map_err(|e| SettingsError::Shape(Box::new(e)))
}

/// The check of a provider whose settings are the type `T`: they parse.
pub fn check<T: DeserializeOwned>(table: &toml::Table) -> Result<(), SettingsError> {
    options::<T>(table).map(drop)
}

/// An issuer's refusal. 400, 401 and 403 blame the stored credential, naming the issuer's own
/// error code where it is a plain word (so never anything that could be a secret); any other
/// status is reported as it is.
pub fn refusal(issuer: &'static str, url: &Url, status: u16, code: Option<String>) -> TokenError {
    let code =
        code.filter(|c| !c.is_empty() && c.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_'));
    match (status, code) {
        (400 | 401 | 403, Some(code)) => TokenError::RefusedBy {
            issuer,
            url: display(url),
            status,
            code,
        },
        (400 | 401 | 403, None) => TokenError::CredentialRejected {
            url: display(url),
            status,
        },
        (status, _) => TokenError::Status {
            what: issuer,
            url: display(url),
            status,
        },
    }
}

/// Is this registry host (`name[:port]`) on loopback? Loopback registries are tests and local
/// mirrors, which every cloud provider also serves.
pub fn loopback_host(host: &str) -> bool {
    Url::parse(&format!("http://{host}/")).is_ok_and(|url| is_loopback(&url))
}

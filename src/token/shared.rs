//! What the providers share: their settings as typed structs, an issuer's refusal as an error,
//! and the loopback rule for hosts.

use std::borrow::Cow;

use reqwest::Url;
use serde::de::DeserializeOwned;

use super::TokenError;
use super::http::{display, is_loopback};

/// What is wrong with a registry's or a pod exchange's own settings in `config.toml`.
#[derive(Debug, thiserror::Error)]
pub enum SettingsError {
    /// A key the mode does not take.
    #[error("unknown field `{0}`")]
    Unknown(String),
    /// A key of the wrong type, or a missing one: the deserializer's words, without its quote
    /// of the file.
    #[error("{}", .0.message())]
    Shape(toml::de::Error),
    /// A value that cannot work, or settings that cannot work together: which, and what to give.
    #[error("{0}")]
    Invalid(Cow<'static, str>),
}

impl SettingsError {
    pub fn invalid(why: impl Into<Cow<'static, str>>) -> SettingsError {
        SettingsError::Invalid(why.into())
    }

    /// The same problem met while minting in `mode`.
    pub fn in_mode(self, mode: &'static str) -> TokenError {
        TokenError::Settings {
            mode,
            problem: self,
        }
    }
}

/// For modes without settings of their own.
pub fn no_options(options: &toml::Table) -> Result<(), SettingsError> {
    match options.keys().next() {
        Some(key) => Err(SettingsError::Unknown(key.clone())),
        None => Ok(()),
    }
}

/// A provider's settings as its own type (`#[serde(deny_unknown_fields)]` refuses misspellings).
pub fn options<T: DeserializeOwned>(options: &toml::Table) -> Result<T, SettingsError> {
    T::deserialize(toml::Value::Table(options.clone())).map_err(SettingsError::Shape)
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

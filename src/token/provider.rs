//! The one trait a token source implements: turn the long-lived credential kept in the vault into
//! a short-lived one that clients can use. Registry OAuth2 is one implementation; each cloud
//! registry is one more.
//!
//! Adding a provider: one file implementing [`Provider`], its entry in [`PROVIDERS`], and a
//! [`Mode`](super::settings::Mode) variant of the same name (with its arm in `Mode::name`).

use reqwest::Url;
use secrecy::SecretString;
use serde::de::DeserializeOwned;

use super::TokenError;
use super::azure::Azure;
use super::ecr::Ecr;
use super::exec::Exec;
use super::google::Google;
use super::http::Http;
use super::http::display;
use super::oauth2::OAuth2;
use super::settings::RegistrySettings;
use crate::server_url::ServerUrl;

/// The long-lived credential as stored: it never leaves the vault except towards the issuer.
#[derive(Debug)]
pub struct LongLived<'a> {
    pub username: &'a str,
    pub secret: &'a SecretString,
}

/// The registry a token is for, its settings, and the HTTP client configured for it.
#[derive(Debug)]
pub struct Target<'a> {
    pub url: &'a ServerUrl,
    pub http: &'a Http,
    pub settings: &'a RegistrySettings,
}

/// A freshly minted token, as clients will receive it, with its times in this machine's clock.
#[derive(Debug, Clone)]
pub struct Minted {
    /// What `get` answers as `Username` (`<token>` for an identity token).
    pub username: String,
    pub secret: SecretString,
    /// Unix seconds.
    pub issued_at: u64,
    /// Unix seconds; `None` when the issuer states no expiry.
    pub expires_at: Option<u64>,
}

pub trait Provider: std::fmt::Debug + Sync {
    /// The name stored with each token this provider mints.
    fn name(&self) -> &'static str;

    /// Exchanges `credential` for a token for `target`, within the client's deadline.
    fn mint(&self, target: &Target<'_>, credential: &LongLived<'_>) -> Result<Minted, TokenError>;

    /// Checks the provider's own keys in a registry's section of `config.toml` (unknown keys,
    /// wrong types) when the file is read. The default takes none.
    fn check(&self, options: &toml::Table) -> Result<(), String> {
        no_options(options)
    }

    /// May `get` hand out the stored credential itself while no token could be minted? Only
    /// where it is a password the registry takes too (registry OAuth2). Cloud credentials are
    /// not registry passwords and never leave the vault.
    fn hands_out_credential(&self) -> bool {
        false
    }
}

/// Every provider, found by the name stored with its tokens and used as its mode's name.
const PROVIDERS: [&dyn Provider; 5] = [&OAuth2, &Ecr, &Google, &Azure, &Exec];

/// The provider that minted a stored token, by its stored name.
pub fn by_name(name: &str) -> Option<&'static dyn Provider> {
    PROVIDERS.into_iter().find(|p| p.name() == name)
}

/// For modes without settings of their own.
pub fn no_options(options: &toml::Table) -> Result<(), String> {
    match options.keys().next() {
        Some(key) => Err(format!("unknown field `{key}`")),
        None => Ok(()),
    }
}

/// A provider's settings as its own type (`#[serde(deny_unknown_fields)]` refuses misspellings).
pub fn options<T: DeserializeOwned>(options: &toml::Table) -> Result<T, String> {
    T::deserialize(toml::Value::Table(options.clone())).map_err(|e| e.message().to_owned())
}

/// An issuer's refusal. 400, 401 and 403 blame the stored credential, naming the issuer's own
/// error code where it is a plain word (so never anything that could be a secret); any other
/// status is reported as it is.
pub fn refusal(issuer: &'static str, url: &Url, status: u16, code: Option<String>) -> TokenError {
    let code =
        code.filter(|c| !c.is_empty() && c.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_'));
    match (status, code) {
        (400 | 401 | 403, Some(code)) => TokenError::Credential(format!(
            "{issuer} at {} refused it (HTTP {status}, {code})",
            display(url)
        )),
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

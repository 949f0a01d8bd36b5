//! The one trait a token source implements: turn the long-lived credential kept in the vault into
//! a short-lived one that clients can use. Registry OAuth2 is one implementation; each cloud
//! registry is one more.
//!
//! A leaf: the trait and the types it speaks. Adding a provider: one file implementing
//! [`Provider`], its entry in `PROVIDERS` ([`super::providers`]), and a
//! [`Mode`](super::settings::Mode) variant of the same name (with its arm in `Mode::name`).
//! What providers share (settings parsing, refusals, the loopback rule) is in [`super::shared`].

use secrecy::SecretString;

use super::TokenError;
use super::http::Http;
use super::settings::{RegistrySettings, TokenSettings};
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
    pub tokens: &'a TokenSettings,
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
    fn check(&self, options: &toml::Table) -> Result<(), super::settings::SettingsError> {
        super::shared::no_options(options)
    }

    /// May `get` hand out the stored credential itself while no token could be minted? Only
    /// where it is a password the registry takes too (registry OAuth2). Cloud credentials are
    /// not registry passwords and never leave the vault.
    fn hands_out_credential(&self) -> bool {
        false
    }
}

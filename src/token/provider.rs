//! The one trait a token source implements: turn the long-lived credential kept in the vault into
//! a short-lived one that clients can use. Registry OAuth2 is one implementation; each cloud
//! registry is one more.

use secrecy::SecretString;

use super::TokenError;
use super::http::Http;
use super::oauth2::OAuth2;
use crate::server_url::ServerUrl;

/// The long-lived credential as stored: it never leaves the vault except towards the issuer.
#[derive(Debug)]
pub struct LongLived<'a> {
    pub username: &'a str,
    pub secret: &'a SecretString,
}

/// The registry a token is for, and the HTTP client configured for it.
#[derive(Debug)]
pub struct Target<'a> {
    pub url: &'a ServerUrl,
    pub http: &'a Http,
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
}

/// The provider that minted a stored token, by its stored name.
pub fn by_name(name: &str) -> Option<&'static dyn Provider> {
    [&OAuth2 as &'static dyn Provider]
        .into_iter()
        .find(|p| p.name() == name)
}

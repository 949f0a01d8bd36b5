//! The list of providers: the one place that names them all.

use super::azure::Azure;
use super::ecr::Ecr;
use super::exec::Exec;
use super::google::Google;
use super::oauth2::OAuth2;
use super::provider::Provider;

/// Every provider, found by the name stored with its tokens and used as its mode's name.
const PROVIDERS: [&dyn Provider; 5] = [&OAuth2, &Ecr, &Google, &Azure, &Exec];

/// The provider that minted a stored token, by its stored name.
pub fn by_name(name: &str) -> Option<&'static dyn Provider> {
    PROVIDERS.into_iter().find(|p| p.name() == name)
}

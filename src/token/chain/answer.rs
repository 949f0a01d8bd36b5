//! `get` for a chain-mode registry with no stored entry: the cached token while it is fresh,
//! else one renewal under the identity's lock, and the still-valid token when renewal fails.

use std::time::Duration;

use super::{Request, identity_key, mint};
use crate::clock::now;
use crate::config::Config;
use crate::error::{Error, Result};
use crate::files::{self, FileError};
use crate::paths::Paths;
use crate::server_url::ServerUrl;
use crate::store::Entry;
use crate::token::TokenError;
use crate::token::cache;
use crate::token::settings::lookup;
use crate::token::state::{self, Derived};
use crate::warning::Warnings;

/// `get` for a registry with no stored entry: a chain-mode cloud registry's token, from the
/// token cache or freshly minted. `None` when the registry is not in chain mode.
/// A stale token served after a failed renewal says so in `warnings`.
pub fn answer(paths: &Paths, url: &ServerUrl, warnings: &Warnings) -> Result<Option<Entry>> {
    let config = Config::load(paths)?;
    let Some(registry) = lookup(&config.registries, url.host()) else {
        return Ok(None);
    };
    if !registry.mode.is_cloud() {
        return Ok(None);
    }
    let request = Request {
        host: url.host().to_owned(),
        registry: registry.clone(),
        tokens: config.tokens.clone(),
    };
    let token = token(paths, &request, warnings)?;
    let now = now();
    Ok(Some(Entry {
        server_url: url.key(),
        username: token.username.clone(),
        secret: token.secret.clone(),
        created: token.issued_at.min(now),
        updated: token.issued_at.min(now),
        description: None,
        tokens: None,
    }))
}

/// The cached token while it is fresh; else one renewal under the identity's lock.
fn token(paths: &Paths, request: &Request, warnings: &Warnings) -> Result<Derived> {
    let key = identity_key(request);
    let provider = request.registry.mode.name();
    let margin = request.tokens.min_margin;
    let fresh = |token: &Derived| token.provider == provider && !token.due(now(), margin);
    // Neither the keyring nor an agent works here: no cache, every get mints.
    let cached = cache::lookup(&key).ok().flatten();
    if let Some(token) = cached.filter(fresh) {
        return Ok(token);
    }
    files::ensure_private_dir(paths.home())?;
    let wait = request.tokens.timeout * 2 + Duration::from_secs(4);
    let lock_path = paths.home().join(format!("identity-{key}.lock"));
    let _held = match files::lock(&lock_path, wait) {
        Ok(held) => held,
        Err(FileError::LockTimeout(seconds)) => {
            let cached = cache::lookup(&key).ok().flatten();
            return serve(cached, request, TokenError::Busy { seconds }, warnings);
        }
        Err(error) => return Err(error.into()),
    };
    // Another process may have renewed it while we waited for the lock.
    let cached = cache::lookup(&key).ok().flatten();
    if let Some(token) = cached.as_ref().filter(|t| fresh(t)) {
        return Ok(token.clone());
    }
    if let Some(message) = cache::failure(&key) {
        return serve(cached, request, TokenError::Earlier(message), warnings);
    }
    match mint(request).and_then(|minted| Derived::new(provider, minted, now())) {
        Ok(token) => {
            // With nowhere to keep it the token still answers this get; nothing else keeps it.
            let _ = cache::store(&key, &token);
            Ok(token)
        }
        Err(error) => {
            let _ = cache::store_failure(&key, &error.to_string(), request.tokens.retry_after);
            serve(cached, request, error, warnings)
        }
    }
}

/// After a failed renewal: the cached token while it is valid, with a warning; else the error.
fn serve(
    cached: Option<Derived>,
    request: &Request,
    error: TokenError,
    warnings: &Warnings,
) -> Result<Derived> {
    let Some(token) = cached else {
        return Err(Error::Token(error));
    };
    warnings.push(state::fallback(Some(&token), &request.host, error, now())?);
    Ok(token)
}

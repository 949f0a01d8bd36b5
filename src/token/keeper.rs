//! Store, get and refresh with tokens.
//!
//! - `store` writes the credential, then, in a token mode, mints the first token. A `store` whose
//!   secret is a token coffer derived (what `docker login` without `-u` sends back) never
//!   replaces the credential.
//! - `get` hands out the cached token while it is fresh, without a write or a network call;
//!   once it is due it renews it under a cross-process lock: one process exchanges, the others
//!   wait (bounded) and then read what it wrote. A failed renewal serves the cached token while
//!   it is still valid, and waits `retry_after` before trying again.
//! - `refresh` does the same ahead of time, for `coffer refresh` and its timer.

use std::time::Duration;

use super::TokenError;
use super::http::Http;
use super::oauth2::IDENTITY_TOKEN_USERNAME;
use super::provider::{LongLived, Target};
use super::providers;
use super::settings::{Mode, RegistrySettings};
use super::state::{self, Derived, Failure, TokenState, TokenSummary, Unsaved};
use crate::clock::now;
use crate::config::Config;
use crate::error::{Error, Result};
use crate::files::{self, FileError};
use crate::paths::Paths;
use crate::server_url::ServerUrl;
use crate::store::{Entry, Store};
use crate::warning::{Warning, Warnings};

/// When a renewal is wanted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum When {
    /// Inside the margin, or no token yet (`get`, `store`).
    Due,
    /// Due within this long from now (`coffer refresh`, so the timer runs before `get` must).
    Ahead(Duration),
    /// Now, whatever the token's age (`coffer refresh --force`, `coffer mode`).
    Always,
}

/// The outcome of [`Keeper::renew`].
#[derive(Debug)]
pub enum Renewal {
    /// Nothing was exchanged: the token is fresh (perhaps renewed by another process), or the
    /// registry's mode derives none.
    Fresh(Entry),
    Renewed(Entry),
    /// The exchange failed or could not start; the entry holds the cached token, if any.
    Failed(Entry, TokenError),
    /// A token was minted but the vault could not be written (a full disk, a read-only
    /// folder): the entry holds it, in memory only, and the next renewals wait `retry_after`.
    Unsaved(Entry, Error),
}

#[derive(Debug, Clone)]
pub struct Keeper {
    paths: Paths,
    /// What `answer` and `store` have to tell the person besides their result.
    warnings: Warnings,
}

impl Keeper {
    pub fn new(paths: Paths) -> Keeper {
        Keeper {
            paths,
            warnings: Warnings::default(),
        }
    }

    /// The keeper, leaving its warnings in `warnings` (the action's, shared with its store).
    pub fn warning_into(self, warnings: Warnings) -> Keeper {
        Keeper { warnings, ..self }
    }

    fn config(&self) -> Result<Config> {
        Ok(Config::load(&self.paths)?)
    }

    /// What a client gets for a registry with no stored entry: a chain-mode cloud token.
    pub fn answer_unstored(&self, url: &ServerUrl) -> Result<Option<Entry>> {
        super::chain::answer::answer(&self.paths, url, &self.warnings)
    }

    /// What a client gets for a stored entry: the credential, or the token derived from it,
    /// as [`handout`] decides; a token that is due is renewed first.
    pub fn answer(&self, store: &dyn Store, entry: Entry) -> Result<Entry> {
        // Plain Basic entries take this path: no config read, no clock, no write.
        if entry.tokens.is_none() {
            return Ok(entry);
        }
        let config = self.config()?;
        let url = ServerUrl::parse(&entry.server_url)?;
        let mode = registry(&config, url.host()).mode;
        let now = now();
        let tokens = entry.tokens.as_ref().map(TokenSummary::from);
        let due = match handout(mode, tokens.as_ref(), now) {
            Handout::Credential => return Ok(entry),
            Handout::Token => derived(&entry).is_some_and(|token| {
                providers::of(mode).is_some_and(|p| token.provider != p.name())
                    || token.due(now, config.tokens.min_margin)
            }),
            Handout::TokenFirst => true,
        };
        if !due {
            return Ok(with_token(entry));
        }
        match self.renew(store, &url.key(), &config, When::Due)? {
            Some(Renewal::Fresh(entry) | Renewal::Renewed(entry)) => Ok(with_token(entry)),
            Some(Renewal::Unsaved(entry, error)) => {
                self.warnings.push(Warning::new(format!(
                    "warning: the renewed token for {} could not be saved ({error}); \
                     handing it out anyway",
                    url.host()
                )));
                Ok(with_token(entry))
            }
            Some(Renewal::Failed(entry, error)) => self.serve_cached(entry, &url, error),
            // Erased while we waited: answer with what was found, as a lookup a moment earlier would.
            None => Ok(with_token(entry)),
        }
    }

    /// Whether storing a credential for `url` mints a token (its registry is in a token mode).
    pub fn mints(&self, url: &ServerUrl) -> Result<bool> {
        Ok(registry(&self.config()?, url.host()).mode != Mode::Basic)
    }

    /// What an entry stored without a description gets (`default_description`).
    pub fn default_description(&self) -> Result<Option<String>> {
        Ok(self.config()?.default_description)
    }

    /// Stores a credential the client sent; in a token mode, mints its first token.
    pub fn store(&self, store: &dyn Store, url: &ServerUrl, entry: Entry) -> Result<()> {
        let key = url.key();
        let config = self.config()?;
        let mut incoming = Some(entry);
        let mut kept = false;
        store.update(&key, &mut |slot| {
            let Some(new) = incoming.take() else {
                return false;
            };
            if let Some(old) = slot.as_ref()
                && would_replace_credential_with_token(old, &new)
            {
                kept = true;
                return false;
            }
            let created = slot.as_ref().map_or(new.created, |old| old.created);
            // A new password for the same machine or purpose is still theirs.
            let description = new
                .description
                .clone()
                .or_else(|| slot.as_ref().and_then(|old| old.description.clone()))
                .or_else(|| config.default_description.clone());
            *slot = Some(Entry {
                created,
                description,
                ..new
            });
            true
        })?;
        if kept {
            return Ok(());
        }
        let mode = registry(&config, url.host()).mode;
        if mode == Mode::Basic {
            return Ok(());
        }
        let failure = match self.renew(store, &key, &config, When::Due)? {
            Some(Renewal::Failed(_, error)) => Some(error.to_string()),
            Some(Renewal::Unsaved(_, error)) => {
                Some(format!("the token could not be saved: {error}"))
            }
            _ => None,
        };
        if let Some(error) = failure {
            let fallback = match providers::of(mode) {
                Some(provider) if !provider.hands_out_credential() => "has no token yet",
                _ => "stays on basic",
            };
            self.warnings.push(Warning::new(format!(
                "{} {fallback} ({} mode): {error}",
                url.host(),
                mode.name()
            )));
        }
        Ok(())
    }

    /// Renews the token of the entry stored under `key` if `when` asks for it and its mode
    /// derives one. `None` when no entry is stored there.
    pub fn renew(
        &self,
        store: &dyn Store,
        key: &str,
        config: &Config,
        when: When,
    ) -> Result<Option<Renewal>> {
        let wait = config.tokens.timeout * 2 + Duration::from_secs(2);
        let lock = files::lock(&self.paths.home().join("refresh.lock"), wait);
        let keys = [key.to_owned()];
        // Read after taking the lock: another process may have renewed while we waited. Not a
        // use of the credential: the action that asked for the renewal was recorded already.
        let Some(entry) = store.peek(&keys)? else {
            return Ok(None);
        };
        match lock {
            Ok(_held) => self.renew_locked(store, key, entry, config, when).map(Some),
            Err(FileError::LockTimeout(seconds)) => {
                Ok(Some(Renewal::Failed(entry, TokenError::Busy { seconds })))
            }
            // No lock file can be made (a read-only or full folder): nothing can be saved either,
            // so the renewal goes on unlocked, to serve a valid token and remember the failure.
            Err(FileError::Io { .. }) => {
                self.renew_locked(store, key, entry, config, when).map(Some)
            }
            Err(error) => Err(error.into()),
        }
    }

    fn renew_locked(
        &self,
        store: &dyn Store,
        key: &str,
        entry: Entry,
        config: &Config,
        when: When,
    ) -> Result<Renewal> {
        let url = ServerUrl::parse(&entry.server_url)?;
        let settings = registry(config, url.host());
        let Some(provider) = providers::of(settings.mode) else {
            return Ok(Renewal::Fresh(entry));
        };
        let state = entry.tokens.clone().unwrap_or_default();
        let now = now();
        let min_margin = config.tokens.min_margin;
        let wanted = match (&state.token, when) {
            (None, _) | (_, When::Always) => true,
            (Some(token), _) if token.provider != provider.name() => true,
            (Some(token), When::Due) => token.due(now, min_margin),
            (Some(token), When::Ahead(ahead)) => {
                token.due(now.saturating_add(ahead.as_secs()), min_margin)
            }
        };
        if !wanted {
            return Ok(Renewal::Fresh(entry));
        }
        if when != When::Always
            && let Some(since) = state.refused_since
        {
            let error = TokenError::Refused {
                registry: url.host().to_owned(),
                since: humantime::format_rfc3339_seconds(
                    std::time::UNIX_EPOCH + Duration::from_secs(since),
                )
                .to_string(),
                reason: state
                    .last_error
                    .as_ref()
                    .map_or_else(String::new, |f| f.message.clone()),
            };
            return Ok(Renewal::Failed(entry, error));
        }
        let unsaved = Unsaved::new(&self.paths);
        if when != When::Always {
            let earlier = match state.backing_off(now, config.tokens.retry_after) {
                Some(failure) => Some(failure.message.clone()),
                None => unsaved.recent(now, config.tokens.retry_after),
            };
            if let Some(message) = earlier {
                return Ok(Renewal::Failed(entry, TokenError::Earlier(message)));
            }
        }
        let minted = if entry.username == IDENTITY_TOKEN_USERNAME {
            Err(TokenError::NoCredential)
        } else if let Some(token) = &state.token
            && token.provider != provider.name()
            && providers::by_name(&token.provider).is_none()
        {
            Err(TokenError::UnknownProvider(token.provider.clone()))
        } else {
            Http::new(&config.tokens, &settings).and_then(|http| {
                let target = Target {
                    url: &url,
                    http: &http,
                    settings: &settings,
                    tokens: &config.tokens,
                };
                let credential = LongLived {
                    username: &entry.username,
                    secret: &entry.secret,
                };
                provider.mint(&target, &credential)
            })
        };
        let mut state = state;
        let minted = minted.and_then(|m| Derived::new(provider.name(), m, crate::clock::now()));
        let outcome = match minted {
            Ok(token) => {
                state.token = Some(token);
                state.last_refresh = Some(crate::clock::now());
                state.last_error = None;
                state.refused_since = None;
                None
            }
            Err(error) => {
                let at = crate::clock::now();
                if error.blames_credential() {
                    state.refused_since = state.refused_since.or(Some(at));
                }
                state.last_error = Some(Failure {
                    at,
                    message: error.to_string(),
                });
                Some(error)
            }
        };
        match save_state(store, key, &entry, state.clone()) {
            Ok(saved) => {
                unsaved.clear();
                Ok(match outcome {
                    None => Renewal::Renewed(saved),
                    Some(error) => Renewal::Failed(saved, error),
                })
            }
            // The cached token still serves, and the failure is remembered outside the vault:
            // a full disk must neither fail a pull nor run the exchange on every one.
            Err(error) => {
                unsaved.record(&error);
                Ok(match outcome {
                    None => Renewal::Unsaved(
                        Entry {
                            tokens: Some(state),
                            ..entry
                        },
                        error,
                    ),
                    Some(minting) => Renewal::Failed(entry, minting),
                })
            }
        }
    }

    /// After a failed renewal: the cached token while it is valid, with a warning; else an
    /// error.
    fn serve_cached(&self, entry: Entry, url: &ServerUrl, error: TokenError) -> Result<Entry> {
        match state::fallback(derived(&entry), url.host(), error, now()) {
            Ok(warning) => {
                self.warnings.push(warning);
                Ok(with_token(entry))
            }
            // Its own advice (log in again) is the one that helps.
            Err(error @ TokenError::Refused { .. }) => Err(Error::Token(error)),
            Err(error) => Err(Error::Token(TokenError::Expired {
                registry: url.host().to_owned(),
                reason: Box::new(error),
            })),
        }
    }

    /// A registry's mode, just changed (`coffer mode`), applied to an entry stored now rather
    /// than at its next login: `basic` forgets the derived token; any other mode exchanges at
    /// once, whatever the last exchange's outcome was (new settings deserve a new one).
    pub fn apply_mode(
        &self,
        store: &dyn Store,
        key: &str,
        mode: Mode,
        config: &Config,
    ) -> Result<Applied> {
        if mode == Mode::Basic {
            self.forget(store, key)?;
            return Ok(Applied::HandsOutCredential);
        }
        let renewal = self.renew(store, key, config, When::Always)?;
        Ok(Applied::Exchanged(Box::new(renewal)))
    }

    /// Drops the derived tokens of the entry under `key` (switching a registry to `basic`).
    pub fn forget(&self, store: &dyn Store, key: &str) -> Result<()> {
        store.update(key, &mut |slot| match slot {
            Some(entry) if entry.tokens.is_some() => {
                entry.tokens = None;
                true
            }
            _ => false,
        })
    }
}

/// What `get` hands out for an entry, before any renewal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Handout {
    /// The stored credential: basic mode, or a mode whose provider allows it while no token was
    /// minted (registry OAuth2).
    Credential,
    /// The derived token, which is valid (renewed first when due).
    Token,
    /// Nothing until a token is minted: `get` tries, and fails if it cannot (an expired token,
    /// or a cloud or exec credential whose token could not be minted: those never go out).
    TokenFirst,
}

impl Handout {
    pub fn name(self) -> &'static str {
        match self {
            Handout::Credential => "credential",
            Handout::Token => "token",
            Handout::TokenFirst => "no token",
        }
    }
}

/// What [`Keeper::apply_mode`] did to a stored entry.
#[derive(Debug)]
pub enum Applied {
    /// Basic mode: its token is forgotten; `get` hands out the stored credential.
    HandsOutCredential,
    /// A token mode: the exchange's outcome (`None`: nothing is stored there any more).
    Exchanged(Box<Option<Renewal>>),
}

/// The one rule for what a registry hands out: [`Keeper::answer`] follows it, and
/// `coffer token status` reports it, so the two cannot disagree.
pub fn handout(mode: Mode, tokens: Option<&TokenSummary>, now: u64) -> Handout {
    // Never exchanged: handed out as stored, the way entries kept before the token vault are.
    let Some(tokens) = tokens else {
        return Handout::Credential;
    };
    let Some(provider) = providers::of(mode) else {
        return Handout::Credential;
    };
    match (&tokens.provider, tokens.expires_at) {
        (Some(_), expires_at) if expires_at.is_none_or(|at| now < at) => Handout::Token,
        (Some(_), _) => Handout::TokenFirst,
        (None, _) if provider.hands_out_credential() => Handout::Credential,
        (None, _) => Handout::TokenFirst,
    }
}

/// The registry's settings (its section, else a matching pattern); every registry without one
/// is `basic`.
pub fn registry(config: &Config, host: &str) -> RegistrySettings {
    super::settings::lookup(&config.registries, host)
        .cloned()
        .unwrap_or_default()
}

fn derived(entry: &Entry) -> Option<&Derived> {
    entry.tokens.as_ref()?.token.as_ref()
}

/// The entry as a client sees it: the derived token in place of the credential.
fn with_token(mut entry: Entry) -> Entry {
    if let Some(token) = entry.tokens.as_ref().and_then(|s| s.token.as_ref()) {
        entry.username = token.username.clone();
        entry.secret = token.secret.clone();
    }
    entry
}

/// `docker login` without `-u` sends back what `get` gave it: never let that token, or an
/// identity token the client got with it, replace the credential it was derived from.
fn would_replace_credential_with_token(old: &Entry, new: &Entry) -> bool {
    derived(old)
        .is_some_and(|token| token.is(&new.secret) || new.username == IDENTITY_TOKEN_USERNAME)
}

/// Writes the token state into the stored entry, unless its credential changed meanwhile (a
/// `docker login` with a new password): tokens of the old credential are not kept.
fn save_state(store: &dyn Store, key: &str, used: &Entry, state: TokenState) -> Result<Entry> {
    let mut state = Some(state);
    let mut saved = None;
    store.update(key, &mut |slot| {
        let Some(entry) = slot.as_mut() else {
            return false;
        };
        if entry.username != used.username || !same_secret(entry, used) {
            return false;
        }
        entry.tokens = state.take();
        saved = Some(entry.clone());
        true
    })?;
    Ok(saved.unwrap_or_else(|| used.clone()))
}

fn same_secret(a: &Entry, b: &Entry) -> bool {
    use secrecy::ExposeSecret;
    a.secret.expose_secret() == b.secret.expose_secret()
}

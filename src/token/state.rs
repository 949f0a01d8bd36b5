//! What the vault keeps beside a credential in a token mode: the derived token with its times,
//! and the outcome of the last exchange. It lives inside the entry's sealed record, so it is as
//! encrypted as the credential; entries without it are plain Basic entries, as before.

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::PathBuf;
use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};

use super::TokenError;
use super::provider::Minted;
use crate::paths::Paths;
use crate::warning::Warning;
use sha2::{Digest, Sha256};

/// How far the clock may step back (an NTP correction) before a token's times are taken to be
/// from another clock: one minted while the clock ran ahead would otherwise be trusted for as
/// long as the clock was wrong.
pub const CLOCK_SLACK: u64 = 60;

/// The shortest lifetime a configured token may have. Renewal starts after a quarter of a short
/// lifetime (see [`Derived::renew_at`]), so anything shorter would be minted on every pull.
pub const MIN_LIFETIME: Duration = Duration::from_secs(4);

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct TokenState {
    /// The token handed out instead of the credential.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token: Option<Derived>,
    /// Unix seconds of the last successful exchange.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_refresh: Option<u64>,
    /// The last exchange's failure, cleared by a success.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<Failure>,
    /// Since when (Unix seconds) the issuer refuses the credential itself: revoked, deleted,
    /// wrong. No exchange is tried again until a new credential replaces it (which starts a
    /// fresh state) or a person forces one (`coffer refresh --force`, `coffer mode`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refused_since: Option<u64>,
}

/// A token derived from the credential. Times are Unix seconds in this machine's clock.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Derived {
    /// The provider that minted it, and renews it.
    pub provider: String,
    #[serde(rename = "user")]
    pub username: String,
    #[serde(serialize_with = "crate::serde_secret::expose")]
    pub secret: SecretString,
    pub issued_at: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Failure {
    pub at: u64,
    /// One line, never a secret: an error message of this crate.
    pub message: String,
}

/// What `coffer token status` and `coffer ls --json` show of a token state: never the token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TokenSummary {
    pub provider: Option<String>,
    pub issued_at: Option<u64>,
    pub expires_at: Option<u64>,
    pub last_refresh: Option<u64>,
    pub last_error: Option<Failure>,
    pub refused_since: Option<u64>,
}

impl From<&TokenState> for TokenSummary {
    fn from(state: &TokenState) -> Self {
        TokenSummary {
            provider: state.token.as_ref().map(|t| t.provider.clone()),
            issued_at: state.token.as_ref().map(|t| t.issued_at),
            expires_at: state.token.as_ref().and_then(|t| t.expires_at),
            last_refresh: state.last_refresh,
            last_error: state.last_error.clone(),
            refused_since: state.refused_since,
        }
    }
}

impl Derived {
    pub fn new(provider: &str, minted: Minted) -> Derived {
        Derived {
            provider: provider.to_owned(),
            username: minted.username,
            secret: minted.secret,
            issued_at: minted.issued_at,
            expires_at: minted.expires_at,
        }
    }

    /// When to renew: once less than `max(lifetime / 2, min_margin)` is left, so a long push
    /// started on the token still has time. A lifetime shorter than that minimum cannot keep
    /// it; then renewal starts after a quarter of the lifetime rather than on every use.
    /// `None` when the token states no expiry.
    pub fn renew_at(&self, min_margin: Duration) -> Option<u64> {
        let expires = self.expires_at?;
        let lifetime = expires.saturating_sub(self.issued_at);
        let margin = (lifetime / 2)
            .max(min_margin.as_secs())
            .min(lifetime - lifetime / 4);
        Some(expires - margin)
    }

    /// Due once its renewal time has come, or at once when it was minted ahead of this clock.
    pub fn due(&self, now: u64, min_margin: Duration) -> bool {
        self.minted_ahead(now) || self.renew_at(min_margin).is_some_and(|at| now >= at)
    }

    /// Still good to hand out: before its expiry, by a clock no earlier than the one it was
    /// minted by (how long it really has left is unknown after the clock went back).
    pub fn valid(&self, now: u64) -> bool {
        !self.minted_ahead(now) && self.expires_at.is_none_or(|expires| now < expires)
    }

    /// Minted by a clock ahead of this one; only an expiring token's times depend on the clock.
    fn minted_ahead(&self, now: u64) -> bool {
        self.expires_at.is_some() && now.saturating_add(CLOCK_SLACK) < self.issued_at
    }

    pub fn is(&self, secret: &SecretString) -> bool {
        self.secret.expose_secret() == secret.expose_secret()
    }
}

/// After a failed renewal of `host`'s token: the warning that the cached token serves while it
/// is still valid, else the failure to report. Stored entries and chain-mode tokens both fall
/// back through here.
pub fn fallback(
    cached: Option<&Derived>,
    host: &str,
    error: TokenError,
    now: u64,
) -> Result<Warning, TokenError> {
    match cached {
        Some(token) if token.valid(now) => {
            let left = token
                .expires_at
                .map(|at| format!(", valid for {} s more", at - now))
                .unwrap_or_default();
            Ok(Warning::new(format!(
                "warning: cannot renew the token for {host}: {error}; using the cached one{left}"
            )))
        }
        _ => Err(error),
    }
}

impl TokenState {
    /// Did an exchange fail after the last success, less than `retry_after` ago? A failure
    /// dated ahead of the clock (which was since set back) is not waited for.
    pub fn backing_off(&self, now: u64, retry_after: Duration) -> Option<&Failure> {
        self.last_error.as_ref().filter(|failure| {
            failure.at >= self.last_refresh.unwrap_or(0)
                && failure.at <= now.saturating_add(CLOCK_SLACK)
                && now < failure.at.saturating_add(retry_after.as_secs())
        })
    }
}

/// A renewal whose result could not be written to the vault, remembered outside it so that
/// the next pulls wait `retry_after` instead of renewing again. The record is a small file in
/// the runtime folder (a tmpfs, apart from the vault's disk) or else beside the vault; its
/// modification time says when, so even an empty one (no free block needed) does its job.
#[derive(Debug)]
pub struct Unsaved {
    places: Vec<PathBuf>,
}

impl Unsaved {
    pub fn new(paths: &Paths) -> Unsaved {
        let mut places = Vec::new();
        if let Some(runtime) = std::env::var_os("XDG_RUNTIME_DIR").filter(|d| !d.is_empty()) {
            let id: String = Sha256::digest(paths.home().as_os_str().as_encoded_bytes())[..8]
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect();
            places.push(PathBuf::from(runtime).join(format!("coffer-unsaved-{id}")));
        }
        places.push(paths.home().join("renewal.unsaved"));
        Unsaved { places }
    }

    /// Records `error` in the first place that takes it.
    pub fn record(&self, error: &dyn std::fmt::Display) {
        let message = format!("its token could not be saved: {error}");
        for place in &self.places {
            let file = OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .mode(0o600)
                .open(place);
            if let Ok(mut file) = file {
                // The time is the record; the message is a courtesy that may not fit.
                let _ = file.write_all(message.as_bytes());
                let _ = file.set_modified(std::time::SystemTime::now());
                return;
            }
        }
    }

    /// The recorded failure's message, while it is less than `retry_after` old.
    pub fn recent(&self, now: u64, retry_after: Duration) -> Option<String> {
        self.places.iter().find_map(|place| {
            let at = crate::clock::unix(fs::metadata(place).ok()?.modified().ok()?);
            let recent = at <= now.saturating_add(CLOCK_SLACK)
                && now < at.saturating_add(retry_after.as_secs());
            recent.then(|| {
                fs::read_to_string(place)
                    .ok()
                    .filter(|m| !m.is_empty())
                    .unwrap_or_else(|| "its token could not be saved".to_owned())
            })
        })
    }

    pub fn clear(&self) {
        for place in &self.places {
            let _ = fs::remove_file(place);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn token(issued_at: u64, lifetime: Option<u64>) -> Derived {
        Derived {
            provider: "oauth2".into(),
            username: "<token>".into(),
            secret: "t".into(),
            issued_at,
            expires_at: lifetime.map(|l| issued_at.saturating_add(l)),
        }
    }

    const MIN: Duration = Duration::from_secs(600);

    #[test]
    fn long_lifetimes_renew_at_half_time() {
        let t = token(1000, Some(3 * 3600));
        assert_eq!(t.renew_at(MIN), Some(1000 + 5400));
        assert!(!t.due(1000 + 5399, MIN));
        assert!(t.due(1000 + 5400, MIN));
        assert!(t.valid(1000 + 3 * 3600 - 1));
        assert!(!t.valid(1000 + 3 * 3600));
    }

    #[test]
    fn the_minimum_margin_wins_over_half_of_a_short_lifetime() {
        // 30 min: half would leave 15 min; the minimum is 10 min, so half wins.
        assert_eq!(token(0, Some(1800)).renew_at(MIN), Some(900));
        // 15 min: half leaves 7.5 min, less than 10: renew with 10 min left.
        assert_eq!(token(0, Some(900)).renew_at(MIN), Some(300));
    }

    #[test]
    fn lifetimes_below_the_minimum_renew_after_a_quarter() {
        // 5 min can never leave 10: renew once 75 s have passed, not on every get.
        let t = token(0, Some(300));
        assert_eq!(t.renew_at(MIN), Some(75));
        assert!(!t.due(0, MIN), "a fresh token is never due");
    }

    #[test]
    fn tokens_without_expiry_are_never_due() {
        let t = token(0, None);
        assert_eq!(t.renew_at(MIN), None);
        assert!(!t.due(u64::MAX, MIN));
        assert!(t.valid(u64::MAX));
    }

    #[test]
    fn a_token_minted_while_the_clock_was_ahead_is_renewed_and_not_trusted() {
        // Minted with the clock a day ahead, then the clock was corrected.
        let t = token(86_400 + 1000, Some(3600));
        assert!(t.due(1000, MIN) && !t.valid(1000));
        // A small step back (an NTP correction) changes nothing.
        let t = token(1000 + CLOCK_SLACK, Some(3600));
        assert!(!t.due(1000, MIN) && t.valid(1000));
        // A token without expiry does not depend on the clock.
        assert!(!token(86_400, None).due(0, MIN) && token(86_400, None).valid(0));
        // Nor does a failure dated a day ahead keep renewals waiting.
        let state = TokenState {
            last_error: Some(Failure {
                at: 86_400 + 1000,
                message: "down".into(),
            }),
            ..TokenState::default()
        };
        assert!(state.backing_off(1000, Duration::from_secs(30)).is_none());
    }

    #[test]
    fn a_clock_before_1970_reads_as_zero_and_nothing_overflows() {
        let t = token(u64::MAX - 10, Some(3600));
        assert!(t.due(0, MIN) && !t.valid(0));
        let t = token(0, Some(u64::MAX));
        assert!(!t.due(0, MIN) && t.valid(0));
    }

    #[test]
    fn backoff_follows_the_last_failure_only() {
        let mut state = TokenState {
            last_error: Some(Failure {
                at: 100,
                message: "down".into(),
            }),
            ..TokenState::default()
        };
        let retry = Duration::from_secs(30);
        assert!(state.backing_off(129, retry).is_some());
        assert!(state.backing_off(130, retry).is_none());
        state.last_refresh = Some(110);
        assert!(state.backing_off(120, retry).is_none(), "a later success");
    }
}

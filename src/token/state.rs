//! What the vault keeps beside a credential in a token mode: the derived token with its times,
//! and the outcome of the last exchange. It lives inside the entry's sealed record, so it is as
//! encrypted as the credential; entries without it are plain Basic entries, as before.

use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};

use super::provider::Minted;

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
    #[serde(serialize_with = "crate::store::expose")]
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

    pub fn due(&self, now: u64, min_margin: Duration) -> bool {
        self.renew_at(min_margin).is_some_and(|at| now >= at)
    }

    pub fn valid(&self, now: u64) -> bool {
        self.expires_at.is_none_or(|expires| now < expires)
    }

    pub fn is(&self, secret: &SecretString) -> bool {
        self.secret.expose_secret() == secret.expose_secret()
    }
}

impl TokenState {
    /// Did an exchange fail after the last success, less than `retry_after` ago?
    pub fn backing_off(&self, now: u64, retry_after: Duration) -> Option<&Failure> {
        self.last_error.as_ref().filter(|failure| {
            failure.at >= self.last_refresh.unwrap_or(0)
                && now < failure.at.saturating_add(retry_after.as_secs())
        })
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
            expires_at: lifetime.map(|l| issued_at + l),
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

//! What the vault keeps beside a credential in a token mode: the derived token with its times,
//! and the outcome of the last exchange. It lives inside the entry's sealed record, so it is as
//! encrypted as the credential; entries without it are plain Basic entries, as before.

use std::fs;
use std::io::Write;
use std::path::PathBuf;
use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};

use super::TokenError;
use super::provider::Minted;
use crate::files;
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
    /// A token `provider` minted, arrived by `now`, with times that make sense in this clock:
    /// it was issued no later than it arrived (an issuer's `iat` in the year 9999 is read as
    /// now, or the token would be "minted ahead" and renewed on every use), and it has not
    /// expired on arrival (renewing such a token on every use would be a request storm; its
    /// renewal fails instead, and waits `retry_after` like any other failure).
    pub fn new(provider: &str, minted: Minted, now: u64) -> Result<Derived, TokenError> {
        if let Some(expires) = minted.expires_at
            && expires <= now
        {
            return Err(TokenError::ExpiredOnArrival {
                provider: provider.to_owned(),
                expired: crate::clock::rfc3339(expires),
            });
        }
        Ok(Derived {
            provider: provider.to_owned(),
            username: minted.username,
            secret: minted.secret,
            issued_at: minted.issued_at.min(now),
            expires_at: minted.expires_at,
        })
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
/// The runtime folder is not coffer's own: a record there is written and read only through
/// [`files::open_own`], so a FIFO, a link or another user's file there is passed over.
#[derive(Debug)]
pub struct Unsaved {
    places: Vec<PathBuf>,
}

/// The record's message is one line of this crate; more is not ours.
const MAX_UNSAVED: u64 = 1024;
const UNSAVED: &str = "its token could not be saved";

impl Unsaved {
    pub fn new(paths: &Paths) -> Unsaved {
        let runtime = std::env::var_os("XDG_RUNTIME_DIR").filter(|d| !d.is_empty());
        Unsaved::at(runtime.map(PathBuf::from), paths)
    }

    fn at(runtime: Option<PathBuf>, paths: &Paths) -> Unsaved {
        let mut places = Vec::new();
        if let Some(runtime) = runtime {
            let id: String = Sha256::digest(paths.home().as_os_str().as_encoded_bytes())[..8]
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect();
            places.push(runtime.join(format!("coffer-unsaved-{id}")));
        }
        places.push(paths.home().join("renewal.unsaved"));
        Unsaved { places }
    }

    /// Records `error` in the first place that takes it.
    pub fn record(&self, error: &dyn std::fmt::Display) {
        let message = format!("{UNSAVED}: {error}");
        for place in &self.places {
            if let Ok(Some(mut file)) = files::open_own(place, true) {
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
            let file = files::open_own(place, false).ok()??;
            let at = crate::clock::unix(file.metadata().ok()?.modified().ok()?);
            let recent = at <= now.saturating_add(CLOCK_SLACK)
                && now < at.saturating_add(retry_after.as_secs());
            recent.then(|| {
                // Only a message of ours is shown: one line of printable text.
                files::read_at_most(&file, MAX_UNSAVED)
                    .ok()
                    .flatten()
                    .and_then(|bytes| String::from_utf8(bytes).ok())
                    .filter(|m| m.starts_with(UNSAVED) && !m.chars().any(char::is_control))
                    .unwrap_or_else(|| UNSAVED.to_owned())
            })
        })
    }

    pub fn clear(&self) {
        for place in &self.places {
            // Only a record of ours: nothing is removed from a folder that is not ours alone.
            if files::open_own(place, false).is_ok_and(|file| file.is_some()) {
                let _ = fs::remove_file(place);
            }
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
    fn a_minted_token_is_issued_no_later_than_now_and_not_expired_on_arrival() {
        let now = 1_700_000_000;
        let minted = |issued_at, expires_at| Minted {
            username: "u".into(),
            secret: "t".into(),
            issued_at,
            expires_at,
        };
        // The year 9999: read as now, so the token is not "minted ahead" and due at once.
        let ahead =
            Derived::new("oauth2", minted(253_402_214_400, Some(now + 3600)), now).expect("valid");
        assert_eq!(ahead.issued_at, now);
        assert!(!ahead.due(now, MIN), "{ahead:?}");
        let past = Derived::new("oauth2", minted(now - 60, Some(now + 60)), now).expect("valid");
        assert_eq!(past.issued_at, now - 60);
        for expired in [now, now - 1, 0] {
            let error = Derived::new("oauth2", minted(now - 60, Some(expired)), now)
                .expect_err("expired on arrival");
            assert!(error.to_string().contains("clock"), "{error}");
        }
    }

    /// An unsaved-renewal record in a runtime folder that another user controls, or beside
    /// it: the record of every test below, a day's `retry_after`.
    fn places() -> (tempfile::TempDir, Unsaved, PathBuf) {
        let dir = tempfile::tempdir().expect("temp dir");
        for sub in ["runtime", "home"] {
            files::ensure_private_dir(&dir.path().join(sub)).expect("mkdir");
        }
        let unsaved = Unsaved::at(
            Some(dir.path().join("runtime")),
            &Paths::new(dir.path().join("home")),
        );
        let place = unsaved.places[0].clone();
        (dir, unsaved, place)
    }

    const DAY: Duration = Duration::from_secs(86_400);

    /// `recent`, failing the test instead of hanging it.
    fn recent_within_a_second(unsaved: &Unsaved) -> Option<String> {
        let unsaved = Unsaved {
            places: unsaved.places.clone(),
        };
        let (sender, receiver) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let _ = sender.send(unsaved.recent(crate::clock::now(), DAY));
        });
        receiver
            .recv_timeout(Duration::from_secs(1))
            .expect("reading the record hung")
    }

    #[test]
    fn a_fifo_where_the_unsaved_record_goes_hangs_nothing() {
        let (dir, unsaved, place) = places();
        let made = std::process::Command::new("mkfifo").arg(&place).status();
        assert!(made.expect("mkfifo").success());
        assert_eq!(recent_within_a_second(&unsaved), None);
        // The record goes beside the vault instead, without blocking on the FIFO.
        unsaved.record(&files::FileError::LockTimeout(1));
        assert!(dir.path().join("home/renewal.unsaved").is_file());
        let message = recent_within_a_second(&unsaved).expect("recorded beside the vault");
        assert!(message.starts_with(UNSAVED), "{message}");
    }

    #[test]
    fn the_unsaved_record_never_writes_through_a_link() {
        let (dir, unsaved, place) = places();
        let victim = dir.path().join("profile");
        fs::write(&victim, "export PATH\n").expect("write");
        std::os::unix::fs::symlink(&victim, &place).expect("link");
        unsaved.record(&files::FileError::LockTimeout(1));
        assert_eq!(fs::read_to_string(&victim).expect("read"), "export PATH\n");
        assert!(dir.path().join("home/renewal.unsaved").is_file());
        unsaved.clear();
        assert!(place.is_symlink(), "a link that is not ours is left alone");
    }

    #[test]
    fn another_users_record_neither_stops_renewals_nor_reaches_the_terminal() {
        let (dir, unsaved, place) = places();
        fs::write(&place, "its token could not be saved\u{1b}]0;owned\u{7}").expect("write");
        let chown = std::os::unix::fs::chown(&place, Some(65534), Some(65534));
        chown.expect("chown to nobody: run the tests as root, as scripts/test does");
        assert_eq!(recent_within_a_second(&unsaved), None);
        // Nor in a runtime folder others can write to, even when the file is ours.
        let (_other, unsaved, place) = places();
        fs::write(&place, UNSAVED).expect("write");
        let runtime = place.parent().expect("runtime");
        fs::set_permissions(runtime, std::os::unix::fs::PermissionsExt::from_mode(0o777))
            .expect("chmod");
        assert_eq!(recent_within_a_second(&unsaved), None);
        drop(dir);
    }

    #[test]
    fn a_record_of_ours_is_read_and_only_as_one_printable_line() {
        let (_dir, unsaved, place) = places();
        unsaved.record(&files::FileError::LockTimeout(1));
        assert!(place.is_file(), "recorded in the runtime folder");
        let message = recent_within_a_second(&unsaved);
        assert!(
            message
                .expect("recent")
                .starts_with("its token could not be saved: ")
        );
        fs::write(&place, "its token could not be saved\u{1b}[2J").expect("write");
        let message = recent_within_a_second(&unsaved);
        assert_eq!(message.as_deref(), Some(UNSAVED));
        unsaved.clear();
        assert!(!place.exists());
    }

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

//! What the three identity chains share (each cloud's own is `<cloud>/identity.rs`; the
//! dispatch by mode is in [`super::providers`]). The clouds' own SDKs, for chain mode: `aws-config` with `aws-sdk-ecr`/`-ecrpublic`/`-sts`,
//! `google-cloud-auth`, `azure_identity`. Each flow runs on a current-thread tokio runtime
//! made for that one mint, so nothing async exists until a token is due.
//!
//! Fail fast: finding an identity (probing metadata services, reading files) has a budget of
//! [`IDENTITY_BUDGET`] in all, so a machine with no identity, or with a metadata port that
//! accepts connections and never answers, gets its error within two seconds; the exchanges
//! after it have the `[tokens]` timeouts.

use std::time::{Duration, Instant};

use super::TokenError;

/// The time to find an identity, all sources together.
pub const IDENTITY_BUDGET: Duration = Duration::from_millis(1500);

/// What is left of the identity budget.
#[derive(Debug)]
pub struct Budget {
    started: Instant,
    pub total: Duration,
}

impl Budget {
    pub fn start() -> Budget {
        Budget {
            started: Instant::now(),
            total: IDENTITY_BUDGET,
        }
    }

    /// `None` once spent.
    pub fn left(&self) -> Option<Duration> {
        self.total
            .checked_sub(self.started.elapsed())
            .filter(|left| !left.is_zero())
    }

    /// The timeout of one metadata probe: a part of the budget, so a blackholed port leaves
    /// time for the error.
    pub fn probe(&self) -> Duration {
        self.total * 2 / 3
    }
}

/// Runs one flow on a current-thread runtime made for it.
pub fn block_on<T>(flow: impl Future<Output = Result<T, TokenError>>) -> Result<T, TokenError> {
    // Google's and Azure's HTTP clients take rustls' process-wide provider; ring is the one
    // every other client here uses. Installing twice is harmless.
    let _ = rustls::crypto::ring::default_provider().install_default();
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(TokenError::Runtime)?
        .block_on(flow)
}

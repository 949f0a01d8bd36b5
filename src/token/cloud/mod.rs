//! The clouds' own SDKs, for chain mode: `aws-config` with `aws-sdk-ecr`/`-ecrpublic`/`-sts`,
//! `google-cloud-auth`, `azure_identity`. Each flow runs on a current-thread tokio runtime
//! made for that one mint, so nothing async exists until a token is due.
//!
//! Fail fast: finding an identity (probing metadata services, reading files) has a budget of
//! [`IDENTITY_BUDGET`] in all, so a machine with no identity, or with a metadata port that
//! accepts connections and never answers, gets its error within two seconds; the exchanges
//! after it have the `[tokens]` timeouts.

pub mod aws;
pub mod azure;
pub mod google;

use std::time::{Duration, Instant};

use super::TokenError;
use super::chain::Request;
use super::provider::Minted;
use super::settings::Mode;

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

/// The chain-mode minter of the `coffer` binary (see [`super::chain::mint_in_process`]).
pub fn mint(request: &Request) -> Result<Minted, TokenError> {
    match request.registry.mode {
        Mode::Ecr => block_on(aws::mint(request)),
        Mode::Google => block_on(google::mint(request)),
        Mode::Azure => azure::mint(request),
        other => Err(no_identity(other)),
    }
}

fn no_identity(mode: Mode) -> TokenError {
    super::shared::SettingsError::invalid("this mode has no machine identity").in_mode(mode.name())
}

/// Which identity a chain-mode registry would use here, and why, for `coffer doctor` and
/// `coffer token status`; the error says what was tried.
pub fn describe(request: &Request) -> Result<String, TokenError> {
    match request.registry.mode {
        Mode::Ecr => block_on(aws::describe(request)),
        Mode::Google => block_on(google::describe(request)),
        Mode::Azure => azure::describe(request),
        other => Err(no_identity(other)),
    }
}

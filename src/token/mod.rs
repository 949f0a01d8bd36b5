//! The token vault: the long-lived credential stays in the vault; clients get a token derived
//! from it, renewed before it runs out.
//!
//! - [`settings`]: the per-registry mode (`basic`, `oauth2`, `auto`) and the margins and
//!   timeouts, as spelled in `config.toml`: data only.
//! - [`provider`]: the one trait a token source implements (a leaf); [`providers`]: the one
//!   place that names them all (and dispatches chain mode); [`shared`]: what they share.
//!   [`oauth2`] is registry OAuth2, [`exec`] runs a command, and each cloud has a folder holding
//!   its registry mode and its identity chain: [`aws`], [`google`], [`azure`].
//! - [`challenge`]: `WWW-Authenticate` parsing; [`jwt`]: the times inside a token;
//!   [`http`]: the HTTP client every exchange uses.
//! - [`state`]: what is kept beside the credential in its sealed record.
//! - [`keeper`]: store, get and refresh with tokens: when to exchange, one process at a time.
//! - [`chain`]: cloud registries through the machine's own identity (chain mode), minted by the
//!   clouds' SDKs (only with the `cloud` feature, only linked by the `coffer` binary; `identity`
//!   is what the three chains share) and cached in the [`secret_cache`](crate::secret_cache)
//!   ([`cache`]) where there is no vault.

pub mod aws;
pub mod azure;
pub mod cache;
pub mod chain;
pub mod challenge;
pub mod exec;
pub mod google;
pub mod http;
#[cfg(feature = "cloud")]
pub mod identity;
pub mod jwt;
pub mod keeper;
pub mod oauth2;
pub mod provider;
pub mod providers;
pub mod settings;
pub mod shared;
pub mod state;

use std::path::PathBuf;

/// Why an exchange failed. Messages are one line, name no secret and say what to do.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    #[error("cannot reach {url}: {source}")]
    Unreachable {
        url: String,
        #[source]
        source: Transport,
    },
    #[error(
        "{url} did not answer within the {seconds} s timeout; raise `timeout` under [tokens] in config.toml if the registry is that slow"
    )]
    TimedOut { url: String, seconds: f64 },
    #[error(
        "refusing plain HTTP to {url}: use https, or allow it with `coffer mode {host} --allow-http`"
    )]
    PlainHttp { url: String, host: String },
    #[error("cannot use the CA file {}: {problem}; fix `ca_file` with `coffer mode`", path.display())]
    CaFile {
        path: PathBuf,
        #[source]
        problem: CaFileProblem,
    },
    #[error("cannot set up HTTPS: {0}")]
    Client(#[source] Transport),
    #[error("cannot set up HTTPS: cannot start the async runtime: {0}")]
    Runtime(#[source] std::io::Error),
    #[error("invalid registry URL {url}")]
    BadUrl { url: String },
    #[error("{what} at {url} answered HTTP {status}")]
    Status {
        what: &'static str,
        url: String,
        status: u16,
    },
    #[error(
        "the token server at {url} refused the stored credentials (HTTP {status}); log in again"
    )]
    CredentialRejected { url: String, status: u16 },
    #[error("{url}: {source}")]
    TooLarge {
        url: String,
        #[source]
        source: http::TooLarge,
    },
    #[error("the answer from {url} is unusable: {why}")]
    BadAnswer { url: String, why: &'static str },
    #[error(
        "the token {provider} minted had expired when it arrived (at {expired}): this machine's clock or the issuer's is wrong; check both (`timedatectl`)"
    )]
    ExpiredOnArrival { provider: String, expired: String },
    #[error("{url} does not use token authentication: {found}; keep this registry on `basic`")]
    NotTokenAuth { url: String, found: &'static str },
    #[error(
        "the token server at {url} gave no refresh token for an offline grant, so there is no identity token to hand out"
    )]
    NoRefreshToken { url: String },
    #[error(
        "the token server at {url} refuses refresh grants by POST (HTTP {status}), and docker needs them to use an identity token"
    )]
    RefreshRefused { url: String, status: u16 },
    #[error(
        "coffer holds only an identity token for this registry (the client exchanged the password itself), none to exchange; store the password with `coffer login REGISTRY --username USER`"
    )]
    NoCredential,
    #[error("another coffer process is still renewing this registry's token after {seconds} s")]
    Busy { seconds: u64 },
    #[error(
        "the stored token was minted by `{0}`, which this coffer does not know; run `coffer refresh`"
    )]
    UnknownProvider(String),
    #[error("the last renewal failed: {0}")]
    Earlier(String),
    #[error(
        "the token for {registry} expired and cannot be renewed: {reason}; run `coffer refresh {registry}` once the registry answers"
    )]
    Expired {
        registry: String,
        #[source]
        reason: Box<TokenError>,
    },
    #[error(
        "the {mode} settings of this registry are unusable: {problem}; fix them with `coffer mode`"
    )]
    Settings {
        mode: &'static str,
        #[source]
        problem: settings::SettingsError,
    },
    #[error("the stored credential is unusable: {0}; store it again with `coffer login`")]
    Credential(&'static str),
    /// An issuer's refusal with its own error code (a plain word, never a secret).
    #[error(
        "the stored credential is unusable: {issuer} at {url} refused it (HTTP {status}, {code}); store it again with `coffer login`"
    )]
    RefusedBy {
        issuer: &'static str,
        url: String,
        status: u16,
        code: String,
    },
    #[error(
        "{host} is not {cloud} registry; coffer hands {cloud} tokens only to its registries (and to loopback)"
    )]
    WrongHost { host: String, cloud: &'static str },
    #[error("the token command `{program}` {why}")]
    Command { program: String, why: String },
    #[error("cannot sign the request: {0}")]
    Signing(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// A chain-mode failure as `coffer token mint` reported it (already one full line).
    #[error("{0}")]
    Identity(String),
    #[error(
        "no {cloud} identity here: tried {tried}; {fix}; see: \
         docs/cloud.md#no-key-at-all-the-machines-or-workloads-own-identity"
    )]
    NoIdentity {
        cloud: &'static str,
        tried: String,
        fix: String,
    },
    #[error(
        "{registry}'s issuer has refused the stored credential since {since} ({reason}); coffer does not try it again: store a new one with `coffer login {registry}`, or `coffer refresh {registry} --force` once it is valid again; see: docs/usage.md#whose-credential-is-this"
    )]
    Refused {
        registry: String,
        since: String,
        reason: String,
    },
}

/// Why a request got no answer: reqwest's error, or reading the answer failed. Shown as its
/// innermost cause ("Connection refused"), and it ends the chain: reqwest's own message names
/// the URL, query and all, and is never shown.
#[derive(Debug)]
pub enum Transport {
    Request(reqwest::Error),
    Read(std::io::Error),
}

impl std::fmt::Display for Transport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Transport::Request(error) => f.write_str(&crate::causes::innermost(error)),
            Transport::Read(error) => write!(f, "reading the answer failed: {}", error.kind()),
        }
    }
}

impl std::error::Error for Transport {}

/// What is wrong with a registry's `ca_file`.
#[derive(Debug, thiserror::Error)]
pub enum CaFileProblem {
    #[error("{0}")]
    Read(#[source] std::io::Error),
    #[error("it holds no valid PEM certificate")]
    Invalid(#[source] reqwest::Error),
    #[error("it holds no PEM certificate")]
    Empty,
}

impl TokenError {
    /// Does this failure blame the stored credential itself (an issuer's 400/401/403, or a
    /// credential that cannot be used at all), so that trying again cannot help until it is
    /// replaced?
    pub fn blames_credential(&self) -> bool {
        matches!(
            self,
            TokenError::CredentialRejected { .. }
                | TokenError::Credential(_)
                | TokenError::RefusedBy { .. }
        )
    }
}

//! Google Artifact Registry and Container Registry through Application Default Credentials,
//! with `google-cloud-auth`: `GOOGLE_APPLICATION_CREDENTIALS`, gcloud's ADC file (any type it
//! holds, `external_account` for workload identity federation included), then the GCE/GKE
//! metadata server (`GCE_METADATA_HOST` moves it), which coffer reads itself
//! ([`super::metadata`]) so that its answers are bounded. `impersonate = "sa@project.iam..."`
//! trades that identity for a service account's token.
//!
//! `google-cloud-auth` (1.19) does not say when an access token expires: its public
//! `AccessToken` holds the token string only, `Credentials::headers` gives the header map with an
//! opaque entity tag, and the expiry it reads (`expires_in`, `expireTime`) stays in its crate-
//! private `Token`. A metadata server hands out tokens it has cached, so coffer keeps one for
//! [`ASSUMED_LIFETIME`] only: the metadata server renews its tokens before their last five
//! minutes.

use std::path::PathBuf;
use std::sync::Arc;

use google_cloud_auth::credentials::external_account::ProgrammaticBuilder;
use google_cloud_auth::credentials::subject_token::{
    Builder as SubjectTokenBuilder, SubjectToken, SubjectTokenProvider,
};
use google_cloud_auth::credentials::{
    AccessTokenCredentials, Builder, CacheableResource, Credentials, impersonated,
};
use google_cloud_auth::errors::SubjectTokenProviderError;
use secrecy::{ExposeSecret, SecretString};

use super::metadata::Metadata;
use super::registry::{self as stored, Settings};
use crate::causes::one_line;
use crate::token::TokenError;
use crate::token::chain::Request;
use crate::token::identity::{Budget, block_on};
use crate::token::provider::Minted;
use crate::token::settings::{RegistrySettings, TokenSettings};

const SCOPE: &str = "https://www.googleapis.com/auth/cloud-platform";
/// How long a token from Application Default Credentials is kept (see the module's note).
pub const ASSUMED_LIFETIME: u64 = 5 * 60;
const FIX: &str = "run on GCE or GKE with a service account, set GOOGLE_APPLICATION_CREDENTIALS, run `gcloud auth application-default login`, or store a key with `coffer login REGISTRY --mode google`";

/// Where Application Default Credentials come from here: the first source set up, in ADC's
/// order, and the ones before it that were not.
struct Sources {
    /// The source ADC uses, as people name it.
    used: String,
    /// The sources passed over, each with why.
    passed_over: Vec<String>,
    /// The metadata server's host, when it is the source: it is probed within the identity
    /// budget; the files lead to a token exchange, which has the exchange's timeout.
    metadata: Option<String>,
}

fn sources() -> Sources {
    let from_env = std::env::var("GOOGLE_APPLICATION_CREDENTIALS")
        .ok()
        .filter(|v| !v.is_empty());
    if let Some(path) = from_env {
        return Sources {
            used: format!("GOOGLE_APPLICATION_CREDENTIALS ({path})"),
            passed_over: Vec::new(),
            metadata: None,
        };
    }
    let mut passed_over = vec!["GOOGLE_APPLICATION_CREDENTIALS (not set)".to_owned()];
    let adc_file = std::env::var_os("CLOUDSDK_CONFIG")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".config/gcloud")))
        .map(|dir| dir.join("application_default_credentials.json"));
    match adc_file {
        Some(file) if file.is_file() => {
            return Sources {
                used: format!("gcloud's ADC file {}", file.display()),
                passed_over,
                metadata: None,
            };
        }
        Some(file) => passed_over.push(format!("gcloud's ADC file (none at {})", file.display())),
        None => passed_over.push("gcloud's ADC file (no HOME)".to_owned()),
    }
    let host = std::env::var("GCE_METADATA_HOST")
        .unwrap_or_else(|_| "metadata.google.internal".to_owned());
    Sources {
        used: format!("the metadata server at {host}"),
        passed_over,
        metadata: Some(host),
    }
}

/// Application Default Credentials from `sources`: the files through `google-cloud-auth`'s
/// builder, the metadata server through coffer's own bounded reader ([`Metadata`]).
fn credentials(
    settings: &Settings,
    sources: &Sources,
) -> Result<AccessTokenCredentials, TokenError> {
    let unusable = |e: &dyn std::error::Error| {
        TokenError::Identity(format!(
            "Google Application Default Credentials are unusable: {}",
            one_line(e)
        ))
    };
    let metadata = |host: &str| {
        Metadata::new(host, SCOPE).map_err(|why| {
            TokenError::Identity(format!("Google's metadata server is unusable: {why}"))
        })
    };
    match (&settings.impersonate, &sources.metadata) {
        (None, Some(host)) => Ok(AccessTokenCredentials::from(metadata(host)?)),
        (None, None) => Builder::default()
            .with_scopes([SCOPE])
            .build_access_token_credentials()
            .map_err(|e| unusable(&e)),
        (Some(account), _) => {
            let source = match &sources.metadata {
                Some(host) => Credentials::from(metadata(host)?),
                None => Builder::default().build().map_err(|e| unusable(&e))?,
            };
            impersonated::Builder::from_source_credentials(source)
                .with_target_principal(account)
                .with_scopes([SCOPE])
                .build_access_token_credentials()
                .map_err(|e| unusable(&e))
        }
    }
}

/// Where an access token comes from: most builders give one directly; workload identity
/// federation by value gives the request headers, whose bearer token is the access token.
enum Source {
    Access(AccessTokenCredentials),
    Headers(Credentials),
}

impl Source {
    async fn fetch(&self) -> Result<String, google_cloud_auth::errors::CredentialsError> {
        match self {
            Source::Access(credentials) => credentials.access_token().await.map(|t| t.token),
            Source::Headers(credentials) => {
                let headers = match credentials.headers(http::Extensions::new()).await? {
                    CacheableResource::New { data, .. } => data,
                    CacheableResource::NotModified => return Ok(String::new()),
                };
                Ok(headers
                    .get(http::header::AUTHORIZATION)
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.strip_prefix("Bearer "))
                    .unwrap_or_default()
                    .to_owned())
            }
        }
    }
}

/// A token from `credentials` within `within`; an error names the sources `passed_over` and
/// then the one `described`, with what went wrong there.
async fn token(
    credentials: &Source,
    within: std::time::Duration,
    described: &str,
    passed_over: &[String],
    what: &str,
) -> Result<Minted, TokenError> {
    let tried = |outcome: String| {
        let mut all = passed_over.to_vec();
        all.push(format!("{described}{outcome}"));
        all.join(", ")
    };
    let issued_at = crate::clock::now();
    match tokio::time::timeout(within, credentials.fetch()).await {
        Ok(Ok(token)) if !token.is_empty() => Ok(Minted {
            username: stored::USERNAME.to_owned(),
            secret: SecretString::from(token),
            issued_at,
            expires_at: Some(issued_at + ASSUMED_LIFETIME),
        }),
        Ok(Ok(_)) => Err(TokenError::Identity(format!(
            "{what} through {described} gave an empty access token"
        ))),
        Ok(Err(error)) => Err(TokenError::NoIdentity {
            cloud: "Google",
            tried: tried(format!(": {}", one_line(&error))),
            fix: FIX.to_owned(),
        }),
        Err(_) => Err(TokenError::NoIdentity {
            cloud: "Google",
            tried: tried(format!(" (no answer within {:.1} s)", within.as_secs_f64())),
            fix: FIX.to_owned(),
        }),
    }
}

/// A registry's token from Application Default Credentials (and `impersonate`).
pub async fn mint(request: &Request) -> Result<Minted, TokenError> {
    stored::check_host(&request.host)?;
    let settings = Settings::of(&request.registry)?;
    let sources = sources();
    // The metadata server alone is one probe, as AWS's IMDS is, leaving the rest of the budget
    // for the error; with `impersonate`, the same call also trades its token at IAM.
    let budget = Budget::start();
    let within = match (&sources.metadata, &settings.impersonate) {
        (Some(_), None) => budget.probe(),
        (Some(_), Some(_)) => budget.total,
        (None, _) => request.tokens.timeout,
    };
    let credentials = Source::Access(credentials(&settings, &sources)?);
    // One call does both steps: an error must not blame the source for the impersonation.
    let described = match &settings.impersonate {
        Some(account) => format!("{}, then impersonating {account}", sources.used),
        None => sources.used,
    };
    token(
        &credentials,
        within,
        &described,
        &sources.passed_over,
        "Google",
    )
    .await
}

/// Which identity Application Default Credentials find here, for `coffer doctor`.
pub async fn describe(request: &Request) -> Result<String, TokenError> {
    mint(request).await?;
    let described = sources().used;
    let impersonating = Settings::of(&request.registry)?
        .impersonate
        .map(|a| format!(", impersonating {a}"))
        .unwrap_or_default();
    Ok(format!("Google ADC from {described}{impersonating}"))
}

/// A subject token held by value, for [`google_token_for_subject_token`].
#[derive(Debug)]
struct Held(SecretString);

#[derive(Debug)]
struct Never;

impl std::fmt::Display for Never {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("no subject token")
    }
}

impl std::error::Error for Never {}

impl SubjectTokenProviderError for Never {
    fn is_transient(&self) -> bool {
        false
    }
}

impl SubjectTokenProvider for Held {
    type Error = Never;

    async fn subject_token(&self) -> Result<SubjectToken, Never> {
        Ok(SubjectTokenBuilder::new(self.0.expose_secret().to_owned()).build())
    }
}

/// Workload identity federation with a token held by value (a Kubernetes service-account token,
/// an OIDC token): Google STS exchanges it at `token_url` (Google's by default) for the pool
/// named by `audience` (`//iam.googleapis.com/projects/N/locations/global/workloadIdentityPools/
/// POOL/providers/PROVIDER`), then, with `impersonate`, for that service account's token.
pub fn google_token_for_subject_token(
    host: &str,
    registry: &RegistrySettings,
    tokens: &TokenSettings,
    audience: &str,
    subject_token_type: &str,
    token_url: Option<&str>,
    subject_token: &SecretString,
) -> Result<Minted, TokenError> {
    stored::check_host(host)?;
    let settings = Settings::of(registry)?;
    block_on(async {
        let mut builder = ProgrammaticBuilder::new(Arc::new(Held(subject_token.clone())))
            .with_audience(audience)
            .with_subject_token_type(subject_token_type)
            .with_scopes([SCOPE]);
        if let Some(url) = token_url {
            builder = builder.with_token_url(url);
        }
        if let Some(account) = &settings.impersonate {
            builder = builder.with_target_principal(account);
        }
        let credentials = builder.build().map_err(|e| {
            TokenError::Identity(format!(
                "the workload identity settings are unusable: {}",
                one_line(&e)
            ))
        })?;
        token(
            &Source::Headers(credentials),
            tokens.timeout,
            &format!("Google STS for {audience}"),
            &[],
            "workload identity federation",
        )
        .await
    })
}

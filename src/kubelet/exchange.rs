//! Trading a pod's service-account token for a registry credential, one way per
//! [`Exchange`]. The token goes only to the issuer the node's settings name, never to the
//! registry itself unless a command chooses to send it there.

use std::time::Instant;

use serde::Deserialize;

use super::service_account::ServiceAccountToken;
use super::settings::{Exchange, PodExchange, PodLogin};
use crate::token::TokenError;
use crate::token::exec::Job;
use crate::token::provider::Minted;
#[cfg(feature = "cloud")]
use crate::token::settings::RegistrySettings;
use crate::token::settings::SettingsError;
use crate::token::settings::{Mode, TokenSettings};

/// What Google STS is told the subject token is.
#[cfg(feature = "cloud")]
const JWT_TOKEN_TYPE: &str = "urn:ietf:params:oauth:token-type:jwt";

/// `exchange = "google"`: the workload identity pool provider that trusts the cluster's
/// issuer, and the STS token endpoint where it is not Google's.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
// Without the `cloud` feature the settings are still checked, never used.
#[cfg_attr(not(feature = "cloud"), allow(dead_code))]
struct GoogleSettings {
    workload_identity_provider: String,
    #[serde(default)]
    token_url: Option<String>,
}

/// The keys a cloud exchange takes itself; every other key is a setting of the registry mode of
/// the same cloud (`region`, `endpoint`, `authority_host`...), checked by that mode.
fn own_keys(exchange: Exchange) -> &'static [&'static str] {
    match exchange {
        Exchange::Google => &["workload_identity_provider", "token_url"],
        Exchange::Aws | Exchange::Azure | Exchange::Exec | Exchange::OpenBao => &[],
    }
}

/// The registry mode whose settings a cloud exchange shares.
fn mode(exchange: Exchange) -> Option<Mode> {
    match exchange {
        Exchange::Aws => Some(Mode::Ecr),
        Exchange::Google => Some(Mode::Google),
        Exchange::Azure => Some(Mode::Azure),
        Exchange::Exec | Exchange::OpenBao => None,
    }
}

/// (the exchange's own keys, the mode's settings).
fn split(exchange: Exchange, table: &toml::Table) -> (toml::Table, toml::Table) {
    table
        .clone()
        .into_iter()
        .partition(|(key, _)| own_keys(exchange).contains(&key.as_str()))
}

/// Checks an exchange's settings when `config.toml` is read.
pub fn check(exchange: Exchange, table: &toml::Table) -> Result<(), SettingsError> {
    let Some(mode) = mode(exchange) else {
        return match exchange {
            Exchange::OpenBao => PodLogin::from_options(table).map(drop),
            _ => Job::from_options(table).map(drop),
        };
    };
    let (own, shared) = split(exchange, table);
    match exchange {
        Exchange::Google => crate::token::shared::check::<GoogleSettings>(&own)?,
        // The azure mode's own `tenant`: here it is required.
        Exchange::Azure => {
            tenant(&shared)?;
        }
        Exchange::Aws | Exchange::Exec | Exchange::OpenBao => {}
    }
    crate::token::providers::check(mode, &shared)
}

fn tenant(settings: &toml::Table) -> Result<&str, SettingsError> {
    settings
        .get("tenant")
        .and_then(toml::Value::as_str)
        .ok_or(SettingsError::invalid(
            "`tenant` is missing: the directory whose app registrations trust the cluster's issuer",
        ))
}

/// The registry credential for `registry` that `token`, as `identity`, is worth.
pub fn exchange(
    registry: &str,
    settings: &PodExchange,
    identity: Option<&str>,
    token: &ServiceAccountToken,
    tokens: &TokenSettings,
) -> Result<Minted, TokenError> {
    let unusable = |problem: SettingsError| problem.in_mode(settings.exchange.name());
    match settings.exchange {
        Exchange::Exec => {
            let job = Job::from_options(&settings.options).map_err(unusable)?;
            let deadline = Instant::now() + job.timeout().unwrap_or(tokens.timeout);
            job.mint(deadline, Some(token.expose().as_bytes()))
        }
        Exchange::Aws | Exchange::Google | Exchange::Azure => {
            cloud(registry, settings, identity, token, tokens)
        }
        // Not a token issuer: the kubelet provider reads the central store itself.
        Exchange::OpenBao => Err(unusable(SettingsError::invalid(
            "the openbao exchange reads the central store, which this layer does not reach",
        ))),
    }
}

/// The cloud exchanges, through the clouds' SDKs (see `crate::token::identity`).
#[cfg(feature = "cloud")]
fn cloud(
    registry: &str,
    settings: &PodExchange,
    identity: Option<&str>,
    token: &ServiceAccountToken,
    tokens: &TokenSettings,
) -> Result<Minted, TokenError> {
    use crate::token::{aws, azure, google};
    let (own, mut shared) = split(settings.exchange, &settings.options);
    let unusable = |problem: SettingsError| problem.in_mode(settings.exchange.name());
    // The policy has made sure that an exchange that needs an identity has one.
    let named = || {
        identity.ok_or_else(|| {
            unusable(SettingsError::invalid(
                "no identity for this service account",
            ))
        })
    };
    let mode = mode(settings.exchange).expect("a cloud exchange");
    // The exchange runs with the settings of the registry mode of the same cloud.
    let as_registry = |options| RegistrySettings {
        mode,
        options,
        ..RegistrySettings::default()
    };
    match settings.exchange {
        Exchange::Aws => aws::identity::ecr_token_for_web_identity(
            registry,
            &as_registry(shared),
            tokens,
            named()?,
            token.secret(),
        ),
        Exchange::Google => {
            let own: GoogleSettings = crate::token::shared::options(&own).map_err(unusable)?;
            if let Some(account) = identity {
                shared.insert("impersonate".into(), account.into());
            }
            google::identity::google_token_for_subject_token(
                registry,
                &as_registry(shared),
                tokens,
                &own.workload_identity_provider,
                JWT_TOKEN_TYPE,
                own.token_url.as_deref(),
                token.secret(),
            )
        }
        Exchange::Azure => {
            let tenant = tenant(&shared).map_err(unusable)?.to_owned();
            azure::identity::acr_token_for_client_assertion(
                registry,
                &as_registry(shared),
                tokens,
                &tenant,
                named()?,
                token.secret(),
            )
        }
        Exchange::Exec | Exchange::OpenBao => unreachable!("not a cloud exchange"),
    }
}

#[cfg(not(feature = "cloud"))]
fn cloud(
    _: &str,
    settings: &PodExchange,
    _: Option<&str>,
    _: &ServiceAccountToken,
    _: &TokenSettings,
) -> Result<Minted, TokenError> {
    Err(
        SettingsError::invalid("this coffer was built without the `cloud` feature")
            .in_mode(settings.exchange.name()),
    )
}

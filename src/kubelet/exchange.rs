//! Trading a pod's service-account token for a registry credential, one way per
//! [`Exchange`]. The token goes only to the issuer the node's settings name, never to the
//! registry itself unless a command chooses to send it there.

use std::time::Instant;

use serde::Deserialize;

use super::service_account::ServiceAccountToken;
use super::settings::{Exchange, PodExchange};
use crate::token::TokenError;
use crate::token::exec::Job;
use crate::token::provider::{Minted, options};
use crate::token::settings::TokenSettings;

/// `exchange = "aws"`: STS and ECR in `region` (default: the registry host's), at `endpoint`
/// where both are served elsewhere (a VPC endpoint, moto on loopback).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct AwsSettings {
    #[serde(default)]
    region: Option<String>,
    #[serde(default)]
    endpoint: Option<String>,
}

/// `exchange = "google"`: the workload identity pool provider the cluster's issuer is
/// registered with, and the STS and IAM Credentials endpoints (Google's by default).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct GoogleSettings {
    workload_identity_provider: String,
    #[serde(default)]
    sts_endpoint: Option<String>,
    #[serde(default)]
    iam_endpoint: Option<String>,
}

/// `exchange = "azure"`: the tenant whose app registrations trust the cluster's issuer, and
/// the authority host (sovereign clouds, or a loopback fixture).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct AzureSettings {
    tenant: String,
    #[serde(default)]
    authority_host: Option<String>,
}

/// Checks a cloud exchange's own settings when `config.toml` is read.
pub(super) fn check(exchange: Exchange, table: &toml::Table) -> Result<(), String> {
    match exchange {
        Exchange::Aws => options::<AwsSettings>(table).map(|_| ()),
        Exchange::Google => options::<GoogleSettings>(table).map(|_| ()),
        Exchange::Azure => options::<AzureSettings>(table).map(|_| ()),
        Exchange::Exec => Job::from_options(table).map(|_| ()),
    }
}

/// The registry credential for `registry` that `token`, as `identity`, is worth.
pub fn exchange(
    registry: &str,
    settings: &PodExchange,
    identity: Option<&str>,
    token: &ServiceAccountToken,
    tokens: &TokenSettings,
) -> Result<Minted, TokenError> {
    let unusable = |message: String| TokenError::Settings {
        mode: settings.exchange.name(),
        message,
    };
    match settings.exchange {
        Exchange::Exec => {
            let job = Job::from_options(&settings.options).map_err(unusable)?;
            let deadline = Instant::now() + job.timeout().unwrap_or(tokens.timeout);
            job.mint(deadline, Some(token.expose().as_bytes()))
        }
        Exchange::Aws | Exchange::Google | Exchange::Azure => {
            let _ = (registry, identity);
            Err(unusable("this exchange is not built yet".into()))
        }
    }
}

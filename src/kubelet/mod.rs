//! The kubelet image credential provider (`credentialprovider.kubelet.k8s.io/v1`): the kubelet
//! runs `coffer kubelet-credential-provider` with a `CredentialProviderRequest` on stdin and
//! reads a `CredentialProviderResponse` from stdout, so nodes pull private images with no
//! secret in any manifest.
//!
//! Since Kubernetes 1.34 (KEP-4412) the request may carry the pod's service-account token and
//! the annotations of its service account. Where `[kubelet.registries]` gives the image's
//! registry an exchange, coffer trades that token for a registry credential of the pod's own
//! identity ([`exchange`]), for identities the node's settings allow ([`settings`]), after
//! checking the token's size and shape ([`service_account`]). Everything else gets the node's
//! answer, or none, as `[kubelet] fallback` says.

pub mod central;
pub mod exchange;
mod reference;
pub mod service_account;
pub mod settings;

use std::collections::BTreeMap;
use std::io::Read;

use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use crate::audit::{AccessLog, Action, Event, Outcome};
use crate::clock::now;
use crate::config::Config;
use crate::credentials::Credentials;
use crate::error::{Error, Result};
use crate::export::IDENTITY_TOKEN_USER;
use crate::server_url::ServerUrl;
use crate::warning::Warning;
use service_account::ServiceAccountToken;
use settings::{Exchange, Fallback, PodExchange};

const API_VERSIONS: [&str; 2] = [
    "credentialprovider.kubelet.k8s.io/v1",
    "credentialprovider.kubelet.k8s.io/v1beta1",
];
/// How long a kubelet may cache credentials that do not expire, so a rotation reaches nodes soon;
/// a token is cached no longer than it lives.
pub const BASIC_CACHE_SECONDS: u64 = 600;

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Request {
    api_version: String,
    kind: String,
    image: String,
    /// The pod's service-account token (KEP-4412), when the provider's `tokenAttributes` ask
    /// for one.
    #[serde(default)]
    service_account_token: Option<SecretString>,
    /// The annotations of the pod's service account that the provider's configuration lists.
    #[serde(default)]
    service_account_annotations: BTreeMap<String, String>,
}

/// No `Debug`: it holds the password.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Response<'a> {
    api_version: &'a str,
    kind: &'static str,
    cache_key_type: &'static str,
    cache_duration: String,
    auth: BTreeMap<String, AuthConfig<'a>>,
}

/// No `Debug`: it holds the password.
#[derive(Serialize)]
struct AuthConfig<'a> {
    username: &'a str,
    password: &'a str,
}

/// The response, and what the person reading the kubelet's log should know.
#[derive(Debug)]
pub struct Answer {
    pub response: Zeroizing<Vec<u8>>,
    /// One line for stderr: why there are no credentials, or where they came from.
    pub notice: Option<String>,
    /// Credentials were refused (a bad token, a disallowed identity, a failed exchange): the
    /// response carries none, and the provider exits with status 1 so that the kubelet logs
    /// the notice.
    pub refused: bool,
    /// What the node's own answer has to tell besides (a stale token served), for stderr too.
    pub warnings: Vec<Warning>,
}

/// What answers one image.
#[derive(Debug)]
struct Decision {
    cache_key_type: &'static str,
    cache_seconds: u64,
    /// The key the kubelet matches images against, and the credential.
    auth: Option<(String, String, SecretString)>,
    notice: Option<String>,
    refused: bool,
    warnings: Vec<Warning>,
}

impl Decision {
    fn none(notice: String, refused: bool) -> Decision {
        Decision {
            cache_key_type: "Registry",
            // A refusal is not cached: the next pull asks again, after the cause is fixed.
            cache_seconds: 0,
            auth: None,
            notice: Some(notice),
            refused,
            warnings: Vec::new(),
        }
    }
}

/// Answers one request. An image coffer has no credentials for gets an empty `auth`, which
/// tells the kubelet to pull anonymously. `node` opens the node's own credentials, only when
/// they are the answer; `log` records what pods were given or refused.
pub fn answer(
    input: impl Read,
    config: &Config,
    log: &AccessLog,
    node: impl FnOnce() -> Result<Credentials>,
) -> std::result::Result<Answer, KubeletError> {
    let mut text = Zeroizing::new(String::new());
    input
        .take(crate::protocol::MAX_INPUT)
        .read_to_string(&mut text)
        .map_err(KubeletError::Read)?;
    let request: Request = serde_json::from_str(&text)
        .map_err(|e| KubeletError::NotARequest(crate::error::EntryError(e)))?;
    let api_version = API_VERSIONS
        .into_iter()
        .find(|v| *v == request.api_version)
        .ok_or_else(|| KubeletError::ApiVersion(request.api_version.clone()))?;
    if request.kind != "CredentialProviderRequest" {
        return Err(KubeletError::Kind(request.kind));
    }
    let (registry, repository) = split_image(&request.image)?;
    let host = ServerUrl::parse(&registry)?.host().to_owned();
    // As in [registries]: the literal host, else the most specific pattern.
    let exchange = crate::token::settings::lookup(&config.kubelet.registries, &host);
    let decision = match (request.service_account_token, exchange) {
        (Some(token), Some(settings)) => {
            let decision = pod(
                token,
                &request.service_account_annotations,
                settings,
                config,
                (&registry, &repository),
            );
            record(log, &registry, &decision);
            decision
        }
        (token, _) => {
            let had_token = token.is_some();
            // A token is checked even when it is not used: a kubelet sending broken ones is
            // misconfigured, and must hear it.
            if let Some(token) = token
                && let Err(why) = ServiceAccountToken::read(token, &config.kubelet.audience, now())
            {
                let decision =
                    Decision::none(format!("{why}; no credentials for {registry}"), true);
                record(log, &registry, &decision);
                return render(api_version, decision);
            }
            let why = match (had_token, exchange) {
                (false, Some(_)) => format!(
                    "the kubelet sent no service-account token for {registry} (the provider needs tokenAttributes)"
                ),
                (false, None) => {
                    format!("the kubelet sent no service-account token for {registry}")
                }
                (true, _) => format!("{registry} has no exchange under [kubelet.registries]"),
            };
            match config.kubelet.fallback {
                Fallback::Node => Decision {
                    notice: Some(format!(
                        "{why}; answered from the node's credentials (fallback = \"node\")"
                    )),
                    ..from_node(&node()?, &registry, &repository)?
                },
                Fallback::None => {
                    let decision = Decision::none(
                        format!(
                            "{why}; no credentials (fallback = \"none\"): the kubelet pulls anonymously"
                        ),
                        false,
                    );
                    record(log, &registry, &decision);
                    decision
                }
            }
        }
    };
    render(api_version, decision)
}

/// The pod's own credential: its token checked, its identity allowed, the exchange made (or,
/// for the central store, the entry read with the pod's own login).
fn pod(
    token: SecretString,
    annotations: &BTreeMap<String, String>,
    settings: &PodExchange,
    config: &Config,
    (registry, repository): (&str, &str),
) -> Decision {
    let now = now();
    let refuse =
        |why: String| Decision::none(format!("{why}; no credentials for {registry}"), true);
    let token = match ServiceAccountToken::read(token, &config.kubelet.audience, now) {
        Ok(token) => token,
        Err(why) => return refuse(why),
    };
    let identity = match settings.identity(annotations, &token.who()) {
        Ok(identity) => identity,
        Err(why) => return refuse(why),
    };
    let failed = |error: String| {
        refuse(format!(
            "the {} exchange for service account {} failed: {error}",
            settings.exchange.name(),
            token.who()
        ))
    };
    let token_left = token.expires_at.saturating_sub(now);
    let whose = identity
        .as_deref()
        .map_or_else(String::new, |i| format!(" as {i}"));
    let notice = format!(
        "service account {}{whose}: a {} credential for {registry}",
        token.who(),
        settings.exchange.name()
    );
    if settings.exchange == Exchange::OpenBao {
        let image_url = format!("{registry}/{repository}");
        return match central::read(&image_url, settings, &token, config, now) {
            Ok(found) => from_central(found, registry, &token, notice),
            Err(error) => failed(error),
        };
    }
    let minted = match exchange::exchange(
        registry,
        settings,
        identity.as_deref(),
        &token,
        &config.tokens,
    ) {
        Ok(minted) => minted,
        Err(error) => return failed(error.to_string()),
    };
    // Never past the minted credential's life (half of it, so a pull started from the cache
    // has time), and never past the token that proved the pod's identity.
    let credential_left = minted
        .expires_at
        .map_or(BASIC_CACHE_SECONDS, |at| at.saturating_sub(now) / 2);
    Decision {
        cache_key_type: "Registry",
        cache_seconds: credential_left.min(token_left),
        auth: Some((registry.to_owned(), minted.username, minted.secret)),
        notice: Some(notice),
        refused: false,
        warnings: Vec::new(),
    }
}

/// The answer of the entry a pod's own login read from the central store.
fn from_central(
    found: Option<central::PodCredential>,
    registry: &str,
    token: &ServiceAccountToken,
    notice: String,
) -> Decision {
    let Some(found) = found else {
        return Decision::none(
            format!(
                "the central store holds no entry for {registry} that service account {} may \
                 read; the kubelet pulls anonymously",
                token.who()
            ),
            false,
        );
    };
    match keyed(&found.server_url, registry) {
        Ok((cache_key_type, key)) => Decision {
            cache_key_type,
            cache_seconds: found.cache_seconds,
            auth: Some((key, found.username, found.secret)),
            notice: Some(notice),
            refused: false,
            warnings: Vec::new(),
        },
        Err(error) => Decision::none(format!("{error}; no credentials for {registry}"), true),
    }
}

/// The node's own answer, as `docker-credential-coffer get` would give it.
fn from_node(credentials: &Credentials, registry: &str, repository: &str) -> Result<Decision> {
    let entry = credentials.get(&format!("{registry}/{repository}"))?;
    let mut decision = Decision {
        cache_key_type: "Registry",
        cache_seconds: BASIC_CACHE_SECONDS,
        auth: None,
        notice: None,
        refused: false,
        warnings: credentials.warnings(),
    };
    // Kubelets pass a username and password on: an identity token is of no use to them.
    let Some(entry) = entry.filter(|e| e.username != IDENTITY_TOKEN_USER) else {
        return Ok(decision);
    };
    if let Some(expires_at) = entry.expires_at() {
        let left = expires_at.saturating_sub(now());
        decision.cache_seconds = left.min(BASIC_CACHE_SECONDS);
    }
    let (cache_key_type, key) = keyed(&entry.server_url, registry)?;
    decision.cache_key_type = cache_key_type;
    decision.auth = Some((key, entry.username, entry.secret));
    Ok(decision)
}

/// The kubelet's cache key for an entry stored under `server_url`: the registry, or, for an
/// entry kept for one repository, that repository's images only.
fn keyed(server_url: &str, registry: &str) -> Result<(&'static str, String)> {
    let stored = ServerUrl::parse(server_url)?;
    Ok(if stored.registry_path() == registry {
        ("Registry", registry.to_owned())
    } else {
        ("Image", stored.registry_path())
    })
}

fn render(api_version: &str, decision: Decision) -> std::result::Result<Answer, KubeletError> {
    let mut response = Response {
        api_version,
        kind: "CredentialProviderResponse",
        cache_key_type: decision.cache_key_type,
        cache_duration: format!("{}s", decision.cache_seconds),
        auth: BTreeMap::new(),
    };
    if let Some((key, username, secret)) = &decision.auth {
        response.auth.insert(
            key.clone(),
            AuthConfig {
                username,
                password: secret.expose_secret(),
            },
        );
    }
    let mut out = Zeroizing::new(
        serde_json::to_vec(&response)
            .map_err(|e| KubeletError::Encode(crate::error::EntryError(e)))?,
    );
    out.push(b'\n');
    Ok(Answer {
        response: out,
        notice: decision.notice,
        refused: decision.refused,
        warnings: decision.warnings,
    })
}

/// The access log's line for an answer the store did not give (and so did not log).
fn record(log: &AccessLog, registry: &str, decision: &Decision) {
    let outcome = match (&decision.auth, decision.refused) {
        (Some(_), _) => Outcome::Ok,
        (None, true) => Outcome::Failed,
        (None, false) => Outcome::NotFound,
    };
    let mut event = Event::now(Action::Get, Some(registry.to_owned()), outcome);
    event.error = decision.notice.clone().filter(|_| decision.refused);
    // The log is a trail, not a gate: a pull does not fail because it cannot be written.
    let _ = log.append(&event);
}

/// `[registry/]repository[:tag][@digest]` → (registry as kubelets match it, repository), for
/// a reference docker's grammar accepts ([`reference`]); any other names no registry.
fn split_image(image: &str) -> std::result::Result<(String, String), KubeletError> {
    let parsed = reference::parse(image).map_err(|why| KubeletError::Image {
        image: image.to_owned(),
        why,
    })?;
    let (registry, repository) = match parsed.domain {
        Some(domain) => (domain, parsed.path.to_owned()),
        None if !parsed.path.contains('/') => ("docker.io", format!("library/{}", parsed.path)),
        None => ("docker.io", parsed.path.to_owned()),
    };
    let registry = ServerUrl::parse(registry)?.registry_path();
    Ok((registry, repository))
}

/// Why the kubelet gets no answer at all (an image coffer has no credential for is an answer:
/// an empty `auth`).
#[derive(Debug, thiserror::Error)]
pub enum KubeletError {
    #[error("kubelet credential provider: cannot read the request: {0}")]
    Read(#[source] std::io::Error),
    /// Shown as its kind and place only: the request holds a service-account token.
    #[error("kubelet credential provider: not a CredentialProviderRequest ({0})")]
    NotARequest(#[source] crate::error::EntryError),
    #[error(
        "kubelet credential provider: unsupported apiVersion {0:?}; expected {expected}",
        expected = API_VERSIONS[0]
    )]
    ApiVersion(String),
    #[error("kubelet credential provider: kind is {0:?}, expected CredentialProviderRequest")]
    Kind(String),
    #[error("kubelet credential provider: {image:?} is not an image reference: {why}")]
    Image { image: String, why: &'static str },
    #[error("kubelet credential provider: cannot encode the response: {0}")]
    Encode(#[source] crate::error::EntryError),
    #[error(transparent)]
    Url(#[from] crate::server_url::UrlError),
    #[error(transparent)]
    Store(#[from] Error),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn image_names() {
        let table = [
            ("nginx", ("docker.io", "library/nginx")),
            ("nginx:1.27", ("docker.io", "library/nginx")),
            ("bitnami/redis:7", ("docker.io", "bitnami/redis")),
            (
                "docker.io/library/alpine@sha256:4f5a8e6c0b2d1e3f4a5b6c7d8e9f0a1b",
                ("docker.io", "library/alpine"),
            ),
            ("127.0.0.1:5000/team/app:v1", ("127.0.0.1:5000", "team/app")),
            ("localhost/app", ("localhost", "app")),
            (
                "ghcr.io/org/image:latest@sha256:4f5a8e6c0b2d1e3f4a5b6c7d8e9f0a1b",
                ("ghcr.io", "org/image"),
            ),
            ("registry-1.docker.io/x/y", ("docker.io", "x/y")),
        ];
        for (image, (registry, repository)) in table {
            assert_eq!(
                split_image(image).expect(image),
                (registry.to_owned(), repository.to_owned()),
                "{image}"
            );
        }
        assert!(split_image("").is_err());
        assert!(split_image("ghcr.io/").is_err());
        assert!(split_image("ghcr.io@evil.example/x").is_err());
    }
}

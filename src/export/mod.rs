//! `coffer export`: credentials for places that cannot run a helper, in the formats those
//! places read. Every format is built from the same selection of entries.

mod formats;

use std::collections::BTreeSet;

use base64ct::Encoding;
use secrecy::{ExposeSecret, SecretString};
use zeroize::Zeroizing;

use crate::credentials::Credentials;
use crate::error::{Error, Result};
use crate::server_url::ServerUrl;

pub use formats::render;

/// The username docker uses to say that the secret is an OAuth2 refresh token.
pub const IDENTITY_TOKEN_USER: &str = "<token>";

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// A docker `config.json` with inline `auths`.
    DockerConfig,
    /// A `kubernetes.io/dockerconfigjson` Secret manifest, as `kubectl create secret docker-registry` writes it.
    K8sSecret,
    /// A containers `auth.json` (podman, skopeo, buildah, CRI-O).
    Podman,
    /// One rkt `auth.d` document per registry.
    Rkt,
    /// A gzip tar holding `.docker/config.json`, for the Mesos fetcher.
    Mesos,
    /// A Butane config whose `storage.files` entry writes the docker config with mode 0600.
    Butane,
}

/// Settings some formats need.
#[derive(Debug, Clone)]
pub struct Options {
    /// The Secret's name (k8s-secret).
    pub name: String,
    /// The Secret's namespace (k8s-secret); none means kubectl's current one.
    pub namespace: Option<String>,
    /// Where the Butane config writes the docker config.
    pub path: String,
    /// Annotate the Secret with the entries' descriptions (k8s-secret).
    pub annotate_description: bool,
}

/// What an export produces: one document, or one per registry (rkt).
#[derive(Debug)]
pub enum Output {
    Single(Zeroizing<Vec<u8>>),
    PerRegistry(Vec<(String, Zeroizing<Vec<u8>>)>),
}

/// One credential chosen for export.
#[derive(Debug)]
pub struct Credential {
    pub url: ServerUrl,
    /// The server URL as the client stored it.
    pub server_url: String,
    pub username: String,
    pub secret: SecretString,
    /// When a derived token stops working (Unix seconds); `None` for a credential that does not expire.
    pub expires_at: Option<u64>,
    /// Whose credential it is.
    pub description: Option<String>,
}

impl Credential {
    pub fn is_identity_token(&self) -> bool {
        self.username == IDENTITY_TOKEN_USER
    }

    /// `base64(username:secret)`, the `auth` field of docker's config.
    pub fn basic_auth(&self) -> Zeroizing<String> {
        let pair = Zeroizing::new(format!("{}:{}", self.username, self.secret.expose_secret()));
        Zeroizing::new(base64ct::Base64::encode_string(pair.as_bytes()))
    }
}

/// The earliest time any of `credentials` stops working, if one expires.
pub fn earliest_expiry(credentials: &[Credential]) -> Option<u64> {
    credentials.iter().filter_map(|c| c.expires_at).min()
}

/// The stored credentials that match `registries` (all when empty), fetched through `get` so
/// that whatever keeps them fresh runs first.
pub fn select(credentials: &Credentials, registries: &[String]) -> Result<Vec<Credential>> {
    let summaries = credentials.list()?;
    let mut wanted = BTreeSet::new();
    for filter in registries {
        let keys = ServerUrl::parse(filter)?.lookup_keys();
        let before = wanted.len();
        for summary in &summaries {
            if keys.contains(&ServerUrl::parse(&summary.server_url)?.key()) {
                wanted.insert(summary.server_url.clone());
            }
        }
        if wanted.len() == before {
            return Err(Error::NothingStored(filter.clone()));
        }
    }
    let chosen = summaries
        .iter()
        .filter(|s| registries.is_empty() || wanted.contains(&s.server_url));
    chosen
        .map(|summary| {
            let entry = credentials
                .get(&summary.server_url)?
                .ok_or_else(|| Error::NothingStored(summary.server_url.clone()))?;
            Ok(Credential {
                url: ServerUrl::parse(&entry.server_url)?,
                expires_at: entry.expires_at(),
                server_url: entry.server_url,
                username: entry.username,
                secret: entry.secret,
                description: entry.description,
            })
        })
        .collect()
}

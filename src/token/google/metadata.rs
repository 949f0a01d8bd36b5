//! The GCE/GKE metadata server as a source of access tokens for `google-cloud-auth`, read by
//! coffer itself so that its answers are bounded ([`MAX_BODY`]) like every other answer coffer
//! reads: `google-cloud-auth` takes no HTTP client from its caller and reads whatever it is
//! given whole. The protocol is the one its own metadata credentials speak: `GET` with
//! `Metadata-Flavor: Google`, no proxy, no redirect, the default service account's token for
//! the asked scope, and the universe domain for impersonation.

use google_cloud_auth::credentials::{
    AccessToken, AccessTokenCredentialsProvider, CacheableResource, CredentialsProvider, EntityTag,
};
use google_cloud_auth::errors::CredentialsError;
use http::{Extensions, HeaderMap, HeaderValue};
use reqwest::{Client, Url, redirect};
use zeroize::Zeroizing;

use crate::token::Transport;
use crate::token::http::{MAX_BODY, TooLarge};

const TOKEN: &str = "/computeMetadata/v1/instance/service-accounts/default/token";
const UNIVERSE: &str = "/computeMetadata/v1/universe/universe-domain";

/// Why the metadata server gave no token. No text of its answer is shown: it may hold one.
#[derive(Debug, thiserror::Error)]
pub enum MetadataError {
    #[error("cannot reach it: {0}")]
    Unreachable(#[source] Transport),
    #[error("it answered HTTP {0}")]
    Status(u16),
    #[error(transparent)]
    TooLarge(#[from] TooLarge),
    #[error("its answer is no access token")]
    Unusable,
}

/// The metadata server at `host` (`GCE_METADATA_HOST`, or Google's own name).
#[derive(Debug)]
pub struct Metadata {
    client: Client,
    root: Url,
    scope: &'static str,
}

impl Metadata {
    pub fn new(host: &str, scope: &'static str) -> Result<Metadata, String> {
        let root = Url::parse(&format!("http://{host}"))
            .map_err(|_| format!("the metadata server's address {host:?} is no host"))?;
        let client = Client::builder()
            .no_proxy()
            .redirect(redirect::Policy::none())
            .build()
            .map_err(|e| crate::causes::innermost(&e))?;
        Ok(Metadata {
            client,
            root,
            scope,
        })
    }

    /// `GET path` read up to [`MAX_BODY`], on a 200 only.
    async fn get(
        &self,
        path: &str,
        query: &[(&str, &str)],
    ) -> Result<Zeroizing<Vec<u8>>, MetadataError> {
        let unreachable = |e| MetadataError::Unreachable(Transport::Request(e));
        let mut url = self.root.join(path).map_err(|_| MetadataError::Unusable)?;
        url.query_pairs_mut().extend_pairs(query);
        let mut response = self
            .client
            .get(url)
            .header("Metadata-Flavor", "Google")
            .send()
            .await
            .map_err(unreachable)?;
        if response.status() != reqwest::StatusCode::OK {
            return Err(MetadataError::Status(response.status().as_u16()));
        }
        let mut body = Zeroizing::new(Vec::new());
        while let Some(chunk) = response.chunk().await.map_err(unreachable)? {
            if (body.len() + chunk.len()) as u64 > MAX_BODY {
                return Err(TooLarge.into());
            }
            body.extend_from_slice(&chunk);
        }
        Ok(body)
    }

    async fn token(&self) -> Result<Zeroizing<String>, MetadataError> {
        #[derive(serde::Deserialize)]
        struct Answer {
            access_token: Zeroizing<String>,
        }
        let body = self.get(TOKEN, &[("scopes", self.scope)]).await?;
        let answer: Answer = serde_json::from_slice(&body).map_err(|_| MetadataError::Unusable)?;
        Ok(answer.access_token)
    }
}

fn failed(error: MetadataError) -> CredentialsError {
    // Only an unreachable server may answer next time; the SDK's own source says the same.
    let transient = matches!(error, MetadataError::Unreachable(_));
    CredentialsError::from_source(transient, error)
}

impl CredentialsProvider for Metadata {
    async fn headers(
        &self,
        _: Extensions,
    ) -> Result<CacheableResource<HeaderMap>, CredentialsError> {
        let token = self.token().await.map_err(failed)?;
        let mut value = HeaderValue::from_str(&format!("Bearer {}", token.as_str()))
            .map_err(|_| failed(MetadataError::Unusable))?;
        value.set_sensitive(true);
        let mut headers = HeaderMap::new();
        headers.insert(http::header::AUTHORIZATION, value);
        Ok(CacheableResource::New {
            entity_tag: EntityTag::new(),
            data: headers,
        })
    }

    async fn universe_domain(&self) -> Option<String> {
        let body = self.get(UNIVERSE, &[]).await.ok()?;
        let domain = String::from_utf8(body.to_vec()).ok()?;
        Some(domain.trim().to_owned()).filter(|d| !d.is_empty())
    }
}

impl AccessTokenCredentialsProvider for Metadata {
    async fn access_token(&self) -> Result<AccessToken, CredentialsError> {
        let token = self.token().await.map_err(failed)?;
        Ok(AccessToken {
            token: token.as_str().to_owned(),
        })
    }
}

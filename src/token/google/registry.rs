//! Google Artifact Registry and Container Registry: the vault holds a service-account JSON key or
//! authorized-user credentials (an OAuth refresh token, as `gcloud auth application-default
//! login` writes them); coffer trades it for a one-hour access token at Google's token endpoint
//! and hands it out as `oauth2accesstoken`.
//!
//! - Service account (`"type": "service_account"`): the JWT bearer grant (RFC 7523). coffer
//!   signs an RS256 assertion (`iss` = `client_email`, `scope` = cloud-platform, `aud` =
//!   `token_uri`, one hour) with the key's `private_key` (PKCS#8 PEM) using ring.
//! - Authorized user (`"type": "authorized_user"`): the refresh-token grant with `client_id`,
//!   `client_secret` and `refresh_token`.
//!
//! The token endpoint is the JSON's `token_uri` (Google's by default). Access tokens go only to
//! Google's registry hosts (`*-docker.pkg.dev`, `gcr.io`, `*.gcr.io`) and to loopback: a Google
//! token is good for far more than pulling images, so no other host ever gets one.

use crate::token::settings::SettingsError;
use base64ct::{Base64UrlUnpadded, Encoding};
use reqwest::Url;
use ring::rand::SystemRandom;
use ring::signature::{RSA_PKCS1_SHA256, RsaKeyPair};
use rustls_pki_types::PrivatePkcs8KeyDer;
use rustls_pki_types::pem::PemObject;
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use zeroize::Zeroizing;

use crate::token::TokenError;
use crate::token::http::{Reply, display, is_loopback, unix};
use crate::token::provider::{LongLived, Minted, Provider, Target};
use crate::token::shared;

pub const USERNAME: &str = "oauth2accesstoken";
const DEFAULT_TOKEN_URI: &str = "https://oauth2.googleapis.com/token";
const SCOPE: &str = "https://www.googleapis.com/auth/cloud-platform";
const JWT_BEARER: &str = "urn:ietf:params:oauth:grant-type:jwt-bearer";
/// The longest assertion Google accepts, and the lifetime it gives access tokens.
const HOUR: u64 = 3600;

#[derive(Debug)]
pub struct Google;

/// A registry's own settings: none for a stored key; in chain mode (no stored key) an optional
/// service account to impersonate.
#[derive(Debug, Default, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub(crate) struct Settings {
    pub impersonate: Option<String>,
}

impl Settings {
    pub(crate) fn of(
        registry: &crate::token::settings::RegistrySettings,
    ) -> Result<Settings, TokenError> {
        shared::options(&registry.options).map_err(|e| e.in_mode("google"))
    }
}

/// Refuses a host that is not a Google registry (or loopback): a Google token is good for far
/// more than pulling images.
pub(crate) fn check_host(host: &str) -> Result<(), TokenError> {
    if google_host(host) {
        Ok(())
    } else {
        Err(TokenError::WrongHost {
            host: host.to_owned(),
            cloud: "a Google",
        })
    }
}

/// The stored secret: a key file as Google writes it (other fields are ignored).
#[derive(Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum Key {
    ServiceAccount {
        client_email: String,
        private_key: Zeroizing<String>,
        private_key_id: Option<String>,
        token_uri: Option<String>,
    },
    AuthorizedUser {
        client_id: String,
        client_secret: Zeroizing<String>,
        refresh_token: Zeroizing<String>,
        token_uri: Option<String>,
    },
}

impl Provider for Google {
    fn name(&self) -> &'static str {
        "google"
    }

    fn check(&self, options: &toml::Table) -> Result<(), SettingsError> {
        shared::check::<Settings>(options)
    }

    fn mint(&self, target: &Target<'_>, credential: &LongLived<'_>) -> Result<Minted, TokenError> {
        let host = target.url.host();
        check_host(host)?;
        if Settings::of(target.settings)?.impersonate.is_some() {
            return crate::token::chain::mint(&crate::token::chain::Request::new(host, target));
        }
        let key: Key = serde_json::from_str(credential.secret.expose_secret()).map_err(|_| {
            TokenError::Credential(
                "the secret is not a Google service-account key or authorized-user JSON",
            )
        })?;
        let (reply, url) = match key {
            Key::ServiceAccount {
                client_email,
                private_key,
                private_key_id,
                token_uri,
            } => {
                let url = token_url(token_uri.as_deref())?;
                let assertion = assertion(
                    &client_email,
                    private_key_id.as_deref(),
                    &private_key,
                    url.as_str(),
                    unix(std::time::SystemTime::now()),
                )?;
                let form = [
                    ("grant_type", JWT_BEARER),
                    ("assertion", assertion.as_str()),
                ];
                (target.http.post_form(&url, &form)?, url)
            }
            Key::AuthorizedUser {
                client_id,
                client_secret,
                refresh_token,
                token_uri,
            } => {
                let url = token_url(token_uri.as_deref())?;
                let form = [
                    ("grant_type", "refresh_token"),
                    ("client_id", client_id.as_str()),
                    ("client_secret", client_secret.as_str()),
                    ("refresh_token", refresh_token.as_str()),
                ];
                (target.http.post_form(&url, &form)?, url)
            }
        };
        access_token(&reply, &url)
    }
}

/// `*-docker.pkg.dev` (Artifact Registry), `gcr.io` and `*.gcr.io`, and loopback for tests and
/// local mirrors.
fn google_host(host: &str) -> bool {
    let Ok(url) = Url::parse(&format!("https://{host}/")) else {
        return false;
    };
    if is_loopback(&url) {
        return true;
    }
    let Some(name) = url.host_str() else {
        return false;
    };
    let artifact_registry = name
        .strip_suffix("-docker.pkg.dev")
        .is_some_and(|location| !location.is_empty() && !location.contains('.'));
    let container_registry = name == "gcr.io"
        || name
            .strip_suffix(".gcr.io")
            .is_some_and(|region| !region.is_empty() && !region.contains('.'));
    artifact_registry || container_registry
}

fn token_url(token_uri: Option<&str>) -> Result<Url, TokenError> {
    Url::parse(token_uri.unwrap_or(DEFAULT_TOKEN_URI))
        .ok()
        .filter(|u| matches!(u.scheme(), "https" | "http"))
        .ok_or(TokenError::Credential(
            "its `token_uri` is not an http(s) URL",
        ))
}

/// The RS256-signed JWT of the service account's bearer grant.
fn assertion(
    client_email: &str,
    key_id: Option<&str>,
    private_key_pem: &str,
    audience: &str,
    now: u64,
) -> Result<Zeroizing<String>, TokenError> {
    let der = PrivatePkcs8KeyDer::from_pem_slice(private_key_pem.as_bytes())
        .map_err(|_| TokenError::Credential("its `private_key` is not a PKCS#8 PEM key"))?;
    let key = RsaKeyPair::from_pkcs8(der.secret_pkcs8_der())
        .map_err(|_| TokenError::Credential("its `private_key` is not an RSA key ring accepts"))?;
    let mut header = serde_json::json!({"alg": "RS256", "typ": "JWT"});
    if let Some(id) = key_id {
        header["kid"] = id.into();
    }
    let claims = serde_json::json!({
        "iss": client_email,
        "scope": SCOPE,
        "aud": audience,
        "iat": now,
        "exp": now + HOUR,
    });
    let mut jwt = Zeroizing::new(format!(
        "{}.{}",
        Base64UrlUnpadded::encode_string(header.to_string().as_bytes()),
        Base64UrlUnpadded::encode_string(claims.to_string().as_bytes())
    ));
    let mut signature = vec![0; key.public().modulus_len()];
    key.sign(
        &RSA_PKCS1_SHA256,
        &SystemRandom::new(),
        jwt.as_bytes(),
        &mut signature,
    )
    .map_err(|e| TokenError::Signing(Box::new(RsaSigningFailed(e))))?;
    jwt.push('.');
    jwt.push_str(&Base64UrlUnpadded::encode_string(&signature));
    Ok(jwt)
}

/// ring's error says nothing more than that (and, built without its std feature, is no `Error`).
#[derive(Debug, thiserror::Error)]
#[error("RSA signing failed")]
struct RsaSigningFailed(ring::error::Unspecified);

/// `{"access_token": ..., "expires_in": 3599, "token_type": "Bearer"}`, or an OAuth error.
fn access_token(reply: &Reply, url: &Url) -> Result<Minted, TokenError> {
    #[derive(Deserialize)]
    struct Answer {
        access_token: Option<Zeroizing<String>>,
        expires_in: Option<u64>,
        /// OAuth's error code (`invalid_grant`...): it names the fault, never a secret.
        error: Option<String>,
    }
    let answer = serde_json::from_slice::<Answer>(&reply.body).ok();
    if !reply.ok() {
        return Err(shared::refusal(
            "Google's token endpoint",
            url,
            reply.status,
            answer.and_then(|a| a.error),
        ));
    }
    let bad = |why| TokenError::BadAnswer {
        url: display(url),
        why,
    };
    let answer = answer.ok_or_else(|| bad("it is not a JSON token answer"))?;
    let token = answer
        .access_token
        .filter(|t| !t.is_empty())
        .ok_or_else(|| bad("it holds no `access_token`"))?;
    Ok(Minted {
        username: USERNAME.to_owned(),
        secret: SecretString::from(token.as_str()),
        issued_at: reply.arrived,
        expires_at: Some(reply.arrived + answer.expires_in.unwrap_or(HOUR)),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_google_registry_hosts_and_loopback() {
        for host in [
            "europe-west1-docker.pkg.dev",
            "us-docker.pkg.dev",
            "gcr.io",
            "eu.gcr.io",
            "asia.gcr.io",
            "127.0.0.1:5000",
            "localhost:5000",
        ] {
            assert!(google_host(host), "{host}");
        }
        for host in [
            "ghcr.io",
            "docker.pkg.dev",
            "-docker.pkg.dev",
            "evil.example-docker.pkg.dev",
            "gcr.io.evil.example",
            "evilgcr.io",
            "a.b.gcr.io",
            "index.docker.io",
        ] {
            assert!(!google_host(host), "{host}");
        }
    }

    #[test]
    fn key_files_are_recognised_by_type() {
        let key: Key = serde_json::from_str(
            r#"{"type":"authorized_user","client_id":"c","client_secret":"s","refresh_token":"r","quota_project_id":"q"}"#,
        )
        .expect("authorized user");
        assert!(matches!(
            key,
            Key::AuthorizedUser {
                token_uri: None,
                ..
            }
        ));
        assert!(serde_json::from_str::<Key>(r#"{"type":"external_account"}"#).is_err());
    }

    #[test]
    fn an_unusable_private_key_is_named_not_shown() {
        let error = assertion(
            "a@b",
            None,
            "-----BEGIN PRIVATE KEY-----\nnot a key\n-----END PRIVATE KEY-----\n",
            "https://t",
            0,
        )
        .expect_err("bad key");
        let text = error.to_string();
        assert!(text.contains("`private_key`"), "{text}");
        assert!(!text.contains("not a key"), "{text}");
    }
}

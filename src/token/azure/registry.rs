//! Azure Container Registry: the vault holds a service principal (username = its application
//! (client) id, secret = a client secret) or an AAD access token (username `aad-token`). coffer
//! gets an AAD token for ACR (client-credentials grant, scope
//! `https://containerregistry.azure.net/.default`), trades it at the registry's
//! `/oauth2/exchange` for an ACR refresh token, and hands that out with the all-zero GUID user.
//!
//! Why Basic with the zero GUID and not `<token>`: ACR takes the pair as Basic credentials from
//! every client (the documented `docker login` form), while `<token>` works only for clients that
//! run the OAuth2 refresh grant themselves; either way the registry sees the same refresh token.
//!
//! ```toml
//! [registries."myregistry.azurecr.io"]
//! mode = "azure"
//! tenant = "00000000-0000-0000-0000-0000000000aa"   # the directory (tenant) id
//! authority = "https://login.microsoftonline.com"   # AAD; another cloud's, or a test server
//! endpoint = "https://myregistry.azurecr.io"        # where /oauth2/exchange is (tests)
//! ```

use crate::token::settings::SettingsError;
use reqwest::Url;
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use zeroize::Zeroizing;

use crate::token::TokenError;
use crate::token::http::{Reply, display, is_loopback};
use crate::token::jwt;
use crate::token::provider::{LongLived, Minted, Provider, Target};
use crate::token::shared;

/// The username that tells ACR the password is one of its refresh tokens.
pub const USERNAME: &str = "00000000-0000-0000-0000-000000000000";
/// The stored username that marks the secret as a ready AAD access token.
pub const AAD_TOKEN_USERNAME: &str = "aad-token";
const DEFAULT_AUTHORITY: &str = "https://login.microsoftonline.com";
const SCOPE: &str = "https://containerregistry.azure.net/.default";
/// ACR refresh tokens are JWTs that state their expiry; this is for one that does not.
const FALLBACK_LIFETIME: u64 = 3 * 3600;
const REGISTRY_SUFFIXES: [&str; 4] = [".azurecr.io", ".azurecr.cn", ".azurecr.us", ".azurecr.de"];

#[derive(Debug)]
pub struct Azure;

#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub(crate) struct Settings {
    pub tenant: Option<String>,
    pub authority: Option<String>,
    pub endpoint: Option<String>,
    /// Chain mode: the client id of a user-assigned managed identity, or of the application a
    /// workload identity federates to (else `AZURE_CLIENT_ID`, else the system identity).
    pub client_id: Option<String>,
}

impl Settings {
    pub(crate) fn of(
        registry: &crate::token::settings::RegistrySettings,
    ) -> Result<Settings, TokenError> {
        shared::options(&registry.options).map_err(|e| e.in_mode("azure"))
    }
}

/// Refuses a host that is not an ACR registry (or loopback).
pub(crate) fn check_host(host: &str) -> Result<(), TokenError> {
    if acr_host(host) {
        Ok(())
    } else {
        Err(TokenError::WrongHost {
            host: host.to_owned(),
            cloud: "an Azure container",
        })
    }
}

impl Provider for Azure {
    fn name(&self) -> &'static str {
        "azure"
    }

    fn check(&self, options: &toml::Table) -> Result<(), SettingsError> {
        shared::check::<Settings>(options)
    }

    fn mint(&self, target: &Target<'_>, credential: &LongLived<'_>) -> Result<Minted, TokenError> {
        let host = target.url.host();
        check_host(host)?;
        let settings = Settings::of(target.settings)?;
        let aad_token = if credential.username == AAD_TOKEN_USERNAME {
            Zeroizing::new(credential.secret.expose_secret().trim().to_owned())
        } else {
            client_credentials(target, &settings, credential)?
        };
        exchange(target.http, host, &settings, &aad_token)
    }
}

/// Trades an AAD access token for an ACR refresh token at the registry's `/oauth2/exchange`.
pub(crate) fn exchange(
    http: &crate::token::http::Http,
    host: &str,
    settings: &Settings,
    aad_token: &str,
) -> Result<Minted, TokenError> {
    let endpoint = settings
        .endpoint
        .clone()
        .unwrap_or_else(|| format!("https://{host}"));
    let url = Url::parse(&format!(
        "{}/oauth2/exchange",
        endpoint.trim_end_matches('/')
    ))
    .map_err(|_| settings_error("`endpoint` is not a URL"))?;
    let mut form = vec![
        ("grant_type", "access_token"),
        ("service", host),
        ("access_token", aad_token),
    ];
    if let Some(tenant) = &settings.tenant {
        form.push(("tenant", tenant));
    }
    let reply = http.post_form(&url, &form)?;
    refresh_token(&reply, &url)
}

fn settings_error(why: &'static str) -> TokenError {
    SettingsError::invalid(why).in_mode("azure")
}

/// `<name>.azurecr.io` and the other clouds' suffixes, and loopback for tests.
fn acr_host(host: &str) -> bool {
    let Ok(url) = Url::parse(&format!("https://{host}/")) else {
        return false;
    };
    if is_loopback(&url) {
        return true;
    }
    let name = url.host_str().unwrap_or_default();
    REGISTRY_SUFFIXES.iter().any(|suffix| {
        name.strip_suffix(suffix)
            .is_some_and(|registry| !registry.is_empty() && !registry.contains('.'))
    })
}

/// The service principal's AAD access token for ACR (client-credentials grant).
fn client_credentials(
    target: &Target<'_>,
    settings: &Settings,
    credential: &LongLived<'_>,
) -> Result<Zeroizing<String>, TokenError> {
    let tenant = settings
        .tenant
        .as_deref()
        .filter(|t| !t.is_empty())
        .ok_or_else(|| {
            settings_error("a service principal needs `tenant`, the directory (tenant) id")
        })?;
    if !tenant
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.')
    {
        return Err(settings_error("`tenant` is not a tenant id or domain"));
    }
    let authority = settings.authority.as_deref().unwrap_or(DEFAULT_AUTHORITY);
    let url = Url::parse(&format!(
        "{}/{tenant}/oauth2/v2.0/token",
        authority.trim_end_matches('/')
    ))
    .map_err(|_| settings_error("`authority` is not a URL"))?;
    let form = [
        ("grant_type", "client_credentials"),
        ("client_id", credential.username),
        ("client_secret", credential.secret.expose_secret()),
        ("scope", SCOPE),
    ];
    let reply = target.http.post_form(&url, &form)?;
    #[derive(Deserialize)]
    struct Answer {
        access_token: Option<Zeroizing<String>>,
        /// AAD's error code (`invalid_client`...): it names the fault, never a secret.
        error: Option<String>,
    }
    let answer = serde_json::from_slice::<Answer>(&reply.body).ok();
    if !reply.ok() {
        return Err(shared::refusal(
            "AAD",
            &url,
            reply.status,
            answer.and_then(|a| a.error),
        ));
    }
    answer
        .and_then(|a| a.access_token)
        .filter(|t| !t.is_empty())
        .ok_or_else(|| TokenError::BadAnswer {
            url: display(&url),
            why: "it holds no `access_token`",
        })
}

/// `{"refresh_token": "<JWT>"}` from `/oauth2/exchange`; its `exp` says when it runs out.
fn refresh_token(reply: &Reply, url: &Url) -> Result<Minted, TokenError> {
    #[derive(Deserialize)]
    struct Answer {
        refresh_token: Option<Zeroizing<String>>,
    }
    if !reply.ok() {
        return Err(shared::refusal(
            "the registry's token exchange",
            url,
            reply.status,
            None,
        ));
    }
    let token = serde_json::from_slice::<Answer>(&reply.body)
        .ok()
        .and_then(|a| a.refresh_token)
        .filter(|t| !t.is_empty())
        .ok_or_else(|| TokenError::BadAnswer {
            url: display(url),
            why: "it holds no `refresh_token`",
        })?;
    let times = jwt::times(&token).unwrap_or_default();
    let issued_at = times
        .issued_at
        .map_or(reply.arrived, |t| reply.local_time(t));
    let expires_at = times
        .expires_at
        .map(|t| reply.local_time(t))
        .filter(|at| *at > reply.arrived)
        .unwrap_or(reply.arrived + FALLBACK_LIFETIME);
    Ok(Minted {
        username: USERNAME.to_owned(),
        secret: SecretString::from(token.as_str()),
        issued_at: issued_at.min(reply.arrived),
        expires_at: Some(expires_at),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_acr_hosts_and_loopback() {
        for host in [
            "contoso.azurecr.io",
            "contoso.azurecr.cn",
            "127.0.0.1:5000",
            "[::1]:5000",
        ] {
            assert!(acr_host(host), "{host}");
        }
        for host in [
            "azurecr.io",
            ".azurecr.io",
            "a.b.azurecr.io",
            "azurecr.io.evil.example",
            "ghcr.io",
        ] {
            assert!(!acr_host(host), "{host}");
        }
    }

    #[test]
    fn the_refresh_token_states_its_expiry() {
        use base64ct::{Base64UrlUnpadded, Encoding};
        let jwt = format!(
            "{}.{}.c2ln",
            Base64UrlUnpadded::encode_string(br#"{"alg":"RS256"}"#),
            Base64UrlUnpadded::encode_string(br#"{"iat":1000,"exp":11800}"#)
        );
        let reply = |token: &str, skew| Reply {
            status: 200,
            challenges: Vec::new(),
            body: Zeroizing::new(format!(r#"{{"refresh_token":"{token}"}}"#).into_bytes()),
            skew,
            arrived: 1000 - skew as u64,
        };
        let url = Url::parse("https://contoso.azurecr.io/oauth2/exchange").expect("url");
        let minted = refresh_token(&reply(&jwt, 0), &url).expect("jwt");
        assert_eq!(minted.username, USERNAME);
        assert_eq!((minted.issued_at, minted.expires_at), (1000, Some(11800)));
        // The server's clock runs 100 s ahead: times move into ours.
        let minted = refresh_token(&reply(&jwt, 100), &url).expect("skewed");
        assert_eq!((minted.issued_at, minted.expires_at), (900, Some(11700)));
        let minted = refresh_token(&reply("opaque", 0), &url).expect("opaque");
        assert_eq!(minted.expires_at, Some(1000 + FALLBACK_LIFETIME));
    }
}

//! Registry OAuth2 (distribution's token spec): the password grant with `access_type=offline`
//! yields a refresh token that docker, containerd and containers/image accept as an identity
//! token (`Username: "<token>"`), so the password itself never leaves the vault.
//!
//! Minting: probe `GET /v2/` for the Bearer challenge; password grant by `POST` at the realm,
//! falling back to `GET` with `offline_token=true` where the POST is refused; then prove that
//! the server takes the refresh token back in a `POST` refresh grant, because dockerd has no
//! fallback there. Only a proven refresh token is handed out.

use reqwest::Url;
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use zeroize::Zeroizing;

use super::TokenError;
use super::challenge;
use super::http::{Reply, display};
use super::jwt;
use super::provider::{LongLived, Minted, Provider, Target};
use crate::server_url::Scheme;

/// The `Username` that tells clients the `Secret` is an identity (refresh) token.
pub const IDENTITY_TOKEN_USERNAME: &str = "<token>";
const CLIENT_ID: &str = "coffer";
/// Status codes with which servers without the OAuth2 endpoint refuse a POST.
const POST_REFUSED: [u16; 4] = [400, 401, 404, 405];

#[derive(Debug)]
pub struct OAuth2;

impl Provider for OAuth2 {
    fn name(&self) -> &'static str {
        "oauth2"
    }

    /// The registry takes the password itself too: without a proven refresh token, `basic`.
    fn hands_out_credential(&self) -> bool {
        true
    }

    fn mint(&self, target: &Target<'_>, credential: &LongLived<'_>) -> Result<Minted, TokenError> {
        let endpoint = probe(target)?;
        let (reply, mut answer) = password_grant(target, &endpoint, credential)?;
        let refresh = answer
            .refresh_token
            .take()
            .filter(|t| !t.is_empty())
            .ok_or_else(|| TokenError::NoRefreshToken {
                url: display(&endpoint.realm),
            })?;
        prove_refresh_grant(target, &endpoint, &refresh)?;
        let (issued_at, expires_at) = refresh_token_times(&reply, &answer, &refresh);
        Ok(Minted {
            username: IDENTITY_TOKEN_USERNAME.to_owned(),
            secret: SecretString::from(refresh.as_str()),
            issued_at,
            expires_at,
        })
    }
}

/// Reads a token endpoint's answer as the password grant does: refused unless it holds a token,
/// and, when it holds a refresh token, that token's issue and expiry times in our clock. (The
/// parser the `token_response` fuzz target drives.)
pub fn read_answer(reply: &Reply, url: &Url) -> Result<Option<(u64, Option<u64>)>, TokenError> {
    let answer = Answer::parse(reply, url)?;
    let refresh = answer.refresh_token.as_deref().filter(|t| !t.is_empty());
    Ok(refresh.map(|refresh| refresh_token_times(reply, &answer, refresh)))
}

/// When the refresh token was issued and expires, in our clock: its own JWT claims first, else
/// the answer's `issued_at` (or its arrival) and `refresh_expires_in` where the server gives one.
/// `expires_in` is the access token's lifetime, not the refresh token's, so it is not used.
fn refresh_token_times(reply: &Reply, answer: &Answer, refresh: &str) -> (u64, Option<u64>) {
    let claims = jwt::times(refresh).unwrap_or_default();
    let issued_at = claims
        .issued_at
        .or_else(|| answer.issued_at.as_deref().and_then(rfc3339))
        .map_or(reply.arrived, |t| reply.local_time(t));
    let expires_at = match claims.expires_at {
        Some(exp) => Some(reply.local_time(exp)),
        None => answer
            .refresh_expires_in
            .map(|seconds| issued_at.saturating_add(seconds)),
    };
    (issued_at, expires_at)
}

/// Where a registry's tokens come from, as its Bearer challenge says.
#[derive(Debug)]
struct Endpoint {
    realm: Url,
    service: Option<String>,
}

impl Endpoint {
    fn form<'a>(&'a self, fields: &[(&'a str, &'a str)]) -> Vec<(&'a str, &'a str)> {
        let mut form = fields.to_vec();
        if let Some(service) = &self.service {
            form.push(("service", service));
        }
        form.push(("client_id", CLIENT_ID));
        form
    }
}

/// A token endpoint's answer. Either token field may be missing; `expires_in` too.
#[derive(Deserialize)]
struct Answer {
    token: Option<Zeroizing<String>>,
    access_token: Option<Zeroizing<String>>,
    refresh_token: Option<Zeroizing<String>>,
    issued_at: Option<String>,
    /// Not in the registry spec; OAuth2 servers such as Keycloak state it.
    refresh_expires_in: Option<u64>,
}

impl Answer {
    fn parse(reply: &Reply, url: &Url) -> Result<Answer, TokenError> {
        let answer: Answer =
            serde_json::from_slice(&reply.body).map_err(|_| TokenError::BadAnswer {
                url: display(url),
                why: "it is not a JSON token answer",
            })?;
        let has_token = |t: &Option<Zeroizing<String>>| t.as_ref().is_some_and(|t| !t.is_empty());
        if !has_token(&answer.token) && !has_token(&answer.access_token) {
            return Err(TokenError::BadAnswer {
                url: display(url),
                why: "it holds neither `token` nor `access_token`",
            });
        }
        Ok(answer)
    }
}

/// `GET /v2/` without credentials: a token registry answers 401 with a Bearer challenge.
fn probe(target: &Target<'_>) -> Result<Endpoint, TokenError> {
    let host = api_host(target.url.host());
    let schemes = schemes_for(target.url.scheme(), host);
    let mut last_error = None;
    for (i, scheme) in schemes.iter().enumerate() {
        let more = i + 1 < schemes.len();
        let url =
            Url::parse(&format!("{scheme}://{host}/v2/")).map_err(|_| TokenError::BadUrl {
                url: format!("{scheme}://{host}/v2/"),
            })?;
        if last_error.is_some() && !target.http.allows(&url) {
            break;
        }
        let answer = target
            .http
            .get(&url, None)
            .and_then(|reply| endpoint_from(&reply, &url, target));
        match answer {
            Ok(endpoint) => return Ok(endpoint),
            // The other scheme may be the right one: TLS fails against a plain-HTTP server, and
            // a TLS server answers plain HTTP with 400.
            Err(error @ TokenError::Unreachable { .. }) if more => last_error = Some(error),
            Err(error @ TokenError::Status { status: 400, .. }) if more && *scheme == "http" => {
                last_error = Some(error);
            }
            Err(error) => return Err(error),
        }
    }
    Err(last_error.unwrap_or_else(|| TokenError::BadUrl {
        url: host.to_owned(),
    }))
}

/// The schemes to try for a registry, in order. A bare host is tried the way docker does,
/// HTTPS first, except on loopback, where registries conventionally speak plain HTTP and a
/// plain-HTTP server may never answer a TLS handshake.
fn schemes_for(scheme: Scheme, host: &str) -> &'static [&'static str] {
    match scheme {
        Scheme::Https => &["https"],
        Scheme::Http => &["http"],
        Scheme::Unspecified => {
            let loopback = Url::parse(&format!("http://{host}/"))
                .is_ok_and(|url| super::http::is_loopback(&url));
            if loopback {
                &["http", "https"]
            } else {
                &["https", "http"]
            }
        }
    }
}

fn endpoint_from(reply: &Reply, url: &Url, target: &Target<'_>) -> Result<Endpoint, TokenError> {
    let not_token_auth = |found: &'static str| TokenError::NotTokenAuth {
        url: display(url),
        found,
    };
    if reply.ok() {
        return Err(not_token_auth("it asks for no authentication at all"));
    }
    let headers = reply.challenges.iter().map(String::as_str);
    let Some(bearer) = challenge::find(headers, "bearer") else {
        if challenge::find(reply.challenges.iter().map(String::as_str), "basic").is_some() {
            return Err(not_token_auth("it asks for Basic authentication"));
        }
        return Err(TokenError::Status {
            what: "the registry's API root",
            url: display(url),
            status: reply.status,
        });
    };
    let realm_text = bearer.param("realm").unwrap_or_default();
    let realm = Url::parse(realm_text)
        .ok()
        .filter(|realm| matches!(realm.scheme(), "https" | "http") && realm.username().is_empty())
        .ok_or_else(|| not_token_auth("its Bearer challenge has no usable realm URL"))?;
    if !target.http.allows(&realm) {
        return Err(TokenError::PlainHttp {
            url: display(&realm),
            host: target.url.host().to_owned(),
        });
    }
    Ok(Endpoint {
        realm,
        service: bearer.param("service").map(str::to_owned),
    })
}

/// The password grant with offline access: POST, else the GET endpoint with `offline_token`.
fn password_grant(
    target: &Target<'_>,
    endpoint: &Endpoint,
    credential: &LongLived<'_>,
) -> Result<(Reply, Answer), TokenError> {
    let form = endpoint.form(&[
        ("grant_type", "password"),
        ("access_type", "offline"),
        ("username", credential.username),
        ("password", credential.secret.expose_secret()),
    ]);
    let reply = target.http.post_form(&endpoint.realm, &form)?;
    if reply.ok() {
        let answer = Answer::parse(&reply, &endpoint.realm)?;
        return Ok((reply, answer));
    }
    if !POST_REFUSED.contains(&reply.status) {
        return Err(refused(&endpoint.realm, reply.status));
    }
    let mut url = endpoint.realm.clone();
    {
        let mut query = url.query_pairs_mut();
        if let Some(service) = &endpoint.service {
            query.append_pair("service", service);
        }
        query
            .append_pair("offline_token", "true")
            .append_pair("client_id", CLIENT_ID);
    }
    let reply = target
        .http
        .get(&url, Some((credential.username, credential.secret)))?;
    if !reply.ok() {
        return Err(refused(&endpoint.realm, reply.status));
    }
    let answer = Answer::parse(&reply, &endpoint.realm)?;
    Ok((reply, answer))
}

/// A refresh grant by POST, exactly as dockerd will send it with the identity token.
fn prove_refresh_grant(
    target: &Target<'_>,
    endpoint: &Endpoint,
    refresh_token: &str,
) -> Result<(), TokenError> {
    let form = endpoint.form(&[
        ("grant_type", "refresh_token"),
        ("refresh_token", refresh_token),
    ]);
    let reply = target.http.post_form(&endpoint.realm, &form)?;
    if !reply.ok() {
        return Err(TokenError::RefreshRefused {
            url: display(&endpoint.realm),
            status: reply.status,
        });
    }
    Answer::parse(&reply, &endpoint.realm).map(|_| ())
}

fn refused(url: &Url, status: u16) -> TokenError {
    if matches!(status, 401 | 403) {
        TokenError::CredentialRejected {
            url: display(url),
            status,
        }
    } else {
        TokenError::Status {
            what: "the token server",
            url: display(url),
            status,
        }
    }
}

/// Docker Hub's credentials are filed under `index.docker.io`; its API is elsewhere.
fn api_host(host: &str) -> &str {
    if host == "index.docker.io" {
        "registry-1.docker.io"
    } else {
        host
    }
}

/// Unix seconds of an RFC 3339 time in UTC (`Z`), as token servers write `issued_at`.
fn rfc3339(text: &str) -> Option<u64> {
    humantime::parse_rfc3339_weak(text)
        .ok()
        .map(super::http::unix)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reply(skew: i64, arrived: u64) -> Reply {
        Reply {
            status: 200,
            challenges: Vec::new(),
            body: Zeroizing::new(Vec::new()),
            skew,
            arrived,
        }
    }

    fn answer(json: &str) -> Answer {
        serde_json::from_str(json).expect("answer")
    }

    fn jwt(claims: &str) -> String {
        use base64ct::{Base64UrlUnpadded, Encoding};
        format!(
            "e30.{}.c2ln",
            Base64UrlUnpadded::encode_string(claims.as_bytes())
        )
    }

    #[test]
    fn refresh_token_times_come_from_its_claims_in_our_clock() {
        // The server runs 100 s ahead: its times are moved back into ours.
        let times = refresh_token_times(
            &reply(100, 5_000),
            &answer(r#"{"token":"t","refresh_expires_in":9}"#),
            &jwt(r#"{"iat":1100,"exp":4700}"#),
        );
        assert_eq!(times, (1_000, Some(4_600)));
    }

    #[test]
    fn opaque_refresh_tokens_use_the_answer() {
        let stated = answer(
            r#"{"token":"t","expires_in":60,"issued_at":"2024-01-02T03:04:05Z","refresh_expires_in":1800}"#,
        );
        assert_eq!(
            refresh_token_times(&reply(0, 1), &stated, "opaque"),
            (1_704_164_645, Some(1_704_164_645 + 1800))
        );
        // `expires_in` is the access token's: no expiry is invented from it.
        let bare = answer(r#"{"token":"t","expires_in":60}"#);
        assert_eq!(
            refresh_token_times(&reply(-30, 500), &bare, "opaque"),
            (500, None)
        );
    }

    #[test]
    fn issued_at_is_read_in_utc() {
        assert_eq!(rfc3339("2024-01-02T03:04:05Z"), Some(1_704_164_645));
        assert_eq!(
            rfc3339("2024-01-02T03:04:05.123456789Z"),
            Some(1_704_164_645)
        );
        assert_eq!(rfc3339("yesterday"), None);
    }

    #[test]
    fn bare_hosts_try_both_schemes_loopback_plain_first() {
        assert_eq!(
            schemes_for(Scheme::Unspecified, "ghcr.io"),
            ["https", "http"]
        );
        assert_eq!(
            schemes_for(Scheme::Unspecified, "127.0.0.1:5000"),
            ["http", "https"]
        );
        assert_eq!(
            schemes_for(Scheme::Unspecified, "localhost:5000"),
            ["http", "https"]
        );
        assert_eq!(schemes_for(Scheme::Https, "127.0.0.1:5000"), ["https"]);
        assert_eq!(schemes_for(Scheme::Http, "ghcr.io"), ["http"]);
    }

    #[test]
    fn docker_hub_api_lives_on_registry_1() {
        assert_eq!(api_host("index.docker.io"), "registry-1.docker.io");
        assert_eq!(api_host("127.0.0.1:5000"), "127.0.0.1:5000");
    }
}

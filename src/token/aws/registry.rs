//! AWS ECR: the vault holds an IAM access key; coffer calls `GetAuthorizationToken`, signed with
//! SigV4 by the AWS SDK's own signer (`aws-sigv4`), and hands out `AWS` and the 12-hour password
//! it returns.
//!
//! The stored credential: username = the access key id, secret = the secret access key, or the
//! secret access key and a session token on a second line (temporary keys). Without a stored key,
//! or with `profile` or `role_arn` in the settings, the machine's or workload's own AWS identity
//! is used through the AWS SDK (chain mode, [`crate::token::chain`] and [`super::identity`]): environment,
//! profiles with SSO and `credential_process`, web identity, container credentials, instance
//! metadata; `role_arn` assumes a role on top.
//!
//! A stored key is still signed here with the SDK's own signer (`aws-sigv4`) over the shared
//! blocking client rather than through `aws-sdk-ecr`: that path runs inside the lean helper,
//! which must not load an async runtime (docs/cloud.md, "Off the hot path").
//!
//! ```toml
//! [registries."123456789012.dkr.ecr.eu-west-1.amazonaws.com"]
//! mode = "ecr"                       # region and partition come from the host name
//!
//! [registries."127.0.0.1:5000"]      # any other host must be on loopback and say more
//! mode = "ecr"
//! region = "eu-west-1"
//! endpoint = "http://127.0.0.1:4566" # the ECR API (a test server, a FIPS or private endpoint)
//! public = false                     # true: ECR Public's API (`ecr-public`, us-east-1)
//! profile = "dev"                    # chain mode with this AWS profile
//! role_arn = "arn:aws:iam::123456789012:role/pull"   # chain mode, assuming this role
//! ```

use crate::token::settings::SettingsError;
use std::time::SystemTime;

use aws_credential_types::Credentials;
use aws_sigv4::http_request::{SignableBody, SignableRequest, SigningSettings, sign};
use aws_sigv4::sign::v4;
use base64ct::{Base64, Encoding};
use reqwest::Url;
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use zeroize::Zeroizing;

use crate::token::TokenError;
use crate::token::http::{Reply, display};
use crate::token::provider::{LongLived, Minted, Provider, Target};
use crate::token::shared;

/// ECR documents 12 hours; used only when an answer states an expiry that has already passed
/// (moto's fixed 2015 date), which no real token has.
const DOCUMENTED_LIFETIME: u64 = 12 * 3600;
const PUBLIC_HOST: &str = "public.ecr.aws";
const BODY: &[u8] = b"{}";

#[derive(Debug)]
pub struct Ecr;

#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub(crate) struct Settings {
    pub region: Option<String>,
    pub endpoint: Option<String>,
    pub public: bool,
    /// An AWS profile (from `~/.aws/config`), with all it can do: keys, SSO, roles, processes.
    pub profile: Option<String>,
    /// A role assumed on top of the identity the chain finds.
    pub role_arn: Option<String>,
}

impl Settings {
    pub(crate) fn of(
        target: &crate::token::settings::RegistrySettings,
    ) -> Result<Settings, TokenError> {
        shared::options(&target.options).map_err(|e| e.in_mode("ecr"))
    }

    /// Does this registry take its identity from the AWS SDK's chain rather than a stored key?
    pub(crate) fn wants_chain(&self) -> bool {
        self.profile.is_some() || self.role_arn.is_some()
    }
}

/// Which ECR API a registry's tokens come from.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Api {
    /// The SigV4 signing name: `ecr` or `ecr-public`.
    pub service: &'static str,
    target: &'static str,
    pub region: String,
    pub endpoint: String,
}

impl Api {
    fn private(region: &str, fips: bool, suffix: &str) -> Api {
        let fips = if fips { "-fips" } else { "" };
        Api {
            service: "ecr",
            target: "AmazonEC2ContainerRegistry_V20150921.GetAuthorizationToken",
            region: region.to_owned(),
            endpoint: format!("https://api.ecr{fips}.{region}.{suffix}/"),
        }
    }

    fn public() -> Api {
        Api {
            service: "ecr-public",
            target: "SpencerFrontendService.GetAuthorizationToken",
            region: "us-east-1".to_owned(),
            endpoint: "https://api.ecr-public.us-east-1.amazonaws.com/".to_owned(),
        }
    }
}

impl Provider for Ecr {
    fn name(&self) -> &'static str {
        "ecr"
    }

    fn check(&self, options: &toml::Table) -> Result<(), SettingsError> {
        shared::check::<Settings>(options)
    }

    fn mint(&self, target: &Target<'_>, credential: &LongLived<'_>) -> Result<Minted, TokenError> {
        let settings = Settings::of(target.settings)?;
        let api = api_for(target.url.host(), &settings)?;
        if settings.wants_chain() {
            return crate::token::chain::mint(&crate::token::chain::Request::new(
                target.url.host(),
                target,
            ));
        }
        let key = AccessKey::from_vault(credential)?;
        let url =
            Url::parse(&api.endpoint).map_err(|_| settings_error("`endpoint` is not a URL"))?;
        let headers = signed_headers(&api, &url, &key)?;
        let reply = target.http.post(&url, headers, BODY.to_vec())?;
        if !reply.ok() {
            return Err(refused(&reply, &url));
        }
        token_from(&reply, &url)
    }
}

fn settings_error(why: &'static str) -> TokenError {
    SettingsError::invalid(why).in_mode("ecr")
}

/// The API for a registry host: inferred from a real ECR host name, or given in the settings
/// for a loopback host. Settings win where given.
pub(crate) fn api_for(host: &str, settings: &Settings) -> Result<Api, TokenError> {
    let inferred = infer(host);
    let mut api = match (inferred, settings.public, &settings.region) {
        (Some(api), _, _) => api,
        (None, true, _) if shared::loopback_host(host) => Api::public(),
        (None, false, Some(region)) if shared::loopback_host(host) => {
            Api::private(region, false, "amazonaws.com")
        }
        (None, false, None) if shared::loopback_host(host) => {
            return Err(settings_error(
                "a registry that is not an ECR host needs `region`",
            ));
        }
        (None, _, _) => {
            return Err(TokenError::WrongHost {
                host: host.to_owned(),
                cloud: "an AWS ECR",
            });
        }
    };
    if let Some(region) = &settings.region {
        if !valid_region(region) {
            return Err(settings_error("`region` is not a region name"));
        }
        if api.service == "ecr" && infer(host).is_none_or(|a| a.region != *region) {
            api = Api {
                endpoint: api
                    .endpoint
                    .replace(&format!(".{}.", api.region), &format!(".{region}.")),
                region: region.clone(),
                ..api
            };
        }
    }
    if let Some(endpoint) = &settings.endpoint {
        api.endpoint.clone_from(endpoint);
    }
    Ok(api)
}

/// `<account>.dkr.ecr[-fips].<region>.amazonaws.com[.cn]`, the dual-stack
/// `<account>.dkr-ecr[-fips].<region>.on.aws`, and `public.ecr.aws`.
fn infer(host: &str) -> Option<Api> {
    let name = strip_port(host);
    if name == PUBLIC_HOST {
        return Some(Api::public());
    }
    let labels: Vec<&str> = name.split('.').collect();
    let (account, rest) = labels.split_first()?;
    if account.len() != 12 || !account.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let (fips, region, suffix) = match rest {
        ["dkr", ecr, region, domain @ ..] => {
            let fips = match *ecr {
                "ecr" => false,
                "ecr-fips" => true,
                _ => return None,
            };
            let suffix = match domain {
                ["amazonaws", "com"] => "amazonaws.com",
                ["amazonaws", "com", "cn"] => "amazonaws.com.cn",
                _ => return None,
            };
            (fips, *region, suffix)
        }
        [dkr_ecr, region, domain @ ..] => {
            let fips = match *dkr_ecr {
                "dkr-ecr" => false,
                "dkr-ecr-fips" => true,
                _ => return None,
            };
            let suffix = match domain {
                ["on", "aws"] => "amazonaws.com",
                ["on", "amazonwebservices", "com", "cn"] => "amazonaws.com.cn",
                _ => return None,
            };
            (fips, *region, suffix)
        }
        _ => return None,
    };
    valid_region(region).then(|| Api::private(region, fips, suffix))
}

fn valid_region(region: &str) -> bool {
    !region.is_empty()
        && region
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

fn strip_port(host: &str) -> &str {
    match host.rsplit_once(':') {
        Some((name, port)) if !name.contains(':') && port.bytes().all(|b| b.is_ascii_digit()) => {
            name
        }
        _ => host,
    }
}

/// An IAM access key, with the session token of temporary credentials.
struct AccessKey {
    id: String,
    secret: Zeroizing<String>,
    session_token: Option<Zeroizing<String>>,
}

impl std::fmt::Debug for AccessKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AccessKey")
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

impl AccessKey {
    /// Username = access key id; secret = secret access key, then an optional session token on
    /// the next line.
    fn from_vault(credential: &LongLived<'_>) -> Result<AccessKey, TokenError> {
        if credential.username.is_empty() {
            return Err(TokenError::Credential(
                "ECR needs the access key id as the username (or `profile` in the settings)",
            ));
        }
        let mut lines = credential.secret.expose_secret().lines().map(str::trim);
        let secret = lines.next().filter(|s| !s.is_empty()).ok_or_else(|| {
            TokenError::Credential("ECR needs the secret access key as the secret")
        })?;
        let session_token = lines.next().filter(|s| !s.is_empty());
        if lines.next().is_some() {
            return Err(TokenError::Credential(
                "the secret holds more than a secret access key and a session token",
            ));
        }
        Ok(AccessKey {
            id: credential.username.to_owned(),
            secret: Zeroizing::new(secret.to_owned()),
            session_token: session_token.map(|t| Zeroizing::new(t.to_owned())),
        })
    }
}

/// The headers of a SigV4-signed `GetAuthorizationToken` call with the body `{}`.
fn signed_headers(api: &Api, url: &Url, key: &AccessKey) -> Result<HeaderMap, TokenError> {
    fn signing(e: impl std::error::Error + Send + Sync + 'static) -> TokenError {
        TokenError::Signing(Box::new(e))
    }
    let identity = Credentials::new(
        key.id.as_str(),
        key.secret.as_str(),
        key.session_token.as_ref().map(|t| t.to_string()),
        None,
        "coffer",
    )
    .into();
    let params = v4::SigningParams::builder()
        .identity(&identity)
        .region(&api.region)
        .name(api.service)
        .time(SystemTime::now())
        .settings(SigningSettings::default())
        .build()
        .map_err(signing)?
        .into();
    let host = match url.port() {
        Some(port) => format!("{}:{port}", url.host_str().unwrap_or_default()),
        None => url.host_str().unwrap_or_default().to_owned(),
    };
    let unsigned = [
        ("host", host.as_str()),
        ("content-type", "application/x-amz-json-1.1"),
        ("x-amz-target", api.target),
    ];
    let request = SignableRequest::new(
        "POST",
        url.as_str(),
        unsigned.iter().copied(),
        SignableBody::Bytes(BODY),
    )
    .map_err(signing)?;
    let (instructions, _signature) = sign(request, &params).map_err(signing)?.into_parts();
    let (added, _query) = instructions.into_parts();
    let mut headers = HeaderMap::new();
    let pairs = unsigned
        .iter()
        .filter(|(name, _)| *name != "host")
        .map(|(name, value)| ((*name).to_owned(), (*value).to_owned()))
        .chain(
            added
                .iter()
                .map(|h| (h.name().to_owned(), h.value().to_owned())),
        );
    for (name, value) in pairs {
        let name = HeaderName::from_bytes(name.as_bytes()).map_err(signing)?;
        let mut value = HeaderValue::from_str(&value).map_err(signing)?;
        value.set_sensitive(true);
        headers.insert(name, value);
    }
    Ok(headers)
}

/// The AWS JSON error type (`UnrecognizedClientException`...) names the fault, never a secret.
fn refused(reply: &Reply, url: &Url) -> TokenError {
    #[derive(Deserialize)]
    struct Fault {
        #[serde(rename = "__type")]
        kind: Option<String>,
    }
    let kind = serde_json::from_slice::<Fault>(&reply.body)
        .ok()
        .and_then(|f| f.kind)
        .map(|k| k.rsplit('#').next().unwrap_or_default().to_owned());
    shared::refusal("the ECR API", url, reply.status, kind)
}

#[derive(Deserialize)]
struct Answer {
    #[serde(rename = "authorizationData")]
    data: AuthorizationData,
}

/// A list for ECR, one object for ECR Public.
#[derive(Deserialize)]
#[serde(untagged)]
enum AuthorizationData {
    One(Authorization),
    Many(Vec<Authorization>),
}

#[derive(Deserialize)]
struct Authorization {
    #[serde(rename = "authorizationToken")]
    token: Zeroizing<String>,
    /// Epoch seconds, with a fraction.
    #[serde(rename = "expiresAt")]
    expires_at: Option<f64>,
}

fn token_from(reply: &Reply, url: &Url) -> Result<Minted, TokenError> {
    let bad = |why| TokenError::BadAnswer {
        url: display(url),
        why,
    };
    let answer: Answer = serde_json::from_slice(&reply.body)
        .map_err(|_| bad("it is not a GetAuthorizationToken answer"))?;
    let authorization = match answer.data {
        AuthorizationData::One(one) => one,
        AuthorizationData::Many(many) => many
            .into_iter()
            .next()
            .ok_or_else(|| bad("it holds no authorization data"))?,
    };
    let stated = authorization
        .expires_at
        .filter(|t| t.is_finite() && *t > 0.0)
        .map(|t| reply.local_time(t as u64));
    decode(&authorization.token, stated, reply.arrived).map_err(bad)
}

/// An `authorizationToken` (base64 of `user:password`) as handed out, expiring when stated or
/// after the documented 12 hours. Shared with the SDK path (`super::identity`).
pub(crate) fn decode(
    token: &str,
    stated_expiry: Option<u64>,
    issued_at: u64,
) -> Result<Minted, &'static str> {
    let decoded = Zeroizing::new(
        Base64::decode_vec(token.trim()).map_err(|_| "its authorizationToken is not base64")?,
    );
    let text = std::str::from_utf8(&decoded).map_err(|_| "its authorizationToken is not text")?;
    let (username, password) = text
        .split_once(':')
        .filter(|(user, password)| !user.is_empty() && !password.is_empty())
        .ok_or("its authorizationToken is not `user:password`")?;
    let expires_at = match stated_expiry {
        Some(at) if at > issued_at => at,
        _ => issued_at + DOCUMENTED_LIFETIME,
    };
    Ok(Minted {
        username: username.to_owned(),
        secret: SecretString::from(password),
        issued_at,
        expires_at: Some(expires_at),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(text: &str) -> Settings {
        toml::from_str(text).expect("settings")
    }

    #[test]
    fn real_hosts_name_their_region_and_partition() {
        let cases = [
            (
                "123456789012.dkr.ecr.eu-west-1.amazonaws.com",
                "https://api.ecr.eu-west-1.amazonaws.com/",
            ),
            (
                "123456789012.dkr.ecr.cn-north-1.amazonaws.com.cn",
                "https://api.ecr.cn-north-1.amazonaws.com.cn/",
            ),
            (
                "123456789012.dkr.ecr-fips.us-gov-west-1.amazonaws.com",
                "https://api.ecr-fips.us-gov-west-1.amazonaws.com/",
            ),
            (
                "123456789012.dkr-ecr.us-east-2.on.aws",
                "https://api.ecr.us-east-2.amazonaws.com/",
            ),
            (
                "123456789012.dkr.ecr.eu-west-1.amazonaws.com:443",
                "https://api.ecr.eu-west-1.amazonaws.com/",
            ),
        ];
        for (host, endpoint) in cases {
            let api = infer(host).unwrap_or_else(|| panic!("{host}"));
            assert_eq!(api.endpoint, endpoint, "{host}");
            assert_eq!(api.service, "ecr");
        }
        let public = infer("public.ecr.aws").expect("public");
        assert_eq!(public.service, "ecr-public");
        assert_eq!(public.region, "us-east-1");
        assert_eq!(
            public.target,
            "SpencerFrontendService.GetAuthorizationToken"
        );
    }

    #[test]
    fn look_alikes_are_not_ecr() {
        for host in [
            "12345678901.dkr.ecr.eu-west-1.amazonaws.com",
            "123456789012.dkr.ecr.eu-west-1.amazonaws.com.evil.example",
            "123456789012.dkr.ecr.eu-west-1.example.com",
            "evil.example/123456789012.dkr.ecr.eu-west-1.amazonaws.com",
            "123456789012.dkr.ecr..amazonaws.com",
            "ecr.aws",
            "public.ecr.aws.evil.example",
        ] {
            assert!(infer(host).is_none(), "{host}");
            assert!(
                matches!(
                    api_for(host, &settings("region = \"eu-west-1\"")),
                    Err(TokenError::WrongHost { .. })
                ),
                "{host}"
            );
        }
    }

    #[test]
    fn loopback_registries_say_where_their_tokens_come_from() {
        let error = api_for("127.0.0.1:5000", &Settings::default()).expect_err("no region");
        assert!(error.to_string().contains("`region`"), "{error}");
        let api = api_for(
            "127.0.0.1:5000",
            &settings("region = \"eu-west-1\"\nendpoint = \"http://127.0.0.1:4566\""),
        )
        .expect("explicit");
        assert_eq!(api.region, "eu-west-1");
        assert_eq!(api.endpoint, "http://127.0.0.1:4566");
        assert_eq!(api.service, "ecr");
        let api = api_for("localhost:5000", &settings("public = true")).expect("public");
        assert_eq!(api.service, "ecr-public");
        let api = api_for(
            "123456789012.dkr.ecr.eu-west-1.amazonaws.com",
            &settings("region = \"eu-central-1\""),
        )
        .expect("override");
        assert_eq!(api.endpoint, "https://api.ecr.eu-central-1.amazonaws.com/");
    }

    #[test]
    fn the_secret_may_carry_a_session_token() {
        let secret = SecretString::from("wJalr/K7MDENG\nFwoGZXIvYXdzEJr//session\n");
        let key = AccessKey::from_vault(&LongLived {
            username: "AKIDEXAMPLE",
            secret: &secret,
        })
        .expect("key");
        assert_eq!(key.id, "AKIDEXAMPLE");
        assert_eq!(key.secret.as_str(), "wJalr/K7MDENG");
        assert_eq!(
            key.session_token.as_deref().map(String::as_str),
            Some("FwoGZXIvYXdzEJr//session")
        );
        let three = SecretString::from("a\nb\nc");
        assert!(
            AccessKey::from_vault(&LongLived {
                username: "AKID",
                secret: &three
            })
            .is_err()
        );
        let empty = SecretString::from("");
        assert!(
            AccessKey::from_vault(&LongLived {
                username: "AKID",
                secret: &empty
            })
            .is_err()
        );
    }

    #[test]
    fn expiry_is_honoured_and_a_past_one_means_the_documented_lifetime() {
        let token = Base64::encode_string(b"AWS:pass:word");
        let reply = |expires: &str| {
            Reply {
            status: 200,
            challenges: Vec::new(),
            body: Zeroizing::new(
                format!(r#"{{"authorizationData":[{{"authorizationToken":"{token}","expiresAt":{expires},"proxyEndpoint":"https://x"}}]}}"#)
                    .into_bytes(),
            ),
            skew: 0,
            arrived: 1_700_000_000,
        }
        };
        let url = Url::parse("https://api.ecr.eu-west-1.amazonaws.com/").expect("url");
        let minted = token_from(&reply("1700043200.5"), &url).expect("minted");
        assert_eq!(minted.username, "AWS");
        assert_eq!(minted.secret.expose_secret(), "pass:word");
        assert_eq!(minted.expires_at, Some(1_700_043_200));
        let minted = token_from(&reply("1420070400.0"), &url).expect("moto");
        assert_eq!(minted.expires_at, Some(1_700_000_000 + DOCUMENTED_LIFETIME));
    }
}

//! ECR through the AWS SDK: the machine's or workload's identity (or a profile's, or a role on
//! top), then `GetAuthorizationToken` with `aws-sdk-ecr` or `aws-sdk-ecrpublic`.
//!
//! The identity sources are the SDK's own providers, tried in the order of its default chain so
//! that each failure can be named: environment variables, the shared profile (static keys, SSO
//! with `sso-session`, `role_arn` + `source_profile`, `credential_process`), web identity
//! (`AWS_WEB_IDENTITY_TOKEN_FILE` + `AWS_ROLE_ARN`), ECS and EKS Pod Identity container
//! credentials, and EC2 instance metadata (IMDSv2). A registry's `profile` uses that profile
//! only; its `role_arn` assumes a role with whatever identity was found.

use aws_config::BehaviorVersion;
use aws_config::ecs::EcsCredentialsProvider;
use aws_config::environment::EnvironmentVariableCredentialsProvider;
use aws_config::imds;
use aws_config::imds::credentials::ImdsCredentialsProvider;
use aws_config::profile::ProfileFileCredentialsProvider;
use aws_config::provider_config::ProviderConfig;
use aws_config::sts::AssumeRoleProvider;
use aws_config::web_identity_token::WebIdentityTokenCredentialsProvider;
use aws_credential_types::Credentials;
use aws_credential_types::provider::error::CredentialsError;
use aws_credential_types::provider::{ProvideCredentials, SharedCredentialsProvider};
use aws_smithy_http_client::tls::{self, rustls_provider::CryptoMode};
use aws_smithy_runtime_api::client::http::{
    HttpClient, HttpConnector, HttpConnectorFuture, HttpConnectorSettings, SharedHttpClient,
    SharedHttpConnector,
};
use aws_smithy_runtime_api::client::orchestrator::HttpRequest;
use aws_smithy_runtime_api::client::result::ConnectorError;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_types::body::SdkBody;
use aws_smithy_types::retry::RetryConfig;
use aws_smithy_types::timeout::TimeoutConfig;
use aws_types::region::Region;
use secrecy::{ExposeSecret, SecretString};

use super::registry::{self as ecr, Api, Settings};
use crate::causes::one_line;
use crate::token::TokenError;
use crate::token::http::{MAX_BODY, TooLarge};
use crate::token::identity::{Budget, block_on};
use crate::token::provider::Minted;
use crate::token::settings::{RegistrySettings, TokenSettings};

const CLOUD: &str = "AWS";
const SESSION_NAME: &str = "coffer";
const FIX: &str = "set `profile` or `role_arn` under the registry in config.toml, give this machine an instance or pod role, or store a key with `coffer login REGISTRY --mode ecr --username KEY_ID`";

/// Everything the SDK calls share: one HTTPS client (rustls with ring, the roots of the system,
/// every answer cut at [`MAX_BODY`]), the exchange's timeouts, no retries beyond one (a pull
/// waits on us), the registry's region.
struct Sdk {
    http: SharedHttpClient,
    timeouts: TimeoutConfig,
    region: Region,
}

impl Sdk {
    fn new(api: &Api, tokens: &TokenSettings, budget: &Budget) -> Sdk {
        let http = SharedHttpClient::new(Bounded(
            aws_smithy_http_client::Builder::new()
                .tls_provider(tls::Provider::Rustls(CryptoMode::Ring))
                .build_https(),
        ));
        let timeouts = TimeoutConfig::builder()
            .connect_timeout(tokens.connect_timeout.min(budget.total))
            .read_timeout(tokens.timeout)
            .operation_timeout(tokens.timeout)
            .build();
        Sdk {
            http,
            timeouts,
            region: Region::new(api.region.clone()),
        }
    }

    fn provider_config(&self) -> ProviderConfig {
        ProviderConfig::default()
            .with_http_client(self.http.clone())
            .with_timeout_config(self.timeouts.clone())
            .with_retry_config(RetryConfig::standard().with_max_attempts(1))
            .with_region(Some(self.region.clone()))
    }

    async fn config(&self, credentials: Option<Credentials>) -> aws_types::SdkConfig {
        let loader = aws_config::defaults(BehaviorVersion::latest())
            .http_client(self.http.clone())
            .timeout_config(self.timeouts.clone())
            .retry_config(RetryConfig::standard().with_max_attempts(2))
            .region(self.region.clone());
        match credentials {
            Some(credentials) => loader.credentials_provider(credentials),
            None => loader.no_credentials(),
        }
        .load()
        .await
    }
}

/// The SDK's HTTP client with every answer read up to [`MAX_BODY`], else [`TooLarge`], as
/// coffer's own exchanges are: instance metadata, container credentials, STS and ECR answer a
/// few KiB, and a hostile endpoint's endless answer must not fill the memory.
#[derive(Debug)]
struct Bounded(SharedHttpClient);

impl HttpClient for Bounded {
    fn http_connector(
        &self,
        settings: &HttpConnectorSettings,
        components: &RuntimeComponents,
    ) -> SharedHttpConnector {
        SharedHttpConnector::new(BoundedConnector(
            self.0.http_connector(settings, components),
        ))
    }
}

#[derive(Debug)]
struct BoundedConnector(SharedHttpConnector);

impl HttpConnector for BoundedConnector {
    fn call(&self, request: HttpRequest) -> HttpConnectorFuture {
        use http_body_util::BodyExt;
        let answer = self.0.call(request);
        HttpConnectorFuture::new(async move {
            let mut answer = answer.await?;
            // Read here, whole, so that an answer past the bound is the connection's error,
            // which the SDK does not retry (the next answer would be no smaller), rather than
            // the body's, which its credential providers retry with a second's backoff.
            let limit = usize::try_from(MAX_BODY).unwrap_or(usize::MAX);
            let body = http_body_util::Limited::new(answer.take_body(), limit)
                .collect()
                .await
                .map_err(|e| {
                    if e.is::<http_body_util::LengthLimitError>() {
                        ConnectorError::other(Box::new(TooLarge), None)
                    } else {
                        ConnectorError::io(e)
                    }
                })?;
            *answer.body_mut() = SdkBody::from(body.to_bytes());
            Ok(answer)
        })
    }
}

/// A registry's ECR token through the identity chain (and `role_arn`).
pub async fn mint(request: &crate::token::chain::Request) -> Result<Minted, TokenError> {
    let settings = Settings::of(&request.registry)?;
    let api = ecr::api_for(&request.host, &settings)?;
    let budget = Budget::start();
    let sdk = Sdk::new(&api, &request.tokens, &budget);
    let (_, credentials) = identity(&sdk, &settings, &budget).await?;
    let credentials = match &settings.role_arn {
        Some(role) => assume_role(&sdk, role, credentials).await?,
        None => credentials,
    };
    authorization_token(&sdk, &api, &settings, credentials).await
}

/// Which identity the chain finds here, for `coffer doctor`: its source and key id prefix, or
/// why none works.
pub async fn describe(request: &crate::token::chain::Request) -> Result<String, TokenError> {
    let settings = Settings::of(&request.registry)?;
    let api = ecr::api_for(&request.host, &settings)?;
    let budget = Budget::start();
    let sdk = Sdk::new(&api, &request.tokens, &budget);
    let (source, credentials) = identity(&sdk, &settings, &budget).await?;
    let key = credentials.access_key_id();
    let shown = &key[..key.len().min(8)];
    let role = settings
        .role_arn
        .as_deref()
        .map(|r| format!(", then assumes {r}"))
        .unwrap_or_default();
    Ok(format!("AWS {source} (key {shown}...){role}"))
}

/// Exchanges a web-identity token (an OIDC or Kubernetes service-account token, by value) for
/// `role_arn`'s credentials with STS `AssumeRoleWithWebIdentity`, then for the registry's ECR
/// token. The kubelet flow and IRSA-like setups call this with a token they hold.
pub fn ecr_token_for_web_identity(
    host: &str,
    registry: &RegistrySettings,
    tokens: &TokenSettings,
    role_arn: &str,
    web_identity_token: &SecretString,
) -> Result<Minted, TokenError> {
    block_on(async {
        let settings = Settings::of(registry)?;
        let api = ecr::api_for(host, &settings)?;
        let budget = Budget::start();
        let sdk = Sdk::new(&api, tokens, &budget);
        let config = sdk.config(None).await;
        // STS at the registry's `endpoint` too, where one is set (a VPC endpoint, moto).
        let mut sts_config = aws_sdk_sts::config::Builder::from(&config);
        if let Some(endpoint) = &settings.endpoint {
            sts_config = sts_config.endpoint_url(endpoint);
        }
        let sts = aws_sdk_sts::Client::from_conf(sts_config.build());
        let answer = sts
            .assume_role_with_web_identity()
            .role_arn(role_arn)
            .role_session_name(SESSION_NAME)
            .web_identity_token(web_identity_token.expose_secret())
            .send()
            .await
            .map_err(|e| {
                identity_error(&format!("STS refused the web identity for {role_arn}"), &e)
            })?;
        let issued = answer.credentials().ok_or_else(|| {
            TokenError::Identity(
                "AWS STS answered AssumeRoleWithWebIdentity without credentials".into(),
            )
        })?;
        let credentials = Credentials::new(
            issued.access_key_id(),
            issued.secret_access_key(),
            Some(issued.session_token().to_owned()),
            None,
            "WebIdentityToken",
        );
        authorization_token(&sdk, &api, &settings, credentials).await
    })
}

/// The SDK's providers in its default chain's order, each within what is left of the budget.
/// The first that loads credentials wins; one that is set up but fails stops the search (as in
/// the SDK) with its own reason.
async fn identity(
    sdk: &Sdk,
    settings: &Settings,
    budget: &Budget,
) -> Result<(&'static str, Credentials), TokenError> {
    let conf = sdk.provider_config();
    let mut providers: Vec<(&'static str, SharedCredentialsProvider)> = Vec::new();
    if let Some(profile) = &settings.profile {
        let provider = ProfileFileCredentialsProvider::builder()
            .configure(&conf)
            .profile_name(profile)
            .build();
        providers.push(("profile", SharedCredentialsProvider::new(provider)));
    } else {
        let imds = imds::Client::builder()
            .configure(&conf)
            .max_attempts(1)
            .connect_timeout(budget.probe())
            .read_timeout(budget.probe())
            .build();
        providers.extend([
            (
                "environment variables",
                SharedCredentialsProvider::new(EnvironmentVariableCredentialsProvider::new()),
            ),
            (
                "shared profile",
                SharedCredentialsProvider::new(
                    ProfileFileCredentialsProvider::builder()
                        .configure(&conf)
                        .build(),
                ),
            ),
            (
                "web identity",
                SharedCredentialsProvider::new(
                    WebIdentityTokenCredentialsProvider::builder()
                        .configure(&conf)
                        .build(),
                ),
            ),
            (
                "container credentials",
                SharedCredentialsProvider::new(
                    EcsCredentialsProvider::builder().configure(&conf).build(),
                ),
            ),
            (
                "EC2 instance metadata",
                SharedCredentialsProvider::new(
                    ImdsCredentialsProvider::builder()
                        .configure(&conf)
                        .imds_client(imds)
                        .build(),
                ),
            ),
        ]);
    }
    let mut tried = Vec::new();
    for (name, provider) in providers {
        let Some(left) = budget.left() else {
            tried.push(format!("{name} (no time left)"));
            continue;
        };
        match tokio::time::timeout(left, provider.provide_credentials()).await {
            Ok(Ok(credentials)) => return Ok((name, credentials)),
            Ok(Err(CredentialsError::CredentialsNotLoaded(details))) => {
                let why =
                    std::error::Error::source(&CredentialsError::CredentialsNotLoaded(details))
                        .map(|s| format!(": {}", one_line(s)))
                        .unwrap_or_default();
                tried.push(format!("{name} (not set up{why})"));
            }
            Ok(Err(error)) => {
                return Err(identity_error(&format!("AWS {name}"), &error));
            }
            Err(_) => tried.push(format!(
                "{name} (no answer within {:.1} s)",
                left.as_secs_f64()
            )),
        }
    }
    Err(TokenError::NoIdentity {
        cloud: CLOUD,
        tried: tried.join(", "),
        fix: FIX.to_owned(),
    })
}

async fn assume_role(
    sdk: &Sdk,
    role_arn: &str,
    credentials: Credentials,
) -> Result<Credentials, TokenError> {
    let config = sdk.config(Some(credentials)).await;
    let provider = AssumeRoleProvider::builder(role_arn)
        .session_name(SESSION_NAME)
        .configure(&config)
        .build()
        .await;
    provider
        .provide_credentials()
        .await
        .map_err(|e| identity_error(&format!("AWS STS AssumeRole of {role_arn}"), &e))
}

async fn authorization_token(
    sdk: &Sdk,
    api: &Api,
    settings: &Settings,
    credentials: Credentials,
) -> Result<Minted, TokenError> {
    let config = sdk.config(Some(credentials)).await;
    let issued_at = crate::clock::now();
    let endpoint = settings
        .endpoint
        .clone()
        .unwrap_or_else(|| api.endpoint.clone());
    let (token, expires) = if api.service == "ecr-public" {
        ecr_public_token(&config, endpoint).await?
    } else {
        ecr_token(&config, endpoint).await?
    };
    let token = zeroize::Zeroizing::new(token.ok_or_else(|| {
        TokenError::Identity("the ECR API answered without an authorization token".into())
    })?);
    let stated = expires.and_then(|s| u64::try_from(s).ok());
    ecr::decode(&token, stated, issued_at)
        .map_err(|why| TokenError::Identity(format!("the ECR API's answer is unusable: {why}")))
}

/// What `GetAuthorizationToken` answered: the token and when it expires. The two APIs are
/// separate SDK crates with the same call; ECR's answer is a list, ECR Public's a single item.
type Answer = (Option<String>, Option<i64>);

async fn ecr_token(config: &aws_types::SdkConfig, endpoint: String) -> Result<Answer, TokenError> {
    let config = aws_sdk_ecr::config::Builder::from(config)
        .endpoint_url(endpoint)
        .build();
    let answer = aws_sdk_ecr::Client::from_conf(config)
        .get_authorization_token()
        .send()
        .await
        .map_err(|e| identity_error("the ECR API", &e))?;
    let data = answer.authorization_data().first();
    Ok((
        data.and_then(|d| d.authorization_token())
            .map(str::to_owned),
        data.and_then(|d| d.expires_at()).map(|t| t.secs()),
    ))
}

async fn ecr_public_token(
    config: &aws_types::SdkConfig,
    endpoint: String,
) -> Result<Answer, TokenError> {
    let config = aws_sdk_ecrpublic::config::Builder::from(config)
        .endpoint_url(endpoint)
        .build();
    let answer = aws_sdk_ecrpublic::Client::from_conf(config)
        .get_authorization_token()
        .send()
        .await
        .map_err(|e| identity_error("the ECR Public API", &e))?;
    let data = answer.authorization_data();
    Ok((
        data.and_then(|d| d.authorization_token())
            .map(str::to_owned),
        data.and_then(|d| d.expires_at()).map(|t| t.secs()),
    ))
}

fn identity_error(what: &str, error: &(dyn std::error::Error + 'static)) -> TokenError {
    TokenError::Identity(format!("{what} failed: {}", one_line(error)))
}

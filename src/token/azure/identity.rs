//! ACR through `azure_identity`: an AAD token for ACR from the workload's or machine's identity,
//! then the registry's `/oauth2/exchange` (shared with the stored-key path). The sources, in
//! the order of the SDK's own default chain (without developer tools):
//!
//! - a client secret in the environment (`AZURE_CLIENT_SECRET`, `AZURE_CLIENT_ID`,
//!   `AZURE_TENANT_ID`);
//! - workload identity (`AZURE_FEDERATED_TOKEN_FILE`, `AZURE_CLIENT_ID`, `AZURE_TENANT_ID`);
//! - managed identity: App Service and Functions (`IDENTITY_ENDPOINT`), else the VM's instance
//!   metadata; system-assigned, or user-assigned by the registry's `client_id`.
//!
//! A registry's `authority` (or `AZURE_AUTHORITY_HOST`) picks a sovereign cloud.

use std::pin::Pin;
use std::sync::Arc;

use azure_core::cloud::{CloudConfiguration, CustomConfiguration};
use azure_core::credentials::{Secret, TokenCredential};
use azure_core::http::{AsyncRawResponse, ClientOptions, HttpClient, Transport, new_http_client};
use azure_identity::{
    ClientAssertion, ClientAssertionCredential, ClientAssertionCredentialOptions,
    ClientSecretCredential, ClientSecretCredentialOptions, ManagedIdentityCredential,
    ManagedIdentityCredentialOptions, UserAssignedId, WorkloadIdentityCredential,
    WorkloadIdentityCredentialOptions,
};
use secrecy::{ExposeSecret, SecretString};
use zeroize::Zeroizing;

use super::registry::{self as stored, Settings};
use crate::causes::one_line;
use crate::token::TokenError;
use crate::token::chain::Request;
use crate::token::http::{Http, MAX_BODY, TooLarge};
use crate::token::identity::{Budget, block_on};
use crate::token::provider::Minted;
use crate::token::settings::{RegistrySettings, TokenSettings};

const SCOPE: &str = "https://containerregistry.azure.net/.default";
const FIX: &str = "give this machine or pod a managed or workload identity, set AZURE_CLIENT_ID with AZURE_TENANT_ID and AZURE_FEDERATED_TOKEN_FILE, or store a service principal with `coffer login REGISTRY --mode azure`";

fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

/// The SDK's HTTP client with every answer read up to [`MAX_BODY`], as coffer's own exchanges
/// are: a managed identity endpoint, instance metadata and AAD answer a few KiB, and a hostile
/// endpoint's endless answer must not fill the memory.
#[derive(Debug)]
struct Bounded(Arc<dyn HttpClient>);

#[async_trait::async_trait]
impl HttpClient for Bounded {
    async fn execute_request(
        &self,
        request: &azure_core::http::Request,
    ) -> azure_core::Result<AsyncRawResponse> {
        use futures_core::Stream;
        let (status, headers, mut body) = self.0.execute_request(request).await?.deconstruct();
        let mut read = Vec::new();
        while let Some(chunk) = std::future::poll_fn(|cx| Pin::new(&mut body).poll_next(cx)).await {
            let chunk = chunk?;
            if (read.len() + chunk.len()) as u64 > MAX_BODY {
                // Not an I/O error, which the SDK would retry: the next answer is no smaller.
                return Err(azure_core::Error::new(
                    azure_core::error::ErrorKind::DataConversion,
                    TooLarge,
                ));
            }
            read.extend_from_slice(&chunk);
        }
        Ok(AsyncRawResponse::from_bytes(status, headers, read))
    }
}

fn client_options(settings: &Settings) -> ClientOptions {
    let mut options = ClientOptions {
        transport: Some(Transport::new(Arc::new(Bounded(new_http_client(None))))),
        ..ClientOptions::default()
    };
    if let Some(authority) = &settings.authority {
        let mut custom = CustomConfiguration::default();
        custom.authority_host.clone_from(authority);
        options.cloud = Some(Arc::new(CloudConfiguration::from(custom)));
    }
    options
}

/// The credential the chain picks here.
struct Chosen {
    /// Its name for people.
    name: String,
    /// The sources before it in the chain that are not set up here, and why.
    passed: Vec<&'static str>,
    /// A managed identity (App Service's `IDENTITY_ENDPOINT` or instance metadata): a probe
    /// within the identity budget rather than an exchange.
    probes_metadata: bool,
    credential: Arc<dyn TokenCredential>,
}

impl Chosen {
    /// What was tried, for an error: the sources passed, then this one and what `outcome` was.
    fn tried(&self, outcome: &str) -> String {
        let mut tried: Vec<String> = self.passed.iter().map(|&p| p.to_owned()).collect();
        tried.push(format!("{}{outcome}", self.name));
        tried.join(", ")
    }
}

/// The first source of the chain that is set up here; managed identity when none is, since
/// only asking the metadata service tells whether there is one.
fn credential(settings: &Settings) -> Result<Chosen, TokenError> {
    let unusable = |what: &str, e: azure_core::Error| {
        TokenError::Identity(format!("Azure {what} is unusable: {}", one_line(&e)))
    };
    let client_id = settings
        .client_id
        .clone()
        .or_else(|| env("AZURE_CLIENT_ID"));
    let tenant = settings.tenant.clone().or_else(|| env("AZURE_TENANT_ID"));
    let mut passed = Vec::new();
    match (env("AZURE_CLIENT_SECRET"), &client_id, &tenant) {
        (Some(secret), Some(id), Some(tenant)) => {
            let options = ClientSecretCredentialOptions {
                client_options: client_options(settings),
            };
            let credential =
                ClientSecretCredential::new(tenant, id.clone(), Secret::new(secret), Some(options))
                    .map_err(|e| unusable("client secret", e))?;
            return Ok(Chosen {
                name: format!("client secret of {id} (environment)"),
                passed,
                probes_metadata: false,
                credential,
            });
        }
        (None, _, _) => passed.push("client secret (no AZURE_CLIENT_SECRET)"),
        (Some(_), None, _) => {
            passed
                .push("client secret (AZURE_CLIENT_SECRET without AZURE_CLIENT_ID or `client_id`)");
        }
        (Some(_), _, None) => {
            passed.push("client secret (AZURE_CLIENT_SECRET without AZURE_TENANT_ID or `tenant`)");
        }
    }
    if let Some(file) = env("AZURE_FEDERATED_TOKEN_FILE") {
        let options = WorkloadIdentityCredentialOptions {
            credential_options: ClientAssertionCredentialOptions {
                client_options: client_options(settings),
            },
            client_id: client_id.clone(),
            tenant_id: tenant.clone(),
            token_file_path: Some(file.clone().into()),
        };
        let credential = WorkloadIdentityCredential::new(Some(options))
            .map_err(|e| unusable("workload identity", e))?;
        return Ok(Chosen {
            name: format!("workload identity (token file {file})"),
            passed,
            probes_metadata: false,
            credential,
        });
    }
    passed.push("workload identity (no AZURE_FEDERATED_TOKEN_FILE)");
    let options = ManagedIdentityCredentialOptions {
        user_assigned_id: settings.client_id.clone().map(UserAssignedId::ClientId),
        client_options: client_options(settings),
    };
    let credential = ManagedIdentityCredential::new(Some(options))
        .map_err(|e| unusable("managed identity", e))?;
    let which = match &settings.client_id {
        Some(id) => format!("user-assigned managed identity {id}"),
        None => "system-assigned managed identity".to_owned(),
    };
    let endpoint = env("IDENTITY_ENDPOINT");
    let place = match &endpoint {
        Some(endpoint) => format!("at {endpoint}"),
        None => "from instance metadata".to_owned(),
    };
    Ok(Chosen {
        name: format!("{which} {place}"),
        passed,
        probes_metadata: true,
        credential,
    })
}

/// An AAD access token for ACR from the chosen credential, within `within`.
async fn aad_token(
    chosen: &Chosen,
    within: std::time::Duration,
) -> Result<Zeroizing<String>, TokenError> {
    match tokio::time::timeout(within, chosen.credential.get_token(&[SCOPE], None)).await {
        Ok(Ok(token)) => Ok(Zeroizing::new(token.token.secret().to_owned())),
        Ok(Err(error)) => Err(TokenError::NoIdentity {
            cloud: "Azure",
            tried: chosen.tried(&format!(": {}", one_line(&error))),
            fix: FIX.to_owned(),
        }),
        Err(_) => Err(TokenError::NoIdentity {
            cloud: "Azure",
            tried: chosen.tried(&format!(
                " (no answer within {:.1} s)",
                within.as_secs_f64()
            )),
            fix: FIX.to_owned(),
        }),
    }
}

/// A registry's ACR refresh token through the identity chain. Not async: the exchange at the
/// registry runs on the blocking client after the runtime is gone.
pub fn mint(request: &Request) -> Result<Minted, TokenError> {
    stored::check_host(&request.host)?;
    let settings = Settings::of(&request.registry)?;
    let chosen = credential(&settings)?;
    // A managed identity's endpoint is probed within the identity budget; the others are
    // exchanges.
    let within = if chosen.probes_metadata {
        Budget::start().total
    } else {
        request.tokens.timeout
    };
    let aad = block_on(aad_token(&chosen, within))?;
    let http = Http::new(&request.tokens, &request.registry)?;
    stored::exchange(&http, &request.host, &settings, &aad)
}

/// Which identity the chain finds here, for `coffer doctor`.
pub fn describe(request: &Request) -> Result<String, TokenError> {
    let settings = Settings::of(&request.registry)?;
    let chosen = credential(&settings)?;
    block_on(aad_token(&chosen, Budget::start().total))?;
    Ok(format!("Azure {}", chosen.name))
}

/// An assertion held by value.
#[derive(Debug)]
struct Held(SecretString);

#[async_trait::async_trait]
impl ClientAssertion for Held {
    async fn secret(
        &self,
        _: Option<azure_core::http::ClientMethodOptions<'_>>,
    ) -> azure_core::Result<String> {
        Ok(self.0.expose_secret().to_owned())
    }
}

/// A federated client assertion held by value (a Kubernetes service-account token) for
/// `client_id` in `tenant`: AAD's token for ACR, then the registry's refresh token.
pub fn acr_token_for_client_assertion(
    host: &str,
    registry: &RegistrySettings,
    tokens: &TokenSettings,
    tenant: &str,
    client_id: &str,
    assertion: &SecretString,
) -> Result<Minted, TokenError> {
    stored::check_host(host)?;
    let settings = Settings::of(registry)?;
    let options = ClientAssertionCredentialOptions {
        client_options: client_options(&settings),
    };
    let credential = ClientAssertionCredential::new(
        tenant.to_owned(),
        client_id.to_owned(),
        Held(assertion.clone()),
        Some(options),
    )
    .map_err(|e| {
        TokenError::Identity(format!(
            "Azure client assertion is unusable: {}",
            one_line(&e)
        ))
    })?;
    let chosen = Chosen {
        name: format!("federated credential of {client_id}"),
        passed: Vec::new(),
        probes_metadata: false,
        credential,
    };
    let aad = block_on(aad_token(&chosen, tokens.timeout))?;
    let http = Http::new(tokens, registry)?;
    stored::exchange(&http, host, &settings, &aad)
}

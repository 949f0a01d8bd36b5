//! Google chain mode: Application Default Credentials through `google-cloud-auth` (run by
//! `coffer token mint`) against loopback fixtures, with nothing stored in coffer: a GCE/GKE
//! metadata server (`GCE_METADATA_HOST`), and workload identity federation (an
//! `external_account` file whose STS `token_url` and service-account impersonation URL are
//! fixtures), and a registry's `impersonate` at Google's fixed IAM credentials URL, reached
//! through an HTTPS proxy fixture. Every token is checked by an htpasswd registry holding
//! exactly it.

use std::net::TcpListener;
use std::time::SystemTime;

use super::chain::{answer, assert_fails_fast, assert_on_no_disk};
use super::fixture::{Answer, Fixture, Request};
use super::https_proxy::HttpsProxy;
use super::{private_file, push_and_inspect_through_coffer};
use crate::harness::{Env, Registry, free_port};

const USERNAME: &str = "oauth2accesstoken";
const SCOPE: &str = "https://www.googleapis.com/auth/cloud-platform";
const METADATA_TOKEN: &str = "/computeMetadata/v1/instance/service-accounts/default/token";
const METADATA_UNIVERSE: &str = "/computeMetadata/v1/universe/universe-domain";
const AUDIENCE: &str =
    "//iam.googleapis.com/projects/123456/locations/global/workloadIdentityPools/ci/providers/oidc";
const JWT_TOKEN_TYPE: &str = "urn:ietf:params:oauth:token-type:jwt";
const SUBJECT_TOKEN: &str = "eyJhbGciOiJSUzI1NiJ9.ci-job-oidc-token.signature";
const PULLER: &str = "puller@project.iam.gserviceaccount.com";
const PUSHER: &str = "pusher@project.iam.gserviceaccount.com";
const IAM_CREDENTIALS: &str = "iamcredentials.googleapis.com";

/// The GCE/GKE metadata server as google-cloud-auth asks it: every request must carry
/// `Metadata-Flavor: Google` (the header that keeps a browser's or proxy's forged request out);
/// the default service account's token, for the cloud-platform scope or the instance's own
/// (no `scopes`), is `{prefix}-N`, N counting the tokens minted.
fn metadata_server(prefix: &'static str) -> Fixture {
    let mut minted = 0;
    Fixture::start_with_header(("Metadata-Flavor", "Google"), move |request| {
        if request.header("metadata-flavor") != Some("Google") {
            return Err(format!("{} without Metadata-Flavor: Google", request.path));
        }
        match (request.method.as_str(), request.route()) {
            ("GET", METADATA_TOKEN) => {
                let scopes = request.query().get("scopes").cloned();
                if scopes.as_deref().is_some_and(|s| s != SCOPE) {
                    return Err(format!("token for scopes {scopes:?}"));
                }
                minted += 1;
                Ok((
                    200,
                    format!(
                        r#"{{"access_token":"{prefix}-{minted}","expires_in":3599,"token_type":"Bearer"}}"#
                    ),
                ))
            }
            ("GET", METADATA_UNIVERSE) => Ok((200, "googleapis.com".into())),
            (method, _) => Err(format!("unexpected {method} {}", request.path)),
        }
    })
}

/// config.toml with a `google` chain-mode section per `(host, settings)`.
fn google_config(env: &Env, registries: &[(&str, &str)]) {
    let text: String = registries
        .iter()
        .map(|(host, settings)| format!("[registries.\"{host}\"]\nmode = \"google\"\n{settings}"))
        .collect();
    std::fs::write(env.coffer_home().join("config.toml"), text).expect("config");
}

#[test]
fn the_metadata_fixture_refuses_a_request_without_metadata_flavor() {
    let metadata = metadata_server("ya29.metadata");
    let url = format!("{}{METADATA_TOKEN}?scopes={SCOPE}", metadata.url());
    let reply = reqwest::blocking::get(&url).expect("request");
    assert_eq!(reply.status().as_u16(), 400);
    assert_eq!(metadata.count(METADATA_TOKEN), 1);
    assert_eq!(
        metadata.problems(),
        vec![format!(
            "{METADATA_TOKEN}?scopes={SCOPE} without Metadata-Flavor: Google"
        )]
    );
}

#[test]
fn a_node_with_only_the_metadata_server_pulls_with_docker_and_skopeo_and_writes_no_token() {
    let started = SystemTime::now();
    let metadata = metadata_server("ya29.metadata");
    // No vault and no passphrase: the node's only identity is its service account.
    let env = Env::empty().with_var("GCE_METADATA_HOST", &metadata.host());
    std::fs::remove_file(env.passphrase_file()).expect("no passphrase");
    let registry = Registry::htpasswd(USERNAME, "ya29.metadata-1");
    let host = registry.host();
    google_config(&env, &[(&host, "")]);
    let login = env.coffer(&["login", &host, "--mode", "google"]);
    assert!(
        login.success().stdout().contains("nothing stored"),
        "{}",
        login.stdout()
    );
    assert_eq!(
        answer(&env.helper("get", &host)),
        (USERNAME.into(), "ya29.metadata-1".into())
    );
    push_and_inspect_through_coffer(&env, &registry);
    // The login's mint served every get after it, in every process, from the keyring.
    let asked: Vec<_> = metadata
        .requests()
        .iter()
        .map(|r| r.query().get("scopes").cloned())
        .collect();
    assert_eq!(asked, vec![Some(SCOPE.to_owned())]);
    metadata.assert_clean();
    assert!(!env.vault().exists(), "chain mode made no vault");
    assert_on_no_disk(&env, started, "ya29.metadata-1");
    let status = env.coffer(&["token", "status"]);
    assert!(
        status
            .success()
            .stdout()
            .contains(&format!("the metadata server at {}", metadata.host())),
        "{}",
        status.stdout()
    );
}

#[test]
fn a_cached_token_is_not_minted_again_and_each_registry_has_its_own() {
    let metadata = metadata_server("ya29.metadata");
    let env = Env::new().with_var("GCE_METADATA_HOST", &metadata.host());
    let (first, second) = ("127.0.0.1:5981", "127.0.0.1:5982");
    google_config(&env, &[(first, ""), (second, "")]);
    let get = |host: &str| answer(&env.helper("get", host)).1;
    assert_eq!(get(first), "ya29.metadata-1");
    assert_eq!(get(first), "ya29.metadata-1");
    assert_eq!(
        metadata.count(METADATA_TOKEN),
        1,
        "the second get was cached"
    );
    // A token goes only to the registry it was minted for.
    assert_eq!(get(second), "ya29.metadata-2");
    assert_eq!(get(first), "ya29.metadata-1");
    assert_eq!(metadata.count(METADATA_TOKEN), 2);
    metadata.assert_clean();
}

/// Google STS (RFC 8693 token exchange) for `AUDIENCE`: checks the form and answers
/// `{answer}-N`; with `for_impersonation`, the scope asked is IAM's, as google-cloud-auth asks
/// for a token it will trade at the IAM credentials API.
fn sts(answer: &'static str, for_impersonation: bool) -> Fixture {
    let mut minted = 0;
    Fixture::start(move |request: &Request| -> Answer {
        if (request.method.as_str(), request.route()) != ("POST", "/v1/token") {
            return Err(format!("{} {}", request.method, request.path));
        }
        let form = request.form();
        let field = |name: &str| form.get(name).map(String::as_str);
        let scope = if for_impersonation {
            "https://www.googleapis.com/auth/iam"
        } else {
            SCOPE
        };
        let expected = [
            (
                "grant_type",
                "urn:ietf:params:oauth:grant-type:token-exchange",
            ),
            (
                "requested_token_type",
                "urn:ietf:params:oauth:token-type:access_token",
            ),
            ("subject_token", SUBJECT_TOKEN),
            ("subject_token_type", JWT_TOKEN_TYPE),
            ("audience", AUDIENCE),
            ("scope", scope),
        ];
        for (name, value) in expected {
            if field(name) != Some(value) {
                return Err(format!("{name} is {:?}", field(name)));
            }
        }
        minted += 1;
        Ok((
            200,
            format!(
                r#"{{"access_token":"{answer}-{minted}","issued_token_type":"urn:ietf:params:oauth:token-type:access_token","token_type":"Bearer","expires_in":3600}}"#
            ),
        ))
    })
}

/// An `external_account` ADC file (workload identity federation) whose subject token is read
/// from a file, exchanged at `sts`, and, with `impersonation_url`, traded for a service
/// account's token there.
fn external_account(env: &Env, sts: &Fixture, impersonation_url: Option<String>) -> String {
    let subject = private_file(env, "oidc-token", SUBJECT_TOKEN);
    let mut json = serde_json::json!({
        "type": "external_account",
        "audience": AUDIENCE,
        "subject_token_type": JWT_TOKEN_TYPE,
        "token_url": format!("{}/v1/token", sts.url()),
        "credential_source": {"file": subject},
    });
    if let Some(url) = impersonation_url {
        json["service_account_impersonation_url"] = url.into();
    }
    private_file(env, "federation.json", &json.to_string())
}

#[test]
fn workload_identity_federation_exchanges_the_subject_token_at_sts() {
    let sts = sts("ya29.federated", false);
    let env = Env::empty();
    let file = external_account(&env, &sts, None);
    let env = env.with_var("GOOGLE_APPLICATION_CREDENTIALS", &file);
    std::fs::remove_file(env.passphrase_file()).expect("no passphrase");
    let registry = Registry::htpasswd(USERNAME, "ya29.federated-1");
    google_config(&env, &[(&registry.host(), "")]);
    assert_eq!(
        answer(&env.helper("get", &registry.host())),
        (USERNAME.into(), "ya29.federated-1".into())
    );
    push_and_inspect_through_coffer(&env, &registry);
    assert_eq!(sts.count("/v1/token"), 1, "one exchange, then the cache");
    sts.assert_clean();
}

/// The IAM credentials API's `generateAccessToken`, for service accounts named `NAME@...`
/// among `accounts`: only with a caller's token that the source minted (`{minted_by}N`), for
/// the cloud-platform scope; answers `ya29.NAME-N`.
fn iam_credentials(accounts: &'static [&'static str], minted_by: &'static str) -> Fixture {
    let mut minted = std::collections::HashMap::<&str, u32>::new();
    Fixture::start(move |request: &Request| -> Answer {
        let account = request
            .route()
            .strip_prefix("/v1/projects/-/serviceAccounts/")
            .and_then(|rest| rest.strip_suffix(":generateAccessToken"))
            .and_then(|account| accounts.iter().find(|a| **a == account));
        let (Some(account), "POST") = (account, request.method.as_str()) else {
            return Err(format!("{} {}", request.method, request.path));
        };
        let bearer = request
            .header("authorization")
            .and_then(|value| value.strip_prefix("Bearer "));
        if !bearer.is_some_and(|token| token.starts_with(minted_by)) {
            return Err(format!(
                "authorization {:?}",
                request.header("authorization")
            ));
        }
        let body: serde_json::Value =
            serde_json::from_slice(&request.body).map_err(|e| e.to_string())?;
        if body["scope"] != serde_json::json!([SCOPE]) {
            return Err(format!("body {body}"));
        }
        let count = minted.entry(account).or_default();
        *count += 1;
        let name = account.split('@').next().unwrap_or_default();
        Ok((
            200,
            format!(
                r#"{{"accessToken":"ya29.{name}-{count}","expireTime":"2099-01-01T00:00:00Z"}}"#
            ),
        ))
    })
}

#[test]
fn workload_identity_federation_impersonates_the_service_account_in_the_file() {
    let sts = sts("ya29.sts", true);
    let iam = iam_credentials(&[PULLER], "ya29.sts-");
    let env = Env::empty();
    let url = format!(
        "{}/v1/projects/-/serviceAccounts/{PULLER}:generateAccessToken",
        iam.url()
    );
    let file = external_account(&env, &sts, Some(url));
    let env = env.with_var("GOOGLE_APPLICATION_CREDENTIALS", &file);
    let registry = Registry::htpasswd(USERNAME, "ya29.puller-1");
    google_config(&env, &[(&registry.host(), "")]);
    assert_eq!(
        answer(&env.helper("get", &registry.host())),
        (USERNAME.into(), "ya29.puller-1".into())
    );
    assert_eq!(
        answer(&env.helper("get", &registry.host())).1,
        "ya29.puller-1"
    );
    assert_eq!((sts.count("/v1/token"), iam.requests().len()), (1, 1));
    sts.assert_clean();
    iam.assert_clean();
}

/// A node whose metadata server is its identity, behind an HTTPS proxy through which it reaches
/// Google's IAM credentials API, `iam`: `(env, metadata server, proxy)`.
fn behind_a_proxy(iam: &Fixture) -> (Env, Fixture, HttpsProxy) {
    let metadata = metadata_server("ya29.metadata");
    let env = Env::new();
    let proxy = HttpsProxy::start(IAM_CREDENTIALS, iam.port, env.root());
    let ca_file = proxy.ca_file.to_str().expect("utf-8").to_owned();
    let env = env
        .with_var("GCE_METADATA_HOST", &metadata.host())
        .with_var("HTTPS_PROXY", &proxy.url())
        .with_var("NO_PROXY", "127.0.0.1,localhost")
        .with_var("SSL_CERT_FILE", &ca_file);
    (env, metadata, proxy)
}

#[test]
fn impersonate_trades_the_metadata_identity_at_iam_credentials_and_pulls() {
    let iam = iam_credentials(&[PULLER], "ya29.metadata-");
    let (env, metadata, proxy) = behind_a_proxy(&iam);
    let registry = Registry::htpasswd(USERNAME, "ya29.puller-1");
    let settings = format!("impersonate = \"{PULLER}\"\n");
    google_config(&env, &[(&registry.host(), &settings)]);
    assert_eq!(
        answer(&env.helper("get", &registry.host())),
        (USERNAME.into(), "ya29.puller-1".into())
    );
    push_and_inspect_through_coffer(&env, &registry);
    assert_eq!(iam.requests().len(), 1, "one impersonation, then the cache");
    assert_eq!(proxy.targets(), vec![format!("{IAM_CREDENTIALS}:443")]);
    metadata.assert_clean();
    iam.assert_clean();
}

#[test]
fn registries_impersonating_different_accounts_never_share_a_token() {
    let iam = iam_credentials(&[PULLER, PUSHER], "ya29.metadata-");
    let (env, metadata, _proxy) = behind_a_proxy(&iam);
    let (pulling, pushing, plain) = ("127.0.0.1:5983", "127.0.0.1:5984", "127.0.0.1:5985");
    let as_puller = format!("impersonate = \"{PULLER}\"\n");
    let as_pusher = format!("impersonate = \"{PUSHER}\"\n");
    google_config(
        &env,
        &[(pulling, &as_puller), (pushing, &as_pusher), (plain, "")],
    );
    let get = |host: &str| answer(&env.helper("get", host)).1;
    assert_eq!(get(pulling), "ya29.puller-1");
    assert_eq!(get(pushing), "ya29.pusher-1");
    assert_eq!(get(plain), "ya29.metadata-3");
    assert_eq!(get(pulling), "ya29.puller-1");
    assert_eq!(get(pushing), "ya29.pusher-1");
    assert_eq!(iam.requests().len(), 2);
    metadata.assert_clean();
    iam.assert_clean();
}

#[test]
fn a_refused_impersonation_names_the_account_and_iams_reason() {
    // The node's account lacks the Token Creator role on the target.
    let iam = Fixture::start(|_: &Request| -> Answer {
        Ok((
            403,
            r#"{"error":{"code":403,"message":"Permission 'iam.serviceAccounts.getAccessToken' denied on resource (or it may not exist).","status":"PERMISSION_DENIED"}}"#.into(),
        ))
    });
    let (env, _metadata, _proxy) = behind_a_proxy(&iam);
    let host = "127.0.0.1:5986";
    google_config(&env, &[(host, &format!("impersonate = \"{PULLER}\"\n"))]);
    let run = env.helper("get", host);
    run.failure();
    let said = run.stdout();
    for named in [
        format!("then impersonating {PULLER}"),
        "iam.serviceAccounts.getAccessToken".to_owned(),
    ] {
        assert!(said.contains(&named), "`{named}` missing from: {said}");
    }
    assert_eq!(said.trim().lines().count(), 1, "one line: {said}");
    assert_eq!(iam.requests().len(), 1, "a refusal is not retried");
}

/// What Google's chain tries, in ADC's order, and what fixes it.
const GOOGLE_SOURCES: [&str; 4] = [
    "GOOGLE_APPLICATION_CREDENTIALS (not set)",
    "gcloud's ADC file (none at",
    "the metadata server at 127.0.0.1:",
    "gcloud auth application-default login",
];

#[test]
fn no_adc_and_a_closed_or_blackholed_metadata_port_fail_within_two_seconds() {
    let closed = format!("127.0.0.1:{}", free_port());
    assert_fails_fast(
        &Env::new(),
        "mode = \"google\"\n",
        &[("GCE_METADATA_HOST", &closed)],
        &GOOGLE_SOURCES,
        "closed metadata port",
    );
    // Accepts connections (the kernel completes them) and never answers.
    let blackhole = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = blackhole.local_addr().expect("addr").port();
    assert_fails_fast(
        &Env::new(),
        "mode = \"google\"\n",
        &[("GCE_METADATA_HOST", &format!("127.0.0.1:{port}"))],
        &GOOGLE_SOURCES,
        "blackholed metadata port",
    );
    drop(blackhole);
}

//! Azure chain mode: an ACR registry with no stored credential, through `azure_identity` inside
//! coffer against loopback fixtures. AAD is served over HTTPS with a certificate from a CA made
//! per test (the SDK takes no plain-HTTP authority host), which coffer trusts through
//! `SSL_CERT_FILE`; each fixture checks what the SDK sends, and an htpasswd registry holding
//! exactly the minted refresh token checks what coffer hands out.
//!
//! The VM metadata address is fixed in the SDK (`http://169.254.169.254`, no variable moves it),
//! so it is reached the way a node behind a proxy reaches it: through `HTTP_PROXY`, here a
//! loopback fixture, else a closed loopback port, so that no test ever asks a real metadata
//! service.

use std::collections::BTreeMap;
use std::net::TcpListener;
use std::time::SystemTime;

use super::azure::{CLIENT_ID, TENANT, ZERO_GUID, acr_refresh_token};
use super::chain::{answer, assert_fails_fast, assert_on_no_disk};
use super::fixture::{Answer, Fixture, Request};
use super::service_accounts::accepted;
use super::{private_file, push_and_inspect_through_coffer, unix_now};
use crate::harness::{Env, Registry, Run, TestCa, bin, free_port};

const SCOPE: &str = "https://containerregistry.azure.net/.default";
/// What AAD (or a managed identity endpoint) answers: the exchange checks it comes back.
const AAD_TOKEN: &str = "aad-token-for-acr";
/// The projected service-account token of an AKS pod, as the kubelet writes it.
const FEDERATED_TOKEN: &str =
    "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJzeXN0ZW06c2VydmljZWFjY291bnQ6YXBwczp3ZWIifQ.c2lnbmF0dXJl";
const CLIENT_SECRET: &str = "chain~secret.value-77";
const IDENTITY_HEADER: &str = "app-service-identity-header";

fn aad_path() -> String {
    format!("/{TENANT}/oauth2/v2.0/token")
}

/// How the identity proves itself to AAD.
#[derive(Clone, Copy)]
enum Proof {
    /// Workload identity: the token file's content as a client assertion.
    Assertion(&'static str),
    ClientSecret(&'static str),
}

/// The registry's `/oauth2/exchange`: the AAD token for `refresh`, the registry's token.
fn exchange(request: &Request, service: &str, refresh: &str) -> Answer {
    let form = request.form();
    let field = |name: &str| form.get(name).map(String::as_str);
    let expected = (
        request.method == "POST",
        field("grant_type") == Some("access_token"),
        field("service") == Some(service),
        field("access_token") == Some(AAD_TOKEN),
    );
    if expected != (true, true, true, true) {
        return Err(format!("exchange form {form:?}"));
    }
    Ok((200, format!(r#"{{"refresh_token":"{refresh}"}}"#)))
}

/// AAD's token endpoint over HTTPS, checking the client-credentials grant for `CLIENT_ID` with
/// `proof`, and the registry's exchange beside it.
fn aad(ca: &TestCa, proof: Proof, service: String, refresh: String) -> Fixture {
    Fixture::start_tls(ca, move |request: &Request| -> Answer {
        if request.path == "/oauth2/exchange" {
            return exchange(request, &service, &refresh);
        }
        if request.method != "POST" || request.path != aad_path() {
            return Err(format!("{} {}", request.method, request.path));
        }
        let form = request.form();
        let field = |name: &str| form.get(name).map(String::as_str);
        let proven = match proof {
            Proof::Assertion(assertion) => {
                field("client_assertion") == Some(assertion)
                    && field("client_assertion_type")
                        == Some("urn:ietf:params:oauth:client-assertion-type:jwt-bearer")
            }
            Proof::ClientSecret(secret) => field("client_secret") == Some(secret),
        };
        let expected = (
            field("grant_type") == Some("client_credentials"),
            field("client_id") == Some(CLIENT_ID),
            field("scope") == Some(SCOPE),
            proven,
        );
        if expected != (true, true, true, true) {
            return Err(format!("AAD form {form:?}"));
        }
        Ok((
            200,
            format!(r#"{{"token_type":"Bearer","expires_in":3599,"access_token":"{AAD_TOKEN}"}}"#),
        ))
    })
}

/// The test CA's PEM in a file under the test's root, for `SSL_CERT_FILE`.
fn trust(env: &Env, ca: &TestCa) -> String {
    private_file(env, "test-ca.pem", &ca.pem())
}

/// The identity `vars` and where the metadata service is: `proxy` (a URL), else a closed port.
fn identity(vars: &[(&str, &str)], proxy: Option<&str>) -> Vec<(String, String)> {
    let closed = format!("http://127.0.0.1:{}", free_port());
    let mut all: Vec<(String, String)> = vars
        .iter()
        .map(|&(name, value)| (name.to_owned(), value.to_owned()))
        .collect();
    all.push(("HTTP_PROXY".into(), proxy.map_or(closed, str::to_owned)));
    // Loopback fixtures are reached directly; only the metadata address goes to the proxy.
    all.push(("NO_PROXY".into(), "127.0.0.1,localhost".into()));
    all
}

fn borrowed(vars: &[(String, String)]) -> Vec<(&str, &str)> {
    vars.iter().map(|(n, v)| (n.as_str(), v.as_str())).collect()
}

/// `get` through the helper with exactly `vars` added, as skopeo and docker run it with them:
/// the same environment is the same identity, so the same cached token.
fn get_with(env: &Env, vars: &[(&str, &str)], host: &str) -> Run {
    Run::of(
        env.command(bin("docker-credential-coffer"))
            .arg("get")
            .envs(vars.iter().copied()),
        host,
    )
}

/// `mode = "azure"` for `host` with no stored credential, and `extra` settings.
fn azure_registry(env: &Env, host: &str, extra: &str) {
    std::fs::write(
        env.coffer_home().join("config.toml"),
        format!("[registries.\"{host}\"]\nmode = \"azure\"\n{extra}"),
    )
    .expect("config");
}

fn refresh_token() -> String {
    acr_refresh_token(1, unix_now(), 3 * 3600)
}

#[test]
fn workload_identity_pulls_with_docker_and_skopeo_and_asks_aad_once() {
    let env = Env::new();
    let ca = TestCa::new();
    let refresh = refresh_token();
    let registry = Registry::htpasswd(ZERO_GUID, &refresh);
    let host = registry.host();
    let fixture = aad(
        &ca,
        Proof::Assertion(FEDERATED_TOKEN),
        host.clone(),
        refresh.clone(),
    );
    azure_registry(&env, &host, &format!("endpoint = \"{}\"\n", fixture.url()));
    let token_file = private_file(&env, "azure-identity-token", FEDERATED_TOKEN);
    let (ca_file, authority) = (trust(&env, &ca), fixture.url());
    let vars = identity(
        &[
            ("SSL_CERT_FILE", &ca_file),
            ("AZURE_FEDERATED_TOKEN_FILE", &token_file),
            ("AZURE_CLIENT_ID", CLIENT_ID),
            ("AZURE_TENANT_ID", TENANT),
            ("AZURE_AUTHORITY_HOST", &authority),
        ],
        None,
    );
    let vars = borrowed(&vars);
    assert_eq!(
        answer(&get_with(&env, &vars, &host)),
        (ZERO_GUID.to_owned(), refresh.clone())
    );
    assert_eq!(fixture.count(&aad_path()), 1);
    // A second get, in a new process, is answered from the cache.
    assert_eq!(answer(&get_with(&env, &vars, &host)).1, refresh);
    assert_eq!(fixture.count(&aad_path()), 1, "no new AAD call");
    let env = vars
        .iter()
        .fold(env, |env, (name, value)| env.with_var(name, value));
    push_and_inspect_through_coffer(&env, &registry);
    assert_eq!(
        fixture.count(&aad_path()),
        1,
        "every client's get was cached"
    );
    assert_eq!(fixture.count("/oauth2/exchange"), 1);
    fixture.assert_clean();
}

#[test]
fn a_client_secret_from_the_environment_goes_only_to_aad() {
    let started = SystemTime::now();
    let env = Env::new();
    let ca = TestCa::new();
    let refresh = refresh_token();
    let registry = Registry::htpasswd(ZERO_GUID, &refresh);
    let host = registry.host();
    let fixture = aad(
        &ca,
        Proof::ClientSecret(CLIENT_SECRET),
        host.clone(),
        refresh.clone(),
    );
    // The sovereign-cloud setting this time, rather than AZURE_AUTHORITY_HOST.
    azure_registry(
        &env,
        &host,
        &format!("authority = \"{0}\"\nendpoint = \"{0}\"\n", fixture.url()),
    );
    let ca_file = trust(&env, &ca);
    let vars = identity(
        &[
            ("SSL_CERT_FILE", &ca_file),
            ("AZURE_CLIENT_SECRET", CLIENT_SECRET),
            ("AZURE_CLIENT_ID", CLIENT_ID),
            ("AZURE_TENANT_ID", TENANT),
        ],
        None,
    );
    let run = get_with(&env, &borrowed(&vars), &host);
    assert_eq!(answer(&run), (ZERO_GUID.to_owned(), refresh.clone()));
    assert!(accepted(&registry, ZERO_GUID, &refresh));
    fixture.assert_clean();
    assert_eq!(fixture.count(&aad_path()), 1);
    run.hides(&[CLIENT_SECRET]);
    assert_on_no_disk(&env, started, CLIENT_SECRET);
}

/// Where a managed identity's token comes from.
#[derive(Clone, Copy)]
enum Endpoint {
    /// App Service's `IDENTITY_ENDPOINT`, which takes only requests with `IDENTITY_HEADER`.
    AppService,
    /// The VM's metadata service, behind the proxy that the fixture is: it sees absolute URLs.
    VirtualMachine,
}

impl Endpoint {
    /// The URL of its token endpoint as the request line names it.
    fn token_url(self) -> &'static str {
        match self {
            Endpoint::AppService => "/msi/token",
            Endpoint::VirtualMachine => "http://169.254.169.254/metadata/identity/oauth2/token",
        }
    }
}

/// A managed identity `endpoint`, checking what the SDK asks for: ACR's resource, and
/// `client_id` for a user-assigned identity (`None`: the system-assigned one, no `client_id`).
/// The registry's exchange is beside it.
fn managed_identity(
    endpoint: Endpoint,
    client_id: Option<&'static str>,
    service: String,
    refresh: String,
) -> Fixture {
    Fixture::start(move |request: &Request| -> Answer {
        if request.path == "/oauth2/exchange" {
            return exchange(request, &service, &refresh);
        }
        let (url, query) = request.path.split_once('?').unwrap_or((&request.path, ""));
        let query: BTreeMap<String, String> = url::form_urlencoded::parse(query.as_bytes())
            .into_owned()
            .collect();
        let query_field = |name: &str| query.get(name).map(String::as_str);
        let secret_header = request.header("x-identity-header");
        let expected = (
            request.method == "GET" && url == endpoint.token_url(),
            request.header("metadata") == Some("true"),
            match endpoint {
                Endpoint::AppService => secret_header == Some(IDENTITY_HEADER),
                Endpoint::VirtualMachine => secret_header.is_none(),
            },
            query_field("resource") == Some("https://containerregistry.azure.net"),
            query_field("client_id") == client_id,
        );
        if expected != (true, true, true, true, true) {
            return Err(format!(
                "{} {} {:?}",
                request.method, request.path, request.headers
            ));
        }
        Ok((
            200,
            format!(
                r#"{{"access_token":"{AAD_TOKEN}","expires_on":"{}","token_type":"Bearer","resource":"https://containerregistry.azure.net"}}"#,
                unix_now() + 3600
            ),
        ))
    })
}

#[test]
fn app_service_managed_identity_system_and_user_assigned() {
    let env = Env::new();
    let refresh = refresh_token();
    let registry = Registry::htpasswd(ZERO_GUID, &refresh);
    let host = registry.host();
    for client_id in [None, Some(CLIENT_ID)] {
        let fixture = managed_identity(
            Endpoint::AppService,
            client_id,
            host.clone(),
            refresh.clone(),
        );
        let user_assigned = client_id
            .map(|id| format!("client_id = \"{id}\"\n"))
            .unwrap_or_default();
        azure_registry(
            &env,
            &host,
            &format!("endpoint = \"{}\"\n{user_assigned}", fixture.url()),
        );
        let endpoint = format!("{}{}", fixture.url(), Endpoint::AppService.token_url());
        let vars = identity(
            &[
                ("IDENTITY_ENDPOINT", &endpoint),
                ("IDENTITY_HEADER", IDENTITY_HEADER),
            ],
            None,
        );
        let run = get_with(&env, &borrowed(&vars), &host);
        assert_eq!(answer(&run), (ZERO_GUID.to_owned(), refresh.clone()));
        fixture.assert_clean();
        assert_eq!(fixture.count("/oauth2/exchange"), 1, "{client_id:?}");
    }
    assert!(accepted(&registry, ZERO_GUID, &refresh));
}

#[test]
fn vm_managed_identity_through_an_http_proxy() {
    let env = Env::new();
    let refresh = refresh_token();
    let registry = Registry::htpasswd(ZERO_GUID, &refresh);
    let host = registry.host();
    let proxy = managed_identity(
        Endpoint::VirtualMachine,
        Some(CLIENT_ID),
        host.clone(),
        refresh.clone(),
    );
    azure_registry(
        &env,
        &host,
        &format!(
            "endpoint = \"{}\"\nclient_id = \"{CLIENT_ID}\"\n",
            proxy.url()
        ),
    );
    let vars = identity(&[], Some(&proxy.url()));
    let run = get_with(&env, &borrowed(&vars), &host);
    assert_eq!(answer(&run), (ZERO_GUID.to_owned(), refresh.clone()));
    proxy.assert_clean();
    assert!(accepted(&registry, ZERO_GUID, &refresh));
    let status = Run::of(
        env.command(bin("coffer"))
            .args(["token", "status"])
            .envs(borrowed(&vars)),
        "",
    );
    assert!(
        status.success().stdout().contains(&format!(
            "user-assigned managed identity {CLIENT_ID} from instance metadata"
        )),
        "{}",
        status.stdout()
    );
}

#[test]
fn no_identity_and_a_blackholed_metadata_service_fail_within_two_seconds() {
    let named = [
        "client secret (no AZURE_CLIENT_SECRET)",
        "workload identity (no AZURE_FEDERATED_TOKEN_FILE)",
        "system-assigned managed identity from instance metadata",
        "coffer login REGISTRY --mode azure",
    ];
    let azure = "mode = \"azure\"\n";
    let unreachable = identity(&[], None);
    assert_fails_fast(
        &Env::new(),
        azure,
        &borrowed(&unreachable),
        &named,
        "no metadata service",
    );
    // Accepts connections (the kernel completes them) and never answers.
    let blackhole = TcpListener::bind("127.0.0.1:0").expect("bind");
    let proxy = format!("http://{}", blackhole.local_addr().expect("addr"));
    let blackholed = identity(&[], Some(&proxy));
    assert_fails_fast(
        &Env::new(),
        azure,
        &borrowed(&blackholed),
        &named,
        "blackholed metadata service",
    );
    // App Service's identity endpoint is a metadata probe too: the same bound.
    let endpoint = format!("{proxy}/msi/token");
    let app_service = identity(
        &[
            ("IDENTITY_ENDPOINT", &endpoint),
            ("IDENTITY_HEADER", IDENTITY_HEADER),
        ],
        None,
    );
    assert_fails_fast(
        &Env::new(),
        azure,
        &borrowed(&app_service),
        &[
            &format!("system-assigned managed identity at {endpoint} (no answer within"),
            "coffer login REGISTRY --mode azure",
        ],
        "blackholed App Service identity endpoint",
    );
}

//! Azure against a local fixture playing both AAD (client-credentials grant) and the registry's
//! `/oauth2/exchange`, checking every form field and answering a JWT refresh token whose `exp`
//! the test chooses.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64ct::{Base64UrlUnpadded, Encoding};

use super::fixture::{Answer, Fixture, Request};
use super::{get, private_file, push_and_inspect_through_coffer, quick_margins, unix_now};
use crate::harness::{Env, Registry};

pub(super) const TENANT: &str = "72f988bf-86f1-41af-91ab-2d7cd011db47";
pub(super) const CLIENT_ID: &str = "0d3f6b4e-1c55-4f3c-9a8e-2b7c41b3b1a2";
const CLIENT_SECRET: &str = "sp~secret.value-42";
pub(super) const ZERO_GUID: &str = "00000000-0000-0000-0000-000000000000";

/// An unsigned JWT with the given times: ACR's refresh tokens are JWTs coffer reads `exp` from.
pub(super) fn acr_refresh_token(serial: u32, issued: u64, lifetime: u64) -> String {
    format!(
        "{}.{}.c2lnbmF0dXJl",
        Base64UrlUnpadded::encode_string(br#"{"alg":"RS256","typ":"JWT"}"#),
        Base64UrlUnpadded::encode_string(
            format!(
                r#"{{"jti":"{serial}","iat":{issued},"exp":{},"iss":"Azure Container Registry"}}"#,
                issued + lifetime
            )
            .as_bytes()
        )
    )
}

/// AAD at `/<tenant>/oauth2/v2.0/token` and the registry's exchange at `/oauth2/exchange`.
/// `refresh` makes the n-th refresh token.
fn acr_fixture(service: String, refresh: impl Fn(u32) -> String + Send + 'static) -> Fixture {
    let mut aad_minted = 0;
    let mut exchanged = 0;
    let issued_aad = Arc::new(Mutex::new(Vec::<String>::new()));
    Fixture::start(move |request: &Request| -> Answer {
        let form = request.form();
        let field = |name: &str| form.get(name).map(String::as_str);
        if request.method != "POST" {
            return Err(format!("{} {}", request.method, request.path));
        }
        if request.path == format!("/{TENANT}/oauth2/v2.0/token") {
            let expected = (
                field("grant_type") == Some("client_credentials"),
                field("client_id") == Some(CLIENT_ID),
                field("client_secret") == Some(CLIENT_SECRET),
                field("scope") == Some("https://containerregistry.azure.net/.default"),
            );
            if expected != (true, true, true, true) {
                return Err(format!("AAD form {form:?}"));
            }
            aad_minted += 1;
            let token = format!("aad-access-{aad_minted}");
            issued_aad.lock().expect("lock").push(token.clone());
            return Ok((
                200,
                format!(r#"{{"token_type":"Bearer","expires_in":3599,"access_token":"{token}"}}"#),
            ));
        }
        if request.path == "/oauth2/exchange" {
            let known = field("access_token").is_some_and(|t| {
                issued_aad.lock().expect("lock").iter().any(|i| i == t) || t == "given-aad-token"
            });
            let expected = (
                field("grant_type") == Some("access_token"),
                field("service") == Some(service.as_str()),
                field("tenant") == Some(TENANT),
                known,
            );
            if expected != (true, true, true, true) {
                return Err(format!("exchange form {form:?}"));
            }
            exchanged += 1;
            return Ok((
                200,
                format!(r#"{{"refresh_token":"{}"}}"#, refresh(exchanged)),
            ));
        }
        Err(format!("unexpected path {}", request.path))
    })
}

fn login_azure(
    env: &Env,
    host: &str,
    fixture: &Fixture,
    username: &str,
    secret: &str,
) -> crate::harness::Run {
    let secret_file = private_file(env, "azure-secret", secret);
    env.coffer(&[
        "login",
        host,
        "--mode",
        "azure",
        "--set",
        &format!("tenant={TENANT}"),
        "--set",
        &format!("authority={}", fixture.url()),
        "--set",
        &format!("endpoint={}", fixture.url()),
        "--username",
        username,
        "--secret-file",
        &secret_file,
    ])
}

#[test]
fn a_service_principal_is_exchanged_and_the_refresh_token_renews_by_its_exp() {
    let env = Env::new();
    quick_margins(&env);
    let host = "127.0.0.1:5999";
    let fixture = acr_fixture(host.to_owned(), |n| acr_refresh_token(n, unix_now(), 4));
    let run = login_azure(&env, host, &fixture, CLIENT_ID, CLIENT_SECRET);
    assert!(
        run.success()
            .stdout()
            .contains("a token from azure, expires in"),
        "{}",
        run.stdout()
    );
    let (user, first) = get(&env, host);
    assert_eq!(user, ZERO_GUID);
    assert!(first.contains(&Base64UrlUnpadded::encode_string(br#"{"jti":"1""#)[..8]));
    assert_eq!(get(&env, host), (ZERO_GUID.into(), first.clone()));
    assert_eq!(fixture.count("/oauth2/exchange"), 1);
    std::thread::sleep(Duration::from_millis(2100));
    let (_, second) = get(&env, host);
    assert_ne!(second, first, "renewed at half of its 4 s");
    assert_eq!(fixture.count("/oauth2/exchange"), 2);
    assert_eq!(fixture.count(&format!("/{TENANT}/oauth2/v2.0/token")), 2);
    fixture.assert_clean();
    std::fs::remove_file(env.root().join("azure-secret")).expect("rm");
    assert!(env.files_containing(CLIENT_SECRET).is_empty());
}

#[test]
fn a_given_aad_access_token_goes_straight_to_the_exchange() {
    let env = Env::new();
    let host = "127.0.0.1:5999";
    let fixture = acr_fixture(host.to_owned(), |n| {
        acr_refresh_token(n, unix_now(), 3 * 3600)
    });
    login_azure(&env, host, &fixture, "aad-token", "given-aad-token\n").success();
    let (user, _) = get(&env, host);
    assert_eq!(user, ZERO_GUID);
    assert_eq!(fixture.count(&format!("/{TENANT}/oauth2/v2.0/token")), 0);
    assert_eq!(fixture.count("/oauth2/exchange"), 1);
    let status = env.coffer(&["token", "status", "--json"]);
    let rows: serde_json::Value = serde_json::from_str(&status.success().stdout()).expect("json");
    let lifetime =
        rows[0]["expires_at"].as_u64().expect("exp") - rows[0]["issued_at"].as_u64().expect("iat");
    assert_eq!(lifetime, 3 * 3600, "the refresh token's own exp");
    fixture.assert_clean();
}

#[test]
fn a_rejected_service_principal_is_a_clear_error() {
    let env = Env::new();
    let fixture = Fixture::start(|_: &Request| -> Answer {
        Ok((401, r#"{"error":"invalid_client","error_description":"AADSTS7000215: Invalid client secret provided."}"#.into()))
    });
    let run = login_azure(&env, "127.0.0.1:5999", &fixture, CLIENT_ID, "wrong-secret");
    assert_eq!(run.code(), Some(1));
    assert!(run.stderr().contains("invalid_client"), "{}", run.stderr());
    assert!(!run.stderr().contains("wrong-secret"));
    let get = env.helper("get", "127.0.0.1:5999");
    get.failure();
    assert!(!get.stdout().contains("wrong-secret"), "{}", get.stdout());
}

#[test]
fn end_to_end_skopeo_and_docker_use_the_acr_refresh_token() {
    let token = acr_refresh_token(1, unix_now(), 3 * 3600);
    let registry = Registry::htpasswd(ZERO_GUID, &token);
    let env = Env::new();
    let answer = token.clone();
    let fixture = acr_fixture(registry.host(), move |_| answer.clone());
    login_azure(&env, &registry.host(), &fixture, CLIENT_ID, CLIENT_SECRET).success();
    push_and_inspect_through_coffer(&env, &registry);
    assert_eq!(fixture.count("/oauth2/exchange"), 1);
    fixture.assert_clean();
}

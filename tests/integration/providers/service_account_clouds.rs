//! The cloud exchanges of a pod's service-account token: AWS STS AssumeRoleWithWebIdentity and
//! ECR at moto, Google STS through a workload identity pool and Azure's federated client
//! assertion at loopback fixtures that verify the token against the cluster issuer's JWKS. Each
//! credential is then checked by an htpasswd registry holding exactly what was minted.

use std::collections::BTreeMap;
use std::process::{Child, Command, Stdio};

use base64ct::{Base64, Base64UrlUnpadded, Encoding};

use super::fixture::{Answer, Fixture, Request};
use super::service_accounts::{
    Issuer, ROLE_KEY, accepted, provide, provide_with, request, runtime_uses, verify,
};
use super::{private_file, unix_now};
use crate::harness::{Env, Registry, TestCa, free_port, require, wait_for_port};

const ROLE: &str = "arn:aws:iam::123456789012:role/pull-web";
/// moto's ECR password for its default account.
const MOTO_PASSWORD: &str = "123456789012-auth-token";
const POOL: &str = "//iam.googleapis.com/projects/123456789/locations/global/workloadIdentityPools/k8s/providers/cluster";
const TENANT: &str = "72f988bf-86f1-41af-91ab-2d7cd011db47";
const CLIENT_ID: &str = "0d3f6b4e-1c55-4f3c-9a8e-2b7c41b3b1a2";
const ZERO_GUID: &str = "00000000-0000-0000-0000-000000000000";

fn write_config(env: &Env, registry: &str, section: &str) {
    std::fs::write(
        env.coffer_home().join("config.toml"),
        format!(
            "[kubelet]\naudience = \"coffer\"\nfallback = \"none\"\n\n[kubelet.registries.\"{registry}\"]\n{section}"
        ),
    )
    .expect("config");
}

/// moto's server recording every request. Its signature-checking mode cannot take the unsigned
/// AssumeRoleWithWebIdentity call (it needs an Authorization header on every request), so the
/// test checks the recorded calls instead.
struct Moto {
    port: u16,
    child: Child,
    recording: std::path::PathBuf,
}

impl Moto {
    fn start(env: &Env) -> Moto {
        require("moto_server");
        let port = free_port();
        let recording = env.root().join("moto.jsonl");
        let mut child = Command::new("moto_server")
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .env("MOTO_ENABLE_RECORDING", "true")
            .env("MOTO_RECORDER_FILEPATH", &recording)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start moto_server");
        wait_for_port(port, &mut child, "moto_server");
        Moto {
            port,
            child,
            recording,
        }
    }

    /// Every recorded request: (headers, form body).
    fn calls(&self) -> Vec<(serde_json::Value, BTreeMap<String, String>)> {
        std::fs::read_to_string(&self.recording)
            .unwrap_or_default()
            .lines()
            .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
            .map(|r| {
                let body = r["body"].as_str().unwrap_or_default();
                let bytes = if r["body_encoded"] == true {
                    Base64::decode_vec(body).unwrap_or_default()
                } else {
                    body.as_bytes().to_vec()
                };
                let form = url::form_urlencoded::parse(&bytes)
                    .map(|(k, v)| (k.into_owned(), v.into_owned()))
                    .collect();
                (r["headers"].clone(), form)
            })
            .collect()
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn ecr_through_assume_role_with_web_identity_at_moto() {
    let env = Env::new();
    let issuer = Issuer::start();
    let moto = Moto::start(&env);
    let registry = Registry::htpasswd("AWS", MOTO_PASSWORD);
    let host = registry.host();
    write_config(
        &env,
        &host,
        &format!(
            "exchange = \"aws\"\nallowed = [\"arn:aws:iam::123456789012:role/pull-*\"]\nregion = \"eu-west-1\"\nendpoint = \"http://127.0.0.1:{}\"\n",
            moto.port
        ),
    );
    let token = issuer.token("apps", "web", 600);
    let (code, answer, stderr) = provide(
        &env,
        &request(
            &format!("{host}/team/app:1"),
            Some(&token),
            serde_json::json!({ROLE_KEY: ROLE}),
        ),
    );
    assert_eq!(code, Some(0), "{stderr}");
    assert_eq!(answer["auth"][&host]["username"], "AWS");
    assert_eq!(answer["auth"][&host]["password"], MOTO_PASSWORD);
    assert!(accepted(&registry, "AWS", MOTO_PASSWORD));
    runtime_uses(&env, &format!("{host}/team/app:1"), &answer, &host);
    assert!(stderr.contains(ROLE), "{stderr}");

    let calls = moto.calls();
    let assumed: Vec<_> = calls
        .iter()
        .filter(|(_, form)| {
            form.get("Action").map(String::as_str) == Some("AssumeRoleWithWebIdentity")
        })
        .collect();
    assert_eq!(assumed.len(), 1, "{calls:?}");
    let form = &assumed[0].1;
    assert_eq!(form.get("RoleArn").map(String::as_str), Some(ROLE));
    let sent = form.get("WebIdentityToken").expect("the pod's token");
    assert_eq!(sent, &token);
    verify(&issuer.fixture.url(), sent).expect("what STS got verifies with the issuer's JWKS");
    let ecr: Vec<_> = calls
        .iter()
        .filter(|(headers, _)| {
            headers["X-Amz-Target"] == "AmazonEC2ContainerRegistry_V20150921.GetAuthorizationToken"
        })
        .collect();
    assert_eq!(ecr.len(), 1);
    let authorization = ecr[0].0["Authorization"].as_str().expect("signed");
    assert!(
        authorization.contains("Credential=ASIA") && ecr[0].0["X-Amz-Security-Token"].is_string(),
        "signed with the role's temporary keys from STS: {authorization}"
    );
}

#[test]
fn artifact_registry_through_a_workload_identity_pool() {
    let env = Env::new();
    let issuer = Issuer::start();
    let issuer_url = issuer.fixture.url();
    let sts = Fixture::start(move |request: &Request| -> Answer {
        let form = request.form();
        let field = |name: &str| form.get(name).map(String::as_str);
        let expected = (
            request.path == "/v1/token",
            field("grant_type") == Some("urn:ietf:params:oauth:grant-type:token-exchange"),
            field("audience") == Some(POOL),
            field("subject_token_type") == Some("urn:ietf:params:oauth:token-type:jwt"),
        );
        if expected != (true, true, true, true) {
            return Err(format!("STS {} {form:?}", request.path));
        }
        let claims = verify(
            &issuer_url,
            field("subject_token").ok_or("no subject_token")?,
        )?;
        let account = claims["sub"].as_str().ok_or("sub")?.replace(':', "-");
        Ok((
            200,
            format!(
                r#"{{"access_token":"ya29.{account}","issued_token_type":"urn:ietf:params:oauth:token-type:access_token","token_type":"Bearer","expires_in":3600}}"#
            ),
        ))
    });
    let minted = "ya29.system-serviceaccount-apps-web";
    let registry = Registry::htpasswd("oauth2accesstoken", minted);
    let host = registry.host();
    write_config(
        &env,
        &host,
        &format!(
            "exchange = \"google\"\nworkload_identity_provider = \"{POOL}\"\ntoken_url = \"{}/v1/token\"\nallowed = [\"puller@project.iam.gserviceaccount.com\"]\n",
            sts.url()
        ),
    );
    let image = format!("{host}/team/app:1");
    let (code, answer, stderr) = provide(
        &env,
        &request(
            &image,
            Some(&issuer.token("apps", "web", 900)),
            serde_json::json!({}),
        ),
    );
    assert_eq!(code, Some(0), "{stderr}");
    assert_eq!(answer["auth"][&host]["username"], "oauth2accesstoken");
    assert_eq!(answer["auth"][&host]["password"], minted);
    assert!(accepted(&registry, "oauth2accesstoken", minted));
    runtime_uses(&env, &image, &answer, &host);

    let (code, answer, stderr) = provide(
        &env,
        &request(
            &image,
            Some(&issuer.token("apps", "web", 900)),
            serde_json::json!({"coffer.dev/gcp-service-account": "owner@project.iam.gserviceaccount.com"}),
        ),
    );
    assert_eq!(code, Some(1));
    assert_eq!(answer["auth"], serde_json::json!({}));
    assert!(stderr.contains("owner@project"), "{stderr}");
    assert_eq!(
        sts.count("/v1/token"),
        1,
        "a disallowed account is never exchanged"
    );
    sts.assert_clean();
}

#[test]
fn acr_through_a_federated_client_assertion() {
    let env = Env::new();
    // azure_identity takes only an HTTPS authority: AAD (and the exchange beside it) behind TLS
    // with a CA of this test's, which the provider trusts through SSL_CERT_FILE.
    let ca = TestCa::new();
    let ca_file = private_file(&env, "test-ca.pem", &ca.pem());
    let issuer = Issuer::start();
    let issuer_url = issuer.fixture.url();
    let now = unix_now();
    let refresh = format!(
        "{}.{}.c2ln",
        Base64UrlUnpadded::encode_string(br#"{"alg":"RS256","typ":"JWT"}"#),
        Base64UrlUnpadded::encode_string(
            format!(
                r#"{{"iat":{now},"exp":{},"iss":"Azure Container Registry"}}"#,
                now + 3 * 3600
            )
            .as_bytes()
        )
    );
    let registry = Registry::htpasswd(ZERO_GUID, &refresh);
    let host = registry.host();
    let answer = refresh.clone();
    let service = host.clone();
    let aad = Fixture::start_tls(&ca, move |request: &Request| -> Answer {
        let form = request.form();
        let field = |name: &str| form.get(name).map(String::as_str);
        if request.path == format!("/{TENANT}/oauth2/v2.0/token") {
            let expected = (
                field("grant_type") == Some("client_credentials"),
                field("client_id") == Some(CLIENT_ID),
                field("client_assertion_type")
                    == Some("urn:ietf:params:oauth:client-assertion-type:jwt-bearer"),
                field("scope") == Some("https://containerregistry.azure.net/.default"),
            );
            if expected != (true, true, true, true) {
                return Err(format!("AAD form {form:?}"));
            }
            verify(
                &issuer_url,
                field("client_assertion").ok_or("no assertion")?,
            )?;
            return Ok((
                200,
                r#"{"token_type":"Bearer","expires_in":3599,"access_token":"aad-for-pod"}"#.into(),
            ));
        }
        if request.path == "/oauth2/exchange" {
            let expected = (
                field("grant_type") == Some("access_token"),
                field("service") == Some(service.as_str()),
                field("access_token") == Some("aad-for-pod"),
            );
            if expected != (true, true, true) {
                return Err(format!("exchange form {form:?}"));
            }
            return Ok((200, format!(r#"{{"refresh_token":"{answer}"}}"#)));
        }
        Err(format!("{} {}", request.method, request.path))
    });
    write_config(
        &env,
        &host,
        &format!(
            "exchange = \"azure\"\ntenant = \"{TENANT}\"\nauthority = \"{0}\"\nendpoint = \"{0}\"\nallowed = [\"{CLIENT_ID}\"]\n",
            aad.url()
        ),
    );
    let (code, response, stderr) = provide_with(
        &env,
        &request(
            &format!("{host}/team/app:1"),
            Some(&issuer.token("apps", "web", 600)),
            serde_json::json!({"coffer.dev/azure-client-id": CLIENT_ID}),
        ),
        &[("SSL_CERT_FILE", &ca_file)],
    );
    assert_eq!(code, Some(0), "{stderr}");
    assert_eq!(response["auth"][&host]["username"], ZERO_GUID);
    assert_eq!(response["auth"][&host]["password"], refresh.as_str());
    assert!(accepted(&registry, ZERO_GUID, &refresh));
    runtime_uses(&env, &format!("{host}/team/app:1"), &response, &host);
    aad.assert_clean();
}

//! KEP-4412: a 1.34 kubelet hands the provider the pod's service-account token. A loopback OIDC
//! issuer (discovery document and JWKS) signs the tokens; a federation endpoint, standing for a
//! registry that trusts the cluster's issuer, verifies each one against that JWKS and mints a
//! password per service account; the exec exchange hands it the token on stdin; the loopback
//! registry's htpasswd holds exactly what was minted.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use base64ct::{Base64, Base64UrlUnpadded, Encoding};
use rsa::pkcs1v15::{Signature, SigningKey, VerifyingKey};
use rsa::signature::{SignatureEncoding, Signer, Verifier};
use rsa::traits::PublicKeyParts;
use rsa::{BigUint, RsaPrivateKey, RsaPublicKey};
use sha2::Sha256;

use super::fixture::{Answer, Fixture, Request};
use super::unix_now;
use crate::harness::{Env, Registry, Run, bin, require, skopeo_push};

const AUDIENCE: &str = "coffer";
const KID: &str = "cluster-key-1";
pub(crate) const ROLE_KEY: &str = "coffer.dev/aws-role-arn";

/// The cluster's service-account issuer: discovery, JWKS, and tokens signed with its key.
pub(crate) struct Issuer {
    pub(crate) fixture: Fixture,
    key: RsaPrivateKey,
}

impl Issuer {
    pub(crate) fn start() -> Issuer {
        let key = RsaPrivateKey::new(&mut rsa::rand_core::OsRng, 2048).expect("rsa key");
        let public = key.to_public_key();
        let base = Arc::new(Mutex::new(String::new()));
        let url = base.clone();
        let fixture = Fixture::start(move |request: &Request| -> Answer {
            let issuer = url.lock().expect("lock").clone();
            match (request.method.as_str(), request.path.as_str()) {
                ("GET", "/.well-known/openid-configuration") => Ok((
                    200,
                    serde_json::json!({
                        "issuer": issuer,
                        "jwks_uri": format!("{issuer}/openid/v1/jwks"),
                        "response_types_supported": ["id_token"],
                        "subject_types_supported": ["public"],
                        "id_token_signing_alg_values_supported": ["RS256"],
                    })
                    .to_string(),
                )),
                ("GET", "/openid/v1/jwks") => Ok((
                    200,
                    serde_json::json!({"keys": [{
                        "kty": "RSA", "alg": "RS256", "use": "sig", "kid": KID,
                        "n": Base64UrlUnpadded::encode_string(&public.n().to_bytes_be()),
                        "e": Base64UrlUnpadded::encode_string(&public.e().to_bytes_be()),
                    }]})
                    .to_string(),
                )),
                (method, path) => Err(format!("issuer: {method} {path}")),
            }
        });
        *base.lock().expect("lock") = fixture.url();
        Issuer { fixture, key }
    }

    /// The public half of the signing key, as PEM (what OpenBao's `jwt` and `kubernetes` auth
    /// take as the cluster's key).
    pub(crate) fn public_pem(&self) -> String {
        use rsa::pkcs8::{EncodePublicKey, LineEnding};
        self.key
            .to_public_key()
            .to_public_key_pem(LineEnding::LF)
            .expect("pem")
    }

    /// A bound service-account token as the kubelet requests it for a pod.
    pub(crate) fn token(&self, namespace: &str, name: &str, lifetime: u64) -> String {
        let now = unix_now();
        let header = serde_json::json!({"alg": "RS256", "kid": KID});
        let claims = serde_json::json!({
            "aud": [AUDIENCE],
            "exp": now + lifetime,
            "iat": now,
            "nbf": now,
            "iss": self.fixture.url(),
            "sub": format!("system:serviceaccount:{namespace}:{name}"),
            "kubernetes.io": {
                "namespace": namespace,
                "serviceaccount": {"name": name, "uid": format!("uid-{name}")},
                "pod": {"name": format!("{name}-7d9f"), "uid": format!("pod-{name}")},
            },
        });
        let signing_input = format!(
            "{}.{}",
            Base64UrlUnpadded::encode_string(header.to_string().as_bytes()),
            Base64UrlUnpadded::encode_string(claims.to_string().as_bytes())
        );
        let signature = SigningKey::<Sha256>::new(self.key.clone()).sign(signing_input.as_bytes());
        format!(
            "{signing_input}.{}",
            Base64UrlUnpadded::encode_string(&signature.to_bytes())
        )
    }
}

/// A registry's federation endpoint: verifies a service-account token against the issuer's
/// JWKS, fetched the way any relying party fetches it, and answers that account's password.
fn federation(issuer: String, passwords: BTreeMap<String, String>) -> Fixture {
    Fixture::start(move |request: &Request| -> Answer {
        if request.method != "POST" || request.path != "/exchange" {
            return Err(format!("federation: {} {}", request.method, request.path));
        }
        let token = std::str::from_utf8(&request.body).map_err(|e| e.to_string())?;
        let claims = verify(&issuer, token)?;
        let sub = claims["sub"].as_str().ok_or("no sub")?;
        match passwords.get(sub) {
            Some(password) => Ok((200, password.clone())),
            None => Ok((403, format!(r#"{{"error":"{sub} may not pull"}}"#))),
        }
    })
}

pub(crate) fn verify(issuer: &str, token: &str) -> Result<serde_json::Value, String> {
    let get = |url: &str| -> Result<serde_json::Value, String> {
        let text = reqwest::blocking::get(url)
            .and_then(|r| r.text())
            .map_err(|e| e.to_string())?;
        serde_json::from_str(&text).map_err(|e| e.to_string())
    };
    let discovery = get(&format!("{issuer}/.well-known/openid-configuration"))?;
    let jwks = get(discovery["jwks_uri"].as_str().ok_or("no jwks_uri")?)?;
    let parts: Vec<&str> = token.split('.').collect();
    let [header, claims, signature] = parts[..] else {
        return Err("not a JWT".into());
    };
    let decode = |part: &str| Base64UrlUnpadded::decode_vec(part).map_err(|e| e.to_string());
    let header: serde_json::Value =
        serde_json::from_slice(&decode(header)?).map_err(|e| e.to_string())?;
    let jwk = jwks["keys"]
        .as_array()
        .and_then(|keys| keys.iter().find(|k| k["kid"] == header["kid"]))
        .ok_or("no key with that kid")?;
    let number = |field: &str| -> Result<BigUint, String> {
        Ok(BigUint::from_bytes_be(&decode(
            jwk[field].as_str().ok_or(field.to_owned())?,
        )?))
    };
    let public = RsaPublicKey::new(number("n")?, number("e")?).map_err(|e| e.to_string())?;
    let signature =
        Signature::try_from(decode(signature)?.as_slice()).map_err(|e| e.to_string())?;
    let signing_input = &token[..token.rfind('.').expect("two dots")];
    VerifyingKey::<Sha256>::new(public)
        .verify(signing_input.as_bytes(), &signature)
        .map_err(|_| "the signature does not verify with the issuer's JWKS".to_owned())?;
    let claims: serde_json::Value =
        serde_json::from_slice(&decode(claims)?).map_err(|e| e.to_string())?;
    let fresh = claims["exp"].as_u64().is_some_and(|exp| exp > unix_now());
    if claims["iss"] != issuer || claims["aud"][0] != AUDIENCE || !fresh {
        return Err(format!("claims {claims}"));
    }
    Ok(claims)
}

pub(crate) fn request(image: &str, token: Option<&str>, annotations: serde_json::Value) -> String {
    let mut request = serde_json::json!({
        "kind": "CredentialProviderRequest",
        "apiVersion": "credentialprovider.kubelet.k8s.io/v1",
        "image": image,
    });
    if let Some(token) = token {
        request["serviceAccountToken"] = token.into();
        request["serviceAccountAnnotations"] = annotations;
    }
    request.to_string()
}

/// Runs the provider: (exit code, response, stderr).
pub(crate) fn provide(env: &Env, input: &str) -> (Option<i32>, serde_json::Value, String) {
    provide_with(env, input, &[])
}

/// As [`provide`], with `vars` in the provider's environment (the kubelet passes the `env` of
/// its CredentialProviderConfig entry on).
pub(crate) fn provide_with(
    env: &Env,
    input: &str,
    vars: &[(&str, &str)],
) -> (Option<i32>, serde_json::Value, String) {
    let run = Run::of(
        env.command(bin("coffer"))
            .arg("kubelet-credential-provider")
            .envs(vars.iter().copied()),
        input,
    );
    let response = serde_json::from_str(&run.stdout()).unwrap_or(serde_json::Value::Null);
    (run.code(), response, run.stderr())
}

/// The node's config.toml: `registry` federates through `federation`; an ECR registry allows
/// only the `pull-*` roles.
fn configure(env: &Env, registry: &str, federation: &Fixture, extra: &str) {
    let config = format!(
        r#"[kubelet]
audience = "{AUDIENCE}"
{extra}
[kubelet.registries."{registry}"]
exchange = "exec"
command = ["curl", "-sSf", "--data-binary", "@-", "{}/exchange"]
username = "pod"
lifetime = "1h"

[kubelet.registries."123456789012.dkr.ecr.eu-west-1.amazonaws.com"]
exchange = "aws"
allowed = ["arn:aws:iam::123456789012:role/pull-*"]
region = "eu-west-1"
"#,
        federation.url()
    );
    std::fs::write(env.coffer_home().join("config.toml"), config).expect("config");
}

/// What the container runtime does with the kubelet's credentials: skopeo pushes and inspects
/// `image` with exactly the username and password of the provider's answer.
pub(crate) fn runtime_uses(env: &Env, image: &str, answer: &serde_json::Value, registry: &str) {
    let auth = &answer["auth"][registry];
    let pair = format!(
        "{}:{}",
        auth["username"].as_str().expect("username"),
        auth["password"].as_str().expect("password")
    );
    let authfile = env.root().join("kubelet-auth.json");
    env.write_private(
        &authfile,
        &serde_json::json!({"auths": {registry: {"auth": Base64::encode_string(pair.as_bytes())}}})
            .to_string(),
    );
    let authfile = authfile.to_str().expect("utf-8");
    skopeo_push(env, &mut env.command("skopeo"), authfile, image);
    let inspect = Run::of(
        env.command("skopeo").args([
            "inspect",
            "--tls-verify=false",
            "--authfile",
            authfile,
            &format!("docker://{image}"),
        ]),
        "",
    );
    assert!(inspect.success().stdout().contains("\"Digest\""));
}

/// Does the registry take this username and password?
pub(crate) fn accepted(registry: &Registry, username: &str, password: &str) -> bool {
    reqwest::blocking::Client::new()
        .get(format!("http://{}/v2/", registry.host()))
        .basic_auth(username, Some(password))
        .send()
        .expect("registry")
        .status()
        .is_success()
}

#[test]
fn each_pod_pulls_with_its_own_service_account_and_never_anothers() {
    require("curl");
    let env = Env::new();
    let issuer = Issuer::start();
    let web = "web-5b1f0c-minted".to_owned();
    let batch = "batch-9e24aa-minted".to_owned();
    let federation = federation(
        issuer.fixture.url(),
        BTreeMap::from([
            ("system:serviceaccount:apps:web".to_owned(), web.clone()),
            ("system:serviceaccount:jobs:batch".to_owned(), batch.clone()),
        ]),
    );
    let registry = Registry::htpasswd("pod", &web);
    let host = registry.host();
    configure(&env, &host, &federation, "");
    let image = format!("{host}/team/app:1");

    let web_token = issuer.token("apps", "web", 600);
    let (code, answer, stderr) = provide(
        &env,
        &request(&image, Some(&web_token), serde_json::json!({})),
    );
    assert_eq!(code, Some(0), "{stderr}");
    assert_eq!(answer["cacheKeyType"], "Registry");
    assert_eq!(answer["auth"][&host]["username"], "pod");
    assert_eq!(answer["auth"][&host]["password"], web.as_str());
    let cached: u64 = answer["cacheDuration"]
        .as_str()
        .and_then(|d| d.strip_suffix('s'))
        .and_then(|d| d.parse().ok())
        .expect("cacheDuration in seconds");
    assert!(
        (590..=600).contains(&cached),
        "never cached past the pod's token (600 s) nor half the credential's hour: {cached}"
    );
    assert!(stderr.contains("apps/web"), "{stderr}");
    assert!(!stderr.contains(&web_token) && !stderr.contains(&web));
    assert!(
        accepted(&registry, "pod", &web),
        "the registry takes what was minted"
    );
    runtime_uses(&env, &image, &answer, &host);

    // Another service account gets its own credential, which this registry does not take;
    // then the first one again: coffer keeps nothing that one account could get from another.
    let (code, other, _) = provide(
        &env,
        &request(
            &image,
            Some(&issuer.token("jobs", "batch", 600)),
            serde_json::json!({}),
        ),
    );
    assert_eq!(code, Some(0));
    assert_eq!(other["auth"][&host]["password"], batch.as_str());
    assert!(!accepted(&registry, "pod", &batch));
    let (_, again, _) = provide(
        &env,
        &request(&image, Some(&web_token), serde_json::json!({})),
    );
    assert_eq!(again["auth"][&host]["password"], web.as_str());
    assert_eq!(federation.count("/exchange"), 3, "one exchange per request");

    // An account the registry does not trust is refused there, and gets nothing here.
    let (code, stranger, stderr) = provide(
        &env,
        &request(
            &image,
            Some(&issuer.token("apps", "stranger", 600)),
            serde_json::json!({}),
        ),
    );
    assert_eq!(code, Some(1));
    assert_eq!(stranger["auth"], serde_json::json!({}));
    assert!(stderr.contains("apps/stranger"), "{stderr}");
    federation.assert_clean();
    issuer.fixture.assert_clean();

    let log = std::fs::read_to_string(env.coffer_home().join("access.log")).expect("access log");
    assert!(log.contains(&host) && log.contains("\"failed\""), "{log}");
    assert!(!log.contains(&web) && !log.contains(&web_token));
}

#[test]
fn a_disallowed_role_a_malformed_or_oversized_token_gets_no_auth() {
    let env = Env::new();
    let issuer = Issuer::start();
    let federation = federation(issuer.fixture.url(), BTreeMap::new());
    configure(&env, "127.0.0.1:5999", &federation, "");
    let ecr = "123456789012.dkr.ecr.eu-west-1.amazonaws.com/team/app:1";
    let token = issuer.token("apps", "web", 600);

    let (code, answer, stderr) = provide(
        &env,
        &request(
            ecr,
            Some(&token),
            serde_json::json!({ROLE_KEY: "arn:aws:iam::123456789012:role/admin"}),
        ),
    );
    assert_eq!(code, Some(1));
    assert_eq!(answer["auth"], serde_json::json!({}));
    assert_eq!(answer["cacheDuration"], "0s", "a refusal is not cached");
    assert!(
        stderr.contains("role/admin") && stderr.contains("do not allow"),
        "{stderr}"
    );
    let (code, _, stderr) = provide(&env, &request(ecr, Some(&token), serde_json::json!({})));
    assert_eq!(code, Some(1));
    assert!(stderr.contains(ROLE_KEY), "says which annotation: {stderr}");

    let image = "127.0.0.1:5999/team/app:1";
    let foreign = for_audience(&token, "sts.amazonaws.com");
    for (bad, why) in [
        ("not-a-jwt".to_owned(), "not a JWT"),
        (format!("{token}{}", "A".repeat(17 * 1024)), "bytes"),
        (foreign, "audience"),
        (issuer.token("apps", "web", 0), "expired"),
    ] {
        let (code, answer, stderr) =
            provide(&env, &request(image, Some(&bad), serde_json::json!({})));
        assert_eq!(code, Some(1), "{why}");
        assert_eq!(answer["auth"], serde_json::json!({}), "{why}");
        assert!(stderr.contains(why), "{why}: {stderr}");
        assert!(!stderr.contains(&bad[..40.min(bad.len())]), "never echoed");
    }
    assert_eq!(federation.count("/exchange"), 0, "nothing bad is sent on");
}

/// `token` with its audience replaced (its signature no longer matches, which only the issuer's
/// relying parties check: coffer must refuse it before any of them sees it).
fn for_audience(token: &str, audience: &str) -> String {
    let mut parts: Vec<String> = token.split('.').map(str::to_owned).collect();
    let mut claims: serde_json::Value =
        serde_json::from_slice(&Base64UrlUnpadded::decode_vec(&parts[1]).expect("b64"))
            .expect("claims");
    claims["aud"] = serde_json::json!([audience]);
    parts[1] = Base64UrlUnpadded::encode_string(claims.to_string().as_bytes());
    parts.join(".")
}

#[test]
fn without_an_audience_setting_only_tokens_for_coffer_are_exchanged() {
    require("curl");
    let env = Env::new();
    let issuer = Issuer::start();
    let password = "web-3c8d1e-minted".to_owned();
    let federation = federation(
        issuer.fixture.url(),
        BTreeMap::from([(
            "system:serviceaccount:apps:web".to_owned(),
            password.clone(),
        )]),
    );
    let host = "127.0.0.1:5998";
    configure(&env, host, &federation, "");
    // The node's config.toml names no audience.
    let path = env.coffer_home().join("config.toml");
    let config = std::fs::read_to_string(&path).expect("config");
    let without = config.replace(&format!("audience = \"{AUDIENCE}\"\n"), "");
    assert_ne!(config, without);
    std::fs::write(&path, without).expect("config");
    let image = format!("{host}/team/app:1");
    let token = issuer.token("apps", "web", 600);
    // A token the kubelet got for the API server, as a kubelet without tokenAttributes'
    // audience would pass on: never exchanged.
    let api_server = for_audience(&token, "https://kubernetes.default.svc.cluster.local");
    let (code, answer, stderr) = provide(
        &env,
        &request(&image, Some(&api_server), serde_json::json!({})),
    );
    assert_eq!(code, Some(1), "{stderr}");
    assert_eq!(answer["auth"], serde_json::json!({}));
    assert!(stderr.contains("audience \"coffer\""), "{stderr}");
    assert_eq!(federation.count("/exchange"), 0, "nothing is sent on");
    // One for coffer's default audience is.
    let (code, answer, stderr) =
        provide(&env, &request(&image, Some(&token), serde_json::json!({})));
    assert_eq!(code, Some(0), "{stderr}");
    assert_eq!(answer["auth"][host]["password"], password.as_str());
    assert_eq!(federation.count("/exchange"), 1);
}

#[test]
fn without_a_token_the_configured_fallback_answers_and_says_so() {
    let env = Env::new();
    let issuer = Issuer::start();
    let federation = federation(issuer.fixture.url(), BTreeMap::new());
    let host = "127.0.0.1:5999";
    configure(&env, host, &federation, "");
    crate::token_vault::store(&env, host, "node", "node-pw").success();
    let image = format!("{host}/team/app:1");

    let (code, answer, stderr) = provide(&env, &request(&image, None, serde_json::Value::Null));
    assert_eq!(code, Some(0));
    assert_eq!(answer["auth"][host]["password"], "node-pw");
    assert!(
        stderr.contains("no service-account token") && stderr.contains("fallback = \"node\""),
        "{stderr}"
    );

    configure(&env, host, &federation, "fallback = \"none\"");
    let (code, answer, stderr) = provide(&env, &request(&image, None, serde_json::Value::Null));
    assert_eq!(code, Some(0));
    assert_eq!(answer["auth"], serde_json::json!({}));
    assert!(stderr.contains("fallback = \"none\""), "{stderr}");
    assert_eq!(federation.count("/exchange"), 0);
}

#[test]
fn the_shipped_kubelet_config_and_node_config_agree() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("packaging/kubernetes");
    let read = |name: &str| std::fs::read_to_string(root.join(name)).expect(name);
    let kubelet: serde_json::Value =
        serde_norway::from_str(&read("credential-provider-config.yaml")).expect("yaml");
    let provider = &kubelet["providers"][0];
    assert_eq!(
        provider["apiVersion"],
        "credentialprovider.kubelet.k8s.io/v1"
    );
    let attributes = &provider["tokenAttributes"];
    assert!(
        ["ServiceAccount", "Token"].contains(&attributes["cacheType"].as_str().expect("cacheType")),
        "cacheType is required since 1.34"
    );
    let node: toml::Table = toml::from_str(&read("node-config.toml")).expect("toml");
    assert_eq!(
        attributes["serviceAccountTokenAudience"].as_str(),
        node["kubelet"]["audience"].as_str(),
        "the kubelet asks for the audience coffer accepts"
    );
    let keys: Vec<&str> = attributes["optionalServiceAccountAnnotationKeys"]
        .as_array()
        .expect("keys")
        .iter()
        .map(|k| k.as_str().expect("key"))
        .collect();
    assert_eq!(
        keys,
        [
            "coffer.dev/aws-role-arn",
            "coffer.dev/gcp-service-account",
            "coffer.dev/azure-client-id"
        ]
    );
    // The node config is what coffer reads: it accepts it as its own config.toml.
    let env = Env::new();
    std::fs::write(
        env.coffer_home().join("config.toml"),
        read("node-config.toml"),
    )
    .expect("config");
    env.coffer(&["token", "status"]).success();
}

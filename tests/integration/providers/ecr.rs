//! ECR against moto (PyPI `moto[server]`) on loopback, with moto checking the SigV4 signature
//! itself (botocore recomputes it), and against a local fixture that chooses expiry times.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use base64ct::{Base64, Encoding};

use super::fixture::{Fixture, Request};
use super::{get, private_file, push_and_inspect_through_coffer, quick_margins, unix_now};
use crate::harness::{Env, Registry, free_port, require, wait_for_port};

/// moto's fixed answer: `AWS:<account>-auth-token` for its default account.
pub(super) const MOTO_PASSWORD: &str = "123456789012-auth-token";
pub(super) const ECR_TARGET: &str = "AmazonEC2ContainerRegistry_V20150921.GetAuthorizationToken";

/// `moto_server` on a free loopback port that checks signatures after the three unsigned calls
/// that create an IAM user, its access key and a policy allowing `ecr:GetAuthorizationToken`.
/// It records every request (with headers) to a file.
pub(super) struct Moto {
    port: u16,
    child: Child,
    pub(super) recording: std::path::PathBuf,
    pub(super) key_id: String,
    pub(super) secret: String,
}

impl Moto {
    pub(super) fn start(env: &Env) -> Moto {
        Moto::with_roles(env, &[])
    }

    /// Also creates `roles` (`arn:aws:iam::123456789012:role/<name>`) that anyone may assume,
    /// each allowed `ecr:GetAuthorizationToken`, and lets the user assume them.
    pub(super) fn with_roles(env: &Env, roles: &[&str]) -> Moto {
        Moto::started(env, roles, true)
    }

    /// As [`Moto::with_roles`], with moto checking no signature.
    pub(super) fn unchecked_with_roles(env: &Env, roles: &[&str]) -> Moto {
        Moto::started(env, roles, false)
    }

    fn started(env: &Env, roles: &[&str], check_signatures: bool) -> Moto {
        require("moto_server");
        let port = free_port();
        let recording = env.root().join("moto.jsonl");
        let unsigned_setup = if check_signatures {
            (3 + 2 * roles.len()).to_string()
        } else {
            "infinity".to_owned()
        };
        let mut child = Command::new("moto_server")
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .env("INITIAL_NO_AUTH_ACTION_COUNT", unsigned_setup)
            .env("MOTO_ENABLE_RECORDING", "true")
            .env("MOTO_RECORDER_FILEPATH", &recording)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start moto_server");
        wait_for_port(port, &mut child, "moto_server");
        let iam = |form: &[(&str, &str)]| -> String {
            let http = reqwest::blocking::Client::new();
            let send = || {
                http.post(format!("http://127.0.0.1:{port}/"))
                    // Unsigned, but naming the service so that moto routes it to IAM.
                    .header(
                        "Authorization",
                        "AWS4-HMAC-SHA256 Credential=AKIDSETUP/20240101/us-east-1/iam/aws4_request, SignedHeaders=host, Signature=0",
                    )
                    .form(form)
                    .send()
            };
            // A server that has just begun to listen may still drop a first connection.
            let response = send()
                .or_else(|_| {
                    std::thread::sleep(Duration::from_millis(300));
                    send()
                })
                .expect("moto IAM call");
            assert!(response.status().is_success(), "moto IAM call failed");
            response.text().expect("text")
        };
        let version = ("Version", "2010-05-08");
        iam(&[("Action", "CreateUser"), ("UserName", "coffer"), version]);
        let key = iam(&[
            ("Action", "CreateAccessKey"),
            ("UserName", "coffer"),
            version,
        ]);
        let between = |open: &str, close: &str| {
            let start = key.find(open).expect(open) + open.len();
            key[start..start + key[start..].find(close).expect(close)].to_owned()
        };
        let policy = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":["ecr:GetAuthorizationToken","sts:AssumeRole"],"Resource":"*"}]}"#;
        iam(&[
            ("Action", "PutUserPolicy"),
            ("UserName", "coffer"),
            ("PolicyName", "ecr-login"),
            ("PolicyDocument", policy),
            version,
        ]);
        let trust = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"AWS":"*","Federated":"*"},"Action":["sts:AssumeRole","sts:AssumeRoleWithWebIdentity"]}]}"#;
        for role in roles {
            iam(&[
                ("Action", "CreateRole"),
                ("RoleName", role),
                ("AssumeRolePolicyDocument", trust),
                version,
            ]);
            iam(&[
                ("Action", "PutRolePolicy"),
                ("RoleName", role),
                ("PolicyName", "ecr-login"),
                ("PolicyDocument", policy),
                version,
            ]);
        }
        Moto {
            port,
            child,
            recording,
            key_id: between("<AccessKeyId>", "</AccessKeyId>"),
            secret: between("<SecretAccessKey>", "</SecretAccessKey>"),
        }
    }

    pub(super) fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The recorded `GetAuthorizationToken` calls' headers.
    pub(super) fn token_calls(&self) -> Vec<serde_json::Value> {
        std::fs::read_to_string(&self.recording)
            .unwrap_or_default()
            .lines()
            .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
            .filter(|r| r["headers"]["X-Amz-Target"] == ECR_TARGET)
            .map(|r| r["headers"].clone())
            .collect()
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn login_ecr(
    env: &Env,
    host: &str,
    endpoint: &str,
    key_id: &str,
    secret: &str,
) -> crate::harness::Run {
    let secret_file = private_file(env, "aws-secret", &format!("{secret}\n"));
    env.coffer(&[
        "login",
        host,
        "--mode",
        "ecr",
        "--set",
        "region=eu-west-1",
        "--set",
        &format!("endpoint={endpoint}"),
        "--username",
        key_id,
        "--secret-file",
        &secret_file,
    ])
}

/// `AWS4-HMAC-SHA256 Credential=<id>/<yyyymmdd>/<region>/<service>/aws4_request,
/// SignedHeaders=...;x-amz-target..., Signature=<64 hex>`.
fn assert_sigv4(authorization: &str, key_id: &str, region: &str, service: &str) {
    let rest = authorization
        .strip_prefix("AWS4-HMAC-SHA256 Credential=")
        .unwrap_or_else(|| panic!("not SigV4: {authorization}"));
    let (scope, rest) = rest.split_once(", SignedHeaders=").expect("SignedHeaders");
    let parts: Vec<&str> = scope.split('/').collect();
    assert_eq!(parts.len(), 5, "{scope}");
    assert_eq!(parts[0], key_id);
    assert_eq!(parts[1].len(), 8, "{scope}");
    assert_eq!(&parts[2..], [region, service, "aws4_request"]);
    let (signed, signature) = rest.split_once(", Signature=").expect("Signature");
    for header in ["content-type", "host", "x-amz-date", "x-amz-target"] {
        assert!(
            signed.split(';').any(|h| h == header),
            "{header} unsigned: {signed}"
        );
    }
    assert_eq!(signature.len(), 64);
    assert!(signature.bytes().all(|b| b.is_ascii_hexdigit()));
}

#[test]
fn moto_checks_the_signature_and_a_fresh_token_makes_no_request() {
    let env = Env::new();
    let moto = Moto::start(&env);
    let host = "127.0.0.1:5999";
    let run = login_ecr(&env, host, &moto.endpoint(), &moto.key_id, &moto.secret);
    // moto's tokens live 12 h; on a loaded machine a second may pass between minting and
    // the message.
    let said = run.success().stdout();
    assert!(
        ["expires in 12h", "expires in 11h 59m"]
            .iter()
            .any(|life| said.contains(&format!("a token from ecr, {life}"))),
        "{said}"
    );
    assert_eq!(get(&env, host), ("AWS".into(), MOTO_PASSWORD.into()));
    assert_eq!(get(&env, host), ("AWS".into(), MOTO_PASSWORD.into()));
    let calls = moto.token_calls();
    assert_eq!(
        calls.len(),
        1,
        "only the first token was minted: {calls:#?}"
    );
    let call = &calls[0];
    assert_sigv4(
        call["Authorization"].as_str().expect("Authorization"),
        &moto.key_id,
        "eu-west-1",
        "ecr",
    );
    assert_eq!(call["Content-Type"], "application/x-amz-json-1.1");
    // The secret key itself never travelled, and is in no file but the sealed vault.
    let recording = std::fs::read_to_string(&moto.recording).expect("recording");
    assert!(!recording.contains(&moto.secret));
    std::fs::remove_file(env.root().join("aws-secret")).expect("rm");
    assert!(env.files_containing(&moto.secret).is_empty());
    assert!(env.files_containing(MOTO_PASSWORD).is_empty());
}

#[test]
fn an_aws_profile_supplies_the_key_instead_of_the_vault() {
    let env = Env::new();
    let moto = Moto::start(&env);
    let aws = env.home().join(".aws");
    std::fs::create_dir(&aws).expect("mkdir");
    env.write_private(
        &aws.join("credentials"),
        &format!(
            "[default]\naws_access_key_id = AKIDOTHER\naws_secret_access_key = other\n\n\
             [ci]\naws_access_key_id = {}\naws_secret_access_key = {}\n",
            moto.key_id, moto.secret
        ),
    );
    let host = "127.0.0.1:5999";
    env.coffer(&[
        "login",
        host,
        "--mode",
        "ecr",
        "--set",
        "region=eu-west-1",
        "--set",
        &format!("endpoint={}", moto.endpoint()),
        "--set",
        "profile=ci",
    ])
    .success();
    assert_eq!(get(&env, host), ("AWS".into(), MOTO_PASSWORD.into()));
    let calls = moto.token_calls();
    assert_eq!(calls.len(), 1);
    assert_sigv4(
        calls[0]["Authorization"].as_str().expect("Authorization"),
        &moto.key_id,
        "eu-west-1",
        "ecr",
    );
}

#[test]
fn moto_refuses_a_wrong_secret_and_the_key_is_never_handed_out() {
    let env = Env::new();
    let moto = Moto::start(&env);
    let host = "127.0.0.1:5999";
    let wrong = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY";
    let run = login_ecr(&env, host, &moto.endpoint(), &moto.key_id, wrong);
    assert_eq!(run.code(), Some(1), "{}", run.stdout());
    assert!(run.stderr().contains("HTTP 403"), "{}", run.stderr());
    let get = env.helper("get", host);
    get.failure();
    assert!(!get.stdout().contains(wrong), "{}", get.stdout());
    assert!(!get.stdout().contains(&moto.key_id), "{}", get.stdout());
}

/// A GetAuthorizationToken fixture whose tokens live `lifetime` seconds and count up.
pub(super) fn ecr_fixture(target: &'static str, lifetime: u64, public: bool) -> Fixture {
    let mut minted = 0;
    Fixture::start(move |request: &Request| {
        if request.method != "POST" || request.path != "/" {
            return Err(format!("{} {}", request.method, request.path));
        }
        if request.header("X-Amz-Target") != Some(target) {
            return Err(format!("target {:?}", request.header("X-Amz-Target")));
        }
        if request.header("Content-Type") != Some("application/x-amz-json-1.1") {
            return Err("content type".into());
        }
        if request.body != b"{}" {
            return Err("body".into());
        }
        let authorization = request.header("Authorization").unwrap_or_default();
        let service = if public {
            "/us-east-1/ecr-public/"
        } else {
            "/eu-west-1/ecr/"
        };
        if !authorization.starts_with("AWS4-HMAC-SHA256 Credential=AKIDFIXTURE/")
            || !authorization.contains(service)
        {
            return Err(format!("authorization {authorization}"));
        }
        minted += 1;
        let token = Base64::encode_string(format!("AWS:pw-{minted}").as_bytes());
        let expires = unix_now() as f64 + lifetime as f64 + 0.25;
        let data = format!(r#"{{"authorizationToken":"{token}","expiresAt":{expires}}}"#);
        Ok((
            200,
            if public {
                format!(r#"{{"authorizationData":{data}}}"#)
            } else {
                format!(r#"{{"authorizationData":[{data}]}}"#)
            },
        ))
    })
}

#[test]
fn tokens_are_renewed_by_their_stated_expiry() {
    let env = Env::new();
    quick_margins(&env);
    // Tokens live 10 s: fresh for the first 5 s, which leaves a loaded machine seconds to run
    // the two gets that must not renew.
    let fixture = ecr_fixture(ECR_TARGET, 10, false);
    let host = "127.0.0.1:5999";
    login_ecr(&env, host, &fixture.url(), "AKIDFIXTURE", "fixture-secret").success();
    // The first token was minted before login returned.
    let minted = Instant::now();
    assert_eq!(get(&env, host), ("AWS".into(), "pw-1".into()));
    assert_eq!(get(&env, host), ("AWS".into(), "pw-1".into()));
    assert_eq!(fixture.count("/"), 1, "fresh for half of its 10 s");
    std::thread::sleep(Duration::from_millis(5200).saturating_sub(minted.elapsed()));
    assert_eq!(get(&env, host), ("AWS".into(), "pw-2".into()));
    assert_eq!(fixture.count("/"), 2);
    // `coffer refresh` renews ahead of time, for its timer.
    let refresh = env.coffer(&["refresh", host, "--ahead", "10s"]);
    assert!(
        refresh.success().stdout().contains("renewed"),
        "{}",
        refresh.stdout()
    );
    assert_eq!(get(&env, host), ("AWS".into(), "pw-3".into()));
    fixture.assert_clean();
}

#[test]
fn ecr_public_uses_its_own_api_and_signing_name() {
    let env = Env::new();
    let fixture = ecr_fixture("SpencerFrontendService.GetAuthorizationToken", 3600, true);
    let secret_file = private_file(
        &env,
        "aws-secret",
        "fixture-secret\nFwoGZXIvYXdzEXAMPLESESSION\n",
    );
    env.coffer(&[
        "login",
        "localhost:5999",
        "--mode",
        "ecr",
        "--set",
        "public=true",
        "--set",
        &format!("endpoint={}", fixture.url()),
        "--username",
        "AKIDFIXTURE",
        "--secret-file",
        &secret_file,
    ])
    .success();
    assert_eq!(get(&env, "localhost:5999"), ("AWS".into(), "pw-1".into()));
    let request = &fixture.requests()[0];
    assert_eq!(
        request.header("X-Amz-Security-Token"),
        Some("FwoGZXIvYXdzEXAMPLESESSION"),
        "the session token goes with temporary keys"
    );
    fixture.assert_clean();
}

#[test]
fn end_to_end_skopeo_and_docker_use_the_password_moto_minted() {
    let registry = Registry::htpasswd("AWS", MOTO_PASSWORD);
    let env = Env::new();
    let moto = Moto::start(&env);
    login_ecr(
        &env,
        &registry.host(),
        &moto.endpoint(),
        &moto.key_id,
        &moto.secret,
    )
    .success();
    let started = Instant::now();
    push_and_inspect_through_coffer(&env, &registry);
    assert_eq!(
        moto.token_calls().len(),
        1,
        "every client call used the cached token"
    );
    eprintln!(
        "skopeo push + inspect + docker manifest inspect: {:?}",
        started.elapsed()
    );
}

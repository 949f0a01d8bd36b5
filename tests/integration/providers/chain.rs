//! Chain mode: cloud registries through the machine's or workload's own identity, with the real
//! SDKs against loopback endpoints (moto's server checking signatures, and fixtures for the
//! metadata services), nothing stored in coffer, and tokens cached only in memory: the kernel
//! keyring, or the coffer agent where a seccomp filter forbids keyctl.

use std::net::TcpListener;
use std::process::Command;
use std::time::{Duration, Instant, SystemTime};

use super::ecr::{ECR_TARGET, MOTO_PASSWORD, Moto, ecr_fixture};
use super::fixture::{Fixture, HugeAnswers};
use super::push_and_inspect_through_coffer;
use crate::e2e_docker::write_docker_config;
use crate::engine::engine;
use crate::harness::{Env, Registry, Run, bin, free_port, hold, release};

/// The registry's section in config.toml: ECR's API at moto, with `extra` settings.
fn ecr_config(env: &Env, host: &str, moto: &Moto, extra: &str) {
    std::fs::write(
        env.coffer_home().join("config.toml"),
        format!(
            "[registries.\"{host}\"]\nmode = \"ecr\"\nregion = \"us-east-1\"\nendpoint = \"{}\"\n{extra}",
            moto.endpoint()
        ),
    )
    .expect("config");
}

/// Whether the test's processes may use the kernel keyring.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Keyctl {
    Allowed,
    /// Refused by a seccomp filter, as in a Docker container.
    Forbidden,
}

/// The helper with extra environment variables (an identity the test gives this process only).
fn helper_command(env: &Env, keyctl: Keyctl, vars: &[(&str, &str)], action: &str) -> Command {
    let helper = bin("docker-credential-coffer");
    let mut cmd = match keyctl {
        Keyctl::Allowed => env.command(helper),
        Keyctl::Forbidden => env.command_without_keyctl(helper),
    };
    cmd.arg(action);
    for (name, value) in vars {
        cmd.env(name, value);
    }
    // Never the real instance metadata address: a closed loopback port unless the test says.
    if !vars
        .iter()
        .any(|(n, _)| *n == "AWS_EC2_METADATA_SERVICE_ENDPOINT")
    {
        cmd.env(
            "AWS_EC2_METADATA_SERVICE_ENDPOINT",
            format!("http://127.0.0.1:{}", free_port()),
        );
    }
    cmd
}

pub(super) fn helper_with(env: &Env, vars: &[(&str, &str)], action: &str, input: &str) -> Run {
    Run::of(
        &mut helper_command(env, Keyctl::Allowed, vars, action),
        input,
    )
}

/// The helper's answer to `get`: (Username, Secret).
pub(super) fn answer(run: &Run) -> (String, String) {
    run.success();
    let json: serde_json::Value = serde_json::from_str(&run.stdout()).expect("JSON");
    (
        json["Username"].as_str().expect("Username").to_owned(),
        json["Secret"].as_str().expect("Secret").to_owned(),
    )
}

/// The access key ids that signed moto's `GetAuthorizationToken` calls, in order.
fn signers(moto: &Moto) -> Vec<String> {
    moto.token_calls()
        .iter()
        .map(|headers| {
            let authorization = headers["Authorization"].as_str().expect("Authorization");
            authorization
                .strip_prefix("AWS4-HMAC-SHA256 Credential=")
                .and_then(|rest| rest.split('/').next())
                .expect("SigV4 credential")
                .to_owned()
        })
        .collect()
}

fn shared_profile(env: &Env, moto: &Moto) {
    let aws = env.home().join(".aws");
    std::fs::create_dir_all(&aws).expect("mkdir");
    env.write_private(
        &aws.join("credentials"),
        &format!(
            "[default]\naws_access_key_id = {}\naws_secret_access_key = {}\n",
            moto.key_id, moto.secret
        ),
    );
}

/// Files under `dir` changed since `since` whose bytes hold `needle`.
fn files_since_containing(dir: &std::path::Path, since: SystemTime, needle: &[u8]) -> Vec<String> {
    let mut found = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let Ok(kind) = entry.file_type() else {
                continue;
            };
            let path = entry.path();
            if kind.is_dir() {
                stack.push(path);
            } else if kind.is_file() {
                let fresh = entry
                    .metadata()
                    .and_then(|m| m.modified())
                    .is_ok_and(|t| t >= since);
                let small = entry.metadata().is_ok_and(|m| m.len() < 64 * 1024 * 1024);
                if fresh && small {
                    let bytes = std::fs::read(&path).unwrap_or_default();
                    if bytes.windows(needle.len()).any(|w| w == needle) {
                        found.push(path.display().to_string());
                    }
                }
            }
        }
    }
    found
}

/// No file under HOME or /tmp changed since `started` holds `needle` (a token or a secret).
pub(super) fn assert_on_no_disk(env: &Env, started: SystemTime, needle: &str) {
    let home = files_since_containing(&env.home(), started, needle.as_bytes());
    let tmp = files_since_containing(std::path::Path::new("/tmp"), started, needle.as_bytes());
    assert!(
        home.is_empty() && tmp.is_empty(),
        "written to {home:?} {tmp:?}"
    );
}

/// A node with no vault and no passphrase whose only identity is an AWS profile (moto's key).
fn aws_profile_node() -> (Env, Moto) {
    let env = Env::empty();
    std::fs::remove_file(env.passphrase_file()).expect("no passphrase");
    let moto = Moto::start(&env);
    shared_profile(&env, &moto);
    (env, moto)
}

#[test]
fn a_node_with_only_an_aws_profile_pulls_with_docker_and_skopeo_and_writes_no_token() {
    let started = SystemTime::now();
    // No vault, no passphrase: nothing of coffer's is stored anywhere.
    let (env, moto) = aws_profile_node();
    let registry = Registry::htpasswd("AWS", MOTO_PASSWORD);
    let host = registry.host();
    ecr_config(&env, &host, &moto, "");
    let run = env.coffer(&["login", &host, "--mode", "ecr"]);
    assert!(
        run.success().stdout().contains("nothing stored"),
        "{}",
        run.stdout()
    );
    assert_eq!(
        answer(&env.helper("get", &host)),
        ("AWS".into(), MOTO_PASSWORD.into())
    );
    push_and_inspect_through_coffer(&env, &registry);
    // Every get after the first, in every process, came from the keyring cache.
    assert_eq!(signers(&moto), vec![moto.key_id.clone()]);
    assert!(!env.vault().exists(), "chain mode made no vault");
    assert_on_no_disk(&env, started, MOTO_PASSWORD);
}

/// The same node through a real engine: the docker CLI gets the minted token from coffer for
/// `push` and `pull`, and the engine pulls and runs the image with it.
#[test]
fn a_node_with_only_an_aws_profile_pushes_pulls_and_runs_through_the_engine() {
    let engine = engine();
    let (env, moto) = aws_profile_node();
    let registry = Registry::htpasswd("AWS", MOTO_PASSWORD);
    let host = registry.host();
    ecr_config(&env, &host, &moto, "");
    write_docker_config(&env, r#"{"credsStore": "coffer"}"#);
    let image = format!("{host}/chain/busybox:1");
    engine.build_push_pull_run(&env, &image, "pulled with this machine's AWS identity");
    engine.docker(&env, &["rmi", &image], "").success();
    assert_eq!(
        signers(&moto),
        vec![moto.key_id.clone()],
        "one exchange for every get of the push and the pull"
    );
    assert!(!env.vault().exists(), "chain mode made no vault");
}

#[test]
fn web_identity_and_two_roles_never_share_a_token() {
    let env = Env::new();
    // moto refuses the unsigned AssumeRoleWithWebIdentity (which AWS's STS takes unsigned) once
    // it checks signatures, so this moto checks none; the other tests check them.
    let moto = Moto::unchecked_with_roles(&env, &["puller-a", "puller-b"]);
    let host = "127.0.0.1:5998";
    ecr_config(&env, host, &moto, "");
    let token_file = super::private_file(&env, "web-identity", "eyJhbGciOiJub25lIn0.e30.");
    let sts = moto.endpoint();
    // The same environment each time but the role: the metadata endpoint is part of the identity.
    let metadata = format!("http://127.0.0.1:{}", free_port());
    let as_role = |role: &str| {
        let arn = format!("arn:aws:iam::123456789012:role/{role}");
        helper_with(
            &env,
            &[
                ("AWS_EC2_METADATA_SERVICE_ENDPOINT", metadata.as_str()),
                ("AWS_WEB_IDENTITY_TOKEN_FILE", token_file.as_str()),
                ("AWS_ROLE_ARN", arn.as_str()),
                ("AWS_ENDPOINT_URL_STS", sts.as_str()),
                ("AWS_REGION", "us-east-1"),
            ],
            "get",
            host,
        )
    };
    assert_eq!(answer(&as_role("puller-a")).1, MOTO_PASSWORD);
    assert_eq!(answer(&as_role("puller-b")).1, MOTO_PASSWORD);
    assert_eq!(answer(&as_role("puller-a")).1, MOTO_PASSWORD);
    let signers = signers(&moto);
    assert_eq!(
        signers.len(),
        2,
        "one exchange per role, then the cache: {signers:?}"
    );
    assert_ne!(
        signers[0], signers[1],
        "each role's own session signed its token"
    );
    assert!(signers.iter().all(|s| *s != moto.key_id));
}

#[test]
fn role_arn_assumes_a_role_on_top_of_a_profile() {
    let env = Env::new();
    let moto = Moto::with_roles(&env, &["ci"]);
    shared_profile(&env, &moto);
    let host = "127.0.0.1:5997";
    ecr_config(
        &env,
        host,
        &moto,
        "role_arn = \"arn:aws:iam::123456789012:role/ci\"\n",
    );
    let sts = moto.endpoint();
    let run = helper_with(&env, &[("AWS_ENDPOINT_URL_STS", sts.as_str())], "get", host);
    assert_eq!(answer(&run), ("AWS".into(), MOTO_PASSWORD.into()));
    let signers = signers(&moto);
    assert_eq!(signers.len(), 1);
    assert_ne!(
        signers[0], moto.key_id,
        "the assumed role signed, not the user"
    );
}

/// IMDSv2 as EC2 serves it: a PUT for a session token, then the role's credentials only with it.
fn imds(key_id: String, secret: String) -> Fixture {
    let ttl = ("X-aws-ec2-metadata-token-ttl-seconds", "21600");
    Fixture::start_with_header(ttl, move |request| {
        let token = request.header("x-aws-ec2-metadata-token");
        match (request.method.as_str(), request.path.as_str()) {
            ("PUT", "/latest/api/token") => {
                if request.header("x-aws-ec2-metadata-token-ttl-seconds").is_none() {
                    return Err("token PUT without a TTL".into());
                }
                Ok((200, "imds-session".into()))
            }
            (_, _) if token != Some("imds-session") => Err(format!(
                "{} {} without the IMDSv2 session token",
                request.method, request.path
            )),
            ("GET", "/latest/meta-data/iam/security-credentials/")
            | ("GET", "/latest/meta-data/iam/security-credentials") => Ok((200, "ci-runner".into())),
            ("GET", "/latest/meta-data/iam/security-credentials/ci-runner") => Ok((
                200,
                format!(
                    r#"{{"Code":"Success","Type":"AWS-HMAC","AccessKeyId":"{key_id}","SecretAccessKey":"{secret}","Token":"imds-session-token","Expiration":"2099-01-01T00:00:00Z","LastUpdated":"2024-01-01T00:00:00Z"}}"#
                ),
            )),
            ("GET", "/latest/meta-data/iam/info") => Ok((
                200,
                r#"{"Code":"Success","InstanceProfileArn":"arn:aws:iam::123456789012:instance-profile/ci-runner"}"#.into(),
            )),
            (method, path) => Err(format!("unexpected {method} {path}")),
        }
    })
}

#[test]
fn instance_metadata_v2_container_credentials_and_credential_process() {
    let env = Env::new();
    // The fixtures hand out the IAM user's key with a session token moto never issued, which a
    // signature-checking moto refuses; so moto checks none here (the other tests check them).
    let moto = Moto::unchecked_with_roles(&env, &[]);
    let host = "127.0.0.1:5996";
    ecr_config(&env, host, &moto, "");
    let metadata = imds(moto.key_id.clone(), moto.secret.clone());
    let run = helper_with(
        &env,
        &[("AWS_EC2_METADATA_SERVICE_ENDPOINT", metadata.url().as_str())],
        "get",
        host,
    );
    assert_eq!(answer(&run).1, MOTO_PASSWORD);
    metadata.assert_clean();
    assert!(
        metadata.count("/latest/api/token") >= 1,
        "IMDSv2's PUT came first"
    );
    assert_eq!(signers(&moto), vec![moto.key_id.clone()]);

    // ECS and EKS Pod Identity: a full URI on loopback with an authorization token.
    let (key_id, secret) = (moto.key_id.clone(), moto.secret.clone());
    let container = Fixture::start(move |request| {
        if request.path != "/credentials" {
            return Err(format!("unexpected path {}", request.path));
        }
        if request.header("authorization") != Some("pod-identity-token") {
            return Err("no authorization token".into());
        }
        Ok((
            200,
            format!(
                r#"{{"AccessKeyId":"{key_id}","SecretAccessKey":"{secret}","Token":"container-session","Expiration":"2099-01-01T00:00:00Z"}}"#
            ),
        ))
    });
    let uri = format!("{}/credentials", container.url());
    let host = "127.0.0.1:5995";
    ecr_config(&env, host, &moto, "");
    let run = helper_with(
        &env,
        &[
            ("AWS_CONTAINER_CREDENTIALS_FULL_URI", uri.as_str()),
            ("AWS_CONTAINER_AUTHORIZATION_TOKEN", "pod-identity-token"),
        ],
        "get",
        host,
    );
    assert_eq!(answer(&run).1, MOTO_PASSWORD);
    container.assert_clean();
    assert_eq!(container.count("/credentials"), 1);

    // credential_process in a named profile, chosen per registry.
    let script = env.root().join("aws-creds.sh");
    std::fs::write(
        &script,
        format!(
            "#!/bin/sh\nprintf '%s' '{{\"Version\":1,\"AccessKeyId\":\"{}\",\"SecretAccessKey\":\"{}\"}}'\n",
            moto.key_id, moto.secret
        ),
    )
    .expect("script");
    std::fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o700))
        .expect("chmod");
    let aws = env.home().join(".aws");
    std::fs::create_dir_all(&aws).expect("mkdir");
    env.write_private(
        &aws.join("config"),
        &format!(
            "[profile builder]\ncredential_process = {}\n",
            script.display()
        ),
    );
    let host = "127.0.0.1:5994";
    ecr_config(&env, host, &moto, "profile = \"builder\"\n");
    assert_eq!(
        answer(&helper_with(&env, &[], "get", host)).1,
        MOTO_PASSWORD
    );
    assert_eq!(signers(&moto).len(), 3);
}

/// `get` for a chain-mode registry (`settings`: its section's lines) with no identity here, the
/// environment given `vars`, fails within 2 s, in one line naming each source in `tried`.
pub(super) fn assert_fails_fast(
    env: &Env,
    settings: &str,
    vars: &[(&str, &str)],
    tried: &[&str],
    what: &str,
) {
    let host = "127.0.0.1:5993";
    std::fs::write(
        env.coffer_home().join("config.toml"),
        format!("[registries.\"{host}\"]\n{settings}"),
    )
    .expect("config");
    let started = Instant::now();
    let run = helper_with(env, vars, "get", host);
    let took = started.elapsed();
    run.failure();
    let said = format!("{}{}", run.stdout(), run.stderr());
    assert!(
        took < Duration::from_secs(2),
        "{what}: took {took:?}: {said}"
    );
    for named in tried {
        assert!(
            said.contains(named),
            "{what}: `{named}` missing from: {said}"
        );
    }
    assert_eq!(said.trim().lines().count(), 1, "one line: {said}");
    eprintln!("{what}: failed in {took:?}: {said}");
}

/// What the AWS chain tries, in its order, and the setting that fixes it.
const AWS_SOURCES: [&str; 6] = [
    "environment variables",
    "shared profile",
    "web identity",
    "container credentials",
    "EC2 instance metadata",
    "role_arn",
];

#[test]
fn no_identity_and_a_blackholed_metadata_port_fail_within_two_seconds() {
    let ecr = "mode = \"ecr\"\nregion = \"us-east-1\"\n";
    let closed = format!("http://127.0.0.1:{}", free_port());
    assert_fails_fast(
        &Env::new(),
        ecr,
        &[("AWS_EC2_METADATA_SERVICE_ENDPOINT", &closed)],
        &AWS_SOURCES,
        "no metadata service",
    );
    // Accepts connections (the kernel completes them) and never answers.
    let blackhole = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = blackhole.local_addr().expect("addr").port();
    assert_fails_fast(
        &Env::new(),
        ecr,
        &[(
            "AWS_EC2_METADATA_SERVICE_ENDPOINT",
            &format!("http://127.0.0.1:{port}"),
        )],
        &AWS_SOURCES,
        "blackholed metadata port",
    );
    drop(blackhole);
}

#[test]
fn two_hundred_concurrent_gets_make_one_exchange() {
    let env = Env::new();
    let moto = Moto::start(&env);
    shared_profile(&env, &moto);
    let host = "127.0.0.1:5992";
    ecr_config(&env, host, &moto, "");
    let held: Vec<_> = (0..200).map(|_| env.hold_helper("get", host)).collect();
    let (runs, alive) = release(held);
    assert!(alive > 150, "only {alive} were waiting at once");
    for run in &runs {
        assert_eq!(answer(run).1, MOTO_PASSWORD);
    }
    assert_eq!(signers(&moto).len(), 1, "one exchange for 200 gets");
}

#[test]
fn doctor_says_which_identity_would_be_used() {
    let env = Env::new();
    let moto = Moto::start(&env);
    shared_profile(&env, &moto);
    std::fs::write(
        env.coffer_home().join("config.toml"),
        format!(
            "[registries.\"*.dkr.ecr.*.amazonaws.com\"]\nmode = \"ecr\"\nendpoint = \"{}\"\n",
            moto.endpoint()
        ),
    )
    .expect("config");
    let mut cmd = env.command(bin("coffer"));
    cmd.args(["token", "status"]).env(
        "AWS_EC2_METADATA_SERVICE_ENDPOINT",
        format!("http://127.0.0.1:{}", free_port()),
    );
    let run = Run::of(&mut cmd, "");
    let said = run.success().stdout();
    assert!(said.contains("AWS shared profile"), "{said}");
    assert!(
        said.contains("tokens without a vault entry are cached in the kernel keyring, until each token expires"),
        "{said}"
    );
}

/// The agents' sockets of cached tokens under the test's runtime folder.
fn token_agents(env: &Env) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(env.root().join("coffer-agent"))
        .map(|listing| {
            listing
                .flatten()
                .filter_map(|entry| entry.file_name().into_string().ok())
                .filter(|name| name.starts_with("token-") && name.ends_with(".sock"))
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

/// A node with no vault and no passphrase whose AWS identity is the fixture's key, for the
/// ECR fixture at `endpoint`, with `[tokens]` settings.
fn fixture_node(endpoint: &str, host: &str, tokens: &str) -> Env {
    let env = Env::empty();
    std::fs::remove_file(env.passphrase_file()).expect("no passphrase");
    let aws = env.home().join(".aws");
    std::fs::create_dir_all(&aws).expect("mkdir");
    env.write_private(
        &aws.join("credentials"),
        "[default]\naws_access_key_id = AKIDFIXTURE\naws_secret_access_key = fixture-secret\n",
    );
    std::fs::write(
        env.coffer_home().join("config.toml"),
        format!(
            "[registries.\"{host}\"]\nmode = \"ecr\"\nregion = \"eu-west-1\"\nendpoint = \"{endpoint}\"\n\n[tokens]\n{tokens}"
        ),
    )
    .expect("config");
    env
}

/// Where keyctl is forbidden, with no vault and no passphrase: the helper starts an agent that
/// holds the token, the second get makes no exchange, no file holds the token, and the agent
/// drops it when the token expires.
#[test]
fn keyctl_forbidden_caches_tokens_in_an_agent_until_they_expire() {
    let started = SystemTime::now();
    let (env, moto) = aws_profile_node();
    let host = "127.0.0.1:5991";
    ecr_config(&env, host, &moto, "");
    // The same closed metadata port each time: it is part of the identity.
    let metadata = format!("http://127.0.0.1:{}", free_port());
    let vars = [("AWS_EC2_METADATA_SERVICE_ENDPOINT", metadata.as_str())];
    let confined_get = |env: &Env| {
        Run::of(
            &mut helper_command(env, Keyctl::Forbidden, &vars, "get"),
            host,
        )
    };
    assert_eq!(
        answer(&confined_get(&env)),
        ("AWS".into(), MOTO_PASSWORD.into())
    );
    assert_eq!(token_agents(&env).len(), 1, "an agent holds the token");
    let mut status = env.command_without_keyctl(bin("coffer"));
    let status = Run::of(status.args(["token", "status"]).envs(vars), "");
    let said = status.success().stdout();
    assert!(
        said.contains("cached in the coffer agent, until each token expires (the kernel keyring: "),
        "{said}"
    );
    assert_eq!(answer(&confined_get(&env)).1, MOTO_PASSWORD);
    assert_eq!(
        signers(&moto).len(),
        1,
        "the second get used the agent's token"
    );
    assert!(!env.vault().exists(), "chain mode made no vault");
    assert_on_no_disk(&env, started, MOTO_PASSWORD);

    // Tokens that live 3 s: the agent is gone with its token, and the next get mints again.
    let fixture = ecr_fixture(ECR_TARGET, 3, false);
    let env = fixture_node(&fixture.url(), host, "min_margin = \"1s\"\n");
    assert_eq!(answer(&confined_get(&env)).1, "pw-1");
    let minted = Instant::now();
    let agents = token_agents(&env);
    assert_eq!(agents.len(), 1, "an agent holds the token");
    while !token_agents(&env).is_empty() {
        assert!(
            minted.elapsed() < Duration::from_secs(8),
            "the agent still holds a token that expired: {agents:?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(
        minted.elapsed() >= Duration::from_secs(1),
        "the agent left long before its token expired"
    );
    assert_eq!(answer(&confined_get(&env)).1, "pw-2");
    assert_eq!(fixture.count("/"), 2);
    fixture.assert_clean();
}

/// A token in cache and inside its renewal margin (a 30 s token, renewed after 15 s): 200
/// concurrent gets make exactly one exchange, and each hands out the old or the new token.
fn two_hundred_gets_across_a_renewal(keyctl: Keyctl) {
    const LIFETIME: u64 = 30;
    let fixture = ecr_fixture(ECR_TARGET, LIFETIME, false);
    let host = "127.0.0.1:5990";
    let env = fixture_node(
        &fixture.url(),
        host,
        "min_margin = \"1s\"\nretry_after = \"1s\"\n",
    );
    // The same closed metadata port each time: it is part of the identity.
    let metadata = format!("http://127.0.0.1:{}", free_port());
    let vars = [("AWS_EC2_METADATA_SERVICE_ENDPOINT", metadata.as_str())];
    let get = |env: &Env| Run::of(&mut helper_command(env, keyctl, &vars, "get"), host);
    assert_eq!(answer(&get(&env)).1, "pw-1");
    let minted = Instant::now();
    if keyctl == Keyctl::Forbidden {
        assert_eq!(token_agents(&env).len(), 1, "an agent holds the token");
        let mut status = env.command_without_keyctl(bin("coffer"));
        let status = Run::of(status.args(["token", "status"]).envs(vars), "");
        let said = status.success().stdout();
        assert!(
            said.contains(
                "cached in the coffer agent, until each token expires (the kernel keyring: "
            ),
            "{said}"
        );
    }
    let held: Vec<_> = (0..200)
        .map(|_| hold(helper_command(&env, keyctl, &vars, "get"), host))
        .collect();
    let due = Duration::from_secs(LIFETIME / 2 + 1);
    assert!(
        minted.elapsed() < due,
        "starting the gets took past the renewal time"
    );
    assert_eq!(fixture.count("/"), 1);
    std::thread::sleep(due - minted.elapsed());
    let (runs, alive) = release(held);
    assert!(alive > 150, "only {alive} were waiting at once");
    assert!(
        minted.elapsed() < Duration::from_secs(LIFETIME),
        "the gets outlived the old token; the test says nothing"
    );
    let mut renewed = 0;
    for run in &runs {
        let secret = answer(run).1;
        assert!(
            secret == "pw-1" || secret == "pw-2",
            "neither the old nor the new token: {secret}"
        );
        renewed += usize::from(secret == "pw-2");
    }
    assert_eq!(fixture.count("/"), 2, "one exchange for 200 gets");
    assert!(renewed > 0, "no get handed out the renewed token");
    fixture.assert_clean();
}

#[test]
fn two_hundred_concurrent_gets_across_a_renewal_make_one_exchange() {
    two_hundred_gets_across_a_renewal(Keyctl::Allowed);
}

#[test]
fn two_hundred_concurrent_gets_across_a_renewal_with_keyctl_forbidden() {
    two_hundred_gets_across_a_renewal(Keyctl::Forbidden);
}

/// A profile whose `credential_process` runs `script` (a shell script's body).
fn credential_process_profile(env: &Env, script: &str) -> String {
    let path = env.root().join("aws-creds.sh");
    std::fs::write(&path, format!("#!/bin/sh\n{script}\n")).expect("script");
    std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o700))
        .expect("chmod");
    let aws = env.home().join(".aws");
    std::fs::create_dir_all(&aws).expect("mkdir");
    env.write_private(
        &aws.join("config"),
        &format!(
            "[profile builder]\ncredential_process = {}\n",
            path.display()
        ),
    );
    let host = "127.0.0.1:5991";
    std::fs::write(
        env.coffer_home().join("config.toml"),
        format!(
            "[registries.\"{host}\"]\nmode = \"ecr\"\nregion = \"us-east-1\"\nendpoint = \"http://127.0.0.1:{}\"\nprofile = \"builder\"\n",
            free_port()
        ),
    )
    .expect("config");
    host.to_owned()
}

#[test]
fn a_failing_credential_process_never_shows_its_stderr() {
    let started = SystemTime::now();
    let env = Env::new();
    let secret = "aws-secret-on-stderr-5c1e";
    // Written in two halves, so that only its output holds the secret.
    let host = credential_process_profile(
        &env,
        "printf 'token=%s%s\\n' aws-secret-on- stderr-5c1e >&2\nexit 3",
    );
    let run = helper_with(&env, &[], "get", &host);
    run.failure().hides(&[secret]);
    assert!(
        run.stdout().contains("its stderr is not shown"),
        "{}",
        run.stdout()
    );
    for args in [&["token", "status"][..], &["doctor"]] {
        let run = env.coffer(args);
        run.hides(&[secret]);
        assert!(
            run.stdout().contains("its stderr is not shown"),
            "{args:?}: {}",
            run.stdout()
        );
    }
    assert_on_no_disk(&env, started, secret);
    let log = std::fs::read_to_string(env.coffer_home().join("access.log")).expect("log");
    assert!(!log.contains(secret), "{log}");
}

/// What a hostile metadata endpoint sends: far more than any credential.
const HUGE: usize = 200 << 20;

#[test]
fn a_huge_metadata_answer_is_cut_at_256_kib_and_said_in_one_line() {
    let huge = HugeAnswers::start(HUGE);
    let url = huge.url();
    let closed = format!("http://127.0.0.1:{}", free_port());
    // The registries' APIs at a closed port: no answer gets that far.
    let ecr = &format!("mode = \"ecr\"\nregion = \"us-east-1\"\nendpoint = \"{closed}\"\n");
    let azure = &format!("mode = \"azure\"\nendpoint = \"{closed}\"\n");
    let google = "mode = \"google\"\n";
    let (container, app_service) = (format!("{url}/credentials"), format!("{url}/msi/token"));
    // What the source is, the registry's settings, and the environment that points at it.
    type Source<'a> = (&'a str, &'a str, Vec<(&'a str, &'a str)>);
    let sources: [Source; 5] = [
        (
            "AWS container credentials",
            ecr,
            vec![("AWS_CONTAINER_CREDENTIALS_FULL_URI", &container)],
        ),
        (
            "AWS instance metadata",
            ecr,
            vec![("AWS_EC2_METADATA_SERVICE_ENDPOINT", &url)],
        ),
        (
            "Azure App Service identity",
            azure,
            vec![
                ("IDENTITY_ENDPOINT", &app_service),
                ("IDENTITY_HEADER", "x-identity-header"),
                ("HTTP_PROXY", &closed),
                ("NO_PROXY", "127.0.0.1,localhost"),
            ],
        ),
        (
            // The VM's metadata address goes to the proxy, which the endpoint is.
            "Azure instance metadata",
            azure,
            vec![("HTTP_PROXY", &url), ("NO_PROXY", "127.0.0.1,localhost")],
        ),
        (
            "Google metadata server",
            google,
            vec![("GCE_METADATA_HOST", &url["http://".len()..])],
        ),
    ];
    let host = "127.0.0.1:5990";
    for (what, settings, vars) in sources {
        let env = Env::new();
        std::fs::write(
            env.coffer_home().join("config.toml"),
            format!("[registries.\"{host}\"]\n{settings}"),
        )
        .expect("config");
        let asked = huge.served();
        let mut helper = helper_command(&env, Keyctl::Allowed, &vars, "get");
        let (run, peak) = crate::harness::run_measuring_peak(&mut helper, host);
        run.failure();
        let said = run.stdout();
        eprintln!("{what}: peak resident size of get and `coffer token mint` {peak} KiB: {said}");
        assert!(huge.served() > asked, "{what}: the endpoint was not asked");
        assert!(
            said.contains("the answer is larger than 256 KiB"),
            "{what}: {said}"
        );
        assert_eq!(said.trim().lines().count(), 1, "{what}: one line: {said}");
        assert!(
            peak < 64 * 1024,
            "{what}: {peak} KiB: the answer was read whole"
        );
    }
}

#[test]
fn a_failed_chain_get_is_logged_as_a_failure_with_its_cause_and_doctor_shows_it() {
    let env = Env::new();
    let host = "127.0.0.1:5994";
    std::fs::write(
        env.coffer_home().join("config.toml"),
        format!(
            "[registries.\"{host}\"]\nmode = \"ecr\"\nregion = \"us-east-1\"\nendpoint = \"http://127.0.0.1:{}\"\n",
            free_port()
        ),
    )
    .expect("config");
    let run = helper_with(&env, &[], "get", host);
    run.failure();
    assert!(
        run.stdout().starts_with("no AWS identity here"),
        "{}",
        run.stdout()
    );
    let log = std::fs::read_to_string(env.coffer_home().join("access.log")).expect("log");
    let last: serde_json::Value =
        serde_json::from_str(log.lines().last().expect("a line")).expect("json");
    assert_eq!(last["action"], "get", "{log}");
    assert_eq!(last["outcome"], "failed", "{log}");
    assert!(
        last["error"]
            .as_str()
            .is_some_and(|e| e.starts_with("no AWS identity here")),
        "{log}"
    );
    let doctor = env.coffer(&["doctor"]).stdout();
    assert!(doctor.contains("1 failure of the last 7 days"), "{doctor}");
    assert!(doctor.contains("no AWS identity here"), "{doctor}");
}

#[test]
fn a_hanging_credential_process_does_not_outlive_get() {
    let env = Env::new();
    let pids = env.root().join("pids");
    // It hangs, with a child in its group, one in a session of its own, and one whose parent
    // is gone.
    let host = credential_process_profile(
        &env,
        &format!(
            "sleep 60 & echo $! >> {p}\n\
             setsid sleep 61 & echo $! >> {p}\n\
             (setsid sh -c 'sleep 62 & echo $! >> {p}' &)\n\
             wait",
            p = pids.display()
        ),
    );
    for action in ["get", "doctor"] {
        let _ = std::fs::remove_file(&pids);
        let started = Instant::now();
        let run = match action {
            "get" => helper_with(&env, &[], "get", &host),
            _ => env.coffer(&["doctor"]),
        };
        let took = started.elapsed();
        if action == "get" {
            run.failure();
            assert!(run.stdout().contains("profile"), "{}", run.stdout());
        }
        assert!(took < Duration::from_secs(5), "{action} took {took:?}");
        let pids = std::fs::read_to_string(&pids).expect("pids");
        assert_eq!(pids.lines().count(), 3, "{action}: {pids}");
        for pid in pids.lines() {
            assert!(
                !super::exec::still_runs(pid),
                "{action}: the credential_process's {pid} still runs"
            );
        }
    }
}

//! docker CLI and skopeo through coffer in `oauth2` mode, against Debian's docker-registry with
//! token auth: the password stays in the vault, clients only ever get an identity token, and
//! they keep working after that token has expired because coffer renews it.

use std::time::{Duration, Instant};

use crate::e2e_docker::{docker, push_image, skopeo, write_docker_config};
use crate::harness::{Env, Run};
use crate::token_server::{Grant, SERVICE, TokenServer, token_registry};
use crate::token_vault::{PASSWORD, USER, env_with, get, store, wait_until};

/// Lifetime of the refresh tokens coffer hands out: long enough for the first round of
/// clients, short enough to wait out.
const LIFETIME: u64 = 24;

/// A POST refresh grant as dockerd sends it: is this identity token still accepted?
fn refresh_grant_accepted(server: &TokenServer, token: &str) -> bool {
    reqwest::blocking::Client::new()
        .post(server.realm())
        .form(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", token),
            ("service", SERVICE),
            ("client_id", "coffer-test"),
        ])
        .send()
        .expect("refresh grant")
        .status()
        .is_success()
}

/// Exchanges of the password by anyone but coffer after `from` in the server's log.
pub fn password_exchanges_by_clients(server: &TokenServer, from: usize) -> Vec<String> {
    server.log()[from..]
        .iter()
        .filter(|e| matches!(e.grant, Grant::Password | Grant::Basic) && e.client_id != "coffer")
        .map(|e| format!("{e:?}"))
        .collect()
}

#[test]
fn docker_and_skopeo_use_renewed_identity_tokens_and_never_the_password() {
    let server = TokenServer::start(USER, PASSWORD);
    server.set(|b| {
        // Like most token servers, its GET endpoint gives docker's login no refresh token, so
        // docker stores the password, which coffer keeps and exchanges.
        b.refresh_on_get = false;
        b.refresh_lifetime = Some(LIFETIME);
        b.expires_in = Some(60);
    });
    let registry = token_registry(&server);
    let host = registry.host();
    let env = env_with("min_margin = \"1s\"\n");
    write_docker_config(&env, r#"{"credsStore": "coffer"}"#);
    env.coffer(&["mode", &host, "oauth2"]).success();

    let login = docker(
        &env,
        &["login", "--username", USER, "--password-stdin", &host],
        PASSWORD,
    );
    assert!(
        login.success().stdout().contains("Login Succeeded"),
        "{}",
        login.stdout()
    );
    let minted = Instant::now();
    let after_login = server.log().len();
    assert_eq!(
        server.credential_exchanges("coffer"),
        1,
        "{:?}",
        server.log()
    );

    let (user, first) = get(&env, &host);
    assert_eq!(user, "<token>");
    assert!(!first.contains(PASSWORD));

    let authfile = env.root().join("auth.json");
    env.write_private(
        &authfile,
        &format!(r#"{{"credHelpers": {{"{host}": "coffer"}}}}"#),
    );
    let authfile = authfile.to_str().expect("utf-8").to_owned();
    let image = push_image(&env, &registry, &authfile);
    let inspect = |env: &Env| {
        let run = docker(env, &["manifest", "inspect", "--insecure", &image], "");
        assert!(
            run.success()
                .stdout()
                .contains("application/vnd.docker.distribution.manifest.v2+json"),
            "{}",
            run.stdout()
        );
    };
    let skopeo_inspect = |env: &Env| {
        let run = skopeo(
            env,
            &[
                "inspect",
                "--tls-verify=false",
                "--authfile",
                &authfile,
                &format!("docker://{image}"),
            ],
        );
        assert!(
            run.success().stdout().contains("\"Digest\""),
            "{}",
            run.stdout()
        );
    };
    inspect(&env);
    skopeo_inspect(&env);
    // docker's manifest client introduces itself as `registry-client`, skopeo as
    // `containers/image`: both traded the identity token by a POST refresh grant.
    for client in ["registry-client", "containers/image"] {
        assert!(
            server.log()[after_login..]
                .iter()
                .any(|e| e.grant == Grant::Refresh && e.client_id == client && e.granted),
            "{client} used the identity token: {:?}",
            server.log()
        );
    }
    assert_eq!(
        password_exchanges_by_clients(&server, after_login),
        Vec::<String>::new()
    );

    // Past the identity token's expiry: the server refuses it now, and coffer hands out a new one.
    wait_until(minted + Duration::from_secs(LIFETIME + 1));
    assert!(
        !refresh_grant_accepted(&server, &first),
        "the first token has expired"
    );
    inspect(&env);
    skopeo_inspect(&env);
    let (_, renewed) = get(&env, &host);
    assert_ne!(renewed, first);
    assert!(refresh_grant_accepted(&server, &renewed));
    assert_eq!(server.credential_exchanges("coffer"), 2, "one renewal");
    assert_eq!(
        password_exchanges_by_clients(&server, after_login),
        Vec::<String>::new()
    );

    // A client that re-stores what `get` gave it (`docker login` without -u where the stored
    // answer is a username and password; docker 28 prompts instead for an identity token) must
    // not replace the password: a forced renewal, which needs it, proves it is still there.
    store(&env, &host, "<token>", &renewed).success();
    env.coffer(&["refresh", &host, "--force"]).success();
    assert_eq!(server.credential_exchanges("coffer"), 3);
    assert_eq!(
        password_exchanges_by_clients(&server, after_login),
        Vec::<String>::new()
    );

    assert_eq!(
        env.files_containing(PASSWORD),
        Vec::<std::path::PathBuf>::new()
    );
    docker(&env, &["logout", &host], "").success();
    assert_eq!(env.helper("list", "unused").success().stdout(), "{}\n");
    env.helper("get", &host).failure();
}

/// A server that follows the spec to the letter gives docker's own login a refresh token, so
/// docker stores that instead of the password: coffer keeps it as is and says why it cannot
/// renew it. `coffer login` and `skopeo login` hand coffer the password itself.
#[test]
fn clients_that_exchange_the_password_themselves_and_coffer_login() {
    let server = TokenServer::start(USER, PASSWORD);
    server.set(|b| b.refresh_lifetime = Some(3600));
    let registry = token_registry(&server);
    let host = registry.host();
    let env = env_with("");
    write_docker_config(&env, r#"{"credsStore": "coffer"}"#);
    env.coffer(&["mode", &host, "oauth2"]).success();

    docker(
        &env,
        &["login", "--username", USER, "--password-stdin", &host],
        PASSWORD,
    )
    .success();
    assert_eq!(server.credential_exchanges("coffer"), 0);
    let (user, docker_token) = get(&env, &host);
    assert_eq!(
        user, "<token>",
        "docker's own identity token, kept as it is"
    );
    let rows = crate::token_vault::status(&env);
    let error = rows[0]["last_error"]["message"].as_str().expect("why");
    assert!(error.contains("coffer login"), "{error}");

    // `coffer login`: the password goes to the vault and coffer derives the token.
    let login = Run::of(
        env.command(crate::harness::bin("coffer")).args([
            "login",
            &host,
            "--username",
            USER,
            "--password-stdin",
        ]),
        &format!("{PASSWORD}\n"),
    );
    assert!(
        login.success().stdout().contains("identity token"),
        "{}",
        login.stdout()
    );
    assert_eq!(server.credential_exchanges("coffer"), 1);
    let (_, coffer_token) = get(&env, &host);
    assert_ne!(coffer_token, docker_token);

    // skopeo's login sends the password through coffer's `store` (no offline token asked):
    // coffer exchanges it, and skopeo then copies and inspects with the identity token.
    // (skopeo refuses to log in over an identity token, so this is a fresh home.)
    let env = env_with("");
    write_docker_config(&env, r#"{"credsStore": "coffer"}"#);
    env.coffer(&["mode", &host, "oauth2"]).success();
    let authfile = env.root().join("auth.json");
    env.write_private(
        &authfile,
        &format!(r#"{{"credHelpers": {{"{host}": "coffer"}}}}"#),
    );
    let authfile = authfile.to_str().expect("utf-8").to_owned();
    Run::of(
        env.command("skopeo").args([
            "login",
            "--tls-verify=false",
            "--authfile",
            &authfile,
            "--username",
            USER,
            "--password-stdin",
            &host,
        ]),
        PASSWORD,
    )
    .success();
    assert_eq!(server.credential_exchanges("coffer"), 2);
    let from = server.log().len();
    let image = push_image(&env, &registry, &authfile);
    let inspect = skopeo(
        &env,
        &[
            "inspect",
            "--tls-verify=false",
            "--authfile",
            &authfile,
            &format!("docker://{image}"),
        ],
    );
    assert!(inspect.success().stdout().contains("\"Digest\""));
    docker(&env, &["manifest", "inspect", "--insecure", &image], "").success();
    assert_eq!(
        password_exchanges_by_clients(&server, from),
        Vec::<String>::new()
    );
    assert_eq!(
        env.files_containing(PASSWORD),
        Vec::<std::path::PathBuf>::new()
    );
}

//! The docker CLI and a real engine (engine.rs) through `credsStore: coffer`, against a loopback
//! registry with htpasswd and again with token auth in coffer's `oauth2` mode: login, build,
//! push, remove, pull, run; a classic-builder `docker build` from a private image (the CLI sends
//! every credential it gets from `list` and `get`); a Swarm service with `--with-registry-auth`;
//! logout, after which the registry refuses pull and run.

use std::time::{Duration, Instant};

use crate::e2e_docker::write_docker_config;
use crate::e2e_tokens::password_exchanges_by_clients;
use crate::engine::{Engine, derived_context, engine};
use crate::harness::{Env, Registry, Run};
use crate::token_server::{Grant, TokenServer, token_registry};
use crate::token_vault::env_with;

const USER: &str = "coffer-engine";
const PASSWORD: &str = "engine-Pa55word-0d9e27";

/// What a client said, out and err.
fn said(run: &Run) -> String {
    format!("{}{}", run.stdout(), run.stderr())
}

/// The run failed, and the registry's refusal is why.
fn refused(run: &Run) {
    let said = said(run);
    assert_ne!(run.code(), Some(0), "{} should fail: {said}", run.what);
    assert!(
        [
            "unauthorized",
            "no basic auth credentials",
            "denied",
            "authentication required"
        ]
        .iter()
        .any(|why| said.contains(why)),
        "{} failed, but not for want of credentials: {said}",
        run.what
    );
}

/// Polls `docker service ps` until the service's task runs, for up to a minute.
fn wait_running(engine: &Engine, env: &Env, service: &str) {
    let started = Instant::now();
    loop {
        let ps = engine.docker(
            env,
            &[
                "service",
                "ps",
                "--no-trunc",
                "--format",
                "{{.CurrentState}} | {{.Error}}",
                service,
            ],
            "",
        );
        let states = ps.success().stdout();
        if states.lines().any(|line| line.starts_with("Running")) {
            return;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "service {service} not running after 60 s: {states}"
        );
        std::thread::sleep(Duration::from_millis(250));
    }
}

/// Every flow of this file, with `env` set up for `host` (coffer's mode); `logged_in` runs
/// right after `docker login`.
fn build_push_pull_run_swarm_logout(env: &Env, host: &str, logged_in: impl FnOnce()) {
    let engine = engine();
    let docker = |args: &[&str]| engine.docker(env, args, "");
    write_docker_config(env, r#"{"credsStore": "coffer"}"#);
    let login = engine.docker(
        env,
        &["login", "--username", USER, "--password-stdin", host],
        PASSWORD,
    );
    assert!(
        login.success().stdout().contains("Login Succeeded"),
        "{}",
        said(&login)
    );
    logged_in();

    // Build, push, remove, pull, run.
    let image = format!("{host}/engine/busybox:1");
    engine.build_push_pull_run(env, &image, "hello from a private image");

    // The classic builder pulls the private base image with what `list` and `get` gave the CLI.
    docker(&["rmi", &image]).success();
    let derived = format!("{host}/engine/derived:1");
    let context = derived_context(env.root(), &image, "built on a private image");
    let build = docker(&["build", "--tag", &derived, &context.to_string_lossy()]);
    assert!(
        build
            .success()
            .stdout()
            .contains("Pulling from engine/busybox"),
        "{}",
        said(&build)
    );
    let run = docker(&["run", "--rm", "--network", "none", &derived]);
    assert_eq!(run.success().stdout(), "built on a private image\n");

    // A Swarm service pulls the private image with the credentials the CLI hands the manager.
    engine.swarm();
    docker(&["rmi", &image, &derived]).success();
    let service = format!("coffer-{}", host.replace([':', '.'], "-"));
    docker(&[
        "service",
        "create",
        "--detach",
        "--with-registry-auth",
        "--name",
        &service,
        &image,
        "sleep",
        "600",
    ])
    .success();
    wait_running(engine, env, &service);
    docker(&["service", "rm", &service]).success();

    // After logout the registry refuses the pull and the run: nothing else held the credential.
    docker(&["logout", host]).success();
    assert_eq!(env.helper("list", "unused").success().stdout(), "{}\n");
    // The service's pull left the image here: forget it (its container may still be going).
    docker(&["rmi", "--force", &image]).success();
    refused(&docker(&["pull", &image]));
    refused(&docker(&["run", "--rm", "--network", "none", &image]));

    let leaks = env.files_containing(PASSWORD);
    assert!(leaks.is_empty(), "the password in plaintext in {leaks:?}");
}

#[test]
fn engine_htpasswd_registry_build_push_pull_run_swarm_logout() {
    let registry = Registry::htpasswd(USER, PASSWORD);
    let env = Env::new();
    build_push_pull_run_swarm_logout(&env, &registry.host(), || ());
}

/// The same through a token server in `oauth2` mode: coffer trades the password once, and the
/// engine, the builder and the Swarm node only ever get an identity token.
#[test]
fn engine_token_registry_in_oauth2_mode_never_sees_the_password() {
    let server = TokenServer::start(USER, PASSWORD);
    // Like most token servers, no refresh token for docker's GET login: coffer keeps the
    // password and exchanges it itself.
    server.set(|b| b.refresh_on_get = false);
    let registry = token_registry(&server);
    let host = registry.host();
    let env = env_with("");
    env.coffer(&["mode", &host, "oauth2"]).success();

    // dockerd checks the password at login itself; from then on only coffer may use it.
    let after_login = std::cell::Cell::new(0);
    build_push_pull_run_swarm_logout(&env, &host, || after_login.set(server.log().len()));

    assert_eq!(
        server.credential_exchanges("coffer"),
        1,
        "{:?}",
        server.log()
    );
    assert_eq!(
        password_exchanges_by_clients(&server, after_login.get()),
        Vec::<String>::new()
    );
    assert!(
        server
            .log()
            .iter()
            .any(|e| e.grant == Grant::Refresh && e.client_id == "docker" && e.granted),
        "the engine used the identity token: {:?}",
        server.log()
    );
}

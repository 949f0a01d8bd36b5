//! docker-py, the Python library (PyPI `docker`, in a venv scripts/test makes): its credential
//! store client (store, get, list, erase) against docker-credential-coffer, and `images.pull`
//! through the engine with the credential it finds through `credsStore: coffer`.

use std::path::PathBuf;

use serde_json::{Value, json};

use crate::e2e_docker::write_docker_config;
use crate::engine::engine;
use crate::harness::{Env, Registry, Run, bin, skopeo_push};

const USER: &str = "coffer-py";
const PASSWORD: &str = "py-Pa55word-6a0f31";
const SCRIPT: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/integration/clients/docker_py.py"
);

/// The venv's python: `<target>/test-tools/docker-py`, beside the binaries' target folder.
fn python() -> PathBuf {
    let target = bin("coffer")
        .ancestors()
        .nth(2)
        .expect("target folder")
        .to_path_buf();
    let python = target.join("test-tools/docker-py/bin/python");
    assert!(
        python.is_file(),
        "docker-py is not installed in {}: run scripts/test, which makes that venv",
        python.display()
    );
    python
}

/// Runs one action of the script and returns what it printed.
fn docker_py(env: &Env, args: &[&str], input: &str) -> Value {
    let run = Run::of(
        env.command(python())
            .env("DOCKER_HOST", engine().host())
            .arg(SCRIPT)
            .args(args),
        input,
    );
    serde_json::from_str(run.success().stdout().trim())
        .unwrap_or_else(|e| panic!("{e}: {}", run.stdout()))
}

#[test]
fn docker_py_store_get_list_erase_and_pull_through_the_engine() {
    let registry = Registry::htpasswd(USER, PASSWORD);
    let env = Env::new();
    let host = registry.host();
    write_docker_config(&env, r#"{"credsStore": "coffer"}"#);

    assert_eq!(
        docker_py(&env, &["store", &host, USER], PASSWORD),
        Value::Null
    );
    assert_eq!(
        env.helper("list", "unused").success().stdout(),
        format!("{{\"{host}\":\"{USER}\"}}\n"),
        "docker-py's store went to coffer"
    );
    assert_eq!(
        docker_py(&env, &["get", &host], ""),
        json!({"ServerURL": host, "Username": USER, "Secret": PASSWORD})
    );
    assert_eq!(docker_py(&env, &["list"], ""), json!({ &host: USER }));

    // An image in the registry, then docker-py pulls it through the engine with coffer's answer.
    let authfile = env.root().join("auth.json");
    env.write_private(
        &authfile,
        &format!(r#"{{"credHelpers": {{"{host}": "coffer"}}}}"#),
    );
    let repository = format!("{host}/py/image");
    skopeo_push(
        &env,
        &mut env.command("skopeo"),
        authfile.to_str().expect("utf-8"),
        &format!("{repository}:1"),
    );
    let pulled = docker_py(&env, &["pull", &repository, "1"], "");
    assert_eq!(
        pulled["tags"],
        json!([format!("{repository}:1")]),
        "{pulled}"
    );
    let inspect = engine().docker(&env, &["image", "inspect", &format!("{repository}:1")], "");
    inspect.success();
    engine()
        .docker(&env, &["rmi", &format!("{repository}:1")], "")
        .success();

    assert_eq!(docker_py(&env, &["erase", &host], ""), Value::Null);
    assert_eq!(env.helper("list", "unused").success().stdout(), "{}\n");
    let gone = docker_py(&env, &["get", &host], "");
    assert_eq!(gone["error"], "CredentialsNotFound", "{gone}");
    let refused = docker_py(&env, &["pull", &repository, "1"], "");
    let message = refused["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("no basic auth credentials") || message.contains("unauthorized"),
        "the engine pulled without credentials: {refused}"
    );

    let leaks = env.files_containing(PASSWORD);
    assert!(leaks.is_empty(), "the password in plaintext in {leaks:?}");
}

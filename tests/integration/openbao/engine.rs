//! End to end with the real Docker engine (engine.rs): an admin's `docker login` on one HOME
//! writes the credential into OpenBao through `credsStore: coffer`, and another HOME, a node with
//! no local store and a read-only OpenBao token, builds nothing and holds nothing, yet pulls and
//! runs the private image through coffer. The admin's `docker logout` removes the entry for
//! every node: the node's pulls are refused once its cache time is past.

use std::time::Duration;

use serde_json::json;

use super::{Bao, node, root_token};
use crate::e2e_docker::write_docker_config;
use crate::engine::engine;
use crate::harness::{Registry, Run};

const USER: &str = "fleet-engine";
const PASSWORD: &str = "fleet-Pa55word-b8a41c";

fn refused(run: &Run) {
    let said = format!("{}{}", run.stdout(), run.stderr());
    assert_ne!(run.code(), Some(0), "{} should fail: {said}", run.what);
    assert!(
        [
            "unauthorized",
            "no basic auth credentials",
            "authentication required"
        ]
        .iter()
        .any(|why| said.contains(why)),
        "{} failed, but not for want of credentials: {said}",
        run.what
    );
}

#[test]
fn the_engine_pulls_with_credentials_that_exist_only_in_openbao() {
    let engine = engine();
    let bao = Bao::dev();
    let registry = Registry::htpasswd(USER, PASSWORD);
    let host = registry.host();
    let image = format!("{host}/fleet/hello:1");

    // The admin: the central store as root, and docker pointed at coffer.
    let admin = node(&format!("addresses = [\"{}\"]\n", bao.addr()));
    let token = root_token(&admin);
    let config = admin.coffer_home().join("config.toml");
    let text = std::fs::read_to_string(&config).expect("config");
    admin.write_private(
        &config,
        &format!(
            "{text}[openbao.auth]\nmethod = \"token\"\ntoken_file = \"{}\"\n",
            token.display()
        ),
    );
    write_docker_config(&admin, r#"{"credsStore": "coffer"}"#);
    engine
        .docker(
            &admin,
            &["login", "--username", USER, "--password-stdin", &host],
            PASSWORD,
        )
        .success();
    let stored = bao.ok(
        "GET",
        &format!("secret/data/coffer/registries/{host}"),
        None,
    );
    assert_eq!(stored["data"]["data"]["username"], USER);
    assert_eq!(stored["data"]["data"]["secret"], PASSWORD);
    assert!(
        admin.files_containing(PASSWORD).is_empty(),
        "only in OpenBao"
    );
    engine.build_push_pull_run(&admin, &image, "hello from the fleet");
    engine.docker(&admin, &["rmi", &image], "").success();

    // The node: a token that may only read the registries, no vault, no keychain.
    bao.ok(
        "PUT",
        "sys/policies/acl/pull",
        Some(json!({"policy": "path \"secret/data/coffer/registries/*\" { capabilities = [\"read\"] }"})),
    );
    let created = bao.ok(
        "POST",
        "auth/token/create",
        Some(json!({"policies": ["pull"], "ttl": "1h"})),
    );
    let node_token = created["auth"]["client_token"].as_str().expect("token");
    let worker = node(&format!(
        "addresses = [\"{}\"]\ncache_for = \"1s\"\nstale_for = \"1s\"\n",
        bao.addr()
    ))
    .with_var("BAO_TOKEN", node_token);
    write_docker_config(&worker, r#"{"credsStore": "coffer"}"#);
    let pull = engine.docker(&worker, &["pull", &image], "");
    pull.success();
    let run = engine.docker(&worker, &["run", "--rm", "--network", "none", &image], "");
    assert_eq!(run.success().stdout(), "hello from the fleet\n");
    assert!(
        worker.files_containing(PASSWORD).is_empty(),
        "the node keeps nothing on disk"
    );
    assert!(
        !worker.coffer_home().join("vault.coffer").exists(),
        "and has no vault"
    );
    engine.docker(&worker, &["rmi", &image], "").success();

    // The admin logs out: the entry is gone for every node once the node's cache time is past.
    engine.docker(&admin, &["logout", &host], "").success();
    std::thread::sleep(Duration::from_millis(2100));
    refused(&engine.docker(&worker, &["pull", &image], ""));
}

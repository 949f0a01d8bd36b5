//! docker CLI and skopeo, end to end through docker-credential-coffer, against a real registry.

use std::fs;

pub use crate::harness::docker;
use crate::harness::{Env, Registry, Run, require, skopeo_push};

const USER: &str = "coffer-e2e";
const PASSWORD: &str = "e2e-Pa55word-9f3b1c";

pub fn skopeo(env: &Env, args: &[&str]) -> Run {
    require("skopeo");
    Run::of(env.command("skopeo").args(args), "")
}

pub fn write_docker_config(env: &Env, json: &str) {
    env.write_private(&env.docker_config().join("config.json"), json);
}

/// Pushes a one-layer image with skopeo, its credentials coming from coffer via credHelpers.
pub fn push_image(env: &Env, registry: &Registry, authfile: &str) -> String {
    let image = format!("{}/e2e/image:latest", registry.host());
    skopeo_push(env, &mut env.command("skopeo"), authfile, &image);
    image
}

#[test]
fn docker_login_manifest_inspect_logout_through_coffer() {
    let registry = Registry::htpasswd(USER, PASSWORD);
    let env = Env::new();
    let host = registry.host();
    write_docker_config(
        &env,
        r#"{"credsStore": "coffer", "psFormat": "table {{.ID}}"}"#,
    );

    let login = docker(
        &env,
        &["login", "--username", USER, "--password-stdin", &host],
        PASSWORD,
    );
    login.success();
    assert!(
        login.stdout().contains("Login Succeeded"),
        "{}",
        login.stdout()
    );

    // docker recorded the registry but no secret; coffer holds it.
    let config = fs::read_to_string(env.docker_config().join("config.json")).expect("config.json");
    let config: serde_json::Value = serde_json::from_str(&config).expect("json");
    assert_eq!(config["credsStore"], "coffer");
    assert_eq!(config["psFormat"], "table {{.ID}}", "other settings kept");
    assert_eq!(
        config["auths"][&host],
        serde_json::json!({}),
        "no inline auth: {config}"
    );
    let list = env.helper("list", "unused");
    assert_eq!(
        list.success().stdout(),
        format!("{{\"{host}\":\"{USER}\"}}\n")
    );

    // skopeo reads the same entry through credHelpers to push; docker reads it to inspect.
    let authfile = env.root().join("auth.json");
    env.write_private(
        &authfile,
        &format!(r#"{{"credHelpers": {{"{host}": "coffer"}}}}"#),
    );
    let image = push_image(&env, &registry, authfile.to_str().expect("utf-8"));
    let inspect = docker(&env, &["manifest", "inspect", "--insecure", &image], "");
    inspect.success();
    assert!(
        inspect
            .stdout()
            .contains("application/vnd.docker.distribution.manifest.v2+json"),
        "{}",
        inspect.stdout()
    );
    let skopeo_inspect = skopeo(
        &env,
        &[
            "inspect",
            "--tls-verify=false",
            "--authfile",
            authfile.to_str().expect("utf-8"),
            &format!("docker://{image}"),
        ],
    );
    assert!(
        skopeo_inspect.success().stdout().contains("\"Digest\""),
        "{}",
        skopeo_inspect.stdout()
    );

    // The password is in no file in plaintext: not in docker's config, not in the vault.
    assert_eq!(
        env.files_containing(PASSWORD),
        Vec::<std::path::PathBuf>::new()
    );

    docker(&env, &["logout", &host], "").success();
    assert_eq!(env.helper("list", "unused").success().stdout(), "{}\n");
    let denied = docker(&env, &["manifest", "inspect", "--insecure", &image], "");
    assert_ne!(
        denied.code(),
        Some(0),
        "after logout the registry must refuse: {}",
        denied.stdout()
    );
    assert_eq!(
        env.files_containing(PASSWORD),
        Vec::<std::path::PathBuf>::new()
    );
}

#[test]
fn skopeo_login_copy_inspect_through_cred_helpers() {
    let registry = Registry::htpasswd(USER, PASSWORD);
    let env = Env::new();
    let host = registry.host();
    let authfile = env.root().join("auth.json");
    env.write_private(
        &authfile,
        &format!(r#"{{"credHelpers": {{"{host}": "coffer"}}}}"#),
    );
    let authfile = authfile.to_str().expect("utf-8").to_owned();

    let login = Run::of(
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
    );
    login.success();
    assert_eq!(
        env.helper("list", "unused").success().stdout(),
        format!("{{\"{host}\":\"{USER}\"}}\n")
    );
    let auth = fs::read_to_string(&authfile).expect("auth.json");
    assert!(
        !auth.contains(PASSWORD),
        "skopeo wrote the password to auth.json: {auth}"
    );

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
    assert!(
        inspect
            .success()
            .stdout()
            .contains(&image.replace(":latest", "")),
        "{}",
        inspect.stdout()
    );
    assert_eq!(
        env.files_containing(PASSWORD),
        Vec::<std::path::PathBuf>::new()
    );

    skopeo(&env, &["logout", "--authfile", &authfile, &host]).success();
    assert_eq!(env.helper("list", "unused").success().stdout(), "{}\n");
}

#[test]
fn parallel_stores_lose_no_entry() {
    let env = Env::new();
    let stores: Vec<_> = (0..16)
        .map(|i| {
            let request = format!(
                r#"{{"ServerURL":"https://r{i}.example","Username":"u{i}","Secret":"s{i}"}}"#
            );
            let mut cmd = env.command(crate::harness::bin("docker-credential-coffer"));
            cmd.arg("store");
            std::thread::spawn(move || Run::of(&mut cmd, &request))
        })
        .collect();
    for store in stores {
        store.join().expect("thread").success();
    }
    let list = env.helper("list", "unused");
    let list: serde_json::Value = serde_json::from_str(&list.success().stdout()).expect("json");
    assert_eq!(list.as_object().expect("object").len(), 16, "{list}");
}

//! The cloud providers and the exec provider, each against a real or local token issuer, and
//! end to end: skopeo and the docker CLI reach a loopback registry whose htpasswd holds exactly
//! the password the issuer minted, so only the token coffer hands out opens it.

mod azure;
mod azure_chain;
mod chain;
mod ecr;
mod exec;
pub(crate) mod fixture;
mod google;
mod google_chain;
mod https_proxy;
mod scoping;
mod service_account_clouds;
pub(crate) mod service_accounts;

use std::time::{SystemTime, UNIX_EPOCH};

use crate::harness::{DOCKER, Env, Registry, Run, require, require_file, skopeo_push};

pub fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock")
        .as_secs()
}

/// Short margins so that tests see renewals within seconds.
pub fn quick_margins(env: &Env) {
    std::fs::write(
        env.coffer_home().join("config.toml"),
        "[tokens]\nmin_margin = \"1s\"\nretry_after = \"1s\"\n",
    )
    .expect("config");
}

/// `get` through the helper: (Username, Secret).
pub fn get(env: &Env, server_url: &str) -> (String, String) {
    let run = env.helper("get", server_url);
    run.success();
    let answer: serde_json::Value = serde_json::from_str(&run.stdout()).expect("get answers JSON");
    (
        answer["Username"].as_str().expect("Username").to_owned(),
        answer["Secret"].as_str().expect("Secret").to_owned(),
    )
}

/// Writes a 0600 file under the test's root.
pub fn private_file(env: &Env, name: &str, content: &str) -> String {
    let path = env.root().join(name);
    env.write_private(&path, content);
    path.to_str().expect("utf-8").to_owned()
}

/// skopeo pushes an image and inspects it, the docker CLI inspects its manifest, and the real
/// engine pulls it, all with the credential coffer hands out for the registry.
pub fn push_and_inspect_through_coffer(env: &Env, registry: &Registry) {
    require("skopeo");
    require_file(DOCKER, "docker.io");
    let host = registry.host();
    let authfile = private_file(
        env,
        "auth.json",
        &format!(r#"{{"credHelpers": {{"{host}": "coffer"}}}}"#),
    );
    env.write_private(
        &env.docker_config().join("config.json"),
        r#"{"credsStore": "coffer"}"#,
    );
    let image = format!("{host}/cloud/image:latest");
    skopeo_push(env, &mut env.command("skopeo"), &authfile, &image);
    let inspect = Run::of(
        env.command("skopeo").args([
            "inspect",
            "--tls-verify=false",
            "--authfile",
            &authfile,
            &format!("docker://{image}"),
        ]),
        "",
    );
    assert!(
        inspect.success().stdout().contains("\"Digest\""),
        "{}",
        inspect.stdout()
    );
    let manifest = Run::of(
        env.command(DOCKER)
            .args(["manifest", "inspect", "--insecure", &image]),
        "",
    );
    assert!(
        manifest.success().stdout().contains("schemaVersion"),
        "{}",
        manifest.stdout()
    );
    let engine = crate::engine::engine();
    engine
        .docker(env, &["pull", "--quiet", &image], "")
        .success();
    engine.docker(env, &["rmi", &image], "").success();
}

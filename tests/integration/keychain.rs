//! The keychain backend end to end: docker through coffer with entries in a real gnome-keyring,
//! the automatic choice and what `coffer doctor` says about it, the keychain-sealed vault, and
//! migration between the stores.

use std::fs;
use std::process::Command;

use crate::harness::{Env, Registry, Run, bin, oci_layout, require};
use crate::secret_service::SecretService;

const USER: &str = "coffer-kc";
const PASSWORD: &str = "kc-Pa55word-71d0e2";

/// `program` in `env`, on `service`'s bus when given.
pub fn command(env: &Env, service: Option<&SecretService>, program: &str) -> Command {
    let mut cmd = env.command(match program {
        "coffer" | "docker-credential-coffer" => bin(program),
        other => other.into(),
    });
    if let Some(service) = service {
        service.apply(&mut cmd);
    }
    cmd
}

pub fn run(
    env: &Env,
    service: Option<&SecretService>,
    program: &str,
    args: &[&str],
    input: &str,
) -> Run {
    Run::of(command(env, service, program).args(args), input)
}

fn store_request(url: &str, user: &str, secret: &str) -> String {
    format!(r#"{{"ServerURL":"{url}","Username":"{user}","Secret":"{secret}"}}"#)
}

#[test]
fn docker_login_inspect_logout_with_entries_in_the_keychain() {
    require("docker");
    let registry = Registry::htpasswd(USER, PASSWORD);
    let service = SecretService::start();
    let env = Env::empty();
    let host = registry.host();
    env.write_private(
        &env.docker_config().join("config.json"),
        r#"{"credsStore": "coffer"}"#,
    );
    let ss = Some(&service);

    // No flag: `auto` finds the unlocked keyring and says so.
    let doctor = run(&env, ss, "coffer", &["doctor"], "");
    assert!(
        doctor
            .stdout()
            .contains("store in use: the OS keychain, by auto"),
        "{}",
        doctor.stdout()
    );

    run(
        &env,
        ss,
        "docker",
        &["login", "--username", USER, "--password-stdin", &host],
        PASSWORD,
    )
    .success();
    let found = service.secret_tool(&["search", "--all", "service", "coffer"]);
    assert!(
        found.contains(&format!("attribute.server = {host}"))
            && found.contains(&format!("label = coffer: {host}"))
            && found.contains(&format!("\"user\":\"{USER}\"")),
        "{found}"
    );
    assert!(!env.vault().exists(), "nothing in a file vault");

    // skopeo pushes with the credentials coffer reads from the keychain (credHelpers).
    let authfile = env.root().join("auth.json");
    env.write_private(
        &authfile,
        &format!(r#"{{"credHelpers": {{"{host}": "coffer"}}}}"#),
    );
    require("skopeo");
    let image = format!("{host}/kc/image:latest");
    let layout = oci_layout(env.root());
    run(
        &env,
        ss,
        "skopeo",
        &[
            "--insecure-policy",
            "copy",
            "--dest-tls-verify=false",
            "--dest-authfile",
            authfile.to_str().expect("utf-8"),
            &format!("oci:{}:latest", layout.display()),
            &format!("docker://{image}"),
        ],
        "",
    )
    .success();
    let inspect = run(
        &env,
        ss,
        "docker",
        &["manifest", "inspect", "--insecure", &image],
        "",
    );
    assert!(
        inspect.success().stdout().contains("schemaVersion"),
        "{}",
        inspect.stdout()
    );
    assert_eq!(
        env.files_containing(PASSWORD),
        Vec::<std::path::PathBuf>::new()
    );

    run(&env, ss, "docker", &["logout", &host], "").success();
    assert_eq!(
        run(&env, ss, "docker-credential-coffer", &["list"], "unused")
            .success()
            .stdout(),
        "{}\n"
    );
    let left = service.secret_tool(&["search", "--all", "service", "coffer"]);
    assert!(
        !left.contains("attribute.service"),
        "logout left an item: {left}"
    );
}

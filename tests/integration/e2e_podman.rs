//! `coffer setup podman` end to end: skopeo (containers/image, like podman and buildah) logs
//! in, pushes, inspects and logs out through coffer against a real registry, with no auth file
//! named anywhere: the registries.conf.d drop-in alone routes it.

use std::fs;

use crate::harness::{Env, Registry, Run, oci_layout, require};

const USER: &str = "coffer-podman";
const PASSWORD: &str = "podman-Pa55word-71c2e4";

/// skopeo as a podman user runs it: without DOCKER_CONFIG, which would make docker's
/// config.json its default auth file.
fn skopeo(env: &Env, args: &[&str], input: &str) -> Run {
    require("skopeo");
    Run::of(
        env.command("skopeo").env_remove("DOCKER_CONFIG").args(args),
        input,
    )
}

#[test]
fn setup_podman_routes_skopeo_through_coffer_and_undo_stops_it() {
    let registry = Registry::htpasswd(USER, PASSWORD);
    let env = Env::new();
    let host = registry.host();
    let drop_in = env
        .home()
        .join(".config/containers/registries.conf.d/coffer.conf");

    let setup = env.coffer(&["setup", "podman"]);
    assert!(
        setup.success().stdout().contains("wrote"),
        "{}",
        setup.stdout()
    );
    assert!(drop_in.is_file());
    let again = env.coffer(&["setup", "podman"]);
    assert!(again.success().stdout().contains("nothing changed"));

    let login = [
        "login",
        "--tls-verify=false",
        "--username",
        USER,
        "--password-stdin",
        &host,
    ];
    skopeo(&env, &login, PASSWORD).success();
    assert_eq!(
        env.helper("list", "unused").success().stdout(),
        format!("{{\"{host}\":\"{USER}\"}}\n"),
        "the login went to coffer"
    );

    // The push and the inspect find their credentials in coffer: no auth file is given.
    let layout = oci_layout(env.root());
    let image = format!("{host}/podman/image:latest");
    skopeo(
        &env,
        &[
            "--insecure-policy",
            "copy",
            "--dest-tls-verify=false",
            &format!("oci:{}:latest", layout.display()),
            &format!("docker://{image}"),
        ],
        "",
    )
    .success();
    let inspect = skopeo(
        &env,
        &[
            "inspect",
            "--tls-verify=false",
            &format!("docker://{image}"),
        ],
        "",
    );
    assert!(
        inspect.success().stdout().contains("\"Digest\""),
        "{}",
        inspect.stdout()
    );
    let leaks = env.files_containing(PASSWORD);
    assert!(leaks.is_empty(), "the password in plaintext in {leaks:?}");

    skopeo(&env, &["logout", &host], "").success();
    assert_eq!(env.helper("list", "unused").success().stdout(), "{}\n");

    let undo = env.coffer(&["setup", "--undo", "podman"]);
    assert!(
        undo.success().stdout().contains("removed"),
        "{}",
        undo.stdout()
    );
    assert!(!drop_in.exists());
    // Without the drop-in, containers/image is back to its own auth.json: proof that the
    // drop-in was what sent the logins to coffer.
    skopeo(&env, &login, PASSWORD).success();
    assert_eq!(env.helper("list", "unused").success().stdout(), "{}\n");
    let auth_json = env.root().join("containers/auth.json");
    assert!(
        fs::read_to_string(&auth_json)
            .expect("auth.json")
            .contains(&host)
    );
}

/// podman or buildah as root, each with storage of its own (vfs) under `env`'s root, and
/// without DOCKER_CONFIG like `skopeo` above: only the drop-in routes their credentials.
fn container_tool(env: &Env, tool: &str, storage: &str, args: &[&str], input: &str) -> Run {
    require(tool);
    let dir = env.root().join(storage);
    let mut cmd = env.command(tool);
    cmd.env_remove("DOCKER_CONFIG")
        .arg("--root")
        .arg(dir.join("root"))
        .arg("--runroot")
        .arg(dir.join("run"))
        .args(["--storage-driver", "vfs"]);
    if tool == "podman" {
        cmd.args(["--cgroup-manager", "cgroupfs", "--events-backend", "file"])
            .arg("--tmpdir")
            .arg(dir.join("tmp"));
    }
    Run::of(cmd.args(args), input)
}

#[test]
fn podman_and_buildah_login_pull_push_from_logout_through_setup_podman() {
    let registry = Registry::htpasswd(USER, PASSWORD);
    let env = Env::new();
    let host = registry.host();
    env.coffer(&["setup", "podman"]).success();
    let podman = |args: &[&str], input: &str| container_tool(&env, "podman", "podman", args, input);
    // A fresh buildah storage each time: `from` must pull, so it must authenticate.
    let buildah_from = |storage: &str, image: &str| {
        container_tool(
            &env,
            "buildah",
            storage,
            &["from", "--tls-verify=false", image],
            "",
        )
    };

    let login = podman(
        &[
            "login",
            "--tls-verify=false",
            "--username",
            USER,
            "--password-stdin",
            &host,
        ],
        PASSWORD,
    );
    assert!(
        login.success().stdout().contains("Login Succeeded"),
        "{}",
        login.stdout()
    );
    assert_eq!(
        env.helper("list", "unused").success().stdout(),
        format!("{{\"{host}\":\"{USER}\"}}\n"),
        "podman's login went to coffer"
    );

    // A private image to start from, pushed by skopeo through the same drop-in.
    let layout = oci_layout(env.root());
    let base = format!("{host}/podman/base:1");
    skopeo(
        &env,
        &[
            "--insecure-policy",
            "copy",
            "--dest-tls-verify=false",
            &format!("oci:{}:latest", layout.display()),
            &format!("docker://{base}"),
        ],
        "",
    )
    .success();

    podman(&["pull", "--tls-verify=false", &base], "").success();
    let copy = format!("{host}/podman/copy:1");
    podman(&["tag", &base, &copy], "").success();
    podman(&["push", "--tls-verify=false", &copy], "").success();
    let from = buildah_from("buildah-1", &copy);
    assert!(
        from.success().stdout().ends_with("-working-container\n"),
        "{}",
        from.stdout()
    );
    let images = container_tool(
        &env,
        "buildah",
        "buildah-1",
        &["images", "--format", "{{.Name}}:{{.Tag}}"],
        "",
    );
    assert_eq!(
        images.success().stdout(),
        format!("{copy}\n"),
        "buildah pulled the private image"
    );

    let leaks = env.files_containing(PASSWORD);
    assert!(leaks.is_empty(), "the password in plaintext in {leaks:?}");

    podman(&["logout", &host], "").success();
    assert_eq!(env.helper("list", "unused").success().stdout(), "{}\n");
    for refused in [
        podman(&["pull", "--tls-verify=false", &copy], ""),
        buildah_from("buildah-2", &copy),
    ] {
        let said = format!("{}{}", refused.stdout(), refused.stderr());
        assert!(
            !refused.output.status.success() && said.contains("unauthorized"),
            "{} should be refused: {said}",
            refused.what
        );
    }
}

//! `coffer import` from what real tools wrote: docker's plaintext config.json after a `docker
//! login` with no helper, and the stores of the real pass and secretservice helpers.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::process::Command;

use crate::harness::{DOCKER, Env, Registry, Run, bin, require, require_file};
use crate::keychain::{command, run};
use crate::secret_service::SecretService;

const USER: &str = "coffer-import";
const PASSWORD: &str = "import-Pa55word-4be1";

/// A folder holding only `docker` (and `setsid`, which runs it), so docker finds no pass or
/// secretservice helper to pick and writes plaintext `auths`.
fn docker_only_path(env: &Env) -> PathBuf {
    require_file(DOCKER, "docker.io");
    let dir = env.root().join("docker-only");
    fs::create_dir(&dir).expect("mkdir");
    std::os::unix::fs::symlink(DOCKER, dir.join("docker")).expect("symlink");
    let setsid = std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default())
        .map(|d| d.join("setsid"))
        .find(|p| p.is_file())
        .unwrap_or_else(|| panic!("setsid is not installed"));
    std::os::unix::fs::symlink(setsid, dir.join("setsid")).expect("symlink");
    dir
}

#[test]
fn import_and_scrub_a_config_written_by_docker_login() {
    let registry = Registry::htpasswd(USER, PASSWORD);
    let env = Env::new();
    let host = registry.host();
    let docker_only = docker_only_path(&env);
    let login = Run::of(
        env.command(DOCKER).env("PATH", &docker_only).args([
            "login",
            "--username",
            USER,
            "--password-stdin",
            &host,
        ]),
        PASSWORD,
    );
    login.success();
    let config_path = env.docker_config().join("config.json");
    let original = fs::read_to_string(&config_path).expect("config.json");
    let auth = base64_of(&format!("{USER}:{PASSWORD}"));
    assert!(
        original.contains(&auth),
        "docker wrote plaintext: {original}"
    );

    let import = env.coffer(&["import", "docker", "--scrub"]);
    let out = import.success().stdout();
    assert!(out.contains("imported 1 credential"), "{out}");
    assert!(out.contains("added credsStore = \"coffer\""), "{out}");

    // Byte for byte: only the `auth` member went, and credsStore was appended.
    let expected = original
        .replace(&format!("{{\n\t\t\t\"auth\": \"{auth}\"\n\t\t}}"), "{}")
        .trim_end_matches("\n}")
        .to_owned()
        + ",\n\t\"credsStore\": \"coffer\"\n}";
    let scrubbed = fs::read_to_string(&config_path).expect("config.json");
    assert_eq!(scrubbed, expected, "original was:\n{original}");
    let backup = fs::read_dir(env.docker_config())
        .expect("list")
        .flatten()
        .map(|e| e.path())
        .find(|p| p.to_string_lossy().ends_with(".plaintext.bak"))
        .unwrap_or_else(|| panic!("no backup named as plaintext: {out}"));
    assert_eq!(fs::read_to_string(&backup).expect("backup"), original);
    assert_eq!(
        fs::metadata(&backup).expect("stat").permissions().mode() & 0o777,
        0o600
    );

    // docker now reads the credential from coffer.
    let got = env.helper("get", &host);
    assert!(got.success().stdout().contains(PASSWORD));
    let bin_dir = bin("coffer").parent().expect("dir").to_path_buf();
    let path = std::env::join_paths([bin_dir, docker_only]).expect("PATH");
    let inspect = Run::of(
        env.command(DOCKER).env("PATH", path).args([
            "manifest",
            "inspect",
            "--insecure",
            &format!("{host}/none/such:latest"),
        ]),
        "",
    );
    let said = format!("{}{}", inspect.stdout(), inspect.stderr());
    assert!(
        !said.contains("unauthorized") && said.contains("no such manifest"),
        "docker should be authenticated through coffer: {said}"
    );
}

/// Whatever the file is called, the advice after `import docker` names `import docker`.
#[test]
fn import_without_scrub_names_its_own_command_to_finish() {
    let env = Env::new();
    let file = env.root().join("saved-auths.json");
    let auth = base64_of(&format!("{USER}:{PASSWORD}"));
    env.write_private(
        &file,
        &format!(r#"{{"auths": {{"registry.example": {{"auth": "{auth}"}}}}}}"#),
    );
    let path = file.to_str().expect("utf-8");
    let out = env.coffer(&["import", "docker", "--file", path]);
    let out = out.success().stdout();
    assert!(out.contains("imported 1 credential"), "{out}");
    assert!(
        out.contains(&format!("`coffer import docker --file {path} --scrub`")),
        "{out}"
    );
}

/// Two spellings of one registry in the source: coffer would keep one, so it imports neither.
#[test]
fn import_refuses_two_entries_for_one_registry_and_stores_nothing() {
    let env = Env::new();
    let file = env.root().join("two-spellings.json");
    let (first, second) = (base64_of("alice:first-5e1a"), base64_of("bob:second-9c3d"));
    env.write_private(
        &file,
        &format!(
            r#"{{"auths": {{"ghcr.io": {{"auth": "{first}"}}, "GHCR.IO/": {{"auth": "{second}"}}}}}}"#
        ),
    );
    let run = env.coffer(&["import", "docker", "--file", file.to_str().expect("utf-8")]);
    run.failure().hides(&["first-5e1a", "second-9c3d"]);
    assert!(
        run.stderr()
            .contains("GHCR.IO/ and ghcr.io are the same registry")
            || run
                .stderr()
                .contains("ghcr.io and GHCR.IO/ are the same registry"),
        "{}",
        run.stderr()
    );
    assert!(!run.stdout().contains("imported"), "{}", run.stdout());
    env.helper("get", "ghcr.io").failure();
}

fn base64_of(text: &str) -> String {
    let out = Command::new("base64")
        .arg("-w0")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .and_then(|mut child| {
            use std::io::Write;
            child
                .stdin
                .take()
                .expect("stdin")
                .write_all(text.as_bytes())?;
            child.wait_with_output()
        })
        .expect("base64");
    String::from_utf8(out.stdout).expect("utf-8")
}

#[test]
fn import_from_the_pass_helper() {
    for tool in ["gpg", "gpgconf", "pass", "docker-credential-pass"] {
        require(tool);
    }
    let env = Env::new();
    let gnupg = env.root().join("gnupg");
    fs::create_dir(&gnupg).expect("mkdir");
    fs::set_permissions(&gnupg, fs::Permissions::from_mode(0o700)).expect("chmod");
    let with_pass = |program: &str| {
        let mut cmd = env.command(program);
        cmd.env("GNUPGHOME", &gnupg)
            .env("PASSWORD_STORE_DIR", env.root().join("password-store"));
        cmd
    };
    let id = "coffer-test@example.invalid";
    Run::of(
        with_pass("gpg").args([
            "--batch",
            "--passphrase",
            "",
            "--quick-gen-key",
            id,
            "default",
            "default",
            "never",
        ]),
        "",
    )
    .success();
    Run::of(with_pass("pass").args(["init", id]), "").success();
    Run::of(
        with_pass("docker-credential-pass").arg("store"),
        &format!(
            r#"{{"ServerURL":"https://pass.example","Username":"{USER}","Secret":"{PASSWORD}"}}"#
        ),
    )
    .success();

    let import = Run::of(
        with_pass(bin("coffer").to_str().expect("utf-8")).args(["import", "pass"]),
        "",
    );
    let out = import.success().stdout();
    assert!(
        out.contains("imported 1 credential from docker-credential-pass"),
        "{out}"
    );
    let got = env.helper("get", "https://pass.example");
    assert!(got.success().stdout().contains(&format!(
        "\"Username\":\"{USER}\",\"Secret\":\"{PASSWORD}\""
    )));
    Run::of(with_pass("gpgconf").args(["--kill", "gpg-agent"]), "").success();
}

#[test]
fn import_from_the_secretservice_helper() {
    require("docker-credential-secretservice");
    let service = SecretService::start();
    let env = Env::new();
    let ss = Some(&service);
    run(
        &env,
        ss,
        "docker-credential-secretservice",
        &["store"],
        &format!(
            r#"{{"ServerURL":"https://ss.example","Username":"{USER}","Secret":"{PASSWORD}"}}"#
        ),
    )
    .success();
    let mut import = command(&env, ss, "coffer");
    import.env("COFFER_BACKEND", "file");
    let out = Run::of(import.args(["import", "secretservice"]), "");
    assert!(
        out.success()
            .stdout()
            .contains("imported 1 credential from docker-credential-secretservice"),
        "{}",
        out.stdout()
    );
    let got = env.helper("get", "https://ss.example");
    assert!(got.success().stdout().contains(PASSWORD));
}

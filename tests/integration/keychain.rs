//! The keychain backend end to end: docker through coffer with entries in a real gnome-keyring,
//! the automatic choice and what `coffer doctor` says about it, the keychain-sealed vault, and
//! migration between the stores.

use std::fs;
use std::process::Command;

use crate::harness::{DOCKER, Env, Registry, Run, bin, require_file, skopeo_push};
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
    require_file(DOCKER, "docker.io");
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
        DOCKER,
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
    let image = format!("{host}/kc/image:latest");
    skopeo_push(
        &env,
        &mut command(&env, ss, "skopeo"),
        authfile.to_str().expect("utf-8"),
        &image,
    );
    let inspect = run(
        &env,
        ss,
        DOCKER,
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

    run(&env, ss, DOCKER, &["logout", &host], "").success();
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

fn doctor(env: &Env, service: Option<&SecretService>) -> String {
    run(env, service, "coffer", &["doctor"], "").stdout()
}

#[test]
fn auto_picks_the_file_vault_without_a_bus_and_the_keychain_with_one() {
    let env = Env::new();
    let no_bus = doctor(&env, None);
    assert!(
        no_bus.contains(
            "store in use: the file vault, by auto, the default, because no D-Bus session"
        ),
        "{no_bus}"
    );
    assert!(
        no_bus.contains("dbus-run-session"),
        "names the fix: {no_bus}"
    );

    let bus_only = SecretService::bus_only();
    let no_service = doctor(&env, Some(&bus_only));
    assert!(
        no_service.contains("the file vault, by auto")
            && no_service.contains("no Secret Service (org.freedesktop.secrets)")
            && no_service.contains("apt install gnome-keyring"),
        "{no_service}"
    );

    let service = SecretService::start();
    // The file vault holds an entry the keychain does not: doctor says how to move it.
    run(
        &env,
        None,
        "docker-credential-coffer",
        &["store"],
        &store_request("a.example", "u", "s"),
    )
    .success();
    let keychain = doctor(&env, Some(&service));
    assert!(
        keychain.contains("store in use: the OS keychain, by auto, the default, because the keychain answers and is unlocked")
            && keychain.contains("coffer migrate --to keychain"),
        "{keychain}"
    );

    service.lock();
    let locked = doctor(&env, Some(&service));
    assert!(
        locked.contains("the file vault, by auto")
            && locked.contains("default collection (login keyring) is locked")
            && locked.contains("gnome-keyring-daemon --replace --unlock"),
        "{locked}"
    );
    // Asked for explicitly, a locked keychain is an error, never a silent fall back.
    let mut cmd = command(&env, Some(&service), "docker-credential-coffer");
    let get = Run::of(
        cmd.env("COFFER_BACKEND", "keychain").arg("get"),
        "a.example",
    );
    get.failure();
    assert!(get.stdout().contains("is locked"), "{}", get.stdout());
}

#[test]
fn keychain_sealed_vault_needs_no_passphrase() {
    let service = SecretService::start();
    let env = Env::empty();
    fs::remove_file(env.passphrase_file()).expect("no passphrase");
    let ss = Some(&service);
    let mut init = command(&env, ss, "coffer");
    Run::of(init.args(["init", "--sealing", "keychain"]), "").success();
    // init chose the file backend in config.toml: no flag from here on.
    run(
        &env,
        ss,
        "docker-credential-coffer",
        &["store"],
        &store_request("ghcr.io", "alice", PASSWORD),
    )
    .success();
    let got = run(&env, ss, "docker-credential-coffer", &["get"], "ghcr.io");
    assert!(got.success().stdout().contains(PASSWORD));
    assert!(env.vault().exists());
    assert!(
        service
            .secret_tool(&["search", "--all", "service", "coffer-vault-key"])
            .contains("label = coffer vault key ")
    );
    assert_eq!(
        env.files_containing(PASSWORD),
        Vec::<std::path::PathBuf>::new()
    );
    let doctor = doctor(&env, ss);
    assert!(
        doctor.contains("sealed by a key in the OS keychain"),
        "{doctor}"
    );

    // Without the keychain the vault cannot open, and says why instead of "not found".
    let denied = run(&env, None, "docker-credential-coffer", &["get"], "ghcr.io");
    denied.failure();
    assert!(
        denied.stdout().contains("no D-Bus session"),
        "{}",
        denied.stdout()
    );
}

#[test]
fn migrate_moves_every_entry_both_ways() {
    let service = SecretService::start();
    let env = Env::new();
    let ss = Some(&service);
    for i in 0..3 {
        let mut cmd = command(&env, None, "docker-credential-coffer");
        Run::of(
            cmd.arg("store"),
            &store_request(&format!("r{i}.example"), "u", &format!("s{i}")),
        )
        .success();
    }
    let to_keychain = run(&env, ss, "coffer", &["migrate", "--to", "keychain"], "");
    assert!(
        to_keychain
            .success()
            .stdout()
            .contains("moved 3 entries from the file vault to the OS keychain"),
        "{}",
        to_keychain.stdout()
    );
    let config = fs::read_to_string(env.coffer_home().join("config.toml")).expect("config");
    assert_eq!(config.trim(), "backend = \"keychain\"");
    let items = service.secret_tool(&["search", "--all", "service", "coffer"]);
    assert_eq!(
        items.matches("attribute.service = coffer").count(),
        3,
        "{items}"
    );
    let list = run(&env, ss, "docker-credential-coffer", &["list"], "unused");
    assert_eq!(
        list.success().stdout(),
        "{\"r0.example\":\"u\",\"r1.example\":\"u\",\"r2.example\":\"u\"}\n"
    );
    let mut file_list = command(&env, None, "docker-credential-coffer");
    file_list.env("COFFER_BACKEND", "file");
    assert_eq!(
        Run::of(file_list.arg("list"), "unused").success().stdout(),
        "{}\n"
    );

    let to_file = run(&env, ss, "coffer", &["migrate", "--to", "file"], "");
    assert!(
        to_file
            .success()
            .stdout()
            .contains("moved 3 entries from the OS keychain to the file vault"),
        "{}",
        to_file.stdout()
    );
    let items = service.secret_tool(&["search", "--all", "service", "coffer"]);
    assert!(!items.contains("attribute.service"), "{items}");
    let got = run(&env, ss, "docker-credential-coffer", &["get"], "r1.example");
    assert!(got.success().stdout().contains("\"Secret\":\"s1\""));
}

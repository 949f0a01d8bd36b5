//! The keychain end to end, against a real gnome-keyring: the store chosen once by the first entry
//! and recorded (the keychain-sealed vault on a desktop), the one-line errors of a context that
//! cannot reach it, no D-Bus after the choice, the desktop default locking with the keychain or
//! the session, docker through the item store, doctor on split entries and stray items, and
//! migration between the stores.

use std::fs;
use std::process::Command;

use crate::harness::{DOCKER, Env, Registry, Run, bin, require_file, skopeo_push};
use crate::secret_service::{ConnectionCounter, SecretService};

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

    // The item store is an explicit choice, recorded like any other.
    env.write_private(
        &env.coffer_home().join("config.toml"),
        "backend = \"keychain\"\n",
    );
    let doctor = run(&env, ss, "coffer", &["doctor"], "");
    assert!(
        doctor.stdout().contains(
            "store in use: the OS keychain, one item per entry, by backend = \"keychain\" in config.toml"
        ),
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

fn config(env: &Env) -> String {
    fs::read_to_string(env.coffer_home().join("config.toml")).unwrap_or_default()
}

/// The first entry chooses the store and records it: a keychain-sealed vault on a desktop, a
/// passphrase-sealed one without a keychain; a locked keychain chooses nothing.
#[test]
fn the_first_entry_chooses_the_store_and_config_toml_records_it() {
    // A desktop: no passphrase anywhere, the keychain unlocked.
    let service = SecretService::start();
    let desktop = Env::empty();
    fs::remove_file(desktop.passphrase_file()).expect("no passphrase");
    let before = doctor(&desktop, Some(&service));
    assert!(before.contains("store in use: none chosen yet"), "{before}");
    run(
        &desktop,
        Some(&service),
        "docker-credential-coffer",
        &["store"],
        &store_request("ghcr.io", "alice", PASSWORD),
    )
    .success();
    assert_eq!(config(&desktop).trim(), "backend = \"file\"");
    let after = doctor(&desktop, Some(&service));
    assert!(
        after.contains("store in use: the file vault, by backend = \"file\" in config.toml")
            && after.contains("sealed by a key in the OS keychain"),
        "{after}"
    );
    assert!(
        !service
            .secret_tool(&["search", "--all", "service", "coffer"])
            .contains("attribute.service = coffer\n"),
        "no item per entry"
    );
    run(&desktop, None, "coffer", &["lock"], "").success();

    // No session bus, and a bus without a Secret Service: a passphrase-sealed vault.
    let bus_only = SecretService::bus_only();
    for bus in [None, Some(&bus_only)] {
        let headless = Env::empty();
        run(
            &headless,
            bus,
            "docker-credential-coffer",
            &["store"],
            &store_request("a.example", "u", "s"),
        )
        .success();
        assert_eq!(config(&headless).trim(), "backend = \"file\"");
        let doctor = doctor(&headless, bus);
        assert!(
            doctor.contains("passphrase from COFFER_PASSPHRASE_FILE"),
            "{doctor}"
        );
    }

    // A locked keychain is a passing state: it chooses nothing and writes nothing.
    service.lock();
    let waiting = Env::empty();
    let refused = run(
        &waiting,
        Some(&service),
        "docker-credential-coffer",
        &["store"],
        &store_request("b.example", "u", "s"),
    );
    refused.failure();
    assert!(
        refused
            .stdout()
            .contains("has not chosen where to keep credentials yet")
            && refused.stdout().contains("is locked"),
        "{}",
        refused.stdout()
    );
    assert!(!waiting.vault().exists() && config(&waiting).is_empty());
}

/// A store made in the desktop session, then a call from a context without D-Bus (ssh, cron):
/// one line saying where the credentials are and what to do, never "not found", and nothing
/// written anywhere else.
#[test]
fn a_context_that_cannot_reach_the_recorded_store_says_where_the_credentials_are() {
    let service = SecretService::start();
    let ss = Some(&service);

    // The item store.
    let items = Env::empty();
    items.write_private(
        &items.coffer_home().join("config.toml"),
        "backend = \"keychain\"\n",
    );
    run(
        &items,
        ss,
        "docker-credential-coffer",
        &["store"],
        &store_request("ghcr.io", "alice", PASSWORD),
    )
    .success();
    for (action, input) in [
        ("get", "ghcr.io".to_owned()),
        ("store", store_request("ghcr.io", "alice", "other")),
        ("list", String::new()),
    ] {
        let denied = run(&items, None, "docker-credential-coffer", &[action], &input);
        denied.failure();
        let out = denied.stdout();
        assert!(
            out.starts_with(
                "coffer's credentials are in the OS keychain (backend = \"keychain\" in "
            ) && out.contains("cannot be reached here: no D-Bus session")
                && out.contains("coffer migrate --to file")
                && !out.to_lowercase().contains("not found")
                && out.trim_end().lines().count() == 1,
            "{action}: {out}"
        );
    }
    assert!(
        !items.vault().exists(),
        "nothing was written to a file vault"
    );
    assert!(
        run(&items, ss, "docker-credential-coffer", &["get"], "ghcr.io")
            .success()
            .stdout()
            .contains(PASSWORD)
    );

    // The desktop default, once its unlock window is over. A keychain of its own: one that
    // holds item-store entries already would make the first entry keep using the item store.
    let service = SecretService::start();
    let ss = Some(&service);
    let desktop = Env::empty();
    fs::remove_file(desktop.passphrase_file()).expect("no passphrase");
    run(
        &desktop,
        ss,
        "docker-credential-coffer",
        &["store"],
        &store_request("ghcr.io", "alice", PASSWORD),
    )
    .success();
    // While the window lasts every session of the user is served, ssh and cron included.
    let served = run(
        &desktop,
        None,
        "docker-credential-coffer",
        &["get"],
        "ghcr.io",
    );
    assert!(served.success().stdout().contains(PASSWORD));
    run(&desktop, None, "coffer", &["lock"], "").success();
    let vault = fs::read(desktop.vault()).expect("vault");
    for (action, input) in [
        ("get", "ghcr.io".to_owned()),
        ("store", store_request("ghcr.io", "alice", "other")),
    ] {
        let denied = run(
            &desktop,
            None,
            "docker-credential-coffer",
            &[action],
            &input,
        );
        denied.failure();
        let out = denied.stdout();
        assert!(
            out.starts_with("coffer's credentials are in ")
                && out.contains("sealed by a key in the OS keychain, which cannot be reached here: no D-Bus session")
                && out.contains("run `coffer unlock` in your desktop session")
                && !out.to_lowercase().contains("not found")
                && out.trim_end().lines().count() == 1,
            "{action}: {out}"
        );
    }
    assert_eq!(
        fs::read(desktop.vault()).expect("vault"),
        vault,
        "nothing written"
    );
    assert_eq!(config(&desktop).trim(), "backend = \"file\"");
    // `coffer unlock` in the desktop session opens it for the other sessions again.
    run(&desktop, ss, "coffer", &["unlock"], "").success();
    let again = run(
        &desktop,
        None,
        "docker-credential-coffer",
        &["get"],
        "ghcr.io",
    );
    assert!(again.success().stdout().contains(PASSWORD));
    run(&desktop, None, "coffer", &["lock"], "").success();
}

/// Once chosen, the store is opened without asking D-Bus anything: each call is given a "bus"
/// that counts connections, and the recorded vault's calls make none. Before the choice, the
/// same counter sees coffer look.
#[test]
fn after_the_choice_no_call_touches_d_bus() {
    let counter = ConnectionCounter::start();
    let undecided = Env::empty();
    let mut get = command(&undecided, None, "docker-credential-coffer");
    let _ = Run::of(counter.apply(&mut get).arg("get"), "ghcr.io");
    assert!(counter.connections() > 0, "the counter sees a probe");

    let service = SecretService::start();
    let desktop = Env::empty();
    fs::remove_file(desktop.passphrase_file()).expect("no passphrase");
    run(
        &desktop,
        Some(&service),
        "docker-credential-coffer",
        &["store"],
        &store_request("ghcr.io", "alice", PASSWORD),
    )
    .success();
    let headless = Env::new();
    run(
        &headless,
        None,
        "docker-credential-coffer",
        &["store"],
        &store_request("ghcr.io", "alice", PASSWORD),
    )
    .success();
    let before = counter.connections();
    for env in [&desktop, &headless] {
        for _ in 0..3 {
            let mut get = command(env, None, "docker-credential-coffer");
            let got = Run::of(counter.apply(&mut get).arg("get"), "ghcr.io");
            assert!(got.success().stdout().contains(PASSWORD));
        }
        let mut list = command(env, None, "docker-credential-coffer");
        Run::of(counter.apply(&mut list).arg("list"), "").success();
    }
    assert_eq!(
        counter.connections(),
        before,
        "no D-Bus connection after the choice"
    );
    run(&desktop, None, "coffer", &["lock"], "").success();

    // Where keyctl is refused the agent holds the key instead, started by the helper itself.
    let agent = |cmd: &mut Command| {
        cmd.env("COFFER_UNLOCK_MECHANISM", "agent");
    };
    let mut first = command(&desktop, Some(&service), "docker-credential-coffer");
    agent(&mut first);
    assert!(
        Run::of(first.arg("get"), "ghcr.io")
            .success()
            .stdout()
            .contains(PASSWORD)
    );
    let before = counter.connections();
    let mut get = command(&desktop, None, "docker-credential-coffer");
    agent(&mut get);
    let got = Run::of(counter.apply(&mut get).arg("get"), "ghcr.io");
    assert!(got.success().stdout().contains(PASSWORD));
    assert_eq!(
        counter.connections(),
        before,
        "the agent answered, not D-Bus"
    );
    let mut lock = command(&desktop, None, "coffer");
    agent(&mut lock);
    let locked = Run::of(lock.arg("lock"), "");
    assert!(
        locked.success().stdout().contains("coffer agent"),
        "{}",
        locked.stdout()
    );
}

/// The desktop default's key lives in the unlock cache for the unlock window only: locking the
/// keychain, or logging out, locks coffer within the timeout.
#[test]
fn locking_the_keychain_or_logging_out_locks_the_desktop_default_within_the_timeout() {
    let window = std::time::Duration::from_secs(2);
    let ready = |service: &SecretService| {
        let env = Env::empty();
        fs::remove_file(env.passphrase_file()).expect("no passphrase");
        env.write_private(
            &env.coffer_home().join("config.toml"),
            "[unlock]\ntimeout = \"2s\"\n",
        );
        run(
            &env,
            Some(service),
            "docker-credential-coffer",
            &["store"],
            &store_request("ghcr.io", "alice", PASSWORD),
        )
        .success();
        env
    };
    let get = |env: &Env, service: &SecretService| {
        run(
            env,
            Some(service),
            "docker-credential-coffer",
            &["get"],
            "ghcr.io",
        )
    };

    let service = SecretService::start();
    let env = ready(&service);
    assert!(config(&env).contains("backend = \"file\"") && config(&env).contains("timeout"));
    service.lock();
    // Within the window the cached key answers, without the keychain.
    assert!(get(&env, &service).success().stdout().contains(PASSWORD));
    std::thread::sleep(window + std::time::Duration::from_secs(1));
    let locked = get(&env, &service);
    locked.failure();
    assert!(
        locked
            .stdout()
            .contains("sealed by a key in the OS keychain")
            && locked.stdout().contains("is locked"),
        "{}",
        locked.stdout()
    );

    let mut session = SecretService::start();
    let env = ready(&session);
    assert!(get(&env, &session).success().stdout().contains(PASSWORD));
    session.log_out();
    std::thread::sleep(window + std::time::Duration::from_secs(1));
    let gone = get(&env, &session);
    gone.failure();
    assert!(
        gone.stdout()
            .contains("sealed by a key in the OS keychain, which cannot be reached here")
            && !gone.stdout().to_lowercase().contains("not found"),
        "{}",
        gone.stdout()
    );
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

    // Locked, without the keychain the vault cannot open, and says why instead of "not found".
    run(&env, None, "coffer", &["lock"], "").success();
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

/// Entries split across the item store and the file vault (an earlier coffer's `auto`, or a
/// `COFFER_BACKEND` override): `coffer doctor` says so and names the one command that merges
/// them. An item of coffer's service that is not a coffer entry breaks nothing, and doctor names
/// the command that deletes exactly that item.
#[test]
fn doctor_finds_split_entries_and_stray_items_and_names_the_exact_fix() {
    let service = SecretService::start();
    let ss = Some(&service);
    let env = Env::new();
    run(
        &env,
        None,
        "docker-credential-coffer",
        &["store"],
        &store_request("a.example", "u", "in-vault"),
    )
    .success();
    let mut override_store = command(&env, ss, "docker-credential-coffer");
    Run::of(
        override_store
            .env("COFFER_BACKEND", "keychain")
            .arg("store"),
        &store_request("b.example", "u", "in-keychain"),
    )
    .success();
    // A stray item under coffer's service, as a hand-made `secret-tool store` leaves one.
    let mut stray = Command::new("secret-tool");
    service.apply(&mut stray).args([
        "store",
        "--label=stray",
        "service",
        "coffer",
        "username",
        "//stray.example",
    ]);
    Run::of(&mut stray, "not an entry").success();

    let split = doctor(&env, ss);
    assert!(
        split.contains("entries are split: 1 in the OS keychain and 1 in the file vault")
            && split.contains("-> coffer migrate --to file")
            && split.contains(
                "the keychain item (service coffer, account //stray.example) is not a coffer entry"
            )
            && split.contains("-> secret-tool clear service 'coffer' username '//stray.example'"),
        "{split}"
    );
    let mut list = command(&env, ss, "docker-credential-coffer");
    let listed = Run::of(list.env("COFFER_BACKEND", "keychain").arg("list"), "");
    assert_eq!(listed.success().stdout(), "{\"b.example\":\"u\"}\n");

    let merged = run(&env, ss, "coffer", &["migrate", "--to", "file"], "");
    assert!(
        merged
            .success()
            .stdout()
            .contains("moved 1 entry from the OS keychain to the file vault"),
        "{}",
        merged.stdout()
    );
    for (url, secret) in [("a.example", "in-vault"), ("b.example", "in-keychain")] {
        let got = run(&env, None, "docker-credential-coffer", &["get"], url);
        assert!(got.success().stdout().contains(secret), "{url}");
    }
    let mut clear = Command::new("secret-tool");
    service
        .apply(&mut clear)
        .args(["clear", "service", "coffer", "username", "//stray.example"]);
    Run::of(&mut clear, "").success();
    let healthy = doctor(&env, ss);
    assert!(
        !healthy.contains("split") && !healthy.contains("not a coffer entry"),
        "{healthy}"
    );
}

/// Profiles are isolated in the item store too: each profile's entries are items of its own
/// keychain service (`coffer` for the user's own, `coffer:NAME` for profile NAME's), so the
/// same registry keeps one credential per profile, and erasing one leaves the other.
#[test]
fn each_profile_keeps_its_own_keychain_items() {
    let service = SecretService::start();
    let env = Env::empty();
    let ss = Some(&service);
    let profile_home = env.coffer_home().join("profiles/ci");
    fs::create_dir_all(&profile_home).expect("profile home");
    for home in [env.coffer_home(), profile_home] {
        env.write_private(&home.join("config.toml"), "backend = \"keychain\"\n");
    }
    let helper = |profile: Option<&str>, action: &str, input: &str| {
        let mut cmd = command(&env, ss, "docker-credential-coffer");
        if let Some(profile) = profile {
            cmd.env("COFFER_PROFILE", profile);
        }
        Run::of(cmd.arg(action), input)
    };
    let registry = "registry.profiles.example";
    helper(None, "store", &store_request(registry, "own", "own-Pa55")).success();
    helper(
        Some("ci"),
        "store",
        &store_request(registry, "ci-bot", "ci-Pa55"),
    )
    .success();

    let own = helper(None, "get", registry);
    assert!(
        own.success().stdout().contains(r#""Secret":"own-Pa55""#),
        "{}",
        own.stdout()
    );
    let ci = helper(Some("ci"), "get", registry);
    assert!(
        ci.success().stdout().contains(r#""Secret":"ci-Pa55""#),
        "{}",
        ci.stdout()
    );
    let items = service.secret_tool(&["search", "--all", "service", "coffer:ci"]);
    assert!(items.contains("\"user\":\"ci-bot\""), "{items}");
    assert!(!items.contains("\"user\":\"own\""), "{items}");

    helper(Some("ci"), "erase", registry).success();
    assert_eq!(helper(Some("ci"), "list", "").success().stdout(), "{}\n");
    let own = helper(None, "get", registry);
    assert!(
        own.success().stdout().contains(r#""Secret":"own-Pa55""#),
        "{}",
        own.stdout()
    );
}

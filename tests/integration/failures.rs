//! When things go wrong, the person learns why and what to do, and no failure is called
//! success: the helper's line on the terminal (docker hides its output), erases that a locked
//! vault refuses, advice that never goes in circles, passwd, root in a user's home, plaintext
//! copies, and hostile docker configs.

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;

use crate::e2e_docker::write_docker_config;
use crate::harness::{Env, PASSPHRASE, Registry, Run, bin, require, running_as_root};

const USER: &str = "coffer-failures";
const PASSWORD: &str = "failures-Pa55word-7c1d";
const WRONG: &str = "not the passphrase";

/// A vault holding a login to a real registry, made by a real `docker login`.
fn logged_in() -> (Registry, Env) {
    let registry = Registry::htpasswd(USER, PASSWORD);
    let env = Env::new();
    write_docker_config(&env, r#"{"credsStore": "coffer"}"#);
    require("docker");
    let login = Run::of(
        env.command("docker").args([
            "login",
            "--username",
            USER,
            "--password-stdin",
            &registry.host(),
        ]),
        PASSWORD,
    );
    login.success();
    (registry, env)
}

fn inspect_args(registry: &Registry) -> Vec<String> {
    ["manifest", "inspect", "--insecure"]
        .map(str::to_owned)
        .into_iter()
        .chain([format!("{}/team/app:1", registry.host())])
        .collect()
}

#[test]
fn a_failing_docker_command_tells_the_terminal_why_and_what_to_do() {
    let (registry, env) = logged_in();
    env.write_private(&env.passphrase_file(), &format!("{WRONG}\n"));

    // At a terminal: docker says its own thing, and coffer's line names cause and command.
    let run = Run::of(
        env.in_terminal("docker", &[]).args(inspect_args(&registry)),
        "",
    );
    let seen = run.stdout();
    assert_ne!(run.code(), Some(0), "{seen}");
    let line = seen
        .lines()
        .find(|l| l.starts_with("coffer: no credentials for"))
        .unwrap_or_else(|| panic!("no line from coffer on the terminal:\n{seen}"));
    assert!(
        line.contains(&registry.host())
            && line.contains("no basic auth credentials")
            && line.contains("COFFER_PASSPHRASE_FILE")
            && line.contains("the passphrase is wrong")
            && line.contains("`coffer unlock` in a terminal"),
        "{line}"
    );
    assert!(!seen.contains(WRONG) && !seen.contains(PASSWORD), "{seen}");

    // The protocol's answer is unchanged: one line on stdout, exit 1, nothing on stderr.
    let get = env.helper("get", &registry.host());
    get.failure();
    assert_eq!(get.stdout().lines().count(), 1);
    assert!(get.stdout().contains("the passphrase is wrong"));
    assert!(!get.stdout().starts_with("coffer:"));
    assert_eq!(get.stderr(), "");

    // Without a terminal, nothing but docker's own words.
    let quiet = Run::of(env.command("docker").args(inspect_args(&registry)), "");
    let said = format!("{}{}", quiet.stdout(), quiet.stderr());
    assert!(!said.contains("coffer: no credentials"), "{said}");

    // And doctor shows the failures docker hid, with their error.
    let doctor = env.coffer(&["doctor"]);
    let out = doctor.stdout();
    assert!(out.contains("recent failures (access log):"), "{out}");
    assert!(
        out.lines().any(|l| l.contains("get")
            && l.contains(&registry.host())
            && l.contains("docker")
            && l.contains("the passphrase is wrong")),
        "{out}"
    );
}

#[test]
fn a_logout_a_locked_vault_refuses_is_recorded_shown_and_finished_later() {
    let (registry, env) = logged_in();
    let host = registry.host();
    let passphrase_file = env.passphrase_file();
    let kept = env.root().join("passphrase.kept");
    fs::rename(&passphrase_file, &kept).expect("take the passphrase away");

    // Headless: docker ignores the helper's failure, coffer does not call it success.
    let logout = Run::of(env.command("docker").args(["logout", &host]), "");
    logout.success();
    let erase = env.helper("erase", &host);
    erase.failure();
    assert!(
        erase.stdout().contains("was NOT erased"),
        "{}",
        erase.stdout()
    );

    let ls = env.coffer(&["ls"]);
    ls.failure();
    assert!(
        ls.stderr()
            .contains(&format!("{host}: logout failed (vault locked) at ")),
        "{}",
        ls.stderr()
    );
    let doctor = env.coffer(&["doctor"]);
    assert!(
        doctor
            .stdout()
            .contains(&format!("{host}: logout failed (vault locked) at ")),
        "{}",
        doctor.stdout()
    );

    // At a terminal with a wrong passphrase file, the person is told at once.
    env.write_private(&passphrase_file, &format!("{WRONG}\n"));
    let seen = Run::of(env.in_terminal("docker", &[]).args(["logout", &host]), "").stdout();
    assert!(
        seen.lines()
            .any(|l| l.starts_with(&format!("coffer: {host} was NOT erased"))
                && l.contains("`coffer unlock` does it now")),
        "{seen}"
    );

    // The next command that opens the vault finishes the erase before anything else.
    fs::rename(&kept, &passphrase_file).expect("give the passphrase back");
    let unlock = env.coffer(&["unlock", "--timeout", "1m"]);
    assert!(
        unlock
            .success()
            .stdout()
            .contains(&format!("erased {host}")),
        "{}",
        unlock.stdout()
    );
    env.coffer(&["lock"]).success();
    assert_eq!(env.helper("list", "").success().stdout(), "{}\n");
    env.helper("get", &host).failure();
    let doctor = env.coffer(&["doctor"]).stdout();
    assert!(!doctor.contains("logout failed"), "{doctor}");
}

#[test]
fn a_get_with_a_pending_erase_finds_nothing_once_the_vault_opens() {
    let env = Env::new();
    env.helper(
        "store",
        r#"{"ServerURL":"r.example","Username":"u","Secret":"s3cret"}"#,
    )
    .success();
    let kept = env.root().join("passphrase.kept");
    fs::rename(env.passphrase_file(), &kept).expect("lock");
    env.helper("erase", "r.example").failure();
    fs::rename(&kept, env.passphrase_file()).expect("unlock");
    let get = env.helper("get", "r.example");
    assert_eq!(
        get.failure().stdout(),
        "credentials not found in native keychain\n"
    );
}

/// What a state looks like from outside: how to make it in a fresh home.
#[derive(Clone, Copy, Debug)]
enum State {
    /// First run: no vault, no passphrase source, no terminal.
    NoVault,
    /// A vault, no passphrase source, no terminal, nothing cached.
    Locked,
    /// A vault whose key `coffer unlock` cached; no passphrase source.
    Unlocked,
    /// A passphrase file that does not open the vault.
    WrongPassphrase,
    /// A vault and its passphrase file, but no terminal for what needs one.
    NoTerminal,
}

fn make(state: State) -> Env {
    let env = match state {
        State::NoVault => Env::empty(),
        _ => Env::new(),
    };
    if !matches!(state, State::NoVault) {
        env.helper(
            "store",
            r#"{"ServerURL":"r.example","Username":"u","Secret":"s3cret"}"#,
        )
        .success();
    }
    write_docker_config(
        &env,
        r#"{"auths": {"plain.example": {"auth": "dTpw"}}, "credsStore": "coffer"}"#,
    );
    match state {
        State::NoVault | State::Locked => fs::remove_file(env.passphrase_file()).expect("rm"),
        State::Unlocked => {
            env.coffer(&["unlock", "--timeout", "5m"]).success();
            fs::remove_file(env.passphrase_file()).expect("rm");
        }
        State::WrongPassphrase => {
            env.write_private(&env.passphrase_file(), &format!("{WRONG}\n"));
        }
        State::NoTerminal => {}
    }
    env
}

/// Every command a person or a client runs, by the name advice uses for it.
fn commands() -> Vec<(&'static str, Vec<&'static str>, &'static str)> {
    let store = r#"{"ServerURL":"new.example","Username":"u","Secret":"s"}"#;
    vec![
        ("docker login", vec!["helper", "store"], store),
        ("docker pull", vec!["helper", "get"], "r.example"),
        ("docker logout", vec!["helper", "erase"], "r.example"),
        ("helper list", vec!["helper", "list"], ""),
        (
            "coffer init",
            vec!["init", "--kdf-memory-mib", "19", "--kdf-iterations", "2"],
            "",
        ),
        ("coffer unlock", vec!["unlock", "--timeout", "5m"], ""),
        ("coffer ls", vec!["ls"], ""),
        ("coffer rm", vec!["rm", "r.example"], ""),
        ("coffer passwd", vec!["passwd"], ""),
        ("coffer doctor", vec!["doctor"], ""),
        ("coffer import", vec!["import", "docker", "--scrub"], ""),
        ("coffer export", vec!["export", "docker-config"], ""),
    ]
}

/// The commands an output tells the person to run: `coffer X` or `docker X` in backticks, by
/// their first two words. Advice to run something "in a terminal" moves to another state, so
/// it is an exit, not an edge, when it names the command that gave it.
fn advised(output: &str, from: &str) -> Vec<String> {
    let mut found = Vec::new();
    let mut rest = output;
    while let Some(start) = rest.find('`') {
        let Some(len) = rest[start + 1..].find('`') else {
            break;
        };
        let quoted = &rest[start + 1..start + 1 + len];
        rest = &rest[start + 2 + len..];
        let name: String = quoted
            .split_whitespace()
            .take(2)
            .collect::<Vec<_>>()
            .join(" ");
        if !(name.starts_with("coffer ") || name.starts_with("docker ")) {
            continue;
        }
        if name == from && rest.starts_with(" in a terminal") {
            continue;
        }
        if !found.contains(&name) {
            found.push(name);
        }
    }
    found
}

#[test]
fn every_state_and_command_has_a_way_forward_and_no_advice_loops() {
    let mut report = String::new();
    let mut loops = Vec::new();
    for state in [
        State::NoVault,
        State::Locked,
        State::Unlocked,
        State::WrongPassphrase,
        State::NoTerminal,
    ] {
        let mut edges: BTreeMap<String, Vec<String>> = BTreeMap::new();
        let mut failing = Vec::new();
        for (name, args, input) in commands() {
            // Each command in a fresh home: one command's success must not change the next one's state.
            let env = make(state);
            let run = if args[0] == "helper" {
                env.helper(args[1], input)
            } else {
                env.coffer(&args)
            };
            let text = format!("{}{}", run.stdout(), run.stderr());
            // "Not found" is an answer (docker pulls anonymously), not a failure.
            let not_found = text == "credentials not found in native keychain\n";
            if run.code() != Some(0) && !not_found {
                failing.push(name.to_owned());
                let forward = advised(&text, name);
                let names_a_way = !forward.is_empty()
                    || text.contains("COFFER_PASSPHRASE_FILE")
                    || text.contains("COFFER_NEW_PASSPHRASE_FILE")
                    || text.contains("in a terminal")
                    || text.contains("run it in a terminal");
                assert!(
                    names_a_way,
                    "{state:?}: `{name}` failed without a way forward:\n{text}"
                );
                report.push_str(&format!("{state:?} / {name} -> {forward:?}\n"));
                edges.insert(name.to_owned(), forward);
            }
            if matches!(state, State::Unlocked) {
                let _ = env.coffer(&["lock"]);
            }
        }
        // A loop: following advice from a failing command leads back to it through commands
        // that fail in the same state.
        for start in &failing {
            let mut stack = vec![(start.clone(), vec![start.clone()])];
            while let Some((at, path)) = stack.pop() {
                for next in edges.get(&at).into_iter().flatten() {
                    if next == start {
                        loops.push(format!("{state:?}: {} -> {next}", path.join(" -> ")));
                    } else if edges.contains_key(next) && !path.contains(next) {
                        let mut longer = path.clone();
                        longer.push(next.clone());
                        stack.push((next.clone(), longer));
                    }
                }
            }
        }
        if let State::NoVault = state {
            let env = make(state);
            let store = env.helper(
                "store",
                r#"{"ServerURL":"a.example","Username":"u","Secret":"s"}"#,
            );
            let said = store.failure().stdout();
            assert!(
                said.contains("no vault yet")
                    && said.contains("COFFER_PASSPHRASE_FILE")
                    && said.contains("`coffer init` in a terminal"),
                "{said}"
            );
            let import = env.coffer(&["import", "docker", "--scrub"]);
            assert!(
                !import.stderr().contains("locked") && import.stderr().contains("no vault yet"),
                "{}",
                import.stderr()
            );
        }
    }
    println!("{report}");
    assert!(
        loops.is_empty(),
        "advice loops:\n{}\n\nall advice:\n{report}",
        loops.join("\n")
    );
}

#[test]
fn passwd_asks_the_old_passphrase_first_and_says_one_thing() {
    let env = Env::new();
    fs::remove_file(env.passphrase_file()).expect("rm");
    let new = "a brand new passphrase";
    let run = Run::of(
        env.in_terminal(
            bin("coffer"),
            &[
                ("coffer vault passphrase: ", PASSPHRASE),
                ("new passphrase: ", new),
                ("Repeat the passphrase: ", "something else"),
            ],
        )
        .arg("passwd"),
        "",
    );
    let seen = run.stdout();
    assert_eq!(run.code(), Some(1), "{seen}");
    let old_at = seen.find("coffer vault passphrase: ").expect("old asked");
    let new_at = seen.find("new passphrase: ").expect("new asked");
    assert!(
        old_at < new_at,
        "the old passphrase must be asked first:\n{seen}"
    );
    assert_eq!(
        seen.matches("the two passphrases differ").count(),
        1,
        "one message, said once:\n{seen}"
    );

    // While unlocked, passwd still wants the old passphrase, and does not say "locked".
    env.write_private(&env.passphrase_file(), &format!("{PASSPHRASE}\n"));
    env.coffer(&["unlock", "--timeout", "1m"]).success();
    fs::remove_file(env.passphrase_file()).expect("rm");
    let unlocked = env.coffer(&["passwd"]);
    let said = unlocked.failure().stderr();
    assert!(
        !said.contains("is locked") && said.contains("needs the current passphrase"),
        "{said}"
    );
    env.coffer(&["lock"]).success();
}

#[test]
fn passwd_names_a_stale_passphrase_file_or_updates_it() {
    let env = Env::new();
    let new_file = env.root().join("new-passphrase");
    env.write_private(&new_file, "second passphrase\n");
    let run = Run::of(
        env.command(bin("coffer"))
            .arg("passwd")
            .env("COFFER_NEW_PASSPHRASE_FILE", &new_file),
        "",
    );
    let out = run.success().stdout();
    assert!(
        out.contains("stale:")
            && out.contains(&env.passphrase_file().display().to_string())
            && out.contains("still holds the old passphrase"),
        "{out}"
    );
    assert!(
        out.contains("1 entry") || out.contains("0 entries"),
        "{out}"
    );
    // The file is stale indeed: the helper cannot open the vault with it.
    env.helper("list", "").failure();

    env.write_private(&env.passphrase_file(), "second passphrase\n");
    env.write_private(&new_file, "third passphrase\n");
    let run = Run::of(
        env.command(bin("coffer"))
            .args(["passwd", "--update-passphrase-file"])
            .env("COFFER_NEW_PASSPHRASE_FILE", &new_file),
        "",
    );
    assert!(
        run.success()
            .stdout()
            .contains("now holds the new passphrase")
    );
    assert_eq!(
        fs::read_to_string(env.passphrase_file()).expect("read"),
        "third passphrase\n"
    );
    let mode = fs::metadata(env.passphrase_file())
        .expect("stat")
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
    env.helper("list", "").success();
}

fn vault_id(env: &Env) -> String {
    let bytes = fs::read(env.vault()).expect("vault");
    bytes[40..56].iter().map(|b| format!("{b:02x}")).collect()
}

fn keyctl(args: &[&str], input: Option<&[u8]>) -> Vec<u8> {
    require("keyctl");
    let mut cmd = Command::new("keyctl");
    cmd.args(args);
    let run = Run::of_bytes(&mut cmd, input.unwrap_or_default());
    run.success();
    run.output.stdout
}

fn cached_key(env: &Env) -> (String, Vec<u8>) {
    let name = format!("coffer:vault:{}", vault_id(env));
    let serial = String::from_utf8(keyctl(&["search", "@u", "user", &name], None))
        .expect("utf-8")
        .trim()
        .to_owned();
    let payload = keyctl(&["pipe", &serial], None);
    (serial, payload)
}

#[test]
fn key_rotation_shuts_out_a_key_cached_before_it() {
    for rotate in [false, true] {
        let env = Env::new();
        env.helper(
            "store",
            r#"{"ServerURL":"old.example","Username":"u","Secret":"old-secret"}"#,
        )
        .success();
        env.coffer(&["unlock", "--timeout", "5m"]).success();
        let (_, leaked) = cached_key(&env);
        let id_before = vault_id(&env);

        let new_file = env.root().join("new-passphrase");
        env.write_private(&new_file, "after the leak\n");
        let mut args = vec!["passwd", "--update-passphrase-file"];
        if rotate {
            args.push("--rotate-key");
        }
        let run = Run::of(
            env.command(bin("coffer"))
                .args(&args)
                .env("COFFER_NEW_PASSPHRASE_FILE", &new_file),
            "",
        );
        let out = run.success().stdout();
        env.helper(
            "store",
            r#"{"ServerURL":"new.example","Username":"u","Secret":"written-after"}"#,
        )
        .success();
        assert_eq!(vault_id(&env) != id_before, rotate, "{out}");

        // Whoever kept the old key puts it where coffer looks for this vault's key.
        env.coffer(&["unlock", "--timeout", "5m"]).success();
        let (serial, _) = cached_key(&env);
        keyctl(&["pupdate", &serial], Some(&leaked));
        fs::remove_file(env.passphrase_file()).expect("no passphrase");
        let get = env.helper("get", "new.example");
        if rotate {
            get.failure();
            assert!(!get.stdout().contains("written-after"));
            assert!(
                out.contains("key rotated") && out.contains("new vault id"),
                "{out}"
            );
        } else {
            assert!(
                get.success().stdout().contains("written-after"),
                "without rotation the old key still opens the vault"
            );
            assert!(out.contains("--rotate-key"), "{out}");
        }
        let _ = keyctl(&["unlink", &serial, "@u"], None);
    }
}

/// An unprivileged user made for one test and removed after it.
struct TestUser {
    name: String,
    home: std::path::PathBuf,
    uid: u32,
}

impl TestUser {
    fn create() -> TestUser {
        require("useradd");
        let name = format!("cofferu{}", std::process::id() % 100_000);
        let home = Path::new("/tmp").join(format!("{name}-home"));
        let status = Command::new("useradd")
            .args(["--create-home", "--home-dir"])
            .arg(&home)
            .args(["--shell", "/bin/sh", &name])
            .status()
            .expect("useradd");
        assert!(status.success(), "useradd {name} failed");
        let uid = String::from_utf8(
            Command::new("id")
                .args(["-u", &name])
                .output()
                .expect("id")
                .stdout,
        )
        .expect("utf-8")
        .trim()
        .parse()
        .expect("uid");
        TestUser { name, home, uid }
    }
}

impl Drop for TestUser {
    fn drop(&mut self) {
        let _ = Command::new("userdel")
            .args(["--remove", &self.name])
            .status();
        let _ = fs::remove_dir_all(&self.home);
    }
}

#[test]
fn root_with_a_users_home_is_refused_and_doctor_names_the_chown() {
    assert!(
        running_as_root(),
        "this test creates a user and runs coffer as root: run it as root (scripts/test does)"
    );
    let user = TestUser::create();
    let env = Env::empty();
    let as_root_with = |home: &Path, args: &[&str], input: &str| {
        let mut cmd = env.command(bin("coffer"));
        cmd.env("HOME", home)
            .env_remove("COFFER_HOME")
            .env_remove("DOCKER_CONFIG")
            .args(args);
        Run::of(&mut cmd, input)
    };
    let before = fs::read_dir(&user.home).expect("home").count();
    for args in [&["setup", "docker"][..], &["init"], &["ls"], &["doctor"]] {
        let run = as_root_with(&user.home, args, "");
        let said = run.failure().stderr();
        assert!(
            said.contains(&format!("belongs to {}", user.name))
                && said.contains(&format!("sudo -u {} coffer", user.name))
                && said.contains("sudo -H"),
            "{args:?}: {said}"
        );
    }
    let helper = Run::of(
        env.command(bin("docker-credential-coffer"))
            .env("HOME", &user.home)
            .env_remove("COFFER_HOME")
            .env_remove("DOCKER_CONFIG")
            .arg("list"),
        "",
    );
    assert!(
        helper.failure().stdout().contains("sudo -u"),
        "{}",
        helper.stdout()
    );
    assert_eq!(
        fs::read_dir(&user.home).expect("home").count(),
        before,
        "nothing was written into the user's home"
    );

    // Files an older root run left: doctor, run as the user, names each with its chown.
    let docker_dir = user.home.join(".docker");
    fs::create_dir(&docker_dir).expect("mkdir");
    std::os::unix::fs::chown(&docker_dir, Some(user.uid), Some(user.uid)).expect("chown");
    fs::write(
        docker_dir.join("config.json"),
        r#"{"credsStore": "coffer"}"#,
    )
    .expect("root file");
    fs::set_permissions(
        docker_dir.join("config.json"),
        fs::Permissions::from_mode(0o600),
    )
    .expect("chmod");
    let doctor = Run::of(
        Command::new("setpriv")
            .arg(format!("--reuid={}", user.uid))
            .arg(format!("--regid={}", user.uid))
            .args(["--clear-groups", "--"])
            .arg(bin("coffer"))
            .arg("doctor")
            .env_clear()
            .env("HOME", &user.home)
            .env("PATH", "/usr/bin:/bin"),
        "",
    );
    let out = doctor.stdout();
    let config = docker_dir.join("config.json");
    assert!(
        out.contains("cannot be read (permission denied)")
            && !out.contains("credsStore is not set"),
        "an unreadable file is not an unset one:\n{out}"
    );
    assert!(
        out.contains(&format!("sudo chown {}: {}", user.name, config.display())),
        "{out}"
    );
}

#[test]
fn plaintext_copies_are_named_found_and_removed_with_the_same_advice_everywhere() {
    let env = Env::new();
    let config = env.docker_config().join("config.json");
    env.write_private(
        &config,
        r#"{"auths": {"plain.example": {"auth": "dTpwbGFpbnB3"}}}"#,
    );
    let setup = env.coffer(&["setup", "docker"]);
    let out = setup.success().stdout();
    let backup = fs::read_dir(env.docker_config())
        .expect("list")
        .flatten()
        .map(|e| e.path())
        .find(|p| p.to_string_lossy().ends_with(".plaintext.bak"))
        .unwrap_or_else(|| panic!("no backup named as plaintext:\n{out}"));
    let import_advice = format!(
        "`coffer import docker --file {} --scrub` moves them into coffer",
        config.display()
    );
    let forget_advice = "`coffer forget-plaintext` deletes every plaintext copy";
    assert!(out.contains(&import_advice), "{out}");
    assert!(out.contains(forget_advice), "{out}");

    let doctor = env.coffer(&["doctor"]).stdout();
    assert!(doctor.contains(&import_advice), "{doctor}");
    assert!(
        doctor.contains(&format!("{} (a copy)", backup.display()))
            && doctor.contains(forget_advice),
        "{doctor}"
    );

    let import = env.coffer(&["import", "docker", "--scrub"]);
    let out = import.success().stdout();
    assert!(out.contains("imported 1 credential from"), "{out}");
    assert!(out.contains(forget_advice), "{out}");

    let forget = env.coffer(&["forget-plaintext"]);
    let out = forget.success().stdout();
    assert_eq!(out.matches("removed ").count(), 2, "{out}");
    assert!(!backup.exists());
    assert!(env.files_containing("dTpwbGFpbnB3").is_empty());
    let doctor = env.coffer(&["doctor"]).stdout();
    assert!(
        doctor.contains("no plaintext login in docker's or podman's configuration folders"),
        "{doctor}"
    );
}

#[test]
fn hostile_docker_configs_get_a_clear_error_and_a_symlink_stays_a_link() {
    let env = Env::new();
    let config = env.docker_config().join("config.json");
    std::os::unix::fs::symlink("/dev/zero", &config).expect("symlink");
    for args in [&["import", "docker"][..], &["setup", "docker"], &["doctor"]] {
        let started = std::time::Instant::now();
        let run = env.coffer(args);
        let said = format!("{}{}", run.stdout(), run.stderr());
        assert_eq!(run.code(), Some(1), "{args:?}: {said}");
        assert!(said.contains("not a regular file"), "{args:?}: {said}");
        assert!(started.elapsed().as_secs() < 10, "{args:?} took too long");
    }
    fs::remove_file(&config).expect("rm");
    let status = Command::new("mkfifo")
        .arg(&config)
        .status()
        .expect("mkfifo");
    assert!(status.success());
    let run = env.coffer(&["import", "docker", "--scrub"]);
    assert!(
        run.failure().stderr().contains("not a regular file"),
        "{}",
        run.stderr()
    );
    fs::remove_file(&config).expect("rm");

    let target_dir = env.root().join("dotfiles");
    fs::create_dir(&target_dir).expect("mkdir");
    let target = target_dir.join("docker-config.json");
    env.write_private(
        &target,
        r#"{"auths": {"plain.example": {"auth": "dTpwbGFpbnB3"}}}"#,
    );
    std::os::unix::fs::symlink(&target, &config).expect("symlink");
    env.coffer(&["import", "docker", "--scrub"]).success();
    assert!(
        fs::symlink_metadata(&config)
            .expect("stat")
            .file_type()
            .is_symlink(),
        "config.json is still a link"
    );
    let text = fs::read_to_string(&target).expect("target");
    assert!(
        !text.contains("dTpwbGFpbnB3") && text.contains("\"credsStore\": \"coffer\""),
        "{text}"
    );
}

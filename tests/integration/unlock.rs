//! `coffer unlock` and `coffer lock` through the real binaries, with each cache mechanism:
//! the kernel keyring, and the agent (forced, as where keyctl is forbidden).

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use coffer::secret_cache::MECHANISM_VAR;
use coffer::vault::{self, VaultKey};

use crate::harness::{Env, PASSPHRASE, Run, bin, require};

const URL: &str = "registry.unlock.example";
const STORED: &str =
    r#"{"ServerURL":"registry.unlock.example","Username":"u","Secret":"unlock-Pa55"}"#;
const ANSWER: &str =
    "{\"ServerURL\":\"registry.unlock.example\",\"Username\":\"u\",\"Secret\":\"unlock-Pa55\"}\n";

#[derive(Clone, Copy)]
enum Mechanism {
    Keyring,
    Agent,
}

impl Mechanism {
    fn name(self) -> &'static str {
        match self {
            Mechanism::Keyring => "keyring",
            Mechanism::Agent => "agent",
        }
    }
}

/// A vault holding one entry, its helper and coffer runs restricted to one mechanism.
struct Unlockable {
    env: Env,
    mechanism: Mechanism,
}

impl Unlockable {
    fn new(mechanism: Mechanism) -> Self {
        let env = Env::new();
        env.helper("store", STORED).success();
        Unlockable { env, mechanism }
    }

    fn coffer(&self, args: &[&str]) -> Run {
        Run::of(
            self.env
                .command(bin("coffer"))
                .env(MECHANISM_VAR, self.mechanism.name())
                .args(args),
            "",
        )
    }

    fn helper(&self, action: &str, input: &str) -> Run {
        Run::of(
            self.env
                .command(bin("docker-credential-coffer"))
                .env(MECHANISM_VAR, self.mechanism.name())
                .arg(action),
            input,
        )
    }

    fn forget_passphrase(&self) {
        fs::remove_file(self.env.passphrase_file()).expect("remove the passphrase file");
    }

    /// The vault's id and data key, from the passphrase, as the test's own knowledge.
    fn vault_id_and_key(&self) -> ([u8; 16], [u8; 32]) {
        let bytes = fs::read(self.env.vault()).expect("read the vault");
        let header = vault::key_header(&bytes).expect("header");
        let kek = vault::derive_kek(PASSPHRASE.as_bytes(), &header).expect("kek");
        let key = VaultKey::unwrap(&header, &kek).expect("the passphrase opens it");
        (header.vault_id, **key.data_key())
    }

    fn socket(&self) -> PathBuf {
        let (id, _) = self.vault_id_and_key();
        let name: String = id.iter().map(|b| format!("{b:02x}")).collect();
        self.env
            .root()
            .join("coffer-agent")
            .join(format!("vault-{name}.sock"))
    }

    /// The agent's pid, as `coffer doctor` reports it.
    fn agent_pid(&self) -> u32 {
        let doctor = self.coffer(&["doctor"]).stdout();
        let pid = doctor
            .split(", pid ")
            .nth(1)
            .and_then(|rest| rest.split(' ').next())
            .unwrap_or_else(|| panic!("doctor names no agent pid:\n{doctor}"));
        pid.parse().expect("pid")
    }

    fn assert_locked(&self) {
        let run = self.helper("get", URL);
        run.failure();
        assert!(
            run.stdout().contains("run `coffer unlock`"),
            "a locked vault names `coffer unlock`: {}",
            run.stdout()
        );
    }
}

fn running(pid: u32) -> bool {
    fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| !stat.contains(") Z "))
}

fn unlock_get_store_list_then_lock(mechanism: Mechanism) {
    let vault = Unlockable::new(mechanism);
    let unlock = vault.coffer(&["unlock", "--timeout", "2m"]);
    unlock.success();
    assert!(unlock.stdout().contains("unlocked"), "{}", unlock.stdout());
    vault.forget_passphrase();

    // No passphrase anywhere now: only the cache can open the vault.
    let get = vault.helper("get", URL);
    get.success();
    assert_eq!(get.stdout(), ANSWER);
    vault
        .helper(
            "store",
            r#"{"ServerURL":"second.unlock.example","Username":"v","Secret":"s2"}"#,
        )
        .success();
    let list = vault.helper("list", "unused");
    list.success();
    assert!(
        list.stdout().contains("second.unlock.example"),
        "{}",
        list.stdout()
    );

    let doctor = vault.coffer(&["doctor"]).stdout();
    let expected = match mechanism {
        Mechanism::Keyring => "unlocked in the kernel keyring",
        Mechanism::Agent => "unlocked in the coffer agent, pid",
    };
    assert!(doctor.contains(expected), "{doctor}");
    assert!(doctor.contains("left)"), "doctor says how long: {doctor}");

    // Changing the passphrase still takes the old one.
    let new_passphrase = vault.env.root().join("new-passphrase");
    vault
        .env
        .write_private(&new_passphrase, "a new passphrase\n");
    let passwd = Run::of(
        vault
            .env
            .command(bin("coffer"))
            .env(MECHANISM_VAR, mechanism.name())
            .env("COFFER_NEW_PASSPHRASE_FILE", &new_passphrase)
            .arg("passwd"),
        "",
    );
    passwd.failure();
    assert!(
        passwd.stderr().contains("needs the current passphrase")
            && !passwd.stderr().contains("is locked"),
        "{}",
        passwd.stderr()
    );

    let pid = matches!(mechanism, Mechanism::Agent).then(|| vault.agent_pid());
    let lock = vault.coffer(&["lock"]);
    lock.success();
    assert!(lock.stdout().contains("locked"), "{}", lock.stdout());
    vault.assert_locked();
    if let Some(pid) = pid {
        assert!(!vault.socket().exists(), "the agent removed its socket");
        wait_until(|| !running(pid), "the agent exits on `coffer lock`");
    }
    let again = vault.coffer(&["lock"]);
    again.success();
    assert!(
        again.stdout().contains("was not unlocked"),
        "{}",
        again.stdout()
    );
}

#[test]
fn keyring_unlock_get_store_list_then_lock() {
    unlock_get_store_list_then_lock(Mechanism::Keyring);
}

#[test]
fn agent_unlock_get_store_list_then_lock() {
    unlock_get_store_list_then_lock(Mechanism::Agent);
}

fn wait_until(done: impl Fn() -> bool, what: &str) {
    let started = Instant::now();
    while !done() {
        assert!(started.elapsed() < Duration::from_secs(10), "{what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn expires(mechanism: Mechanism) {
    let vault = Unlockable::new(mechanism);
    let unlocked_at = Instant::now();
    vault.coffer(&["unlock", "--timeout", "3s"]).success();
    vault.forget_passphrase();
    let pid = matches!(mechanism, Mechanism::Agent).then(|| vault.agent_pid());
    assert_eq!(vault.helper("get", URL).success().stdout(), ANSWER);
    // Whole seconds on a wall clock: "3s" ends 2 to 3 s after the unlock; then some slack.
    std::thread::sleep(Duration::from_millis(4500).saturating_sub(unlocked_at.elapsed()));
    vault.assert_locked();
    if let Some(pid) = pid {
        wait_until(|| !running(pid), "the agent exits at its timeout");
        assert!(!vault.socket().exists(), "the agent removed its socket");
    }
}

#[test]
fn keyring_unlock_expires() {
    expires(Mechanism::Keyring);
}

#[test]
fn agent_unlock_expires() {
    expires(Mechanism::Agent);
}

fn wrong_passphrase_caches_nothing(mechanism: Mechanism) {
    let vault = Unlockable::new(mechanism);
    vault
        .env
        .write_private(&vault.env.passphrase_file(), "not the passphrase\n");
    let unlock = vault.coffer(&["unlock"]);
    unlock.failure();
    assert!(
        unlock.stderr().contains("the passphrase is wrong"),
        "{}",
        unlock.stderr()
    );
    assert!(!unlock.stderr().contains("not the passphrase"));
    vault.forget_passphrase();
    vault.assert_locked();
    assert!(!vault.socket().exists(), "no agent was started");
    let none = vault.coffer(&["unlock"]);
    none.failure();
    assert!(
        none.stderr().contains("COFFER_PASSPHRASE_FILE"),
        "unlock without a passphrase says where to put one: {}",
        none.stderr()
    );
}

#[test]
fn keyring_wrong_passphrase_caches_nothing() {
    wrong_passphrase_caches_nothing(Mechanism::Keyring);
}

#[test]
fn agent_wrong_passphrase_caches_nothing() {
    wrong_passphrase_caches_nothing(Mechanism::Agent);
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

#[test]
fn agent_keeps_the_key_out_of_argv_environment_and_disk() {
    let vault = Unlockable::new(Mechanism::Agent);
    vault.forget_passphrase();
    let unlock = Run::of(
        vault
            .env
            .command(bin("coffer"))
            .env(MECHANISM_VAR, "agent")
            .env("COFFER_PASSPHRASE", PASSPHRASE)
            .args(["unlock", "--timeout", "2m"]),
        "",
    );
    unlock.success();
    let pid = vault.agent_pid();
    let (_, key) = vault.vault_id_and_key();
    let key_hex: String = key.iter().map(|b| format!("{b:02x}")).collect();
    let key_json = format!("{:?}", key.to_vec()).replace(' ', "");

    for file in ["cmdline", "environ"] {
        let bytes = fs::read(format!("/proc/{pid}/{file}")).expect("read /proc");
        for needle in [
            &key[..],
            key_hex.as_bytes(),
            key_json.as_bytes(),
            PASSPHRASE.as_bytes(),
        ] {
            assert!(
                !contains(&bytes, needle),
                "/proc/{pid}/{file} holds a secret"
            );
        }
    }
    let environ = fs::read(format!("/proc/{pid}/environ")).expect("environ");
    assert!(
        environ.is_empty(),
        "the agent runs with an empty environment"
    );
    let limits = fs::read_to_string(format!("/proc/{pid}/limits")).expect("limits");
    assert!(
        limits.lines().any(
            |l| l.starts_with("Max core file size") && l.split_whitespace().nth(4) == Some("0")
        ),
        "core dumps are off:\n{limits}"
    );
    let status = fs::read_to_string(format!("/proc/{pid}/status")).expect("status");
    let locked_kib: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmLck:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .expect("VmLck");
    assert!(
        locked_kib > 0,
        "the key's page is locked in memory:\n{status}"
    );

    let socket = vault.socket();
    let mode = |path: &PathBuf| fs::metadata(path).expect("stat").permissions().mode() & 0o777;
    assert_eq!(mode(&socket), 0o600);
    assert_eq!(mode(&socket.parent().expect("dir").to_path_buf()), 0o700);

    assert_eq!(vault.helper("get", URL).success().stdout(), ANSWER);
    for needle in [key_hex.as_bytes(), &key[..], key_json.as_bytes()] {
        assert_eq!(
            vault.env.files_containing(needle),
            Vec::<PathBuf>::new(),
            "the key is on disk"
        );
    }
    vault.coffer(&["lock"]).success();
}

#[test]
fn keyring_keeps_the_key_off_disk() {
    let vault = Unlockable::new(Mechanism::Keyring);
    vault.coffer(&["unlock", "--timeout", "2m"]).success();
    vault.forget_passphrase();
    assert_eq!(vault.helper("get", URL).success().stdout(), ANSWER);
    let (_, key) = vault.vault_id_and_key();
    let key_hex: String = key.iter().map(|b| format!("{b:02x}")).collect();
    for needle in [key_hex.as_bytes(), &key[..]] {
        assert_eq!(vault.env.files_containing(needle), Vec::<PathBuf>::new());
    }
    vault.coffer(&["lock"]).success();
}

/// systemd gives system services a session keyring that does not link the user keyring; a key
/// unlocked from one is still found from elsewhere, and the other way round.
#[test]
fn keyring_works_across_private_session_keyrings() {
    require("keyctl");
    let vault = Unlockable::new(Mechanism::Keyring);
    let in_private_session = |args: &[&str], input: &str| {
        Run::of(
            vault
                .env
                .command("keyctl")
                .env(MECHANISM_VAR, "keyring")
                .args(["session", "-"])
                .args(args),
            input,
        )
    };
    let coffer = bin("coffer");
    let helper = bin("docker-credential-coffer");
    in_private_session(
        &[coffer.to_str().expect("utf-8"), "unlock", "--timeout", "2m"],
        "",
    )
    .success();
    vault.forget_passphrase();
    assert_eq!(vault.helper("get", URL).success().stdout(), ANSWER);
    let get = in_private_session(&[helper.to_str().expect("utf-8"), "get"], URL);
    assert_eq!(get.success().stdout(), ANSWER);
    in_private_session(&[coffer.to_str().expect("utf-8"), "lock"], "").success();
    vault.assert_locked();
}

#[test]
fn an_unknown_mechanism_is_refused_by_name() {
    let env = Env::new();
    let run = Run::of(
        env.command(bin("docker-credential-coffer"))
            .env(MECHANISM_VAR, "floppy")
            .arg("list"),
        "unused",
    );
    run.failure();
    assert!(run.stdout().contains(MECHANISM_VAR), "{}", run.stdout());
}

#[test]
fn config_sets_the_default_timeout() {
    let vault = Unlockable::new(Mechanism::Keyring);
    vault.env.write_private(
        &vault.env.coffer_home().join("config.toml"),
        "[unlock]\ntimeout = \"1h 30m\"\n",
    );
    let unlock = vault.coffer(&["unlock"]);
    unlock.success();
    assert!(
        unlock.stdout().contains("for 1h 30m"),
        "{}",
        unlock.stdout()
    );
    vault.coffer(&["lock"]).success();
    vault.env.write_private(
        &vault.env.coffer_home().join("config.toml"),
        "[unlock]\ntimeout = \"soon\"\n",
    );
    let refused = vault.coffer(&["unlock"]);
    refused.failure();
    assert!(
        refused.stderr().contains("config.toml"),
        "{}",
        refused.stderr()
    );
}

/// Logout empties the runtime folder; an agent whose socket is gone wipes its key and exits.
#[test]
fn agent_exits_when_its_socket_is_removed() {
    let vault = Unlockable::new(Mechanism::Agent);
    let unlock = vault.coffer(&["unlock", "--timeout", "0"]);
    assert!(
        unlock
            .success()
            .stdout()
            .contains("until `coffer lock` or logout in the coffer agent"),
        "{}",
        unlock.stdout()
    );
    let pid = vault.agent_pid();
    assert!(running(pid));
    fs::remove_file(vault.socket()).expect("remove the socket");
    wait_until(|| !running(pid), "the agent exits when its socket is gone");
    vault.forget_passphrase();
    vault.assert_locked();
}

/// With no mechanism forced, a container's seccomp filter makes `coffer unlock` fall back to the
/// agent, say so, and every command behind the same filter finds the key there.
#[test]
fn keyctl_forbidden_by_seccomp_falls_back_to_the_agent() {
    let vault = Unlockable::new(Mechanism::Keyring);
    let confined = |program: PathBuf, args: &[&str], input: &str| {
        Run::of(vault.env.command_without_keyctl(program).args(args), input)
    };
    let unlock = confined(bin("coffer"), &["unlock", "--timeout", "2m"], "");
    unlock.success();
    assert!(
        unlock
            .stdout()
            .contains("the kernel keyring is unavailable here (keyctl is not permitted here"),
        "the fallback is said, not silent: {}",
        unlock.stdout()
    );
    assert!(
        unlock.stdout().contains("in the coffer agent"),
        "{}",
        unlock.stdout()
    );
    vault.forget_passphrase();

    let get = confined(bin("docker-credential-coffer"), &["get"], URL);
    assert_eq!(get.success().stdout(), ANSWER);
    let doctor = confined(bin("coffer"), &["doctor"], "").stdout();
    assert!(
        doctor.contains("the kernel keyring is unavailable: keyctl is not permitted here"),
        "{doctor}"
    );
    assert!(
        doctor.contains("unlocked in the coffer agent, pid"),
        "{doctor}"
    );
    // Outside the filter the keyring has nothing, and the agent still answers.
    let unconfined = Run::of(
        vault
            .env
            .command(bin("docker-credential-coffer"))
            .arg("get"),
        URL,
    );
    assert_eq!(unconfined.success().stdout(), ANSWER);

    let lock = confined(bin("coffer"), &["lock"], "");
    assert!(
        lock.success()
            .stdout()
            .contains("gone from the coffer agent"),
        "{}",
        lock.stdout()
    );
    let locked = confined(bin("docker-credential-coffer"), &["get"], URL);
    locked.failure();
    assert!(
        locked.stdout().contains("run `coffer unlock`"),
        "{}",
        locked.stdout()
    );
}

/// `coffer unlock 9>&1 | cat`: the agent must not keep the shell's extra descriptor, or `cat`
/// (a CI step's log reader) waits for the whole unlock, forever with `--timeout 0`.
#[test]
fn agent_does_not_keep_the_callers_descriptors() {
    let vault = Unlockable::new(Mechanism::Agent);
    let mut child = vault
        .env
        .command("sh")
        .env(MECHANISM_VAR, "agent")
        .args(["-c", "coffer unlock --timeout 0 9>&1 | cat"])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("sh");
    let started = Instant::now();
    let finished = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break Some(status);
        }
        if started.elapsed() > Duration::from_secs(20) {
            let _ = child.kill();
            break None;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let pid = vault.agent_pid();
    vault.coffer(&["lock"]).success();
    wait_until(|| !running(pid), "the agent exits on `coffer lock`");
    let status = finished.expect("`coffer unlock 9>&1 | cat` still waits after 20 s");
    assert!(status.success(), "{status:?}");
}

/// Without a runtime folder the agent's folder is in the shared temp folder, where another user
/// can put a link to a folder of the victim's: unlock refuses it and changes nothing there.
#[test]
fn agent_folder_linked_elsewhere_is_refused_without_a_chmod() {
    let vault = Unlockable::new(Mechanism::Agent);
    let tmp = vault.env.root().join("tmp");
    let victim = vault.env.root().join("victim");
    fs::create_dir(&tmp).expect("tmp");
    fs::create_dir(&victim).expect("victim");
    fs::set_permissions(&victim, fs::Permissions::from_mode(0o755)).expect("chmod");
    let uid = rustix::process::getuid().as_raw();
    std::os::unix::fs::symlink(&victim, tmp.join(format!("coffer-agent-{uid}"))).expect("link");
    let unlock = Run::of(
        vault
            .env
            .command(bin("coffer"))
            .env(MECHANISM_VAR, "agent")
            .env_remove("XDG_RUNTIME_DIR")
            .env("TMPDIR", &tmp)
            .args(["unlock", "--timeout", "1m"]),
        "",
    );
    unlock.failure();
    assert!(
        unlock.stderr().contains("must be a folder of yours"),
        "{}",
        unlock.stderr()
    );
    let mode = fs::metadata(&victim).expect("stat").permissions().mode() & 0o777;
    assert_eq!(mode, 0o755, "the victim's folder was changed");
    assert_eq!(fs::read_dir(&victim).expect("list").count(), 0);
}

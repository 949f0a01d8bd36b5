//! install.sh as a new user runs it, in a temporary HOME and prefix, with this build's binaries
//! (`--bin-dir`) so no release build is needed: a fresh install, a second run, an install over
//! a config full of other settings, --uninstall, and what the installed completions and man
//! pages do in real shells and in man.

use std::ffi::OsString;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::SystemTime;

use crate::harness::{Env, Run, bin, require};

struct Install {
    env: Env,
    prefix: PathBuf,
}

impl Install {
    fn new() -> Install {
        let env = Env::empty();
        let prefix = env.root().join("prefix");
        Install { env, prefix }
    }

    /// The PATH a user's shell has once the prefix's bin is on it: the installed programs and
    /// the system's, never the test build's.
    fn path(&self, with_prefix: bool) -> OsString {
        let system = std::env::var_os("PATH").unwrap_or_default();
        let build = bin("coffer").parent().expect("bin dir").to_path_buf();
        let dirs = std::env::split_paths(&system).filter(|dir| *dir != build);
        let prefix = with_prefix.then(|| self.prefix.join("bin"));
        std::env::join_paths(prefix.into_iter().chain(dirs)).expect("PATH")
    }

    fn command(&self, program: impl AsRef<std::ffi::OsStr>, with_prefix: bool) -> Command {
        let mut cmd = self.env.command(program);
        cmd.env("PATH", self.path(with_prefix));
        cmd
    }

    fn script(&self, args: &[&str], with_prefix: bool) -> Run {
        let mut cmd = self.command("bash", with_prefix);
        cmd.arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("install.sh"))
            .arg("--prefix")
            .arg(&self.prefix)
            .arg("--bin-dir")
            .arg(bin("coffer").parent().expect("bin dir"))
            .args(args);
        Run::of(&mut cmd, "")
    }

    fn run(&self, args: &[&str]) -> Run {
        self.script(args, true)
    }

    /// The installed coffer, as the user would run it.
    fn coffer(&self, args: &[&str]) -> Run {
        Run::of(self.command("coffer", true).args(args), "")
    }

    fn config(&self) -> PathBuf {
        self.env.docker_config().join("config.json")
    }

    fn write_config(&self, content: &str, mode: u32) {
        fs::write(self.config(), content).expect("config.json");
        fs::set_permissions(self.config(), fs::Permissions::from_mode(mode)).expect("chmod");
    }

    fn config_json(&self) -> serde_json::Map<String, serde_json::Value> {
        serde_json::from_slice(&fs::read(self.config()).expect("config.json")).expect("JSON")
    }

    fn backups(&self) -> Vec<PathBuf> {
        let mut found: Vec<PathBuf> = fs::read_dir(self.env.docker_config())
            .expect("list")
            .map(|e| e.expect("entry").path())
            .filter(|p| p.to_string_lossy().ends_with(".bak"))
            .collect();
        found.sort();
        found
    }

    /// Every file under the prefix with its modification time.
    fn installed(&self) -> Vec<(PathBuf, SystemTime)> {
        let mut found = Vec::new();
        let mut stack = vec![self.prefix.clone()];
        while let Some(dir) = stack.pop() {
            let Ok(entries) = fs::read_dir(&dir) else {
                continue;
            };
            for entry in entries.flatten() {
                let meta = entry.metadata().expect("stat");
                if meta.is_dir() {
                    stack.push(entry.path());
                } else {
                    found.push((entry.path(), meta.modified().expect("mtime")));
                }
            }
        }
        found.sort();
        found
    }
}

fn keys(object: &serde_json::Map<String, serde_json::Value>) -> Vec<&str> {
    object.keys().map(String::as_str).collect()
}

#[test]
fn fresh_install_then_a_second_run_changes_nothing() {
    let install = Install::new();
    let first = install.run(&[]);
    first.success();
    assert!(
        first.stdout().contains("credsStore set to \"coffer\""),
        "{}",
        first.stdout()
    );

    for program in ["coffer", "docker-credential-coffer"] {
        let path = install.prefix.join("bin").join(program);
        let mode = fs::metadata(&path).expect(program).permissions().mode();
        assert_eq!(mode & 0o777, 0o755, "{}", path.display());
    }
    for file in [
        "share/man/man1/coffer.1",
        "share/man/man1/coffer-setup.1",
        "share/man/man1/docker-credential-coffer.1",
        "share/bash-completion/completions/coffer",
        "share/zsh/site-functions/_coffer",
        "share/fish/vendor_completions.d/coffer.fish",
    ] {
        assert!(install.prefix.join(file).is_file(), "{file} not installed");
    }
    assert_eq!(
        install.config_json(),
        serde_json::json!({"credsStore": "coffer"})
            .as_object()
            .expect("object")
            .clone()
    );
    assert!(install.backups().is_empty(), "nothing to back up");
    let version = install.coffer(&["--version"]);
    assert!(version.success().stdout().starts_with("coffer "));

    let config = fs::read(install.config()).expect("config.json");
    let files = install.installed();
    let second = install.run(&[]);
    second.success();
    assert!(
        second.stdout().contains("already \"coffer\"")
            && second.stdout().contains("(0 new, 0 updated, "),
        "{}",
        second.stdout()
    );
    assert_eq!(fs::read(install.config()).expect("config.json"), config);
    assert!(
        install.backups().is_empty(),
        "no backup of an unchanged file"
    );
    assert_eq!(install.installed(), files, "no file rewritten");
}

#[test]
fn install_over_an_existing_config_keeps_every_key_and_backs_it_up() {
    let install = Install::new();
    let original = r#"{
	"auths": {
		"registry.example.com": {"auth": "YWxpY2U6czNjcmV0"},
		"ghcr.io": {}
	},
	"psFormat": "table {{.ID}}\t{{.Image}}",
	"credHelpers": {"123.dkr.ecr.us-east-1.amazonaws.com": "ecr-login"},
	"proxies": {"default": {"httpProxy": "http://proxy:3128"}},
	"detachKeys": "ctrl-e,e"
}"#;
    install.write_config(original, 0o644);
    let before: serde_json::Map<String, serde_json::Value> =
        serde_json::from_str(original).expect("JSON");

    let run = install.run(&["--yes"]);
    run.success();
    let after = install.config_json();
    let mut expected_keys = keys(&before);
    expected_keys.push("credsStore");
    assert_eq!(keys(&after), expected_keys, "order kept, credsStore added");
    assert_eq!(after["credsStore"], "coffer");
    for key in ["psFormat", "credHelpers", "proxies", "detachKeys"] {
        assert_eq!(after[key], before[key], "{key} kept");
    }
    let mode = fs::metadata(install.config())
        .expect("stat")
        .permissions()
        .mode();
    // Setup keeps the file's mode; the import that scrubbed it (accepted with --yes) rewrote
    // it private.
    assert_eq!(mode & 0o777, 0o600, "the scrubbed file is private");

    // Setup's backup of the original and the import's of what it scrubbed: both hold the
    // plaintext login, and say so in their names.
    let backups = install.backups();
    assert_eq!(backups.len(), 2, "{backups:?}");
    assert!(
        backups
            .iter()
            .all(|b| b.to_string_lossy().ends_with(".plaintext.bak")),
        "{backups:?}"
    );
    let first = backups
        .iter()
        .find(|b| fs::read_to_string(b).expect("backup") == original)
        .expect("the original is kept");
    let mode = fs::metadata(first).expect("stat").permissions().mode();
    assert_eq!(mode & 0o777, 0o644);

    assert!(
        run.stdout().contains("unencrypted: 1 login sits"),
        "{}",
        run.stdout()
    );
    // --yes accepted the offer: the login moved into coffer and out of the file.
    assert_eq!(after["auths"]["registry.example.com"].get("auth"), None);
    let list = install.coffer(&["ls"]);
    assert!(list.success().stdout().contains("registry.example.com"));
}

#[test]
fn uninstall_restores_the_previous_helper_and_removes_every_file() {
    let install = Install::new();
    install.write_config(
        r#"{"credsStore": "desktop", "psFormat": "table {{.ID}}"}"#,
        0o600,
    );
    install.run(&[]).success();
    assert_eq!(install.config_json()["credsStore"], "coffer");
    assert!(!install.installed().is_empty());

    let undo = install.run(&["--uninstall"]);
    undo.success();
    assert!(
        undo.stdout().contains("credsStore restored to \"desktop\""),
        "{}",
        undo.stdout()
    );
    let config = install.config_json();
    assert_eq!(keys(&config), ["credsStore", "psFormat"]);
    assert_eq!(config["credsStore"], "desktop");
    assert_eq!(config["psFormat"], "table {{.ID}}");
    assert!(
        !install.prefix.exists(),
        "the prefix install.sh created is gone: {:?}",
        install.installed()
    );
    assert!(!install.env.coffer_home().join("setup.json").exists());

    let again = install.run(&["--uninstall"]);
    assert!(
        again.success().stdout().contains("nothing to remove"),
        "{}",
        again.stdout()
    );
    assert_eq!(install.config_json(), config);
}

#[test]
fn without_the_helper_on_path_docker_is_left_alone() {
    let install = Install::new();
    let run = install.script(&[], false);
    run.success();
    assert!(run.stdout().contains("is not on PATH"), "{}", run.stdout());
    assert!(
        !install.config().exists(),
        "docker must not name a helper it cannot find"
    );

    let mut setup = install.command(install.prefix.join("bin/coffer"), false);
    let setup = Run::of(setup.args(["setup", "docker"]), "");
    assert_eq!(setup.code(), Some(1));
    assert!(setup.stderr().contains("not on PATH"), "{}", setup.stderr());
    assert!(!install.config().exists());
}

#[test]
fn an_invalid_config_is_never_touched() {
    let install = Install::new();
    install.write_config("{\"auths\": {", 0o600);
    let run = install.run(&[]);
    assert_eq!(run.code(), Some(1), "{}", run.stdout());
    assert!(
        run.stdout().contains("is not valid JSON"),
        "{}",
        run.stdout()
    );
    assert_eq!(
        fs::read_to_string(install.config()).expect("config"),
        "{\"auths\": {"
    );
    assert!(install.backups().is_empty());
}

#[test]
fn installed_completions_load_and_man_pages_render() {
    let install = Install::new();
    install.run(&["--no-configure"]).success();
    let share = install.prefix.join("share");

    for program in ["coffer", "docker-credential-coffer"] {
        let file = share.join("bash-completion/completions").join(program);
        let script = format!("source '{}' && complete -p {program}", file.display());
        let run = Run::of(install.command("bash", true).args(["-c", &script]), "");
        assert!(run.success().stdout().contains(program), "{}", run.stdout());
    }

    require("zsh");
    let script = format!(
        "fpath=('{}' $fpath); autoload -Uz compinit; compinit -u -D; \
         print -r -- $_comps[coffer] $_comps[docker-credential-coffer]",
        share.join("zsh/site-functions").display()
    );
    let run = Run::of(install.command("zsh", true).args(["-fc", &script]), "");
    assert_eq!(
        run.success().stdout(),
        "_coffer _docker-credential-coffer\n"
    );

    require("fish");
    let fish = share.join("fish/vendor_completions.d/coffer.fish");
    let script = format!("source '{}'; complete -C 'coffer se'", fish.display());
    let run = Run::of(
        install
            .command("fish", true)
            .args(["--no-config", "-c", &script]),
        "",
    );
    assert!(
        run.success().stdout().starts_with("setup\t"),
        "{}",
        run.stdout()
    );

    require("man");
    let pages: Vec<PathBuf> = fs::read_dir(share.join("man/man1"))
        .expect("man1")
        .map(|e| e.expect("entry").path())
        .collect();
    assert!(pages.len() >= 8, "{pages:?}");
    for page in &pages {
        let run = Run::of(
            install
                .command("man", true)
                .env("MANWIDTH", "80")
                .arg("--warnings")
                .arg("-l")
                .arg(page),
            "",
        );
        run.success();
        assert!(
            run.stderr().is_empty(),
            "{}: {}",
            page.display(),
            run.stderr()
        );
        assert!(run.stdout().contains("NAME"), "{}", run.stdout());
    }
    let setup = share.join("man/man1/coffer-setup.1");
    let run = Run::of(install.command("man", true).arg("-l").arg(setup), "");
    assert!(
        run.success()
            .stdout()
            .contains("coffer setup --undo docker"),
        "{}",
        run.stdout()
    );
}

#[test]
fn a_failed_import_still_ends_with_the_summary_of_what_did_and_did_not_happen() {
    let install = Install::new();
    install.write_config(
        r#"{"auths": {"registry.example.com": {"auth": "YWxpY2U6czNjcmV0"}}}"#,
        0o600,
    );
    // No passphrase anywhere: the import that --yes accepts cannot create the vault.
    fs::remove_file(install.env.passphrase_file()).expect("rm");
    let run = install.run(&["--yes"]);
    assert_eq!(run.code(), Some(1), "{}", run.stdout());
    let out = run.stdout();
    assert!(
        out.contains("is installed under"),
        "the summary is printed:\n{out}"
    );
    assert!(out.contains("docker       uses coffer"), "{out}");
    assert!(
        out.contains("plaintext    NOT moved: the import failed"),
        "{out}"
    );
    assert!(out.contains("coffer import docker --scrub"), "{out}");
    assert!(run.stderr().contains("no vault yet"), "{}", run.stderr());
}

#[test]
fn a_second_run_reports_podman_as_it_is() {
    let install = Install::new();
    install.run(&["--podman"]).success();
    let again = install.run(&[]);
    let out = again.success().stdout();
    assert!(
        out.contains("podman       uses coffer (set up earlier"),
        "{out}"
    );
}

/// install.sh building from source (through scripts/build-release), with a `cargo` that compiles
/// nothing and "builds" the binaries found in a folder: "a few minutes" is said only when there
/// is no release build yet.
#[test]
fn only_a_first_build_is_announced_as_taking_minutes() {
    let install = Install::new();
    let tools = install.env.root().join("tools");
    let made = install.env.root().join("made");
    fs::create_dir(&tools).expect("mkdir");
    fs::create_dir(&made).expect("mkdir");
    let cargo = tools.join("cargo");
    fs::write(
        &cargo,
        "#!/bin/sh\n\
         while [ $# -gt 0 ]; do [ \"$1\" = --target ] && triple=$2; shift; done\n\
         mkdir -p \"$CARGO_TARGET_DIR/$triple/release\"\n\
         cp \"$MADE\"/* \"$CARGO_TARGET_DIR/$triple/release/\" 2>/dev/null || true\n",
    )
    .expect("cargo");
    fs::set_permissions(&cargo, fs::Permissions::from_mode(0o755)).expect("chmod");
    let target = install.env.root().join("target");
    // scripts/build-release asks the real rustc for the host triple; rustup finds its
    // toolchains through RUSTUP_HOME, which the test's own HOME would hide.
    let rustup_home = std::env::var_os("RUSTUP_HOME").unwrap_or_else(|| {
        Path::new(&std::env::var_os("HOME").expect("HOME"))
            .join(".rustup")
            .into()
    });
    let run = |label: &str| {
        let mut path = OsString::from(&tools);
        path.push(":");
        path.push(install.path(true));
        let mut cmd = install.command("bash", true);
        cmd.env("PATH", path)
            .env("CARGO_TARGET_DIR", &target)
            .env("MADE", &made)
            .env("RUSTUP_HOME", &rustup_home)
            .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("install.sh"))
            .arg("--prefix")
            .arg(&install.prefix)
            .arg("--no-configure");
        let run = Run::of(&mut cmd, "");
        println!("{label}: {}", run.stdout());
        run
    };
    let first = run("first");
    assert!(
        first
            .stdout()
            .contains("the first build takes a few minutes"),
        "{}",
        first.stdout()
    );
    // That cargo made nothing, so the run stops; it still says how far it got.
    assert_ne!(first.code(), Some(0));
    assert!(
        first
            .stdout()
            .contains("install.sh stopped before the end: nothing was installed or changed"),
        "{}",
        first.stdout()
    );
    let release = target.join("release");
    fs::create_dir_all(&release).expect("mkdir");
    for program in ["coffer", "docker-credential-coffer"] {
        fs::copy(bin(program), release.join(program)).expect("copy");
        fs::copy(bin(program), made.join(program)).expect("copy");
    }
    let again = run("again");
    again.success();
    assert!(
        !again.stdout().contains("few minutes"),
        "{}",
        again.stdout()
    );
    assert!(
        again.stdout().contains("building coffer in release mode"),
        "{}",
        again.stdout()
    );
}

#[test]
fn uninstall_without_the_prefix_names_the_one_to_give() {
    let install = Install::new();
    install.run(&["--no-configure"]).success();
    // The user forgets --prefix; their PATH finds the installed coffer.
    let mut cmd = install.command("bash", true);
    cmd.arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("install.sh"))
        .args(["--uninstall", "--no-configure"]);
    let run = Run::of(&mut cmd, "");
    assert_eq!(run.code(), Some(1), "{}", run.stdout());
    assert!(
        run.stderr().contains(&format!(
            "run ./install.sh --uninstall --prefix {}",
            install.prefix.display()
        )),
        "{}",
        run.stderr()
    );
    assert!(
        install.prefix.join("bin/coffer").exists(),
        "nothing removed"
    );
}

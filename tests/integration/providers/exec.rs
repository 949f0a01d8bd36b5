//! The exec provider with small scripts: output, caching and renewal, timeout, failure, no shell,
//! a minimal environment, and end to end.

use std::os::unix::fs::PermissionsExt;
use std::time::{Duration, Instant};

use super::{get, push_and_inspect_through_coffer, quick_margins};
use crate::harness::{Env, Registry};

const HOST: &str = "127.0.0.1:5999";

/// An executable script under the test's root.
fn script(env: &Env, name: &str, body: &str) -> String {
    let path = env.root().join(name);
    std::fs::write(&path, format!("#!/bin/sh\n{body}")).expect("script");
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o700)).expect("chmod");
    path.to_str().expect("utf-8").to_owned()
}

fn login(env: &Env, host: &str, command: &str, extra: &[&str]) -> crate::harness::Run {
    let command = format!("command={command}");
    let mut args = vec!["login", host, "--mode", "exec", "--set", &command];
    args.extend_from_slice(extra);
    env.coffer(&args)
}

#[test]
fn output_is_the_secret_cached_and_renewed_after_its_lifetime() {
    let env = Env::new();
    quick_margins(&env);
    let count = env.root().join("count");
    let program = script(
        &env,
        "token.sh",
        &format!(
            "n=$(($(cat {0} 2>/dev/null || echo 0) + 1)); echo $n > {0}; printf 'token-%s\\n' $n\n",
            count.display()
        ),
    );
    let run = login(
        &env,
        HOST,
        &format!("[\"{program}\"]"),
        &["--set", "username=bot", "--set", "lifetime=4s"],
    );
    assert!(
        run.success().stdout().contains("a token from exec"),
        "{}",
        run.stdout()
    );
    let runs = || {
        std::fs::read_to_string(&count)
            .expect("count")
            .trim()
            .to_owned()
    };
    assert_eq!(get(&env, HOST), ("bot".into(), "token-1".into()));
    assert_eq!(
        get(&env, &format!("{HOST}/org/image")),
        ("bot".into(), "token-1".into())
    );
    assert_eq!(runs(), "1", "a fresh token is served from the vault");
    // Renewed once half of the 4 s lifetime has passed.
    std::thread::sleep(Duration::from_millis(2100));
    assert_eq!(get(&env, HOST), ("bot".into(), "token-2".into()));
    assert_eq!(get(&env, HOST), ("bot".into(), "token-2".into()));
    assert_eq!(runs(), "2");
    // Nothing about it is in any file but the vault, sealed.
    assert!(env.files_containing("token-2").is_empty());
}

#[test]
fn a_slow_command_is_killed_with_everything_it_started() {
    let env = Env::new();
    let pid_file = env.root().join("pid");
    let program = script(
        &env,
        "slow.sh",
        // In its group, in a session of its own (setsid), and in one whose parent is gone.
        &format!(
            "sleep 60 & echo $! >> {p}\n\
             setsid sleep 61 & echo $! >> {p}\n\
             (setsid sh -c 'sleep 62 & echo $! >> {p}' &)\n\
             wait\n",
            p = pid_file.display()
        ),
    );
    let started = Instant::now();
    let run = login(
        &env,
        HOST,
        &format!("[\"{program}\"]"),
        &["--set", "username=bot", "--set", "timeout=1s"],
    );
    assert_eq!(run.code(), Some(1), "{}", run.stderr());
    assert!(
        started.elapsed() < Duration::from_secs(8),
        "{:?}",
        started.elapsed()
    );
    assert!(
        run.stderr().contains("did not finish within its 1s"),
        "{}",
        run.stderr()
    );
    let pids = std::fs::read_to_string(&pid_file).expect("pids");
    assert_eq!(pids.lines().count(), 3, "{pids}");
    for pid in pids.lines() {
        assert!(!still_runs(pid), "the command's child {pid} still runs");
    }
    let get = env.helper("get", HOST);
    get.failure();
    assert!(get.stdout().contains("did not finish"), "{}", get.stdout());
}

#[test]
fn a_failing_command_is_named_and_its_output_never_shown() {
    let env = Env::new();
    let program = script(
        &env,
        "fails.sh",
        "echo STDOUT-SECRET-1234\necho STDERR-SECRET-5678 >&2\nexit 3\n",
    );
    let run = login(
        &env,
        HOST,
        &format!("[\"{program}\"]"),
        &["--set", "username=bot"],
    );
    assert_eq!(run.code(), Some(1));
    let get = env.helper("get", HOST);
    get.failure();
    assert!(
        get.stdout().contains("exited with status 3"),
        "{}",
        get.stdout()
    );
    for text in [run.stdout(), run.stderr(), get.stdout(), get.stderr()] {
        assert!(
            !text.contains("SECRET-1234") && !text.contains("SECRET-5678"),
            "{text}"
        );
    }
    // A stored credential is never handed out in its place: there is none to hand out here,
    // and the answer is an error, not an empty password.
    assert!(!get.stdout().contains("\"Secret\""), "{}", get.stdout());
    // `coffer token status` asks the rule `get` follows, so it says the same.
    let status = env.coffer(&["token", "status", "--json"]);
    let rows: serde_json::Value = serde_json::from_str(&status.success().stdout()).expect("json");
    assert_eq!(rows[0]["hands_out"], "no token", "{rows}");
    // Two lines of output are refused rather than guessed at.
    let two = script(&env, "two.sh", "echo warning: something\necho token\n");
    let run = login(
        &env,
        "127.0.0.1:5998",
        &format!("[\"{two}\"]"),
        &["--set", "username=bot"],
    );
    assert_eq!(run.code(), Some(1));
    assert!(
        run.stderr().contains("more than one line"),
        "{}",
        run.stderr()
    );
}

#[test]
fn configuration_values_never_reach_a_shell() {
    let env = Env::new();
    let args_file = env.root().join("args");
    let program = script(
        &env,
        "args.sh",
        &format!(
            "for a in \"$@\"; do printf '%s\\n' \"$a\"; done > {}\necho ok\n",
            args_file.display()
        ),
    );
    let pwned = env.root().join("pwned");
    let hostile = [
        format!("; touch {}", pwned.display()),
        format!("$(touch {})", pwned.display()),
        format!("`touch {}`", pwned.display()),
        format!("| touch {}", pwned.display()),
    ];
    let command = serde_json::to_string(
        &std::iter::once(program.clone())
            .chain(hostile.iter().cloned())
            .collect::<Vec<_>>(),
    )
    .expect("json");
    login(&env, HOST, &command, &["--set", "username=bot"]).success();
    assert!(!pwned.exists(), "a configuration value ran in a shell");
    let received = std::fs::read_to_string(&args_file).expect("args");
    assert_eq!(
        received.lines().collect::<Vec<_>>(),
        hostile.iter().map(String::as_str).collect::<Vec<_>>()
    );
    // A program name with a shell in it is a name, not a command line.
    let run = login(
        &env,
        "127.0.0.1:5997",
        &format!("[\"{program}; touch {}\"]", pwned.display()),
        &["--set", "username=bot"],
    );
    assert_eq!(run.code(), Some(1));
    assert!(
        run.stderr().contains("cannot be started"),
        "{}",
        run.stderr()
    );
    assert!(!pwned.exists());
}

#[test]
fn the_command_gets_a_minimal_environment() {
    let env = Env::new();
    let env_file = env.root().join("env");
    let program = script(
        &env,
        "env.sh",
        &format!("env > {}\necho ok\n", env_file.display()),
    );
    let command = format!("command=[\"{program}\"]");
    let mut coffer = env.command(crate::harness::bin("coffer"));
    coffer
        .args(["login", HOST, "--mode", "exec", "--set", &command])
        .args(["--set", "username=bot", "--set", "env=[\"ALLOWED_VAR\"]"])
        .env("ALLOWED_VAR", "yes")
        .env("AWS_SECRET_ACCESS_KEY", "must-not-leak");
    crate::harness::Run::of(&mut coffer, "").success();
    let seen = std::fs::read_to_string(&env_file).expect("env");
    let mut names: Vec<&str> = seen
        .lines()
        .filter_map(|l| l.split_once('=').map(|(n, _)| n))
        .filter(|n| *n != "PWD" && *n != "SHLVL" && *n != "_")
        .collect();
    names.sort_unstable();
    assert_eq!(names, ["ALLOWED_VAR", "HOME", "PATH"], "{seen}");
    assert!(!seen.contains("must-not-leak"));
}

#[test]
fn end_to_end_skopeo_and_docker_use_the_commands_token() {
    let password = "exec-minted-9d1f2e";
    let registry = Registry::htpasswd("ci-bot", password);
    let env = Env::new();
    let program = script(&env, "token.sh", &format!("echo {password}\n"));
    login(
        &env,
        &registry.host(),
        &format!("[\"{program}\"]"),
        &["--set", "username=ci-bot"],
    )
    .success();
    push_and_inspect_through_coffer(&env, &registry);
}

/// Whether `pid` runs: not gone, and not a zombie waiting for a parent to reap it.
pub(super) fn still_runs(pid: &str) -> bool {
    let stat = std::fs::read_to_string(format!("/proc/{}/stat", pid.trim())).unwrap_or_default();
    stat.rsplit_once(") ")
        .is_some_and(|(_, rest)| !rest.starts_with(['Z', 'X']))
}

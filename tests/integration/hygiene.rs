//! Secret hygiene through the real binaries: secrets never show in argv, the environment,
//! stdout or stderr of anything but a `get`, the access log or any file but the vault; and
//! processes that may hold a key can neither dump core nor be read by same-user debuggers.

use std::fs::{self, File};
use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use crate::harness::{Env, PASSPHRASE, Run, bin};

const SECRET: &str = "hygiene secret/9c3e!";

fn store_request(url: &str, secret: &str) -> String {
    serde_json::json!({"ServerURL": url, "Username": "alice", "Secret": secret}).to_string()
}

/// Waits until `pid` has `path` open: a writer that opened the lock file has read its request.
fn wait_until_open(pid: u32, path: &PathBuf) {
    let started = Instant::now();
    loop {
        let open = fs::read_dir(format!("/proc/{pid}/fd"))
            .into_iter()
            .flatten()
            .flatten()
            .any(|fd| fs::read_link(fd.path()).is_ok_and(|target| &target == path));
        if open {
            return;
        }
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "process {pid} never opened {}",
            path.display()
        );
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Every process whose command line holds `needle`.
fn cmdlines_containing(needle: &str) -> Vec<String> {
    fs::read_dir("/proc")
        .expect("/proc")
        .flatten()
        .filter_map(|e| fs::read(e.path().join("cmdline")).ok())
        .filter(|cmdline| {
            cmdline
                .windows(needle.len())
                .any(|w| w == needle.as_bytes())
        })
        .map(|cmdline| String::from_utf8_lossy(&cmdline).replace('\0', " "))
        .collect()
}

fn children_of(pid: u32) -> Vec<String> {
    fs::read_dir("/proc")
        .expect("/proc")
        .flatten()
        .filter_map(|e| fs::read_to_string(e.path().join("stat")).ok())
        .filter(|stat| {
            // pid (comm) state ppid ...; comm may hold spaces, so split after its ')'.
            stat.rsplit_once(')')
                .and_then(|(_, rest)| rest.split_whitespace().nth(1))
                .is_some_and(|ppid| ppid == pid.to_string())
        })
        .collect()
}

fn field(status: &str, name: &str) -> String {
    status
        .lines()
        .find_map(|l| l.strip_prefix(name))
        .unwrap_or_default()
        .split_whitespace()
        .next()
        .unwrap_or_default()
        .to_owned()
}

#[test]
fn a_process_holding_a_secret_exposes_it_nowhere() {
    let env = Env::new();
    env.helper("store", &store_request("other.example", "other-secret"))
        .success();
    let lock_path = env.coffer_home().join("vault.lock");
    let start = |program: &str, args: &[&str], input: &str| -> Child {
        let mut child = env
            .command_unprivileged(bin(program))
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn");
        use std::io::Write;
        let mut stdin = child.stdin.take().expect("stdin");
        stdin.write_all(input.as_bytes()).expect("input");
        child
    };
    // Holding the vault lock stops both writers inside, the helper with the secret in memory.
    let lock = File::options()
        .read(true)
        .write(true)
        .open(&lock_path)
        .expect("lock file");
    lock.lock().expect("lock");
    let helper = start(
        "docker-credential-coffer",
        &["store"],
        &store_request("hygiene.example", SECRET),
    );
    let coffer = start("coffer", &["rm", "other.example"], "");

    for (name, child) in [("helper", &helper), ("coffer", &coffer)] {
        let pid = child.id();
        wait_until_open(pid, &lock_path);
        for needle in [SECRET, PASSPHRASE] {
            assert_eq!(cmdlines_containing(needle), Vec::<String>::new(), "argv");
            let environ = fs::read(format!("/proc/{pid}/environ")).expect("environ");
            assert!(
                !environ
                    .windows(needle.len())
                    .any(|w| w == needle.as_bytes()),
                "{name}: environment holds a secret"
            );
        }
        let limits = fs::read_to_string(format!("/proc/{pid}/limits")).expect("limits");
        let core = limits
            .lines()
            .find(|l| l.starts_with("Max core file size"))
            .expect("core limit");
        assert_eq!(
            core.split_whitespace().skip(4).take(2).collect::<Vec<_>>(),
            ["0", "0"],
            "{name}: {core}"
        );
        // A process that is not dumpable has its /proc files owned by root, whoever it runs
        // as: same-user debuggers and /proc readers are shut out.
        let status = fs::read_to_string(format!("/proc/{pid}/status")).expect("status");
        let uid = field(&status, "Uid:");
        assert_ne!(uid, "0", "{name} must run unprivileged for this check");
        let owner = fs::metadata(format!("/proc/{pid}/environ"))
            .expect("stat")
            .uid();
        assert_eq!(owner, 0, "{name} (uid {uid}) is still dumpable");
        // coffer starts no other program, so no environment is passed on.
        assert_eq!(
            children_of(pid),
            Vec::<String>::new(),
            "{name} has children"
        );
    }
    drop(lock);
    for (name, child) in [("helper", helper), ("coffer", coffer)] {
        let output = child.wait_with_output().expect("wait");
        assert!(
            output.status.success(),
            "{name}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        for stream in [&output.stdout, &output.stderr] {
            assert!(!String::from_utf8_lossy(stream).contains(SECRET));
        }
    }
}

#[test]
fn secrets_never_reach_outputs_logs_or_other_files() {
    let env = Env::new();
    fs::write(
        env.docker_config().join("config.json"),
        r#"{"credsStore":"coffer"}"#,
    )
    .expect("docker config");
    let wrong_passphrase = "wrong passphrase 7a1b";
    let mut runs: Vec<Run> = Vec::new();

    runs.push(env.helper("store", &store_request("hygiene.example", SECRET)));
    runs[0].success();
    let got = env.helper("get", "hygiene.example");
    assert!(got.success().stdout().contains(SECRET), "get answers it");

    // Wrong input of every kind, with the secret in it.
    for (action, input) in [
        (
            "store",
            serde_json::json!({"ServerURL": "hygiene.example", "Secret": SECRET}).to_string(),
        ),
        (
            "store",
            serde_json::json!({"ServerURL": SECRET, "Username": "u", "Secret": "s"}).to_string(),
        ),
        (
            "store",
            serde_json::json!({"ServerURL": "r.example", "Username": "u", "Secret": [SECRET]})
                .to_string(),
        ),
        ("store", format!(r#"{{"Secret":"{SECRET}""#)),
        // A client that sends a whole store request to `get` or `erase`.
        ("get", store_request("hygiene.example", SECRET)),
        ("erase", store_request("hygiene.example", SECRET)),
        ("get", SECRET.to_owned()),
        ("frobnicate", SECRET.to_owned()),
    ] {
        let run = env.helper(action, &input);
        run.failure();
        runs.push(run);
    }
    // A wrong passphrase, then the right one again.
    env.write_private(&env.passphrase_file(), &format!("{wrong_passphrase}\n"));
    for (action, input) in [("get", "hygiene.example"), ("list", "")] {
        let run = env.helper(action, input);
        run.failure();
        runs.push(run);
    }
    runs.push(env.coffer(&["ls"]));
    env.write_private(&env.passphrase_file(), &format!("{PASSPHRASE}\n"));

    for args in [
        &["ls"][..],
        &["ls", "--json"],
        &["log"],
        &["log", "--json"],
        &["doctor"],
        &["rm", "absent.example"],
    ] {
        runs.push(env.coffer(args));
    }
    runs.push(env.helper("erase", "hygiene.example"));
    for run in &runs {
        run.hides(&[SECRET, PASSPHRASE, wrong_passphrase]);
    }

    // The vault holds the secret only encrypted; the passphrase is only in its own file.
    assert_eq!(env.files_containing(SECRET), Vec::<PathBuf>::new());
    assert_eq!(
        env.files_containing(PASSPHRASE),
        vec![env.passphrase_file()]
    );
    assert_eq!(
        env.files_containing(wrong_passphrase),
        Vec::<PathBuf>::new()
    );
}

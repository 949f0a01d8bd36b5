//! The access log through the real binaries: every action of the helper and of `coffer` is one
//! line naming the calling process, `coffer log` shows it, and no secret is ever in it.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::time::{Duration, SystemTime};

use serde_json::Value;

use crate::harness::Env;

const SECRET: &str = "audit-secret-4e8a";

#[test]
fn coffer_log_shows_which_process_asked_for_what() {
    let env = Env::new();
    let request = serde_json::json!({"ServerURL": "ghcr.io", "Username": "bob", "Secret": SECRET});
    env.helper("store", &request.to_string()).success();
    env.helper("get", "ghcr.io/org/image").success();
    env.helper("get", "quay.io").failure();
    env.helper("list", "").success();
    env.write_private(&env.passphrase_file(), "not the passphrase\n");
    env.helper("get", "ghcr.io").failure();
    env.write_private(&env.passphrase_file(), "correct horse battery staple\n");
    env.coffer(&["rm", "ghcr.io"]).success();

    let log = env.coffer_home().join("access.log");
    assert_eq!(
        fs::metadata(&log).expect("log").permissions().mode() & 0o777,
        0o600
    );
    let json = env.coffer(&["log", "--json"]);
    assert_eq!(json.success().stderr(), "");
    let events: Vec<Value> = json
        .stdout()
        .lines()
        .map(|line| serde_json::from_str(line).expect("one JSON object per line"))
        .collect();
    let seen: Vec<(&str, &str, &str)> = events
        .iter()
        .map(|e| {
            (
                e["action"].as_str().expect("action"),
                e["registry"].as_str().unwrap_or("-"),
                e["outcome"].as_str().expect("outcome"),
            )
        })
        .collect();
    assert_eq!(
        seen,
        [
            ("store", "ghcr.io", "ok"),
            // A repository lookup that the registry's entry answered names that entry.
            ("get", "ghcr.io", "ok"),
            ("get", "//quay.io", "not-found"),
            ("list", "-", "ok"),
            ("get", "//ghcr.io", "failed"),
            ("erase", "ghcr.io", "ok"),
        ]
    );
    assert!(
        events[4]["error"]
            .as_str()
            .is_some_and(|e| e.contains("the passphrase is wrong")),
        "{}",
        events[4]
    );
    // The helper's parent is this test process (setsid replaces itself with the helper).
    let me = fs::read_to_string("/proc/self/comm").expect("comm");
    for event in &events[..5] {
        assert_eq!(event["caller"], me.trim_end(), "{event}");
        assert_eq!(event["caller_pid"], std::process::id(), "{event}");
    }
    let now = SystemTime::now();
    for event in &events {
        let time = humantime::parse_rfc3339(event["time"].as_str().expect("time")).expect("time");
        assert!(now.duration_since(time).expect("past") < Duration::from_secs(120));
    }

    let table = env.coffer(&["log", "--tail", "2"]);
    let lines: Vec<String> = table
        .success()
        .stdout()
        .lines()
        .map(str::to_owned)
        .collect();
    assert_eq!(lines.len(), 3, "{lines:?}");
    assert!(lines[0].starts_with("TIME") && lines[0].contains("CALLER"));
    assert!(lines[1].contains("get") && lines[1].contains("failed: "));
    assert!(lines[2].contains("erase") && lines[2].contains("ghcr.io"));

    assert_eq!(
        env.files_containing(SECRET),
        Vec::<std::path::PathBuf>::new()
    );
}

#[test]
fn an_empty_or_damaged_log_is_reported_plainly() {
    let env = Env::new();
    let empty = env.coffer(&["log"]);
    assert!(
        empty
            .success()
            .stdout()
            .starts_with("no access recorded in "),
        "{}",
        empty.stdout()
    );
    assert_eq!(env.coffer(&["log", "--json"]).success().stdout(), "");
    env.helper("list", "").success();
    let log = env.coffer_home().join("access.log");
    let mut text = fs::read_to_string(&log).expect("log");
    text.push_str("garbage\n");
    fs::write(&log, text).expect("write");
    let run = env.coffer(&["log", "--json"]);
    assert_eq!(run.success().stdout().lines().count(), 1);
    assert!(
        run.stderr().contains("skipped 1 unreadable line"),
        "{}",
        run.stderr()
    );
}

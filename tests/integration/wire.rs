//! The helper protocol byte for byte, through the real binary (`../shared/reference/helper-protocol.md`).

use crate::harness::{Env, Run};

const NOT_FOUND: &str = "credentials not found in native keychain\n";
const USAGE: &str = "Usage: docker-credential-coffer <store|get|erase|list|version>\n";

/// Asserts exit status, exact stdout, and that nothing reached stderr.
fn exact(run: &Run, code: i32, stdout: &str) {
    assert_eq!(
        run.code(),
        Some(code),
        "{}: exit status\nstdout: {}\nstderr: {}",
        run.what,
        run.stdout(),
        run.stderr()
    );
    assert_eq!(run.stdout(), stdout, "{}: stdout", run.what);
    assert_eq!(run.stderr(), "", "{}: stderr", run.what);
}

#[test]
fn store_get_erase_list_round_trip() {
    let env = Env::new();
    exact(&env.helper("list", "unused"), 0, "{}\n");
    exact(
        &env.helper(
            "store",
            r#"{"ServerURL":"127.0.0.1:5000","Username":"alice","Secret":"pw1"}"#,
        ),
        0,
        "",
    );
    // docker sends the URL without a newline; other clients add one: both are trimmed.
    exact(
        &env.helper("get", "127.0.0.1:5000"),
        0,
        "{\"ServerURL\":\"127.0.0.1:5000\",\"Username\":\"alice\",\"Secret\":\"pw1\"}\n",
    );
    exact(
        &env.helper("get", "127.0.0.1:5000\n"),
        0,
        "{\"ServerURL\":\"127.0.0.1:5000\",\"Username\":\"alice\",\"Secret\":\"pw1\"}\n",
    );
    // The answer names the URL as asked, not as stored.
    exact(
        &env.helper("get", "https://127.0.0.1:5000"),
        0,
        "{\"ServerURL\":\"https://127.0.0.1:5000\",\"Username\":\"alice\",\"Secret\":\"pw1\"}\n",
    );
    exact(
        &env.helper("list", "unused"),
        0,
        "{\"127.0.0.1:5000\":\"alice\"}\n",
    );
    exact(&env.helper("erase", "127.0.0.1:5000"), 0, "");
    exact(&env.helper("get", "127.0.0.1:5000"), 1, NOT_FOUND);
    exact(&env.helper("erase", "127.0.0.1:5000"), 1, NOT_FOUND);
    exact(&env.helper("list", "unused"), 0, "{}\n");
}

#[test]
fn store_field_names_are_case_insensitive_and_unknown_fields_ignored() {
    let env = Env::new();
    let request = r#"{"serverurl":"https://index.docker.io/v1/","USERNAME":"bob","secret":"pw","Extra":{"nested":[1,2]}}"#;
    exact(&env.helper("store", request), 0, "");
    exact(
        &env.helper("get", "docker.io"),
        0,
        "{\"ServerURL\":\"docker.io\",\"Username\":\"bob\",\"Secret\":\"pw\"}\n",
    );
    exact(
        &env.helper("list", "unused"),
        0,
        "{\"https://index.docker.io/v1/\":\"bob\"}\n",
    );
}

#[test]
fn store_refuses_missing_fields_and_allows_an_empty_secret() {
    let env = Env::new();
    exact(
        &env.helper("store", r#"{"Username":"a","Secret":"s"}"#),
        1,
        "no credentials server URL\n",
    );
    exact(
        &env.helper("store", r#"{"ServerURL":"","Username":"a","Secret":"s"}"#),
        1,
        "no credentials server URL\n",
    );
    exact(
        &env.helper("store", r#"{"ServerURL":"r.example","Secret":"s"}"#),
        1,
        "no credentials username\n",
    );
    exact(
        &env.helper(
            "store",
            r#"{"ServerURL":"r.example","Username":"","Secret":"s"}"#,
        ),
        1,
        "no credentials username\n",
    );
    exact(
        &env.helper(
            "store",
            r#"{"ServerURL":"r.example","Username":"a","Secret":""}"#,
        ),
        0,
        "",
    );
    exact(
        &env.helper("get", "r.example"),
        0,
        "{\"ServerURL\":\"r.example\",\"Username\":\"a\",\"Secret\":\"\"}\n",
    );
}

#[test]
fn identity_tokens_round_trip() {
    let env = Env::new();
    exact(
        &env.helper(
            "store",
            r#"{"ServerURL":"r.example","Username":"<token>","Secret":"refresh"}"#,
        ),
        0,
        "",
    );
    exact(
        &env.helper("get", "r.example"),
        0,
        "{\"ServerURL\":\"r.example\",\"Username\":\"<token>\",\"Secret\":\"refresh\"}\n",
    );
}

#[test]
fn docker_hub_web_login_entries_do_not_collide() {
    let env = Env::new();
    for (url, secret) in [
        ("https://index.docker.io/v1/", "main"),
        ("https://index.docker.io/v1/access-token", "access"),
        ("https://index.docker.io/v1/refresh-token", "refresh"),
    ] {
        let request = format!(r#"{{"ServerURL":"{url}","Username":"alice","Secret":"{secret}"}}"#);
        exact(&env.helper("store", &request), 0, "");
    }
    for (url, secret) in [
        ("https://index.docker.io/v1/", "main"),
        ("docker.io", "main"),
        ("https://index.docker.io/v1/access-token", "access"),
        ("https://index.docker.io/v1/refresh-token", "refresh"),
    ] {
        let want =
            format!("{{\"ServerURL\":\"{url}\",\"Username\":\"alice\",\"Secret\":\"{secret}\"}}\n");
        exact(&env.helper("get", url), 0, &want);
    }
}

#[test]
fn empty_requests() {
    let env = Env::new();
    exact(&env.helper("get", ""), 1, "no credentials server URL\n");
    exact(&env.helper("get", " \n"), 1, "no credentials server URL\n");
    exact(&env.helper("erase", ""), 1, "no credentials server URL\n");
}

#[test]
fn usage_version_and_unknown_actions() {
    let env = Env::empty();
    let run = |args: &[&str]| {
        Run::of(
            env.command(crate::harness::bin("docker-credential-coffer"))
                .args(args),
            "",
        )
    };
    exact(&run(&[]), 1, USAGE);
    exact(&run(&["get", "extra"]), 1, USAGE);
    exact(
        &run(&["frobnicate"]),
        1,
        "docker-credential-coffer: unknown action: frobnicate\n",
    );
    exact(
        &run(&["version"]),
        0,
        &format!(
            "docker-credential-coffer (coffer) {}\n",
            env!("CARGO_PKG_VERSION")
        ),
    );
    exact(
        &run(&["--version"]),
        0,
        &format!(
            "docker-credential-coffer (coffer) {}\n",
            env!("CARGO_PKG_VERSION")
        ),
    );
    exact(
        &run(&["-v"]),
        0,
        &format!(
            "docker-credential-coffer (coffer) {}\n",
            env!("CARGO_PKG_VERSION")
        ),
    );
    exact(&run(&["--help"]), 0, USAGE);
    exact(&run(&["-h"]), 0, USAGE);
}

#[test]
fn get_and_list_without_a_vault_need_no_passphrase() {
    let env = Env::empty();
    std::fs::remove_file(env.passphrase_file()).expect("remove passphrase");
    exact(&env.helper("list", "unused"), 0, "{}\n");
    exact(&env.helper("get", "r.example"), 1, NOT_FOUND);
}

#[test]
fn locked_vault_fails_clearly_and_never_waits_for_input() {
    let env = Env::new();
    exact(
        &env.helper(
            "store",
            r#"{"ServerURL":"r.example","Username":"a","Secret":"s"}"#,
        ),
        0,
        "",
    );
    std::fs::remove_file(env.passphrase_file()).expect("remove passphrase");
    let started = std::time::Instant::now();
    for (action, input) in [
        ("get", "r.example"),
        ("list", "unused"),
        ("store", r#"{"ServerURL":"x","Username":"a","Secret":"s"}"#),
    ] {
        let run = env.helper(action, input);
        run.failure();
        let out = run.stdout();
        assert_eq!(out.lines().count(), 1, "one line: {out:?}");
        assert!(
            out.contains("coffer unlock") && out.contains("COFFER_PASSPHRASE_FILE"),
            "says what to do: {out:?}"
        );
    }
    assert!(
        started.elapsed() < std::time::Duration::from_secs(10),
        "a locked vault must not wait for input"
    );
}

#[test]
fn wrong_passphrase_is_one_clear_line() {
    let env = Env::new();
    exact(
        &env.helper(
            "store",
            r#"{"ServerURL":"r.example","Username":"a","Secret":"s"}"#,
        ),
        0,
        "",
    );
    env.write_private(&env.passphrase_file(), "not the passphrase\n");
    let run = env.helper("get", "r.example");
    run.failure();
    assert!(
        run.stdout().contains("the passphrase is wrong"),
        "{}",
        run.stdout()
    );
    assert_eq!(run.stdout().lines().count(), 1);
    assert!(!run.stdout().contains("not the passphrase"));
}

#[test]
fn malformed_store_requests_never_echo_the_input() {
    let env = Env::new();
    for request in [
        "not json",
        r#"{"ServerURL":"r.example","Username":"a","Secret":12345678}"#,
        r#"{"ServerURL":"r.example","Username":"a","Secret":"sekrit-value""#,
        "[1,2,3]",
    ] {
        let run = env.helper("store", request);
        run.failure();
        let out = run.stdout();
        assert!(out.starts_with("invalid store request"), "{out:?}");
        assert_eq!(out.lines().count(), 1);
        assert!(
            !out.contains("12345678") && !out.contains("sekrit"),
            "echoed input: {out:?}"
        );
        assert_eq!(run.stderr(), "");
    }
    exact(&env.helper("list", "unused"), 0, "{}\n");
}

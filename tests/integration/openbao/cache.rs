//! The cache, timed and counted: the server's own audit log shows how few requests a thousand
//! pulls make; a rotated password and a revoked token reach a node within `cache_for`; a server
//! that is away is bridged for `stale_for`, said in the access log, then a clear error.

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use super::{Bao, node};
use crate::harness::{Env, Run};

/// The requests in a file audit device's log (one `request` line per request, then a
/// `response` line).
fn requests(log: &std::path::Path) -> Vec<String> {
    std::fs::read_to_string(log)
        .unwrap_or_default()
        .lines()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .filter(|event| event["type"] == "request")
        .map(|event| {
            event["request"]["path"]
                .as_str()
                .unwrap_or_default()
                .to_owned()
        })
        .collect()
}

fn put(bao: &Bao, host: &str, user: &str, secret: &str) {
    bao.ok(
        "POST",
        &format!("secret/data/coffer/registries/{host}"),
        Some(json!({"data": {"username": user, "secret": secret}})),
    );
}

/// A token with a policy that reads the registries, as an operator would give a node.
fn node_token(bao: &Bao) -> String {
    bao.ok(
        "PUT",
        "sys/policies/acl/pull",
        Some(json!({"policy": "path \"secret/data/coffer/registries/*\" { capabilities = [\"read\"] }\npath \"secret/metadata/coffer/registries/*\" { capabilities = [\"list\"] }"})),
    );
    let created = bao.ok(
        "POST",
        "auth/token/create",
        Some(json!({"policies": ["pull"], "ttl": "1h", "no_default_policy": false})),
    );
    created["auth"]["client_token"]
        .as_str()
        .expect("token")
        .to_owned()
}

fn with_token(bao: &Bao, section: &str) -> Env {
    let env = node(&format!("addresses = [\"{}\"]\n{section}", bao.addr()));
    let token = node_token(bao);
    let file = env.root().join("node-token");
    env.write_private(&file, &token);
    let config = env.coffer_home().join("config.toml");
    let text = std::fs::read_to_string(&config).expect("config");
    env.write_private(
        &config,
        &format!(
            "{text}[openbao.auth]\nmethod = \"token\"\ntoken_file = \"{}\"\n",
            file.display()
        ),
    );
    env
}

fn secret(env: &Env, host: &str) -> String {
    let run = env.helper("get", host);
    run.success();
    let answer: Value = serde_json::from_str(&run.stdout()).expect("json");
    answer["Secret"].as_str().expect("secret").to_owned()
}

#[test]
fn a_thousand_warm_gets_make_a_handful_of_requests() {
    let bao = Bao::dev_audited();
    put(&bao, "registry.local:5000", "ci", "pw");
    let node = with_token(&bao, "cache_for = \"60s\"\n");
    let log = bao.audit_log();
    let before = requests(&log).len();
    // One shell runs the thousand helpers, as a busy node's engine would.
    let started = Instant::now();
    let run = Run::of(
        node.command("sh").args([
            "-c",
            "for i in $(seq 1000); do echo registry.local:5000 | docker-credential-coffer get | grep -q '\"Secret\":\"pw\"' || exit 1; done",
        ]),
        "",
    );
    run.success();
    let took = started.elapsed();
    let made = requests(&log).split_off(before);
    println!(
        "1000 gets in {took:?} made {} requests: {made:?}",
        made.len()
    );
    // The token lookup, the mount's version, and the read: then nothing.
    assert!(made.len() <= 5, "{made:?}");
    assert!(
        made.iter()
            .any(|p| p == "secret/data/coffer/registries/registry.local:5000"),
        "{made:?}"
    );
}

#[test]
fn a_rotated_password_and_a_revoked_token_reach_the_node_within_the_cache_time() {
    let bao = Bao::dev();
    put(&bao, "registry.local:5000", "ci", "old");
    let node = with_token(&bao, "cache_for = \"2s\"\nstale_for = \"10m\"\n");
    assert_eq!(secret(&node, "registry.local:5000"), "old");
    let rotated = Instant::now();
    put(&bao, "registry.local:5000", "ci", "new");
    // Within cache_for the node still answers from memory...
    assert_eq!(secret(&node, "registry.local:5000"), "old");
    // ...and the new password arrives once it has passed.
    while secret(&node, "registry.local:5000") != "new" {
        assert!(
            rotated.elapsed() < Duration::from_secs(4),
            "the rotation never arrived"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let took = rotated.elapsed();
    println!("rotation reached the node after {took:?} (cache_for 2 s)");

    // Revoking the node's token: within cache_for its pulls stop, with a line saying so, and
    // the 10 minutes of staleness do not apply: the server answered, it said no.
    let token = std::fs::read_to_string(node.root().join("node-token")).expect("token");
    bao.ok("POST", "auth/token/revoke", Some(json!({"token": token})));
    let revoked = Instant::now();
    loop {
        let run = node.helper("get", "registry.local:5000");
        if !run.stdout().contains("new") {
            run.failure();
            let line = run.stdout();
            assert!(
                line.contains("revoked") && line.contains(&bao.addr()[7..]),
                "{line}"
            );
            assert!(!line.contains(token.trim()), "no token in messages");
            break;
        }
        assert!(
            revoked.elapsed() < Duration::from_secs(4),
            "the revocation never arrived"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    println!(
        "revocation stopped the node after {:?} (cache_for 2 s)",
        revoked.elapsed()
    );
}

#[test]
fn a_server_away_is_bridged_for_stale_for_then_a_clear_error() {
    let mut bao = Bao::dev();
    put(&bao, "registry.local:5000", "ci", "pw");
    let node = with_token(&bao, "cache_for = \"1s\"\nstale_for = \"6s\"\n");
    assert_eq!(secret(&node, "registry.local:5000"), "pw");
    let read_at = Instant::now();
    bao.stop();
    std::thread::sleep(Duration::from_millis(1100));
    assert_eq!(secret(&node, "registry.local:5000"), "pw", "served stale");
    let log = std::fs::read_to_string(node.coffer_home().join("access.log")).expect("log");
    let last: Value = serde_json::from_str(log.lines().last().expect("a line")).expect("json");
    assert!(
        last["warning"].as_str().is_some_and(
            |w| w.contains("served from the cache") && w.contains("no OpenBao server answered")
        ),
        "{last}"
    );
    // Times are kept in whole seconds: past 6 s (+1) nothing is served.
    while read_at.elapsed() < Duration::from_millis(7100) {
        std::thread::sleep(Duration::from_millis(100));
    }
    let run = node.helper("get", "registry.local:5000");
    run.failure();
    let line = run.stdout();
    assert!(
        line.contains("no OpenBao server answered")
            && line.contains(&format!("127.0.0.1:{}", bao.port)),
        "{line}"
    );
}

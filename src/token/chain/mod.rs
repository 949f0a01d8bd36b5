//! Chain mode: a cloud registry whose token comes from the machine's or workload's own identity
//! (instance metadata, web identity, a profile...), with nothing secret stored in coffer.
//!
//! - Minting needs the clouds' SDKs and an async runtime. Only the `coffer` binary links them
//!   ([`mint_in_process`] at its start); the lean helper runs `coffer token mint` for a token
//!   that is due, so a `get` answered from the cache never loads them.
//! - Without a vault entry, tokens are cached in the kernel user keyring ([`super::cache`]),
//!   each key expiring with its token, or where keyctl is forbidden in a `coffer agent` that
//!   exits at the token's expiry: nothing on disk. An entry in an open vault caches its token
//!   in the vault, encrypted, like every other provider.
//! - One exchange per renewal across processes (a lock per identity), renewal at the margin,
//!   and the still-valid token served when renewal fails: the token vault's rules.
//! - The cache key is a digest of everything that selects the identity (the registry, its
//!   settings, the identity variables of the environment and the user), so two roles never
//!   share a token.
//!
//! This module mints (here or through `coffer token mint`); [`answer`] serves `get` from the
//! cache and renews under the identity's lock.

pub mod answer;

use std::io::{Read, Write};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use secrecy::SecretString;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::TokenError;
use super::provider::{Minted, Target};
use super::settings::{RegistrySettings, TokenSettings};
use crate::os::process_tree::Tree;

/// What a mint needs: the registry host and its settings, and the timeouts.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Request {
    pub host: String,
    pub registry: RegistrySettings,
    pub tokens: TokenSettings,
}

impl Request {
    pub fn new(host: &str, target: &Target<'_>) -> Request {
        Request {
            host: host.to_owned(),
            registry: target.settings.clone(),
            tokens: target.tokens.clone(),
        }
    }
}

/// The SDK minter of the binary that links the SDKs.
pub type MintFn = fn(&Request) -> Result<Minted, TokenError>;

static IN_PROCESS: OnceLock<MintFn> = OnceLock::new();

/// Mint in this process from now on (the `coffer` binary, which links the SDKs).
pub fn mint_in_process(mint: MintFn) {
    let _ = IN_PROCESS.set(mint);
}

/// Mints a token through the cloud's SDK: here when this binary links it, else in `coffer`.
pub fn mint(request: &Request) -> Result<Minted, TokenError> {
    match IN_PROCESS.get() {
        Some(mint) => mint(request),
        None => delegate(request),
    }
}

/// Environment variables that select an identity in one of the clouds' chains. Values are
/// hashed into the cache key (never stored); secret values are not read at all, only whether
/// they are set, with the key id or client id beside them.
const IDENTITY_VARIABLES: [&str; 27] = [
    "AWS_PROFILE",
    "AWS_DEFAULT_PROFILE",
    "AWS_ACCESS_KEY_ID",
    "AWS_ROLE_ARN",
    "AWS_ROLE_SESSION_NAME",
    "AWS_WEB_IDENTITY_TOKEN_FILE",
    "AWS_CONTAINER_CREDENTIALS_FULL_URI",
    "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
    "AWS_CONFIG_FILE",
    "AWS_SHARED_CREDENTIALS_FILE",
    "AWS_REGION",
    "AWS_DEFAULT_REGION",
    "AWS_ENDPOINT_URL",
    "AWS_ENDPOINT_URL_STS",
    "AWS_ENDPOINT_URL_ECR",
    "AWS_EC2_METADATA_SERVICE_ENDPOINT",
    "AWS_EC2_METADATA_DISABLED",
    "GOOGLE_APPLICATION_CREDENTIALS",
    "GCE_METADATA_HOST",
    "CLOUDSDK_CONFIG",
    "AZURE_CLIENT_ID",
    "AZURE_TENANT_ID",
    "AZURE_FEDERATED_TOKEN_FILE",
    "AZURE_AUTHORITY_HOST",
    "AZURE_CLIENT_CERTIFICATE_PATH",
    "IDENTITY_ENDPOINT",
    "HOME",
];

/// The cache key of an identity for a registry: hex SHA-256 of what selects it.
pub fn identity_key(request: &Request) -> String {
    let mut digest = Sha256::new();
    let mut field = |name: &str, value: &[u8]| {
        digest.update((name.len() as u64).to_le_bytes());
        digest.update(name.as_bytes());
        digest.update((value.len() as u64).to_le_bytes());
        digest.update(value);
    };
    field("uid", &rustix::process::getuid().as_raw().to_le_bytes());
    field("host", request.host.as_bytes());
    field(
        "settings",
        toml::to_string(&request.registry)
            .unwrap_or_default()
            .as_bytes(),
    );
    for name in IDENTITY_VARIABLES {
        if let Some(value) = std::env::var_os(name) {
            field(name, value.as_encoded_bytes());
        }
    }
    let hash = digest.finalize();
    hash.iter().take(16).map(|b| format!("{b:02x}")).collect()
}

/// What `coffer token mint` prints for the helper: the token, on a pipe only.
#[derive(Serialize, Deserialize)]
struct Wire {
    username: String,
    #[serde(serialize_with = "crate::serde_secret::expose")]
    secret: SecretString,
    issued_at: u64,
    expires_at: Option<u64>,
}

/// The `coffer token mint` side: reads a [`Request`] on stdin, writes the token on stdout.
pub fn serve_mint(input: impl Read, mut output: impl Write) -> Result<(), String> {
    let mut text = String::new();
    input
        .take(64 * 1024)
        .read_to_string(&mut text)
        .map_err(|e| format!("cannot read the mint request: {e}"))?;
    let request: Request =
        toml::from_str(&text).map_err(|e| format!("unusable mint request: {}", e.message()))?;
    // Never delegate again from here: a coffer without the SDKs would run itself forever.
    let minted = match IN_PROCESS.get() {
        Some(mint) => mint(&request).map_err(|e| e.to_string())?,
        None => return Err("this coffer was built without the `cloud` feature, so it cannot mint cloud tokens from the machine's identity".to_owned()),
    };
    let wire = Wire {
        username: minted.username,
        secret: minted.secret,
        issued_at: minted.issued_at,
        expires_at: minted.expires_at,
    };
    let json = zeroize::Zeroizing::new(serde_json::to_vec(&wire).map_err(|e| e.to_string())?);
    output
        .write_all(&json)
        .and_then(|()| output.flush())
        .map_err(|e| format!("cannot hand the token over: {e}"))
}

/// The one line for a `coffer token mint` that died of a signal: a panic (release builds abort),
/// whose message is the line after "panicked at".
fn crashed(status: std::process::ExitStatus, stderr: &str) -> String {
    let said = stderr
        .lines()
        .skip_while(|l| !l.contains(" panicked at "))
        .nth(1)
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(|l| format!(": {l}"))
        .unwrap_or_default();
    format!(
        "`coffer token mint` crashed ({status}){said}; a bug in coffer or in the cloud's SDK \
         crate: please report it"
    )
}

/// Runs `coffer token mint` with the request on stdin and reads the token from its stdout,
/// within the exchange's timeout and a little more for the process itself.
fn delegate(request: &Request) -> Result<Minted, TokenError> {
    let program = crate::paths::coffer_program();
    let failed = |why: String| TokenError::Command {
        program: format!("{} token mint", program.display()),
        why,
    };
    let text = toml::to_string(request).map_err(|e| failed(e.to_string()))?;
    // `coffer token mint` kills what its SDK started when the mint fails; the tree is for when
    // it cannot: killed at the deadline, or crashed.
    let tree = Tree::start();
    let mut child = Command::new(&program)
        .args(["token", "mint"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .spawn()
        .map_err(|e| {
            failed(format!(
                "cannot start: {e}; install coffer beside the helper"
            ))
        })?;
    if let Some(mut stdin) = child.stdin.take() {
        let _ = stdin.write_all(text.as_bytes());
    }
    let (Some(mut stdout), Some(mut stderr)) = (child.stdout.take(), child.stderr.take()) else {
        return Err(failed("has no pipes".into()));
    };
    let reader = std::thread::spawn(move || {
        let mut out = zeroize::Zeroizing::new(Vec::new());
        let _ = stdout.read_to_end(&mut out);
        out
    });
    let errors = std::thread::spawn(move || {
        let mut err = String::new();
        let _ = stderr.read_to_string(&mut err);
        err
    });
    let deadline = Instant::now() + request.tokens.timeout + Duration::from_secs(3);
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(5)),
            Ok(None) => {
                let _ = child.kill();
                tree.kill();
                let _ = child.wait();
                return Err(TokenError::TimedOut {
                    url: format!("{} token mint", program.display()),
                    seconds: (request.tokens.timeout + Duration::from_secs(3)).as_secs_f64(),
                });
            }
            Err(e) => return Err(failed(e.to_string())),
        }
    };
    let out = reader.join().unwrap_or_default();
    let err = errors.join().unwrap_or_default();
    if status.signal().is_some() {
        tree.kill();
        return Err(TokenError::Identity(crashed(status, &err)));
    }
    if !status.success() {
        let line = err.lines().rfind(|l| !l.trim().is_empty()).unwrap_or("");
        let line = line.trim().strip_prefix("coffer: ").unwrap_or(line.trim());
        return Err(TokenError::Identity(if line.is_empty() {
            format!("`coffer token mint` failed ({status})")
        } else {
            line.to_owned()
        }));
    }
    let wire: Wire = serde_json::from_slice(&out).map_err(|_| failed("printed no token".into()))?;
    Ok(Minted {
        username: wire.username,
        secret: wire.secret,
        issued_at: wire.issued_at,
        expires_at: wire.expires_at,
    })
}

#[cfg(test)]
mod tests {
    use std::os::unix::process::ExitStatusExt;

    use super::*;

    #[test]
    fn a_crashed_mint_is_told_by_its_panic_message() {
        let aborted = std::process::ExitStatus::from_raw(libc::SIGABRT);
        let stderr = "\nthread 'tokio-runtime-worker' (7) panicked at src/impersonated.rs:80:5:\n\
                      called `Result::unwrap()` on an `Err` value: RecvError(())\n\
                      note: run with `RUST_BACKTRACE=1` environment variable to display a backtrace\n";
        let said = crashed(aborted, stderr);
        assert!(
            said.starts_with("`coffer token mint` crashed (signal: 6"),
            "{said}"
        );
        assert!(
            said.contains(": called `Result::unwrap()` on an `Err` value: RecvError(())"),
            "{said}"
        );
        assert!(!said.contains("RUST_BACKTRACE"), "{said}");
        assert!(
            crashed(aborted, "").contains("crashed (signal: 6"),
            "no message at all"
        );
    }
}

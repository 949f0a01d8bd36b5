//! Credentials from where people have them today: the plaintext `auths` of docker's config.json
//! and of podman/skopeo's auth.json (read, and scrubbed afterwards, by [`crate::auth_file`]), and
//! the stores of other credential helpers (pass, secretservice, ...) read through those helpers'
//! own `list` and `get`.

use std::collections::BTreeMap;
use std::io::Write;
use std::process::{Command, Stdio};

use secrecy::SecretString;
use serde::Deserialize;
use zeroize::Zeroizing;

/// Why another helper's credentials could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    #[error("cannot run {program}: {source}; is it on PATH?")]
    Spawn {
        program: String,
        source: std::io::Error,
    },
    #[error("{program} {action}: {source}")]
    Wait {
        program: String,
        action: &'static str,
        source: std::io::Error,
    },
    /// The helper's own one-line error, from its stdout (never the secret it failed to get).
    #[error("{program} {action} failed ({status}): {message}")]
    Failed {
        program: String,
        action: &'static str,
        status: std::process::ExitStatus,
        message: String,
    },
    #[error("{program} list did not answer a JSON object")]
    BadList { program: String },
    #[error("{program} get {server_url} did not answer credentials")]
    BadGet { program: String, server_url: String },
}

type Result<T> = std::result::Result<T, ImportError>;

/// One credential found in a source.
#[derive(Debug)]
pub struct Found {
    pub server_url: String,
    pub username: String,
    pub secret: SecretString,
}

/// Every credential of `docker-credential-<helper>`, through its own `list` and `get`.
pub fn from_helper(helper: &str) -> Result<Vec<Found>> {
    let program = format!("docker-credential-{helper}");
    let list = run_helper(&program, "list", "unused")?;
    let list: BTreeMap<String, String> =
        serde_json::from_slice(&list).map_err(|_| ImportError::BadList {
            program: program.clone(),
        })?;
    #[derive(Deserialize)]
    struct Got {
        #[serde(rename = "Username")]
        username: String,
        #[serde(rename = "Secret")]
        secret: Zeroizing<String>,
    }
    list.into_keys()
        .map(|server_url| {
            let reply = run_helper(&program, "get", &server_url)?;
            let got: Got = serde_json::from_slice(&reply).map_err(|_| ImportError::BadGet {
                program: program.clone(),
                server_url: server_url.clone(),
            })?;
            Ok(Found {
                server_url,
                username: got.username,
                secret: SecretString::from(got.secret.as_str()),
            })
        })
        .collect()
}

fn run_helper(program: &str, action: &'static str, input: &str) -> Result<Zeroizing<Vec<u8>>> {
    let mut child = Command::new(program)
        .arg(action)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .map_err(|source| ImportError::Spawn {
            program: program.to_owned(),
            source,
        })?;
    if let Some(mut stdin) = child.stdin.take() {
        // A helper that exits without reading is reported by its status below.
        let _ = stdin.write_all(input.as_bytes());
    }
    let out = child
        .wait_with_output()
        .map_err(|source| ImportError::Wait {
            program: program.to_owned(),
            action,
            source,
        })?;
    let stdout = Zeroizing::new(out.stdout);
    if !out.status.success() {
        // A helper's error is one line on stdout; it never holds the secret it failed to get.
        let message = String::from_utf8_lossy(&stdout).trim().to_owned();
        return Err(ImportError::Failed {
            program: program.to_owned(),
            action,
            status: out.status,
            message,
        });
    }
    Ok(stdout)
}

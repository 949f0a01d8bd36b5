//! The Docker credential-helper protocol: one action per process, the request on stdin, the
//! answer on stdout. Every failure is one line on stdout with exit status 1, because that is
//! all a client reads; nothing else is ever written there.

use std::collections::BTreeMap;
use std::fmt;
use std::io::{Read, Write};

use secrecy::{ExposeSecret, SecretString};
use serde::de::{IgnoredAny, MapAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize};
use zeroize::Zeroizing;

use crate::credentials::Credentials;
use crate::error::Result;
use crate::secret_buffer::SecretBuffer;

pub const PROGRAM: &str = "docker-credential-coffer";
/// Clients compare a failed `get`'s output with this exact text to mean "no credentials".
pub const NOT_FOUND: &str = "credentials not found in native keychain";
pub const NO_SERVER_URL: &str = "no credentials server URL";
pub const NO_USERNAME: &str = "no credentials username";
/// A request larger than this is refused before it is parsed (a token or key is a few KiB).
pub const MAX_INPUT: u64 = 1 << 20;

pub fn usage() -> String {
    format!("Usage: {PROGRAM} <store|get|erase|list|version>")
}

pub fn version() -> String {
    format!("{PROGRAM} (coffer) {}", env!("CARGO_PKG_VERSION"))
}

/// What a helper run ended with: its exit status, for a failed action one line for the person
/// at the terminal, and the warnings of an action that went through anyway (a stale token
/// served). Docker hides the helper's output (a failed `get` becomes "no basic auth
/// credentials"), so the binary writes `notice` and `warnings` to `/dev/tty` when there is one.
#[derive(Debug, PartialEq, Eq)]
pub struct Outcome {
    pub status: i32,
    pub notice: Option<String>,
    /// Each one line, `coffer: ` and all.
    pub warnings: Vec<String>,
}

/// Runs the helper for `args` (without the program name).
///
/// `open` is called only for actions that need the store, so `version` never touches it.
pub fn serve(
    args: &[String],
    input: impl Read,
    output: &mut impl Write,
    open: impl FnOnce() -> Result<Credentials>,
) -> Outcome {
    let mut notice = None;
    let mut warnings = Vec::new();
    let answer = match args {
        [flag] if flag == "--help" || flag == "-h" => Ok(Answer::Text(usage())),
        [flag] if flag == "--version" || flag == "-v" || flag == "version" => {
            Ok(Answer::Text(version()))
        }
        [action] if matches!(action.as_str(), "store" | "get" | "erase" | "list") => {
            read_input(input).and_then(|request| {
                let done = open().map_err(Failure::from).and_then(|credentials| {
                    let done = act(action, &request, &credentials);
                    warnings = credentials
                        .warnings()
                        .iter()
                        .map(|warning| one_line(&format!("coffer: {warning}")))
                        .collect();
                    done
                });
                done.map_err(|failure| match failure {
                    Failure::Store(error) => {
                        let message = error.to_string();
                        notice = Some(tell(action, &request, &message));
                        message
                    }
                    Failure::Request(message) => message,
                })
            })
        }
        [action] => Err(format!("{PROGRAM}: unknown action: {action}")),
        _ => Err(usage()),
    };
    let (bytes, status) = match answer {
        Ok(Answer::Text(text)) => (Zeroizing::new(format!("{text}\n").into_bytes()), 0),
        Ok(Answer::Json(json)) => (json, 0),
        Ok(Answer::Nothing) => (Zeroizing::new(Vec::new()), 0),
        Err(message) => (
            Zeroizing::new(format!("{}\n", one_line(&message)).into_bytes()),
            1,
        ),
    };
    let status = match output.write_all(&bytes).and_then(|()| output.flush()) {
        Ok(()) => status,
        Err(_) => 1,
    };
    Outcome {
        status,
        notice,
        warnings,
    }
}

/// The line for the person: which action failed for which registry, why and what to do (the
/// error says both), and what the client will show instead.
fn tell(action: &str, request: &str, message: &str) -> String {
    let registry = || -> String {
        if action == "store" {
            parse_store(request)
                .ok()
                .and_then(|r| r.server_url)
                .unwrap_or_default()
        } else {
            request.trim().chars().take(256).collect()
        }
    };
    let line = match action {
        "get" => format!(
            "coffer: no credentials for {} (docker reports \"no basic auth credentials\"): {message}",
            registry()
        ),
        "store" => format!(
            "coffer: the login to {} was not stored: {message}",
            registry()
        ),
        // ErasePending already says that the logout did not happen.
        "erase" => format!("coffer: {message}"),
        _ => format!("coffer: cannot list the stored credentials: {message}"),
    };
    one_line(&line)
}

enum Answer {
    Text(String),
    Json(Zeroizing<Vec<u8>>),
    Nothing,
}

/// Why an action failed: the request itself (the client's business), or the store (the
/// person's: a locked vault, a wrong passphrase).
enum Failure {
    Request(String),
    Store(crate::Error),
}

impl From<crate::Error> for Failure {
    fn from(error: crate::Error) -> Self {
        Failure::Store(error)
    }
}

impl From<&str> for Failure {
    fn from(message: &str) -> Self {
        Failure::Request(message.to_owned())
    }
}

impl From<String> for Failure {
    fn from(message: String) -> Self {
        Failure::Request(message)
    }
}

fn act(action: &str, request: &str, credentials: &Credentials) -> Result<Answer, Failure> {
    match action {
        "store" => {
            let request = parse_store(request)?;
            let server_url = request
                .server_url
                .filter(|s| !s.trim().is_empty())
                .ok_or(NO_SERVER_URL)?;
            let username = request
                .username
                .filter(|s| !s.is_empty())
                .ok_or(NO_USERNAME)?;
            let secret = request.secret.unwrap_or_else(|| SecretString::from(""));
            credentials.store(&server_url, &username, secret)?;
            Ok(Answer::Nothing)
        }
        "get" => {
            let server_url = request.trim();
            if server_url.is_empty() {
                return Err(NO_SERVER_URL.into());
            }
            let entry = credentials.get(server_url)?.ok_or(NOT_FOUND)?;
            let reply = GetReply {
                server_url,
                username: &entry.username,
                secret: entry.secret.expose_secret(),
            };
            Ok(Answer::Json(json_line(&reply)?))
        }
        "erase" => {
            let server_url = request.trim();
            if server_url.is_empty() {
                return Err(NO_SERVER_URL.into());
            }
            credentials.erase(server_url)?.ok_or(NOT_FOUND)?;
            Ok(Answer::Nothing)
        }
        "list" => {
            let list: BTreeMap<String, String> = credentials
                .list()?
                .into_iter()
                .map(|s| (s.server_url, s.username))
                .collect();
            Ok(Answer::Json(json_line(&list)?))
        }
        _ => unreachable!("actions are matched by serve"),
    }
}

/// Reads the whole request, bounded, as UTF-8, leaving no copy of it in freed memory.
fn read_input(input: impl Read) -> Result<Zeroizing<String>, String> {
    let bytes = SecretBuffer::read_bounded(input, MAX_INPUT as usize)
        .map_err(|e| format!("cannot read the request from stdin: {e}"))?
        .ok_or_else(|| format!("the request is larger than {MAX_INPUT} bytes; refusing it"))?;
    let bytes = bytes.as_bytes();
    if bytes.contains(&0) {
        return Err("the request holds a NUL byte; refusing it".into());
    }
    let text =
        std::str::from_utf8(bytes).map_err(|_| "the request is not valid UTF-8".to_owned())?;
    Ok(Zeroizing::new(text.to_owned()))
}

fn json_line(value: &impl Serialize) -> Result<Zeroizing<Vec<u8>>, String> {
    let mut out = SecretBuffer::default();
    serde_json::to_writer(&mut out, value).map_err(|e| format!("cannot encode the answer: {e}"))?;
    out.extend(b"\n");
    Ok(out.into_inner())
}

/// Error text must stay one line: the protocol reads one, and the terminal is told it, so
/// nothing in it (a registry name from the request) may be a control or an invisible character.
fn one_line(message: &str) -> String {
    crate::printable::escaped(&message.split_whitespace().collect::<Vec<_>>().join(" "))
}

#[derive(Serialize)]
struct GetReply<'a> {
    #[serde(rename = "ServerURL")]
    server_url: &'a str,
    #[serde(rename = "Username")]
    username: &'a str,
    #[serde(rename = "Secret")]
    secret: &'a str,
}

/// A `store` request. Field names match case-insensitively; unknown fields are ignored.
#[derive(Debug, Default)]
struct StoreRequest {
    server_url: Option<String>,
    username: Option<String>,
    secret: Option<SecretString>,
}

fn parse_store(text: &str) -> Result<StoreRequest, String> {
    serde_json::from_str(text).map_err(|e| {
        // Never echo the input: serde's messages can quote values, and a value may be a secret.
        let what = match e.classify() {
            serde_json::error::Category::Data => {
                "it must be an object whose ServerURL, Username and Secret are strings"
            }
            serde_json::error::Category::Eof => "it ends too early",
            _ => "it is not valid JSON",
        };
        format!(
            "invalid store request: {what} (line {}, column {})",
            e.line(),
            e.column()
        )
    })
}

impl<'de> Deserialize<'de> for StoreRequest {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Fields;
        impl<'de> Visitor<'de> for Fields {
            type Value = StoreRequest;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an object with ServerURL, Username and Secret")
            }

            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<StoreRequest, A::Error> {
                let mut request = StoreRequest::default();
                while let Some(name) = map.next_key::<String>()? {
                    match name.to_ascii_lowercase().as_str() {
                        "serverurl" => request.server_url = map.next_value()?,
                        "username" => request.username = map.next_value()?,
                        "secret" => {
                            let secret: Option<Zeroizing<String>> = map.next_value()?;
                            request.secret = secret.map(|s| SecretString::from(s.as_str()));
                        }
                        _ => {
                            map.next_value::<IgnoredAny>()?;
                        }
                    }
                }
                Ok(request)
            }
        }
        deserializer.deserialize_map(Fields)
    }
}

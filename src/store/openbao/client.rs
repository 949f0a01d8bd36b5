//! HTTP to an OpenBao (or Vault) cluster: blocking reqwest over rustls, several addresses tried
//! in order, a standby's 307 followed to the active node, every request bounded in time
//! ([`super::settings::OpenBaoSettings::timeout`]) and size ([`MAX_BODY`]).
//!
//! A node that is unreachable, silent, sealed, broken (5xx) or not speaking OpenBao's JSON is a
//! reason to try the next one; an answer that means something (200, 204, 400, 403, 404) is
//! returned as it is. The token travels in `X-Vault-Token`, never in a URL or a message.

use std::io::Read;
use std::path::Path;
use std::time::Duration;

use reqwest::Method;
use reqwest::blocking::Client as Http;
use reqwest::header::LOCATION;
use reqwest::{Url, redirect};
use secrecy::{ExposeSecret, SecretString};
use serde::de::DeserializeOwned;
use zeroize::Zeroizing;

use super::error::{BaoError, Unanswered};
use super::settings::{OpenBaoSettings, address};
use crate::token::Transport;
use crate::token::http::{MAX_BODY, display, permitted};

const MAX_REDIRECTS: usize = 3;

/// The cluster's addresses and how to talk to them.
#[derive(Debug)]
pub struct Client {
    http: Http,
    addresses: Vec<Url>,
    namespace: Option<String>,
    allow_http: bool,
    timeout: Duration,
}

/// A meaningful answer, read whole. Its `Debug` gives the body's length only.
pub struct Answer {
    pub status: u16,
    pub body: Zeroizing<Vec<u8>>,
    /// The address that answered (after any redirect), for messages.
    pub server: String,
}

impl std::fmt::Debug for Answer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Answer")
            .field("status", &self.status)
            .field("server", &self.server)
            .field("body_len", &self.body.len())
            .finish()
    }
}

#[derive(serde::Deserialize)]
struct Errors {
    #[serde(default)]
    errors: Vec<String>,
}

impl Answer {
    pub fn ok(&self) -> bool {
        (200..300).contains(&self.status)
    }

    /// The body as `T`; `what` names the request in the message when it is not.
    pub fn json<T: DeserializeOwned>(&self, what: &str) -> Result<T, BaoError> {
        serde_json::from_slice(&self.body).map_err(|e| BaoError::Malformed {
            server: self.server.clone(),
            what: what.to_owned(),
            // The classification and column only: serde's message may quote the body.
            problem: format!("{:?} at column {}", e.classify(), e.column()),
        })
    }

    /// The server's own `errors`, joined and cut to one short line.
    pub fn errors(&self) -> String {
        let text = serde_json::from_slice::<Errors>(&self.body)
            .map(|e| e.errors.join("; "))
            .unwrap_or_default();
        one_line(&text)
    }

    /// The answer as a refusal of `what`.
    pub fn refused(&self, what: impl Into<String>) -> BaoError {
        BaoError::Refused {
            server: self.server.clone(),
            what: what.into(),
            status: self.status,
            message: self.errors(),
        }
    }
}

/// At most 200 printable characters of a server's text.
fn one_line(text: &str) -> String {
    let mut line: String = text
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .take(200)
        .collect();
    if text.chars().count() > 200 {
        line.push('…');
    }
    line
}

/// What to send.
#[derive(Default)]
pub struct Call<'a> {
    /// Path segments after `/v1/`, each sent escaped as one segment.
    pub segments: Vec<&'a str>,
    pub query: Vec<(&'a str, &'a str)>,
    pub token: Option<&'a SecretString>,
    /// JSON, wiped after sending: it can hold a secret.
    pub body: Option<Zeroizing<Vec<u8>>>,
    /// `X-Vault-Wrap-TTL`: ask for the answer response-wrapped.
    pub wrap_ttl: Option<&'a str>,
}

impl std::fmt::Debug for Call<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Call")
            .field("segments", &self.segments)
            .field("body_len", &self.body.as_ref().map(|b| b.len()))
            .finish_non_exhaustive()
    }
}

impl<'a> Call<'a> {
    pub fn to(path: &'a str) -> Call<'a> {
        Call {
            segments: path.split('/').filter(|s| !s.is_empty()).collect(),
            ..Call::default()
        }
    }

    pub fn with_token(mut self, token: &'a SecretString) -> Self {
        self.token = Some(token);
        self
    }

    pub fn with_json(mut self, body: &serde_json::Value) -> Self {
        // A Value of strings and numbers always serializes.
        self.body = serde_json::to_vec(body).ok().map(Zeroizing::new);
        self
    }
}

impl Client {
    pub fn new(
        settings: &OpenBaoSettings,
        identity: Option<reqwest::Identity>,
    ) -> Result<Client, BaoError> {
        let addresses = addresses(settings)?;
        let mut builder = Http::builder()
            .connect_timeout(settings.timeout)
            .timeout(settings.timeout)
            .user_agent(concat!("coffer/", env!("CARGO_PKG_VERSION")))
            // Redirects are followed by hand, to check each target and keep the method and body.
            .redirect(redirect::Policy::none());
        let mut roots = Vec::new();
        if let Some(file) = &settings.ca_cert {
            roots.extend(certificates(file, true)?);
        }
        if let Some(dir) = &settings.ca_path {
            let listing = std::fs::read_dir(dir).map_err(BaoError::file("the CA folder", dir))?;
            for file in listing.flatten() {
                roots.extend(certificates(&file.path(), false)?);
            }
            if roots.is_empty() {
                return Err(BaoError::Pem {
                    what: "the CA folder",
                    path: dir.clone(),
                    expected: "certificate",
                });
            }
        }
        if !roots.is_empty() {
            // Like the bao CLI: a CA given is the only one trusted.
            builder = builder.tls_built_in_root_certs(false);
            for root in roots {
                builder = builder.add_root_certificate(root);
            }
        }
        if let Some(identity) = identity {
            builder = builder.identity(identity);
        }
        Ok(Client {
            http: builder.build().map_err(BaoError::Client)?,
            addresses,
            namespace: settings.namespace.clone(),
            allow_http: settings.allow_http,
            timeout: settings.timeout,
        })
    }

    /// The addresses, for messages.
    pub fn servers(&self) -> Vec<String> {
        self.addresses.iter().map(display).collect()
    }

    /// Sends `call` to each address in turn until one answers meaningfully.
    pub fn send(&self, method: Method, call: &Call) -> Result<Answer, BaoError> {
        let mut tried = Vec::new();
        for base in &self.addresses {
            let mut url = base.clone();
            match url.path_segments_mut() {
                Ok(mut path) => {
                    path.pop_if_empty().push("v1").extend(&call.segments);
                }
                Err(()) => continue,
            }
            if !call.query.is_empty() {
                url.query_pairs_mut().extend_pairs(&call.query);
            }
            match self.attempt(&method, url, call) {
                Ok(answer) => return Ok(answer),
                Err(why) => tried.push((display(base), why)),
            }
        }
        Err(BaoError::Unavailable { tried })
    }

    /// One address, following its redirects.
    fn attempt(&self, method: &Method, mut url: Url, call: &Call) -> Result<Answer, Unanswered> {
        for _ in 0..=MAX_REDIRECTS {
            let mut request = self.http.request(method.clone(), url.clone());
            if let Some(token) = call.token {
                request = request.header("X-Vault-Token", token.expose_secret());
            }
            if let Some(namespace) = &self.namespace {
                request = request.header("X-Vault-Namespace", namespace);
            }
            if let Some(ttl) = call.wrap_ttl {
                request = request.header("X-Vault-Wrap-TTL", ttl);
            }
            if let Some(body) = &call.body {
                request = request
                    .header("Content-Type", "application/json")
                    .body(body.to_vec());
            }
            let response = request.send().map_err(|e| self.transport(e))?;
            let status = response.status().as_u16();
            if matches!(status, 301 | 302 | 303 | 307 | 308) {
                let target = response
                    .headers()
                    .get(LOCATION)
                    .and_then(|v| v.to_str().ok())
                    .and_then(|location| url.join(location).ok())
                    .ok_or(Unanswered::Status {
                        status,
                        message: "a redirect without a usable Location".to_owned(),
                    })?;
                if !permitted(&target, self.allow_http) {
                    return Err(Unanswered::RedirectRefused(display(&target)));
                }
                url = target;
                continue;
            }
            let mut body = Zeroizing::new(Vec::new());
            response
                .take(MAX_BODY + 1)
                .read_to_end(&mut body)
                .map_err(|e| match e.kind() {
                    std::io::ErrorKind::TimedOut => self.timed_out(),
                    _ => Unanswered::Transport(Transport::Read(e)),
                })?;
            if body.len() as u64 > MAX_BODY {
                return Err(Unanswered::TooLarge(MAX_BODY / 1024));
            }
            let first = body.iter().find(|b| !b.is_ascii_whitespace()).copied();
            if let Some(first) = first.filter(|&b| b != b'{') {
                return Err(Unanswered::NotJson(if first == b'<' {
                    "HTML"
                } else {
                    "text"
                }));
            }
            let answer = Answer {
                status,
                body,
                server: display(&url_base(&url)),
            };
            return match status {
                503 if answer.errors().contains("sealed") => Err(Unanswered::Sealed),
                429 | 500..=599 => Err(Unanswered::Status {
                    status,
                    message: answer.errors(),
                }),
                _ => Ok(answer),
            };
        }
        Err(Unanswered::TooManyRedirects)
    }

    fn transport(&self, error: reqwest::Error) -> Unanswered {
        if error.is_timeout() {
            self.timed_out()
        } else {
            Unanswered::Transport(Transport::Request(error))
        }
    }

    fn timed_out(&self) -> Unanswered {
        Unanswered::TimedOut(self.timeout.as_secs_f64())
    }
}

/// The scheme, host and port of `url`.
fn url_base(url: &Url) -> Url {
    let mut base = url.clone();
    base.set_path("");
    base.set_query(None);
    base
}

/// The configured addresses, each checked: https, or plain http to loopback unless allowed.
fn addresses(settings: &OpenBaoSettings) -> Result<Vec<Url>, BaoError> {
    if settings.addresses.is_empty() {
        return Err(BaoError::NoAddress);
    }
    settings
        .addresses
        .iter()
        .map(|text| {
            address(text, settings.allow_http).map_err(|problem| BaoError::BadAddress {
                address: text.clone(),
                problem,
            })
        })
        .collect()
}

/// The certificates in a PEM file; `required`: the file must hold one.
fn certificates(path: &Path, required: bool) -> Result<Vec<reqwest::Certificate>, BaoError> {
    let pem = std::fs::read(path).map_err(BaoError::file("the CA file", path))?;
    let found = reqwest::Certificate::from_pem_bundle(&pem).unwrap_or_default();
    if found.is_empty() && required {
        return Err(BaoError::Pem {
            what: "the CA file",
            path: path.to_owned(),
            expected: "certificate",
        });
    }
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with(addresses: &[&str], allow_http: bool) -> Result<Vec<Url>, BaoError> {
        addresses_of(&OpenBaoSettings {
            addresses: addresses.iter().map(|a| (*a).to_owned()).collect(),
            allow_http,
            ..OpenBaoSettings::default()
        })
    }

    fn addresses_of(settings: &OpenBaoSettings) -> Result<Vec<Url>, BaoError> {
        addresses(settings)
    }

    #[test]
    fn plain_http_only_to_loopback_unless_allowed() {
        assert!(with(&["http://127.0.0.1:8200", "https://bao.example"], false).is_ok());
        let refused = with(&["http://bao.example:8200"], false).expect_err("refused");
        assert!(
            refused.to_string().contains("allow_http = true"),
            "{refused}"
        );
        assert!(with(&["http://bao.example:8200"], true).is_ok());
        assert!(matches!(with(&[], false), Err(BaoError::NoAddress)));
        assert!(matches!(
            with(&["bao.example:8200"], false),
            Err(BaoError::BadAddress { .. })
        ));
    }

    #[test]
    fn a_server_line_is_cut_and_printable() {
        let long = "x\n".repeat(300);
        let line = one_line(&long);
        assert!(
            !line.contains('\n') && line.chars().count() == 201,
            "{line}"
        );
    }
}

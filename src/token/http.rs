//! HTTP for token exchanges: rustls with the system's roots plus a registry's own CA file, plain
//! HTTP only to loopback unless the registry's settings allow it, proxies from the usual
//! environment variables, and one deadline for the whole exchange so `get` never hangs a pull.
//!
//! No request or response body and no header value ever reaches an error message: they carry
//! passwords and tokens. Errors name the URL without its query.

use std::io::Read;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use reqwest::blocking::{Client, RequestBuilder};
use reqwest::header::{DATE, HeaderMap, WWW_AUTHENTICATE};
use reqwest::{Url, redirect};
use secrecy::ExposeSecret;
use zeroize::Zeroizing;

use super::settings::{RegistrySettings, TokenSettings};
use super::{CaFileProblem, TokenError, Transport};

/// Token responses are a few KiB; anything much larger is not one. The clouds' SDKs read
/// metadata and API answers up to the same bound (each cloud's `identity`).
pub const MAX_BODY: u64 = 256 * 1024;
const MAX_REDIRECTS: usize = 5;

/// A client for one exchange with one registry.
#[derive(Debug)]
pub struct Http {
    client: Client,
    allow_http: bool,
    deadline: Instant,
    timeout: Duration,
}

/// An answer, read whole.
/// Its `Debug` gives the body's length only: a body can hold a token.
pub struct Reply {
    pub status: u16,
    /// Every `WWW-Authenticate` value.
    pub challenges: Vec<String>,
    pub body: Zeroizing<Vec<u8>>,
    /// The server's clock minus ours, in seconds, from its `Date` header (0 without one).
    pub skew: i64,
    /// Unix seconds, our clock, when the answer arrived.
    pub arrived: u64,
}

impl std::fmt::Debug for Reply {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reply")
            .field("status", &self.status)
            .field("body_len", &self.body.len())
            .finish_non_exhaustive()
    }
}

impl Reply {
    pub fn ok(&self) -> bool {
        (200..300).contains(&self.status)
    }

    /// A time in the server's clock, moved into ours.
    pub fn local_time(&self, server_time: u64) -> u64 {
        server_time.saturating_add_signed(-self.skew)
    }
}

impl Http {
    /// A client whose requests, together, end within `tokens.timeout` from now.
    pub fn new(tokens: &TokenSettings, registry: &RegistrySettings) -> Result<Http, TokenError> {
        let allow_http = registry.allow_http;
        // Checked when the settings were read; an entry that does not parse allows nothing.
        let elsewhere: Vec<url::Origin> = registry
            .redirect_origins
            .iter()
            .filter_map(|origin| super::settings::origin_of(origin).ok())
            .collect();
        let mut builder = Client::builder()
            .connect_timeout(tokens.connect_timeout)
            .timeout(tokens.timeout)
            .user_agent(concat!("coffer/", env!("CARGO_PKG_VERSION")))
            .redirect(redirect::Policy::custom(move |attempt| {
                // A redirect keeps the method and body (307, 308): the password form, a
                // signed call. Only the request's own origin, or one the settings name, gets
                // it again; reqwest drops the Authorization header on its own.
                let origin = attempt.url().origin();
                let own = attempt
                    .previous()
                    .first()
                    .is_some_and(|first| first.origin() == origin);
                if attempt.previous().len() >= MAX_REDIRECTS {
                    attempt.error("too many redirects")
                } else if !permitted(attempt.url(), allow_http) {
                    attempt.error("redirected to plain HTTP")
                } else if !own && !elsewhere.contains(&origin) {
                    let to = attempt.url().origin().ascii_serialization();
                    attempt.error(format!(
                        "redirected to another origin ({to}); add it to the registry's `redirect_origins` if it is the registry's token server"
                    ))
                } else {
                    attempt.follow()
                }
            }));
        if let Some(path) = &registry.ca_file {
            let ca_error = |problem| TokenError::CaFile {
                path: path.clone(),
                problem,
            };
            let pem = std::fs::read(path).map_err(|e| ca_error(CaFileProblem::Read(e)))?;
            let certificates = reqwest::Certificate::from_pem_bundle(&pem)
                .map_err(|e| ca_error(CaFileProblem::Invalid(e)))?;
            if certificates.is_empty() {
                return Err(ca_error(CaFileProblem::Empty));
            }
            for certificate in certificates {
                builder = builder.add_root_certificate(certificate);
            }
        }
        let client = builder
            .build()
            .map_err(|e| TokenError::Client(Transport::Request(e)))?;
        Ok(Http {
            client,
            allow_http,
            deadline: Instant::now() + tokens.timeout,
            timeout: tokens.timeout,
        })
    }

    /// When the whole exchange must be over; a provider that runs a command keeps it too.
    pub fn deadline(&self) -> Instant {
        self.deadline
    }

    /// Is plain HTTP to this URL's host acceptable?
    pub fn allows(&self, url: &Url) -> bool {
        permitted(url, self.allow_http)
    }

    /// `GET url`, with Basic authentication when a credential is given.
    pub fn get(
        &self,
        url: &Url,
        basic: Option<(&str, &secrecy::SecretString)>,
    ) -> Result<Reply, TokenError> {
        let mut request = self.client.get(url.clone());
        if let Some((username, secret)) = basic {
            request = request.basic_auth(username, Some(secret.expose_secret()));
        }
        self.send(url, request)
    }

    /// `POST url` with a form body.
    pub fn post_form(&self, url: &Url, form: &[(&str, &str)]) -> Result<Reply, TokenError> {
        self.send(url, self.client.post(url.clone()).form(form))
    }

    /// `POST url` with the given headers and body (a signed API call).
    pub fn post(&self, url: &Url, headers: HeaderMap, body: Vec<u8>) -> Result<Reply, TokenError> {
        self.send(
            url,
            self.client.post(url.clone()).headers(headers).body(body),
        )
    }

    fn send(&self, url: &Url, request: RequestBuilder) -> Result<Reply, TokenError> {
        if !self.allows(url) {
            return Err(TokenError::PlainHttp {
                url: display(url),
                host: host_port(url),
            });
        }
        let left = self.deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(self.timed_out(url));
        }
        let response = request.timeout(left).send().map_err(|e| {
            if e.is_timeout() {
                self.timed_out(url)
            } else {
                TokenError::Unreachable {
                    url: display(url),
                    source: Transport::Request(e),
                }
            }
        })?;
        let arrived = SystemTime::now();
        let status = response.status().as_u16();
        let headers = response.headers();
        let challenges = headers
            .get_all(WWW_AUTHENTICATE)
            .iter()
            .filter_map(|v| v.to_str().ok().map(str::to_owned))
            .collect();
        let skew = headers
            .get(DATE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| httpdate::parse_http_date(v).ok())
            .map_or(0, |server| seconds_between(arrived, server));
        let mut body = Zeroizing::new(Vec::new());
        // One byte past the bound tells a cut answer from one that fits.
        response
            .take(MAX_BODY + 1)
            .read_to_end(&mut body)
            .map_err(|e| {
                if Instant::now() >= self.deadline {
                    self.timed_out(url)
                } else {
                    TokenError::Unreachable {
                        url: display(url),
                        source: Transport::Read(e),
                    }
                }
            })?;
        if body.len() as u64 > MAX_BODY {
            return Err(TokenError::TooLarge {
                url: display(url),
                source: TooLarge,
            });
        }
        Ok(Reply {
            status,
            challenges,
            body,
            skew,
            arrived: unix(arrived),
        })
    }

    fn timed_out(&self, url: &Url) -> TokenError {
        TokenError::TimedOut {
            url: display(url),
            seconds: self.timeout.as_secs_f64(),
        }
    }
}

/// An answer past [`MAX_BODY`]: reading stopped there. The clouds' SDK clients end a body
/// with it too, so their messages say the same.
#[derive(Debug, Clone, Copy, thiserror::Error)]
#[error("the answer is larger than {} KiB, so it is no credential; coffer stopped reading it", MAX_BODY / 1024)]
pub struct TooLarge;

/// HTTPS always; plain HTTP to loopback, or anywhere when allowed.
pub(crate) fn permitted(url: &Url, allow_http: bool) -> bool {
    match url.scheme() {
        "https" => true,
        "http" => allow_http || is_loopback(url),
        _ => false,
    }
}

pub fn is_loopback(url: &Url) -> bool {
    match url.host() {
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        Some(url::Host::Domain(name)) => name.eq_ignore_ascii_case("localhost"),
        None => false,
    }
}

/// A URL for messages: scheme, host and path; never a query or user information.
pub fn display(url: &Url) -> String {
    format!(
        "{}://{}{}",
        url.scheme(),
        host_port(url),
        url.path().trim_end_matches('/')
    )
}

fn host_port(url: &Url) -> String {
    let host = url.host_str().unwrap_or_default();
    match url.port() {
        Some(port) => format!("{host}:{port}"),
        None => host.to_owned(),
    }
}

pub fn unix(time: SystemTime) -> u64 {
    time.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// `later - earlier` in whole seconds, negative when `later` is earlier.
fn seconds_between(earlier: SystemTime, later: SystemTime) -> i64 {
    match later.duration_since(earlier) {
        Ok(d) => i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
        Err(e) => -i64::try_from(e.duration().as_secs()).unwrap_or(i64::MAX),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn url(s: &str) -> Url {
        Url::parse(s).expect("url")
    }

    #[test]
    fn plain_http_only_to_loopback_unless_allowed() {
        for ok in [
            "https://registry.example/v2/",
            "http://127.0.0.1:5000/v2/",
            "http://127.8.9.10/token",
            "http://[::1]:5000/v2/",
            "http://localhost:5000/v2/",
        ] {
            assert!(permitted(&url(ok), false), "{ok}");
        }
        for refused in [
            "http://registry.example/v2/",
            "http://10.0.0.1/token",
            "http://localhost.example/token",
            "ftp://127.0.0.1/token",
        ] {
            assert!(!permitted(&url(refused), false), "{refused}");
        }
        assert!(permitted(&url("http://registry.example/v2/"), true));
        assert!(!permitted(&url("file:///etc/passwd"), true));
    }

    #[test]
    fn messages_show_no_query_or_user_information() {
        assert_eq!(
            display(&url(
                "https://user:pw@auth.example:8443/token/?service=s&scope=x"
            )),
            "https://auth.example:8443/token"
        );
    }

    #[test]
    fn skew_has_a_sign() {
        let now = SystemTime::now();
        assert_eq!(seconds_between(now, now + Duration::from_secs(90)), 90);
        assert_eq!(seconds_between(now, now - Duration::from_secs(90)), -90);
        let reply = Reply {
            status: 200,
            challenges: Vec::new(),
            body: Zeroizing::new(Vec::new()),
            skew: 3600,
            arrived: 0,
        };
        assert_eq!(reply.local_time(10_000), 6_400);
    }

    #[test]
    fn a_missing_ca_file_is_named() {
        let registry = RegistrySettings {
            ca_file: Some("/nonexistent/ca.pem".into()),
            ..RegistrySettings::default()
        };
        let error = Http::new(&TokenSettings::default(), &registry).expect_err("missing");
        assert!(error.to_string().contains("/nonexistent/ca.pem"), "{error}");
    }
}

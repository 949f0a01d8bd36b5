//! A registry token server for the tests: the GET and POST endpoints of distribution's token
//! spec, ES256 JWTs with an `x5c` header that Debian's docker-registry 2.8 accepts, and the
//! misbehaviours real servers show, switchable while it runs. It counts every exchange.
//!
//! It also answers `GET /v2/` with a Bearer challenge, so helper-level tests can use it as the
//! registry; end-to-end tests put a real docker-registry in front of it ([`token_registry`]).

use std::collections::HashMap;
use std::fs;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64ct::{Base64, Base64UrlUnpadded, Encoding};
use p256::ecdsa::signature::Signer;
use p256::ecdsa::{Signature, SigningKey};
use p256::pkcs8::EncodePrivateKey;
use serde_json::{Value, json};
use tiny_http::{Header, Request, Response, Server};

use crate::harness::{Registry, TestCa};

pub const SERVICE: &str = "coffer-test-registry";
pub const ISSUER: &str = "coffer-test-issuer";

/// Which fields carry the bearer token in an answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fields {
    Both,
    TokenOnly,
    AccessTokenOnly,
}

/// How the server behaves; change it with [`TokenServer::set`] while it runs.
#[derive(Debug, Clone)]
pub struct Behaviour {
    /// Every POST is answered with this status (a server without the OAuth2 endpoint).
    pub post_status: Option<u16>,
    /// Only password grants by POST are answered with this status; refresh grants work.
    pub password_post_status: Option<u16>,
    /// GET with `offline_token=true` returns a refresh token (the spec says it does).
    pub refresh_on_get: bool,
    /// Offline grants return a refresh token at all.
    pub refresh_token: bool,
    /// `expires_in` of access tokens; `None` leaves the field out (the spec's default is 60).
    pub expires_in: Option<u64>,
    pub fields: Fields,
    /// Refresh tokens carry `exp` and are refused after this many seconds.
    pub refresh_lifetime: Option<u64>,
    /// Every request, the `/v2/` probe included, is answered with this status.
    pub status: Option<u16>,
    /// Every answer waits this long.
    pub delay: Duration,
    /// The server's clock runs this many seconds ahead of ours (its Date header and claims).
    pub skew: i64,
    /// Every `/token` request is answered with this redirect status and `Location`.
    pub redirect: Option<(u16, String)>,
    /// The `issued_at` of answers and the `iat` of refresh tokens, whatever the clock says.
    pub issued_at: Option<u64>,
}

impl Default for Behaviour {
    fn default() -> Self {
        Behaviour {
            post_status: None,
            password_post_status: None,
            refresh_on_get: true,
            refresh_token: true,
            expires_in: Some(300),
            fields: Fields::Both,
            refresh_lifetime: None,
            status: None,
            delay: Duration::ZERO,
            skew: 0,
            redirect: None,
            issued_at: None,
        }
    }
}

/// What one token request asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Grant {
    /// POST `grant_type=password`.
    Password,
    /// POST `grant_type=refresh_token`.
    Refresh,
    /// GET with a Basic credential.
    Basic,
    /// GET without credentials.
    Anonymous,
}

#[derive(Debug, Clone)]
pub struct Exchange {
    pub grant: Grant,
    pub client_id: String,
    pub offline: bool,
    /// Whether a token was issued.
    pub granted: bool,
}

struct Shared {
    user: String,
    password: String,
    key: SigningKey,
    x5c: String,
    behaviour: Mutex<Behaviour>,
    log: Mutex<Vec<Exchange>>,
    /// Issued refresh tokens: user and expiry (server clock).
    refresh_tokens: Mutex<HashMap<String, (String, Option<u64>)>>,
    serial: Mutex<u64>,
    /// Every request received, whatever it was and however it was answered.
    requests: AtomicUsize,
}

pub struct TokenServer {
    pub port: u16,
    /// The self-signed certificate in every token's `x5c`, PEM: the registry's root bundle.
    pub cert_pem: String,
    shared: Arc<Shared>,
    server: Arc<Server>,
    thread: Option<JoinHandle<()>>,
}

impl TokenServer {
    pub fn start(user: &str, password: &str) -> TokenServer {
        let key = SigningKey::random(&mut p256::elliptic_curve::rand_core::OsRng);
        let pkcs8 = key.to_pkcs8_der().expect("pkcs8");
        let key_pair = rcgen::KeyPair::try_from(pkcs8.as_bytes()).expect("rcgen key");
        let mut params = rcgen::CertificateParams::new(vec![ISSUER.to_owned()]).expect("params");
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, ISSUER);
        let cert = params.self_signed(&key_pair).expect("self-signed");
        let shared = Arc::new(Shared {
            user: user.to_owned(),
            password: password.to_owned(),
            key,
            x5c: Base64::encode_string(cert.der()),
            behaviour: Mutex::new(Behaviour::default()),
            log: Mutex::new(Vec::new()),
            refresh_tokens: Mutex::new(HashMap::new()),
            serial: Mutex::new(0),
            requests: AtomicUsize::new(0),
        });
        let server = Arc::new(Server::http("127.0.0.1:0").expect("token server"));
        let port = server.server_addr().to_ip().expect("ip").port();
        let thread = {
            let server = Arc::clone(&server);
            let shared = Arc::clone(&shared);
            std::thread::spawn(move || {
                while let Ok(request) = server.recv() {
                    let shared = Arc::clone(&shared);
                    std::thread::spawn(move || shared.handle(request, port));
                }
            })
        };
        TokenServer {
            port,
            cert_pem: cert.pem(),
            shared,
            server,
            thread: Some(thread),
        }
    }

    pub fn realm(&self) -> String {
        format!("http://127.0.0.1:{}/token", self.port)
    }

    /// The server itself as a registry host (it answers `/v2/` with its challenge).
    pub fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    pub fn set(&self, change: impl FnOnce(&mut Behaviour)) {
        change(&mut lock(&self.shared.behaviour));
    }

    pub fn log(&self) -> Vec<Exchange> {
        lock(&self.shared.log).clone()
    }

    /// Every request so far, answered or not.
    pub fn requests(&self) -> usize {
        self.shared.requests.load(Ordering::SeqCst)
    }

    /// Granted exchanges of the long-lived credential (password grant or Basic GET) by `client`.
    pub fn credential_exchanges(&self, client: &str) -> usize {
        self.log()
            .iter()
            .filter(|e| {
                e.granted
                    && e.client_id == client
                    && matches!(e.grant, Grant::Password | Grant::Basic)
            })
            .count()
    }

    /// Signs an access token for `scopes` as the server would: for tests that talk to the
    /// registry directly.
    pub fn access_token(&self, scopes: &[&str]) -> String {
        self.shared.access_token(scopes, 300)
    }
}

impl Drop for TokenServer {
    fn drop(&mut self) {
        self.server.unblock();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Debian's docker-registry with `auth: token` trusting `server`'s certificate.
pub fn token_registry(server: &TokenServer) -> Registry {
    let dir = tempfile::tempdir().expect("temp dir");
    let auth = token_auth(&dir, server);
    Registry::start(dir, &auth)
}

/// The same over HTTPS, with a certificate for 127.0.0.1 from a new test CA, whose PEM is
/// returned with it.
pub fn token_registry_tls(server: &TokenServer) -> (Registry, String) {
    let dir = tempfile::tempdir().expect("temp dir");
    let ca = TestCa::new();
    let cert = ca.server(&["127.0.0.1"]);
    let cert_path = dir.path().join("registry.pem");
    let key_path = dir.path().join("registry.key");
    fs::write(&cert_path, &cert.pem).expect("cert");
    fs::write(&key_path, &cert.key_pem).expect("key");
    let auth = token_auth(&dir, server);
    (
        Registry::start_tls(dir, &cert_path, &key_path, &auth),
        ca.pem(),
    )
}

fn token_auth(dir: &tempfile::TempDir, server: &TokenServer) -> String {
    let bundle = dir.path().join("bundle.pem");
    fs::write(&bundle, &server.cert_pem).expect("bundle");
    format!(
        "  token:\n    realm: {}\n    service: {SERVICE}\n    issuer: {ISSUER}\n    rootcertbundle: {}\n",
        server.realm(),
        bundle.display()
    )
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock")
        .as_secs()
}

impl Shared {
    fn now(&self) -> u64 {
        unix_now().saturating_add_signed(lock(&self.behaviour).skew)
    }

    fn handle(&self, mut request: Request, port: u16) {
        self.requests.fetch_add(1, Ordering::SeqCst);
        let behaviour = lock(&self.behaviour).clone();
        std::thread::sleep(behaviour.delay);
        let date = httpdate::fmt_http_date(UNIX_EPOCH + Duration::from_secs(self.now()));
        if let Some((status, location)) = &behaviour.redirect
            && request.url().starts_with("/token")
        {
            let response = Response::from_string("")
                .with_status_code(*status)
                .with_header(header("Location", location));
            let _ = request.respond(response);
            return;
        }
        let (status, body, challenge) = match behaviour.status {
            Some(status) => (status, json!({"errors": "misbehaving"}), None),
            None => self.route(&mut request, &behaviour, port),
        };
        let mut response = Response::from_string(body.to_string())
            .with_status_code(status)
            .with_header(header("Content-Type", "application/json"))
            .with_header(header("Date", &date));
        if let Some(challenge) = challenge {
            response = response.with_header(header("WWW-Authenticate", &challenge));
        }
        let _ = request.respond(response);
    }

    fn route(
        &self,
        request: &mut Request,
        behaviour: &Behaviour,
        port: u16,
    ) -> (u16, Value, Option<String>) {
        let url = url::Url::parse(&format!("http://fixture{}", request.url())).expect("url");
        let method = request.method().as_str().to_owned();
        match (method.as_str(), url.path()) {
            ("GET", "/v2/" | "/v2") => (
                401,
                json!({"errors": [{"code": "UNAUTHORIZED"}]}),
                Some(format!(
                    r#"Bearer realm="http://127.0.0.1:{port}/token",service="{SERVICE}""#
                )),
            ),
            ("GET", "/token") => {
                let query: HashMap<String, String> = url.query_pairs().into_owned().collect();
                let scopes: Vec<String> = url
                    .query_pairs()
                    .filter(|(k, _)| k == "scope")
                    .map(|(_, v)| v.into_owned())
                    .collect();
                self.get_token(request, behaviour, &query, &scopes)
            }
            ("POST", "/token") => {
                let mut body = String::new();
                let _ = request.as_reader().read_to_string(&mut body);
                let form: HashMap<String, String> = url::form_urlencoded::parse(body.as_bytes())
                    .into_owned()
                    .collect();
                self.post_token(behaviour, &form)
            }
            _ => (404, json!({"error": "not found"}), None),
        }
    }

    fn get_token(
        &self,
        request: &Request,
        behaviour: &Behaviour,
        query: &HashMap<String, String>,
        scopes: &[String],
    ) -> (u16, Value, Option<String>) {
        let basic = request
            .headers()
            .iter()
            .find(|h| h.field.equiv("Authorization"))
            .and_then(|h| h.value.as_str().strip_prefix("Basic "))
            .and_then(|b64| Base64::decode_vec(b64).ok())
            .and_then(|bytes| String::from_utf8(bytes).ok());
        let offline = query.get("offline_token").is_some_and(|v| v == "true");
        let client_id = query.get("client_id").cloned().unwrap_or_default();
        let grant = if basic.is_some() {
            Grant::Basic
        } else {
            Grant::Anonymous
        };
        let user = match basic {
            Some(pair) if pair == format!("{}:{}", self.user, self.password) => {
                Some(self.user.clone())
            }
            Some(_) => {
                self.record(grant, &client_id, offline, false);
                return (401, json!({"details": "bad credentials"}), None);
            }
            None => None,
        };
        self.record(grant, &client_id, offline, true);
        let scopes: Vec<&str> = scopes.iter().map(String::as_str).collect();
        let refresh = user
            .as_deref()
            .filter(|_| offline && behaviour.refresh_on_get);
        (
            200,
            self.answer(behaviour, &scopes, user.is_some(), refresh),
            None,
        )
    }

    fn post_token(
        &self,
        behaviour: &Behaviour,
        form: &HashMap<String, String>,
    ) -> (u16, Value, Option<String>) {
        let field = |name: &str| form.get(name).map(String::as_str).unwrap_or_default();
        let client_id = field("client_id").to_owned();
        let scopes: Vec<&str> = field("scope").split_whitespace().collect();
        let grant = match field("grant_type") {
            "password" => Grant::Password,
            "refresh_token" => Grant::Refresh,
            _ => return (400, json!({"error": "unsupported_grant_type"}), None),
        };
        let refused = behaviour.post_status.or(match grant {
            Grant::Password => behaviour.password_post_status,
            _ => None,
        });
        if let Some(status) = refused {
            self.record(grant, &client_id, false, false);
            return (status, json!({"error": "refused"}), None);
        }
        match grant {
            Grant::Password => {
                let offline = field("access_type") == "offline";
                if field("username") != self.user || field("password") != self.password {
                    self.record(grant, &client_id, offline, false);
                    return (401, json!({"error": "invalid_grant"}), None);
                }
                self.record(grant, &client_id, offline, true);
                let refresh = offline.then_some(self.user.as_str());
                (200, self.answer(behaviour, &scopes, true, refresh), None)
            }
            _ => {
                let token = field("refresh_token");
                let known = lock(&self.refresh_tokens).get(token).cloned();
                let now = self.now();
                match known {
                    Some((_, expires)) if expires.is_none_or(|at| now < at) => {
                        self.record(grant, &client_id, false, true);
                        // Refresh grants never rotate the refresh token: dockerd drops new ones.
                        let mut answer = self.answer(behaviour, &scopes, true, None);
                        answer["refresh_token"] = json!(token);
                        (200, answer, None)
                    }
                    _ => {
                        self.record(grant, &client_id, false, false);
                        (401, json!({"error": "invalid_grant"}), None)
                    }
                }
            }
        }
    }

    fn record(&self, grant: Grant, client_id: &str, offline: bool, granted: bool) {
        lock(&self.log).push(Exchange {
            grant,
            client_id: client_id.to_owned(),
            offline,
            granted,
        });
    }

    /// A token answer: the access token in the fields the behaviour asks for, and a refresh
    /// token for `refresh_user` where refresh tokens are given.
    fn answer(
        &self,
        behaviour: &Behaviour,
        scopes: &[&str],
        authenticated: bool,
        refresh_user: Option<&str>,
    ) -> Value {
        let lifetime = behaviour.expires_in.unwrap_or(60);
        let granted: &[&str] = if authenticated { scopes } else { &[] };
        let token = self.access_token(granted, lifetime);
        let mut answer = json!({
            "issued_at": humantime::format_rfc3339_seconds(
                UNIX_EPOCH + Duration::from_secs(behaviour.issued_at.unwrap_or(self.now()))
            ).to_string(),
        });
        match behaviour.fields {
            Fields::Both => {
                answer["token"] = json!(token);
                answer["access_token"] = json!(token);
            }
            Fields::TokenOnly => answer["token"] = json!(token),
            Fields::AccessTokenOnly => answer["access_token"] = json!(token),
        }
        if let Some(expires_in) = behaviour.expires_in {
            answer["expires_in"] = json!(expires_in);
        }
        if let Some(user) = refresh_user.filter(|_| behaviour.refresh_token) {
            answer["refresh_token"] = json!(self.refresh_token(user, behaviour));
        }
        answer
    }

    fn access_token(&self, scopes: &[&str], lifetime: u64) -> String {
        let access: Vec<Value> = scopes
            .iter()
            .filter_map(|scope| {
                // type:name:actions, where the name may itself hold `host:port`.
                let (kind, rest) = scope.split_once(':')?;
                let (name, actions) = rest.rsplit_once(':')?;
                Some(json!({
                    "type": kind,
                    "name": name,
                    "actions": actions.split(',').collect::<Vec<_>>(),
                }))
            })
            .collect();
        let now = self.now();
        self.sign(&json!({
            "iss": ISSUER,
            "sub": self.user,
            "aud": SERVICE,
            "exp": now + lifetime,
            "nbf": now.saturating_sub(5),
            "iat": now,
            "jti": self.serial(),
            "access": access,
        }))
    }

    fn refresh_token(&self, user: &str, behaviour: &Behaviour) -> String {
        let now = self.now();
        let expires = behaviour.refresh_lifetime.map(|l| now + l);
        let mut claims = json!({
            "iss": ISSUER,
            "sub": user,
            "aud": SERVICE,
            "iat": behaviour.issued_at.unwrap_or(now),
            "jti": self.serial(),
        });
        if let Some(expires) = expires {
            claims["exp"] = json!(expires);
        }
        let token = self.sign(&claims);
        lock(&self.refresh_tokens).insert(token.clone(), (user.to_owned(), expires));
        token
    }

    fn serial(&self) -> String {
        let mut serial = lock(&self.serial);
        *serial += 1;
        format!("coffer-test-{}-{}", std::process::id(), *serial)
    }

    /// A compact JWS: ES256, the signature as raw r‖s, the certificate in `x5c`.
    fn sign(&self, claims: &Value) -> String {
        let header = json!({"typ": "JWT", "alg": "ES256", "x5c": [self.x5c]});
        let input = format!(
            "{}.{}",
            Base64UrlUnpadded::encode_string(header.to_string().as_bytes()),
            Base64UrlUnpadded::encode_string(claims.to_string().as_bytes())
        );
        let signature: Signature = self.key.sign(input.as_bytes());
        format!(
            "{input}.{}",
            Base64UrlUnpadded::encode_string(&signature.to_bytes())
        )
    }
}

fn header(name: &str, value: &str) -> Header {
    Header::from_bytes(name.as_bytes(), value.as_bytes()).expect("header")
}

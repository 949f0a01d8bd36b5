//! How a node logs in with its own identity, so that no long-lived secret of the fleet sits on
//! it: a JWT from a file (a Kubernetes projected service-account token, a CI job's OIDC token)
//! for `jwt` or `kubernetes` auth, an AppRole secret-id from a file (optionally response-wrapped),
//! a TLS client certificate, or, for people, a token (`BAO_TOKEN`, `VAULT_TOKEN`, a file, or
//! `~/.vault-token` as `bao login` writes it).

use std::path::{Path, PathBuf};

use reqwest::Method;
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use zeroize::Zeroizing;

use super::client::{Answer, Call, Client};
use super::error::BaoError;
use super::kv::Version;
use super::settings::AuthSettings;
use crate::clock::now;

/// A token, JWT or secret-id file is a few KiB at most.
const MAX_IDENTITY_FILE: u64 = 64 * 1024;

/// How this node logs in, by the `[openbao.auth]` settings.
impl AuthSettings {
    /// The TLS identity cert auth presents (on every connection: the server asks for it only
    /// at login).
    pub fn tls_identity(&self) -> Result<Option<reqwest::Identity>, BaoError> {
        let AuthSettings::Cert {
            client_cert,
            client_key,
            ..
        } = self
        else {
            return Ok(None);
        };
        let mut pem = Zeroizing::new(read(client_cert, "the client certificate")?.to_vec());
        pem.push(b'\n');
        pem.extend_from_slice(&read(client_key, "the client key")?);
        reqwest::Identity::from_pem(&pem)
            .map(Some)
            .map_err(|_| BaoError::Pem {
                what: "the client certificate and key",
                path: client_cert.clone(),
                expected: "certificate and private key",
            })
    }

    /// A token to hand straight to the server (the `token` method), from the first source
    /// that has one.
    fn given_token(&self) -> Result<(SecretString, String), BaoError> {
        if let AuthSettings::Token {
            token_file: Some(file),
        } = self
        {
            return Ok((
                text_secret(file, "the token file")?,
                format!("the token in {}", file.display()),
            ));
        }
        for name in ["BAO_TOKEN", "VAULT_TOKEN"] {
            if let Some(token) = std::env::var(name).ok().filter(|t| !t.trim().is_empty()) {
                return Ok((
                    SecretString::from(token.trim().to_owned()),
                    format!("the token in {name}"),
                ));
            }
        }
        if let Some(home) = std::env::var_os("HOME").filter(|h| !h.is_empty()) {
            let file = PathBuf::from(home).join(".vault-token");
            if file.exists() {
                return Ok((
                    text_secret(&file, "the token file")?,
                    format!("the token in {}", file.display()),
                ));
            }
        }
        Err(BaoError::NoToken)
    }

    /// A hash input that tells this identity from another's: settings, and for a given token
    /// the token itself (a new `bao login` is a new identity).
    pub fn fingerprint(&self) -> Vec<u8> {
        let mut bytes = serde_json::to_vec(self).unwrap_or_default();
        if matches!(self, AuthSettings::Token { .. })
            && let Ok((token, _)) = self.given_token()
        {
            bytes.extend_from_slice(token.expose_secret().as_bytes());
        }
        bytes
    }

    /// Logs in (or, for a token, looks it up), and says for how long the session holds.
    pub fn login(
        &self,
        client: &Client,
        cached_secret_id: &mut Option<SecretString>,
    ) -> Result<Session, BaoError> {
        let method = self.method();
        let (body, identity) = match self {
            AuthSettings::Token { .. } => {
                let (token, identity) = self.given_token()?;
                return lookup_self(client, token, identity);
            }
            AuthSettings::Jwt { role, jwt_file, .. }
            | AuthSettings::Kubernetes { role, jwt_file, .. } => {
                let jwt = jwt(jwt_file)?;
                (
                    json!({"role": role, "jwt": jwt.expose_secret()}),
                    self.identity(),
                )
            }
            AuthSettings::Approle {
                role_id,
                role_id_file,
                secret_id_file,
                secret_id_wrapped,
                ..
            } => {
                let role_id = match (role_id, role_id_file) {
                    (Some(id), _) => id.clone(),
                    (None, Some(file)) => text_secret(file, "the role-id file")?
                        .expose_secret()
                        .to_owned(),
                    (None, None) => {
                        return Err(BaoError::Identity {
                            path: secret_id_file.clone(),
                            problem: "is an AppRole secret-id, but no role_id or role_id_file is set under [openbao.auth]".to_owned(),
                        });
                    }
                };
                let secret_id = match cached_secret_id.take() {
                    Some(kept) => kept,
                    None if *secret_id_wrapped => unwrap(client, secret_id_file)?,
                    None => text_secret(secret_id_file, "the secret-id file")?,
                };
                let body = json!({"role_id": role_id, "secret_id": secret_id.expose_secret()});
                *cached_secret_id = Some(secret_id);
                (body, self.identity())
            }
            AuthSettings::Cert { name, .. } => (
                match name {
                    Some(name) => json!({"name": name}),
                    None => json!({}),
                },
                self.identity(),
            ),
        };
        post_login(client, method, &self.mount(), &body, identity)
    }
}

/// A JWT in hand for `jwt` or `kubernetes` auth: a pod's service-account token, which the
/// kubelet provider passes on. It is sent to the server and written nowhere (its `Debug`
/// redacts it).
#[derive(Debug)]
pub struct JwtLogin<'a> {
    /// `jwt`, or `kubernetes` (the server asks the cluster's TokenReview about the token).
    pub method: &'static str,
    /// Where the method is mounted; `None`: at its own name.
    pub mount: Option<&'a str>,
    pub role: String,
    pub jwt: &'a SecretString,
    /// Whose token it is, in words, for messages (`service account apps/web`).
    pub who: String,
}

/// Logs in with `login`'s JWT.
pub fn jwt_login(client: &Client, login: &JwtLogin) -> Result<Session, BaoError> {
    let body = json!({"role": login.role, "jwt": login.jwt.expose_secret()});
    let identity = format!("{}, role {}", login.who, login.role);
    let mount = login.mount.unwrap_or(login.method).trim_matches('/');
    post_login(client, login.method, mount, &body, identity)
}

/// `POST auth/<mount>/login` with `body`, and the session it gives.
fn post_login(
    client: &Client,
    method: &'static str,
    mount: &str,
    body: &Value,
    identity: String,
) -> Result<Session, BaoError> {
    let path = format!("auth/{mount}/login");
    let answer = client.send(Method::POST, &Call::to(&path).with_json(body))?;
    if !answer.ok() {
        return Err(BaoError::LoginRefused {
            server: answer.server.clone(),
            method,
            identity,
            message: refusal(&answer),
        });
    }
    session(&answer, method, identity, "the login")
}

/// Revokes `token` now (best effort: it ends with its lease anyway).
pub fn revoke(client: &Client, token: &SecretString) {
    let call = Call::to("auth/token/revoke-self")
        .with_token(token)
        .with_json(&json!({}));
    let _ = client.send(Method::POST, &call);
}

fn refusal(answer: &Answer) -> String {
    match answer.errors() {
        message if message.is_empty() => format!("HTTP {}", answer.status),
        message => message,
    }
}

/// What a login (or a token lookup) gave: the token and how long it holds. Cached in memory
/// (the kernel keyring or the agent) until it expires; its `Debug` never shows the token.
#[derive(Clone, Serialize, Deserialize)]
pub struct Session {
    #[serde(serialize_with = "crate::serde_secret::expose")]
    pub token: SecretString,
    pub method: String,
    pub identity: String,
    pub server: String,
    #[serde(default)]
    pub policies: Vec<String>,
    pub obtained: u64,
    /// `None`: the token never expires (a root token).
    pub expires_at: Option<u64>,
    pub renewable: bool,
    /// When to renew: two thirds of the lease plus a third of a grace of a tenth, like Agent.
    pub renew_at: Option<u64>,
    /// The mount's KV version, found once per session.
    #[serde(default)]
    pub kv_version: Option<Version>,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("method", &self.method)
            .field("identity", &self.identity)
            .field("expires_at", &self.expires_at)
            .finish_non_exhaustive()
    }
}

impl Session {
    /// Whether the token is still good at `at` (a few seconds' margin for the request itself).
    pub fn valid_at(&self, at: u64) -> bool {
        self.expires_at.is_none_or(|end| at.saturating_add(5) < end)
    }

    pub fn due_for_renewal(&self, at: u64) -> bool {
        self.renewable && self.renew_at.is_some_and(|when| at >= when)
    }

    /// Takes a renewal's new lease; `false` when the lease can no longer grow (max TTL reached)
    /// and it is time to log in again.
    pub fn renewed(&mut self, lease: u64, renewable: bool, at: u64) -> bool {
        let before = self
            .expires_at
            .map_or(u64::MAX, |end| end.saturating_sub(at));
        self.renewable = renewable;
        self.set_lease(lease, at);
        // At max TTL a renewal returns what is left: log in within the grace window instead.
        renewable && lease > before / 2
    }

    fn set_lease(&mut self, lease: u64, at: u64) {
        if lease == 0 {
            self.expires_at = None;
            self.renew_at = None;
        } else {
            self.expires_at = Some(at + lease);
            let grace = lease / 10;
            self.renew_at = Some(at + lease * 2 / 3 + grace / 3);
        }
    }
}

#[derive(Deserialize)]
struct LoginReply {
    auth: Option<LoginAuth>,
}
#[derive(Deserialize)]
struct LoginAuth {
    client_token: SecretString,
    #[serde(default)]
    policies: Vec<String>,
    #[serde(default)]
    lease_duration: u64,
    #[serde(default)]
    renewable: bool,
    #[serde(default)]
    metadata: Option<serde_json::Map<String, Value>>,
}

fn session(
    answer: &Answer,
    method: &'static str,
    identity: String,
    what: &str,
) -> Result<Session, BaoError> {
    let Some(auth) = answer.json::<LoginReply>(what)?.auth else {
        return Err(BaoError::Malformed {
            server: answer.server.clone(),
            what: what.to_owned(),
            problem: "no `auth` in the answer".to_owned(),
        });
    };
    let named = auth
        .metadata
        .iter()
        .flatten()
        .filter_map(|(k, v)| v.as_str().map(|v| format!("{k}={v}")))
        .collect::<Vec<_>>();
    let identity = if named.is_empty() {
        identity
    } else {
        format!("{identity} ({})", named.join(", "))
    };
    let at = now();
    let mut session = Session {
        token: auth.client_token,
        method: method.to_owned(),
        identity,
        server: answer.server.clone(),
        policies: auth.policies,
        obtained: at,
        expires_at: None,
        renewable: auth.renewable,
        renew_at: None,
        kv_version: None,
    };
    session.set_lease(auth.lease_duration, at);
    Ok(session)
}

#[derive(Deserialize)]
struct Lookup {
    data: LookupData,
}
#[derive(Deserialize)]
struct LookupData {
    #[serde(default)]
    ttl: u64,
    #[serde(default)]
    renewable: bool,
    #[serde(default)]
    policies: Vec<String>,
    #[serde(default)]
    display_name: String,
}

fn lookup_self(
    client: &Client,
    token: SecretString,
    identity: String,
) -> Result<Session, BaoError> {
    let answer = client.send(
        Method::GET,
        &Call::to("auth/token/lookup-self").with_token(&token),
    )?;
    if !answer.ok() {
        return Err(BaoError::LoginRefused {
            server: answer.server.clone(),
            method: "token",
            identity,
            message: refusal(&answer),
        });
    }
    let data = answer.json::<Lookup>("the token lookup")?.data;
    let at = now();
    let mut session = Session {
        token,
        method: "token".to_owned(),
        identity: if data.display_name.is_empty() {
            identity
        } else {
            format!("{identity} ({})", data.display_name)
        },
        server: answer.server.clone(),
        policies: data.policies,
        obtained: at,
        expires_at: None,
        renewable: data.renewable,
        renew_at: None,
        kv_version: None,
    };
    session.set_lease(data.ttl, at);
    Ok(session)
}

/// Renews the session's token; `Ok(false)`: it cannot be renewed further, log in again.
pub fn renew(client: &Client, session: &mut Session) -> Result<bool, BaoError> {
    let call = Call::to("auth/token/renew-self")
        .with_token(&session.token)
        .with_json(&json!({}));
    let answer = client.send(Method::POST, &call)?;
    if !answer.ok() {
        return Ok(false);
    }
    let Some(auth) = answer.json::<LoginReply>("the token renewal")?.auth else {
        return Ok(false);
    };
    Ok(session.renewed(auth.lease_duration, auth.renewable, now()))
}

#[derive(Deserialize)]
struct Unwrapped {
    data: Option<UnwrappedData>,
}
#[derive(Deserialize)]
struct UnwrappedData {
    secret_id: SecretString,
}

/// The secret-id inside the wrapping token in `file`. A wrapping token works once: if someone
/// else unwrapped it first, this fails, which is the point.
fn unwrap(client: &Client, file: &Path) -> Result<SecretString, BaoError> {
    let wrapping = text_secret(file, "the wrapped secret-id file")?;
    let call = Call::to("sys/wrapping/unwrap")
        .with_token(&wrapping)
        .with_json(&json!({}));
    let answer = client.send(Method::POST, &call)?;
    if !answer.ok() {
        return Err(BaoError::Identity {
            path: file.to_owned(),
            problem: format!(
                "holds a wrapping token OpenBao at {} would not unwrap ({}): it was used already \
                 (by coffer before, or by someone else) or expired; deliver a new wrapped secret-id",
                answer.server,
                refusal(&answer)
            ),
        });
    }
    answer
        .json::<Unwrapped>("the unwrapping")?
        .data
        .map(|d| d.secret_id)
        .ok_or_else(|| BaoError::Identity {
            path: file.to_owned(),
            problem: "unwraps to something that is not an AppRole secret-id".to_owned(),
        })
}

fn read(path: &Path, what: &'static str) -> Result<Zeroizing<Vec<u8>>, BaoError> {
    use std::io::Read as _;
    let file = std::fs::File::open(path).map_err(BaoError::file(what, path))?;
    let mut bytes = Zeroizing::new(Vec::new());
    file.take(MAX_IDENTITY_FILE + 1)
        .read_to_end(&mut bytes)
        .map_err(BaoError::file(what, path))?;
    if bytes.len() as u64 > MAX_IDENTITY_FILE {
        return Err(BaoError::Identity {
            path: path.to_owned(),
            problem: format!(
                "is larger than {} KiB; it is not a {what}",
                MAX_IDENTITY_FILE / 1024
            ),
        });
    }
    Ok(bytes)
}

/// A one-line secret from a file, trimmed.
fn text_secret(path: &Path, what: &'static str) -> Result<SecretString, BaoError> {
    let bytes = read(path, what)?;
    let text = std::str::from_utf8(&bytes).map_err(|_| BaoError::Identity {
        path: path.to_owned(),
        problem: "is not text".to_owned(),
    })?;
    let text = text.trim();
    if text.is_empty() {
        return Err(BaoError::Identity {
            path: path.to_owned(),
            problem: "is empty".to_owned(),
        });
    }
    Ok(SecretString::from(text.to_owned()))
}

/// The JWT in `file`, checked for shape and expiry before the server is asked.
fn jwt(file: &Path) -> Result<SecretString, BaoError> {
    let token = text_secret(file, "the JWT file")?;
    let Some(times) = crate::token::jwt::times(token.expose_secret()) else {
        return Err(BaoError::Identity {
            path: file.to_owned(),
            problem: "does not hold a JWT (three base64url parts with JSON claims)".to_owned(),
        });
    };
    if let Some(expired) = times.expires_at.filter(|&at| at <= now()) {
        return Err(BaoError::Identity {
            path: file.to_owned(),
            problem: format!(
                "holds a JWT that expired at {}; whatever writes it (the kubelet, the CI runner) \
                 must renew it",
                crate::clock::rfc3339(expired)
            ),
        });
    }
    Ok(token)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renewal_follows_agents_rule_and_stops_at_max_ttl() {
        let mut session = Session {
            token: SecretString::from("s.x"),
            method: "jwt".into(),
            identity: "i".into(),
            server: "s".into(),
            policies: Vec::new(),
            obtained: 1000,
            expires_at: None,
            renewable: true,
            renew_at: None,
            kv_version: None,
        };
        session.set_lease(300, 1000);
        assert_eq!(session.expires_at, Some(1300));
        assert_eq!(session.renew_at, Some(1000 + 200 + 10));
        assert!(!session.due_for_renewal(1209) && session.due_for_renewal(1210));
        assert!(session.renewed(300, true, 1210), "a full lease again");
        // At max TTL the server gives only what is left: log in again instead.
        assert!(!session.renewed(20, true, 1400));
        assert!(session.valid_at(1414) && !session.valid_at(1415));
    }

    #[test]
    fn a_malformed_or_expired_jwt_is_one_clear_line() {
        let dir = tempfile::tempdir().expect("dir");
        let file = dir.path().join("jwt");
        std::fs::write(&file, "not-a-jwt").expect("write");
        let error = jwt(&file).expect_err("malformed").to_string();
        assert!(error.contains("does not hold a JWT"), "{error}");
        use base64ct::{Base64UrlUnpadded, Encoding};
        let claims = Base64UrlUnpadded::encode_string(br#"{"exp":1000,"sub":"x"}"#);
        std::fs::write(&file, format!("e30.{claims}.c2ln")).expect("write");
        let error = jwt(&file).expect_err("expired").to_string();
        assert!(
            error.contains("expired at 1970-01-01") && !error.contains('\n'),
            "{error}"
        );
    }
}

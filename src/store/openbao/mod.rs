//! The central store: entries in the KV secrets engine of OpenBao or HashiCorp Vault (the same
//! API), read by every node with its own identity (`backend = "openbao"`).
//!
//! - [`settings`]: `[openbao]` in config.toml, under the `BAO_*`/`VAULT_*` environment;
//! - [`client`]: HTTP to several addresses, redirects, bounds;
//! - [`kv`]: the layout and KV v1/v2;
//! - [`auth`]: the login methods;
//! - [`cache`]: the session and the entries read, in memory only.
//!
//! A warm `get` asks nothing of the server: a session still valid and an entry younger than
//! `cache_for` answer from the cache. When no server answers, an entry younger than `stale_for`
//! still does, and the store says so ([`Store::warning`]); a node the server denies (revoked,
//! or its policy changed) forgets what it cached and fails with one line.

pub mod auth;
pub mod cache;
pub mod client;
pub mod error;
pub mod kv;
pub mod settings;

use std::sync::{Mutex, OnceLock};

use hmac::{Hmac, Mac};
use serde_json::Map;
use sha2::{Digest, Sha256};

use self::auth::Session;
use self::cache::Cache;
use self::client::{Call, Client};
use self::error::BaoError;
use self::kv::{Kv, Layout, Version, Written};
use self::settings::OpenBaoSettings;
use super::used::{self, UsedMarks};
use super::{Entry, Store, Summary};
use crate::clock::now;
use crate::error::Result;
use crate::paths::Paths;
use crate::warning::Warning;

/// Check-and-set retries before a write gives up.
const CAS_TRIES: u32 = 50;

#[derive(Debug)]
pub struct OpenBaoStore {
    settings: OpenBaoSettings,
    layout: Layout,
    cache: Cache,
    /// Built on the first request: a warm `get` never loads a TLS configuration.
    client: OnceLock<Client>,
    used: UsedMarks,
    id: String,
    /// What the last call served that the caller should know (a stale entry).
    warning: Mutex<Option<Warning>>,
}

/// What `coffer doctor` and `coffer status` show of the central store.
#[derive(Debug)]
pub struct Status {
    pub servers: Vec<String>,
    pub method: &'static str,
    pub identity: String,
    pub mount: String,
    /// Seconds the cached token has left (`Some(None)`: it never expires); `None`: no session.
    pub lease_left: Option<Option<u64>>,
    pub policies: Vec<String>,
    pub cached_entries: usize,
    /// Seconds since the oldest cached entry was read.
    pub oldest_entry_age: Option<u64>,
    pub last_error: Option<(u64, String)>,
    pub served_stale_at: Option<u64>,
}

impl Status {
    /// The status for people, one fact a line (`coffer status`, `coffer doctor`).
    pub fn lines(&self, at: u64) -> Vec<String> {
        let ago = |t: u64| {
            humantime::format_duration(std::time::Duration::from_secs(at.saturating_sub(t)))
        };
        let mut lines = vec![
            format!("server: {}", self.servers.join(", ")),
            format!("auth: {} ({})", self.method, self.identity),
            format!("entries under: {}", self.mount),
        ];
        lines.push(match self.lease_left {
            Some(Some(left)) => format!(
                "token: {} left{}",
                humantime::format_duration(std::time::Duration::from_secs(left)),
                policies(&self.policies)
            ),
            Some(None) => format!("token: never expires{}", policies(&self.policies)),
            None => "token: none cached; the next get logs in".to_owned(),
        });
        lines.push(match self.oldest_entry_age {
            Some(age) => format!(
                "cache: {} cached, the oldest read {} ago",
                self.cached_entries,
                humantime::format_duration(std::time::Duration::from_secs(age))
            ),
            None => "cache: empty".to_owned(),
        });
        if let Some(when) = self.served_stale_at {
            lines.push(format!(
                "served from the cache while no server answered, {} ago",
                ago(when)
            ));
        }
        lines.push(match &self.last_error {
            Some((when, error)) => format!("last error, {} ago: {error}", ago(*when)),
            None => "last error: none".to_owned(),
        });
        lines
    }
}

fn policies(policies: &[String]) -> String {
    if policies.is_empty() {
        String::new()
    } else {
        format!(", policies {}", policies.join(", "))
    }
}

impl OpenBaoStore {
    /// The store `settings` describe (as given: see [`OpenBaoSettings::resolved`] for the
    /// environment's); nothing is asked of any server yet.
    pub fn new(paths: &Paths, settings: &OpenBaoSettings) -> Result<OpenBaoStore> {
        let settings = settings.clone();
        let layout = Layout::new(&settings.mount, &settings.prefix)?;
        let mut hash = Sha256::new();
        for part in [
            settings.addresses.join(",").as_bytes(),
            settings.namespace.as_deref().unwrap_or("").as_bytes(),
            settings.mount.as_bytes(),
            settings.prefix.as_bytes(),
            &settings.auth.fingerprint(),
        ] {
            hash.update((part.len() as u64).to_le_bytes());
            hash.update(part);
        }
        let id: String = hash.finalize()[..16]
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        Ok(OpenBaoStore {
            cache: Cache::new(id.clone()),
            used: UsedMarks::new(paths.home().join("openbao-used")),
            settings,
            layout,
            client: OnceLock::new(),
            id,
            warning: Mutex::new(None),
        })
    }

    fn client(&self) -> std::result::Result<&Client, BaoError> {
        if let Some(client) = self.client.get() {
            return Ok(client);
        }
        let client = Client::new(&self.settings, self.settings.auth.tls_identity()?)?;
        Ok(self.client.get_or_init(|| client))
    }

    fn keep_for(&self) -> u64 {
        self.settings
            .stale_for
            .max(self.settings.cache_for)
            .as_secs()
    }

    /// A session whose token is good now: the cached one (renewed when due), else a new login,
    /// unless the last login failed too recently.
    fn session(&self) -> std::result::Result<Session, BaoError> {
        let at = now();
        if let Some(mut session) = self.cache.session().filter(|s| s.valid_at(at)) {
            if session.due_for_renewal(at) {
                match auth::renew(self.client()?, &mut session) {
                    Ok(true) => self.cache.keep_session(&session),
                    // Renewal refused or at its end: a new login, while this token still works.
                    Ok(false) => return self.login().or(Ok(session)),
                    // The server is away: the token is good until it expires.
                    Err(_) => {}
                }
            }
            return Ok(session);
        }
        self.login()
    }

    fn login(&self) -> std::result::Result<Session, BaoError> {
        let state = self.cache.state();
        let method = self.settings.auth.method();
        if let Some(retry) = state.backoff_left(now()) {
            return Err(BaoError::BackingOff {
                method,
                away: state.away,
                seconds: now().saturating_sub(state.failed_at),
                retry,
                message: state.last_error.unwrap_or_default(),
            });
        }
        let mut secret_id = self.cache.secret_id();
        let had_secret_id = secret_id.is_some();
        match self.settings.auth.login(self.client()?, &mut secret_id) {
            Ok(session) => {
                // An unwrapped secret-id is kept for the next login: its wrapping token is spent.
                let wrapped = matches!(
                    self.settings.auth,
                    settings::AuthSettings::Approle {
                        secret_id_wrapped: true,
                        ..
                    }
                );
                if let Some(secret_id) = secret_id.filter(|_| wrapped && !had_secret_id) {
                    self.cache.keep_secret_id(&secret_id);
                }
                self.cache.keep_session(&session);
                if state.failed_logins > 0 {
                    self.cache.change_state(|s| s.failed_logins = 0);
                }
                Ok(session)
            }
            Err(error) => {
                let away = error.is_unavailable();
                let message = error.to_string();
                self.cache.change_state(|s| {
                    s.failed_logins = s.failed_logins.saturating_add(1);
                    s.failed_at = now();
                    s.away = away;
                    s.last_error = Some(message);
                    s.last_error_at = now();
                });
                if !away {
                    // Refused: this identity reads nothing any more, cached or not.
                    self.cache.forget_entries();
                }
                Err(error)
            }
        }
    }

    /// Runs `work` on the mount with a valid session. A token refused mid-way (revoked, expired
    /// early) is dropped and the login tried once more; a refusal after a fresh login is the
    /// node being denied, and forgets what it cached.
    fn with_kv<T>(
        &self,
        work: &mut dyn FnMut(&Kv) -> std::result::Result<T, BaoError>,
    ) -> std::result::Result<T, BaoError> {
        let result = (|| {
            let mut fresh = false;
            loop {
                let mut session = self.session()?;
                let version = self.version(&mut session)?;
                let kv = Kv {
                    client: self.client()?,
                    token: &session.token,
                    layout: &self.layout,
                    version,
                };
                match work(&kv) {
                    Err(BaoError::Refused {
                        status: 403,
                        server,
                        what,
                        ..
                    }) => {
                        self.cache.forget_session();
                        if fresh {
                            self.cache.forget_entries();
                            return Err(BaoError::Denied {
                                server,
                                identity: format!(
                                    "this node ({} login, {})",
                                    session.method, session.identity
                                ),
                                what,
                            });
                        }
                        fresh = true;
                    }
                    other => return other,
                }
            }
        })();
        if let Err(error) = &result {
            let message = error.to_string();
            self.cache.change_state(|s| {
                s.last_error = Some(message);
                s.last_error_at = now();
            });
        }
        result
    }

    /// The mount's KV version: found once per session.
    fn version(&self, session: &mut Session) -> std::result::Result<Version, BaoError> {
        if let Some(version) = session.kv_version {
            return Ok(version);
        }
        let version = mount_version(self.client()?, &self.layout, &session.token)?;
        session.kv_version = Some(version);
        self.cache.keep_session(session);
        Ok(version)
    }

    fn read_entry(&self, kv: &Kv, key: &str) -> std::result::Result<Current, BaoError> {
        let read = kv.read(key)?;
        let entry = match &read.fields {
            Some(fields) => Some(kv::decode(&self.layout, key, fields)?),
            None => None,
        };
        Ok(Current {
            entry,
            version: read.version,
            fields: read.fields.unwrap_or_default(),
        })
    }

    fn use_tag(&self, key: &str) -> [u8; 32] {
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(self.id.as_bytes())
            .expect("HMAC takes a key of any length");
        mac.update(b"coffer openbao use\0");
        mac.update(key.as_bytes());
        mac.finalize().into_bytes().into()
    }

    fn warn(&self, warning: Warning) {
        if let Ok(mut slot) = self.warning.lock() {
            *slot = Some(warning);
        }
    }

    fn lookup(&self, keys: &[String], is_use: bool) -> Result<Option<Entry>> {
        let at = now();
        let fresh_for = self.settings.cache_for.as_secs();
        let cached = self.cache.entries();
        let warm = self.cache.session().is_some_and(|s| s.valid_at(at));
        if warm {
            for key in keys {
                match cached.get(key) {
                    Some(c) if c.at.saturating_add(fresh_for) > at => {
                        if let Some(entry) = &c.entry {
                            if is_use {
                                self.used.mark(&self.use_tag(key));
                            }
                            return Ok(Some(entry.clone()));
                        }
                    }
                    _ => break,
                }
            }
            if keys.iter().all(|k| {
                cached
                    .get(k)
                    .is_some_and(|c| c.entry.is_none() && c.at.saturating_add(fresh_for) > at)
            }) {
                return Ok(None);
            }
        }
        let mut read = Vec::new();
        let result = self.with_kv(&mut |kv| {
            read.clear();
            first_readable(kv, keys, &mut read)
        });
        self.cache
            .keep_entries(std::mem::take(&mut read), self.keep_for());
        match result {
            Ok(found) => Ok(found.map(|(key, entry)| {
                if is_use {
                    self.used.mark(&self.use_tag(&key));
                }
                entry
            })),
            Err(error) if error.is_unavailable() => {
                let stale_for = self.settings.stale_for.as_secs();
                for key in keys {
                    let Some(c) = cached
                        .get(key)
                        .filter(|c| c.at.saturating_add(stale_for) > at)
                    else {
                        continue;
                    };
                    let Some(entry) = &c.entry else { continue };
                    self.cache.change_state(|s| s.served_stale_at = now());
                    self.warn(Warning::new(format!(
                        "served from the cache, read {} s ago: {error}",
                        at.saturating_sub(c.at)
                    )));
                    return Ok(Some(entry.clone()));
                }
                Err(error.into())
            }
            Err(error) => Err(error.into()),
        }
    }

    /// What `coffer doctor` and `coffer status` show, from the cache alone (no request).
    pub fn status(&self) -> Status {
        let at = now();
        let session = self.cache.session().filter(|s| s.valid_at(at));
        let entries = self.cache.entries();
        let state = self.cache.state();
        Status {
            servers: self.settings.addresses.clone(),
            method: self.settings.auth.method(),
            identity: session
                .as_ref()
                .map_or_else(|| self.settings.auth.identity(), |s| s.identity.clone()),
            mount: self.layout.shown("").trim_end_matches('/').to_owned(),
            lease_left: session
                .as_ref()
                .map(|s| s.expires_at.map(|end| end.saturating_sub(at))),
            policies: session.map(|s| s.policies).unwrap_or_default(),
            cached_entries: entries.values().filter(|c| c.entry.is_some()).count(),
            oldest_entry_age: entries.values().map(|c| at.saturating_sub(c.at)).max(),
            last_error: state.last_error.map(|e| (state.last_error_at, e)),
            served_stale_at: Some(state.served_stale_at).filter(|&t| t != 0),
        }
    }

    /// Logs in (or renews) now and reads the mount: `coffer doctor`'s live check.
    pub fn check(&self) -> Result<Status> {
        self.with_kv(&mut |kv| kv.list().map(|_| ()))?;
        Ok(self.status())
    }

    /// Forgets this identity's session and cached entries.
    pub fn forget(&self) {
        self.cache.clear();
    }
}

/// The KV version of the layout's mount, from `sys/internal/ui/mounts/<mount>`.
fn mount_version(
    client: &Client,
    layout: &Layout,
    token: &secrecy::SecretString,
) -> std::result::Result<Version, BaoError> {
    #[derive(serde::Deserialize)]
    struct Mount {
        data: MountData,
    }
    #[derive(serde::Deserialize)]
    struct MountData {
        #[serde(default)]
        options: Option<std::collections::HashMap<String, String>>,
        #[serde(default, rename = "type")]
        kind: String,
    }
    let path = format!("sys/internal/ui/mounts/{}", layout.mount());
    let answer = client.send(reqwest::Method::GET, &Call::to(&path).with_token(token))?;
    let what = format!("the KV mount {}", layout.mount());
    if !answer.ok() {
        return Err(answer.refused(format!("describing {what}")));
    }
    let mount = answer.json::<Mount>(&what)?.data;
    if !matches!(mount.kind.as_str(), "kv" | "generic" | "") {
        return Err(BaoError::Malformed {
            server: answer.server.clone(),
            what,
            problem: format!("it is a {} mount, not a KV one", mount.kind),
        });
    }
    Ok(
        match mount
            .options
            .and_then(|o| o.get("version").cloned())
            .as_deref()
        {
            Some("2") => Version::V2,
            _ => Version::V1,
        },
    )
}

/// The first of `keys` present that this login may read, as (key, entry); `seen` gets what was
/// found for each key asked (`None`: absent, or not this login's to read). A key its policy
/// refuses is passed over, since a policy may grant a registry's entry and not every
/// repository's under it; when nothing is found and a key was refused, that refusal is the
/// answer (a revoked token is refused every key).
fn first_readable(
    kv: &Kv,
    keys: &[String],
    seen: &mut Vec<(String, Option<Entry>)>,
) -> std::result::Result<Option<(String, Entry)>, BaoError> {
    let mut refused = None;
    for key in keys {
        let fields = match kv.read(key) {
            Ok(read) => read.fields,
            Err(error @ BaoError::Refused { status: 403, .. }) => {
                refused = Some(error);
                None
            }
            Err(error) => return Err(error),
        };
        let entry = fields
            .map(|fields| kv::decode(kv.layout, key, &fields))
            .transpose()?;
        seen.push((key.clone(), entry.clone()));
        if let Some(entry) = entry {
            return Ok(Some((key.clone(), entry)));
        }
    }
    refused.map_or(Ok(None), Err)
}

/// What a login that is not this node's read ([`read_with_jwt`]): the entry, if its policy
/// let it see one, and when that login would have ended (Unix seconds; `None`: never).
#[derive(Debug)]
pub struct Lookup {
    pub entry: Option<Entry>,
    pub lease_ends: Option<u64>,
}

/// Logs in with a JWT in hand (a pod's service-account token, which the kubelet provider passes
/// on), reads the first of `keys` present with that login, and revokes its token. Nothing is
/// cached: the identity is the pod's, and the kubelet caches the answer for as long as it says.
/// A policy that does not let this identity read the entry is [`BaoError::Denied`].
pub fn read_with_jwt(
    settings: &OpenBaoSettings,
    login: &auth::JwtLogin,
    keys: &[String],
) -> std::result::Result<Lookup, BaoError> {
    let layout = Layout::new(&settings.mount, &settings.prefix)?;
    let client = Client::new(settings, None)?;
    let session = auth::jwt_login(&client, login)?;
    let read = (|| {
        let kv = Kv {
            client: &client,
            token: &session.token,
            layout: &layout,
            version: mount_version(&client, &layout, &session.token)?,
        };
        first_readable(&kv, keys, &mut Vec::new()).map(|found| found.map(|(_, entry)| entry))
    })();
    // The token is of no more use: it ends now, not at the end of its lease.
    auth::revoke(&client, &session.token);
    let entry = read.map_err(|error| match error {
        BaoError::Refused {
            status: 403,
            server,
            what,
            ..
        } => BaoError::Denied {
            server,
            identity: format!("the {} login of {}", session.method, session.identity),
            what,
        },
        other => other,
    })?;
    Ok(Lookup {
        entry,
        lease_ends: session.expires_at,
    })
}

/// An entry as it is on the server now: decoded, its version, and all its fields.
struct Current {
    entry: Option<Entry>,
    version: u64,
    fields: Map<String, serde_json::Value>,
}

impl Store for OpenBaoStore {
    fn find(&self, keys: &[String]) -> Result<Option<Entry>> {
        self.lookup(keys, true)
    }

    fn peek(&self, keys: &[String]) -> Result<Option<Entry>> {
        self.lookup(keys, false)
    }

    fn put(&self, key: &str, entry: Entry) -> Result<()> {
        self.update(key, &mut |slot| {
            let mut new = entry.clone();
            if let Some(old) = slot.as_ref() {
                new.created = old.created;
            }
            *slot = Some(new);
            true
        })
    }

    fn remove(&self, keys: &[String]) -> Result<Option<String>> {
        let removed = self.with_kv(&mut |kv| {
            for key in keys {
                let read = kv.read(key)?;
                if let Some(fields) = &read.fields {
                    // An entry coffer cannot read is still removable.
                    let url = kv::decode(&self.layout, key, fields)
                        .map_or_else(|_| key.clone(), |e| e.server_url);
                    kv.delete(key, read.version)?;
                    return Ok(Some((key.clone(), url)));
                }
            }
            Ok(None)
        })?;
        Ok(removed.map(|(key, url)| {
            self.cache
                .keep_entries([(key.clone(), None)], self.keep_for());
            self.used.forget(&self.use_tag(&key));
            url
        }))
    }

    fn list(&self) -> Result<Vec<Summary>> {
        let last_uses = self.used.all();
        let mut summaries = self.with_kv(&mut |kv| {
            let mut summaries = Vec::new();
            for key in kv.list()? {
                if let Some(entry) = self.read_entry(kv, &key)?.entry {
                    summaries.push(Summary {
                        last_used: used::last_use(&last_uses, &self.use_tag(&key)),
                        ..Summary::from(&entry)
                    });
                }
            }
            Ok(summaries)
        })?;
        summaries.sort_by(|a, b| a.server_url.cmp(&b.server_url));
        Ok(summaries)
    }

    /// A check-and-set loop on KV v2: read the entry and its version, change it, write it only
    /// if it is still at that version, else read again. KV v1 has no check-and-set, so there
    /// the last writer wins.
    fn update(&self, key: &str, change: &mut dyn FnMut(&mut Option<Entry>) -> bool) -> Result<()> {
        let written = self.with_kv(&mut |kv| {
            for _ in 0..CAS_TRIES {
                let Current {
                    entry,
                    version,
                    fields,
                } = self.read_entry(kv, key)?;
                let existed = entry.is_some();
                let mut slot = entry;
                if !change(&mut slot) {
                    return Ok(None);
                }
                match &slot {
                    Some(entry) => {
                        let fields = kv::encode(entry, fields);
                        if kv.write(key, &fields, version)? == Written::Conflict {
                            continue;
                        }
                    }
                    None if existed => kv.delete(key, version)?,
                    None => {}
                }
                return Ok(Some(slot));
            }
            Err(BaoError::Conflict {
                path: self.layout.shown(key),
                tries: CAS_TRIES,
            })
        })?;
        if let Some(slot) = written {
            self.cache
                .keep_entries([(key.to_owned(), slot)], self.keep_for());
        }
        Ok(())
    }

    fn warning(&self) -> Option<Warning> {
        self.warning.lock().ok()?.take()
    }
}

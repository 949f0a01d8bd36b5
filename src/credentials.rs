//! Credentials by server URL, over any store: the one place that applies the URL rules of
//! [`crate::server_url`] to the exact keys of a [`Store`].

use secrecy::SecretString;

use crate::audit::AccessLog;
use crate::clock::now;
use crate::error::{Error, Result};
use crate::paths::Paths;
use crate::pending_erase::{self, Pending, PendingErases};
use crate::server_url::ServerUrl;
use crate::store::audited::Audited;
use crate::store::{Entry, MAX_USERNAME, Store, Summary};
use crate::token::keeper::Keeper;
use crate::warning::{Warning, Warnings};

#[derive(Debug)]
pub struct Credentials {
    store: Box<dyn Store>,
    /// The token vault; without it every entry is handed out as stored.
    keeper: Option<Keeper>,
    /// Erases asked for while the vault could not be opened, finished by the next action.
    pending: Option<PendingErases>,
    /// What the actions so far have to tell the person besides their results.
    warnings: Warnings,
}

impl Credentials {
    /// The user's store, as the environment and config.toml choose it (see [`crate::backend`]).
    pub fn from_env() -> Result<Self> {
        Credentials::open(Paths::from_env()?)
    }

    /// The store at `paths` that the settings choose, with its token vault and every action in
    /// its access log.
    pub fn open(paths: Paths) -> Result<Self> {
        let (store, _) = crate::backend::open(&paths)?;
        let log = AccessLog::new(paths.access_log());
        let warnings = Warnings::default();
        let audited = Audited::new(store, log, warnings.clone());
        Ok(Credentials {
            pending: Some(PendingErases::new(&paths)),
            warnings,
            ..Credentials::new(audited)
        }
        .with_tokens(Keeper::new(paths)))
    }

    pub fn new(store: impl Store + 'static) -> Self {
        Credentials {
            store: Box::new(store),
            keeper: None,
            pending: None,
            warnings: Warnings::default(),
        }
    }

    /// Derives, caches and renews tokens where a registry's mode asks for it.
    pub fn with_tokens(self, keeper: Keeper) -> Self {
        Credentials {
            keeper: Some(keeper.warning_into(self.warnings.clone())),
            ..self
        }
    }

    /// What the actions so far have to tell the person (a stale token served, an access log
    /// that cannot be written); the list is left empty. The binaries show them.
    pub fn warnings(&self) -> Vec<Warning> {
        self.warnings.take()
    }

    /// The store itself, for commands that manage entries one by one (`coffer refresh`).
    pub fn backend(&self) -> &dyn Store {
        &*self.store
    }

    /// What a client gets for its server URL: the best-matching entry, with a derived token in
    /// place of the credential where the registry's mode hands one out.
    pub fn get(&self, server_url: &str) -> Result<Option<Entry>> {
        let url = ServerUrl::parse(server_url)?;
        self.settle_quietly();
        let store = &*self.store;
        store.get(
            &url.lookup_keys(),
            &mut |found| match (found, &self.keeper) {
                (None, Some(keeper)) => keeper.answer_unstored(&url),
                (Some(entry), Some(keeper)) => keeper.answer(store, entry).map(Some),
                (found, None) => Ok(found),
            },
        )
    }

    pub fn store(&self, server_url: &str, username: &str, secret: SecretString) -> Result<()> {
        self.store_described(server_url, username, secret, None)
    }

    /// [`Credentials::store`] saying whose credential it is. Without a description, a replaced
    /// entry keeps its own, and a new one takes `default_description` from config.toml.
    pub fn store_described(
        &self,
        server_url: &str,
        username: &str,
        secret: SecretString,
        description: Option<String>,
    ) -> Result<()> {
        let url = ServerUrl::parse(server_url)?;
        check_username(username)?;
        self.settle_quietly();
        let now = now();
        let entry = Entry {
            server_url: server_url.trim().to_owned(),
            username: username.to_owned(),
            secret,
            created: now,
            updated: now,
            tokens: None,
            description,
        };
        match &self.keeper {
            Some(keeper) => keeper.store(&*self.store, &url, entry),
            None => self.store.put(&url.key(), entry),
        }
    }

    /// Stores many credentials (an import) with one write of the store: storing them one by
    /// one would rewrite a file vault once per entry. Registries in a token mode are stored one
    /// by one after the others, each minting its first token.
    /// Two items for the same entry are an error naming both, before anything is written:
    /// storing both would keep only the last.
    pub fn store_all(&self, items: Vec<(String, String, SecretString)>) -> Result<()> {
        let mut seen: std::collections::HashMap<String, &str> = std::collections::HashMap::new();
        for (server_url, _, _) in &items {
            let key = ServerUrl::parse(server_url)?.key();
            if let Some(first) = seen.insert(key.clone(), server_url) {
                return Err(Error::ImportCollision {
                    key,
                    first: first.to_owned(),
                    second: server_url.clone(),
                });
            }
        }
        self.settle_quietly();
        let now = now();
        let mut plain = Vec::new();
        let mut minting = Vec::new();
        // As `store` does one by one: a replaced entry keeps its description, a new one takes
        // the configured default.
        let mut described: std::collections::HashMap<String, String> = self
            .store
            .list()?
            .into_iter()
            .filter_map(|s| Some((ServerUrl::parse(&s.server_url).ok()?.key(), s.description?)))
            .collect();
        let default = match &self.keeper {
            Some(keeper) => keeper.default_description()?,
            None => None,
        };
        for (server_url, username, secret) in items {
            let url = ServerUrl::parse(&server_url)?;
            check_username(&username)?;
            let mints = match &self.keeper {
                Some(keeper) => keeper.mints(&url)?,
                None => false,
            };
            if mints {
                minting.push((server_url, username, secret));
                continue;
            }
            let entry = Entry {
                server_url: server_url.trim().to_owned(),
                username,
                secret,
                created: now,
                updated: now,
                tokens: None,
                description: described.remove(&url.key()).or_else(|| default.clone()),
            };
            plain.push((url.key(), entry));
        }
        if !plain.is_empty() {
            self.store.put_all(plain)?;
        }
        minting
            .into_iter()
            .try_for_each(|(server_url, username, secret)| {
                self.store(&server_url, &username, secret)
            })
    }

    /// Removes the entry this URL names; returns the removed entry's server URL. An erase the
    /// vault's state prevents (locked, wrong passphrase) is recorded, to be finished by the next
    /// action that opens the vault, and reported as [`Error::ErasePending`], never as done.
    pub fn erase(&self, server_url: &str) -> Result<Option<String>> {
        let url = ServerUrl::parse(server_url)?;
        self.settle_quietly();
        let removed = self.store.remove(&url.erase_keys());
        match (removed, &self.pending) {
            (Err(error), Some(pending)) if pending_erase::reason(&error).is_some() => {
                let registry = server_url.trim().to_owned();
                let reason = pending_erase::reason(&error).unwrap_or_default();
                pending.record(&registry, reason)?;
                Err(Error::ErasePending {
                    registry,
                    cause: Box::new(error),
                })
            }
            (removed, _) => removed,
        }
    }

    /// Sets (or, with `None`, clears) the description of the entry this URL names, keeping
    /// everything else; returns the entry's server URL.
    pub fn describe(
        &self,
        server_url: &str,
        description: Option<String>,
    ) -> Result<Option<String>> {
        let url = ServerUrl::parse(server_url)?;
        let mut described = None;
        for key in url.erase_keys() {
            self.store.update(&key, &mut |slot| match slot {
                Some(entry) => {
                    described = Some(entry.server_url.clone());
                    let changed = entry.description != description;
                    entry.description = description.clone();
                    changed
                }
                None => false,
            })?;
            if described.is_some() {
                break;
            }
        }
        Ok(described)
    }

    pub fn list(&self) -> Result<Vec<Summary>> {
        self.settle_quietly();
        self.store.list()
    }

    /// The erases still waiting for the vault to open.
    pub fn pending_erases(&self) -> Result<Vec<Pending>> {
        self.pending
            .as_ref()
            .map_or(Ok(Vec::new()), PendingErases::list)
    }

    /// Finishes the erases recorded while the vault could not be opened; returns those done.
    pub fn settle_pending(&self) -> Result<Vec<Pending>> {
        let Some(pending) = &self.pending else {
            return Ok(Vec::new());
        };
        pending.settle(|registry| {
            let url = ServerUrl::parse(registry)?;
            self.store.remove(&url.erase_keys()).map(|r| r.is_some())
        })
    }

    /// Before any action: a vault that still cannot be opened fails the action itself, with
    /// its own error, so this one has nothing to add.
    fn settle_quietly(&self) {
        let _ = self.settle_pending();
    }
}

fn check_username(username: &str) -> Result<()> {
    if username.len() > MAX_USERNAME {
        return Err(Error::TooLong {
            what: "username",
            max: MAX_USERNAME,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use secrecy::ExposeSecret;

    use super::*;
    use crate::store::memory::MemoryStore;

    fn creds() -> Credentials {
        Credentials::new(MemoryStore::default())
    }

    fn secret_of(creds: &Credentials, url: &str) -> Option<String> {
        creds
            .get(url)
            .expect("get")
            .map(|e| e.secret.expose_secret().to_owned())
    }

    #[test]
    fn a_url_or_username_of_a_million_characters_is_refused() {
        let creds = creds();
        let long = "a".repeat(1_000_000);
        let error = creds.store(&long, "u", "pw".into()).expect_err("long URL");
        assert_eq!(
            error.to_string(),
            "invalid server URL: longer than 4096 bytes"
        );
        let error = creds
            .store("r.example", &long, "pw".into())
            .expect_err("long name");
        assert_eq!(
            error.to_string(),
            "the username is longer than 4096 bytes; refusing it"
        );
        assert!(creds.get(&long).is_err());
        let limit = "u".repeat(MAX_USERNAME);
        creds
            .store("r.example", &limit, "pw".into())
            .expect("at the limit");
        assert!(creds.list().expect("list").len() == 1);
    }

    #[test]
    fn docker_hub_spellings_share_one_entry() {
        let creds = creds();
        creds
            .store("https://index.docker.io/v1/", "alice", "pw".into())
            .expect("store");
        for query in [
            "docker.io",
            "index.docker.io",
            "registry-1.docker.io",
            "https://index.docker.io/v1/",
        ] {
            assert_eq!(
                secret_of(&creds, query).as_deref(),
                Some("pw"),
                "query {query}"
            );
        }
        assert_eq!(secret_of(&creds, "http://index.docker.io/v1/"), None);
        assert_eq!(
            secret_of(&creds, "https://index.docker.io/v1/access-token"),
            None
        );
    }

    #[test]
    fn repository_paths_fall_back_to_the_registry() {
        let creds = creds();
        creds
            .store("ghcr.io", "bob", "registry".into())
            .expect("store");
        assert_eq!(
            secret_of(&creds, "ghcr.io/org/image").as_deref(),
            Some("registry")
        );
        creds
            .store("ghcr.io/org/image", "bob", "repo".into())
            .expect("store");
        assert_eq!(
            secret_of(&creds, "ghcr.io/org/image").as_deref(),
            Some("repo")
        );
        assert_eq!(
            secret_of(&creds, "ghcr.io/org/other").as_deref(),
            Some("registry")
        );
    }

    #[test]
    fn restore_keeps_created_and_erase_takes_compatible_schemes() {
        let creds = creds();
        creds
            .store("127.0.0.1:5000", "u", "one".into())
            .expect("store");
        creds
            .store("127.0.0.1:5000", "u", "two".into())
            .expect("store");
        assert_eq!(creds.list().expect("list").len(), 1);
        assert_eq!(
            creds
                .erase("https://127.0.0.1:5000")
                .expect("erase")
                .as_deref(),
            Some("127.0.0.1:5000")
        );
        assert_eq!(creds.erase("127.0.0.1:5000").expect("erase"), None);
    }
}

//! Credentials by server URL, over any store: the one place that applies the URL rules of
//! [`crate::server_url`] to the exact keys of a [`Store`].

use secrecy::SecretString;

use crate::audit::AccessLog;
use crate::error::Result;
use crate::paths::Paths;
use crate::server_url::ServerUrl;
use crate::store::audited::Audited;
use crate::store::{Entry, Store, Summary, now};
use crate::token::keeper::Keeper;

#[derive(Debug)]
pub struct Credentials {
    store: Box<dyn Store>,
    /// The token vault; without it every entry is handed out as stored.
    keeper: Option<Keeper>,
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
        Ok(Credentials::new(Audited::new(store, log)).with_tokens(Keeper::new(paths)))
    }

    pub fn new(store: impl Store + 'static) -> Self {
        Credentials {
            store: Box::new(store),
            keeper: None,
        }
    }

    /// Derives, caches and renews tokens where a registry's mode asks for it.
    pub fn with_tokens(self, keeper: Keeper) -> Self {
        Credentials {
            keeper: Some(keeper),
            ..self
        }
    }

    /// The store itself, for commands that manage entries one by one (`coffer refresh`).
    pub fn backend(&self) -> &dyn Store {
        &*self.store
    }

    /// What a client gets for its server URL: the best-matching entry, with a derived token in
    /// place of the credential where the registry's mode hands one out.
    pub fn get(&self, server_url: &str) -> Result<Option<Entry>> {
        let url = ServerUrl::parse(server_url)?;
        let Some(entry) = self.store.find(&url.lookup_keys())? else {
            return match &self.keeper {
                Some(keeper) => keeper.answer_unstored(&url),
                None => Ok(None),
            };
        };
        match &self.keeper {
            Some(keeper) => keeper.answer(&*self.store, entry).map(Some),
            None => Ok(Some(entry)),
        }
    }

    pub fn store(&self, server_url: &str, username: &str, secret: SecretString) -> Result<()> {
        let url = ServerUrl::parse(server_url)?;
        let now = now();
        let entry = Entry {
            server_url: server_url.trim().to_owned(),
            username: username.to_owned(),
            secret,
            created: now,
            updated: now,
            tokens: None,
        };
        match &self.keeper {
            Some(keeper) => keeper.store(&*self.store, &url, entry),
            None => self.store.put(&url.key(), entry),
        }
    }

    /// Removes the entry this URL names; returns the removed entry's server URL.
    pub fn erase(&self, server_url: &str) -> Result<Option<String>> {
        let url = ServerUrl::parse(server_url)?;
        self.store.remove(&url.erase_keys())
    }

    pub fn list(&self) -> Result<Vec<Summary>> {
        self.store.list()
    }
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

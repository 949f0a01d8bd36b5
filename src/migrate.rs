//! Moving every entry from one store to another, without loss: each entry is written to the
//! target and read back before it leaves the source.

use secrecy::ExposeSecret;

use crate::error::{Error, Result};
use crate::server_url::ServerUrl;
use crate::store::Store;

/// What a migration did.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Moved {
    /// Entries now in the target and gone from the source.
    pub moved: usize,
    /// Server URLs the target already held in a newer version: both copies are left as they
    /// are, so nothing is lost; `coffer rm` on the source store settles it.
    pub newer_in_target: Vec<String>,
}

pub fn migrate(from: &dyn Store, to: &dyn Store) -> Result<Moved> {
    let mut outcome = Moved::default();
    for summary in from.list()? {
        let key = ServerUrl::parse(&summary.server_url)?.key();
        let keys = [key.clone()];
        let Some(entry) = from.find(&keys)? else {
            continue;
        };
        match to.find(&keys)? {
            Some(existing) if existing.updated > entry.updated => {
                outcome.newer_in_target.push(summary.server_url.clone());
                continue;
            }
            _ => {
                let secret = entry.secret.expose_secret().to_owned();
                to.put(&key, entry)?;
                let copied = to.find(&keys)?;
                if copied.is_none_or(|c| c.secret.expose_secret() != secret) {
                    return Err(Error::NotReadBack(summary.server_url.clone()));
                }
                outcome.moved += 1;
            }
        }
        from.remove(&keys)?;
    }
    Ok(outcome)
}

#[cfg(test)]
mod tests {
    use secrecy::SecretString;

    use super::*;
    use crate::store::Entry;
    use crate::store::memory::MemoryStore;

    fn put(store: &MemoryStore, url: &str, secret: &str, updated: u64) {
        let entry = Entry {
            server_url: url.to_owned(),
            username: "u".to_owned(),
            secret: SecretString::from(secret),
            created: 1,
            updated,
            tokens: None,
            description: None,
        };
        store
            .put(&ServerUrl::parse(url).expect("url").key(), entry)
            .expect("put");
    }

    #[test]
    fn moves_everything_and_keeps_newer_target_entries() {
        let (from, to) = (MemoryStore::default(), MemoryStore::default());
        put(&from, "a.example", "a-old", 10);
        put(&from, "b.example", "b", 10);
        put(&from, "c.example", "c-old", 10);
        put(&to, "a.example", "a-new", 20);
        put(&to, "c.example", "c-older", 5);
        let outcome = migrate(&from, &to).expect("migrate");
        assert_eq!(
            outcome,
            Moved {
                moved: 2,
                newer_in_target: vec!["a.example".into()]
            }
        );
        let left: Vec<String> = from
            .list()
            .expect("list")
            .into_iter()
            .map(|s| s.server_url)
            .collect();
        assert_eq!(left, ["a.example"]);
        let secret = |url: &str| {
            to.find(&[ServerUrl::parse(url).expect("url").key()])
                .expect("find")
                .map(|e| e.secret.expose_secret().to_owned())
        };
        assert_eq!(secret("a.example").as_deref(), Some("a-new"));
        assert_eq!(secret("b.example").as_deref(), Some("b"));
        assert_eq!(secret("c.example").as_deref(), Some("c-old"));
    }
}

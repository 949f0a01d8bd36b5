//! Moving every entry from one store to another, without loss: each entry is written to the
//! target and read back before it leaves the source.

use secrecy::ExposeSecret;

use crate::backend;
use crate::config::Backend;
use crate::error::{Error, Result};
use crate::os::keychain::Keychain;
use crate::paths::Paths;
use crate::server_url::ServerUrl;
use crate::store::keychain_items::KeychainStore;
use crate::store::{Entry, Store};

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
                put_read_back(to, &key, entry, &summary.server_url)?;
                outcome.moved += 1;
            }
        }
        from.remove(&keys)?;
    }
    Ok(outcome)
}

/// What copying an entry into another store would do there.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    /// The target has no entry for it.
    Add,
    /// The target's entry is older and differs: it is replaced.
    Replace,
    /// The target holds the same username and secret.
    Same,
    /// The target's entry is newer: it is kept.
    NewerInTarget,
}

/// What [`copy`] would do, entry by entry (server URL, change), writing nothing.
pub fn plan(from: &dyn Store, to: &dyn Store) -> Result<Vec<(String, Change)>> {
    let mut plan = Vec::new();
    for summary in from.list()? {
        let keys = [ServerUrl::parse(&summary.server_url)?.key()];
        let Some(entry) = from.peek(&keys)? else {
            continue;
        };
        let change = match to.peek(&keys)? {
            None => Change::Add,
            Some(there)
                if there.username == entry.username
                    && there.secret.expose_secret() == entry.secret.expose_secret() =>
            {
                Change::Same
            }
            Some(there) if there.updated > entry.updated => Change::NewerInTarget,
            Some(_) => Change::Replace,
        };
        plan.push((summary.server_url, change));
    }
    Ok(plan)
}

/// Copies every entry of `from` into `to` where [`plan`] says add or replace, each read back;
/// `from` keeps its entries. Returns the plan it carried out.
pub fn copy(from: &dyn Store, to: &dyn Store) -> Result<Vec<(String, Change)>> {
    let plan = plan(from, to)?;
    for (url, change) in &plan {
        if !matches!(change, Change::Add | Change::Replace) {
            continue;
        }
        let key = ServerUrl::parse(url)?.key();
        let keys = [key.clone()];
        let Some(entry) = from.peek(&keys)? else {
            continue;
        };
        put_read_back(to, &key, entry, url)?;
    }
    Ok(plan)
}

/// Writes `entry` under `key` in `to` and reads it back: it is there before anything goes on.
fn put_read_back(to: &dyn Store, key: &str, entry: Entry, url: &str) -> Result<()> {
    let secret = entry.secret.expose_secret().to_owned();
    to.put(key, entry)?;
    let keys = [key.to_owned()];
    if to
        .peek(&keys)?
        .is_none_or(|c| c.secret.expose_secret() != secret)
    {
        return Err(Error::NotReadBack(url.to_owned()));
    }
    Ok(())
}

/// What `coffer migrate --to openbao` did (or, dry, would do): from which local store, and
/// entry by entry.
#[derive(Debug)]
pub struct Centralised {
    pub from: &'static str,
    pub changes: Vec<(String, Change)>,
}

impl Centralised {
    /// How many entries were (or would be) written to the central store.
    pub fn written(&self) -> usize {
        self.changes
            .iter()
            .filter(|(_, c)| matches!(c, Change::Add | Change::Replace))
            .count()
    }
}

/// Copies this machine's entries (the keychain's items if that is the store recorded, else the
/// file vault's) into the central store that config.toml describes, then records it as the
/// store in use; with `dry_run`, only says what it would change. The local entries stay.
pub fn into_central_store(paths: &Paths, dry_run: bool) -> Result<Centralised> {
    let (recorded, _) = backend::configured(paths)?;
    let (local, from): (Box<dyn Store>, _) = match recorded {
        Backend::Keychain => (
            Box::new(KeychainStore::new(Keychain::open()?, paths)),
            "the OS keychain",
        ),
        _ => (Box::new(backend::file_store(paths)?), "the file vault"),
    };
    let central = backend::central_store(paths)?;
    let changes = if dry_run {
        plan(&*local, &central)?
    } else {
        let changes = copy(&*local, &central)?;
        backend::record(paths, Backend::OpenBao)?;
        changes
    };
    Ok(Centralised { from, changes })
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

    #[test]
    fn a_copy_plans_then_writes_and_keeps_the_source() {
        let (from, to) = (MemoryStore::default(), MemoryStore::default());
        put(&from, "a.example", "a", 10);
        put(&from, "b.example", "b", 10);
        put(&from, "c.example", "c-mine", 10);
        put(&from, "d.example", "d-mine", 30);
        put(&to, "b.example", "b", 99);
        put(&to, "c.example", "c-newer", 20);
        put(&to, "d.example", "d-older", 20);
        let expected = vec![
            ("a.example".to_owned(), Change::Add),
            ("b.example".to_owned(), Change::Same),
            ("c.example".to_owned(), Change::NewerInTarget),
            ("d.example".to_owned(), Change::Replace),
        ];
        assert_eq!(plan(&from, &to).expect("plan"), expected);
        assert_eq!(to.list().expect("list").len(), 3, "a plan writes nothing");
        assert_eq!(copy(&from, &to).expect("copy"), expected);
        assert_eq!(
            from.list().expect("list").len(),
            4,
            "the source keeps its entries"
        );
        assert_eq!(
            plan(&from, &to)
                .expect("plan")
                .iter()
                .filter(|(_, c)| *c == Change::Same)
                .count(),
            3
        );
    }
}

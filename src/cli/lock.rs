//! `coffer unlock` and `coffer lock`: one Argon2id run per timeout window.

use anyhow::anyhow;

use crate::config::Config;
use crate::error::Error;
use crate::paths::Paths;
use crate::store::file::FileStore;
use crate::unlock::Unlocker;
use crate::unlock::cache::{self, Timeout};

pub fn unlock(paths: &Paths, timeout: Option<Timeout>) -> anyhow::Result<()> {
    // Read before the slow part, so a broken config.toml fails at once.
    let timeout = match timeout {
        Some(timeout) => timeout,
        None => Config::load(paths)?
            .unlock
            .timeout
            .unwrap_or(Timeout::DEFAULT),
    };
    let store = FileStore::new(paths.clone(), Unlocker::default());
    let key = store.unseal().map_err(|error| match error {
        Error::Locked => anyhow!(
            "coffer unlock needs the passphrase: run it in a terminal, or set \
             COFFER_PASSPHRASE_FILE to a 0600 file holding it"
        ),
        other => other.into(),
    })?;
    let stored = cache::store(&key.header().vault_id, key.data_key(), timeout)?;
    for (mechanism, why) in &stored.skipped {
        println!("{mechanism} is unavailable here ({why})");
    }
    println!(
        "unlocked {} for {timeout} in {}; `coffer lock` locks it now",
        paths.vault().display(),
        stored.mechanism
    );
    Ok(())
}

pub fn lock(paths: &Paths) -> anyhow::Result<()> {
    let store = FileStore::new(paths.clone(), Unlocker::default());
    let Some(header) = store.key_header()? else {
        println!("no vault at {}; nothing to lock", paths.vault().display());
        return Ok(());
    };
    let cleared = cache::clear(&header.vault_id)?;
    if cleared.is_empty() {
        println!("{} was not unlocked", paths.vault().display());
    }
    for mechanism in cleared {
        println!(
            "locked {}: its key is gone from {mechanism}",
            paths.vault().display()
        );
    }
    Ok(())
}

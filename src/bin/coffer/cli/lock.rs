//! `coffer unlock` and `coffer lock`: one Argon2id run per timeout window; and the hidden
//! `coffer agent` that unlock starts where the kernel keyring is unavailable.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::anyhow;

use coffer::config::Config;
use coffer::error::Error;
use coffer::paths::Paths;
use coffer::secret_cache::agent;
use coffer::store::file::FileStore;
use coffer::unlock::cache::{self, Timeout};
use coffer::unlock::{Unlocker, passphrase};

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
        // No vault: `coffer init` creates one, with a passphrase from the same sources.
        Error::NoVault { path } if passphrase::available_source().is_none() => anyhow!(
            "no vault yet at {}: set COFFER_PASSPHRASE_FILE to a 0600 file holding a new \
             passphrase and run `coffer init`, or run `coffer init` in a terminal",
            path.display()
        ),
        other => other.into(),
    })?;
    let stored = cache::store(&key.header().vault_id, key.data_key(), timeout)?;
    for (mechanism, why) in &stored.skipped {
        println!("{mechanism} is unavailable here ({why})");
    }
    let span = match timeout.seconds() {
        Some(_) => format!("for {timeout}"),
        None => timeout.to_string(),
    };
    println!(
        "unlocked {} {span} in {}; `coffer lock` locks it now",
        paths.vault().display(),
        stored.mechanism
    );
    // Logouts that failed while the vault was locked are finished now that it opens.
    for done in coffer::credentials::Credentials::open(paths.clone())?.settle_pending()? {
        println!(
            "erased {}: its logout at {} had failed ({})",
            done.registry,
            super::time(done.at),
            done.reason
        );
    }
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

/// What a process caching a secret tells the agent it starts; the secret itself comes on stdin.
#[derive(Debug, clap::Args)]
pub struct AgentArgs {
    #[arg(long)]
    socket: PathBuf,
    /// What the secret is and whose: `vault-<vault id>`, `token-<identity>`.
    #[arg(long)]
    slot: String,
    /// The secret's length in bytes.
    #[arg(long)]
    length: usize,
    /// Unix seconds; 0 for none.
    #[arg(long)]
    expires_at: u64,
}

pub fn agent(args: AgentArgs) -> ExitCode {
    agent::server::run(args.socket, args.slot, args.length, args.expires_at)
}

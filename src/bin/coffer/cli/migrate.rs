//! `coffer migrate --to keychain|file`: every entry moves, then config.toml names the new store.
//! With entries split across both stores it is the one command that merges them into one.
//! `coffer migrate --to openbao [--dry-run]` copies this machine's entries into the central
//! store (or says what it would change), keeping the local ones.

use anyhow::Context;

use coffer::backend::{self, Origin};
use coffer::config::Backend;
use coffer::migrate::{Change, into_central_store, migrate};
use coffer::os::keychain::Keychain;
use coffer::paths::Paths;
use coffer::store::Store;
use coffer::store::keychain_items::KeychainStore;

pub fn run(paths: &Paths, to: Backend, dry_run: bool) -> anyhow::Result<()> {
    if to == Backend::OpenBao {
        return central(paths, dry_run);
    }
    anyhow::ensure!(!dry_run, "--dry-run goes with --to openbao");
    let opened = Keychain::open();
    let keychain = KeychainStore::new(opened.clone().map_err(coffer::Error::from)?, paths);
    // A vault this creates is sealed by the keychain, which is usable here: the desktop default.
    let file = backend::new_vault_store(paths, &opened)?;
    let (from, target, from_name, to_name): (&dyn Store, &dyn Store, _, _) = match to {
        Backend::Keychain => (&file, &keychain, "the file vault", "the OS keychain"),
        Backend::File => (&keychain, &file, "the OS keychain", "the file vault"),
        Backend::Auto | Backend::OpenBao => {
            anyhow::bail!("migrate needs a store: --to keychain, --to file or --to openbao")
        }
    };
    let outcome = migrate(from, target).context("the migration stopped; run it again to go on")?;
    println!(
        "moved {} from {from_name} to {to_name}",
        super::plural(outcome.moved, "entry", "entries")
    );
    for url in &outcome.newer_in_target {
        println!(
            "  {url}: {to_name} already holds a newer entry; both were kept (`coffer rm` settles it)"
        );
    }
    backend::record(paths, to)?;
    println!(
        "backend = \"{}\" written to {}",
        to.name(),
        paths.config().display()
    );
    if let (asked, Origin::Environment) = backend::configured(paths)?
        && asked != to
    {
        println!(
            "note: {}={} overrides config.toml; unset it to use {to_name}",
            backend::ENV,
            asked.name()
        );
    }
    Ok(())
}

/// The copy into the central store, entry by entry.
fn central(paths: &Paths, dry_run: bool) -> anyhow::Result<()> {
    let done = into_central_store(paths, dry_run)
        .context("nothing more was copied; run it again to go on")?;
    for (url, change) in &done.changes {
        let what = match change {
            Change::Add => "add",
            Change::Replace => "replace (the central copy is older)",
            Change::Same => "same",
            Change::NewerInTarget => "keep the central copy (it is newer)",
        };
        println!("  {url}: {what}");
    }
    let written = super::plural(done.written(), "entry", "entries");
    if dry_run {
        println!(
            "would write {written} from {} into the central store; nothing was written",
            done.from
        );
        return Ok(());
    }
    println!(
        "copied {written} from {} into the central store; the local copies stay (remove them \
         with `coffer rm` once nodes read the central store)",
        done.from
    );
    println!(
        "backend = \"openbao\" written to {}",
        paths.config().display()
    );
    Ok(())
}

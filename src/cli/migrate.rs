//! `coffer migrate --to keychain|file`: every entry moves, then config.toml names the new store.
//! With entries split across both stores it is the one command that merges them into one.
//! `coffer migrate --to openbao [--dry-run]` copies this machine's entries into the central
//! store (or says what it would change), keeping the local ones.

use anyhow::Context;

use crate::backend::{self, Backend, Origin};
use crate::migrate::{Change, migrate};
use crate::os::keychain::Keychain;
use crate::paths::Paths;
use crate::store::Store;
use crate::store::keychain_items::KeychainStore;

pub fn run(paths: &Paths, to: Backend, dry_run: bool) -> anyhow::Result<()> {
    if to == Backend::OpenBao {
        return into_central_store(paths, dry_run);
    }
    anyhow::ensure!(!dry_run, "--dry-run goes with --to openbao");
    let opened = Keychain::open();
    let keychain = KeychainStore::new(opened.clone().map_err(crate::Error::from)?, paths);
    // A vault this creates is sealed by the keychain, which is usable here: the desktop default.
    let file = backend::new_vault_store(paths, &opened)?;
    let (from, target, from_name, to_name): (&dyn Store, &dyn Store, _, _) = match to {
        Backend::Keychain => (&file, &keychain, "the file vault", "the OS keychain"),
        Backend::File => (&keychain, &file, "the OS keychain", "the file vault"),
        Backend::Auto => anyhow::bail!("migrate needs a store: --to keychain or --to file"),
        Backend::OpenBao => unreachable!("handled above"),
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

/// Copies the local store's entries (the keychain's items if that is the store recorded, else
/// the file vault's) into the central store, then records it as the store in use.
fn into_central_store(paths: &Paths, dry_run: bool) -> anyhow::Result<()> {
    let (recorded, _) = backend::configured(paths)?;
    let (local, local_name): (Box<dyn Store>, _) = match recorded {
        Backend::Keychain => (
            Box::new(KeychainStore::new(
                Keychain::open().map_err(crate::Error::from)?,
                paths,
            )),
            "the OS keychain",
        ),
        _ => (Box::new(backend::file_store(paths)?), "the file vault"),
    };
    let central = backend::central_store(paths)?;
    let changes = if dry_run {
        crate::migrate::plan(&*local, &central)
    } else {
        crate::migrate::copy(&*local, &central)
    }
    .context("nothing more was copied; run it again to go on")?;
    for (url, change) in &changes {
        let what = match change {
            Change::Add => "add",
            Change::Replace => "replace (the central copy is older)",
            Change::Same => "same",
            Change::NewerInTarget => "keep the central copy (it is newer)",
        };
        println!("  {url}: {what}");
    }
    let written = changes
        .iter()
        .filter(|(_, c)| matches!(c, Change::Add | Change::Replace))
        .count();
    if dry_run {
        println!(
            "would write {} from {local_name} into the central store; nothing was written",
            super::plural(written, "entry", "entries")
        );
        return Ok(());
    }
    println!(
        "copied {} from {local_name} into the central store; the local copies stay (remove them \
         with `coffer rm` once nodes read the central store)",
        super::plural(written, "entry", "entries")
    );
    backend::record(paths, Backend::OpenBao)?;
    println!(
        "backend = \"openbao\" written to {}",
        paths.config().display()
    );
    Ok(())
}

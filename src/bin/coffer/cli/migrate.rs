//! `coffer migrate --to keychain|file`: every entry moves, then config.toml names the new store.
//! With entries split across both stores it is the one command that merges them into one.

use anyhow::Context;

use coffer::backend::{self, Origin};
use coffer::config::Backend;
use coffer::migrate::migrate;
use coffer::os::keychain::Keychain;
use coffer::paths::Paths;
use coffer::store::Store;
use coffer::store::keychain_items::KeychainStore;

pub fn run(paths: &Paths, to: Backend) -> anyhow::Result<()> {
    let opened = Keychain::open();
    let keychain = KeychainStore::new(opened.clone().map_err(coffer::Error::from)?, paths);
    // A vault this creates is sealed by the keychain, which is usable here: the desktop default.
    let file = backend::new_vault_store(paths, &opened)?;
    let (from, target, from_name, to_name): (&dyn Store, &dyn Store, _, _) = match to {
        Backend::Keychain => (&file, &keychain, "the file vault", "the OS keychain"),
        Backend::File => (&keychain, &file, "the OS keychain", "the file vault"),
        Backend::Auto => anyhow::bail!("migrate needs a store: --to keychain or --to file"),
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

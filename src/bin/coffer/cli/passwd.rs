//! `coffer passwd`: the current passphrase first (never the unlock cache), then the new one;
//! optionally a new data key, so that whoever held the old passphrase or key is shut out of
//! everything written afterwards.

use anyhow::bail;
use secrecy::ExposeSecret;

use super::plural;
use coffer::error::Error;
use coffer::files;
use coffer::paths::Paths;
use coffer::store::file::FileStore;
use coffer::unlock::{self, Unlocker, cache, passphrase};
use coffer::vault::crypto::KdfParams;

#[derive(Debug, clap::Args)]
pub struct PasswdArgs {
    /// Also replace the data key: every entry is encrypted again under a new key and the vault
    /// gets a new id, so the old passphrase and any key cached or copied before open nothing
    /// written afterwards.
    #[arg(long)]
    rotate_key: bool,
    /// Write the new passphrase into COFFER_PASSPHRASE_FILE, which holds the old one.
    #[arg(long)]
    update_passphrase_file: bool,
}

pub fn run(paths: &Paths, args: PasswdArgs) -> anyhow::Result<()> {
    let store = FileStore::new(paths.clone(), Unlocker::default());
    // Which source gives the current passphrase: it may need the new one afterwards.
    let old_source = passphrase::available_source();
    if args.update_passphrase_file && !matches!(old_source, Some(passphrase::Source::File(_))) {
        bail!(
            "--update-passphrase-file needs {} to name the file; nothing was changed",
            passphrase::FILE_VAR
        );
    }
    let old = store.unseal().map_err(|error| match error {
        Error::Locked => anyhow::anyhow!(
            "coffer passwd needs the current passphrase (an unlocked vault is not enough to \
             change it): run it in a terminal, or set {} to a 0600 file holding it",
            passphrase::FILE_VAR
        ),
        other => other.into(),
    })?;
    let new_passphrase = passphrase::read_new()?;
    let existing = (!args.rotate_key).then_some(&old);
    let new = unlock::key_for_new_passphrase(
        new_passphrase.expose_secret(),
        KdfParams::DEFAULT,
        existing,
    );
    let count = store.rekey(&old, &new)?;
    let entries = plural(count, "entry", "entries");
    if args.rotate_key {
        // The old key must not keep opening anything: it names a vault id that no longer exists.
        let _ = cache::clear(&old.header().vault_id);
        println!(
            "passphrase changed and key rotated: {entries} sealed again under a new key, new vault id; \
             the old passphrase and any key cached before open nothing written from now on \
             (copies of the vault file made before still open with the old passphrase)"
        );
    } else {
        println!(
            "passphrase changed; {entries} kept under the same key (`coffer passwd --rotate-key` \
             also replaces the key, after a leak)"
        );
    }
    match old_source {
        Some(passphrase::Source::File(path)) if args.update_passphrase_file => {
            let real = std::fs::canonicalize(&path).unwrap_or(path);
            let line = zeroize::Zeroizing::new(format!("{}\n", new_passphrase.expose_secret()));
            files::write_atomic(&real, line.as_bytes())?;
            println!("{} now holds the new passphrase", real.display());
        }
        Some(source @ passphrase::Source::File(_))
        | Some(source @ passphrase::Source::SystemdCredential(_))
        | Some(source @ passphrase::Source::Environment) => println!(
            "stale: {source} still holds the old passphrase: put the new one there, or every \
             docker pull fails (for a file, --update-passphrase-file does that)"
        ),
        _ => {}
    }
    Ok(())
}

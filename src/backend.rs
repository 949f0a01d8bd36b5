//! Which store serves: `COFFER_BACKEND`, else `backend` in config.toml, else `auto`.
//!
//! `auto` takes the OS keychain when it answers and is unlocked, and the file vault otherwise;
//! the check costs nothing without a session D-Bus. `keychain` never falls back: an unusable
//! keychain is an error that says what to do. Nothing ever falls back to a store that does not
//! persist.

use serde::{Deserialize, Serialize};

use crate::config::Config;
use crate::error::{Error, Result};
use crate::os::keychain::{Keychain, Unusable};
use crate::paths::Paths;
use crate::store::Store;
use crate::store::file::FileStore;
use crate::store::keychain_items::KeychainStore;
use crate::unlock::Unlocker;

pub const ENV: &str = "COFFER_BACKEND";

/// What the user asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Backend {
    Auto,
    Keychain,
    File,
}

impl Backend {
    pub fn name(self) -> &'static str {
        match self {
            Backend::Auto => "auto",
            Backend::Keychain => "keychain",
            Backend::File => "file",
        }
    }
}

/// Where the setting came from, for `coffer doctor`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    Environment,
    Config,
    Default,
}

/// The store in use, and why.
#[derive(Debug)]
pub struct Choice {
    pub asked: Backend,
    pub origin: Origin,
    /// `Keychain` or `File`: what serves.
    pub used: Backend,
    /// Why the keychain is not used, when `auto` passed it over.
    pub keychain_unusable: Option<Unusable>,
}

impl Choice {
    /// One line for people: e.g. "file vault (auto: no D-Bus session ...)".
    pub fn explain(&self) -> String {
        let origin = match self.origin {
            Origin::Environment => format!("{ENV}={}", self.asked.name()),
            Origin::Config => format!("backend = \"{}\" in config.toml", self.asked.name()),
            Origin::Default => "auto, the default".to_owned(),
        };
        let store = match self.used {
            Backend::Keychain => "the OS keychain",
            _ => "the file vault",
        };
        match (&self.keychain_unusable, self.asked) {
            (Some(why), Backend::Auto) => format!("{store}, by {origin}, because {why}"),
            (None, Backend::Auto) => {
                format!("{store}, by {origin}, because the keychain answers and is unlocked")
            }
            _ => format!("{store}, by {origin}"),
        }
    }
}

/// The backend setting in force.
pub fn configured(paths: &Paths) -> Result<(Backend, Origin)> {
    if let Some(value) = std::env::var_os(ENV).filter(|v| !v.is_empty()) {
        let value = value.to_string_lossy();
        return match value.as_ref() {
            "auto" => Ok((Backend::Auto, Origin::Environment)),
            "keychain" => Ok((Backend::Keychain, Origin::Environment)),
            "file" => Ok((Backend::File, Origin::Environment)),
            _ => Err(Error::Setting(format!(
                "{ENV} must be auto, keychain or file, not {value:?}"
            ))),
        };
    }
    Ok(match Config::load(paths)?.backend {
        Some(backend) => (backend, Origin::Config),
        None => (Backend::Auto, Origin::Default),
    })
}

/// Opens the store the setting chooses.
pub fn open(paths: &Paths) -> Result<(Box<dyn Store>, Choice)> {
    let (asked, origin) = configured(paths)?;
    let choice = |used, keychain_unusable| Choice {
        asked,
        origin,
        used,
        keychain_unusable,
    };
    match asked {
        Backend::File => Ok((Box::new(file_store(paths)), choice(Backend::File, None))),
        Backend::Keychain => {
            let keychain = Keychain::open()?;
            Ok((
                Box::new(KeychainStore::new(keychain, paths)),
                choice(Backend::Keychain, None),
            ))
        }
        Backend::Auto => match Keychain::open() {
            Ok(keychain) => Ok((
                Box::new(KeychainStore::new(keychain, paths)),
                choice(Backend::Keychain, None),
            )),
            Err(why) => Ok((
                Box::new(file_store(paths)),
                choice(Backend::File, Some(why)),
            )),
        },
    }
}

/// The file vault; a vault it creates is sealed by a passphrase.
pub fn file_store(paths: &Paths) -> FileStore {
    FileStore::new(paths.clone(), Unlocker::default())
}

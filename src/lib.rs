//! coffer: a Docker credential helper with an encrypted vault behind it.
//!
//! - [`protocol`]: the credential-helper wire protocol, as a function over `Read`/`Write`.
//! - [`server_url`]: how clients name registries, and which stored key answers a query.
//! - [`credentials`]: credentials by server URL over any [`store`].
//! - [`store`]: the store contract, the encrypted file store and an in-memory store.
//! - [`vault`]: the vault file format and its cryptography.
//! - [`unlock`]: where the key to open a vault comes from; [`secret_cache`]: secrets held in
//!   memory until they expire (the kernel keyring or the agent).
//! - [`audit`]: the access log of every credential action, never a secret.
//! - [`os`]: the operating system's adapters: OS keychains (Secret Service, macOS, Windows), the
//!   kernel keyring, process hardening; [`backend`]: which store serves, and why.
//! - [`serde_secret`]: the one way a secret is serialised (sealed records, the mint pipe).
//! - [`pending_erase`]: erases asked for while the vault was locked, finished later.
//! - [`migrate`], [`import`]: moving entries between stores, and in from other tools;
//!   [`auth_file`]: docker's config.json and containers' auth.json, read and edited in one place.
//! - [`config`]: non-secret settings in `config.toml`.
//! - [`token`]: the token vault: registry tokens derived from stored credentials, renewed
//!   before they expire.
//! - [`clock`]: the wall clock, read and shown safely whatever it is set to.
//! - [`files`], [`paths`]: private files, atomic writes, locks, and where everything lives;
//!   [`ownership`]: root never writes into a user's home.
//! - [`setup`]: pointing docker and podman at coffer, reversibly.
//! - [`warning`]: what an action that went through still has to tell the person.
//! - [`causes`]: an error's chain of causes, on one line.
//!
//! The `coffer` command for people (`src/bin/coffer/`) and the helper
//! (`src/bin/docker-credential-coffer.rs`) are thin binaries over this library.

pub mod audit;
pub mod auth_file;
pub mod backend;
pub mod causes;
pub mod clock;
pub mod config;
pub mod credentials;
#[cfg(test)]
mod debug_redaction;
pub mod error;
pub mod export;
pub mod files;
pub mod import;
pub mod kubelet;
pub mod migrate;
pub mod os;
pub mod ownership;
pub mod paths;
pub mod pending_erase;
pub mod printable;
pub mod protocol;
pub mod secret_buffer;
pub mod secret_cache;
pub mod serde_secret;
pub mod server_url;
pub mod setup;
pub mod store;
pub mod token;
pub mod unlock;
pub mod vault;
pub mod warning;

pub use error::{Error, Result};

//! coffer: a Docker credential helper with an encrypted vault behind it.
//!
//! - [`protocol`]: the credential-helper wire protocol, as a function over `Read`/`Write`.
//! - [`server_url`]: how clients name registries, and which stored key answers a query.
//! - [`credentials`]: credentials by server URL over any [`store`].
//! - [`store`]: the store contract, the encrypted file store and an in-memory store.
//! - [`vault`]: the vault file format and its cryptography.
//! - [`unlock`]: where the key to open a vault comes from.
//! - [`audit`]: the access log of every credential action, never a secret.
//! - [`keychain`]: the OS keychain; [`backend`]: which store serves, and why.
//! - [`migrate`], [`import`]: moving entries between stores, and in from other tools.
//! - [`config`]: non-secret settings in `config.toml`.
//! - [`token`]: the token vault: registry tokens derived from stored credentials, renewed
//!   before they expire.
//! - [`clock`]: the wall clock, read and shown safely whatever it is set to.
//! - [`files`], [`paths`]: private files, atomic writes, locks, and where everything lives.
//! - [`setup`]: pointing docker and podman at coffer, reversibly.
//! - [`cli`]: the `coffer` command for people.

pub mod audit;
pub mod backend;
pub mod cli;
pub mod clock;
pub mod config;
pub mod credentials;
pub mod error;
pub mod export;
pub mod files;
pub mod hardening;
pub mod import;
pub mod keychain;
pub mod kubelet;
pub mod migrate;
pub mod paths;
pub mod protocol;
pub mod secret_buffer;
pub mod server_url;
pub mod setup;
pub mod store;
pub mod token;
pub mod unlock;
pub mod vault;

pub use error::{Error, Result};

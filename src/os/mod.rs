//! The operating system's adapters, one file per mechanism and platform, so that nothing else
//! in coffer names a platform:
//!
//! - [`keychain`]: the OS keychain as coffer uses it (named items of opaque bytes), over the
//!   keyring v4 store crates; it dispatches to one platform file of its own:
//!   - [`keychain::secret_service`]: the freedesktop Secret Service over D-Bus (gnome-keyring, KWallet),
//!     on Linux and the BSDs. Compiled and tested here.
//!   - `not_built_here/macos_keychain.rs`: the macOS login Keychain.
//!   - `not_built_here/windows_credential_manager.rs`: the Windows Credential Manager.
//! - [`kernel_keyring`]: the Linux kernel's user keyring (`keyctl`), where the unlock cache
//!   keeps a vault's data key and chain mode's tokens. Not a keychain: nothing in it survives
//!   a reboot.
//!   `not_built_here/no_kernel_keyring.rs` answers "unavailable" on every other platform.
//! - [`hardening`]: process limits for anything holding a key.
//! - [`process_tree`]: what a credential command starts, followed and killed as one tree
//!   (Linux's child subreaper); `not_built_here/no_subreaper.rs` elsewhere.
//!
//! Everything under `not_built_here/` is compiled only for its own platform, which this
//! project neither builds nor tests: see docs/storage.md, "Platforms".

/// Why a mechanism cannot be used here, in words for `coffer doctor`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unavailable(pub String);

impl std::fmt::Display for Unavailable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

pub mod hardening;
pub mod keychain;

#[cfg(target_os = "linux")]
pub mod kernel_keyring;

#[cfg(not(target_os = "linux"))]
#[path = "not_built_here/no_kernel_keyring.rs"]
pub mod kernel_keyring;

#[cfg(target_os = "linux")]
pub mod process_tree;

#[cfg(not(target_os = "linux"))]
#[path = "not_built_here/no_subreaper.rs"]
pub mod process_tree;

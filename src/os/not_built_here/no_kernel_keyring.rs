//! The unlock cache's kernel keyring where there is none: every platform but Linux.
//! Not compiled here (the project builds and tests on Linux only).

use crate::unlock::cache::{Cached, Timeout, Unavailable, VaultId};
use crate::vault::crypto::Key;

fn unavailable() -> Unavailable {
    Unavailable("the kernel keyring exists only on Linux".to_owned())
}

pub fn probe() -> Result<(), Unavailable> {
    Err(unavailable())
}

pub fn lookup(_: &VaultId) -> Result<Option<Cached>, Unavailable> {
    Err(unavailable())
}

pub fn store(_: &VaultId, _: &Key, _: Timeout, _: Option<u64>) -> Result<(), Unavailable> {
    Err(unavailable())
}

pub fn clear(_: &VaultId) -> Result<bool, Unavailable> {
    Err(unavailable())
}

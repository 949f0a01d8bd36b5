//! The unlock cache's kernel keyring where there is none: every platform but Linux.
//! Not compiled here (the project builds and tests on Linux only).

use zeroize::Zeroizing;

use super::Unavailable;

fn unavailable() -> Unavailable {
    Unavailable("the kernel keyring exists only on Linux".to_owned())
}

pub fn probe() -> Result<(), Unavailable> {
    Err(unavailable())
}

pub fn read(_: &str) -> Result<Option<Zeroizing<Vec<u8>>>, Unavailable> {
    Err(unavailable())
}

pub fn write(_: &str, _: &[u8], _: u64) -> Result<(), Unavailable> {
    Err(unavailable())
}

pub fn invalidate(_: &str) -> Result<bool, Unavailable> {
    Err(unavailable())
}

//! Fills the vault the environment names with COUNT entries in one write, for `scripts/bench`:
//! `populate COUNT`. Entry `i` is `registry-<i>.bench.example`, so every COUNT holds
//! `registry-00000.bench.example`. The key comes from the unlock cache or the passphrase.

use anyhow::Context;
use secrecy::SecretString;

fn main() -> anyhow::Result<()> {
    let count: usize = std::env::args()
        .nth(1)
        .context("usage: populate COUNT")?
        .parse()
        .context("COUNT must be a number")?;
    let entries = (0..count).map(|i| {
        (
            format!("registry-{i:05}.bench.example"),
            format!("user-{i:05}"),
            SecretString::from(format!("bench-secret-{i:05}")),
        )
    });
    coffer::credentials::Credentials::from_env()?.store_all(entries)?;
    Ok(())
}

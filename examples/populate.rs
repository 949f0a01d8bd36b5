//! Fills the vault the environment names with COUNT entries in one write, for `scripts/bench`:
//! `populate COUNT`. Entry `i` is `registry-<i>.bench.example`, so every COUNT holds
//! `registry-00000.bench.example`. The key comes from the unlock cache or the passphrase.

use anyhow::Context;
use coffer::paths::Paths;
use coffer::server_url::ServerUrl;
use coffer::store::file::FileStore;
use coffer::store::{Entry, Store};
use coffer::unlock::Unlocker;

fn main() -> anyhow::Result<()> {
    let count: usize = std::env::args()
        .nth(1)
        .context("usage: populate COUNT")?
        .parse()
        .context("COUNT must be a number")?;
    let now = coffer::store::now();
    let entries = (0..count)
        .map(|i| {
            let url = format!("registry-{i:05}.bench.example");
            // An entry as the vault keeps it, read the way the vault reads its records.
            let entry: Entry = serde_json::from_value(serde_json::json!({
                "url": url,
                "user": format!("user-{i:05}"),
                "secret": format!("bench-secret-{i:05}"),
                "created": now,
                "updated": now,
            }))?;
            Ok((ServerUrl::parse(&url)?.key(), entry))
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    FileStore::new(Paths::from_env()?, Unlocker::default()).put_all(entries)?;
    Ok(())
}

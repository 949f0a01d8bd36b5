//! One contract, every store: the memory store, the file vault (passphrase- and keychain-sealed)
//! and the OS keychain (directly, and with a small item limit that sends large entries to the
//! overflow vault) keep the same semantics over exact keys.
//!
//! Stores that need a passphrase or a session bus run the suite in a child process of this test
//! binary (the `in_child` test, ignored in a normal run), so each gets its own environment.

use std::process::Command;

use coffer::keychain::Keychain;
use coffer::paths::Paths;
use coffer::server_url::ServerUrl;
use coffer::store::keychain::KeychainStore;
use coffer::store::memory::MemoryStore;
use coffer::store::{Entry, Store};
use coffer::unlock::Unlocker;
use coffer::vault::crypto::KdfParams;
use secrecy::{ExposeSecret, SecretString};

use crate::harness::{Env, Run};
use crate::secret_service::SecretService;

const KIND: &str = "COFFER_CONTRACT_STORE";

fn key(url: &str) -> String {
    ServerUrl::parse(url).expect("url").key()
}

fn entry(url: &str, user: &str, secret: &str, time: u64) -> Entry {
    Entry {
        server_url: url.to_owned(),
        username: user.to_owned(),
        secret: SecretString::from(secret),
        created: time,
        updated: time,
        tokens: None,
        description: None,
    }
}

fn put(store: &dyn Store, url: &str, user: &str, secret: &str, time: u64) {
    store
        .put(&key(url), entry(url, user, secret, time))
        .unwrap_or_else(|e| panic!("put {url}: {e}"));
}

fn secret_of(store: &dyn Store, url: &str) -> Option<String> {
    store
        .find(&[key(url)])
        .expect("find")
        .map(|e| e.secret.expose_secret().to_owned())
}

/// The contract. `store` must start empty.
pub fn check(store: &dyn Store) {
    assert!(store.list().expect("list").is_empty(), "starts empty");
    assert!(store.find(&[key("ghcr.io")]).expect("find").is_none());
    assert_eq!(store.remove(&[key("ghcr.io")]).expect("remove"), None);

    // put / find by exact keys, the first present key answering.
    put(store, "ghcr.io", "alice", "one", 100);
    put(store, "https://quay.io", "bob", "", 100);
    let found = store
        .find(&[
            key("missing.example"),
            key("ghcr.io"),
            key("https://quay.io"),
        ])
        .expect("find")
        .expect("present");
    assert_eq!(
        (found.server_url.as_str(), found.username.as_str()),
        ("ghcr.io", "alice")
    );
    assert_eq!(found.secret.expose_secret(), "one");
    assert_eq!(
        secret_of(store, "https://quay.io").as_deref(),
        Some(""),
        "an empty secret is kept"
    );
    assert!(
        store
            .find(&[key("http://quay.io")])
            .expect("find")
            .is_none()
    );

    // A replaced entry keeps its created time and takes everything else.
    put(store, "ghcr.io", "alice2", "two", 200);
    let replaced = store
        .find(&[key("ghcr.io")])
        .expect("find")
        .expect("present");
    assert_eq!(
        (
            replaced.username.as_str(),
            replaced.created,
            replaced.updated
        ),
        ("alice2", 100, 200)
    );
    assert_eq!(replaced.secret.expose_secret(), "two");

    // Unicode everywhere, and a large secret.
    let unicode_url = "registry.example/ünïcödé/画像";
    put(store, unicode_url, "ålice-用户", "pässwörd-🔑", 300);
    let unicode = store
        .find(&[key(unicode_url)])
        .expect("find")
        .expect("present");
    assert_eq!(
        (unicode.server_url.as_str(), unicode.username.as_str()),
        (unicode_url, "ålice-用户")
    );
    assert_eq!(unicode.secret.expose_secret(), "pässwörd-🔑");
    let large: String = (0..10 * 1024)
        .map(|i| char::from(b'a' + (i % 26) as u8))
        .collect();
    put(store, "large.example", "big", &large, 300);
    assert_eq!(
        secret_of(store, "large.example").as_deref(),
        Some(large.as_str())
    );

    // Listing: every entry once, sorted by server URL, never a secret.
    let list = store.list().expect("list");
    let urls: Vec<&str> = list.iter().map(|s| s.server_url.as_str()).collect();
    assert_eq!(
        urls,
        ["ghcr.io", "https://quay.io", "large.example", unicode_url]
    );
    let ghcr = &list[0];
    assert_eq!(
        (ghcr.username.as_str(), ghcr.created, ghcr.updated),
        ("alice2", 100, 200)
    );

    // Remove by the first present key; the others stay.
    assert_eq!(
        store
            .remove(&[key("missing.example"), key("large.example")])
            .expect("remove")
            .as_deref(),
        Some("large.example")
    );
    assert!(secret_of(store, "large.example").is_none());
    assert_eq!(store.remove(&[key("large.example")]).expect("remove"), None);
    assert_eq!(store.list().expect("list").len(), 3);

    // Many entries.
    for i in 0..40 {
        put(
            store,
            &format!("r{i:02}.example:5000"),
            &format!("u{i}"),
            &format!("s{i}"),
            400,
        );
    }
    let list = store.list().expect("list");
    assert_eq!(list.len(), 43);
    assert!(list.windows(2).all(|w| w[0].server_url <= w[1].server_url));
    for i in (0..40).step_by(7) {
        assert_eq!(
            secret_of(store, &format!("r{i:02}.example:5000")).as_deref(),
            Some(format!("s{i}").as_str())
        );
    }
    for url in ["ghcr.io", "https://quay.io", unicode_url]
        .into_iter()
        .map(str::to_owned)
        .chain((0..40).map(|i| format!("r{i:02}.example:5000")))
    {
        assert!(
            store.remove(&[key(&url)]).expect("remove").is_some(),
            "{url}"
        );
    }
    assert!(store.list().expect("list").is_empty(), "ends empty");
}

#[test]
fn memory_store_keeps_the_contract() {
    check(&MemoryStore::default());
}

#[test]
fn passphrase_file_store_keeps_the_contract() {
    run_in_child("file", &Env::empty(), None);
}

#[test]
fn keychain_sealed_file_store_keeps_the_contract() {
    let service = SecretService::start();
    run_in_child("keychain-sealed", &Env::empty(), Some(&service));
    assert!(
        service
            .secret_tool(&["search", "--all", "service", "coffer-vault-key"])
            .contains("attribute.service = coffer-vault-key"),
        "the vault's key is a keychain item"
    );
}

#[test]
fn keychain_store_keeps_the_contract() {
    let service = SecretService::start();
    let env = Env::empty();
    run_in_child("keychain", &env, Some(&service));
    assert!(
        !env.vault().exists() && !env.coffer_home().join("keychain-overflow").exists(),
        "nothing went to a file vault"
    );
}

#[test]
fn keychain_store_with_an_item_limit_keeps_the_contract_through_the_overflow_vault() {
    let service = SecretService::start();
    let env = Env::empty();
    run_in_child("keychain-overflow", &env, Some(&service));
    assert!(
        env.coffer_home()
            .join("keychain-overflow/vault.coffer")
            .exists(),
        "the large entry went to the overflow vault"
    );
}

/// Runs `in_child` for one store kind, in `env`, on `service`'s bus if given.
fn run_in_child(kind: &str, env: &Env, service: Option<&SecretService>) {
    let test = "contract::in_child";
    let mut cmd = Command::new(std::env::current_exe().expect("test binary"));
    cmd.args([
        "--exact",
        test,
        "--ignored",
        "--nocapture",
        "--test-threads=1",
    ])
    .env_clear()
    .env(KIND, kind)
    .env("COFFER_HOME", env.coffer_home())
    .env("HOME", env.home())
    .env("COFFER_PASSPHRASE_FILE", env.passphrase_file())
    .env("PATH", std::env::var_os("PATH").unwrap_or_default());
    if let Some(service) = service {
        service.apply(&mut cmd);
    }
    let run = Run::of(&mut cmd, "");
    run.success();
    assert!(
        run.stdout().contains(&format!("test {test} ... ok")),
        "the child ran no contract: {}",
        run.stdout()
    );
}

#[test]
#[ignore = "run by the *_keeps_the_contract tests, in a child with the store's environment"]
fn in_child() {
    let kind = std::env::var(KIND).expect("run by a *_keeps_the_contract test");
    let paths = Paths::from_env().expect("COFFER_HOME");
    let cheapest = Unlocker {
        new_vault_params: Some(KdfParams::MIN),
        ..Unlocker::default()
    };
    match kind.as_str() {
        "file" => {
            let store = coffer::store::file::FileStore::new(paths, cheapest);
            store.init().expect("init");
            check(&store);
        }
        "keychain-sealed" => {
            let store = coffer::store::file::FileStore::new(
                paths,
                Unlocker {
                    new_vault_in_keychain: true,
                    ..Unlocker::default()
                },
            );
            store.init().expect("init");
            check(&store);
        }
        "keychain" => check(&KeychainStore::new(
            Keychain::open().expect("keychain"),
            &paths,
        )),
        "keychain-overflow" => check(&KeychainStore::with_limit(
            Keychain::open().expect("keychain"),
            &paths,
            Some(512),
        )),
        other => panic!("unknown store kind {other}"),
    }
}

//! Known-answer vault files: what every future coffer must still open, and how each kind of
//! damage is reported.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use crate::harness::Env;

struct Vector {
    passphrase: String,
    entries: Vec<serde_json::Value>,
    vault: Vec<u8>,
}

fn load(name: &str) -> Vector {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/vectors");
    let spec: serde_json::Value =
        serde_json::from_slice(&fs::read(dir.join(format!("{name}.json"))).expect("vector spec"))
            .expect("json");
    assert_eq!(spec["expect"], "ok");
    Vector {
        passphrase: spec["passphrase"].as_str().expect("passphrase").to_owned(),
        entries: spec["entries"].as_array().expect("entries").clone(),
        vault: fs::read(dir.join(format!("{name}.vault"))).expect("vector vault"),
    }
}

/// A home holding `bytes` as its vault, opened with the vector's passphrase.
fn home_with(vector: &Vector, bytes: &[u8]) -> Env {
    let env = Env::empty();
    env.write_private(&env.passphrase_file(), &format!("{}\n", vector.passphrase));
    fs::set_permissions(env.coffer_home(), fs::Permissions::from_mode(0o700)).expect("chmod");
    fs::write(env.vault(), bytes).expect("vault");
    fs::set_permissions(env.vault(), fs::Permissions::from_mode(0o600)).expect("chmod");
    env
}

/// `get` and `list` both fail with one line containing `message`.
fn fails_with(env: &Env, message: &str) {
    for (action, input) in [("get", "ghcr.io"), ("list", "unused")] {
        let run = env.helper(action, input);
        run.failure();
        assert!(
            run.stdout().contains(message),
            "{action}: want {message:?}, got {:?}",
            run.stdout()
        );
        assert_eq!(run.stdout().lines().count(), 1);
        assert!(!run.stdout().contains("refresh-token-vector"));
    }
}

#[test]
fn format_1_vector_opens_with_exact_contents() {
    let vector = load("v1-passphrase");
    let env = home_with(&vector, &vector.vault);
    let mut expected_list = serde_json::Map::new();
    for entry in &vector.entries {
        let url = entry["ServerURL"].as_str().expect("url");
        let run = env.helper("get", url);
        let got: serde_json::Value = serde_json::from_str(&run.success().stdout()).expect("json");
        assert_eq!(&got, entry);
        expected_list.insert(url.to_owned(), entry["Username"].clone());
    }
    let list: serde_json::Value =
        serde_json::from_str(&env.helper("list", "unused").success().stdout()).expect("json");
    assert_eq!(list, serde_json::Value::Object(expected_list));
}

#[test]
fn wrong_passphrase() {
    let vector = load("v1-passphrase");
    let env = home_with(&vector, &vector.vault);
    env.write_private(&env.passphrase_file(), "not it\n");
    fails_with(&env, "the passphrase is wrong");
}

#[test]
fn tampered_record() {
    let vector = load("v1-passphrase");
    let mut bytes = vector.vault.clone();
    let last = bytes.len() - 20;
    bytes[last] ^= 0x40;
    let env = home_with(&vector, &bytes);
    let run = env.helper("list", "unused");
    run.failure();
    assert!(
        run.stdout().contains("damaged or was tampered with"),
        "{}",
        run.stdout()
    );
}

#[test]
fn tampered_table() {
    let vector = load("v1-passphrase");
    let mut bytes = vector.vault.clone();
    bytes[140] ^= 0x01;
    fails_with(&home_with(&vector, &bytes), "damaged or was tampered with");
}

#[test]
fn truncated_empty_foreign_and_future_files() {
    let vector = load("v1-passphrase");
    fails_with(&home_with(&vector, &vector.vault[..120]), "truncated");
    fails_with(&home_with(&vector, &[]), "the vault file is empty");
    fails_with(&home_with(&vector, b"{\"auths\":{}}"), "not a coffer vault");
    let mut future = vector.vault.clone();
    future[8..10].copy_from_slice(&2u16.to_le_bytes());
    fails_with(
        &home_with(&vector, &future),
        "written by a newer coffer (format 2)",
    );
}

#[test]
fn crafted_work_factors_are_refused_before_any_work() {
    let vector = load("v1-passphrase");
    let mut crafted = vector.vault.clone();
    crafted[12..16].copy_from_slice(&(64u32 * 1024 * 1024).to_le_bytes());
    let started = std::time::Instant::now();
    fails_with(&home_with(&vector, &crafted), "outside the accepted bounds");
    assert!(started.elapsed() < std::time::Duration::from_secs(5));
}

#[test]
fn readable_by_others_is_refused_with_the_fix() {
    let vector = load("v1-passphrase");
    let env = home_with(&vector, &vector.vault);
    fs::set_permissions(env.vault(), fs::Permissions::from_mode(0o644)).expect("chmod");
    fails_with(&env, "run `chmod 600");
    fs::set_permissions(env.vault(), fs::Permissions::from_mode(0o600)).expect("chmod");
    fs::set_permissions(env.coffer_home(), fs::Permissions::from_mode(0o755)).expect("chmod");
    fails_with(&env, "run `chmod 700");
}

/// `get` reads the header, the table and its one record: a damaged or missing record fails the
/// `get` of its own entry, and only that one.
#[test]
fn get_checks_its_own_record_and_only_that_one() {
    let vector = load("v1-passphrase");
    let mut tampered = vector.vault.clone();
    let last = tampered.len() - 20;
    tampered[last] ^= 0x40;
    let cut = &vector.vault[..vector.vault.len() - 3];
    for (bytes, message) in [
        (&tampered[..], "damaged or was tampered with"),
        (cut, "truncated"),
    ] {
        let env = home_with(&vector, bytes);
        let failed: Vec<String> = vector
            .entries
            .iter()
            .map(|entry| env.helper("get", entry["ServerURL"].as_str().expect("url")))
            .filter(|run| run.code() != Some(0))
            .map(|run| run.stdout())
            .collect();
        assert_eq!(
            failed.len(),
            1,
            "exactly the last record's entry fails: {failed:?}"
        );
        assert!(failed[0].contains(message), "{failed:?}");
    }
}

//! The `coffer` command for people: ls, rm, passwd, doctor.

use crate::harness::Env;

fn store(env: &Env, url: &str, user: &str, secret: &str) {
    let request =
        serde_json::json!({"ServerURL": url, "Username": user, "Secret": secret}).to_string();
    env.helper("store", &request).success();
}

#[test]
fn ls_shows_metadata_and_never_a_secret() {
    let env = Env::new();
    let empty = env.coffer(&["ls"]);
    assert_eq!(empty.success().stdout(), "no credentials stored\n");
    store(&env, "ghcr.io", "alice", "ls-secret-1");
    store(&env, "https://index.docker.io/v1/", "bob", "ls-secret-2");
    env.helper("get", "ghcr.io").success();

    let table = env.coffer(&["ls"]).success().stdout();
    let lines: Vec<&str> = table.lines().collect();
    assert_eq!(lines.len(), 3, "{table}");
    assert!(lines[0].starts_with("REGISTRY") && lines[0].contains("LAST USED"));
    assert!(
        lines[1].starts_with("ghcr.io")
            && lines[1].contains("alice")
            && !lines[1].contains("never")
    );
    // Last used never; no description.
    assert!(
        lines[2].starts_with("https://index.docker.io/v1/")
            && lines[2].contains("  never  ")
            && lines[2].ends_with('-')
    );

    let json = env.coffer(&["ls", "--json"]).success().stdout();
    assert!(!json.contains("ls-secret"), "{json}");
    let list: serde_json::Value = serde_json::from_str(&json).expect("json");
    assert_eq!(list[0]["server_url"], "ghcr.io");
    assert!(list[0]["last_used"].as_u64().is_some());
    assert!(list[1]["last_used"].is_null());
    assert!(list[1]["created"].as_u64().is_some() && list[1]["updated"].as_u64().is_some());
}

#[test]
fn rm_removes_one_registry() {
    let env = Env::new();
    store(&env, "ghcr.io", "alice", "s1");
    store(&env, "quay.io", "alice", "s2");
    assert_eq!(
        env.coffer(&["rm", "https://ghcr.io"]).success().stdout(),
        "removed ghcr.io\n"
    );
    assert_eq!(
        env.helper("list", "").success().stdout(),
        "{\"quay.io\":\"alice\"}\n"
    );
    let again = env.coffer(&["rm", "ghcr.io"]);
    again.failure();
    assert!(
        again.stderr().contains("nothing is stored for ghcr.io"),
        "{}",
        again.stderr()
    );
}

#[test]
fn passwd_keeps_every_entry() {
    let env = Env::new();
    store(&env, "ghcr.io", "alice", "kept-secret");
    let new_file = env.root().join("new-passphrase");
    env.write_private(&new_file, "a brand new passphrase\n");
    let run = crate::harness::Run::of(
        env.command(crate::harness::bin("coffer"))
            .env("COFFER_NEW_PASSPHRASE_FILE", &new_file)
            .arg("passwd"),
        "",
    );
    assert_eq!(
        run.success().stdout(),
        format!(
            "passphrase changed; 1 entry kept under the same key (`coffer passwd --rotate-key` \
             also replaces the key, after a leak)\nstale: COFFER_PASSPHRASE_FILE ({}) still holds \
             the old passphrase: put the new one there, or every docker pull fails (for a file, \
             --update-passphrase-file does that)\n",
            env.passphrase_file().display()
        )
    );
    // The old passphrase no longer opens the vault; the new one does, with the entry intact.
    let old = env.helper("get", "ghcr.io");
    old.failure();
    assert!(old.stdout().contains("the passphrase is wrong"));
    env.write_private(&env.passphrase_file(), "a brand new passphrase\n");
    let got = env.helper("get", "ghcr.io").success().stdout();
    assert!(got.contains("kept-secret"), "{got}");
}

#[test]
fn passwd_without_a_new_passphrase_source_changes_nothing() {
    let env = Env::new();
    store(&env, "ghcr.io", "alice", "s");
    let before = std::fs::read(env.vault()).expect("vault");
    let run = env.coffer(&["passwd"]);
    run.failure();
    assert!(
        run.stderr().contains("COFFER_NEW_PASSPHRASE_FILE"),
        "{}",
        run.stderr()
    );
    assert_eq!(std::fs::read(env.vault()).expect("vault"), before);
}

#[test]
fn doctor_reports_what_to_fix() {
    let env = Env::new();
    let bad = env.coffer(&["doctor"]);
    bad.failure();
    let out = bad.stdout();
    assert!(out.contains("credsStore is not set"), "{out}");
    assert!(
        out.contains("vault opens and every record authenticates (0 entries)"),
        "{out}"
    );

    env.write_private(
        &env.docker_config().join("config.json"),
        r#"{"credsStore":"coffer"}"#,
    );
    let good = env.coffer(&["doctor"]);
    let out = good.success().stdout();
    assert!(out.contains("credsStore is coffer"), "{out}");
    assert!(out.contains("docker-credential-coffer is on PATH"), "{out}");
    assert!(
        out.contains("passphrase from COFFER_PASSPHRASE_FILE"),
        "{out}"
    );

    std::fs::remove_file(env.passphrase_file()).expect("rm");
    let locked = env.coffer(&["doctor"]);
    locked.failure();
    assert!(
        locked.stdout().contains("no passphrase source"),
        "{}",
        locked.stdout()
    );
}

#[test]
fn init_refuses_weak_parameters_and_an_existing_vault() {
    let env = Env::new();
    let again = env.coffer(&["init"]);
    again.failure();
    assert!(
        again.stderr().contains("already exists"),
        "{}",
        again.stderr()
    );
    let fresh = Env::empty();
    let weak = fresh.coffer(&["init", "--kdf-memory-mib", "8"]);
    weak.failure();
    assert!(weak.stderr().contains("out of bounds"), "{}", weak.stderr());
    assert!(!fresh.vault().exists());
}

/// Every `coffer mode 'PATTERN' MODE` example of the documentation runs as written, and the
/// pattern then covers the registries it is meant for.
#[test]
fn every_documented_mode_pattern_example_runs() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut pages = vec![root.join("README.md")];
    if let Ok(docs) = std::fs::read_dir(root.join("docs")) {
        pages.extend(
            docs.flatten()
                .map(|e| e.path())
                .filter(|p| p.extension().is_some_and(|x| x == "md")),
        );
    }
    let examples: Vec<(String, String)> = pages
        .iter()
        .flat_map(|page| {
            std::fs::read_to_string(page)
                .unwrap_or_default()
                .lines()
                .map(str::to_owned)
                .collect::<Vec<_>>()
        })
        .filter_map(|line| {
            let rest = line.trim().strip_prefix("coffer mode '")?;
            let (pattern, mode) = rest.split_once("' ")?;
            let mode = mode.split_whitespace().next()?;
            Some((pattern.to_owned(), mode.to_owned()))
        })
        .collect();
    assert!(
        examples
            .iter()
            .any(|(p, m)| p == "*-docker.pkg.dev" && m == "google"),
        "{examples:?}"
    );
    let env = Env::new();
    for (pattern, mode) in &examples {
        let run = env.coffer(&["mode", pattern, mode]);
        assert!(
            run.code() == Some(0),
            "coffer mode '{pattern}' {mode}: {}",
            run.stderr()
        );
    }
    // Artifact Registry's hosts are Google's chain mode now: with no identity here, `get`
    // says what it tried.
    let closed = format!("127.0.0.1:{}", crate::harness::free_port());
    let get = crate::harness::Run::of(
        env.command(crate::harness::bin("docker-credential-coffer"))
            .arg("get")
            .env("GCE_METADATA_HOST", &closed),
        "europe-west1-docker.pkg.dev",
    );
    get.failure();
    assert!(
        get.stdout().starts_with("no Google identity here"),
        "{}",
        get.stdout()
    );
}

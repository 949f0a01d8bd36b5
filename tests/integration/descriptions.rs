//! Whose credential is this: descriptions through `coffer login`, `coffer describe`, a
//! configured default for `docker login`, `coffer ls` and its JSON, and the Kubernetes Secret
//! export; never in a file in plaintext.

use crate::harness::{Env, Run, bin};
// `docker login`'s way: the helper's `store`.
use crate::token_vault::store;

const RUNNER: &str = "ci-runner-7, team payments";
const MOVED: &str = "ci-runner-9, team ledger";
const DEFAULT: &str = "fleet default: build farm";

/// `coffer ls --json`: server URL → description.
fn descriptions(env: &Env) -> Vec<(String, Option<String>)> {
    let run = env.coffer(&["ls", "--json"]);
    let list: serde_json::Value = serde_json::from_str(&run.success().stdout()).expect("json");
    list.as_array()
        .expect("array")
        .iter()
        .map(|e| {
            (
                e["server_url"].as_str().expect("url").to_owned(),
                e["description"].as_str().map(str::to_owned),
            )
        })
        .collect()
}

#[test]
fn descriptions_round_trip_and_never_reach_a_plaintext_file() {
    let env = Env::new();
    Run::of(
        env.command(bin("coffer")).args([
            "login",
            "registry.example.com",
            "--username",
            "robot",
            "--password-stdin",
            "--description",
            RUNNER,
        ]),
        "s3cret\n",
    )
    .success();
    let ls = env.coffer(&["ls"]);
    assert!(ls.success().stdout().contains(RUNNER), "{}", ls.stdout());
    assert!(ls.stdout().contains("DESCRIPTION"), "{}", ls.stdout());
    assert_eq!(
        descriptions(&env),
        [("registry.example.com".to_owned(), Some(RUNNER.to_owned()))]
    );

    // A new password for the same registry is still the same machine's.
    store(&env, "registry.example.com", "robot", "rotated").success();
    assert_eq!(descriptions(&env)[0].1.as_deref(), Some(RUNNER));
    let describe = env.coffer(&["describe", "https://registry.example.com", MOVED]);
    assert!(describe.success().stdout().contains(MOVED));
    assert_eq!(descriptions(&env)[0].1.as_deref(), Some(MOVED));

    // `docker login` gives none: the configured default applies to new entries only.
    std::fs::write(
        env.coffer_home().join("config.toml"),
        format!("default_description = \"{DEFAULT}\"\n"),
    )
    .expect("config");
    store(&env, "ghcr.io", "bot", "ghp_secret").success();
    store(&env, "registry.example.com", "robot", "rotated-again").success();
    assert_eq!(
        descriptions(&env),
        [
            ("ghcr.io".to_owned(), Some(DEFAULT.to_owned())),
            ("registry.example.com".to_owned(), Some(MOVED.to_owned())),
        ]
    );

    let secret = env.coffer(&[
        "export",
        "k8s-secret",
        "--registry",
        "registry.example.com",
        "--annotate-description",
    ]);
    let yaml = secret.success().stdout();
    assert!(
        yaml.contains(&format!("coffer.dev/description: {MOVED}")),
        "{yaml}"
    );
    let plain = env.coffer(&["export", "k8s-secret", "--registry", "ghcr.io"]);
    assert!(
        !plain.success().stdout().contains("annotations"),
        "only on request"
    );
    let both = env.coffer(&["export", "k8s-secret", "--annotate-description"]);
    assert!(
        both.success()
            .stdout()
            .contains(&format!("ghcr.io: {DEFAULT}")),
        "{}",
        both.stdout()
    );
    let wrong = env.coffer(&["export", "docker-config", "--annotate-description"]);
    assert!(wrong.failure().stderr().contains("k8s-secret"));

    for bad in ["two\nlines", &"x".repeat(201)] {
        let run = env.coffer(&["describe", "ghcr.io", bad]);
        run.failure();
    }
    env.coffer(&["describe", "quay.io", "x"]).failure();
    let cleared = env.coffer(&["describe", "ghcr.io", ""]);
    assert!(cleared.success().stdout().contains("removed"));
    assert_eq!(descriptions(&env)[0].1, None);

    for text in [RUNNER, MOVED] {
        assert_eq!(
            env.files_containing(text),
            Vec::<std::path::PathBuf>::new(),
            "{text:?} is only in the sealed records"
        );
    }
}

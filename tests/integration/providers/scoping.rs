//! A provider answers only for the registries configured for it: other hosts never receive its
//! token, and a cloud provider refuses hosts that are not its cloud's.

use super::fixture::{Answer, Fixture, Request};
use super::{get, private_file};
use crate::harness::Env;

#[test]
fn a_token_goes_only_to_the_registry_it_was_minted_for() {
    let env = Env::new();
    let fixture = Fixture::start(|_: &Request| -> Answer {
        Ok((
            200,
            r#"{"access_token":"ya29.scoped","expires_in":3600}"#.into(),
        ))
    });
    let json = serde_json::json!({
        "type": "authorized_user",
        "client_id": "c",
        "client_secret": "s",
        "refresh_token": "r",
        "token_uri": format!("{}/token", fixture.url()),
    });
    let key = private_file(&env, "user.json", &json.to_string());
    env.coffer(&[
        "login",
        "127.0.0.1:5001",
        "--mode",
        "google",
        "--secret-file",
        &key,
    ])
    .success();
    // A plain registry beside it keeps its own password.
    crate::harness::Run::of(
        env.command(crate::harness::bin("docker-credential-coffer"))
            .arg("store"),
        r#"{"ServerURL":"127.0.0.1:5002","Username":"alice","Secret":"alice-pw"}"#,
    )
    .success();
    assert_eq!(
        get(&env, "127.0.0.1:5001"),
        ("oauth2accesstoken".into(), "ya29.scoped".into())
    );
    assert_eq!(
        get(&env, "127.0.0.1:5001/project/repo/image"),
        ("oauth2accesstoken".into(), "ya29.scoped".into())
    );
    assert_eq!(
        get(&env, "127.0.0.1:5002"),
        ("alice".into(), "alice-pw".into())
    );
    for other in [
        "127.0.0.1:5003",
        "127.0.0.1",
        "localhost:5001",
        "evil.example",
        "us-docker.pkg.dev",
    ] {
        let run = env.helper("get", other);
        run.failure();
        assert_eq!(
            run.stdout().trim(),
            "credentials not found in native keychain",
            "{other}"
        );
    }
    assert_eq!(fixture.count("/token"), 1);
}

#[test]
fn cloud_providers_refuse_hosts_outside_their_cloud() {
    let env = Env::new();
    let fixture = Fixture::start(|_: &Request| -> Answer { Err("nothing may be asked".into()) });
    let json = serde_json::json!({
        "type": "authorized_user",
        "client_id": "c",
        "client_secret": "s",
        "refresh_token": "r",
        "token_uri": format!("{}/token", fixture.url()),
    });
    let key = private_file(&env, "user.json", &json.to_string());
    let cases: [(&str, &[&str]); 3] = [
        ("ghcr.io", &["--mode", "google", "--secret-file", &key]),
        (
            "registry.example.com",
            &[
                "--mode",
                "azure",
                "--set",
                "tenant=t",
                "--username",
                "aad-token",
                "--secret-file",
                &key,
            ],
        ),
        (
            "quay.io",
            &[
                "--mode",
                "ecr",
                "--set",
                "region=eu-west-1",
                "--username",
                "AKID",
                "--secret-file",
                &key,
            ],
        ),
    ];
    for (host, args) in cases {
        let mut all = vec!["login", host];
        all.extend_from_slice(args);
        let run = env.coffer(&all);
        assert_eq!(run.code(), Some(1), "{host}: {}", run.stdout());
        assert!(
            run.stderr().contains(&format!("{host} is not")),
            "{host}: {}",
            run.stderr()
        );
        let get = env.helper("get", host);
        get.failure();
        assert!(
            !get.stdout().contains("\"Secret\""),
            "{host}: {}",
            get.stdout()
        );
    }
    assert!(fixture.requests().is_empty(), "no token endpoint was asked");
}

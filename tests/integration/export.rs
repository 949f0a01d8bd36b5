//! `coffer export` checked by each format's real consumer, the kubelet credential provider,
//! and profiles.

use std::fs;
use std::path::Path;

use base64ct::{Base64, Encoding};

use crate::harness::{DOCKER, Env, Registry, Run, require, require_file, skopeo_push};

const USER: &str = "fleet-user";
const PASSWORD: &str = "fleet-Pa55-4c1e9a";

fn store(env: &Env, url: &str, user: &str, secret: &str) {
    let request =
        serde_json::json!({"ServerURL": url, "Username": user, "Secret": secret}).to_string();
    env.helper("store", &request).success();
}

fn export(env: &Env, args: &[&str]) -> Run {
    let run = env.coffer(&[&["export"], args].concat());
    run.success();
    run
}

/// A registry holding one image, pushed by skopeo with the podman export as its authfile.
fn registry_with_image(env: &Env) -> (Registry, String) {
    let registry = Registry::htpasswd(USER, PASSWORD);
    store(env, &registry.host(), USER, PASSWORD);
    let authfile = env.root().join("exported-auth.json");
    export(env, &["podman", "--out", authfile.to_str().expect("utf-8")]);
    let image = format!("{}/fleet/app:1", registry.host());
    skopeo_push(
        env,
        &mut env.command("skopeo"),
        authfile.to_str().expect("utf-8"),
        &image,
    );
    (registry, image)
}

/// `docker manifest inspect` with only the given config folder: no helper, inline auths.
fn docker_inspects_with(env: &Env, config_dir: &Path, image: &str) {
    require_file(DOCKER, "docker.io");
    let config = fs::read_to_string(config_dir.join("config.json")).expect("config");
    assert!(!config.contains("credsStore"), "{config}");
    let run = Run::of(
        env.command(DOCKER).env("DOCKER_CONFIG", config_dir).args([
            "manifest",
            "inspect",
            "--insecure",
            image,
        ]),
        "",
    );
    assert!(
        run.success().stdout().contains("schemaVersion"),
        "{}",
        run.stdout()
    );
}

#[test]
fn docker_config_podman_and_mesos_work_with_their_consumers() {
    let env = Env::new();
    let (_registry, image) = registry_with_image(&env);

    let docker_dir = env.root().join("exported-docker");
    fs::create_dir(&docker_dir).expect("mkdir");
    let out = docker_dir.join("config.json");
    let run = export(
        &env,
        &["docker-config", "--out", out.to_str().expect("utf-8")],
    );
    assert!(
        run.stderr().contains("exported 1 credential"),
        "{}",
        run.stderr()
    );
    assert_eq!(run.stdout(), "", "nothing on stdout with --out");
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        fs::metadata(&out).expect("stat").permissions().mode() & 0o777,
        0o600
    );
    docker_inspects_with(&env, &docker_dir, &image);

    // podman's auth.json was the push's authfile; skopeo reads it back.
    let authfile = env.root().join("exported-auth.json");
    let inspect = Run::of(
        env.command("skopeo").args([
            "inspect",
            "--tls-verify=false",
            "--authfile",
            authfile.to_str().expect("utf-8"),
            &format!("docker://{image}"),
        ]),
        "",
    );
    assert!(inspect.success().stdout().contains("Digest"));

    let archive = env.root().join("docker.tar.gz");
    export(&env, &["mesos", "--out", archive.to_str().expect("utf-8")]);
    let unpacked = env.root().join("mesos-sandbox");
    fs::create_dir(&unpacked).expect("mkdir");
    let mut tar = tar::Archive::new(flate2::read::GzDecoder::new(
        fs::File::open(&archive).expect("open"),
    ));
    tar.unpack(&unpacked).expect("unpack");
    assert_eq!(
        fs::metadata(unpacked.join(".docker/config.json"))
            .expect("stat")
            .permissions()
            .mode()
            & 0o777,
        0o600
    );
    docker_inspects_with(&env, &unpacked.join(".docker"), &image);
}

#[test]
fn k8s_secret_matches_kubectl_field_for_field() {
    require("kubectl");
    let env = Env::new();
    store(&env, "registry.example.com:5000", USER, PASSWORD);
    let ours = export(
        &env,
        &["k8s-secret", "--name", "regcred", "--namespace", "apps"],
    )
    .stdout();
    let kubectl = Run::of(
        env.command("kubectl").args([
            "create",
            "secret",
            "docker-registry",
            "regcred",
            "--namespace",
            "apps",
            "--docker-server=registry.example.com:5000",
            &format!("--docker-username={USER}"),
            &format!("--docker-password={PASSWORD}"),
            "--dry-run=client",
            "-o",
            "yaml",
        ]),
        "",
    );
    let theirs = kubectl.success().stdout();
    let ours: serde_json::Value = serde_norway::from_str(&ours).expect("our YAML");
    let theirs: serde_json::Value = serde_norway::from_str(&theirs).expect("kubectl YAML");
    assert_eq!(ours, theirs);
    let config = Base64::decode_vec(ours["data"][".dockerconfigjson"].as_str().expect("data"))
        .expect("base64");
    let config: serde_json::Value = serde_json::from_slice(&config).expect("json");
    assert_eq!(
        config["auths"]["registry.example.com:5000"]["password"],
        PASSWORD
    );
}

#[test]
fn rkt_and_butane_documents_hold_the_right_values() {
    let env = Env::new();
    store(&env, "https://index.docker.io/v1/", "hubuser", "hub-secret");
    store(&env, "127.0.0.1:5000", USER, PASSWORD);

    let dir = env.root().join("auth.d");
    export(
        &env,
        &[
            "rkt",
            "--registry",
            "127.0.0.1:5000",
            "--out",
            dir.to_str().expect("utf-8"),
        ],
    );
    let names: Vec<_> = fs::read_dir(&dir)
        .expect("dir")
        .map(|e| e.expect("entry").file_name())
        .collect();
    assert_eq!(names.len(), 1, "{names:?}");
    let doc: serde_json::Value =
        serde_json::from_slice(&fs::read(dir.join("127.0.0.1_5000.json")).expect("doc"))
            .expect("json");
    assert_eq!(
        doc,
        serde_json::json!({"rktKind": "auth", "rktVersion": "v1", "domains": ["127.0.0.1:5000"], "type": "basic",
                           "credentials": {"user": USER, "password": PASSWORD}})
    );

    let butane = export(
        &env,
        &["butane", "--path", "/home/core/.docker/config.json"],
    )
    .stdout();
    let butane: serde_json::Value = serde_norway::from_str(&butane).expect("yaml");
    assert_eq!(butane["variant"], "fcos");
    let file = &butane["storage"]["files"][0];
    assert_eq!(file["path"], "/home/core/.docker/config.json");
    assert_eq!(file["mode"], 0o600);
    let config: serde_json::Value =
        serde_json::from_str(file["contents"]["inline"].as_str().expect("inline")).expect("json");
    let auth = config["auths"]["https://index.docker.io/v1/"]["auth"]
        .as_str()
        .expect("auth");
    assert_eq!(
        Base64::decode_vec(auth).expect("b64"),
        b"hubuser:hub-secret"
    );
    assert_eq!(config["auths"]["127.0.0.1:5000"]["username"], USER);
}

#[test]
fn export_filters_and_refusals() {
    let env = Env::new();
    store(&env, "a.example", "a", "sa");
    store(&env, "b.example", "<token>", "refresh");
    let run = env.coffer(&["export", "docker-config", "--registry", "missing.example"]);
    run.failure();
    assert!(
        run.stderr()
            .contains("nothing is stored for missing.example"),
        "{}",
        run.stderr()
    );
    let run = env.coffer(&["export", "k8s-secret"]);
    run.failure();
    assert!(run.stderr().contains("identity token"), "{}", run.stderr());
    let config: serde_json::Value =
        serde_json::from_str(&export(&env, &["docker-config"]).stdout()).expect("json");
    assert_eq!(
        config["auths"]["b.example"],
        serde_json::json!({"identitytoken": "refresh"})
    );
    let only_a: serde_json::Value = serde_json::from_str(
        &export(&env, &["docker-config", "--registry", "https://a.example"]).stdout(),
    )
    .expect("json");
    assert_eq!(only_a["auths"].as_object().expect("auths").len(), 1);
}

fn provider(env: &Env, request: &str) -> Run {
    Run::of(
        env.command(crate::harness::bin("coffer"))
            .arg("kubelet-credential-provider"),
        request,
    )
}

fn request(image: &str) -> String {
    serde_json::json!({"apiVersion": "credentialprovider.kubelet.k8s.io/v1", "kind": "CredentialProviderRequest", "image": image})
        .to_string()
}

#[test]
fn kubelet_provider_answers_per_the_v1_api() {
    let env = Env::new();
    store(&env, "127.0.0.1:5000", USER, PASSWORD);
    store(&env, "ghcr.io/org/private", "org-bot", "repo-secret");

    let known = provider(&env, &request("127.0.0.1:5000/team/app:1.2"));
    let response: serde_json::Value =
        serde_json::from_str(&known.success().stdout()).expect("json");
    assert_eq!(
        response,
        serde_json::json!({
            "apiVersion": "credentialprovider.kubelet.k8s.io/v1",
            "kind": "CredentialProviderResponse",
            "cacheKeyType": "Registry",
            "cacheDuration": "600s",
            "auth": {"127.0.0.1:5000": {"username": USER, "password": PASSWORD}}
        })
    );

    let per_image = provider(&env, &request("ghcr.io/org/private:7"));
    let response: serde_json::Value =
        serde_json::from_str(&per_image.success().stdout()).expect("json");
    assert_eq!(response["cacheKeyType"], "Image");
    assert_eq!(
        response["auth"]["ghcr.io/org/private"]["username"],
        "org-bot"
    );

    let unknown = provider(&env, &request("quay.io/other/image"));
    let response: serde_json::Value =
        serde_json::from_str(&unknown.success().stdout()).expect("json");
    assert_eq!(response["auth"], serde_json::json!({}));

    // Images docker's grammar rejects name no registry: not Docker Hub's, whose credential
    // this node holds.
    store(&env, "docker.io", "hub-user", "hub-secret-7d1e");
    let hub = provider(&env, &request("alpine:3"));
    assert!(hub.success().stdout().contains("hub-secret-7d1e"));
    for image in [
        "ghcr.io@evil.example/x",
        "ghcr.io/org/app@sha256:ff",
        "ghcr.io/Org/app",
    ] {
        let run = provider(&env, &request(image));
        run.failure().hides(&["hub-secret-7d1e", PASSWORD]);
        assert_eq!(run.stdout(), "", "{image}: no response at all");
        assert!(
            run.stderr().contains("is not an image reference"),
            "{image}: {}",
            run.stderr()
        );
    }

    for bad in [
        "not json",
        r#"{"apiVersion":"v9","kind":"CredentialProviderRequest","image":"x"}"#,
        r#"{"kind":"x"}"#,
    ] {
        let run = provider(&env, bad);
        run.failure();
        assert_eq!(run.stdout(), "", "nothing on stdout for {bad}");
        assert!(
            run.stderr().contains("kubelet credential provider"),
            "{}",
            run.stderr()
        );
        assert!(!run.stderr().contains(PASSWORD));
    }
}

#[test]
fn profiles_are_isolated() {
    let env = Env::new();
    let in_profile = |profile: &str, action: &str, input: &str| {
        Run::of(
            env.command(crate::harness::bin("docker-credential-coffer"))
                .env("COFFER_PROFILE", profile)
                .arg(action),
            input,
        )
    };
    in_profile(
        "ci",
        "store",
        r#"{"ServerURL":"r.example","Username":"ci-bot","Secret":"ci-secret"}"#,
    )
    .success();
    assert_eq!(
        in_profile("ci", "list", "").success().stdout(),
        "{\"r.example\":\"ci-bot\"}\n"
    );
    assert_eq!(in_profile("web", "list", "").success().stdout(), "{}\n");
    assert_eq!(env.helper("list", "").success().stdout(), "{}\n");
    in_profile("web", "get", "r.example").failure();
    let ls = env.coffer(&["--profile", "ci", "ls", "--json"]);
    assert!(ls.success().stdout().contains("ci-bot"));
    let bad = in_profile("../escape", "list", "");
    bad.failure();
    assert!(
        bad.stdout().contains("invalid profile name"),
        "{}",
        bad.stdout()
    );
}

/// A registry whose credential is a token minted by a command (the exec provider), living
/// `lifetime`; each run of the command mints `token-N`.
fn exec_registry(env: &Env, host: &str, lifetime: &str) {
    use std::os::unix::fs::PermissionsExt;
    fs::write(
        env.coffer_home().join("config.toml"),
        "[tokens]\nmin_margin = \"1s\"\nretry_after = \"1s\"\n",
    )
    .expect("config");
    let count = env.root().join("count");
    let program = env.root().join("mint.sh");
    fs::write(
        &program,
        format!(
            "#!/bin/sh\nn=$(($(cat {0} 2>/dev/null || echo 0) + 1)); echo $n > {0}; printf 'token-%s\\n' $n\n",
            count.display()
        ),
    )
    .expect("script");
    fs::set_permissions(&program, fs::Permissions::from_mode(0o700)).expect("chmod");
    let command = format!("command=[\"{}\"]", program.display());
    let lifetime = format!("lifetime={lifetime}");
    env.coffer(&[
        "login",
        host,
        "--mode",
        "exec",
        "--set",
        &command,
        "--set",
        "username=bot",
        "--set",
        &lifetime,
    ])
    .success();
}

#[test]
fn kubelet_provider_caches_a_token_no_longer_than_it_lives_and_renews_it_first() {
    let env = Env::new();
    exec_registry(&env, "127.0.0.1:5998", "4s");
    let answer = |image: &str| -> serde_json::Value {
        serde_json::from_str(&provider(&env, &request(image)).success().stdout()).expect("json")
    };
    let first = answer("127.0.0.1:5998/team/app:1");
    assert_eq!(
        first["auth"]["127.0.0.1:5998"],
        serde_json::json!({"username": "bot", "password": "token-1"})
    );
    let seconds: u64 = first["cacheDuration"]
        .as_str()
        .expect("duration")
        .trim_end_matches('s')
        .parse()
        .expect("seconds");
    assert!(
        seconds <= 4,
        "cached longer than the token lives: {seconds}s"
    );
    // Past half its life the token is renewed before the kubelet gets it.
    std::thread::sleep(std::time::Duration::from_millis(2200));
    let second = answer("127.0.0.1:5998/team/app:1");
    assert_eq!(second["auth"]["127.0.0.1:5998"]["password"], "token-2");
}

#[test]
fn export_renews_tokens_first_and_says_when_the_earliest_expires() {
    let env = Env::new();
    exec_registry(&env, "127.0.0.1:5997", "1h");
    store(&env, "basic.example", "u", "p");
    let run = export(&env, &["docker-config"]);
    assert!(
        run.stderr().contains("the earliest token expires at"),
        "{}",
        run.stderr()
    );
    let config: serde_json::Value = serde_json::from_str(&run.stdout()).expect("json");
    assert_eq!(config["auths"]["127.0.0.1:5997"]["password"], "token-1");
    let basic = export(&env, &["docker-config", "--registry", "basic.example"]);
    assert!(
        basic.stderr().contains("none of them expires"),
        "{}",
        basic.stderr()
    );
}

#[test]
fn export_out_never_replaces_a_device_or_a_link() {
    let env = Env::new();
    store(&env, "r.example", USER, PASSWORD);
    let link = env.root().join("to-full");
    std::os::unix::fs::symlink("/dev/full", &link).expect("link");
    for out in ["/dev/full", "/dev/null", link.to_str().expect("utf-8")] {
        let run = env.coffer(&["export", "docker-config", "--out", out]);
        run.failure();
        assert!(
            run.stderr().contains("is not a regular file"),
            "{out}: {}",
            run.stderr()
        );
        assert!(!run.stderr().contains("exported"), "{}", run.stderr());
    }
    assert!(
        fs::symlink_metadata(&link)
            .expect("stat")
            .file_type()
            .is_symlink()
    );
    // A link to a file is written through: the link stays, its target gets the export.
    let target = env.root().join("real-config.json");
    let link = env.root().join("config-link.json");
    std::os::unix::fs::symlink(&target, &link).expect("link");
    export(
        &env,
        &["docker-config", "--out", link.to_str().expect("utf-8")],
    );
    assert!(
        fs::symlink_metadata(&link)
            .expect("stat")
            .file_type()
            .is_symlink()
    );
    assert!(
        fs::read_to_string(&target)
            .expect("target")
            .contains("r.example")
    );
}

#[test]
fn export_rkt_writes_host_port_and_host_path_to_two_files() {
    let env = Env::new();
    store(&env, "host:5000", "colon", "secret-colon");
    store(&env, "host/5000", "slash", "secret-slash");
    let dir = env.root().join("auth.d");
    let run = export(&env, &["rkt", "--out", dir.to_str().expect("utf-8")]);
    assert!(
        run.stderr().contains("exported 2 credentials"),
        "{}",
        run.stderr()
    );
    let mut users: Vec<String> = fs::read_dir(&dir)
        .expect("dir")
        .map(|e| {
            let doc: serde_json::Value =
                serde_json::from_slice(&fs::read(e.expect("entry").path()).expect("doc"))
                    .expect("json");
            doc["credentials"]["user"]
                .as_str()
                .expect("user")
                .to_owned()
        })
        .collect();
    users.sort();
    assert_eq!(users, ["colon", "slash"]);
}

#[test]
fn every_format_refuses_two_entries_it_would_name_alike_and_writes_nothing() {
    let env = Env::new();
    // Two entries each that a format names alike: by scheme (auth.json and rkt name
    // registries without one), and Docker Hub's two spellings (one key in docker's config).
    let by_scheme = ["http://127.0.0.1:5992", "https://127.0.0.1:5992"];
    let hub = ["docker.io", "https://index.docker.io/v1/"];
    for (n, url) in by_scheme.iter().chain(&hub).enumerate() {
        store(&env, url, &format!("user-{n}"), &format!("secret-{n}"));
    }
    let out = env.root().join("exported");
    for (format, pair) in [
        ("docker-config", hub),
        ("k8s-secret", hub),
        ("mesos", hub),
        ("butane", hub),
        ("podman", by_scheme),
        ("rkt", by_scheme),
    ] {
        let run = env.coffer(&["export", format, "--out", out.to_str().expect("utf-8")]);
        run.failure()
            .hides(&["secret-0", "secret-1", "secret-2", "secret-3"]);
        let said = run.stderr();
        assert!(
            said.contains(&format!("{} and {} are both", pair[0], pair[1])),
            "{format}: {said}"
        );
        assert!(!said.contains("exported"), "{format}: {said}");
        assert!(!out.exists(), "{format} wrote {}", out.display());
    }
    // Told apart by scheme, each exports on its own.
    for url in by_scheme {
        let run = export(&env, &["podman", "--registry", url]);
        assert!(
            run.stderr().contains("exported 1 credential"),
            "{}",
            run.stderr()
        );
    }
}

#[test]
fn export_rkt_replaces_a_link_in_its_folder_instead_of_writing_through_it() {
    let env = Env::new();
    store(&env, "r.example", USER, PASSWORD);
    let dir = env.root().join("auth.d");
    fs::create_dir(&dir).expect("mkdir");
    let victim = env.root().join("victim");
    fs::write(&victim, "export PATH\n").expect("victim");
    let link = dir.join("r.example.json");
    std::os::unix::fs::symlink(&victim, &link).expect("link");
    export(&env, &["rkt", "--out", dir.to_str().expect("utf-8")]);
    assert_eq!(
        fs::read_to_string(&victim).expect("victim"),
        "export PATH\n"
    );
    assert!(fs::symlink_metadata(&link).expect("stat").is_file());
    assert!(fs::read_to_string(&link).expect("doc").contains(PASSWORD));
}

//! The token vault through the real binaries: modes, the store-time proof, refresh before
//! expiry, one exchange for many processes, failures of the token server, and the fixture's
//! tokens checked by a real docker-registry.

use std::fs;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::harness::{Env, Run, bin};
use crate::token_server::{Fields, Grant, TokenServer, token_registry, token_registry_tls};

pub const USER: &str = "token-user";
pub const PASSWORD: &str = "tok3n-Pa55word-51c2";

/// A home whose config.toml holds `tokens` (the body of a `[tokens]` section).
pub fn env_with(tokens: &str) -> Env {
    let env = Env::new();
    fs::write(
        env.coffer_home().join("config.toml"),
        format!("[tokens]\n{tokens}"),
    )
    .expect("config");
    env
}

pub fn store(env: &Env, host: &str, user: &str, secret: &str) -> Run {
    let request = serde_json::json!({"ServerURL": host, "Username": user, "Secret": secret});
    env.helper("store", &request.to_string())
}

/// `get`'s answer as (Username, Secret).
pub fn get(env: &Env, host: &str) -> (String, String) {
    let run = env.helper("get", host);
    let answer: Value = serde_json::from_str(&run.success().stdout()).expect("json");
    (
        answer["Username"].as_str().expect("user").to_owned(),
        answer["Secret"].as_str().expect("secret").to_owned(),
    )
}

pub fn status(env: &Env) -> Vec<Value> {
    let run = env.coffer(&["token", "status", "--json"]);
    serde_json::from_str::<Value>(&run.success().stdout())
        .expect("json")
        .as_array()
        .expect("array")
        .clone()
}

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs()
}

/// A store in oauth2 mode against the fixture acting as the registry.
fn oauth2_entry(server: &TokenServer, tokens: &str) -> Env {
    let env = env_with(tokens);
    env.coffer(&["mode", &server.host(), "oauth2"]).success();
    store(&env, &server.host(), USER, PASSWORD).success();
    env
}

#[test]
fn fixture_tokens_are_accepted_by_docker_registry() {
    let server = TokenServer::start(USER, PASSWORD);
    let registry = token_registry(&server);
    let client = reqwest::blocking::Client::new();
    let v2 = format!("http://{}/v2/", registry.host());

    let challenge = client.get(&v2).send().expect("probe");
    assert_eq!(challenge.status(), 401);
    let header = challenge.headers()["www-authenticate"]
        .to_str()
        .expect("ascii");
    assert!(header.contains(&server.realm()), "{header}");

    let catalog = format!("http://{}/v2/_catalog", registry.host());
    let token = server.access_token(&["registry:catalog:*"]);
    let ok = client
        .get(&catalog)
        .bearer_auth(&token)
        .send()
        .expect("catalog");
    assert_eq!(ok.status(), 200, "the registry refused the fixture's token");

    // Tamper with the signature: the registry must refuse, or it is not checking at all.
    // (Not the last character: its low bits are padding that decoders may ignore.)
    let mut forged = token.clone().into_bytes();
    let at = forged.len() - 10;
    forged[at] = if forged[at] == b'A' { b'B' } else { b'A' };
    let forged = String::from_utf8(forged).expect("ascii");
    let refused = client
        .get(&catalog)
        .bearer_auth(&forged)
        .send()
        .expect("catalog");
    assert_eq!(refused.status(), 401, "a forged token was accepted");

    // Each answer shape from the GET endpoint yields a token the registry takes.
    for fields in [Fields::Both, Fields::TokenOnly, Fields::AccessTokenOnly] {
        server.set(|b| b.fields = fields);
        let answer = client
            .get(server.realm())
            .query(&[
                ("service", crate::token_server::SERVICE),
                ("scope", "registry:catalog:*"),
            ])
            .basic_auth(USER, Some(PASSWORD))
            .send()
            .expect("token")
            .bytes()
            .expect("body");
        let answer: Value = serde_json::from_slice(&answer).expect("json");
        let token = answer["token"]
            .as_str()
            .or(answer["access_token"].as_str())
            .expect("a token field");
        let status = client
            .get(&catalog)
            .bearer_auth(token)
            .send()
            .expect("catalog")
            .status();
        assert_eq!(status, 200, "{fields:?}");
    }
}

#[test]
fn oauth2_store_proves_the_refresh_grant_and_get_hands_out_an_identity_token() {
    let server = TokenServer::start(USER, PASSWORD);
    let env = oauth2_entry(&server, "");
    let (user, secret) = get(&env, &server.host());
    assert_eq!(user, "<token>");
    assert_ne!(secret, PASSWORD);
    assert_eq!(secret.split('.').count(), 3, "a JWT refresh token");

    let log = server.log();
    let grants: Vec<(Grant, &str, bool)> = log
        .iter()
        .map(|e| (e.grant, e.client_id.as_str(), e.granted))
        .collect();
    assert_eq!(
        grants,
        [
            (Grant::Password, "coffer", true),
            (Grant::Refresh, "coffer", true)
        ],
        "a password grant by POST, then the proof by a POST refresh grant"
    );
    assert!(log[0].offline, "access_type=offline");

    // A fresh token is served from the vault: no exchange.
    for _ in 0..3 {
        assert_eq!(get(&env, &server.host()).1, secret);
    }
    assert_eq!(server.log().len(), 2);
    // Neither the password nor the token is in any file in plaintext.
    assert!(env.files_containing(PASSWORD).is_empty());
    assert!(env.files_containing(&secret).is_empty());

    let rows = status(&env);
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(rows[0]["mode"], "oauth2");
    assert_eq!(rows[0]["hands_out"], "token");
    assert!(rows[0]["last_refresh"].is_u64());
    assert!(rows[0]["last_error"].is_null());
}

#[test]
fn basic_mode_and_unset_registries_hand_out_the_credential_without_network() {
    let server = TokenServer::start(USER, PASSWORD);
    let env = env_with("");
    store(&env, &server.host(), USER, PASSWORD).success();
    assert_eq!(get(&env, &server.host()), (USER.into(), PASSWORD.into()));
    env.coffer(&["mode", &server.host(), "basic"]).success();
    assert_eq!(get(&env, &server.host()), (USER.into(), PASSWORD.into()));
    assert!(server.log().is_empty(), "{:?}", server.log());
}

#[test]
fn switching_modes_applies_to_what_is_stored() {
    let server = TokenServer::start(USER, PASSWORD);
    let env = env_with("");
    store(&env, &server.host(), USER, PASSWORD).success();
    let set = env.coffer(&["mode", &server.host(), "oauth2"]);
    assert!(
        set.success().stdout().contains("renewed"),
        "{}",
        set.stdout()
    );
    assert_eq!(get(&env, &server.host()).0, "<token>");

    let back = env.coffer(&["mode", &server.host(), "basic"]);
    assert!(
        back.success().stdout().contains("stored credential"),
        "{}",
        back.stdout()
    );
    assert_eq!(get(&env, &server.host()), (USER.into(), PASSWORD.into()));
    let rows = status(&env);
    assert!(rows[0]["provider"].is_null(), "tokens forgotten: {rows:?}");

    let config = fs::read_to_string(env.coffer_home().join("config.toml")).expect("config");
    assert!(
        !config.contains("[registries"),
        "basic is the default: {config}"
    );
}

#[test]
fn post_refusals_fall_back_to_get_but_only_a_proven_refresh_grant_is_handed_out() {
    for status_code in [404, 405, 400] {
        // No OAuth2 endpoint at all: the GET fallback yields a refresh token, but dockerd could
        // not use it (no POST refresh grant), so the registry stays on basic and says why.
        let server = TokenServer::start(USER, PASSWORD);
        server.set(|b| b.post_status = Some(status_code));
        let env = env_with("");
        env.coffer(&["mode", &server.host(), "oauth2"]).success();
        let stored = store(&env, &server.host(), USER, PASSWORD);
        stored.success();
        assert!(
            stored.stderr().contains("stays on basic")
                && stored.stderr().contains(&format!(
                    "refuses refresh grants by POST (HTTP {status_code})"
                )),
            "{}",
            stored.stderr()
        );
        assert_eq!(get(&env, &server.host()), (USER.into(), PASSWORD.into()));
        let log = server.log();
        assert!(
            log.iter()
                .any(|e| e.grant == Grant::Basic && e.offline && e.granted),
            "GET fallback with offline_token=true: {log:?}"
        );
        let rows = status(&env);
        assert_eq!(rows[0]["hands_out"], "credential");
        let error = rows[0]["last_error"]["message"].as_str().expect("error");
        assert!(error.contains("refresh grants"), "{error}");

        // Only the password grant refused by POST: the GET fallback's token is proven.
        let server = TokenServer::start(USER, PASSWORD);
        server.set(|b| b.password_post_status = Some(status_code));
        let env = oauth2_entry(&server, "");
        assert_eq!(get(&env, &server.host()).0, "<token>", "POST {status_code}");
    }
}

#[test]
fn answers_without_a_refresh_token_stay_basic_in_oauth2_and_auto() {
    for mode in ["oauth2", "auto"] {
        let server = TokenServer::start(USER, PASSWORD);
        server.set(|b| b.refresh_token = false);
        let env = env_with("");
        env.coffer(&["mode", &server.host(), mode]).success();
        let stored = store(&env, &server.host(), USER, PASSWORD);
        assert!(
            stored.success().stderr().contains("gave no refresh token"),
            "{}",
            stored.stderr()
        );
        assert_eq!(get(&env, &server.host()), (USER.into(), PASSWORD.into()));
    }
}

#[test]
fn auto_chooses_oauth2_where_proven() {
    let server = TokenServer::start(USER, PASSWORD);
    let env = env_with("");
    env.coffer(&["mode", &server.host(), "auto"]).success();
    let stored = store(&env, &server.host(), USER, PASSWORD);
    assert_eq!(stored.success().stderr(), "");
    assert_eq!(get(&env, &server.host()).0, "<token>");
}

#[test]
fn every_answer_shape_works() {
    for (fields, expires_in) in [
        (Fields::TokenOnly, None),
        (Fields::AccessTokenOnly, Some(60)),
        (Fields::Both, None),
    ] {
        let server = TokenServer::start(USER, PASSWORD);
        server.set(|b| {
            b.fields = fields;
            b.expires_in = expires_in;
        });
        let env = oauth2_entry(&server, "");
        assert_eq!(
            get(&env, &server.host()).0,
            "<token>",
            "{fields:?} {expires_in:?}"
        );
    }
}

#[test]
fn wrong_password_is_a_clear_store_time_note_and_stays_basic() {
    let server = TokenServer::start(USER, PASSWORD);
    let env = env_with("");
    env.coffer(&["mode", &server.host(), "oauth2"]).success();
    let stored = store(&env, &server.host(), USER, "not-the-password");
    assert!(
        stored
            .success()
            .stderr()
            .contains("refused the stored credentials (HTTP 401)"),
        "{}",
        stored.stderr()
    );
    assert!(!stored.stderr().contains("not-the-password"));
}

#[test]
fn expiring_refresh_tokens_are_renewed_by_get_before_they_expire() {
    let server = TokenServer::start(USER, PASSWORD);
    server.set(|b| b.refresh_lifetime = Some(6));
    let env = oauth2_entry(&server, "min_margin = \"1s\"\n");
    let (_, first) = get(&env, &server.host());
    assert_eq!(server.credential_exchanges("coffer"), 1);
    // Renewal starts with half of the 6 s lifetime left.
    std::thread::sleep(Duration::from_millis(3200));
    let (user, second) = get(&env, &server.host());
    assert_eq!(user, "<token>");
    assert_ne!(second, first);
    assert_eq!(server.credential_exchanges("coffer"), 2);
    // The new one is fresh again.
    assert_eq!(get(&env, &server.host()).1, second);
    assert_eq!(server.credential_exchanges("coffer"), 2);
}

#[test]
fn clock_skew_is_corrected_from_the_date_header() {
    let server = TokenServer::start(USER, PASSWORD);
    server.set(|b| {
        b.skew = 3600;
        b.refresh_lifetime = Some(1200);
    });
    let env = oauth2_entry(&server, "");
    let rows = status(&env);
    let expires = rows[0]["expires_at"].as_u64().expect("expires_at");
    let left = expires as i64 - now() as i64;
    assert!(
        (1190..=1210).contains(&left),
        "the server's clock is an hour ahead; expiry must be in ours: {left} s left"
    );
}

#[test]
fn an_issue_time_in_the_year_9999_does_not_renew_on_every_get() {
    let server = TokenServer::start(USER, PASSWORD);
    server.set(|b| {
        // 9999-12-31T00:00:00Z, for a refresh token good for an hour.
        b.issued_at = Some(253_402_214_400);
        b.refresh_lifetime = Some(3600);
    });
    let env = oauth2_entry(&server, "");
    let minted = server.requests();
    let first = get(&env, &server.host());
    for _ in 0..3 {
        assert_eq!(get(&env, &server.host()), first);
    }
    assert_eq!(server.requests(), minted, "a get went to the token server");
    let row = &status(&env)[0];
    let issued = row["issued_at"].as_u64().expect("issued_at");
    assert!(issued <= now(), "issued in the future: {row}");
}

#[test]
fn fifty_parallel_gets_across_expiry_make_one_exchange() {
    let server = TokenServer::start(USER, PASSWORD);
    // Due after 5 s; the renewed token is not due again before every get has finished.
    server.set(|b| b.refresh_lifetime = Some(10));
    let env = oauth2_entry(&server, "min_margin = \"1s\"\n");
    let (_, first) = get(&env, &server.host());
    std::thread::sleep(Duration::from_millis(5200));
    assert_eq!(server.credential_exchanges("coffer"), 1);

    let started = Instant::now();
    let gets: Vec<_> = (0..50)
        .map(|_| {
            let mut cmd = env.command(bin("docker-credential-coffer"));
            cmd.arg("get");
            let host = server.host();
            std::thread::spawn(move || Run::of(&mut cmd, &host))
        })
        .collect();
    let mut secrets = std::collections::BTreeSet::new();
    for get in gets {
        let run = get.join().expect("thread");
        let answer: Value = serde_json::from_str(&run.success().stdout()).expect("json");
        assert_eq!(run.stderr(), "", "no warnings");
        secrets.insert(answer["Secret"].as_str().expect("secret").to_owned());
    }
    eprintln!("50 parallel gets across expiry: {:?}", started.elapsed());
    assert_eq!(
        server.credential_exchanges("coffer"),
        2,
        "exactly one renewal"
    );
    assert_eq!(secrets.len(), 1, "every get answered the renewed token");
    assert!(!secrets.contains(&first));
}

/// Refresh tokens of the failure tests live this long; with `min_margin = "1s"` they are due
/// after half of it, which leaves the other half for a get that fails to renew.
const SHORT: u64 = 12;

/// An oauth2 entry whose token has [`SHORT`] to live, and an instant no earlier than its mint.
/// Token times are whole seconds, so a token is due at most `SHORT / 2` s after that instant
/// and expires no sooner than `SHORT - 2` s after it.
fn short_lived_entry(server: &TokenServer, tokens: &str) -> (Env, Instant) {
    server.set(|b| b.refresh_lifetime = Some(SHORT));
    let env = oauth2_entry(server, &format!("min_margin = \"1s\"\n{tokens}"));
    (env, Instant::now())
}

pub fn wait_until(deadline: Instant) {
    if let Some(left) = deadline.checked_duration_since(Instant::now()) {
        std::thread::sleep(left);
    }
}

fn due(minted: Instant) -> Instant {
    minted + Duration::from_millis(SHORT * 500 + 200)
}

fn expired(minted: Instant) -> Instant {
    minted + Duration::from_millis(SHORT * 1000 + 500)
}

/// A due token whose renewal fails: served while valid, with a warning; an error once expired.
fn failing_renewal(break_server: impl Fn(&TokenServer), tokens: &str) {
    let server = TokenServer::start(USER, PASSWORD);
    let (env, minted) = short_lived_entry(&server, &format!("retry_after = \"0s\"\n{tokens}"));
    let (_, cached) = get(&env, &server.host());
    wait_until(due(minted));
    break_server(&server);

    let started = Instant::now();
    let run = env.helper("get", &server.host());
    let took = started.elapsed();
    let answer: Value = serde_json::from_str(&run.success().stdout()).expect("json");
    assert_eq!(
        answer["Secret"],
        cached.as_str(),
        "the still-valid cached token"
    );
    assert!(
        run.stderr().contains("warning: cannot renew"),
        "{}",
        run.stderr()
    );
    assert!(took < Duration::from_secs(5), "get took {took:?}");
    let rows = status(&env);
    assert!(rows[0]["last_error"]["message"].is_string(), "{rows:?}");

    wait_until(expired(minted));
    let started = Instant::now();
    let run = env.helper("get", &server.host());
    let took = started.elapsed();
    run.failure();
    assert!(
        run.stdout().contains("expired and cannot be renewed")
            && run.stdout().contains("coffer refresh"),
        "{}",
        run.stdout()
    );
    assert_eq!(run.stdout().lines().count(), 1);
    assert!(took < Duration::from_secs(5), "get took {took:?}");
}

#[test]
fn a_token_server_answering_500_serves_the_cached_token_then_fails_clearly() {
    failing_renewal(|server| server.set(|b| b.status = Some(500)), "");
}

#[test]
fn a_slow_token_server_is_cut_off_by_the_timeout() {
    failing_renewal(
        |server| server.set(|b| b.delay = Duration::from_secs(8)),
        "timeout = \"1s\"\n",
    );
}

#[test]
fn a_token_server_that_is_down_serves_the_cached_token_then_fails_clearly() {
    let server = TokenServer::start(USER, PASSWORD);
    let (env, minted) = short_lived_entry(&server, "retry_after = \"0s\"\n");
    let host = server.host();
    let (_, cached) = get(&env, &host);
    wait_until(due(minted));
    drop(server);
    assert_eq!(get(&env, &host).1, cached);
    wait_until(expired(minted));
    let run = env.helper("get", &host);
    run.failure();
    assert!(
        run.stdout().contains("Connection refused"),
        "{}",
        run.stdout()
    );
}

#[test]
fn a_failed_renewal_is_not_retried_by_every_get() {
    let server = TokenServer::start(USER, PASSWORD);
    let (env, minted) = short_lived_entry(&server, "retry_after = \"1m\"\n");
    wait_until(due(minted));
    server.set(|b| b.status = Some(500));
    let before = server.requests();
    // Due: the first get tries, the next ones wait for `retry_after` and serve the cached token.
    for _ in 0..3 {
        assert_eq!(get(&env, &server.host()).0, "<token>");
    }
    assert_eq!(server.requests() - before, 1, "one probe, answered 500");
    let rows = status(&env);
    let error = rows[0]["last_error"]["message"].as_str().expect("error");
    assert!(error.contains("HTTP 500"), "{error}");
    // `coffer refresh --force` ignores the back-off.
    server.set(|b| b.status = None);
    env.coffer(&["refresh", &server.host(), "--force"])
        .success();
    assert!(status(&env)[0]["last_error"].is_null());
}

#[test]
fn a_store_of_a_derived_token_never_replaces_the_password() {
    let server = TokenServer::start(USER, PASSWORD);
    let env = oauth2_entry(&server, "");
    let host = server.host();
    let (user, token) = get(&env, &host);
    // What `docker login` without -u stores back, and variants of it.
    store(&env, &host, &user, &token).success();
    store(&env, &host, USER, &token).success();
    store(
        &env,
        &host,
        "<token>",
        "an-identity-token-the-client-got-itself",
    )
    .success();
    assert_eq!(get(&env, &host).1, token, "the derived token is kept");
    env.coffer(&["mode", &host, "basic"]).success();
    assert_eq!(
        get(&env, &host),
        (USER.into(), PASSWORD.into()),
        "so is the password"
    );

    // A real new credential replaces the old one and, in oauth2 mode, gets its own token.
    env.coffer(&["mode", &host, "oauth2"]).success();
    let before = server.credential_exchanges("coffer");
    store(&env, &host, USER, PASSWORD).success();
    assert_eq!(server.credential_exchanges("coffer"), before + 1);
    let (_, renewed) = get(&env, &host);
    assert_ne!(renewed, token);
}

#[test]
fn erase_removes_the_credential_and_its_tokens() {
    let server = TokenServer::start(USER, PASSWORD);
    let env = oauth2_entry(&server, "");
    let host = server.host();
    let (_, token) = get(&env, &host);
    env.helper("erase", &host).success();
    let run = env.helper("get", &host);
    run.failure();
    assert_eq!(run.stdout(), "credentials not found in native keychain\n");
    assert!(status(&env).iter().all(|row| row["hands_out"] == "nothing"));
    // Nothing of the token survives in the vault's plaintext, nor anywhere else.
    assert!(env.files_containing(&token).is_empty());
}

#[test]
fn refresh_renews_ahead_of_time_and_status_shows_it() {
    let server = TokenServer::start(USER, PASSWORD);
    server.set(|b| b.refresh_lifetime = Some(3600));
    let env = oauth2_entry(&server, "");
    let plain = TokenServer::start("other", "secret");
    store(&env, &plain.host(), "other", "secret").success();

    // Half of an hour is left: not due within the default 15 minutes ahead.
    let run = env.coffer(&["refresh", "--all"]);
    assert!(run.success().stdout().contains("fresh"), "{}", run.stdout());
    assert_eq!(server.credential_exchanges("coffer"), 1);
    // Due within 45 minutes: renewed now, by the timer rather than by a pull.
    let run = env.coffer(&["refresh", "--all", "--ahead", "45m"]);
    assert!(
        run.success().stdout().contains("renewed"),
        "{}",
        run.stdout()
    );
    assert_eq!(server.credential_exchanges("coffer"), 2);
    assert!(plain.log().is_empty(), "basic registries are left alone");

    let text = env.coffer(&["token", "status"]);
    let text = text.success().stdout();
    let row = text
        .lines()
        .find(|l| l.starts_with(&server.host()))
        .expect("a row for the oauth2 registry");
    assert!(
        row.contains("oauth2")
            && row.contains("token")
            && (row.contains("expires in 1h") || row.contains("expires in 59m")),
        "{text}"
    );
    let basic = text
        .lines()
        .find(|l| l.starts_with(&plain.host()))
        .expect("a row for the basic registry");
    assert!(
        basic.contains("basic") && basic.contains("credential"),
        "{text}"
    );

    // A failing registry makes `coffer refresh` fail, naming it.
    server.set(|b| b.status = Some(500));
    let run = env.coffer(&["refresh", &server.host(), "--force"]);
    run.failure();
    assert!(
        run.stdout().contains("FAILED") && run.stdout().contains("HTTP 500"),
        "{}",
        run.stdout()
    );
    let refused = env.coffer(&["refresh", &plain.host()]);
    refused.failure();
    assert!(
        refused.stderr().contains("basic mode"),
        "{}",
        refused.stderr()
    );
}

/// The systemd user units: the timer starts the service, whose command is a working
/// `coffer refresh --all` (run here with the built binary in place of the installed one).
#[test]
fn the_timer_unit_runs_coffer_refresh_all() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("packaging/systemd");
    let service = fs::read_to_string(dir.join("coffer-refresh.service")).expect("service");
    let timer = fs::read_to_string(dir.join("coffer-refresh.timer")).expect("timer");
    assert!(
        timer.contains("[Timer]") && timer.contains("OnUnitActiveSec="),
        "{timer}"
    );
    assert!(timer.contains("WantedBy=timers.target"), "{timer}");
    let exec = service
        .lines()
        .find_map(|l| l.strip_prefix("ExecStart="))
        .expect("ExecStart");
    let mut words = exec.split_whitespace();
    let program = words.next().expect("program");
    assert!(program.ends_with("coffer"), "{exec}");
    let args: Vec<&str> = words.collect();
    assert_eq!(args, ["refresh", "--all"]);
    assert!(service.contains("Type=oneshot"), "{service}");

    let server = TokenServer::start(USER, PASSWORD);
    let env = oauth2_entry(&server, "");
    let run = env.coffer(&args);
    assert!(
        run.success().stdout().contains(&server.host()),
        "{}",
        run.stdout()
    );
}

/// An HTTPS registry with a private CA: refused with the system's roots alone, proven once the
/// registry's `ca_file` names the CA.
#[test]
fn a_registry_ca_file_is_trusted_for_that_registry() {
    let server = TokenServer::start(USER, PASSWORD);
    let (registry, ca_pem) = token_registry_tls(&server);
    let url = format!("https://{}", registry.host());
    let env = env_with("");
    env.coffer(&["mode", &url, "oauth2"]).success();
    let stored = store(&env, &url, USER, PASSWORD);
    assert!(
        stored.success().stderr().contains("stays on basic")
            && stored
                .stderr()
                .contains(&format!("cannot reach https://{}/v2", registry.host())),
        "{}",
        stored.stderr()
    );
    assert_eq!(get(&env, &url).0, USER);

    let ca = env.root().join("ca.pem");
    fs::write(&ca, ca_pem).expect("ca");
    let set = env.coffer(&[
        "mode",
        &url,
        "oauth2",
        "--ca-file",
        ca.to_str().expect("utf-8"),
    ]);
    assert!(
        set.success().stdout().contains("renewed"),
        "{}",
        set.stdout()
    );
    assert_eq!(get(&env, &url).0, "<token>");
    let config = fs::read_to_string(env.coffer_home().join("config.toml")).expect("config");
    assert!(config.contains("ca_file"), "{config}");
}

#[test]
fn the_password_never_follows_a_redirect_to_another_origin() {
    // `localhost` and `127.0.0.1` are different origins on the same loopback.
    let elsewhere = TokenServer::start(USER, PASSWORD);
    let location = format!("http://localhost:{}/token", elsewhere.port);
    for status in [307, 308, 302] {
        let server = TokenServer::start(USER, PASSWORD);
        server.set(|b| b.redirect = Some((status, location.clone())));
        let env = env_with("");
        env.coffer(&["mode", &server.host(), "oauth2"]).success();
        let run = store(&env, &server.host(), USER, PASSWORD);
        run.hides(&[PASSWORD]);
        assert_eq!(elsewhere.requests(), 0, "{status}: the request went on");
        let said = format!("{}{}", run.stdout(), run.stderr());
        assert!(
            said.contains("redirected to another origin (http://localhost:"),
            "{status}: {said}"
        );
    }
    // The registry's settings can allow that origin.
    let server = TokenServer::start(USER, PASSWORD);
    server.set(|b| b.redirect = Some((307, location.clone())));
    let env = env_with("");
    env.coffer(&["mode", &server.host(), "oauth2"]).success();
    let config = env.coffer_home().join("config.toml");
    let text = fs::read_to_string(&config).expect("config");
    let allowed = format!(
        "[registries.\"{}\"]\nredirect_origins = [\"http://localhost:{}\"]\n",
        server.host(),
        elsewhere.port
    );
    let text = text.replacen(
        &format!("[registries.\"{}\"]\n", server.host()),
        &allowed,
        1,
    );
    fs::write(&config, text).expect("config");
    store(&env, &server.host(), USER, PASSWORD).success();
    assert_eq!(elsewhere.credential_exchanges("coffer"), 1);
}

#[test]
fn a_registry_answer_larger_than_256_kib_is_refused_not_cut() {
    // Every path answers 200 and 200 MiB: the store-time proof's first request already.
    let huge = crate::providers::fixture::HugeAnswers::start(200 << 20);
    let host = format!("127.0.0.1:{}", huge.port);
    let env = env_with("");
    env.coffer(&["mode", &host, "oauth2"]).success();
    let stored = store(&env, &host, USER, PASSWORD);
    assert!(
        stored.success().stderr().contains(&format!(
            "http://{host}/v2: the answer is larger than 256 KiB"
        )),
        "{}",
        stored.stderr()
    );
    assert!(huge.served() >= 1);
}

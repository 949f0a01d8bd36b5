//! Google against a local OAuth fixture that verifies the service account's RS256 assertion
//! with the test key's public half (the `rsa` crate, not the ring code that signed it), checks
//! its claims and the form fields, and hands out tokens with chosen lifetimes.

use std::time::Duration;

use base64ct::{Base64UrlUnpadded, Encoding};
use rsa::pkcs1v15::{Signature, VerifyingKey};
use rsa::pkcs8::{EncodePrivateKey, LineEnding};
use rsa::signature::Verifier;
use rsa::{RsaPrivateKey, RsaPublicKey};
use sha2::Sha256;

use super::fixture::{Answer, Fixture, Request};
use super::{get, private_file, push_and_inspect_through_coffer, quick_margins, unix_now};
use crate::harness::{Env, Registry};

const EMAIL: &str = "puller@project.iam.gserviceaccount.com";

/// A fresh RSA key pair: the private half as PKCS#8 PEM for the key file.
fn key_pair() -> (String, RsaPublicKey) {
    let private = RsaPrivateKey::new(&mut rsa::rand_core::OsRng, 2048).expect("rsa key");
    let pem = private
        .to_pkcs8_pem(LineEnding::LF)
        .expect("pem")
        .to_string();
    (pem, private.to_public_key())
}

fn service_account_json(pem: &str, token_uri: &str) -> String {
    serde_json::json!({
        "type": "service_account",
        "project_id": "project",
        "private_key_id": "key-1",
        "private_key": pem,
        "client_email": EMAIL,
        "client_id": "1234",
        "token_uri": token_uri,
    })
    .to_string()
}

/// Checks a JWT bearer grant: signature, header and claims.
fn check_assertion(request: &Request, public: &RsaPublicKey, audience: &str) -> Result<(), String> {
    let form = request.form();
    if form.get("grant_type").map(String::as_str)
        != Some("urn:ietf:params:oauth:grant-type:jwt-bearer")
    {
        return Err(format!("grant_type {:?}", form.get("grant_type")));
    }
    let assertion = form.get("assertion").ok_or("no assertion")?;
    let parts: Vec<&str> = assertion.split('.').collect();
    let [header, claims, signature] = parts[..] else {
        return Err("not a JWT".into());
    };
    let decode =
        |part: &str| Base64UrlUnpadded::decode_vec(part).map_err(|_| "not base64url".to_owned());
    let signature =
        Signature::try_from(decode(signature)?.as_slice()).map_err(|e| e.to_string())?;
    VerifyingKey::<Sha256>::new(public.clone())
        .verify(format!("{header}.{claims}").as_bytes(), &signature)
        .map_err(|_| "the signature does not verify with the test key".to_owned())?;
    let header: serde_json::Value =
        serde_json::from_slice(&decode(header)?).map_err(|e| e.to_string())?;
    if header["alg"] != "RS256" || header["kid"] != "key-1" {
        return Err(format!("header {header}"));
    }
    let claims: serde_json::Value =
        serde_json::from_slice(&decode(claims)?).map_err(|e| e.to_string())?;
    let now = unix_now();
    let iat = claims["iat"].as_u64().ok_or("iat")?;
    let exp = claims["exp"].as_u64().ok_or("exp")?;
    let expected = (
        claims["iss"] == EMAIL,
        claims["scope"] == "https://www.googleapis.com/auth/cloud-platform",
        claims["aud"] == audience,
        iat + 5 >= now && iat <= now,
        exp == iat + 3600,
    );
    if expected != (true, true, true, true, true) {
        return Err(format!("claims {claims}"));
    }
    Ok(())
}

/// A token endpoint at `/token` for a service account, with tokens living `lifetime` seconds.
fn service_account_fixture(public: RsaPublicKey, lifetime: u64) -> (Fixture, String) {
    let port_cell = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
    let audience = port_cell.clone();
    let mut minted = 0;
    let fixture = Fixture::start(move |request: &Request| -> Answer {
        if request.method != "POST" || request.path != "/token" {
            return Err(format!("{} {}", request.method, request.path));
        }
        check_assertion(request, &public, &audience.lock().expect("lock"))?;
        minted += 1;
        Ok((
            200,
            format!(
                r#"{{"access_token":"ya29.token-{minted}","expires_in":{lifetime},"token_type":"Bearer"}}"#
            ),
        ))
    });
    let token_uri = format!("{}/token", fixture.url());
    *port_cell.lock().expect("lock") = token_uri.clone();
    (fixture, token_uri)
}

#[test]
fn a_service_account_key_signs_a_verified_assertion_and_tokens_renew_by_expires_in() {
    let env = Env::new();
    quick_margins(&env);
    let (pem, public) = key_pair();
    let (fixture, token_uri) = service_account_fixture(public, 4);
    let key = private_file(&env, "key.json", &service_account_json(&pem, &token_uri));
    let host = "127.0.0.1:5999";
    let run = env.coffer(&["login", host, "--mode", "google", "--secret-file", &key]);
    // 4 s from the exchange; a second may pass before login prints it on a loaded machine.
    let said = run.success().stdout();
    assert!(
        ["4s", "3s"]
            .iter()
            .any(|left| said.contains(&format!("a token from google, expires in {left}"))),
        "{said}"
    );
    assert_eq!(
        get(&env, host),
        ("oauth2accesstoken".into(), "ya29.token-1".into())
    );
    assert_eq!(
        get(&env, host),
        ("oauth2accesstoken".into(), "ya29.token-1".into())
    );
    assert_eq!(fixture.count("/token"), 1);
    std::thread::sleep(Duration::from_millis(2100));
    assert_eq!(
        get(&env, host),
        ("oauth2accesstoken".into(), "ya29.token-2".into())
    );
    assert_eq!(fixture.count("/token"), 2);
    fixture.assert_clean();
    std::fs::remove_file(&key).expect("rm");
    assert!(
        env.files_containing("PRIVATE KEY").is_empty(),
        "the key is only in the vault"
    );
}

#[test]
fn an_authorized_user_refresh_token_is_traded_by_the_refresh_grant() {
    let env = Env::new();
    let fixture = Fixture::start(|request: &Request| -> Answer {
        let form = request.form();
        let field = |name: &str| form.get(name).map(String::as_str);
        let expected = (
            field("grant_type") == Some("refresh_token"),
            field("client_id") == Some("client.apps.googleusercontent.com"),
            field("client_secret") == Some("client-secret"),
            field("refresh_token") == Some("1//refresh"),
        );
        if expected != (true, true, true, true) || request.path != "/token" {
            return Err(format!("form {form:?}"));
        }
        Ok((
            200,
            r#"{"access_token":"ya29.user","expires_in":3599,"token_type":"Bearer"}"#.into(),
        ))
    });
    let json = serde_json::json!({
        "type": "authorized_user",
        "client_id": "client.apps.googleusercontent.com",
        "client_secret": "client-secret",
        "refresh_token": "1//refresh",
        "token_uri": format!("{}/token", fixture.url()),
    });
    let host = "127.0.0.1:5999";
    let run = crate::harness::Run::of(
        env.command(crate::harness::bin("coffer")).args([
            "login",
            host,
            "--mode",
            "google",
            "--password-stdin",
        ]),
        &json.to_string(),
    );
    run.success();
    let status = env.coffer(&["token", "status", "--json"]);
    let rows: serde_json::Value = serde_json::from_str(&status.success().stdout()).expect("json");
    let expires = rows[0]["expires_at"].as_u64().expect("expires_at");
    let issued = rows[0]["issued_at"].as_u64().expect("issued_at");
    assert_eq!(expires - issued, 3599, "the lifetime Google stated");
    assert_eq!(
        get(&env, host),
        ("oauth2accesstoken".into(), "ya29.user".into())
    );
    fixture.assert_clean();
}

#[test]
fn a_refused_key_is_reported_without_its_contents() {
    let env = Env::new();
    let fixture = Fixture::start(|_: &Request| -> Answer {
        Ok((
            400,
            r#"{"error":"invalid_grant","error_description":"Invalid JWT Signature."}"#.into(),
        ))
    });
    let (pem, _) = key_pair();
    let key = private_file(
        &env,
        "key.json",
        &service_account_json(&pem, &format!("{}/token", fixture.url())),
    );
    let run = env.coffer(&[
        "login",
        "127.0.0.1:5999",
        "--mode",
        "google",
        "--secret-file",
        &key,
    ]);
    assert_eq!(run.code(), Some(1));
    assert!(run.stderr().contains("invalid_grant"), "{}", run.stderr());
    assert!(!run.stderr().contains("PRIVATE KEY"));
    let get = env.helper("get", "127.0.0.1:5999");
    get.failure();
    assert!(
        !get.stdout().contains("PRIVATE KEY"),
        "the key file is never handed out"
    );
}

#[test]
fn end_to_end_skopeo_and_docker_use_the_google_access_token() {
    let registry = Registry::htpasswd("oauth2accesstoken", "ya29.token-1");
    let env = Env::new();
    let (pem, public) = key_pair();
    let (fixture, token_uri) = service_account_fixture(public, 3600);
    let key = private_file(&env, "key.json", &service_account_json(&pem, &token_uri));
    env.coffer(&[
        "login",
        &registry.host(),
        "--mode",
        "google",
        "--secret-file",
        &key,
    ])
    .success();
    push_and_inspect_through_coffer(&env, &registry);
    assert_eq!(fixture.count("/token"), 1);
    fixture.assert_clean();
}

#[test]
fn a_key_the_issuer_starts_refusing_shows_as_refused_and_is_not_tried_again() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};

    const WHOSE: &str = "ci-runner-7, team payments";
    let env = Env::new();
    quick_margins(&env);
    let (pem, public) = key_pair();
    let refusing = Arc::new(AtomicBool::new(false));
    let audience = Arc::new(std::sync::Mutex::new(String::new()));
    let fixture = {
        let (refusing, audience) = (refusing.clone(), audience.clone());
        let mut minted = 0;
        Fixture::start(move |request: &Request| -> Answer {
            if refusing.load(Ordering::SeqCst) {
                return Ok((
                    400,
                    r#"{"error":"invalid_grant","error_description":"Invalid JWT Signature."}"#
                        .into(),
                ));
            }
            check_assertion(request, &public, &audience.lock().expect("lock"))?;
            minted += 1;
            Ok((
                200,
                format!(r#"{{"access_token":"ya29.token-{minted}","expires_in":4}}"#),
            ))
        })
    };
    let token_uri = format!("{}/token", fixture.url());
    *audience.lock().expect("lock") = token_uri.clone();
    let key = private_file(&env, "key.json", &service_account_json(&pem, &token_uri));
    let host = "127.0.0.1:5999";
    let login = |env: &Env| {
        env.coffer(&[
            "login",
            host,
            "--mode",
            "google",
            "--secret-file",
            &key,
            "--description",
            WHOSE,
        ])
    };
    login(&env).success();

    // The key is revoked: the renewal at half-life is refused; the cached token still serves.
    refusing.store(true, Ordering::SeqCst);
    std::thread::sleep(Duration::from_millis(2100));
    assert_eq!(get(&env, host).1, "ya29.token-1");
    assert_eq!(fixture.count("/token"), 2);

    let status = env.coffer(&["token", "status"]);
    let text = status.success().stdout();
    assert!(text.contains("REFUSED since"), "{text}");
    assert!(
        text.contains(WHOSE),
        "the status names whose key it is: {text}"
    );
    let json = env.coffer(&["token", "status", "--json"]);
    let rows: serde_json::Value = serde_json::from_str(&json.success().stdout()).expect("json");
    assert!(rows[0]["refused_since"].as_u64().is_some(), "{rows}");
    assert_eq!(rows[0]["description"], WHOSE);
    let doctor = env.coffer(&["doctor"]);
    assert!(
        doctor.stdout().contains("REFUSED since") && doctor.stdout().contains(WHOSE),
        "{}",
        doctor.stdout()
    );

    // Past `retry_after`, and past the token's expiry: no further exchange, a clear error.
    std::thread::sleep(Duration::from_millis(2100));
    let run = env.helper("get", host);
    run.failure();
    // The helper's one line goes to stdout, where docker reads it.
    assert!(
        run.stdout().contains("refused") && run.stdout().contains("coffer login"),
        "{}",
        run.stdout()
    );
    env.coffer(&["refresh", "--all"]).failure();
    assert_eq!(
        fixture.count("/token"),
        2,
        "a refused key is never tried again"
    );

    // Replacing the credential starts over.
    refusing.store(false, Ordering::SeqCst);
    login(&env).success();
    assert_eq!(get(&env, host).1, "ya29.token-2");
    let status = env.coffer(&["token", "status"]);
    assert!(!status.success().stdout().contains("REFUSED"));
    fixture.assert_clean();
}

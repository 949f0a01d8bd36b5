//! Nodes log in with their own identity: a JWT from a file (signed by a key the test makes,
//! given to `jwt` auth as a static public key), AppRole with a response-wrapped secret-id, and
//! TLS certificate auth over HTTPS with a CA the test makes. Each gets the entry its policy
//! allows; bad identities give one clear line.

use std::time::Duration;

use base64ct::{Base64UrlUnpadded, Encoding};
use rsa::RsaPrivateKey;
use rsa::pkcs1v15::SigningKey;
use rsa::pkcs8::{EncodePublicKey, LineEnding};
use rsa::signature::{SignatureEncoding, Signer};
use serde_json::{Value, json};
use sha2::Sha256;

use super::{Bao, node};
use crate::harness::{Env, Run, TestCa, free_port};

const ISSUER: &str = "https://ci.example";

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs()
}

/// A policy `pull` that reads the registries, and the entry it reads.
fn registry_entry(bao: &Bao) {
    bao.ok(
        "PUT",
        "sys/policies/acl/pull",
        Some(json!({"policy": "path \"secret/data/coffer/registries/*\" { capabilities = [\"read\"] }"})),
    );
    bao.ok(
        "POST",
        "secret/data/coffer/registries/registry.local:5000",
        Some(json!({"data": {"username": "ci", "secret": "fleet-pw"}})),
    );
}

fn pulls(env: &Env) -> Run {
    Run::of(
        env.command(crate::harness::bin("docker-credential-coffer"))
            .arg("get"),
        "registry.local:5000",
    )
}

fn one_clear_line(run: &Run, says: &str) {
    run.failure();
    let text = run.stdout();
    assert!(
        text.contains(says) && text.trim().lines().count() == 1,
        "expected {says:?} in: {text}"
    );
}

struct Signer256(RsaPrivateKey);

impl Signer256 {
    fn new() -> Signer256 {
        Signer256(RsaPrivateKey::new(&mut rsa::rand_core::OsRng, 2048).expect("rsa key"))
    }

    fn public_pem(&self) -> String {
        self.0
            .to_public_key()
            .to_public_key_pem(LineEnding::LF)
            .expect("pem")
    }

    fn sign(&self, claims: &Value) -> String {
        let input = format!(
            "{}.{}",
            Base64UrlUnpadded::encode_string(
                json!({"alg": "RS256", "typ": "JWT"}).to_string().as_bytes()
            ),
            Base64UrlUnpadded::encode_string(claims.to_string().as_bytes())
        );
        let signature = SigningKey::<Sha256>::new(self.0.clone()).sign(input.as_bytes());
        format!(
            "{input}.{}",
            Base64UrlUnpadded::encode_string(&signature.to_bytes())
        )
    }

    /// A CI job's (or a projected service account's) token for `aud`, valid for `lifetime`.
    fn token(&self, aud: &str, lifetime: i64) -> String {
        let now = now() as i64;
        self.sign(&json!({
            "iss": ISSUER, "aud": aud, "sub": "system:serviceaccount:ci:runner",
            "iat": now - 5, "nbf": now - 5, "exp": now + lifetime,
        }))
    }
}

#[test]
fn a_node_logs_in_with_a_jwt_from_a_file() {
    let bao = Bao::dev();
    registry_entry(&bao);
    let signer = Signer256::new();
    bao.ok("POST", "sys/auth/jwt", Some(json!({"type": "jwt"})));
    bao.ok(
        "POST",
        "auth/jwt/config",
        Some(json!({"jwt_validation_pubkeys": [signer.public_pem()], "bound_issuer": ISSUER})),
    );
    bao.ok(
        "POST",
        "auth/jwt/role/pull",
        Some(json!({
            "role_type": "jwt", "user_claim": "sub", "bound_audiences": ["coffer"],
            "token_policies": ["pull"], "token_ttl": "10m",
        })),
    );
    let node_with = |jwt: &str| {
        let env = node(&format!(
            "addresses = [\"{}\"]\n[openbao.auth]\nmethod = \"jwt\"\nrole = \"pull\"\njwt_file = \"JWT\"\n",
            bao.addr()
        ));
        let file = env.root().join("jwt");
        env.write_private(&file, jwt);
        let config = env.coffer_home().join("config.toml");
        let text = std::fs::read_to_string(&config)
            .expect("config")
            .replace("JWT", &file.display().to_string());
        env.write_private(&config, &text);
        env
    };

    let good = node_with(&signer.token("coffer", 600));
    let run = pulls(&good);
    run.success();
    assert!(run.stdout().contains("fleet-pw"), "{}", run.stdout());
    run.hides(&["eyJ"]);
    let status = good.coffer(&["status"]);
    status.success();
    let shown = status.stdout();
    assert!(
        shown.contains("jwt") && shown.contains("role pull") && shown.contains(&bao.addr()),
        "{shown}"
    );

    one_clear_line(
        &pulls(&node_with(&signer.token("coffer", -60))),
        "holds a JWT that expired at",
    );
    one_clear_line(&pulls(&node_with("not.a-jwt")), "does not hold a JWT");
    one_clear_line(
        &pulls(&node_with(&signer.token("someone-else", 600))),
        "refused the jwt login",
    );
    let stranger = Signer256::new();
    one_clear_line(
        &pulls(&node_with(&stranger.token("coffer", 600))),
        "refused the jwt login",
    );
}

#[test]
fn a_node_logs_in_with_a_wrapped_approle_secret_id_and_keeps_it_in_memory() {
    let bao = Bao::dev();
    registry_entry(&bao);
    bao.ok("POST", "sys/auth/approle", Some(json!({"type": "approle"})));
    // Short tokens: the node must log in again within the test, with the secret-id it kept.
    bao.ok(
        "POST",
        "auth/approle/role/pull",
        Some(json!({"token_policies": ["pull"], "token_ttl": "3s", "token_max_ttl": "3s"})),
    );
    let role_id = bao.ok("GET", "auth/approle/role/pull/role-id", None)["data"]["role_id"]
        .as_str()
        .expect("role id")
        .to_owned();
    let wrapped = |bao: &Bao| -> String {
        let client = reqwest::blocking::Client::new();
        let text = client
            .post(format!(
                "{}/v1/auth/approle/role/pull/secret-id",
                bao.addr()
            ))
            .header("X-Vault-Token", "root")
            .header("X-Vault-Wrap-TTL", "120s")
            .send()
            .and_then(|r| r.text())
            .expect("wrapped secret-id");
        let answer: Value = serde_json::from_str(&text).expect("json");
        answer["wrap_info"]["token"]
            .as_str()
            .expect("wrapping token")
            .to_owned()
    };
    let node_with = |wrapping: &str| {
        let env = node(&format!(
            "addresses = [\"{}\"]\ncache_for = \"1s\"\nstale_for = \"1s\"\n[openbao.auth]\nmethod = \"approle\"\nrole_id = \"{role_id}\"\nsecret_id_file = \"SECRET\"\nsecret_id_wrapped = true\n",
            bao.addr()
        ));
        let file = env.root().join("secret-id");
        env.write_private(&file, wrapping);
        let config = env.coffer_home().join("config.toml");
        let text = std::fs::read_to_string(&config)
            .expect("config")
            .replace("SECRET", &file.display().to_string());
        env.write_private(&config, &text);
        env
    };
    let token = wrapped(&bao);
    let node1 = node_with(&token);
    let run = pulls(&node1);
    run.success();
    assert!(run.stdout().contains("fleet-pw"), "{}", run.stdout());
    // Past the 3 s token: a new login, with the secret-id kept in memory (the wrapping token
    // in the file is spent).
    std::thread::sleep(Duration::from_millis(3500));
    let again = pulls(&node1);
    again.success();
    assert!(again.stdout().contains("fleet-pw"), "{}", again.stdout());
    assert!(
        node1.files_containing("fleet-pw").is_empty(),
        "nothing secret on disk"
    );

    // Whoever unwraps a spent wrapping token learns it was taken.
    one_clear_line(&pulls(&node_with(&token)), "was used already");
}

#[test]
fn a_node_logs_in_with_a_tls_certificate() {
    let ca = TestCa::new();
    let dir = tempfile::tempdir().expect("dir");
    let server = ca.server(&["127.0.0.1"]);
    let write = |name: &str, text: &str| {
        let path = dir.path().join(name);
        std::fs::write(&path, text).expect("write");
        path
    };
    let (cert, key, ca_file) = (
        write("server.pem", &server.pem),
        write("server.key", &server.key_pem),
        write("ca.pem", &ca.pem()),
    );
    let client = ca.server(&["node-7.fleet.example"]);
    let (client_cert, client_key) = (
        write("client.pem", &client.pem),
        write("client.key", &client.key_pem),
    );
    let (port, cluster) = (free_port(), free_port());
    let listener = write(
        "tls.hcl",
        &format!(
            "listener \"tcp\" {{\n  address = \"127.0.0.1:{port}\"\n  cluster_address = \"127.0.0.1:{cluster}\"\n  tls_cert_file = \"{}\"\n  tls_key_file = \"{}\"\n}}\n",
            cert.display(),
            key.display()
        ),
    );
    let bao = Bao::dev_with_config(&listener);
    registry_entry(&bao);
    bao.ok("POST", "sys/auth/cert", Some(json!({"type": "cert"})));
    bao.ok(
        "POST",
        "auth/cert/certs/fleet",
        Some(json!({"certificate": ca.pem(), "token_policies": ["pull"], "token_ttl": "10m"})),
    );
    let env = node(&format!(
        "addresses = [\"https://127.0.0.1:{port}\"]\nca_cert = \"{}\"\n[openbao.auth]\nmethod = \"cert\"\nname = \"fleet\"\nclient_cert = \"{}\"\nclient_key = \"{}\"\n",
        ca_file.display(),
        client_cert.display(),
        client_key.display()
    ));
    let run = pulls(&env);
    run.success();
    assert!(run.stdout().contains("fleet-pw"), "{}", run.stdout());

    // The server's certificate is checked against ca_cert, and only it.
    let other = TestCa::new();
    let other_file = write("other.pem", &other.pem());
    let env = node(&format!(
        "addresses = [\"https://127.0.0.1:{port}\"]\nca_cert = \"{}\"\n[openbao.auth]\nmethod = \"cert\"\nclient_cert = \"{}\"\nclient_key = \"{}\"\n",
        other_file.display(),
        client_cert.display(),
        client_key.display()
    ));
    one_clear_line(&pulls(&env), "no OpenBao server answered");
}

//! KEP-4412 against a real OpenBao: the kubelet provider hands a pod's service-account token
//! (signed by a key the test makes, as a cluster's issuer would) to OpenBao, which logs the pod in
//! with the role of its namespace; the pod reads only the registry entries its namespace's policy
//! allows, and the container runtime (skopeo) pulls with what it got from a real registry.
//!
//! `jwt` auth checks the token against the key given to it; `kubernetes` auth, given the same
//! key, also asks the cluster's TokenReview, which a fixture answers here the way the API server
//! does (verifying the token against the issuer's JWKS, and refusing a deleted service account).
//! The same `kubernetes` auth logs a node in with its own service-account token.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};

use serde_json::{Value, json};

use super::{Bao, node};
use crate::harness::{Env, Registry, Run, TestCa, bin, require};
use crate::providers::fixture::{Fixture, Request};
use crate::providers::service_accounts::{
    Issuer, accepted, provide, request, runtime_uses, verify,
};

/// Two registries, each readable by one namespace's policy.
struct Fleet {
    bao: Bao,
    issuer: Issuer,
    registry: Registry,
    other: String,
}

impl Fleet {
    fn start() -> Fleet {
        let bao = Bao::dev();
        let issuer = Issuer::start();
        let registry = Registry::htpasswd("team-apps", "apps-pw-31f9");
        let other = "registry.jobs.example".to_owned();
        for (namespace, host, user, secret) in [
            ("apps", registry.host(), "team-apps", "apps-pw-31f9"),
            ("jobs", other.clone(), "team-jobs", "jobs-pw-77c2"),
        ] {
            bao.ok(
                "PUT",
                &format!("sys/policies/acl/{namespace}"),
                Some(json!({"policy": format!(
                    "path \"secret/data/coffer/registries/{host}\" {{ capabilities = [\"read\"] }}"
                )})),
            );
            bao.ok(
                "POST",
                &format!("secret/data/coffer/registries/{host}"),
                Some(json!({"data": {"username": user, "secret": secret}})),
            );
        }
        Fleet {
            bao,
            issuer,
            registry,
            other,
        }
    }

    /// A node whose kubelet trades pods' tokens for both registries through OpenBao.
    fn kubelet_node(&self, method: &str) -> Env {
        let mut section = format!(
            "addresses = [\"{}\"]\ncache_for = \"5m\"\n\n[kubelet]\naudience = \"coffer\"\nfallback = \"none\"\n",
            self.bao.addr()
        );
        for host in [self.registry.host(), self.other.clone()] {
            section.push_str(&format!(
                "\n[kubelet.registries.\"{host}\"]\nexchange = \"openbao\"\nmethod = \"{method}\"\nrole = \"pull-{{namespace}}\"\n"
            ));
        }
        node(&section)
    }

    /// The provider's answer for `image` and a pod of `namespace/name` whose token lives
    /// `lifetime` seconds: (exit code, response, stderr).
    fn pull(
        &self,
        env: &Env,
        image: &str,
        namespace: &str,
        name: &str,
        lifetime: u64,
    ) -> (Option<i32>, Value, String) {
        let token = self.issuer.token(namespace, name, lifetime);
        provide(env, &request(image, Some(&token), json!({})))
    }

    /// Tokens of the server's: only the root token is left when every login was revoked.
    fn tokens_alive(&self) -> usize {
        let (_, answer) = self.bao.api("LIST", "auth/token/accessors", None);
        answer["data"]["keys"].as_array().map_or(0, Vec::len)
    }
}

fn cache_seconds(answer: &Value) -> u64 {
    answer["cacheDuration"]
        .as_str()
        .and_then(|d| d.strip_suffix('s'))
        .and_then(|d| d.parse().ok())
        .expect("cacheDuration in seconds")
}

#[test]
fn each_namespace_pulls_with_its_pods_own_token_only_what_its_policy_allows() {
    require("skopeo");
    let fleet = Fleet::start();
    let bao = &fleet.bao;
    bao.ok("POST", "sys/auth/jwt", Some(json!({"type": "jwt"})));
    bao.ok(
        "POST",
        "auth/jwt/config",
        Some(json!({
            "jwt_validation_pubkeys": [fleet.issuer.public_pem()],
            "bound_issuer": fleet.issuer.fixture.url(),
        })),
    );
    for namespace in ["apps", "jobs"] {
        bao.ok(
            "POST",
            &format!("auth/jwt/role/pull-{namespace}"),
            Some(json!({
                "role_type": "jwt", "user_claim": "sub", "bound_audiences": ["coffer"],
                "bound_claims_type": "glob",
                "bound_claims": {"sub": format!("system:serviceaccount:{namespace}:*")},
                "token_policies": [namespace], "token_ttl": "10m",
            })),
        );
    }
    let env = fleet.kubelet_node("jwt");
    let host = fleet.registry.host();
    let image = format!("{host}/team/app:1");

    // A pod of `apps` whose token lives 2 minutes: the entry its policy reads, cached no longer
    // than the token lives (cache_for is 5 minutes).
    let (code, answer, stderr) = fleet.pull(&env, &image, "apps", "web", 120);
    assert_eq!(code, Some(0), "{stderr}");
    assert_eq!(answer["auth"][&host]["username"], "team-apps");
    assert_eq!(answer["auth"][&host]["password"], "apps-pw-31f9");
    let cached = cache_seconds(&answer);
    assert!(
        (110..=120).contains(&cached),
        "bounded by the pod's token: {cached}"
    );
    assert!(
        stderr.contains("apps/web") && stderr.contains("openbao"),
        "{stderr}"
    );
    assert!(accepted(&fleet.registry, "team-apps", "apps-pw-31f9"));
    runtime_uses(&env, &image, &answer, &host);

    // A pod of `jobs` reads its own registry's entry, and is denied the other's.
    let other_image = format!("{}/batch/job:2", fleet.other);
    let (code, answer, stderr) = fleet.pull(&env, &other_image, "jobs", "batch", 600);
    assert_eq!(code, Some(0), "{stderr}");
    assert_eq!(answer["auth"][&fleet.other]["password"], "jobs-pw-77c2");
    assert_eq!(cache_seconds(&answer), 300, "bounded by cache_for");
    let (code, answer, stderr) = fleet.pull(&env, &image, "jobs", "batch", 600);
    assert_eq!(code, Some(1), "{stderr}");
    assert_eq!(answer["auth"], json!({}));
    assert_eq!(answer["cacheDuration"], "0s", "a refusal is not cached");
    assert!(
        stderr.contains("denied") && stderr.contains("jobs/batch") && !stderr.contains("apps-pw"),
        "{stderr}"
    );

    // A namespace with no role, and a token no cluster key signed, are refused by OpenBao.
    let (code, _, stderr) = fleet.pull(&env, &image, "other", "web", 600);
    assert_eq!(code, Some(1));
    assert!(
        stderr.contains("refused the jwt login") && stderr.contains("pull-other"),
        "{stderr}"
    );
    let stranger = Issuer::start();
    let forged = stranger.token("apps", "web", 600);
    let (code, _, stderr) = provide(&env, &request(&image, Some(&forged), json!({})));
    assert_eq!(code, Some(1));
    assert!(stderr.contains("refused the jwt login"), "{stderr}");

    // A password changed in KV reaches the next pod that asks: nothing is cached on the node.
    bao.ok(
        "POST",
        &format!("secret/data/coffer/registries/{host}"),
        Some(json!({"data": {"username": "team-apps", "secret": "apps-pw-rotated"}})),
    );
    let (_, answer, _) = fleet.pull(&env, &image, "apps", "web", 600);
    assert_eq!(answer["auth"][&host]["password"], "apps-pw-rotated");

    assert_eq!(fleet.tokens_alive(), 1, "every pod login was revoked");
    assert!(
        env.files_containing("apps-pw").is_empty(),
        "nothing on disk"
    );
    let log = std::fs::read_to_string(env.coffer_home().join("access.log")).expect("log");
    assert!(log.contains(&host) && log.contains("\"failed\""), "{log}");
}

/// The cluster's TokenReview, as the API server answers it: the token verified against the
/// issuer's JWKS, its service account looked up (`deleted` ones are gone).
fn token_review(issuer: String, deleted: Arc<Mutex<BTreeSet<String>>>) -> Fixture {
    Fixture::start(move |request: &Request| {
        if request.method != "POST"
            || request.route() != "/apis/authentication.k8s.io/v1/tokenreviews"
        {
            return Err(format!("TokenReview: {} {}", request.method, request.path));
        }
        if request.header("Authorization") != Some("Bearer reviewer-token") {
            return Err("TokenReview without the reviewer's token".to_owned());
        }
        let review: Value = serde_json::from_slice(&request.body).map_err(|e| e.to_string())?;
        let token = review["spec"]["token"].as_str().ok_or("no spec.token")?;
        let claims = verify(&issuer, token)?;
        let sub = claims["sub"].as_str().ok_or("no sub")?.to_owned();
        let status = if deleted.lock().expect("lock").contains(&sub) {
            json!({"authenticated": false, "error": "service account deleted"})
        } else {
            json!({
                "authenticated": true,
                "user": {"username": sub, "uid": claims["kubernetes.io"]["serviceaccount"]["uid"]},
                "audiences": claims["aud"],
            })
        };
        Ok((
            201,
            json!({"apiVersion": "authentication.k8s.io/v1", "kind": "TokenReview", "status": status})
                .to_string(),
        ))
    })
}

#[test]
fn kubernetes_auth_logs_in_a_node_and_a_pod_and_a_deleted_service_account_stops_at_once() {
    let fleet = Fleet::start();
    let bao = &fleet.bao;
    let deleted = Arc::new(Mutex::new(BTreeSet::new()));
    let review = token_review(fleet.issuer.fixture.url(), deleted.clone());
    bao.ok(
        "POST",
        "sys/auth/kubernetes",
        Some(json!({"type": "kubernetes"})),
    );
    bao.ok(
        "POST",
        "auth/kubernetes/config",
        Some(json!({
            "kubernetes_host": review.url(),
            "pem_keys": [fleet.issuer.public_pem()],
            "token_reviewer_jwt": "reviewer-token",
            // Not in a pod: no local CA or token to fall back on (the API is plain http here).
            "disable_local_ca_jwt": true,
            "kubernetes_ca_cert": TestCa::new().pem(),
        })),
    );
    bao.ok(
        "POST",
        "auth/kubernetes/role/pull-apps",
        Some(json!({
            "bound_service_account_names": ["*"], "bound_service_account_namespaces": ["apps"],
            "audience": "coffer", "token_policies": ["apps"], "token_ttl": "10m",
        })),
    );
    let host = fleet.registry.host();

    // A node whose only secret is its own service-account token, in a file.
    let node_env = node(&format!(
        "addresses = [\"{}\"]\n[openbao.auth]\nmethod = \"kubernetes\"\nrole = \"pull-apps\"\njwt_file = \"JWT\"\n",
        bao.addr()
    ));
    let jwt = node_env.root().join("sa-token");
    node_env.write_private(&jwt, &fleet.issuer.token("apps", "node-agent", 600));
    let config = node_env.coffer_home().join("config.toml");
    let text = std::fs::read_to_string(&config).expect("config");
    node_env.write_private(&config, &text.replace("JWT", &jwt.display().to_string()));
    let run = Run::of(
        node_env.command(bin("docker-credential-coffer")).arg("get"),
        &host,
    );
    run.success();
    assert!(run.stdout().contains("apps-pw-31f9"), "{}", run.stdout());
    let status = node_env.coffer(&["status"]);
    assert!(
        status.success().stdout().contains("kubernetes"),
        "{}",
        status.stdout()
    );

    // A pod of `apps` through the kubelet, then its service account deleted: refused at once.
    let env = fleet.kubelet_node("kubernetes");
    let image = format!("{host}/team/app:1");
    let (code, answer, stderr) = fleet.pull(&env, &image, "apps", "web", 600);
    assert_eq!(code, Some(0), "{stderr}");
    assert_eq!(answer["auth"][&host]["password"], "apps-pw-31f9");
    deleted
        .lock()
        .expect("lock")
        .insert("system:serviceaccount:apps:web".to_owned());
    let (code, answer, stderr) = fleet.pull(&env, &image, "apps", "web", 600);
    assert_eq!(code, Some(1), "{stderr}");
    assert_eq!(answer["auth"], json!({}));
    assert!(
        stderr.contains("refused the kubernetes login")
            && stderr.contains("apps/web")
            && stderr.contains("revoked"),
        "{stderr}"
    );
    // Another namespace is not bound to the role.
    let (code, _, stderr) = fleet.pull(&env, &image, "jobs", "batch", 600);
    assert_eq!(code, Some(1));
    assert!(stderr.contains("refused the kubernetes login"), "{stderr}");
    assert!(review.count("/apis/authentication.k8s.io/v1/tokenreviews") >= 3);
    review.assert_clean();
}

//! The kubelet image credential provider (`credentialprovider.kubelet.k8s.io/v1`): the kubelet
//! runs `coffer kubelet-credential-provider` with a `CredentialProviderRequest` on stdin and
//! reads a `CredentialProviderResponse` from stdout, so nodes pull private images with no
//! secret in any manifest.

use std::collections::BTreeMap;
use std::io::Read;

use secrecy::ExposeSecret;
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use crate::credentials::Credentials;
use crate::error::{Error, Result};
use crate::export::IDENTITY_TOKEN_USER;
use crate::server_url::ServerUrl;

const API_VERSIONS: [&str; 2] = [
    "credentialprovider.kubelet.k8s.io/v1",
    "credentialprovider.kubelet.k8s.io/v1beta1",
];
/// How long a kubelet may cache credentials that do not expire, so a rotation reaches nodes soon;
/// a token is cached no longer than it lives.
pub const BASIC_CACHE_SECONDS: u64 = 600;

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Request {
    api_version: String,
    kind: String,
    image: String,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct Response<'a> {
    api_version: &'a str,
    kind: &'static str,
    cache_key_type: &'static str,
    cache_duration: String,
    auth: BTreeMap<String, AuthConfig<'a>>,
}

#[derive(Debug, Serialize)]
struct AuthConfig<'a> {
    username: &'a str,
    password: &'a str,
}

/// Answers one request. An image coffer has no credentials for gets an empty `auth`, which
/// tells the kubelet to pull anonymously.
pub fn answer(
    input: impl Read,
    credentials: impl FnOnce() -> Result<Credentials>,
) -> Result<Zeroizing<Vec<u8>>> {
    let mut text = Zeroizing::new(String::new());
    input
        .take(crate::protocol::MAX_INPUT)
        .read_to_string(&mut text)
        .map_err(|e| bad(format!("cannot read the request: {e}")))?;
    let request: Request = serde_json::from_str(&text).map_err(|e| {
        bad(format!(
            "not a CredentialProviderRequest ({:?} error at line {}, column {})",
            e.classify(),
            e.line(),
            e.column()
        ))
    })?;
    let api_version = API_VERSIONS
        .into_iter()
        .find(|v| *v == request.api_version)
        .ok_or_else(|| {
            bad(format!(
                "unsupported apiVersion {:?}; expected {}",
                request.api_version, API_VERSIONS[0]
            ))
        })?;
    if request.kind != "CredentialProviderRequest" {
        return Err(bad(format!(
            "kind is {:?}, expected CredentialProviderRequest",
            request.kind
        )));
    }
    let (registry, repository) = split_image(&request.image)?;
    let credentials = credentials()?;
    let entry = credentials.get(&format!("{registry}/{repository}"))?;
    let mut response = Response {
        api_version,
        kind: "CredentialProviderResponse",
        cache_key_type: "Registry",
        cache_duration: format!("{BASIC_CACHE_SECONDS}s"),
        auth: BTreeMap::new(),
    };
    // Kubelets pass a username and password on: an identity token is of no use to them.
    let entry = entry.filter(|e| e.username != IDENTITY_TOKEN_USER);
    if let Some(entry) = &entry {
        if let Some(expires_at) = entry.expires_at() {
            let left = expires_at.saturating_sub(crate::store::now());
            response.cache_duration = format!("{}s", left.min(BASIC_CACHE_SECONDS));
        }
        // An entry kept for one repository answers for that image only.
        let stored = ServerUrl::parse(&entry.server_url)?;
        let key = if stored.registry_path() == registry {
            registry
        } else {
            response.cache_key_type = "Image";
            stored.registry_path()
        };
        response.auth.insert(
            key,
            AuthConfig {
                username: &entry.username,
                password: entry.secret.expose_secret(),
            },
        );
    }
    let mut out = Zeroizing::new(
        serde_json::to_vec(&response)
            .map_err(|e| bad(format!("cannot encode the response: {e}")))?,
    );
    out.push(b'\n');
    Ok(out)
}

/// `[registry/]repository[:tag][@digest]` → (registry as kubelets match it, repository).
fn split_image(image: &str) -> Result<(String, String)> {
    let name = image.split('@').next().unwrap_or_default();
    let name = match name.rsplit_once(':') {
        Some((before, tag)) if !tag.contains('/') => before,
        _ => name,
    };
    if name.is_empty() || name.starts_with('/') || name.ends_with('/') {
        return Err(bad(format!("cannot read an image name from {image:?}")));
    }
    let (first, rest) = name.split_once('/').unwrap_or(("", name));
    let (registry, repository) = if first.contains(['.', ':']) || first == "localhost" {
        (first.to_owned(), rest.to_owned())
    } else if first.is_empty() {
        ("docker.io".to_owned(), format!("library/{rest}"))
    } else {
        ("docker.io".to_owned(), name.to_owned())
    };
    let registry = ServerUrl::parse(&registry)?.registry_path();
    Ok((registry, repository))
}

fn bad(message: String) -> Error {
    Error::Unsupported(format!("kubelet credential provider: {message}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn image_names() {
        let table = [
            ("nginx", ("docker.io", "library/nginx")),
            ("nginx:1.27", ("docker.io", "library/nginx")),
            ("bitnami/redis:7", ("docker.io", "bitnami/redis")),
            (
                "docker.io/library/alpine@sha256:abcd",
                ("docker.io", "library/alpine"),
            ),
            ("127.0.0.1:5000/team/app:v1", ("127.0.0.1:5000", "team/app")),
            ("localhost/app", ("localhost", "app")),
            (
                "ghcr.io/org/image:latest@sha256:ff",
                ("ghcr.io", "org/image"),
            ),
            ("registry-1.docker.io/x/y", ("docker.io", "x/y")),
        ];
        for (image, (registry, repository)) in table {
            assert_eq!(
                split_image(image).expect(image),
                (registry.to_owned(), repository.to_owned()),
                "{image}"
            );
        }
        assert!(split_image("").is_err());
        assert!(split_image("ghcr.io/").is_err());
    }
}

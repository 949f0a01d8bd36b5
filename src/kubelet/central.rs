//! `exchange = "openbao"`: the pod's service-account token logs in to the central store
//! (the node's `[openbao]` servers) for that pod, with the role its namespace maps to, and reads
//! the registry's entry with that login. So each namespace reads only the registry credentials
//! its OpenBao policy allows, and the node's own identity plays no part. The login's token is
//! revoked once the entry is read; nothing is cached here: the kubelet caches the answer for
//! no longer than the pod's token lives, nor than `[openbao] cache_for`, so a rotation or a
//! revocation reaches the pod within that time.

use secrecy::SecretString;

use super::service_account::ServiceAccountToken;
use super::settings::{PodExchange, PodLogin};
use crate::config::Config;
use crate::server_url::ServerUrl;
use crate::store::openbao::auth::JwtLogin;
use crate::store::openbao::read_with_jwt;

/// What the pod may pull with, and for how long the kubelet may keep it.
#[derive(Debug)]
pub struct PodCredential {
    /// The server URL of the entry that answered (the registry, or a repository under it).
    pub server_url: String,
    pub username: String,
    pub secret: SecretString,
    pub cache_seconds: u64,
}

/// The entry for `image_url` (`registry/repository`) that the pod's login may read; `Ok(None)`:
/// its policy lets it read, and nothing is stored for this registry.
pub fn read(
    image_url: &str,
    settings: &PodExchange,
    token: &ServiceAccountToken,
    config: &Config,
    now: u64,
) -> Result<Option<PodCredential>, String> {
    let login = PodLogin::from_options(&settings.options).map_err(|e| e.to_string())?;
    let keys = ServerUrl::parse(image_url)
        .map_err(|e| e.to_string())?
        .lookup_keys();
    let central = config.openbao.resolved();
    let read = read_with_jwt(
        &central,
        &JwtLogin {
            method: login.method.name(),
            mount: login.mount.as_deref(),
            role: login.role_for(&token.namespace, &token.name),
            jwt: token.secret(),
            who: format!("service account {}", token.who()),
        },
        &keys,
    )
    .map_err(|e| e.to_string())?;
    Ok(read.entry.map(|entry| PodCredential {
        server_url: entry.server_url,
        username: entry.username,
        secret: entry.secret,
        cache_seconds: central
            .cache_for
            .as_secs()
            .min(token.expires_at.saturating_sub(now)),
    }))
}

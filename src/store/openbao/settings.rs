//! The `[openbao]` section of `config.toml`, and the ecosystem's environment variables over it:
//!
//! ```toml
//! backend = "openbao"
//!
//! [openbao]                           # every key optional but an address; these are the defaults
//! addresses = ["https://bao-1.internal:8200", "https://bao-2.internal:8200"]
//! ca_cert = "/etc/coffer/bao-ca.pem"  # BAO_CACERT / VAULT_CACERT
//! ca_path = "/etc/coffer/bao-cas"     # BAO_CAPATH / VAULT_CAPATH: a folder of PEM files
//! namespace = "team-a"                # BAO_NAMESPACE / VAULT_NAMESPACE
//! mount = "secret"                    # the KV mount; v1 or v2 is read from the mount
//! prefix = "coffer/registries"        # one KV entry per registry under it
//! allow_http = false                  # plain http:// to a host other than loopback
//! timeout = "2s"                      # each request, connect to last byte
//! cache_for = "30s"                   # an entry read is served without asking again
//! stale_for = "10m"                   # served from the cache while no server answers
//!
//! [openbao.auth]                      # how this node logs in (default: a token)
//! method = "jwt"                      # token | jwt | kubernetes | approle | cert
//! role = "registry-pull"
//! jwt_file = "/var/run/secrets/tokens/bao"
//! ```
//!
//! `BAO_ADDR` (or `VAULT_ADDR`) overrides `addresses` and may list several, comma-separated.
//! No secret is written here: tokens and secret-ids come from files or the environment.

use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::auth::AuthSettings;

/// The `[openbao]` section as written.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct OpenBaoSettings {
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub addresses: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ca_cert: Option<PathBuf>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ca_path: Option<PathBuf>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    pub mount: String,
    pub prefix: String,
    pub allow_http: bool,
    #[serde(with = "crate::token::settings::human")]
    pub timeout: Duration,
    #[serde(with = "crate::token::settings::human")]
    pub cache_for: Duration,
    #[serde(with = "crate::token::settings::human")]
    pub stale_for: Duration,
    pub auth: AuthSettings,
}

impl Default for OpenBaoSettings {
    fn default() -> Self {
        OpenBaoSettings {
            addresses: Vec::new(),
            ca_cert: None,
            ca_path: None,
            namespace: None,
            mount: "secret".to_owned(),
            prefix: "coffer/registries".to_owned(),
            allow_http: false,
            timeout: Duration::from_secs(2),
            cache_for: Duration::from_secs(30),
            stale_for: Duration::from_secs(600),
            auth: AuthSettings::default(),
        }
    }
}

impl OpenBaoSettings {
    pub fn is_default(&self) -> bool {
        *self == OpenBaoSettings::default()
    }

    /// The settings in force: the environment's `BAO_*` (or `VAULT_*`) over the file's.
    pub fn resolved(&self) -> OpenBaoSettings {
        self.resolved_with(|name| std::env::var(name).ok().filter(|v| !v.is_empty()))
    }

    fn resolved_with(&self, var: impl Fn(&str) -> Option<String>) -> OpenBaoSettings {
        let either = |suffix: &str| {
            var(&format!("BAO_{suffix}")).or_else(|| var(&format!("VAULT_{suffix}")))
        };
        let mut settings = self.clone();
        if let Some(addresses) = either("ADDR") {
            settings.addresses = addresses
                .split(',')
                .map(str::trim)
                .filter(|a| !a.is_empty())
                .map(str::to_owned)
                .collect();
        }
        if let Some(path) = either("CACERT") {
            settings.ca_cert = Some(path.into());
        }
        if let Some(path) = either("CAPATH") {
            settings.ca_path = Some(path.into());
        }
        if let Some(namespace) = either("NAMESPACE") {
            settings.namespace = Some(namespace);
        }
        settings.auth = self.auth.resolved_with(&either);
        settings
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bao_variables_win_over_vault_ones_and_over_the_file() {
        let file: OpenBaoSettings = toml::from_str(
            "addresses = [\"https://a:8200\"]\nnamespace = \"file\"\n[auth]\nmethod = \"token\"\n",
        )
        .expect("parse");
        let env = |name: &str| match name {
            "BAO_ADDR" => Some("https://b:8200, https://c:8200".to_owned()),
            "VAULT_ADDR" => Some("https://ignored:8200".to_owned()),
            "VAULT_NAMESPACE" => Some("env".to_owned()),
            _ => None,
        };
        let resolved = file.resolved_with(env);
        assert_eq!(resolved.addresses, ["https://b:8200", "https://c:8200"]);
        assert_eq!(resolved.namespace.as_deref(), Some("env"));
        assert_eq!(file.resolved_with(|_| None), file);
    }

    #[test]
    fn durations_and_unknown_keys() {
        let settings: OpenBaoSettings =
            toml::from_str("cache_for = \"5s\"\nstale_for = \"1h\"\n").expect("parse");
        assert_eq!(settings.cache_for, Duration::from_secs(5));
        assert_eq!(settings.stale_for, Duration::from_secs(3600));
        assert!(toml::from_str::<OpenBaoSettings>("adress = \"x\"\n").is_err());
    }
}

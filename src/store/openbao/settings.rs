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
//!
//! These are plain data (config.toml embeds them); logging in with them is
//! [`super::auth`]'s work.

use std::path::PathBuf;
use std::time::Duration;

use reqwest::Url;
use serde::{Deserialize, Serialize};

use crate::token::http::permitted;
use crate::token::settings::SettingsError;

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

    /// The file's settings checked as config.toml is read: each address, the mount and the
    /// prefix (the environment's are checked when they are used).
    pub fn check(&self) -> Result<(), SettingsError> {
        for text in &self.addresses {
            address(text, self.allow_http).map_err(|problem| {
                SettingsError::invalid(format!("addresses: {text:?} {problem}"))
            })?;
        }
        mount_segments(&self.mount)
            .map_err(|problem| SettingsError::invalid(format!("mount {problem}")))?;
        segments(&self.prefix)
            .map_err(|problem| SettingsError::invalid(format!("prefix {problem}")))?;
        Ok(())
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

/// What is wrong with an address.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AddressProblem {
    #[error("is not a URL ({0}); write it like https://bao.internal:8200")]
    NotUrl(url::ParseError),
    #[error("is not an http(s) URL; write it like https://bao.internal:8200")]
    NotHttp,
    #[error(
        "is plain http to a host other than loopback: tokens and passwords would cross the \
         network in clear; use https, or set allow_http = true under [openbao] if this network \
         is private"
    )]
    PlainHttp,
}

/// An address as coffer sends to it: an http(s) URL, plain http only to loopback unless
/// `allow_http`.
pub fn address(text: &str, allow_http: bool) -> Result<Url, AddressProblem> {
    let url = Url::parse(text).map_err(AddressProblem::NotUrl)?;
    if !matches!(url.scheme(), "http" | "https") || url.cannot_be_a_base() {
        return Err(AddressProblem::NotHttp);
    }
    if !permitted(&url, allow_http) {
        return Err(AddressProblem::PlainHttp);
    }
    Ok(url)
}

/// A KV path as plain segments (`/` at either end ignored), or what is wrong with it.
pub fn segments(value: &str) -> Result<Vec<String>, &'static str> {
    let parts: Vec<&str> = value.trim_matches('/').split('/').collect();
    if parts.iter().any(|p| *p == "." || *p == "..") {
        return Err("holds a `.` or `..` segment; name the folder itself");
    }
    if parts.iter().any(|p| {
        p.chars()
            .any(|c| c.is_control() || c == '%' || c == '?' || c == '#')
    }) {
        return Err("holds a control character, `%`, `?` or `#`");
    }
    Ok(parts
        .into_iter()
        .filter(|p| !p.is_empty())
        .map(str::to_owned)
        .collect())
}

/// The KV mount's segments: at least one.
pub fn mount_segments(value: &str) -> Result<Vec<String>, &'static str> {
    let parts = segments(value)?;
    if parts.is_empty() {
        return Err("is empty; name the KV mount, e.g. `secret`");
    }
    Ok(parts)
}

/// Where a pod finds its service-account token by default.
const POD_TOKEN: &str = "/var/run/secrets/kubernetes.io/serviceaccount/token";

/// `[openbao.auth]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "method", rename_all = "lowercase", deny_unknown_fields)]
pub enum AuthSettings {
    /// A token for people: `token_file`, else `BAO_TOKEN`/`VAULT_TOKEN`, else `~/.vault-token`.
    Token {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        token_file: Option<PathBuf>,
    },
    /// `jwt` auth with the JWT in `jwt_file`, read again at every login (it rotates).
    Jwt {
        role: String,
        jwt_file: PathBuf,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        mount: Option<String>,
    },
    /// `kubernetes` auth: OpenBao asks the cluster (TokenReview) about the pod's token.
    Kubernetes {
        role: String,
        #[serde(default = "pod_token")]
        jwt_file: PathBuf,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        mount: Option<String>,
    },
    /// AppRole: the role-id (public) and the secret-id from a file.
    Approle {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        role_id: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        role_id_file: Option<PathBuf>,
        secret_id_file: PathBuf,
        /// The file holds a wrapping token; coffer unwraps it once and keeps the secret-id in
        /// the memory cache, never on disk.
        #[serde(default)]
        secret_id_wrapped: bool,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        mount: Option<String>,
    },
    /// TLS certificate auth (`BAO_CLIENT_CERT`/`BAO_CLIENT_KEY` override the files).
    Cert {
        client_cert: PathBuf,
        client_key: PathBuf,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        name: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        mount: Option<String>,
    },
}

fn pod_token() -> PathBuf {
    POD_TOKEN.into()
}

impl Default for AuthSettings {
    fn default() -> Self {
        AuthSettings::Token { token_file: None }
    }
}

impl AuthSettings {
    pub fn method(&self) -> &'static str {
        match self {
            AuthSettings::Token { .. } => "token",
            AuthSettings::Jwt { .. } => "jwt",
            AuthSettings::Kubernetes { .. } => "kubernetes",
            AuthSettings::Approle { .. } => "approle",
            AuthSettings::Cert { .. } => "cert",
        }
    }

    /// Where the method is mounted: `auth/<mount>/login`.
    pub fn mount(&self) -> String {
        let mount = match self {
            AuthSettings::Token { .. } => None,
            AuthSettings::Jwt { mount, .. }
            | AuthSettings::Kubernetes { mount, .. }
            | AuthSettings::Approle { mount, .. }
            | AuthSettings::Cert { mount, .. } => mount.as_deref(),
        };
        mount.unwrap_or(self.method()).trim_matches('/').to_owned()
    }

    /// Who this node says it is, in words (no secret).
    pub fn identity(&self) -> String {
        match self {
            AuthSettings::Token {
                token_file: Some(file),
            } => format!("the token in {}", file.display()),
            AuthSettings::Token { token_file: None } => "a token".to_owned(),
            AuthSettings::Jwt { role, jwt_file, .. }
            | AuthSettings::Kubernetes { role, jwt_file, .. } => {
                format!("role {role}, JWT {}", jwt_file.display())
            }
            AuthSettings::Approle {
                role_id,
                role_id_file,
                ..
            } => match (role_id, role_id_file) {
                (Some(id), _) => format!("role-id {id}"),
                (None, Some(file)) => format!("role-id in {}", file.display()),
                (None, None) => "an AppRole with no role-id".to_owned(),
            },
            AuthSettings::Cert {
                client_cert, name, ..
            } => match name {
                Some(name) => format!("certificate {} for role {name}", client_cert.display()),
                None => format!("certificate {}", client_cert.display()),
            },
        }
    }

    /// The environment's client certificate over the file's.
    pub fn resolved_with(&self, either: &dyn Fn(&str) -> Option<String>) -> AuthSettings {
        let mut auth = self.clone();
        if let AuthSettings::Cert {
            client_cert,
            client_key,
            ..
        } = &mut auth
        {
            if let Some(path) = either("CLIENT_CERT") {
                *client_cert = path.into();
            }
            if let Some(path) = either("CLIENT_KEY") {
                *client_key = path.into();
            }
        }
        auth
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
    fn config_toml_refuses_an_unusable_address_mount_or_prefix() {
        let parse = |section: &str| crate::config::Config::parse(&format!("[openbao]\n{section}"));
        assert!(
            parse("addresses = [\"https://bao.example:8200\", \"http://127.0.0.1:8200\"]\n")
                .is_ok()
        );
        for (bad, says) in [
            (
                "addresses = [\"http://bao.example:8200\"]\n",
                "allow_http = true",
            ),
            ("addresses = [\"bao.example:8200\"]\n", "http(s) URL"),
            ("addresses = [\"https://\"]\n", "not a URL"),
            ("mount = \"\"\n", "mount is empty"),
            ("prefix = \"coffer/../sys\"\n", "prefix holds a `.` or `..`"),
        ] {
            let error = parse(bad).expect_err(bad).to_string();
            assert!(
                error.contains("[openbao]") && error.contains(says),
                "{error}"
            );
        }
        assert!(parse("addresses = [\"http://bao.example:8200\"]\nallow_http = true\n").is_ok());
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

//! The token vault's settings in `config.toml`:
//!
//! ```toml
//! [tokens]                      # every key optional; these are the defaults
//! min_margin = "10m"            # renew when less than max(half the lifetime, this) remains
//! connect_timeout = "5s"
//! timeout = "10s"               # the whole exchange, all requests together
//! retry_after = "30s"           # after a failed renewal, serve the cached token this long
//!
//! [registries."registry.example.com"]
//! mode = "oauth2"               # basic | oauth2 | auto
//! ca_file = "/etc/ssl/private-ca.pem"
//! allow_http = false            # plain HTTP beyond loopback
//! redirect_origins = []         # other origins a token request may be redirected to
//!
//! [registries."123456789012.dkr.ecr.eu-west-1.amazonaws.com"]
//! mode = "ecr"                  # a cloud provider: ecr | google | azure | exec
//! profile = "dev"               # any further keys are the provider's own settings
//! ```

use std::borrow::Cow;
use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::TokenError;

/// How coffer answers `get` for a registry.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// Hand out the stored credential.
    #[default]
    Basic,
    /// Exchange the credential for an OAuth2 refresh token (identity token) at store time.
    #[value(name = "oauth2")]
    #[serde(rename = "oauth2")]
    OAuth2,
    /// Probe at store time: `oauth2` where the registry proves it works, else `basic`.
    Auto,
    /// AWS ECR: an IAM access key (or an AWS profile) for 12-hour registry passwords.
    Ecr,
    /// Google Artifact Registry and GCR: a service-account key or an OAuth refresh token for
    /// one-hour access tokens.
    Google,
    /// Azure ACR: a service principal or an AAD access token for ACR refresh tokens.
    Azure,
    /// A configured command whose output is the secret.
    Exec,
}

impl Mode {
    pub fn name(self) -> &'static str {
        match self {
            Mode::Basic => "basic",
            Mode::OAuth2 => "oauth2",
            Mode::Auto => "auto",
            Mode::Ecr => "ecr",
            Mode::Google => "google",
            Mode::Azure => "azure",
            Mode::Exec => "exec",
        }
    }

    /// A cloud registry's mode: without a stored credential it takes the machine's identity.
    pub fn is_cloud(self) -> bool {
        matches!(self, Mode::Ecr | Mode::Google | Mode::Azure)
    }
}

/// One registry's section, `[registries."host:port"]`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct RegistrySettings {
    pub mode: Mode,
    /// Extra PEM certificates trusted for this registry and its token server.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ca_file: Option<PathBuf>,
    /// Plain HTTP to a registry or token server that is not on loopback.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub allow_http: bool,
    /// Origins (`https://auth.example:8443`) besides the request's own that a token request
    /// may be redirected to; any other redirect to another origin is refused.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub redirect_origins: Vec<String>,
    /// The provider's own settings (an ECR region, an exec command...), checked by the mode's
    /// provider when `config.toml` is read ([`super::providers::check`]), so that a misspelt
    /// key is refused like any other.
    #[serde(flatten)]
    pub options: toml::Table,
}

/// The origin (scheme, host and port) a `redirect_origins` entry names.
pub fn origin_of(text: &str) -> Result<url::Origin, SettingsError> {
    let refused = || {
        SettingsError::invalid(format!(
            "`redirect_origins`: `{text}` is not an origin like \"https://auth.example\""
        ))
    };
    let url = url::Url::parse(text).map_err(|_| refused())?;
    let bare = matches!(url.scheme(), "https" | "http")
        && url.username().is_empty()
        && url.path().trim_end_matches('/').is_empty()
        && url.query().is_none();
    if !bare {
        return Err(refused());
    }
    Ok(url.origin())
}

/// A registry's section: its literal `[registries."host"]` first, else the most specific
/// pattern that matches: the one with fewest `*`, then the most literal characters. In a
/// pattern a label is literal, `*` (exactly one whole label: `*.dkr.ecr.*.amazonaws.com`), or
/// `*` then the label's end (`*-docker.pkg.dev`: a label ending in `-docker`, with something
/// before it), so a pattern never matches across a dot: `*.azurecr.io` is not
/// `evil.azurecr.io.example`, nor `a.b.azurecr.io`.
pub fn lookup<'a, T>(
    registries: &'a std::collections::BTreeMap<String, T>,
    host: &str,
) -> Option<&'a T> {
    if let Some(literal) = registries.get(host) {
        return Some(literal);
    }
    registries
        .iter()
        .filter(|(pattern, _)| pattern.contains('*') && matches(pattern, host))
        .min_by_key(|(pattern, _)| {
            let stars = pattern.matches('*').count();
            (stars, std::cmp::Reverse(pattern.len() - stars))
        })
        .map(|(_, settings)| settings)
}

/// A pattern people may write: labels that are host-name labels, `*`, or `*` then the end of
/// one; at least two wholly literal labels (so no pattern covers a whole top-level domain); an
/// optional `:port` at the end.
pub fn valid_pattern(pattern: &str) -> bool {
    let (name, port) = match pattern.rsplit_once(':') {
        Some((name, port)) => (name, Some(port)),
        None => (pattern, None),
    };
    let literal =
        |l: &str| !l.is_empty() && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-');
    let labels: Vec<&str> = name.split('.').collect();
    port.is_none_or(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
        && labels
            .iter()
            .all(|l| *l == "*" || literal(l.strip_prefix('*').unwrap_or(l)))
        && labels.iter().filter(|l| !l.contains('*')).count() >= 2
}

/// Label by label, case-insensitively; `*` is one whole, non-empty label, and `*end` one that
/// ends in `end` after at least one character of its own.
pub fn matches(pattern: &str, host: &str) -> bool {
    let (patterns, labels): (Vec<&str>, Vec<&str>) =
        (pattern.split('.').collect(), host.split('.').collect());
    patterns.len() == labels.len()
        && patterns
            .iter()
            .zip(&labels)
            .all(|(p, l)| match p.strip_prefix('*') {
                Some(end) => {
                    let start = l.len().saturating_sub(end.len());
                    !l.contains(':')
                        && l.len() > end.len()
                        && l.get(start..)
                            .is_some_and(|tail| tail.eq_ignore_ascii_case(end))
                }
                None => p.eq_ignore_ascii_case(l),
            })
}

/// The `[tokens]` section: margins and timeouts for every registry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TokenSettings {
    #[serde(with = "human")]
    pub min_margin: Duration,
    #[serde(with = "human")]
    pub connect_timeout: Duration,
    #[serde(with = "human")]
    pub timeout: Duration,
    #[serde(with = "human")]
    pub retry_after: Duration,
}

impl Default for TokenSettings {
    fn default() -> Self {
        TokenSettings {
            min_margin: Duration::from_secs(600),
            connect_timeout: Duration::from_secs(5),
            timeout: Duration::from_secs(10),
            retry_after: Duration::from_secs(30),
        }
    }
}

impl TokenSettings {
    pub fn is_default(&self) -> bool {
        *self == TokenSettings::default()
    }
}

/// Durations spelled for people: `"10m"`, `"90s"`, `"1h 30m"`.
pub(crate) mod human {
    use super::*;

    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&humantime::format_duration(*d).to_string())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        let text = String::deserialize(d)?;
        humantime::parse_duration(&text).map_err(|e| {
            serde::de::Error::custom(format!("{e} (write a duration like \"10m\" or \"30s\")"))
        })
    }
}

/// What is wrong with a registry's or a pod exchange's own settings in `config.toml`.
#[derive(Debug, thiserror::Error)]
pub enum SettingsError {
    /// A key the mode does not take.
    #[error("unknown field `{0}`")]
    Unknown(String),
    /// A key of the wrong type, or a missing one: the deserializer's words, without its quote
    /// of the file.
    #[error("{}", .0.message())]
    Shape(Box<toml::de::Error>),
    /// A value that cannot work, or settings that cannot work together: which, and what to give.
    #[error("{0}")]
    Invalid(Cow<'static, str>),
}

impl SettingsError {
    pub fn invalid(why: impl Into<Cow<'static, str>>) -> SettingsError {
        SettingsError::Invalid(why.into())
    }

    /// The same problem met while minting in `mode`.
    pub fn in_mode(self, mode: &'static str) -> TokenError {
        TokenError::Settings {
            mode,
            problem: self,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Deserialize, Serialize, PartialEq)]
    struct Both {
        tokens: TokenSettings,
        registry: RegistrySettings,
    }

    #[test]
    fn spelling_round_trips() {
        let text = r#"
            [tokens]
            min_margin = "2s"
            timeout = "1m 30s"
            [registry]
            mode = "oauth2"
            allow_http = true
        "#;
        let both: Both = toml::from_str(text).expect("parse");
        assert_eq!(both.tokens.min_margin, Duration::from_secs(2));
        assert_eq!(both.tokens.timeout, Duration::from_secs(90));
        assert_eq!(both.tokens.connect_timeout, Duration::from_secs(5));
        assert_eq!(both.registry.mode, Mode::OAuth2);
        assert!(both.registry.allow_http);
        let again: Both = toml::from_str(&toml::to_string(&both).expect("write")).expect("parse");
        assert_eq!(again, both);
    }

    #[test]
    fn bad_values_are_refused_with_a_hint() {
        let error = toml::from_str::<TokenSettings>("min_margin = \"soon\"").expect_err("bad");
        assert!(error.to_string().contains("like \"10m\""), "{error}");
        assert!(toml::from_str::<RegistrySettings>("mode = \"oauth3\"").is_err());
    }

    #[test]
    fn provider_settings_are_kept() {
        let text = "mode = \"ecr\"\nregion = \"eu-west-1\"\nendpoint = \"http://127.0.0.1:1\"\n";
        let settings: RegistrySettings = toml::from_str(text).expect("parse");
        assert_eq!(settings.mode, Mode::Ecr);
        assert_eq!(settings.options["region"].as_str(), Some("eu-west-1"));
        let again: RegistrySettings =
            toml::from_str(&toml::to_string(&settings).expect("write")).expect("parse");
        assert_eq!(again, settings);
    }

    #[test]
    fn patterns_match_whole_labels_and_literals_win() {
        let ecr = RegistrySettings {
            mode: Mode::Ecr,
            ..RegistrySettings::default()
        };
        let azure = RegistrySettings {
            mode: Mode::Azure,
            ..RegistrySettings::default()
        };
        let mut registries = std::collections::BTreeMap::new();
        registries.insert("*.dkr.ecr.*.amazonaws.com".to_owned(), ecr.clone());
        registries.insert("*.azurecr.io".to_owned(), azure.clone());
        registries.insert("literal.azurecr.io".to_owned(), RegistrySettings::default());
        let mode = |host: &str| lookup(&registries, host).map(|s| s.mode);
        assert_eq!(
            mode("123456789012.dkr.ecr.eu-west-1.amazonaws.com"),
            Some(Mode::Ecr)
        );
        assert_eq!(mode("contoso.azurecr.io"), Some(Mode::Azure));
        assert_eq!(mode("CONTOSO.AZURECR.IO"), Some(Mode::Azure));
        assert_eq!(
            mode("literal.azurecr.io"),
            Some(Mode::Basic),
            "a literal wins"
        );
        for host in [
            "evil.azurecr.io.example",
            "a.b.azurecr.io",
            "azurecr.io",
            ".azurecr.io",
            "123456789012.dkr.ecr.eu-west-1.amazonaws.com.evil.example",
            "x.123456789012.dkr.ecr.eu-west-1.amazonaws.com",
            "contoso.azurecr.io:443",
        ] {
            assert_eq!(mode(host), None, "{host}");
        }
    }

    #[test]
    fn a_star_may_begin_a_label() {
        let google = RegistrySettings {
            mode: Mode::Google,
            ..RegistrySettings::default()
        };
        let mut registries = std::collections::BTreeMap::new();
        registries.insert("*-docker.pkg.dev".to_owned(), google);
        registries.insert("*.pkg.dev".to_owned(), RegistrySettings::default());
        let mode = |host: &str| lookup(&registries, host).map(|s| s.mode);
        for host in ["europe-west1-docker.pkg.dev", "US-DOCKER.pkg.dev"] {
            assert_eq!(
                mode(host),
                Some(Mode::Google),
                "{host}: the longer pattern wins"
            );
        }
        assert_eq!(mode("europe-west1-maven.pkg.dev"), Some(Mode::Basic));
        for host in [
            "-docker.pkg.dev",
            "a.b-docker.pkg.dev",
            "docker.pkg.dev.evil.example",
        ] {
            assert_ne!(mode(host), Some(Mode::Google), "{host}");
        }
        for valid in [
            "*-docker.pkg.dev",
            "*.dkr.ecr.*.amazonaws.com",
            "*.azurecr.io:443",
        ] {
            assert!(valid_pattern(valid), "{valid}");
        }
        for invalid in [
            "*-docker.dev",
            "a*b.example.com",
            "*.*",
            "**.example.com",
            "*-.example.com:",
        ] {
            assert!(!valid_pattern(invalid), "{invalid}");
        }
    }
}

//! `config.toml`: coffer's non-secret settings, next to the vault (or in the platform's config
//! directory). A missing file means every default.

use crate::token::settings::SettingsError;
use serde::{Deserialize, Serialize};

use std::path::PathBuf;

use crate::files::{self, FileError};
use crate::kubelet::exchange as pod_exchange;
use crate::paths::Paths;
use crate::store::description::{DescriptionError, description};
use crate::token::providers;
use crate::token::settings::origin_of;

/// `config.toml` that cannot be read or written.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{}: {source}; fix or remove the file", path.display())]
    Invalid { path: PathBuf, source: Problem },
    #[error(transparent)]
    File(#[from] FileError),
}

type Result<T, E = ConfigError> = std::result::Result<T, E>;

/// What is wrong with `config.toml`, for a caller to match; shown in a few safe words.
#[derive(Debug, thiserror::Error)]
pub enum Problem {
    #[error("it is not UTF-8 text")]
    NotText(#[source] std::string::FromUtf8Error),
    /// The parser's message without its quote of the file.
    #[error("{}", .0.message())]
    Syntax(#[source] toml::de::Error),
    /// A registry's or a pod exchange's own settings, as its provider checked them.
    #[error("{section}: {problem}")]
    Settings {
        section: String,
        #[source]
        problem: SettingsError,
    },
    #[error("default_description: {0}")]
    Description(#[source] DescriptionError),
    #[error("it cannot be written: {0}")]
    Encode(#[source] toml::ser::Error),
}

/// What the user asked for, or what was recorded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Backend {
    /// Not chosen yet: the first entry chooses.
    Auto,
    Keychain,
    File,
    /// The central store: KV entries in OpenBao or HashiCorp Vault (`[openbao]`).
    #[value(name = "openbao")]
    #[serde(rename = "openbao")]
    OpenBao,
}

impl Backend {
    pub fn name(self) -> &'static str {
        match self {
            Backend::Auto => "auto",
            Backend::Keychain => "keychain",
            Backend::File => "file",
            Backend::OpenBao => "openbao",
        }
    }
}

/// A settings file is a few hundred bytes; a larger one is a mistake, never read whole.
const MAX_SIZE: u64 = 1 << 20;

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// `[tokens]`: margins and timeouts of the token vault.
    #[serde(skip_serializing_if = "crate::token::settings::TokenSettings::is_default")]
    pub tokens: crate::token::settings::TokenSettings,
    /// `[registries."host:port"]`: each registry's token mode and HTTP settings.
    #[serde(skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub registries: std::collections::BTreeMap<String, crate::token::settings::RegistrySettings>,
    /// Which store serves: auto (the default), keychain, file or openbao. `COFFER_BACKEND` overrides it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub backend: Option<Backend>,
    /// The description an entry stored without one gets (`docker login` gives none): whose
    /// credentials this machine's are, e.g. "ci-runner-7, team payments".
    #[serde(skip_serializing_if = "Option::is_none")]
    pub default_description: Option<String>,
    /// `[kubelet]`: which registries trade a pod's service-account token, and for what.
    #[serde(skip_serializing_if = "crate::kubelet::settings::KubeletSettings::is_default")]
    pub kubelet: crate::kubelet::settings::KubeletSettings,
    /// `[openbao]`: the central store on OpenBao or Vault (`backend = "openbao"`).
    #[serde(skip_serializing_if = "crate::store::openbao::settings::OpenBaoSettings::is_default")]
    pub openbao: crate::store::openbao::settings::OpenBaoSettings,
    /// `[unlock]`: how long `coffer unlock` keeps the vault open.
    #[serde(skip_serializing_if = "crate::unlock::cache::UnlockConfig::is_default")]
    pub unlock: crate::unlock::cache::UnlockConfig,
}

impl Config {
    pub fn load(paths: &Paths) -> Result<Config> {
        let path = paths.config();
        // It names commands to run and where to send secrets: only the user may change it.
        let Some(bytes) = files::read_trusted(&path, MAX_SIZE)? else {
            return Ok(Config::default());
        };
        let invalid = |source| ConfigError::Invalid {
            path: path.clone(),
            source,
        };
        let text = String::from_utf8(bytes).map_err(|e| invalid(Problem::NotText(e)))?;
        Config::parse(&text).map_err(invalid)
    }

    /// The file's text as settings: TOML of the known keys, each registry's and pod exchange's
    /// settings as its provider takes them, a one-line description.
    pub fn parse(text: &str) -> Result<Config, Problem> {
        let config: Config = toml::from_str(text).map_err(Problem::Syntax)?;
        for (host, registry) in &config.registries {
            let problem = |problem| Problem::Settings {
                section: format!("[registries.{host:?}] mode {}", registry.mode.name()),
                problem,
            };
            providers::check(registry.mode, &registry.options).map_err(problem)?;
            for origin in &registry.redirect_origins {
                origin_of(origin).map_err(problem)?;
            }
        }
        if config.kubelet.audience.trim().is_empty() {
            return Err(Problem::Settings {
                section: "[kubelet] audience".to_owned(),
                problem: SettingsError::invalid(
                    "an empty audience is no audience: leave it out for \"coffer\", or name the one of tokenAttributes.serviceAccountTokenAudience",
                ),
            });
        }
        for (host, pod) in &config.kubelet.registries {
            pod_exchange::check(pod.exchange, &pod.options).map_err(|problem| {
                Problem::Settings {
                    section: format!(
                        "[kubelet.registries.{host:?}] {} exchange",
                        pod.exchange.name()
                    ),
                    problem,
                }
            })?;
        }
        config
            .openbao
            .check()
            .map_err(|problem| Problem::Settings {
                section: "[openbao]".to_owned(),
                problem,
            })?;
        if let Some(text) = &config.default_description {
            description(text).map_err(Problem::Description)?;
        }
        Ok(config)
    }

    /// Writes the whole file atomically (0600 in a 0700 folder).
    pub fn save(&self, paths: &Paths) -> Result<()> {
        let path = paths.config();
        if let Some(dir) = path.parent() {
            files::ensure_private_dir(dir)?;
        }
        let text = toml::to_string_pretty(self).map_err(|e| ConfigError::Invalid {
            path: path.clone(),
            source: Problem::Encode(e),
        })?;
        Ok(files::write_atomic(&path, text.as_bytes())?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_file_is_the_default_and_unknown_keys_are_refused() {
        let dir = tempfile::tempdir().expect("temp dir");
        let paths = Paths::new(dir.path());
        assert_eq!(Config::load(&paths).expect("load"), Config::default());
        std::fs::write(paths.config(), "colour = \"blue\"\n").expect("write");
        let error = Config::load(&paths).expect_err("unknown key");
        assert!(error.to_string().contains("colour"), "{error}");
        // A caller can tell what is wrong, and the typed cause is kept.
        assert!(matches!(
            &error,
            ConfigError::Invalid {
                source: Problem::Syntax(_),
                ..
            }
        ));
        assert!(std::error::Error::source(&error).is_some());
        Config::default().save(&paths).expect("save");
        assert_eq!(Config::load(&paths).expect("load"), Config::default());
    }

    #[test]
    fn the_kubelet_audience_is_coffer_unless_set_and_never_empty() {
        assert_eq!(Config::parse("").expect("empty").kubelet.audience, "coffer");
        let set = Config::parse("[kubelet]\naudience = \"registry\"\n").expect("set");
        assert_eq!(set.kubelet.audience, "registry");
        let error = Config::parse("[kubelet]\naudience = \" \"\n").expect_err("empty");
        assert!(error.to_string().contains("[kubelet] audience"), "{error}");
        // The default is not written out: a saved file keeps following it.
        assert!(
            !toml::to_string(&Config::default())
                .expect("toml")
                .contains("audience")
        );
    }
}

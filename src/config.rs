//! `config.toml`: coffer's non-secret settings, next to the vault (or in the platform's config
//! directory). A missing file means every default.

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::files;
use crate::paths::Paths;

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
    /// Which store serves: auto (the default), keychain or file. `COFFER_BACKEND` overrides it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub backend: Option<crate::backend::Backend>,
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
        let text = String::from_utf8(bytes).map_err(|_| Error::Config {
            path: path.clone(),
            message: "it is not UTF-8 text".to_owned(),
        })?;
        toml::from_str(&text).map_err(|e| Error::Config {
            path,
            message: e.message().to_owned(),
        })
    }

    /// Writes the whole file atomically (0600 in a 0700 folder).
    pub fn save(&self, paths: &Paths) -> Result<()> {
        let path = paths.config();
        if let Some(dir) = path.parent() {
            files::ensure_private_dir(dir)?;
        }
        let text = toml::to_string_pretty(self).map_err(|e| Error::Config {
            path: path.clone(),
            message: e.to_string(),
        })?;
        files::write_atomic(&path, text.as_bytes())
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
        Config::default().save(&paths).expect("save");
        assert_eq!(Config::load(&paths).expect("load"), Config::default());
    }
}

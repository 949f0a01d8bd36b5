//! The list of providers: the one place that names them all.

use super::azure::Azure;
use super::ecr::Ecr;
use super::exec::Exec;
use super::google::Google;
use super::oauth2::OAuth2;
use super::provider::Provider;
use super::settings::Mode;
use super::shared;

/// Every provider, found by the name stored with its tokens and used as its mode's name.
const PROVIDERS: [&dyn Provider; 5] = [&OAuth2, &Ecr, &Google, &Azure, &Exec];

/// The provider that mints tokens in `mode`; `None` hands out the credential itself.
pub fn of(mode: Mode) -> Option<&'static dyn Provider> {
    match mode {
        Mode::Basic => None,
        Mode::Auto => Some(&OAuth2),
        // Every other mode is named after its provider.
        other => by_name(other.name()),
    }
}

/// Refuses settings `mode` does not know in a registry's section, as `deny_unknown_fields`
/// would.
pub fn check(mode: Mode, options: &toml::Table) -> Result<(), shared::SettingsError> {
    match of(mode) {
        Some(provider) if mode != Mode::Auto => provider.check(options),
        _ => shared::no_options(options),
    }
}

/// The provider that minted a stored token, by its stored name.
pub fn by_name(name: &str) -> Option<&'static dyn Provider> {
    PROVIDERS.into_iter().find(|p| p.name() == name)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::token::settings::RegistrySettings;

    #[test]
    fn each_mode_checks_its_own_settings() {
        let read = |text: &str| toml::from_str::<RegistrySettings>(text).expect("parses");
        let basic = read("colour = 1");
        assert!(check(basic.mode, &basic.options).is_err());
        let auto = read("mode = \"auto\"\nregion = \"x\"");
        assert!(check(auto.mode, &auto.options).is_err());
        let ecr = read("mode = \"ecr\"\nregion = \"eu-west-1\"");
        assert!(check(ecr.mode, &ecr.options).is_ok());
        let misspelt = read("mode = \"ecr\"\nregoin = \"x\"");
        let error = check(misspelt.mode, &misspelt.options).expect_err("misspelt");
        assert!(error.to_string().contains("regoin"), "{error}");
    }

    #[test]
    fn every_provider_mode_has_its_provider() {
        for mode in [
            Mode::OAuth2,
            Mode::Auto,
            Mode::Ecr,
            Mode::Google,
            Mode::Azure,
            Mode::Exec,
        ] {
            assert!(of(mode).is_some(), "{}", mode.name());
        }
        assert!(of(Mode::Basic).is_none());
    }
}

//! The list of providers: the one place that names them all, and, with the `cloud` feature,
//! the dispatch of chain mode to each cloud's identity chain.

use super::aws::registry::Ecr;
use super::azure::registry::Azure;
use super::exec::Exec;
use super::google::registry::Google;
use super::oauth2::OAuth2;
use super::provider::Provider;
use super::settings::Mode;
use super::shared;
#[cfg(feature = "cloud")]
use super::{TokenError, aws, azure, chain::Request, google, identity::block_on, provider::Minted};

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
pub fn check(mode: Mode, options: &toml::Table) -> Result<(), String> {
    match of(mode) {
        Some(provider) if mode != Mode::Auto => provider.check(options),
        _ => shared::no_options(options),
    }
}

/// The provider that minted a stored token, by its stored name.
pub fn by_name(name: &str) -> Option<&'static dyn Provider> {
    PROVIDERS.into_iter().find(|p| p.name() == name)
}

/// The chain-mode minter of the `coffer` binary (see [`super::chain::mint_in_process`]).
#[cfg(feature = "cloud")]
pub fn mint_from_identity(request: &Request) -> Result<Minted, TokenError> {
    match request.registry.mode {
        Mode::Ecr => block_on(aws::identity::mint(request)),
        Mode::Google => block_on(google::identity::mint(request)),
        Mode::Azure => azure::identity::mint(request),
        other => Err(no_identity(other)),
    }
}

#[cfg(feature = "cloud")]
fn no_identity(mode: Mode) -> TokenError {
    TokenError::Settings {
        mode: mode.name(),
        message: "this mode has no machine identity".into(),
    }
}

/// Which identity a chain-mode registry would use here, and why, for `coffer doctor` and
/// `coffer token status`; the error says what was tried.
#[cfg(feature = "cloud")]
pub fn describe_identity(request: &Request) -> Result<String, TokenError> {
    match request.registry.mode {
        Mode::Ecr => block_on(aws::identity::describe(request)),
        Mode::Google => block_on(google::identity::describe(request)),
        Mode::Azure => azure::identity::describe(request),
        other => Err(no_identity(other)),
    }
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
        assert!(error.contains("regoin"), "{error}");
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

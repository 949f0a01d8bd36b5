//! The list of providers: the one place that names them all, and, with the `cloud` feature,
//! the dispatch of chain mode to each cloud's identity chain.

use super::aws::registry::Ecr;
use super::azure::registry::Azure;
use super::exec::Exec;
use super::google::registry::Google;
use super::oauth2::OAuth2;
use super::provider::Provider;
use super::settings::{Mode, RegistrySettings};
use super::shared;
#[cfg(feature = "cloud")]
use super::{TokenError, aws, azure, chain::Request, google, identity::block_on, provider::Minted};
use crate::token::settings::SettingsError;

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
pub fn check(mode: Mode, options: &toml::Table) -> Result<(), SettingsError> {
    match of(mode) {
        Some(provider) if mode != Mode::Auto => provider.check(options),
        _ => shared::no_options(options),
    }
}

/// Why `coffer mode` or `coffer login` cannot change a registry's settings as asked.
#[derive(Debug, thiserror::Error)]
pub enum ConfigureError {
    #[error("--set takes KEY=VALUE, not `{0}`")]
    NotAPair(String),
    #[error("--set: `{0}` is not a setting name")]
    NotAName(String),
    #[error("--set cannot change `{0}`; `coffer mode` has its own option for it")]
    OwnOption(String),
    #[error("{mode} mode: {problem}")]
    Refused {
        mode: &'static str,
        problem: SettingsError,
    },
}

/// Applies a mode and provider settings to a registry's section. Changing the mode drops the
/// old provider's settings; the result is checked by the new mode's provider.
pub fn configure(
    settings: &mut RegistrySettings,
    mode: Option<Mode>,
    set: &[String],
    unset: &[String],
) -> Result<(), ConfigureError> {
    if let Some(mode) = mode {
        if mode != settings.mode {
            settings.options.clear();
        }
        settings.mode = mode;
    }
    for key in unset {
        settings.options.remove(key);
    }
    for pair in set {
        let (key, value) = pair
            .split_once('=')
            .ok_or_else(|| ConfigureError::NotAPair(pair.clone()))?;
        let key = key.trim();
        if key.is_empty() || !key.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
            return Err(ConfigureError::NotAName(key.to_owned()));
        }
        if matches!(key, "mode" | "ca_file" | "allow_http") {
            return Err(ConfigureError::OwnOption(key.to_owned()));
        }
        settings.options.insert(key.to_owned(), value_of(value));
    }
    check(settings.mode, &settings.options).map_err(|problem| ConfigureError::Refused {
        mode: settings.mode.name(),
        problem,
    })
}

/// A TOML value (`true`, `["gh", "auth", "token"]`, `"quoted"`), else the text itself.
fn value_of(text: &str) -> toml::Value {
    toml::from_str::<toml::Table>(&format!("v = {text}"))
        .ok()
        .and_then(|mut table| table.remove("v"))
        .unwrap_or_else(|| toml::Value::String(text.to_owned()))
}

/// The provider that minted a stored token, by its stored name.
pub fn by_name(name: &str) -> Option<&'static dyn Provider> {
    PROVIDERS.into_iter().find(|p| p.name() == name)
}

/// The chain-mode minter of the `coffer` binary (see [`super::chain::mint_in_process`]).
#[cfg(feature = "cloud")]
pub fn mint_from_identity(request: &Request) -> Result<Minted, TokenError> {
    contained(|| match request.registry.mode {
        Mode::Ecr => block_on(aws::identity::mint(request)),
        Mode::Google => block_on(google::identity::mint(request)),
        Mode::Azure => azure::identity::mint(request),
        other => Err(no_identity(other)),
    })
}

/// Runs an identity chain, and when it fails, kills what it started and left running: an AWS
/// `credential_process` that hangs past the identity budget must not outlive the `get`. After
/// a success, what a process left running on purpose (an agent) is left alone.
#[cfg(feature = "cloud")]
fn contained<T>(chain: impl FnOnce() -> Result<T, TokenError>) -> Result<T, TokenError> {
    let tree = crate::os::process_tree::Tree::start();
    let done = chain();
    if done.is_err() {
        tree.kill();
    }
    done
}

#[cfg(feature = "cloud")]
fn no_identity(mode: Mode) -> TokenError {
    SettingsError::invalid("this mode has no machine identity").in_mode(mode.name())
}

/// Which identity a chain-mode registry would use here, and why, for `coffer doctor` and
/// `coffer token status`; the error says what was tried.
#[cfg(feature = "cloud")]
pub fn describe_identity(request: &Request) -> Result<String, TokenError> {
    contained(|| match request.registry.mode {
        Mode::Ecr => block_on(aws::identity::describe(request)),
        Mode::Google => block_on(google::identity::describe(request)),
        Mode::Azure => azure::identity::describe(request),
        other => Err(no_identity(other)),
    })
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

    #[test]
    fn values_are_toml_or_text() {
        assert_eq!(
            value_of("eu-west-1"),
            toml::Value::String("eu-west-1".into())
        );
        assert_eq!(value_of("true"), toml::Value::Boolean(true));
        assert_eq!(value_of("\"123\""), toml::Value::String("123".into()));
        assert_eq!(
            value_of(r#"["gh", "auth", "token"]"#)
                .as_array()
                .map(Vec::len),
            Some(3)
        );
        assert_eq!(value_of("a = b"), toml::Value::String("a = b".into()));
    }

    #[test]
    fn a_new_mode_drops_the_old_settings_and_checks_the_new() {
        let mut settings = crate::token::settings::RegistrySettings::default();
        configure(
            &mut settings,
            Some(Mode::Ecr),
            &["region=eu-west-1".into()],
            &[],
        )
        .expect("ecr");
        assert_eq!(settings.options["region"].as_str(), Some("eu-west-1"));
        configure(&mut settings, Some(Mode::Ecr), &[], &[]).expect("same mode");
        assert!(settings.options.contains_key("region"));
        let error = configure(&mut settings, None, &["regoin=x".into()], &[]).expect_err("typo");
        assert!(error.to_string().contains("regoin"), "{error}");
        configure(&mut settings, Some(Mode::Exec), &[], &[]).expect("exec");
        assert!(settings.options.is_empty());
        assert!(configure(&mut settings, None, &["mode=basic".into()], &[]).is_err());
        assert!(configure(&mut settings, None, &["novalue".into()], &[]).is_err());
    }
}

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
    /// One OS keychain item per entry.
    Keychain,
    /// The vault file (`vault.coffer`).
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

/// `config.toml`: every setting, with its default and meaning, is in [`SETTINGS`].
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

/// One setting of `config.toml`, as the reference (`man coffer-config`, written by
/// `coffer generate man`) shows it. [`SETTINGS`] is the one list; a test parses each entry's
/// `example` with [`Config::parse`], so the list cannot name a key the parser refuses.
#[derive(Debug, Clone, Copy)]
pub struct Setting {
    /// The TOML table it sits in (`""` for the top of the file), as a header would name it.
    pub table: &'static str,
    pub key: &'static str,
    /// A value it can take, in TOML.
    pub example: &'static str,
    /// Other lines the table needs for the example to parse (`mode = "ecr"` for `region`).
    pub with: &'static str,
    pub default: &'static str,
    pub meaning: &'static str,
}

const fn setting(
    table: &'static str,
    key: &'static str,
    example: &'static str,
    with: &'static str,
    default: &'static str,
    meaning: &'static str,
) -> Setting {
    Setting {
        table,
        key,
        example,
        with,
        default,
        meaning,
    }
}

const REGISTRY: &str = "registries.\"registry.example.com\"";
const POD: &str = "kubelet.registries.\"registry.example.com\"";

/// Every setting of `config.toml` (in `~/.config/coffer/`, or beside the vault when
/// `COFFER_HOME` is set; a profile's in `profiles/NAME/`).
pub const SETTINGS: &[Setting] = &[
    setting(
        "",
        "backend",
        "\"file\"",
        "",
        "chosen and written at the first store",
        "Where credentials are kept: \"file\" (the vault file), \"keychain\" (one OS keychain item per entry) or \"openbao\" (the central store). Written by coffer init, the first store and coffer migrate; COFFER_BACKEND overrides it for one process.",
    ),
    setting(
        "",
        "default_description",
        "\"ci-runner-7, team payments\"",
        "",
        "none",
        "The description an entry stored without one gets (docker login gives none): one line, at most 200 characters.",
    ),
    setting(
        "unlock",
        "timeout",
        "\"8h\"",
        "",
        "15m",
        "How long coffer unlock keeps the vault open; \"0\" until coffer lock or logout.",
    ),
    setting(
        "tokens",
        "min_margin",
        "\"10m\"",
        "",
        "10m",
        "A token is renewed once less than max(lifetime / 2, min_margin) is left.",
    ),
    setting(
        "tokens",
        "connect_timeout",
        "\"5s\"",
        "",
        "5s",
        "The bound on each connection of a token exchange.",
    ),
    setting(
        "tokens",
        "timeout",
        "\"10s\"",
        "",
        "10s",
        "The bound on a whole exchange, every request together.",
    ),
    setting(
        "tokens",
        "retry_after",
        "\"30s\"",
        "",
        "30s",
        "After a failed renewal, how long the cached token is served without trying again.",
    ),
    setting(
        REGISTRY,
        "mode",
        "\"oauth2\"",
        "",
        "basic",
        "basic, oauth2, auto (the token vault), ecr, google, azure or exec (cloud registries). HOST is the registry as clients name it, or a pattern whose * stands for one label (\"*.azurecr.io\").",
    ),
    setting(
        REGISTRY,
        "ca_file",
        "\"/etc/ssl/private-ca.pem\"",
        "",
        "none",
        "PEM certificates trusted for this registry's token exchanges, besides the system's.",
    ),
    setting(
        REGISTRY,
        "allow_http",
        "true",
        "",
        "false",
        "Allow plain HTTP beyond loopback.",
    ),
    setting(
        REGISTRY,
        "redirect_origins",
        "[\"https://auth.example.com:8443\"]",
        "",
        "[]",
        "Other origins a token request may be redirected to; any other redirect to another origin is refused.",
    ),
    setting(
        REGISTRY,
        "profile",
        "\"dev\"",
        "mode = \"ecr\"",
        "none",
        "ecr: mint with this AWS profile (chain mode).",
    ),
    setting(
        REGISTRY,
        "role_arn",
        "\"arn:aws:iam::123456789012:role/puller\"",
        "mode = \"ecr\"",
        "none",
        "ecr: assume this role with the identity found (chain mode).",
    ),
    setting(
        REGISTRY,
        "region",
        "\"eu-central-1\"",
        "mode = \"ecr\"",
        "from the host name",
        "ecr: the region of the ECR API.",
    ),
    setting(
        REGISTRY,
        "endpoint",
        "\"https://api.ecr.eu-west-1.amazonaws.com\"",
        "mode = \"ecr\"",
        "the region's",
        "ecr: the ECR API (a VPC endpoint); azure: where /oauth2/exchange is.",
    ),
    setting(
        REGISTRY,
        "public",
        "true",
        "mode = \"ecr\"",
        "false",
        "ecr: ECR Public's API, for a mirror of public.ecr.aws.",
    ),
    setting(
        REGISTRY,
        "tenant",
        "\"TENANT_ID\"",
        "mode = \"azure\"",
        "none",
        "azure: the AAD tenant (required for a service principal).",
    ),
    setting(
        REGISTRY,
        "authority",
        "\"https://login.microsoftonline.com\"",
        "mode = \"azure\"",
        "AAD's public cloud",
        "azure: another cloud's AAD.",
    ),
    setting(
        REGISTRY,
        "client_id",
        "\"CLIENT_ID\"",
        "mode = \"azure\"",
        "none",
        "azure: a user-assigned managed identity or the federated application (chain mode).",
    ),
    setting(
        REGISTRY,
        "impersonate",
        "\"puller@project.iam.gserviceaccount.com\"",
        "mode = \"google\"",
        "none",
        "google: a service account whose token is minted with the identity found.",
    ),
    setting(
        REGISTRY,
        "command",
        "[\"gh\", \"auth\", \"token\"]",
        "mode = \"exec\"\nusername = \"x-access-token\"",
        "required",
        "exec: the program and its arguments, run without a shell; its one line of stdout is the secret.",
    ),
    setting(
        REGISTRY,
        "username",
        "\"x-access-token\"",
        "mode = \"exec\"\ncommand = [\"gh\"]",
        "required",
        "exec: the username handed out with the command's output.",
    ),
    setting(
        REGISTRY,
        "lifetime",
        "\"1h\"",
        "mode = \"exec\"\ncommand = [\"gh\"]\nusername = \"x\"",
        "1h",
        "exec: how long the command's secret is used (at least 4s).",
    ),
    setting(
        REGISTRY,
        "timeout",
        "\"20s\"",
        "mode = \"exec\"\ncommand = [\"gh\"]\nusername = \"x\"",
        "[tokens] timeout",
        "exec: the bound on the command; it is killed with everything it started.",
    ),
    setting(
        REGISTRY,
        "env",
        "[\"GH_CONFIG_DIR\"]",
        "mode = \"exec\"\ncommand = [\"gh\"]\nusername = \"x\"",
        "[]",
        "exec: variables passed on besides PATH and HOME.",
    ),
    setting(
        REGISTRY,
        "show_stderr",
        "true",
        "mode = \"exec\"\ncommand = [\"gh\"]\nusername = \"x\"",
        "false",
        "exec: let the command's stderr through (it may print secrets).",
    ),
    setting(
        "kubelet",
        "audience",
        "\"coffer\"",
        "",
        "coffer",
        "The only audience a pod's service-account token may have.",
    ),
    setting(
        "kubelet",
        "fallback",
        "\"none\"",
        "",
        "node",
        "A request without a token, or for a registry with no [kubelet.registries] section: \"node\" answers from the node's store, \"none\" answers nothing.",
    ),
    setting(
        POD,
        "exchange",
        "\"exec\"",
        "command = [\"federate\"]\nusername = \"x\"",
        "required",
        "What a pod's token is traded for: aws, google, azure, exec or openbao; any setting of the same registry mode may follow.",
    ),
    setting(
        POD,
        "allowed",
        "[\"arn:aws:iam::123456789012:role/pull-*\"]",
        "exchange = \"aws\"",
        "[]",
        "The identities pods may name (exact, or a prefix ending in *).",
    ),
    setting(
        POD,
        "default",
        "\"arn:aws:iam::123456789012:role/pull\"",
        "exchange = \"aws\"\nallowed = [\"arn:aws:iam::123456789012:role/pull\"]",
        "none",
        "The identity of service accounts that name none.",
    ),
    setting(
        POD,
        "workload_identity_provider",
        "\"//iam.googleapis.com/projects/1/locations/global/workloadIdentityPools/p/providers/k\"",
        "exchange = \"google\"",
        "required for google",
        "google: the workload identity pool provider.",
    ),
    setting(
        POD,
        "token_url",
        "\"https://sts.googleapis.com/v1/token\"",
        "exchange = \"google\"\nworkload_identity_provider = \"//iam.googleapis.com/x\"",
        "Google STS",
        "google: the STS endpoint.",
    ),
    setting(
        POD,
        "method",
        "\"kubernetes\"",
        "exchange = \"openbao\"\nrole = \"pull\"",
        "jwt",
        "openbao: how OpenBao checks the pod's token: jwt (the cluster's keys given to OpenBao) or kubernetes (TokenReview).",
    ),
    setting(
        POD,
        "role",
        "\"pull-{namespace}\"",
        "exchange = \"openbao\"",
        "required for openbao",
        "openbao: the OpenBao role the pod logs in as; {namespace} and {serviceaccount} are the pod's.",
    ),
    setting(
        POD,
        "mount",
        "\"jwt-cluster-a\"",
        "exchange = \"openbao\"\nrole = \"pull\"",
        "the method's name",
        "openbao: where the auth method is mounted, if not at its own name.",
    ),
    setting(
        "openbao",
        "addresses",
        "[\"https://bao-1.internal:8200\"]",
        "",
        "BAO_ADDR",
        "The servers, tried in order.",
    ),
    setting(
        "openbao",
        "ca_cert",
        "\"/etc/coffer/bao-ca.pem\"",
        "",
        "the system's roots",
        "A PEM file of CA certificates for the servers.",
    ),
    setting(
        "openbao",
        "ca_path",
        "\"/etc/coffer/bao-ca.d\"",
        "",
        "none",
        "A folder of CA certificates.",
    ),
    setting(
        "openbao",
        "namespace",
        "\"team-a\"",
        "",
        "none",
        "The Vault Enterprise / OpenBao namespace.",
    ),
    setting(
        "openbao",
        "mount",
        "\"secret\"",
        "",
        "secret",
        "The KV engine's mount.",
    ),
    setting(
        "openbao",
        "prefix",
        "\"coffer/registries\"",
        "",
        "coffer/registries",
        "Where entries live under the mount, one per registry.",
    ),
    setting(
        "openbao",
        "allow_http",
        "true",
        "",
        "false",
        "Allow plain HTTP beyond loopback.",
    ),
    setting(
        "openbao",
        "timeout",
        "\"2s\"",
        "",
        "2s",
        "The bound on each request to the server.",
    ),
    setting(
        "openbao",
        "cache_for",
        "\"30s\"",
        "",
        "30s",
        "How long an entry read is served from memory without asking.",
    ),
    setting(
        "openbao",
        "stale_for",
        "\"10m\"",
        "",
        "10m",
        "How long a cached entry still serves while no server answers.",
    ),
    setting(
        "openbao.auth",
        "method",
        "\"jwt\"",
        "role = \"pull\"\njwt_file = \"/run/token\"",
        "token",
        "How a node logs in: token, jwt, kubernetes, approle or cert.",
    ),
    setting(
        "openbao.auth",
        "token_file",
        "\"/etc/coffer/bao-token\"",
        "method = \"token\"",
        "BAO_TOKEN, then ~/.vault-token",
        "token: a file holding the token.",
    ),
    setting(
        "openbao.auth",
        "role",
        "\"pull\"",
        "method = \"kubernetes\"",
        "required",
        "jwt, kubernetes: the role to log in as.",
    ),
    setting(
        "openbao.auth",
        "jwt_file",
        "\"/var/run/secrets/tokens/bao\"",
        "method = \"jwt\"\nrole = \"pull\"",
        "the pod's token (kubernetes)",
        "jwt, kubernetes: the JWT, read again at every login.",
    ),
    setting(
        "openbao.auth",
        "mount",
        "\"k8s-prod\"",
        "method = \"kubernetes\"\nrole = \"pull\"",
        "the method's name",
        "Where the auth method is mounted.",
    ),
    setting(
        "openbao.auth",
        "role_id",
        "\"ROLE_ID\"",
        "method = \"approle\"\nsecret_id_file = \"/etc/coffer/secret-id\"",
        "none",
        "approle: the role-id (or role_id_file).",
    ),
    setting(
        "openbao.auth",
        "role_id_file",
        "\"/etc/coffer/role-id\"",
        "method = \"approle\"\nsecret_id_file = \"/etc/coffer/secret-id\"",
        "none",
        "approle: a file holding the role-id.",
    ),
    setting(
        "openbao.auth",
        "secret_id_file",
        "\"/etc/coffer/secret-id\"",
        "method = \"approle\"\nrole_id = \"R\"",
        "required",
        "approle: the secret-id's file.",
    ),
    setting(
        "openbao.auth",
        "secret_id_wrapped",
        "true",
        "method = \"approle\"\nrole_id = \"R\"\nsecret_id_file = \"/s\"",
        "false",
        "approle: the file holds a wrapping token, unwrapped once.",
    ),
    setting(
        "openbao.auth",
        "client_cert",
        "\"/etc/coffer/node.pem\"",
        "method = \"cert\"\nclient_key = \"/etc/coffer/node.key\"",
        "required",
        "cert: the client certificate (BAO_CLIENT_CERT overrides it).",
    ),
    setting(
        "openbao.auth",
        "client_key",
        "\"/etc/coffer/node.key\"",
        "method = \"cert\"\nclient_cert = \"/etc/coffer/node.pem\"",
        "required",
        "cert: its key (BAO_CLIENT_KEY overrides it).",
    ),
    setting(
        "openbao.auth",
        "name",
        "\"node\"",
        "method = \"cert\"\nclient_cert = \"/c\"\nclient_key = \"/k\"",
        "none",
        "cert: the certificate role to log in with.",
    ),
];

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
    #[test]
    fn every_setting_of_the_reference_parses_and_none_is_listed_twice() {
        let mut seen = std::collections::BTreeSet::new();
        for s in SETTINGS {
            assert!(
                seen.insert((s.table, s.key)),
                "{}.{} listed twice",
                s.table,
                s.key
            );
            let header = if s.table.is_empty() {
                String::new()
            } else {
                format!("[{}]\n", s.table)
            };
            let text = format!("{header}{} = {}\n{}\n", s.key, s.example, s.with);
            if let Err(problem) = Config::parse(&text) {
                panic!("{}.{}: {text}\n{problem}", s.table, s.key);
            }
        }
    }

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

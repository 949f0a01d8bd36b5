//! The `[kubelet]` section of the node's `config.toml`: which registries exchange a pod's
//! service-account token, for which identities, and what a pod without one gets.
//!
//! ```toml
//! [kubelet]
//! fallback = "node"        # no token, or a registry without an exchange: node | none
//! audience = "coffer"      # the audience every token must carry (this is the default)
//!
//! [kubelet.registries."123456789012.dkr.ecr.eu-west-1.amazonaws.com"]
//! exchange = "aws"         # aws | google | azure | exec
//! allowed = ["arn:aws:iam::123456789012:role/pull-*"]   # what a pod may name; `*` at the end
//! default = "arn:aws:iam::123456789012:role/pull"       # optional: for pods that name none
//! region = "eu-west-1"     # any further keys are the exchange's own settings
//! ```
//!
//! A pod names its identity with an annotation on its service account, under the `coffer.dev/`
//! prefix ([`Exchange::annotation`]); the kubelet passes on only the keys its configuration lists.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::token::settings::SettingsError;

/// The prefix of every service-account annotation coffer reads.
pub const ANNOTATION_PREFIX: &str = "coffer.dev/";

/// The audience a pod's token must carry when `[kubelet] audience` names none: the one the
/// shipped `credential-provider-config.yaml` asks the kubelet for. There is always one, so a
/// token minted for something else (the API server, another plugin) is never exchanged.
pub const DEFAULT_AUDIENCE: &str = "coffer";

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct KubeletSettings {
    pub fallback: Fallback,
    #[serde(skip_serializing_if = "is_default_audience")]
    pub audience: String,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub registries: BTreeMap<String, PodExchange>,
}

impl Default for KubeletSettings {
    fn default() -> Self {
        KubeletSettings {
            fallback: Fallback::default(),
            audience: DEFAULT_AUDIENCE.to_owned(),
            registries: BTreeMap::new(),
        }
    }
}

fn is_default_audience(audience: &str) -> bool {
    audience == DEFAULT_AUDIENCE
}

impl KubeletSettings {
    pub fn is_default(&self) -> bool {
        *self == KubeletSettings::default()
    }
}

/// What answers a request that has no service-account token, or names a registry that has no
/// exchange. Either way coffer says so on stderr: never silently.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Fallback {
    /// The node's own answer: its vault entry, or the node's cloud identity where the
    /// registry's mode takes one, exactly as `docker-credential-coffer get` would.
    #[default]
    Node,
    /// No credentials: the kubelet pulls anonymously.
    None,
}

/// How a registry turns a pod's token into a registry credential.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Exchange {
    /// STS AssumeRoleWithWebIdentity for the annotated role, then ECR GetAuthorizationToken.
    Aws,
    /// STS token exchange through a workload identity pool, optionally impersonating the
    /// annotated service account.
    Google,
    /// The federated client assertion for the annotated client id, then the ACR exchange.
    Azure,
    /// A command that reads the token on stdin and prints the registry password.
    Exec,
    /// The central store: the token logs in to OpenBao (`[openbao]`'s servers) for the pod,
    /// which reads the registry's entry as far as its policy allows ([`PodLogin`]).
    #[serde(rename = "openbao")]
    OpenBao,
}

impl Exchange {
    pub fn name(self) -> &'static str {
        match self {
            Exchange::Aws => "aws",
            Exchange::Google => "google",
            Exchange::Azure => "azure",
            Exchange::Exec => "exec",
            Exchange::OpenBao => "openbao",
        }
    }

    /// The service-account annotation that names the identity to exchange for.
    pub fn annotation(self) -> Option<&'static str> {
        match self {
            Exchange::Aws => Some("coffer.dev/aws-role-arn"),
            Exchange::Google => Some("coffer.dev/gcp-service-account"),
            Exchange::Azure => Some("coffer.dev/azure-client-id"),
            // The registry (or OpenBao) reads who the pod is from the token itself.
            Exchange::Exec | Exchange::OpenBao => None,
        }
    }

    /// Does this exchange work without a named identity? Google's pool identity can be granted
    /// access directly; a command decides for itself.
    fn identity_optional(self) -> bool {
        matches!(self, Exchange::Google | Exchange::Exec | Exchange::OpenBao)
    }
}

/// One registry's `[kubelet.registries."host"]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "UncheckedExchange")]
pub struct PodExchange {
    pub exchange: Exchange,
    /// The identities pods may name: exact values, or a prefix ending in `*`.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub allowed: Vec<String>,
    /// The identity of pods whose service account names none.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub default: Option<String>,
    /// The exchange's own settings (region, endpoints, tenant, command).
    #[serde(flatten)]
    pub options: toml::Table,
}

#[derive(Deserialize)]
struct UncheckedExchange {
    exchange: Exchange,
    #[serde(default)]
    allowed: Vec<String>,
    #[serde(default)]
    default: Option<String>,
    #[serde(flatten)]
    options: toml::Table,
}

impl TryFrom<UncheckedExchange> for PodExchange {
    type Error = String;

    fn try_from(raw: UncheckedExchange) -> Result<Self, String> {
        let settings = PodExchange {
            exchange: raw.exchange,
            allowed: raw.allowed,
            default: raw.default,
            options: raw.options,
        };
        if raw.exchange.annotation().is_none() && !settings.allowed.is_empty() {
            return Err(format!(
                "the {} exchange takes no `allowed`: who the pod is decides",
                raw.exchange.name()
            ));
        }
        if let Some(default) = &settings.default
            && !settings.allows(default)
        {
            return Err(format!("`default` {default:?} is not among `allowed`"));
        }
        Ok(settings)
    }
}

impl PodExchange {
    fn allows(&self, identity: &str) -> bool {
        self.allowed
            .iter()
            .any(|pattern| match pattern.strip_suffix('*') {
                Some(prefix) => identity.starts_with(prefix),
                None => identity == pattern,
            })
    }

    /// The identity a pod gets, from its service account's annotations: the one it names if
    /// the settings allow it, else the default. Every `coffer.dev/` key must be one coffer
    /// knows, so that a misspelt annotation is not quietly ignored.
    pub fn identity(
        &self,
        annotations: &BTreeMap<String, String>,
        who: &str,
    ) -> Result<Option<String>, String> {
        for key in annotations.keys() {
            if key.starts_with(ANNOTATION_PREFIX)
                && ![Exchange::Aws, Exchange::Google, Exchange::Azure]
                    .iter()
                    .any(|e| e.annotation() == Some(key.as_str()))
            {
                return Err(format!(
                    "service account {who} carries the annotation {key:?}, which coffer does not know"
                ));
            }
        }
        let Some(key) = self.exchange.annotation() else {
            return Ok(None);
        };
        match annotations.get(key) {
            Some(named) if self.allows(named) => Ok(Some(named.clone())),
            Some(named) => Err(format!(
                "service account {who} names {named:?} in {key}, which this node's [kubelet.registries] settings do not allow"
            )),
            None if self.default.is_some() => Ok(self.default.clone()),
            None if self.exchange.identity_optional() => Ok(None),
            None => Err(format!(
                "service account {who} names no identity: annotate it with {key}"
            )),
        }
    }
}

/// `exchange = "openbao"`'s own settings; the servers, CA, mount and prefix are the node's
/// `[openbao]` section.
///
/// ```toml
/// [kubelet.registries."registry.internal:5000"]
/// exchange = "openbao"
/// method = "jwt"                # jwt (the cluster's keys given to OpenBao) | kubernetes
/// role = "pull-{namespace}"     # the OpenBao role; {namespace} and {serviceaccount} are the pod's
/// # mount = "jwt-cluster-a"     # where the auth method is mounted, if not at its own name
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PodLogin {
    #[serde(default)]
    pub method: PodLoginMethod,
    pub role: String,
    #[serde(default)]
    pub mount: Option<String>,
}

/// How OpenBao checks a pod's token.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PodLoginMethod {
    /// `jwt` auth: the signature against the cluster's keys, which OpenBao was given.
    #[default]
    Jwt,
    /// `kubernetes` auth: OpenBao also asks the cluster's TokenReview, so a deleted service
    /// account stops at once.
    Kubernetes,
}

impl PodLoginMethod {
    pub fn name(self) -> &'static str {
        match self {
            PodLoginMethod::Jwt => "jwt",
            PodLoginMethod::Kubernetes => "kubernetes",
        }
    }
}

/// What a `role` may hold besides plain characters.
const ROLE_FIELDS: [&str; 2] = ["{namespace}", "{serviceaccount}"];

impl PodLogin {
    /// The settings in an exchange's table, checked: a role naming only known fields.
    pub fn from_options(table: &toml::Table) -> Result<PodLogin, SettingsError> {
        let login: PodLogin = crate::token::shared::options(table)?;
        let plain = ROLE_FIELDS
            .iter()
            .fold(login.role.clone(), |role, field| role.replace(field, "x"));
        if plain.is_empty()
            || !plain
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
        {
            return Err(SettingsError::invalid(
                "`role` must be an OpenBao role name (letters, digits, `-_.`), with {namespace} \
                 and {serviceaccount} standing for the pod's",
            ));
        }
        Ok(login)
    }

    /// The role for the pod whose service account is `namespace/name`.
    pub fn role_for(&self, namespace: &str, name: &str) -> String {
        self.role
            .replace("{namespace}", namespace)
            .replace("{serviceaccount}", name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn aws(allowed: &[&str], default: Option<&str>) -> PodExchange {
        PodExchange {
            exchange: Exchange::Aws,
            allowed: allowed.iter().map(|s| (*s).to_owned()).collect(),
            default: default.map(str::to_owned),
            options: toml::Table::new(),
        }
    }

    fn annotations(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    const ROLE: &str = "coffer.dev/aws-role-arn";

    #[test]
    fn a_pod_gets_the_role_it_names_only_if_allowed() {
        let settings = aws(
            &["arn:aws:iam::1:role/pull-*", "arn:aws:iam::1:role/ci"],
            None,
        );
        let named = |role: &str| settings.identity(&annotations(&[(ROLE, role)]), "apps/sa");
        assert_eq!(
            named("arn:aws:iam::1:role/pull-web").expect("allowed"),
            Some("arn:aws:iam::1:role/pull-web".into())
        );
        assert!(named("arn:aws:iam::1:role/ci").is_ok());
        let error = named("arn:aws:iam::1:role/admin").expect_err("not allowed");
        assert!(error.contains("do not allow"), "{error}");
        assert!(
            named("arn:aws:iam::1:role/ci-admin").is_err(),
            "exact match"
        );
        let error = settings
            .identity(&annotations(&[]), "apps/sa")
            .expect_err("none named");
        assert!(error.contains(ROLE), "{error}");
    }

    #[test]
    fn the_default_serves_pods_that_name_nothing() {
        let settings = aws(
            &["arn:aws:iam::1:role/pull"],
            Some("arn:aws:iam::1:role/pull"),
        );
        assert_eq!(
            settings
                .identity(&annotations(&[]), "a/b")
                .expect("default"),
            Some("arn:aws:iam::1:role/pull".into())
        );
    }

    #[test]
    fn unknown_coffer_annotations_are_refused_and_others_ignored() {
        let settings = aws(&["*"], None);
        let error = settings
            .identity(
                &annotations(&[("coffer.dev/aws-role", "x"), (ROLE, "y")]),
                "a/b",
            )
            .expect_err("misspelt");
        assert!(error.contains("coffer.dev/aws-role"), "{error}");
        assert!(
            settings
                .identity(&annotations(&[("team", "payments"), (ROLE, "y")]), "a/b")
                .is_ok()
        );
    }

    #[test]
    fn an_openbao_role_names_only_the_pods_fields() {
        let table = |text: &str| -> toml::Table { toml::from_str(text).expect("toml") };
        let login =
            PodLogin::from_options(&table("role = \"pull-{namespace}.{serviceaccount}\"\n"))
                .expect("role");
        assert_eq!(login.method, PodLoginMethod::Jwt);
        assert_eq!(login.role_for("apps", "web"), "pull-apps.web");
        for bad in [
            "role = \"pull-{pod}\"\n",
            "role = \"\"\n",
            "role = \"a/b\"\n",
            "method = \"oidc\"\nrole = \"r\"\n",
            "role = \"r\"\nregion = \"x\"\n",
        ] {
            assert!(PodLogin::from_options(&table(bad)).is_err(), "{bad}");
        }
    }

    #[test]
    fn settings_are_checked_when_read() {
        let read = |text: &str| {
            let text = text.replace("[registries.", "[kubelet.registries.");
            crate::config::Config::parse(&format!("[kubelet]\n{text}")).map(|config| config.kubelet)
        };
        let ok = read(
            "[registries.\"r.example\"]\nexchange = \"exec\"\ncommand = [\"/bin/federate\"]\nusername = \"pod\"\n",
        )
        .expect("exec");
        assert_eq!(ok.registries["r.example"].exchange, Exchange::Exec);
        assert_eq!(ok.fallback, Fallback::Node);
        let error = read("[registries.\"r\"]\nexchange = \"exec\"\n").expect_err("no command");
        assert!(error.to_string().contains("command"), "{error}");
        let error =
            read("[registries.\"r\"]\nexchange = \"aws\"\nallowed = [\"a\"]\ndefault = \"b\"\n")
                .expect_err("default outside allowed");
        assert!(error.to_string().contains("default"), "{error}");
        assert!(read("fallback = \"vault\"\n").is_err());
        let shipped = crate::config::Config::parse(include_str!(
            "../../packaging/kubernetes/node-config.toml"
        ))
        .expect("the shipped node config is valid");
        assert_eq!(shipped.kubelet.registries.len(), 4);
        assert!(read("colour = 1\n").is_err());
    }
}

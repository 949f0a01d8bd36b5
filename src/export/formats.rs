//! The export formats. Each one is the docker `auths` shape, or close to it, wrapped the way
//! its consumer expects.

use std::collections::BTreeMap;
use std::io::Write;

use base64ct::{Base64, Encoding};
use secrecy::ExposeSecret;
use serde::Serialize;
use zeroize::Zeroizing;

use super::{Credential, Format, Options, Output};
use crate::error::{Error, Result};

pub fn render(format: Format, credentials: &[Credential], options: &Options) -> Result<Output> {
    let single = |bytes: Vec<u8>| Ok(Output::Single(Zeroizing::new(bytes)));
    match format {
        Format::DockerConfig => single(json(&docker_config(credentials, DockerKey::AsStored)?)?),
        Format::Podman => single(json(&docker_config(credentials, DockerKey::RegistryPath)?)?),
        Format::K8sSecret => single(yaml(&kubernetes_secret(credentials, options)?)?),
        Format::Butane => single(yaml(&butane(credentials, options)?)?),
        Format::Mesos => single(mesos_archive(&json(&docker_config(
            credentials,
            DockerKey::AsStored,
        )?)?)?),
        Format::Rkt => rkt(credentials),
    }
}

/// One registry in docker's `auths`: the shape `kubectl create secret docker-registry` writes.
#[derive(Serialize)]
#[serde(untagged)]
enum AuthEntry<'a> {
    Basic {
        username: &'a str,
        password: &'a str,
        auth: Zeroizing<String>,
    },
    IdentityToken {
        identitytoken: &'a str,
    },
}

#[derive(Serialize)]
struct DockerConfig<'a> {
    auths: BTreeMap<String, AuthEntry<'a>>,
}

/// How a registry is named in `auths`: docker's own key, or the containers tools' `host/path`.
enum DockerKey {
    AsStored,
    RegistryPath,
}

/// `credentials` by the name `name` gives each in a format that holds one credential per
/// name. Two that get the same name are an error naming both: keeping either would drop the
/// other without a word.
fn by_name<'a>(
    credentials: &'a [Credential],
    format: &'static str,
    name: impl Fn(&Credential) -> String,
) -> Result<BTreeMap<String, &'a Credential>> {
    let mut named: BTreeMap<String, &Credential> = BTreeMap::new();
    for credential in credentials {
        let key = name(credential);
        if let Some(first) = named.get(&key) {
            return Err(Error::ExportCollision {
                format,
                key,
                first: first.server_url.clone(),
                second: credential.server_url.clone(),
            });
        }
        named.insert(key, credential);
    }
    Ok(named)
}

fn docker_config(credentials: &[Credential], key: DockerKey) -> Result<DockerConfig<'_>> {
    let format = match key {
        DockerKey::AsStored => "docker's config.json",
        DockerKey::RegistryPath => "the containers auth.json",
    };
    let named = by_name(credentials, format, |c| match key {
        DockerKey::AsStored if c.url.is_docker_hub() && c.url.path() == "/v1" => {
            "https://index.docker.io/v1/".to_owned()
        }
        DockerKey::AsStored => c.server_url.clone(),
        DockerKey::RegistryPath => c.url.registry_path(),
    })?;
    let auths = named
        .into_iter()
        .map(|(name, c)| {
            let entry = if c.is_identity_token() {
                AuthEntry::IdentityToken {
                    identitytoken: c.secret.expose_secret(),
                }
            } else {
                AuthEntry::Basic {
                    username: &c.username,
                    password: c.secret.expose_secret(),
                    auth: c.basic_auth(),
                }
            };
            (name, entry)
        })
        .collect();
    Ok(DockerConfig { auths })
}

/// Formats read by kubelets and rkt take a username and password only.
fn basic_only(credentials: &[Credential], format: &str) -> Result<()> {
    match credentials.iter().find(|c| c.is_identity_token()) {
        Some(c) => Err(Error::ExportNeedsPassword {
            server_url: c.server_url.clone(),
            format: format.to_owned(),
        }),
        None => Ok(()),
    }
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct KubernetesSecret {
    api_version: &'static str,
    data: BTreeMap<&'static str, Zeroizing<String>>,
    kind: &'static str,
    metadata: Metadata,
    #[serde(rename = "type")]
    kind_of_secret: &'static str,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Metadata {
    creation_timestamp: Option<()>,
    name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    namespace: Option<String>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    annotations: BTreeMap<&'static str, String>,
}

/// The annotation that says whose credentials a Secret holds.
pub const DESCRIPTION_ANNOTATION: &str = "coffer.dev/description";

/// One credential's description as it is; several as `registry: description` lines.
fn descriptions(credentials: &[Credential]) -> Option<String> {
    match credentials {
        [one] => one.description.clone(),
        many => {
            let lines: Vec<String> = many
                .iter()
                .filter_map(|c| Some(format!("{}: {}", c.server_url, c.description.as_ref()?)))
                .collect();
            (!lines.is_empty()).then(|| lines.join("\n"))
        }
    }
}

fn kubernetes_secret(credentials: &[Credential], options: &Options) -> Result<KubernetesSecret> {
    basic_only(credentials, "a Kubernetes pull secret")?;
    let config = Zeroizing::new(
        serde_json::to_vec(&docker_config(credentials, DockerKey::AsStored)?).map_err(encoding)?,
    );
    let encoded = Zeroizing::new(Base64::encode_string(config.as_slice()));
    Ok(KubernetesSecret {
        api_version: "v1",
        data: BTreeMap::from([(".dockerconfigjson", encoded)]),
        kind: "Secret",
        metadata: Metadata {
            creation_timestamp: None,
            name: options.name.clone(),
            namespace: options.namespace.clone(),
            annotations: descriptions(credentials)
                .filter(|_| options.annotate_description)
                .map(|text| (DESCRIPTION_ANNOTATION, text))
                .into_iter()
                .collect(),
        },
        kind_of_secret: "kubernetes.io/dockerconfigjson",
    })
}

#[derive(Serialize)]
struct Butane {
    variant: &'static str,
    version: &'static str,
    storage: ButaneStorage,
}

#[derive(Serialize)]
struct ButaneStorage {
    files: Vec<ButaneFile>,
}

#[derive(Serialize)]
struct ButaneFile {
    path: String,
    mode: u32,
    overwrite: bool,
    contents: ButaneContents,
}

#[derive(Serialize)]
struct ButaneContents {
    inline: Zeroizing<String>,
}

fn butane(credentials: &[Credential], options: &Options) -> Result<Butane> {
    let config = serde_json::to_string(&docker_config(credentials, DockerKey::AsStored)?)
        .map_err(encoding)?;
    Ok(Butane {
        variant: "fcos",
        version: "1.5.0",
        storage: ButaneStorage {
            files: vec![ButaneFile {
                path: options.path.clone(),
                mode: 0o600,
                overwrite: true,
                contents: ButaneContents {
                    inline: Zeroizing::new(config),
                },
            }],
        },
    })
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct RktAuth<'a> {
    rkt_kind: &'static str,
    rkt_version: &'static str,
    domains: [String; 1],
    #[serde(rename = "type")]
    kind: &'static str,
    credentials: RktCredentials<'a>,
}

#[derive(Serialize)]
struct RktCredentials<'a> {
    user: &'a str,
    password: &'a str,
}

fn rkt(credentials: &[Credential]) -> Result<Output> {
    basic_only(credentials, "rkt")?;
    let mut taken = std::collections::HashSet::new();
    // One document per domain: rkt would take either of two for the same one.
    let documents = by_name(credentials, "rkt's auth.d", |c| c.url.registry_path())?
        .into_iter()
        .map(|(domain, c)| {
            let document = RktAuth {
                rkt_kind: "auth",
                rkt_version: "v1",
                domains: [domain.clone()],
                kind: "basic",
                credentials: RktCredentials {
                    user: &c.username,
                    password: c.secret.expose_secret(),
                },
            };
            // `host:5000` and `host/5000` read alike once made a file name: number the second.
            let stem = domain.replace(['/', ':'], "_");
            let file = (1..)
                .map(|n| match n {
                    1 => format!("{stem}.json"),
                    n => format!("{stem}-{n}.json"),
                })
                .find(|name| taken.insert(name.clone()))
                .unwrap_or_default();
            Ok((file, Zeroizing::new(json(&document)?)))
        })
        .collect::<Result<_>>()?;
    Ok(Output::PerRegistry(documents))
}

/// `.docker/config.json` (0600) in a gzip tar, the archive the Mesos fetcher unpacks.
fn mesos_archive(config: &[u8]) -> Result<Vec<u8>> {
    let io = Error::ExportArchive;
    let mtime = crate::clock::now();
    let mut archive = tar::Builder::new(flate2::write::GzEncoder::new(
        Vec::new(),
        flate2::Compression::default(),
    ));
    let mut dir = tar::Header::new_gnu();
    dir.set_entry_type(tar::EntryType::Directory);
    dir.set_mode(0o700);
    dir.set_size(0);
    dir.set_mtime(mtime);
    archive
        .append_data(&mut dir, ".docker/", std::io::empty())
        .map_err(io)?;
    let mut file = tar::Header::new_gnu();
    file.set_mode(0o600);
    file.set_size(config.len() as u64);
    file.set_mtime(mtime);
    archive
        .append_data(&mut file, ".docker/config.json", config)
        .map_err(io)?;
    let mut gzip = archive.into_inner().map_err(io)?;
    gzip.flush().map_err(io)?;
    gzip.finish().map_err(io)
}

fn json(value: &impl Serialize) -> Result<Vec<u8>> {
    let mut bytes = serde_json::to_vec_pretty(value).map_err(encoding)?;
    bytes.push(b'\n');
    Ok(bytes)
}

fn yaml(value: &impl Serialize) -> Result<Vec<u8>> {
    serde_norway::to_string(value)
        .map(String::into_bytes)
        .map_err(Error::ExportYaml)
}

fn encoding(e: serde_json::Error) -> Error {
    Error::ExportJson(crate::error::EntryError(e))
}

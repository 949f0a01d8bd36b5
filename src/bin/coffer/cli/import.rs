//! `coffer import`: credentials in from docker's config.json, podman's auth.json or another
//! helper's store, into the store in use; `--scrub` then removes the imported plaintext.

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use clap::Subcommand;

use coffer::auth_file::{self, AuthFile, PlaintextFile, Route};
use coffer::credentials::Credentials;
use coffer::import::{self, Found};
use coffer::paths::Paths;

#[derive(Debug, Subcommand)]
pub enum Source {
    /// The plaintext `auths` of docker's config.json.
    #[command(after_help = "Example:\n  coffer import docker --scrub")]
    Docker {
        /// The file (default: $DOCKER_CONFIG/config.json, else ~/.docker/config.json).
        #[arg(long)]
        file: Option<PathBuf>,
        /// Remove the imported secrets from the file afterwards (a backup is kept), and set
        /// `"credsStore": "coffer"` when no credsStore is set.
        #[arg(long)]
        scrub: bool,
    },
    /// The plaintext `auths` of podman/skopeo/buildah's auth.json.
    #[command(after_help = "Example:\n  coffer import podman --scrub")]
    Podman {
        /// The file (default: $REGISTRY_AUTH_FILE, $XDG_RUNTIME_DIR/containers/auth.json,
        /// ~/.config/containers/auth.json: the first that exists).
        #[arg(long)]
        file: Option<PathBuf>,
        /// Remove the imported secrets from the file afterwards (a backup is kept), and route
        /// those registries to coffer through `credHelpers`.
        #[arg(long)]
        scrub: bool,
    },
    /// The store of docker-credential-pass, through its own `list` and `get`.
    Pass,
    /// The store of docker-credential-secretservice, through its own `list` and `get`.
    Secretservice,
    /// The store of any docker-credential-NAME helper (osxkeychain, wincred, ...).
    #[command(after_help = "Example:\n  coffer import helper osxkeychain")]
    Helper {
        /// The helper's name: NAME of docker-credential-NAME, found on PATH.
        name: String,
    },
}

pub fn run(paths: &Paths, source: Source) -> anyhow::Result<()> {
    match source {
        Source::Docker { file, scrub } => {
            let path = match file {
                Some(file) => file,
                None => coffer::setup::docker::config_path()?,
            };
            from_file(paths, &path, scrub, Route::CredsStore)
        }
        Source::Podman { file, scrub } => {
            let path = file
                .or_else(podman_auth_file)
                .context("no auth.json found; give --file")?;
            from_file(paths, &path, scrub, Route::CredHelpers)
        }
        Source::Pass => from_helper(paths, "pass"),
        Source::Secretservice => from_helper(paths, "secretservice"),
        Source::Helper { name } => from_helper(paths, &name),
    }
}

fn from_file(paths: &Paths, path: &Path, scrub: bool, route: Route) -> anyhow::Result<()> {
    let file = AuthFile::read(path)?;
    if !file.exists() {
        bail!("{} does not exist; give --file", path.display());
    }
    let stored = store_all(paths, file.credentials()?, &file.path.display().to_string())?;
    if !scrub {
        if !stored.is_empty() {
            let tool = match route {
                Route::CredsStore => "docker",
                Route::CredHelpers => "podman",
            };
            println!(
                "they are still in the file in plaintext: {}",
                auth_file::scrub_advice(tool, &file.path)
            );
        }
        return Ok(());
    }
    let scrubbed = auth_file::scrub(&file.path, &stored, route)?;
    let Some(backup) = &scrubbed.backup else {
        println!("nothing to scrub in {}", scrubbed.path.display());
        return Ok(());
    };
    let copy = PlaintextFile {
        path: backup.clone(),
        logins: scrubbed.registries.len(),
        live: false,
    };
    println!(
        "removed the secrets of {} from {}; the original, plaintext secrets and all, is kept as {}: {}",
        super::plural(scrubbed.registries.len(), "registry", "registries"),
        scrubbed.path.display(),
        backup.display(),
        copy.advice()
    );
    for routed in &scrubbed.routed {
        println!("  added {routed} = \"coffer\"");
    }
    if let Some(other) = scrubbed.other_creds_store {
        println!(
            "  note: credsStore is {other:?}, so docker asks that helper, not coffer; \
             set it to \"coffer\" to use the imported entries"
        );
    }
    Ok(())
}

fn from_helper(paths: &Paths, name: &str) -> anyhow::Result<()> {
    let found = import::from_helper(name)?;
    store_all(paths, found, &format!("docker-credential-{name}"))?;
    Ok(())
}

/// Stores every credential into the profile's store, with one write; returns the server URLs.
fn store_all(paths: &Paths, found: Vec<Found>, from: &str) -> anyhow::Result<Vec<String>> {
    let credentials = Credentials::open(paths.clone())?;
    let stored: Vec<String> = found.iter().map(|item| item.server_url.clone()).collect();
    for item in &found {
        println!(
            "  {} ({})",
            super::table::printable(&item.server_url),
            super::table::printable(&item.username)
        );
    }
    credentials
        .store_all(
            found
                .into_iter()
                .map(|item| (item.server_url, item.username, item.secret))
                .collect(),
        )
        .with_context(|| format!("importing from {from}"))?;
    super::show_warnings(&credentials);
    println!(
        "imported {} from {from}",
        super::plural(stored.len(), "credential", "credentials")
    );
    Ok(stored)
}

fn podman_auth_file() -> Option<PathBuf> {
    let var = |name: &str| {
        std::env::var_os(name)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
    };
    [
        var("REGISTRY_AUTH_FILE"),
        var("XDG_RUNTIME_DIR").map(|dir| dir.join("containers/auth.json")),
        var("HOME").map(|home| home.join(".config/containers/auth.json")),
    ]
    .into_iter()
    .flatten()
    .find(|path| path.is_file())
}

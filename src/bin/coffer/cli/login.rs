//! `coffer login`: store a registry's long-lived credential (a password, an IAM access key, a
//! Google key file, a service principal's secret) directly, optionally setting its mode first,
//! and derive its first token. Secrets come from the terminal, standard input or a file, never
//! from the command line. Also the `--set KEY=VALUE` provider settings `coffer mode` shares.
//!
//! Storing the password here rather than through `docker login` matters for registries whose
//! clients would exchange it themselves and hand coffer only an identity token it cannot renew.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, bail};
use clap::Args;
use secrecy::SecretString;
use zeroize::Zeroizing;

use coffer::clock::now;
use coffer::config::Config;
use coffer::credentials::Credentials;
use coffer::paths::Paths;
use coffer::secret_buffer::SecretBuffer;
use coffer::server_url::ServerUrl;
use coffer::store::Entry;
use coffer::token::keeper::{self, Handout};
use coffer::token::oauth2::IDENTITY_TOKEN_USERNAME;
use coffer::token::providers;
use coffer::token::settings::Mode;
use coffer::token::state::TokenSummary;

/// Secrets are a password, a key or a JSON key file: a few KiB.
const MAX_SECRET: usize = 1024 * 1024;

#[derive(Debug, Args)]
#[command(after_help = "Examples:\n  \
    coffer login registry.example.com --username alice --password-stdin < token.txt \\\n      \
    --description \"ci-runner-7, team payments\"\n  \
    coffer login registry.example.com --username alice\n  \
    coffer login 123456789012.dkr.ecr.eu-west-1.amazonaws.com --mode ecr \\\n      \
    --username AKIAIOSFODNN7EXAMPLE --secret-file aws-secret.txt\n  \
    coffer login europe-west1-docker.pkg.dev --mode google --secret-file key.json\n  \
    coffer login 123456789012.dkr.ecr.eu-west-1.amazonaws.com --mode ecr   (this machine's identity)\n  \
    coffer login myregistry.azurecr.io --mode azure --set tenant=TENANT_ID \\\n      \
    --username CLIENT_ID --password-stdin < client-secret.txt\n  \
    coffer login ghcr.io --mode exec --set 'command=[\"gh\", \"auth\", \"token\"]' \\\n      \
    --set username=x-access-token --set lifetime=1h")]
pub struct LoginArgs {
    /// The registry as you would give it to `docker login`.
    registry: String,
    /// Set the registry's mode first, as `coffer mode REGISTRY MODE` does.
    #[arg(long)]
    mode: Option<Mode>,
    /// A setting of the mode's provider, KEY=VALUE (a TOML value, else plain text); repeatable.
    #[arg(long = "set", value_name = "KEY=VALUE")]
    set: Vec<String>,
    /// The credential's username: the access key id (ecr), the client id (azure), a user name.
    #[arg(long, short)]
    username: Option<String>,
    /// Read the secret from standard input (all of it: a key file may have several lines).
    #[arg(long, conflicts_with = "secret_file")]
    password_stdin: bool,
    /// Read the secret from this file (a secret key, a JSON key file).
    #[arg(long, value_name = "PATH")]
    secret_file: Option<PathBuf>,
    /// Whose credential this is, e.g. "ci-runner-7, team payments" (kept in the encrypted
    /// record; `coffer ls` shows it). Without it, a replaced entry keeps its description.
    #[arg(long, value_name = "TEXT")]
    description: Option<String>,
}

pub fn run(paths: &Paths, args: LoginArgs) -> anyhow::Result<ExitCode> {
    let url = ServerUrl::parse(&args.registry)?;
    let host = url.host().to_owned();
    let description = match &args.description {
        Some(text) => coffer::store::description::description(text)?,
        None => None,
    };
    let secret = secret_of(&args)?;
    let mut config = Config::load(paths)?;
    if args.mode.is_some() || !args.set.is_empty() {
        let mut settings = keeper::registry(&config, &host);
        providers::configure(&mut settings, args.mode, &args.set, &[])?;
        config.registries.insert(host.clone(), settings);
        config.save(paths)?;
    }
    let mode = keeper::registry(&config, &host).mode;
    if secret.is_none() && args.username.is_none() && mode.is_cloud() {
        return chain(paths, &config, &url, mode);
    }
    if secret.is_none() && providers::of(mode).is_none_or(|p| p.hands_out_credential()) {
        bail!(
            "{host} is in {} mode, which hands out a stored credential: give --username and the secret",
            mode.name()
        );
    }
    let secret = secret.unwrap_or_else(|| Zeroizing::new(String::new()));
    let credentials = Credentials::open(paths.clone())?;
    credentials.store_described(
        &args.registry,
        args.username.as_deref().unwrap_or_default(),
        SecretString::from(secret.as_str()),
        description,
    )?;
    super::show_warnings(&credentials);
    let stored = credentials
        .backend()
        .find(&[url.key()])?
        .context("the credential was not stored")?;
    Ok(said_stored(&stored, mode, &host))
}

/// The secret from stdin, a file or the terminal; `None` when none is given (chain mode).
fn secret_of(args: &LoginArgs) -> anyhow::Result<Option<Zeroizing<String>>> {
    let secret = match (read_secret(args)?, &args.username) {
        (None, Some(_)) => Some(Zeroizing::new(
            rpassword::prompt_password("Password: ").context(
                "no terminal to ask for the secret; use --password-stdin or --secret-file",
            )?,
        ))
        .filter(|s| !s.is_empty()),
        (secret, _) => secret,
    };
    if args.username.is_some() && secret.is_none() {
        bail!("the secret is empty");
    }
    Ok(secret)
}

/// What clients get now that `stored` is stored: the keeper's one rule, the one `get` follows.
fn said_stored(stored: &Entry, mode: Mode, host: &str) -> ExitCode {
    let now = now();
    let token = stored.tokens.as_ref().and_then(|t| t.token.as_ref());
    let summary = stored.tokens.as_ref().map(TokenSummary::from);
    match keeper::handout(mode, summary.as_ref(), now) {
        Handout::Token if token.is_some_and(|t| t.username == IDENTITY_TOKEN_USERNAME) => {
            println!(
                "{}: stored; clients get an identity token derived from it",
                stored.server_url
            );
            ExitCode::SUCCESS
        }
        Handout::Token => {
            println!(
                "{}: stored; clients get {}",
                stored.server_url,
                super::table::handed_out(stored, now)
            );
            ExitCode::SUCCESS
        }
        Handout::TokenFirst => {
            // The store already said why on stderr.
            println!(
                "{}: stored, but no {} token could be minted yet; `coffer refresh {host}` tries again",
                stored.server_url,
                mode.name()
            );
            ExitCode::FAILURE
        }
        Handout::Credential => {
            println!(
                "{}: stored; clients get the stored credential (basic)",
                stored.server_url
            );
            ExitCode::SUCCESS
        }
    }
}

/// A cloud mode with no secret: chain mode. Nothing is stored (no vault, no passphrase); the
/// first token is minted now to prove the machine's identity works, and cached like any other.
fn chain(paths: &Paths, config: &Config, url: &ServerUrl, mode: Mode) -> anyhow::Result<ExitCode> {
    let host = url.host();
    if !config.registries.contains_key(host) {
        let mut settings = keeper::registry(config, host);
        settings.mode = mode;
        let mut config = config.clone();
        config.registries.insert(host.to_owned(), settings);
        config.save(paths)?;
    }
    let warnings = coffer::warning::Warnings::default();
    let answer = coffer::token::chain::answer::answer(paths, url, &warnings);
    for warning in warnings.take() {
        eprintln!("coffer: {warning}");
    }
    match answer {
        Ok(Some(entry)) => {
            println!(
                "{host}: {} mode with this machine's identity, nothing stored; clients get {} tokens (user {})",
                mode.name(),
                mode.name(),
                entry.username
            );
            Ok(ExitCode::SUCCESS)
        }
        Ok(None) => bail!("{host} is not in a cloud mode"),
        Err(error) => {
            println!(
                "{host}: {} mode with this machine's identity is set up, but no token could be minted: {error}",
                mode.name()
            );
            Ok(ExitCode::FAILURE)
        }
    }
}

fn read_secret(args: &LoginArgs) -> anyhow::Result<Option<Zeroizing<String>>> {
    let read = if args.password_stdin {
        SecretBuffer::read_bounded(std::io::stdin().lock(), MAX_SECRET)
            .context("cannot read the secret from standard input")?
    } else if let Some(path) = &args.secret_file {
        std::fs::File::open(path)
            .and_then(|file| SecretBuffer::read_bounded(file, MAX_SECRET))
            .with_context(|| format!("cannot read the secret from {}", path.display()))?
    } else {
        return Ok(None);
    };
    // A cut secret would be stored and fail later, far from here.
    let Some(bytes) = read else {
        bail!("the secret is larger than {MAX_SECRET} bytes; refusing it");
    };
    let bytes = bytes.as_bytes();
    let text = std::str::from_utf8(bytes).context("the secret is not UTF-8 text")?;
    let text = text.trim_end_matches(['\n', '\r']);
    if text.is_empty() {
        bail!("the secret is empty");
    }
    Ok(Some(Zeroizing::new(text.to_owned())))
}

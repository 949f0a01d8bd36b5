//! `coffer mode`, `coffer token status` and `coffer refresh`: the token vault, for people.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::{Args, Subcommand};
use serde::Serialize;

use super::table::{duration, expiry, handed_out};
use coffer::clock::now;
use coffer::config::Config;
use coffer::credentials::Credentials;
use coffer::paths::Paths;
use coffer::server_url::ServerUrl;
use coffer::store::{Entry, Summary};
use coffer::token::keeper::{self, Applied, Handout, Keeper, Renewal, When};
use coffer::token::settings::{Mode, RegistrySettings};
use coffer::token::state::{Failure, TokenSummary};

#[derive(Debug, Args)]
#[command(
    after_help = "Examples:\n  coffer mode registry.example.com oauth2\n  \
    coffer mode 127.0.0.1:5000 ecr --set region=eu-west-1 --set endpoint=http://127.0.0.1:4566\n  \
    coffer mode registry.example.com auto --ca-file /etc/ssl/private-ca.pem\n  \
    coffer mode registry.example.com basic\n  coffer mode registry.example.com"
)]
pub struct ModeArgs {
    /// The registry as you would give it to `docker login`.
    registry: String,
    /// basic: hand out the stored credential; oauth2: hand out an identity token derived from
    /// it; auto: oauth2 where the registry proves it works, else basic; ecr, google, azure,
    /// exec: a cloud provider's or a command's token (see `coffer login`). Omit to show the mode.
    mode: Option<Mode>,
    /// Also trust the PEM certificates in this file for the registry and its token server.
    #[arg(long, value_name = "PATH", conflicts_with = "no_ca_file")]
    ca_file: Option<PathBuf>,
    /// Trust only the system's roots again.
    #[arg(long)]
    no_ca_file: bool,
    /// Allow plain HTTP to this registry and its token server although they are not on loopback.
    #[arg(long, conflicts_with = "https_only")]
    allow_http: bool,
    /// Refuse plain HTTP again (loopback registries are always allowed it).
    #[arg(long)]
    https_only: bool,
    /// A setting of the mode's provider, KEY=VALUE (a TOML value, else plain text); repeatable.
    #[arg(long = "set", value_name = "KEY=VALUE")]
    set: Vec<String>,
    /// Remove a provider setting; repeatable.
    #[arg(long, value_name = "KEY")]
    unset: Vec<String>,
}

#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Each registry's mode, what it hands out, when its token expires, the last refresh and
    /// the last error.
    #[command(after_help = "Examples:\n  coffer token status\n  coffer token status --json")]
    Status {
        /// One JSON array, for scripts.
        #[arg(long)]
        json: bool,
    },
    /// For docker-credential-coffer: mints a chain-mode token through the cloud's SDK, reading
    /// the request on stdin and writing the token to stdout (a pipe, never a terminal).
    #[command(hide = true)]
    Mint,
}

/// `coffer token mint`: the helper's way to the SDKs, which it does not link.
pub fn mint() -> anyhow::Result<ExitCode> {
    use std::io::IsTerminal;
    if std::io::stdout().is_terminal() {
        bail!(
            "`coffer token mint` writes a token for docker-credential-coffer; it will not print one on a terminal"
        );
    }
    match coffer::token::chain::serve_mint(std::io::stdin().lock(), std::io::stdout().lock()) {
        Ok(()) => Ok(ExitCode::SUCCESS),
        Err(message) => {
            eprintln!("coffer: {message}");
            Ok(ExitCode::FAILURE)
        }
    }
}

/// Which identity each chain-mode cloud registry would use here and why, or what was tried.
pub fn identities(config: &Config) -> Vec<(String, Result<String, String>)> {
    config
        .registries
        .iter()
        .filter(|(_, settings)| settings.mode.is_cloud())
        .map(|(host, settings)| {
            let request = coffer::token::chain::Request {
                host: host.clone(),
                registry: settings.clone(),
                tokens: config.tokens.clone(),
            };
            (host.clone(), identity(&request))
        })
        .collect()
}

#[cfg(feature = "cloud")]
fn identity(request: &coffer::token::chain::Request) -> Result<String, String> {
    let mut request = request.clone();
    request.host = sample_host(&request.host, request.registry.mode);
    coffer::token::providers::describe_identity(&request).map_err(|e| e.to_string())
}

/// A host a pattern covers, to describe the pattern's identity: `*` as an account number and
/// a region for ECR, as a name elsewhere (`*-docker` as `sample-docker`).
#[cfg(feature = "cloud")]
fn sample_host(pattern: &str, mode: Mode) -> String {
    let mut first = true;
    pattern
        .split('.')
        .map(|label| {
            let sample = match (label, mode, first) {
                ("*", Mode::Ecr, true) => "000000000000".to_owned(),
                ("*", Mode::Ecr, false) => "us-east-1".to_owned(),
                (other, _, _) => match other.strip_prefix('*') {
                    Some(end) => format!("sample{end}"),
                    None => other.to_owned(),
                },
            };
            first = false;
            sample
        })
        .collect::<Vec<_>>()
        .join(".")
}

#[cfg(not(feature = "cloud"))]
fn identity(_: &coffer::token::chain::Request) -> Result<String, String> {
    Err("this coffer was built without the `cloud` feature".to_owned())
}

#[derive(Debug, Args)]
#[command(after_help = "Examples:\n  coffer refresh --all\n  coffer refresh ghcr.io --force")]
pub struct RefreshArgs {
    /// The registry to renew (or --all).
    #[arg(required_unless_present = "all", conflicts_with = "all")]
    registry: Option<String>,
    /// Every registry whose mode derives tokens (what the systemd timer runs).
    #[arg(long)]
    all: bool,
    /// Renew even a fresh token.
    #[arg(long)]
    force: bool,
    /// Renew tokens that will be due within this long, so `get` never has to.
    #[arg(long, default_value = "15m", value_parser = humantime::parse_duration)]
    ahead: Duration,
}

pub fn mode(paths: &Paths, args: ModeArgs) -> anyhow::Result<ExitCode> {
    let pattern = args.registry.contains('*');
    let host = section_of(&args.registry)?;
    let mut config = Config::load(paths)?;
    let mut settings = keeper::registry(&config, &host);
    let changed = args.mode.is_some()
        || args.ca_file.is_some()
        || args.no_ca_file
        || args.allow_http
        || args.https_only
        || !args.set.is_empty()
        || !args.unset.is_empty();
    coffer::token::providers::configure(&mut settings, args.mode, &args.set, &args.unset)?;
    if let Some(path) = args.ca_file {
        let path = std::path::absolute(&path)
            .with_context(|| format!("cannot resolve {}", path.display()))?;
        std::fs::metadata(&path).with_context(|| format!("cannot use {}", path.display()))?;
        settings.ca_file = Some(path);
    }
    if args.no_ca_file {
        settings.ca_file = None;
    }
    if args.allow_http {
        settings.allow_http = true;
    }
    if args.https_only {
        settings.allow_http = false;
    }
    if changed {
        if settings == RegistrySettings::default() {
            config.registries.remove(&host);
        } else {
            config.registries.insert(host.clone(), settings.clone());
        }
        config.save(paths)?;
    }
    println!("{host}: {}", describe(&settings));
    if pattern || args.mode.is_none() || !paths.vault().exists() {
        return Ok(ExitCode::SUCCESS);
    }
    // Apply the mode to what is stored now rather than at the next `docker login`.
    let credentials = Credentials::open(paths.clone())?;
    let keeper = Keeper::new(paths.clone());
    let mut failed = false;
    for summary in entries_of(&credentials, &host)? {
        let key = ServerUrl::parse(&summary.server_url)?.key();
        match keeper.apply_mode(credentials.backend(), &key, settings.mode, &config)? {
            Applied::HandsOutCredential => println!(
                "{}: hands out the stored credential",
                super::table::printable(&summary.server_url)
            ),
            Applied::Exchanged(renewal) => {
                failed |= report(&summary.server_url, *renewal, settings.mode);
            }
        }
    }
    super::show_warnings(&credentials);
    Ok(exit(failed))
}

/// The `[registries."..."]` key a registry or a pattern is kept under.
fn section_of(registry: &str) -> anyhow::Result<String> {
    if !registry.contains('*') {
        return Ok(ServerUrl::parse(registry)?.host().to_owned());
    }
    if !coffer::token::settings::valid_pattern(registry) {
        bail!(
            "`{registry}` is not a registry pattern: `*` stands for one whole label of a host name (`*.dkr.ecr.*.amazonaws.com`) or the start of one (`*-docker.pkg.dev`), beside at least two literal labels"
        );
    }
    Ok(registry.to_ascii_lowercase())
}

pub fn status(paths: &Paths, json: bool) -> anyhow::Result<()> {
    let config = Config::load(paths)?;
    let list = Credentials::open(paths.clone())?.list()?;
    let now = now();
    let mut rows: Vec<StatusRow> = list
        .iter()
        .map(|summary| {
            let host = ServerUrl::parse(&summary.server_url)
                .map(|u| u.host().to_owned())
                .unwrap_or_default();
            StatusRow::new(summary, keeper::registry(&config, &host).mode, now)
        })
        .collect();
    for (host, settings) in &config.registries {
        if !rows.iter().any(|row| row.host == *host) {
            rows.push(StatusRow::unstored(host, settings.mode));
        }
    }
    let identities = identities(&config);
    for (host, found) in &identities {
        if let Some(row) = rows
            .iter_mut()
            .find(|row| row.host == *host && row.hands_out == "nothing")
        {
            row.hands_out = "identity";
            match found {
                Ok(identity) => row.identity = Some(identity.clone()),
                Err(why) => row.identity_error = Some(why.clone()),
            }
        }
    }
    if json {
        println!("{}", serde_json::to_string_pretty(&rows)?);
    } else {
        print_status(&rows, now);
        print_identities(&identities);
    }
    Ok(())
}

pub fn refresh(paths: &Paths, args: RefreshArgs) -> anyhow::Result<ExitCode> {
    let config = Config::load(paths)?;
    let credentials = Credentials::open(paths.clone())?;
    let keeper = Keeper::new(paths.clone());
    let when = if args.force {
        When::Always
    } else {
        When::Ahead(args.ahead)
    };
    let chosen: Vec<(Summary, Mode)> = match &args.registry {
        Some(registry) => {
            let host = ServerUrl::parse(registry)?.host().to_owned();
            let mode = keeper::registry(&config, &host).mode;
            if mode == Mode::Basic {
                bail!(
                    "{host} is in basic mode and has no token to renew; \
                     switch it with `coffer mode {host} oauth2`"
                );
            }
            let found = entries_of(&credentials, &host)?;
            if found.is_empty() {
                bail!("nothing is stored for {registry}; log in to it first");
            }
            found.into_iter().map(|s| (s, mode)).collect()
        }
        None => credentials
            .list()?
            .into_iter()
            .filter_map(|summary| {
                let host = ServerUrl::parse(&summary.server_url)
                    .ok()?
                    .host()
                    .to_owned();
                let mode = keeper::registry(&config, &host).mode;
                (mode != Mode::Basic).then_some((summary, mode))
            })
            .collect(),
    };
    if chosen.is_empty() {
        println!("no stored registry is in a token mode");
        return Ok(ExitCode::SUCCESS);
    }
    let mut failed = false;
    for (summary, mode) in chosen {
        let key = ServerUrl::parse(&summary.server_url)?.key();
        let renewal = keeper.renew(credentials.backend(), &key, &config, when)?;
        failed |= report(&summary.server_url, renewal, mode);
    }
    super::show_warnings(&credentials);
    Ok(exit(failed))
}

fn entries_of(credentials: &Credentials, host: &str) -> anyhow::Result<Vec<Summary>> {
    Ok(credentials
        .list()?
        .into_iter()
        .filter(|s| ServerUrl::parse(&s.server_url).is_ok_and(|u| u.host() == host))
        .collect())
}

fn describe(settings: &RegistrySettings) -> String {
    let mut text = format!("mode {}", settings.mode.name());
    if let Some(path) = &settings.ca_file {
        text.push_str(&format!(", also trusts {}", path.display()));
    }
    if settings.allow_http {
        text.push_str(", plain HTTP allowed");
    }
    for (key, value) in &settings.options {
        text.push_str(&format!(", {key} = {value}"));
    }
    text
}

/// Prints one line for a renewal; returns whether it failed.
fn report(server_url: &str, renewal: Option<Renewal>, mode: Mode) -> bool {
    let server_url = super::table::printable(server_url);
    let now = now();
    match renewal {
        None => {
            println!("{server_url}: erased meanwhile");
            false
        }
        Some(Renewal::Renewed(entry)) => {
            println!(
                "{server_url}: renewed; clients get {}",
                handed_out(&entry, now)
            );
            false
        }
        Some(Renewal::Fresh(entry)) => {
            println!(
                "{server_url}: fresh; clients get {}",
                handed_out(&entry, now)
            );
            false
        }
        Some(Renewal::Unsaved(entry, error)) => {
            println!(
                "{server_url}: FAILED: renewed, but the token could not be saved: {error}; \
                 clients get {} until the next try",
                handed_out(&entry, now)
            );
            true
        }
        Some(Renewal::Failed(entry, error)) => {
            let fallback = match keeper::handout(mode, token_of(&entry).as_ref(), now) {
                Handout::Token => format!("clients still get {}", handed_out(&entry, now)),
                Handout::Credential => "clients get the stored credential (basic)".to_owned(),
                Handout::TokenFirst => "clients get nothing until a token is minted".to_owned(),
            };
            println!("{server_url}: FAILED: {error}; {fallback}");
            true
        }
    }
}

fn token_of(entry: &Entry) -> Option<TokenSummary> {
    entry.tokens.as_ref().map(TokenSummary::from)
}

fn exit(failed: bool) -> ExitCode {
    if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}

#[derive(Debug, Serialize)]
struct StatusRow {
    registry: String,
    #[serde(skip)]
    host: String,
    mode: &'static str,
    /// `token`, `credential` or `no token`: what `get` answers with now (keeper::handout).
    hands_out: &'static str,
    provider: Option<String>,
    issued_at: Option<u64>,
    expires_at: Option<u64>,
    last_refresh: Option<u64>,
    last_error: Option<Failure>,
    /// A cloud registry without a stored key: the identity `get` would use here.
    #[serde(skip_serializing_if = "Option::is_none")]
    identity: Option<String>,
    /// ...or what was tried, and the setting that fixes it.
    #[serde(skip_serializing_if = "Option::is_none")]
    identity_error: Option<String>,
    /// Since when the issuer refuses the stored credential; no exchange is tried until it is
    /// replaced.
    refused_since: Option<u64>,
    description: Option<String>,
}

impl StatusRow {
    fn new(summary: &Summary, mode: Mode, now: u64) -> StatusRow {
        let tokens = summary.tokens.clone();
        let hands_out = keeper::handout(mode, tokens.as_ref(), now).name();
        let tokens = tokens.unwrap_or(TokenSummary {
            provider: None,
            issued_at: None,
            expires_at: None,
            last_refresh: None,
            last_error: None,
            refused_since: None,
        });
        StatusRow {
            registry: summary.server_url.clone(),
            host: ServerUrl::parse(&summary.server_url)
                .map(|u| u.host().to_owned())
                .unwrap_or_default(),
            mode: mode.name(),
            hands_out,
            provider: tokens.provider,
            issued_at: tokens.issued_at,
            expires_at: tokens.expires_at,
            last_refresh: tokens.last_refresh,
            last_error: tokens.last_error,
            identity: None,
            identity_error: None,
            refused_since: tokens.refused_since,
            description: summary.description.clone(),
        }
    }

    fn unstored(host: &str, mode: Mode) -> StatusRow {
        StatusRow {
            registry: host.to_owned(),
            host: host.to_owned(),
            mode: mode.name(),
            hands_out: "nothing",
            provider: None,
            issued_at: None,
            expires_at: None,
            last_refresh: None,
            last_error: None,
            refused_since: None,
            description: None,
            identity: None,
            identity_error: None,
        }
    }
}

/// One line per cloud registry: the identity `get` would use here, or why there is none.
pub(super) fn print_identities(identities: &[(String, Result<String, String>)]) {
    if identities.is_empty() {
        return;
    }
    println!("\nIDENTITY (cloud registries without a stored key)");
    for (host, found) in identities {
        match found {
            Ok(identity) => println!("  {host}: {identity}"),
            Err(why) => println!("  {host}: none: {why}"),
        }
    }
    println!(
        "  tokens without a vault entry are cached in {}",
        coffer::token::cache::place()
    );
}

fn print_status(rows: &[StatusRow], now: u64) {
    if rows.is_empty() {
        println!("no credentials stored and no registry configured");
        return;
    }
    let header = [
        "REGISTRY",
        "MODE",
        "HANDS OUT",
        "TOKEN",
        "LAST REFRESH",
        "LAST ERROR",
    ];
    let rows = rows.iter().map(|row| {
        let token = match (&row.provider, row.hands_out) {
            (_, "nothing" | "identity") => "-".to_owned(),
            (Some(_), _) => expiry(row.expires_at, now),
            (None, _) => "-".to_owned(),
        };
        let refreshed = row.last_refresh.map_or_else(
            || "never".to_owned(),
            |at| format!("{} ago", duration(now.saturating_sub(at))),
        );
        let error = match (row.refused_since, &row.last_error) {
            (Some(since), _) => refused(since, row.description.as_deref()),
            (None, Some(f)) => format!("{} ago: {}", duration(now.saturating_sub(f.at)), f.message),
            (None, None) => "-".to_owned(),
        };
        [
            row.registry.clone(),
            row.mode.to_owned(),
            row.hands_out.to_owned(),
            token,
            refreshed,
            error,
        ]
    });
    super::table::print(
        &std::iter::once(header.map(str::to_owned))
            .chain(rows)
            .collect::<Vec<_>>(),
    );
}

/// "refused since ..., naming whose credential it is, for status and doctor alike.
pub(super) fn refused(since: u64, description: Option<&str>) -> String {
    let whose = description.map_or_else(|| "no description".to_owned(), |d| format!("{d:?}"));
    format!(
        "REFUSED since {} ({whose}): not tried again until replaced with `coffer login`",
        super::time(since)
    )
}

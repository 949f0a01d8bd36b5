//! The `coffer` command for people. Output for people goes to stdout; errors to stderr.

mod doctor;
mod generate;
mod import;
mod lock;
mod log;
mod login;
mod migrate;
mod passwd;
mod setup;
mod table;
mod token;

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::bail;
use clap::{Parser, Subcommand};

use std::io::{IsTerminal, Write};

use coffer::backend::Sealing;
use coffer::credentials::Credentials;
use coffer::paths::Paths;
use coffer::store::Summary;
use coffer::unlock;
use coffer::vault::crypto::KdfParams;
use coffer::{export, files, kubelet};

#[derive(Debug, Parser)]
#[command(
    name = "coffer",
    version,
    about = "Manage the encrypted vault behind docker-credential-coffer",
    after_long_help = ENVIRONMENT
)]
pub struct Cli {
    /// Use an isolated set of credentials (its own vault), e.g. one per service.
    #[arg(long, global = true, env = "COFFER_PROFILE", value_name = "NAME")]
    profile: Option<String>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Create a new, empty vault, sealed by a key in the OS keychain on a desktop and by a
    /// passphrase elsewhere, and record it in config.toml as the store in use.
    #[command(
        after_help = "Examples:\n  coffer init\n  COFFER_PASSPHRASE_FILE=~/.config/coffer/pass coffer init --sealing passphrase"
    )]
    Init {
        /// Argon2id memory in MiB (at least 19, OWASP's minimum).
        #[arg(long, default_value_t = KdfParams::DEFAULT.memory_kib / 1024)]
        kdf_memory_mib: u32,
        /// Argon2id iterations (at least 2).
        #[arg(long, default_value_t = KdfParams::DEFAULT.iterations)]
        kdf_iterations: u32,
        /// What seals the vault: a random key kept in the OS keychain, or a passphrase.
        #[arg(long, value_enum, default_value = "auto")]
        sealing: Sealing,
    },
    /// List stored credentials: registry, username, created, last used. Never a secret.
    #[command(after_help = "Examples:\n  coffer ls\n  coffer ls --json | jq '.[].server_url'")]
    Ls {
        /// One JSON array, for scripts.
        #[arg(long)]
        json: bool,
    },
    /// Say whose credential a stored entry is (kept in its encrypted record); "" clears it.
    #[command(
        after_help = "Examples:\n  coffer describe ghcr.io \"ci-runner-7, team payments\"\n  coffer describe ghcr.io \"\""
    )]
    Describe {
        /// The registry as you would give it to `docker login`.
        registry: String,
        /// One line, up to 200 characters: the machine, the team, the purpose.
        text: String,
    },
    /// Remove the credentials stored for a registry.
    #[command(after_help = "Example:\n  coffer rm ghcr.io")]
    Rm {
        /// The registry as you would give it to `docker login`.
        registry: String,
    },
    /// Change the vault's passphrase (the current one first, then the new one twice), keeping
    /// every entry; --rotate-key also replaces the key that encrypts them.
    #[command(
        after_help = "Examples:\n  coffer passwd\n  coffer passwd --rotate-key\n  COFFER_NEW_PASSPHRASE_FILE=new.txt coffer passwd --update-passphrase-file"
    )]
    Passwd(passwd::PasswdArgs),
    /// Move every entry to the OS keychain or the file vault, or copy them into the central
    /// store (OpenBao/Vault), and make that the store in use.
    #[command(
        after_help = "Examples:\n  coffer migrate --to keychain\n  coffer migrate --to file\n  coffer migrate --to openbao --dry-run"
    )]
    Migrate {
        /// The store to move to.
        #[arg(long, value_enum)]
        to: coffer::config::Backend,
        /// With --to openbao: say what would be added or replaced in the central store, and
        /// write nothing.
        #[arg(long)]
        dry_run: bool,
    },
    /// Import credentials from docker's config.json, podman's auth.json or another helper.
    #[command(
        subcommand,
        after_help = "Examples:\n  coffer import docker --scrub\n  coffer import pass"
    )]
    Import(import::Source),
    /// Check the set-up: docker's configuration, the helper on PATH, the vault, plaintext
    /// copies, files left by root, and the recent failures docker did not show.
    #[command(after_help = "Example:\n  coffer doctor")]
    Doctor,
    /// Show the store in use; for the central store (OpenBao/Vault) its server, login, token
    /// lease, cache and last error, from this node's memory, without asking the server.
    #[command(after_help = "Example:\n  coffer status")]
    Status,
    /// Delete every copy of docker's or podman's configuration that holds plaintext logins
    /// (backups made by setup, import or by hand), once your logins work through coffer.
    #[command(after_help = "Example:\n  coffer ls && coffer forget-plaintext")]
    ForgetPlaintext,
    /// Write credentials for hosts without a helper: docker config, Kubernetes Secret, podman
    /// auth.json, rkt, Mesos or Butane.
    #[command(
        after_help = "Examples:\n  coffer export k8s-secret --registry ghcr.io --name regcred --namespace apps | kubectl apply -f -\n  coffer export docker-config --out /srv/ci/.docker/config.json\n  coffer export rkt --out /etc/rkt/auth.d"
    )]
    Export {
        format: export::Format,
        /// Only this registry (repeat for several); all when absent.
        #[arg(long = "registry", value_name = "REGISTRY")]
        registries: Vec<String>,
        /// Write to this file (0600, atomically) instead of stdout; a folder for rkt.
        #[arg(long, value_name = "PATH")]
        out: Option<PathBuf>,
        /// The Secret's name (k8s-secret).
        #[arg(long, default_value = "regcred")]
        name: String,
        /// The Secret's namespace (k8s-secret).
        #[arg(long)]
        namespace: Option<String>,
        /// Where the Butane config writes the docker config (butane).
        #[arg(long, default_value = "/root/.docker/config.json")]
        path: String,
        /// Annotate the Secret with the entries' descriptions (k8s-secret).
        #[arg(long)]
        annotate_description: bool,
    },
    /// Answer a kubelet's CredentialProviderRequest (stdin) with a CredentialProviderResponse.
    #[command(
        after_help = "Example (what a kubelet does):\n  echo '{\"apiVersion\":\"credentialprovider.kubelet.k8s.io/v1\",\"kind\":\"CredentialProviderRequest\",\"image\":\"ghcr.io/org/app:1\"}' | coffer kubelet-credential-provider"
    )]
    KubeletCredentialProvider,
    /// Make docker (credsStore) or podman, skopeo and buildah (registries.conf.d) use coffer.
    #[command(
        after_help = "Examples:\n  coffer setup docker\n  coffer setup podman\n  coffer setup --undo docker"
    )]
    Setup {
        tool: setup::Tool,
        /// Put back what was there before coffer (docker: the previous credsStore).
        #[arg(long)]
        undo: bool,
    },
    /// Write man pages or shell completions into a folder (for install.sh and packages).
    #[command(
        hide = true,
        after_help = "Examples:\n  coffer generate man target/man\n  coffer generate completions target/completions"
    )]
    Generate { what: generate::What, dir: PathBuf },
    /// Show or set how coffer answers for a registry: basic, oauth2 or auto (the token vault).
    Mode(token::ModeArgs),
    /// Store a registry's long-lived credential (an access key, a key file, a client secret)
    /// from stdin or a file, optionally setting its mode first, and mint its first token.
    Login(login::LoginArgs),
    /// The token vault's state.
    #[command(subcommand, after_help = "Example:\n  coffer token status")]
    Token(token::TokenCommand),
    /// Renew derived tokens ahead of their expiry (what the systemd timer runs).
    Refresh(token::RefreshArgs),
    /// Show the access log: which process asked for which registry's credentials, and when.
    #[command(
        after_help = "Examples:\n  coffer log --tail 20\n  coffer log --json | jq 'select(.action == \"get\")'"
    )]
    Log {
        /// Only the last N events.
        #[arg(long, value_name = "N")]
        tail: Option<usize>,
        /// One JSON object per line, for scripts.
        #[arg(long)]
        json: bool,
    },
    /// Open the vault once; until the timeout, docker gets credentials with no passphrase.
    #[command(
        after_help = "Examples:\n  coffer unlock\n  coffer unlock --timeout 8h\n  coffer unlock --timeout 0   # until `coffer lock` or logout\n\nThe default timeout is 15m, or `timeout` in the [unlock] section of config.toml."
    )]
    Unlock {
        /// How long to stay unlocked: 90s, 15m, 8h, 1h30m, or 0 (any zero, 0s too) for until
        /// `coffer lock`.
        #[arg(long, value_name = "DURATION")]
        timeout: Option<unlock::cache::Timeout>,
    },
    /// Forget the unlocked vault's key now.
    #[command(after_help = "Example:\n  coffer lock")]
    Lock,
    /// The process that keeps a vault's key or a chain-mode token where the kernel keyring is
    /// unavailable.
    #[command(
        hide = true,
        after_help = "Example (what `coffer unlock` runs, handing it the key on stdin):\n  coffer agent --socket $XDG_RUNTIME_DIR/coffer-agent/vault-<vault id>.sock --slot vault-<vault id> --length 32 --expires-at 1700000900"
    )]
    Agent(lock::AgentArgs),
}

/// The variables coffer reads, for `--help` and the man pages.
const ENVIRONMENT: &str = "Environment:
  COFFER_HOME                 the vault's folder
  COFFER_PASSPHRASE_FILE      a 0600 file holding the passphrase
  COFFER_PASSPHRASE           the passphrase (the least safe source)
  COFFER_NEW_PASSPHRASE_FILE  the new passphrase, for `coffer passwd` without a terminal
  COFFER_PROFILE              an isolated set of credentials (--profile)
  COFFER_BACKEND              auto, keychain, file or openbao
  COFFER_UNLOCK_MECHANISM     keyring or agent: where `coffer unlock` keeps the key, and
                              chain mode its tokens
  DOCKER_CONFIG               the folder of docker's config.json";

/// Where the passphrase comes from, for the man pages.
pub(crate) const PASSPHRASE_SOURCES: &str = "Passphrase sources:
The first that is set is used; with none, and no unlocked key, a command fails at once and says
what to do (docker hides the helper's words, so the helper also tells the terminal, if any).
  1. COFFER_PASSPHRASE_FILE: the first line of a 0600 file
  2. $CREDENTIALS_DIRECTORY/coffer-passphrase: a systemd credential (LoadCredential=)
  3. COFFER_PASSPHRASE: the variable itself (visible to your other processes)
  4. a prompt on /dev/tty, when there is a terminal
`coffer unlock` keeps the vault's key in the kernel keyring (or the coffer agent) until its
timeout: then no source is needed.";

/// The files coffer reads and writes, for the man pages.
pub(crate) const FILES: &str = "Files:
  ~/.local/share/coffer/vault.coffer   the vault (COFFER_HOME/vault.coffer), 0600 in a 0700 folder
  ~/.local/share/coffer/access.log     one line per credential action, never a secret (`coffer log`)
  ~/.local/share/coffer/erase-pending.json  logouts the vault was locked for, finished later
  ~/.config/coffer/config.toml         settings: every one in `man coffer-config`
  ~/.config/coffer/setup.json          what `coffer setup` replaced, for --undo
  ~/.docker/config.json                docker's configuration (DOCKER_CONFIG/config.json)
  config.json.<time>.bak               a backup made by setup; .plaintext.bak when it holds secrets
  ~/.config/containers/registries.conf.d/coffer.conf  written by `coffer setup podman`";

pub fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(code) => code,
        Err(error) => {
            eprintln!("coffer: {}", one_message(&error));
            ExitCode::FAILURE
        }
    }
}

/// What the library had to tell besides its results (a stale token served, an access log that
/// cannot be written), on stderr.
fn show_warnings(credentials: &Credentials) {
    for warning in credentials.warnings() {
        eprintln!("coffer: {warning}");
    }
}

/// The error and its causes on one line. A library error says its typed cause itself, in safe
/// words, so the chain stops there: its sources' own text may quote input, and would repeat
/// what was said ("No space left on device: No space left on device").
fn one_message(error: &anyhow::Error) -> String {
    let mut text = String::new();
    for cause in error.chain() {
        let said = cause.to_string();
        if !text.contains(&said) {
            if !text.is_empty() {
                text.push_str(": ");
            }
            text.push_str(&said);
        }
        if cause.is::<coffer::Error>() {
            break;
        }
    }
    text
}

fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    // The agent runs with an empty environment and needs no paths.
    if let Command::Agent(args) = cli.command {
        return Ok(lock::agent(args));
    }
    // Packaging runs this as root with any HOME; it touches no user file.
    if let Command::Generate { what, dir } = &cli.command {
        generate::run(*what, dir)?;
        return Ok(ExitCode::SUCCESS);
    }
    let paths = Paths::for_profile(cli.profile.as_deref())?;
    match cli.command {
        Command::Init {
            kdf_memory_mib,
            kdf_iterations,
            sealing,
        } => init(&paths, kdf_memory_mib, kdf_iterations, sealing)?,
        Command::Ls { json } => ls(&paths, json)?,
        Command::Describe { registry, text } => describe(&paths, &registry, &text)?,
        Command::Rm { registry } => rm(&paths, &registry)?,
        Command::Passwd(args) => passwd::run(&paths, args)?,
        Command::Migrate { to, dry_run } => migrate::run(&paths, to, dry_run)?,
        Command::Import(source) => import::run(&paths, source)?,
        Command::Doctor => return Ok(doctor::run(&paths)),
        Command::Status => doctor::status(&paths)?,
        Command::ForgetPlaintext => forget_plaintext()?,
        Command::Export {
            format,
            registries,
            out,
            name,
            namespace,
            path,
            annotate_description,
        } => {
            let options = export::Options {
                name,
                namespace,
                path,
                annotate_description,
            };
            export_to(paths, format, &registries, out.as_deref(), options)?;
        }
        Command::KubeletCredentialProvider => return kubelet_provider(paths),
        Command::Setup { tool, undo } => setup::run(&paths, tool, undo)?,
        Command::Generate { .. } => unreachable!("generate runs before the paths are looked up"),
        Command::Mode(args) => return token::mode(&paths, args),
        Command::Login(args) => return login::run(&paths, args),
        Command::Token(token::TokenCommand::Status { json }) => token::status(&paths, json)?,
        Command::Token(token::TokenCommand::Mint) => return token::mint(),
        Command::Refresh(args) => return token::refresh(&paths, args),
        Command::Log { tail, json } => log::run(&paths, tail, json)?,
        Command::Unlock { timeout } => lock::unlock(&paths, timeout)?,
        Command::Lock => lock::lock(&paths)?,
        Command::Agent(_) => unreachable!("the agent starts before the paths are looked up"),
    }
    Ok(ExitCode::SUCCESS)
}

/// `coffer init`: the library decides and creates; this says what it made.
fn init(paths: &Paths, memory_mib: u32, iterations: u32, sealing: Sealing) -> anyhow::Result<()> {
    let in_keychain = coffer::backend::create_vault(paths, memory_mib, iterations, sealing)?;
    println!(
        "created the vault at {}, sealed by {}; backend = \"file\" written to {}",
        paths.vault().display(),
        if in_keychain {
            "a random key kept in the OS keychain (no passphrase)"
        } else {
            "your passphrase"
        },
        paths.config().display()
    );
    Ok(())
}

/// `coffer ls`: the table (or JSON) of what is stored, and erases finished meanwhile.
fn ls(paths: &Paths, json: bool) -> anyhow::Result<()> {
    let credentials = Credentials::open(paths.clone())?;
    let finished = credentials.settle_pending().unwrap_or_default();
    let list = match credentials.list() {
        Ok(list) => list,
        Err(error) => {
            // What the person cannot see in a locked vault, they still learn.
            for pending in credentials.pending_erases().unwrap_or_default() {
                eprintln!("{}", pending_line(&pending));
            }
            return Err(error.into());
        }
    };
    if json {
        println!("{}", serde_json::to_string_pretty(&list)?);
    } else {
        print_table(&list);
    }
    show_warnings(&credentials);
    for done in finished {
        eprintln!(
            "erased {}: the logout of {} had failed ({}); finished now",
            done.registry,
            time(done.at),
            done.reason
        );
    }
    Ok(())
}

fn describe(paths: &Paths, registry: &str, text: &str) -> anyhow::Result<()> {
    let description = coffer::store::description::description(text)?;
    let credentials = Credentials::open(paths.clone())?;
    let described = credentials.describe(registry, description.clone())?;
    show_warnings(&credentials);
    match described {
        Some(url) => match description {
            Some(text) => println!("{url}: {text}"),
            None => println!("{url}: description removed"),
        },
        None => bail!("nothing is stored for {registry}; `coffer ls` shows what is"),
    }
    Ok(())
}

fn rm(paths: &Paths, registry: &str) -> anyhow::Result<()> {
    let credentials = Credentials::open(paths.clone())?;
    let removed = credentials.erase(registry)?;
    show_warnings(&credentials);
    match removed {
        Some(removed) => println!("removed {removed}"),
        None => bail!("nothing is stored for {registry}; `coffer ls` shows what is"),
    }
    Ok(())
}

fn forget_plaintext() -> anyhow::Result<()> {
    let found = coffer::auth_file::plaintext_files(&coffer::auth_file::config_dirs());
    let removed = coffer::auth_file::remove_copies(&found)?;
    for path in &removed {
        println!("removed {}", path.display());
    }
    if removed.is_empty() {
        println!("no plaintext copy found");
    }
    for live in found.iter().filter(|f| f.live) {
        println!(
            "kept {}: tools read it, and it still holds {}: {}",
            live.path.display(),
            plural(live.logins, "plaintext login", "plaintext logins"),
            live.advice()
        );
    }
    Ok(())
}

/// `coffer export`: the chosen credentials in a format, to a file, a folder or stdout.
fn export_to(
    paths: Paths,
    format: export::Format,
    registries: &[String],
    out: Option<&Path>,
    options: export::Options,
) -> anyhow::Result<()> {
    if options.annotate_description && format != export::Format::K8sSecret {
        bail!("--annotate-description applies to k8s-secret only");
    }
    let credentials = Credentials::open(paths)?;
    let chosen = export::select(&credentials, registries)?;
    show_warnings(&credentials);
    if chosen.is_empty() {
        bail!(
            "no credentials stored; nothing to export (`docker login` or `coffer login` \
             stores some)"
        );
    }
    let output = export::render(format, &chosen, &options)?;
    write_export(output, out)?;
    let count = plural(chosen.len(), "credential", "credentials");
    match export::earliest_expiry(&chosen) {
        Some(at) => eprintln!(
            "exported {count}; the earliest token expires at {} (in {}): export again before then",
            time(at),
            humantime::format_duration(Duration::from_secs(
                at.saturating_sub(coffer::clock::now())
            ))
        ),
        None => eprintln!("exported {count}; none of them expires"),
    }
    Ok(())
}

/// `coffer kubelet-credential-provider`: the kubelet's request on stdin, the answer on stdout,
/// warnings on stderr (the kubelet's log).
fn kubelet_provider(paths: Paths) -> anyhow::Result<ExitCode> {
    let config = coffer::config::Config::load(&paths)?;
    let log = coffer::audit::AccessLog::new(paths.access_log());
    let answer = kubelet::answer(std::io::stdin().lock(), &config, &log, || {
        Credentials::open(paths)
    })?;
    std::io::stdout().write_all(&answer.response)?;
    for warning in &answer.warnings {
        eprintln!("coffer: {warning}");
    }
    if let Some(notice) = &answer.notice {
        eprintln!("coffer: {notice}");
    }
    Ok(if answer.refused {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

/// Exports go to a 0600 file written atomically, a 0700 folder of such files, or stdout.
fn write_export(output: export::Output, out: Option<&Path>) -> anyhow::Result<()> {
    match (output, out) {
        (export::Output::Single(bytes), Some(path)) => files::write_atomic(path, &bytes)?,
        (export::Output::Single(bytes), None) => {
            if std::io::stdout().is_terminal() && std::str::from_utf8(&bytes).is_err() {
                bail!("the archive is binary: give --out FILE or redirect stdout");
            }
            std::io::stdout().write_all(&bytes)?;
        }
        (export::Output::PerRegistry(documents), Some(dir)) => {
            files::ensure_private_dir(dir)?;
            for (name, bytes) in documents {
                // Names coffer chose, in a folder it was given: a link there is replaced.
                files::replace_atomic(&dir.join(name), &bytes, 0o600)?;
            }
        }
        (export::Output::PerRegistry(documents), None) => {
            let mut stdout = std::io::stdout().lock();
            for (_, bytes) in documents {
                stdout.write_all(&bytes)?;
            }
        }
    }
    Ok(())
}

fn print_table(list: &[Summary]) {
    if list.is_empty() {
        println!("no credentials stored");
        return;
    }
    let header = [
        "REGISTRY",
        "USERNAME",
        "CREATED",
        "LAST USED",
        "DESCRIPTION",
    ]
    .map(str::to_owned);
    let rows = list.iter().map(|s| {
        [
            s.server_url.clone(),
            s.username.clone(),
            time(s.created),
            s.last_used.map_or_else(|| "never".to_owned(), time),
            s.description.clone().unwrap_or_else(|| "-".to_owned()),
        ]
    });
    table::print(&std::iter::once(header).chain(rows).collect::<Vec<_>>());
}

/// "ghcr.io: logout failed (vault locked) at 2026-...; still stored".
pub(crate) fn pending_line(pending: &coffer::pending_erase::Pending) -> String {
    format!(
        "{}: logout failed ({}) at {}; still stored until a coffer command opens the vault \
         (`coffer unlock` finishes it)",
        pending.registry,
        pending.reason,
        time(pending.at)
    )
}

/// "1 entry", "2 entries": every count people read goes through here.
pub(crate) fn plural(count: usize, one: &str, many: &str) -> String {
    if count == 1 {
        format!("1 {one}")
    } else {
        format!("{count} {many}")
    }
}

fn time(unix: u64) -> String {
    coffer::clock::rfc3339(unix)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_that_repeat_their_cause_say_it_once() {
        let full = std::io::Error::from_raw_os_error(libc::ENOSPC);
        let error = anyhow::Error::new(files::FileError::Io {
            action: "write",
            path: "/v".into(),
            source: full,
        })
        .context("the passphrase was not changed");
        let text = one_message(&error);
        assert_eq!(text.matches("No space left on device").count(), 1, "{text}");
        assert!(
            text.starts_with("the passphrase was not changed: cannot write /v: "),
            "{text}"
        );
    }
}

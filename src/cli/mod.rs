//! The `coffer` command for people. Output for people goes to stdout; errors to stderr.

mod doctor;
mod lock;

use std::process::ExitCode;
use std::time::{Duration, UNIX_EPOCH};

use anyhow::{Context, bail};
use clap::{Parser, Subcommand};
use secrecy::ExposeSecret;

use crate::credentials::Credentials;
use crate::paths::Paths;
use crate::store::Summary;
use crate::store::file::FileStore;
use crate::unlock::{self, Unlocker, passphrase};
use crate::vault::crypto::KdfParams;

#[derive(Debug, Parser)]
#[command(
    name = "coffer",
    version,
    about = "Manage the encrypted vault behind docker-credential-coffer"
)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Create a new, empty vault sealed by a passphrase.
    #[command(after_help = "Example:\n  COFFER_PASSPHRASE_FILE=~/.config/coffer/pass coffer init")]
    Init {
        /// Argon2id memory in MiB (at least 19, OWASP's minimum).
        #[arg(long, default_value_t = KdfParams::DEFAULT.memory_kib / 1024)]
        kdf_memory_mib: u32,
        /// Argon2id iterations (at least 2).
        #[arg(long, default_value_t = KdfParams::DEFAULT.iterations)]
        kdf_iterations: u32,
    },
    /// List stored credentials: registry, username, created, last used. Never a secret.
    #[command(after_help = "Examples:\n  coffer ls\n  coffer ls --json | jq '.[].server_url'")]
    Ls {
        /// One JSON array, for scripts.
        #[arg(long)]
        json: bool,
    },
    /// Remove the credentials stored for a registry.
    #[command(after_help = "Example:\n  coffer rm ghcr.io")]
    Rm {
        /// The registry as you would give it to `docker login`.
        registry: String,
    },
    /// Change the vault's passphrase, keeping every entry.
    #[command(
        after_help = "Examples:\n  coffer passwd\n  COFFER_NEW_PASSPHRASE_FILE=new.txt coffer passwd"
    )]
    Passwd,
    /// Check the set-up: docker's configuration, the helper on PATH, the vault.
    #[command(after_help = "Example:\n  coffer doctor")]
    Doctor,
    /// Open the vault once; until the timeout, docker gets credentials with no passphrase.
    #[command(
        after_help = "Examples:\n  coffer unlock\n  coffer unlock --timeout 8h\n  coffer unlock --timeout 0   # until `coffer lock` or logout\n\nThe default timeout is 15m, or `timeout` in the [unlock] section of config.toml."
    )]
    Unlock {
        /// How long to stay unlocked: 90s, 15m, 8h, 1h30m, or 0 for until `coffer lock`.
        #[arg(long, value_name = "DURATION")]
        timeout: Option<unlock::cache::Timeout>,
    },
    /// Forget the unlocked vault's key now.
    #[command(after_help = "Example:\n  coffer lock")]
    Lock,
    /// The process `coffer unlock` starts where the kernel keyring is unavailable.
    #[command(
        hide = true,
        after_help = "Example (what `coffer unlock` runs, handing it the key on stdin):\n  coffer agent --socket $XDG_RUNTIME_DIR/coffer-agent/<vault id>.sock --vault <vault id> --expires-at 1700000900"
    )]
    Agent(lock::AgentArgs),
}

pub fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli.command) {
        Ok(code) => code,
        Err(error) => {
            eprintln!("coffer: {error:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(command: Command) -> anyhow::Result<ExitCode> {
    // The agent runs with an empty environment and needs no paths.
    if let Command::Agent(args) = command {
        return Ok(lock::agent(args));
    }
    let paths = Paths::from_env()?;
    match command {
        Command::Init {
            kdf_memory_mib,
            kdf_iterations,
        } => {
            let params = KdfParams {
                memory_kib: kdf_memory_mib.saturating_mul(1024),
                iterations: kdf_iterations,
                parallelism: 1,
            };
            if !params.within_bounds() {
                bail!(
                    "Argon2id parameters out of bounds: memory {}..={} MiB, iterations {}..={}",
                    KdfParams::MIN.memory_kib / 1024,
                    KdfParams::MAX.memory_kib / 1024,
                    KdfParams::MIN.iterations,
                    KdfParams::MAX.iterations
                );
            }
            let store = FileStore::new(
                paths.clone(),
                Unlocker {
                    new_vault_params: Some(params),
                },
            );
            store.init()?;
            println!("created the vault at {}", paths.vault().display());
        }
        Command::Ls { json } => {
            let list = Credentials::from_env()?.list()?;
            if json {
                println!("{}", serde_json::to_string_pretty(&list)?);
            } else {
                print_table(&list);
            }
        }
        Command::Rm { registry } => match Credentials::from_env()?.erase(&registry)? {
            Some(removed) => println!("removed {removed}"),
            None => bail!("nothing is stored for {registry}; `coffer ls` shows what is"),
        },
        Command::Passwd => {
            let store = FileStore::new(paths, Unlocker::default());
            let new = passphrase::read_new()?;
            let count = store
                .rekey(|old| {
                    unlock::key_for_new_passphrase(
                        new.expose_secret(),
                        KdfParams::DEFAULT,
                        Some(old),
                    )
                })
                .context("the passphrase was not changed")?;
            println!("passphrase changed; {count} entries kept");
        }
        Command::Doctor => return Ok(doctor::run(&paths)),
        Command::Unlock { timeout } => lock::unlock(&paths, timeout)?,
        Command::Lock => lock::lock(&paths)?,
        Command::Agent(_) => unreachable!("the agent starts before the paths are looked up"),
    }
    Ok(ExitCode::SUCCESS)
}

fn print_table(list: &[Summary]) {
    if list.is_empty() {
        println!("no credentials stored");
        return;
    }
    let width = list
        .iter()
        .map(|s| s.server_url.len())
        .max()
        .unwrap_or(0)
        .max(8);
    let user_width = list
        .iter()
        .map(|s| s.username.len())
        .max()
        .unwrap_or(0)
        .max(8);
    println!(
        "{:width$}  {:user_width$}  {:20}  LAST USED",
        "REGISTRY", "USERNAME", "CREATED"
    );
    for s in list {
        let last = s.last_used.map_or_else(|| "never".to_owned(), time);
        println!(
            "{:width$}  {:user_width$}  {:20}  {last}",
            s.server_url,
            s.username,
            time(s.created)
        );
    }
}

fn time(unix: u64) -> String {
    humantime::format_rfc3339_seconds(UNIX_EPOCH + Duration::from_secs(unix)).to_string()
}

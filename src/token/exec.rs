//! The `exec` provider: a configured command prints the secret (`gh auth token`,
//! `aws ecr get-login-password`, `gcloud auth print-access-token`, a Vault CLI), and coffer
//! caches and renews it like any other token.
//!
//! ```toml
//! [registries."ghcr.io"]
//! mode = "exec"
//! command = ["gh", "auth", "token"]   # program and arguments, run directly: no shell
//! username = "x-access-token"         # what `get` answers as Username
//! lifetime = "1h"                     # how long the output is good for (default 1h)
//! timeout = "20s"                     # default: `timeout` under [tokens]
//! env = ["GH_CONFIG_DIR"]             # variables passed on besides PATH and HOME
//! show_stderr = false                 # pass the command's stderr on (it may hold secrets)
//! ```
//!
//! The command runs without a shell (a value such as `; rm -rf ~` is one literal argument), with
//! stdin closed, an environment of PATH, HOME and the listed variables only, in its own process
//! group, which is killed when the timeout passes. Its stdout is the secret: one line, at most
//! 64 KiB (`MAX_OUTPUT`), one trailing newline dropped. Its stderr is discarded unless
//! `show_stderr` is set, and neither output ever reaches an error message.

use crate::token::settings::SettingsError;
use std::io::Read;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use secrecy::SecretString;
use serde::Deserialize;
use zeroize::Zeroizing;

use super::TokenError;
use super::http::unix;
use super::provider::{LongLived, Minted, Provider, Target};
use super::shared;
use super::state::MIN_LIFETIME;
use crate::os::process_tree::Tree;

/// A token, a password or a JWT is far smaller; more is not a secret but a mistake.
const MAX_OUTPUT: u64 = 64 * 1024;
const DEFAULT_LIFETIME: Duration = Duration::from_secs(3600);
/// Variables every command gets, when coffer has them.
const BASE_ENV: [&str; 2] = ["PATH", "HOME"];

#[derive(Debug)]
pub struct Exec;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Settings {
    #[serde(default)]
    command: Vec<String>,
    #[serde(default)]
    username: Option<String>,
    #[serde(default)]
    lifetime: Option<String>,
    #[serde(default)]
    timeout: Option<String>,
    #[serde(default)]
    env: Vec<String>,
    #[serde(default)]
    show_stderr: bool,
}

/// The settings, complete and parsed.
#[derive(Debug)]
pub(crate) struct Job {
    program: String,
    args: Vec<String>,
    username: String,
    lifetime: Duration,
    timeout: Option<Duration>,
    env: Vec<String>,
    show_stderr: bool,
}

impl Provider for Exec {
    fn name(&self) -> &'static str {
        "exec"
    }

    fn check(&self, options: &toml::Table) -> Result<(), SettingsError> {
        shared::check::<Settings>(options)
    }

    fn mint(&self, target: &Target<'_>, _: &LongLived<'_>) -> Result<Minted, TokenError> {
        let job = Job::from_options(&target.settings.options).map_err(|e| e.in_mode("exec"))?;
        let deadline = job
            .timeout
            .map_or(target.http.deadline(), |t| Instant::now() + t);
        job.mint(deadline, None)
    }
}

impl Job {
    /// Runs the command, with `stdin` on its standard input if given (the kubelet provider
    /// hands a pod's service-account token this way), and takes its output as the secret.
    pub(crate) fn mint(
        self,
        deadline: Instant,
        stdin: Option<&[u8]>,
    ) -> Result<Minted, TokenError> {
        let started = unix(std::time::SystemTime::now());
        let secret = self.run(deadline, stdin)?;
        Ok(Minted {
            username: self.username,
            secret,
            issued_at: started,
            expires_at: Some(started.saturating_add(self.lifetime.as_secs())),
        })
    }

    /// The command's own timeout, if its settings give one.
    pub(crate) fn timeout(&self) -> Option<Duration> {
        self.timeout
    }

    pub(crate) fn from_options(options: &toml::Table) -> Result<Job, SettingsError> {
        let settings: Settings = shared::options(options)?;
        let mut command = settings.command.into_iter();
        let program = command
            .next()
            .filter(|p| !p.is_empty())
            .ok_or(SettingsError::invalid(
                "`command` must name a program, e.g. command = [\"gh\", \"auth\", \"token\"]",
            ))?;
        let username =
            settings
                .username
                .filter(|u| !u.is_empty())
                .ok_or(SettingsError::invalid(
                    "`username` is missing: the name clients present with the secret",
                ))?;
        let duration = |name: &str, text: &str| {
            humantime::parse_duration(text)
                .ok()
                .filter(|d| !d.is_zero())
                .ok_or_else(|| {
                    SettingsError::invalid(format!(
                        "`{name}` must be a duration like \"1h\" or \"30s\""
                    ))
                })
        };
        let lifetime = match &settings.lifetime {
            Some(text) => duration("lifetime", text)?,
            None => DEFAULT_LIFETIME,
        };
        if lifetime < MIN_LIFETIME {
            return Err(SettingsError::invalid(format!(
                "`lifetime` must be at least {}: a shorter one would run the command on every pull",
                humantime::format_duration(MIN_LIFETIME)
            )));
        }
        let timeout = match &settings.timeout {
            Some(text) => Some(duration("timeout", text)?),
            None => None,
        };
        Ok(Job {
            program,
            args: command.collect(),
            username,
            lifetime,
            timeout,
            env: settings.env,
            show_stderr: settings.show_stderr,
        })
    }

    fn fail(&self, why: impl Into<String>) -> TokenError {
        TokenError::Command {
            program: self.program.clone(),
            why: why.into(),
        }
    }

    /// Runs the command and returns its one line of output, or kills it at `deadline`.
    fn run(&self, deadline: Instant, stdin: Option<&[u8]>) -> Result<SecretString, TokenError> {
        let mut command = Command::new(&self.program);
        command
            .args(&self.args)
            .env_clear()
            .stdin(if stdin.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(if self.show_stderr {
                Stdio::inherit()
            } else {
                Stdio::null()
            });
        for name in BASE_ENV
            .iter()
            .copied()
            .chain(self.env.iter().map(String::as_str))
        {
            if let Some(value) = std::env::var_os(name) {
                command.env(name, value);
            }
        }
        // Its own process group, and this process the subreaper of all it starts, so that a
        // timeout or a failure also stops whatever it started, even what left the group.
        std::os::unix::process::CommandExt::process_group(&mut command, 0);
        let tree = Tree::start();
        let mut child = command
            .spawn()
            .map_err(|e| self.fail(format!("cannot be started: {}", e.kind())))?;
        if let (Some(input), Some(mut pipe)) = (stdin, child.stdin.take()) {
            // From a thread: a command that never reads cannot hold coffer past the deadline.
            let input = Zeroizing::new(input.to_vec());
            std::thread::spawn(move || {
                let _ = std::io::Write::write_all(&mut pipe, &input);
            });
        }
        let mut stdout = child.stdout.take().expect("stdout is piped");
        let (sender, receiver) = mpsc::channel();
        std::thread::spawn(move || {
            let mut output = Zeroizing::new(Vec::new());
            let read = (&mut stdout)
                .take(MAX_OUTPUT + 1)
                .read_to_end(&mut output)
                .map(|_| output);
            let _ = sender.send(read);
        });
        let left = deadline.saturating_duration_since(Instant::now());
        let output = match receiver.recv_timeout(left) {
            Ok(Ok(output)) if output.len() as u64 <= MAX_OUTPUT => output,
            Ok(Ok(_)) => {
                stop(&mut child, &tree);
                return Err(self.fail(format!("printed more than {MAX_OUTPUT} bytes")));
            }
            Ok(Err(e)) => {
                stop(&mut child, &tree);
                return Err(self.fail(format!("output could not be read: {}", e.kind())));
            }
            Err(_) => {
                stop(&mut child, &tree);
                return Err(self.timed_out());
            }
        };
        let status = match wait_until(&mut child, deadline) {
            Some(status) => status,
            None => {
                stop(&mut child, &tree);
                return Err(self.timed_out());
            }
        };
        if !status.success() {
            // What a failed command left running is no agent of the user's: kill it too.
            tree.kill();
            let how = match status.code() {
                Some(code) => format!("exited with status {code}"),
                None => "was killed by a signal".to_owned(),
            };
            let hint = if self.show_stderr {
                ""
            } else {
                "; run it yourself, or set show_stderr = true, to see its messages"
            };
            return Err(self.fail(format!("{how}{hint}")));
        }
        secret_line(output).map_err(|why| self.fail(why))
    }

    fn timed_out(&self) -> TokenError {
        let allowed = self.timeout.map_or_else(
            || "the `timeout` under [tokens]".to_owned(),
            |t| format!("its {}", humantime::format_duration(t)),
        );
        self.fail(format!(
            "did not finish within {allowed} and was killed; raise `timeout` in the registry's settings if it is that slow"
        ))
    }
}

/// The child's exit status, if it exits before `deadline`.
fn wait_until(child: &mut Child, deadline: Instant) -> Option<ExitStatus> {
    loop {
        match child.try_wait() {
            Ok(Some(status)) => return Some(status),
            Ok(None) if Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(5));
            }
            _ => return None,
        }
    }
}

/// Kills the command and everything it started, and reaps them.
fn stop(child: &mut Child, tree: &Tree) {
    let group = rustix::process::Pid::from_child(child);
    let _ = rustix::process::kill_process_group(group, rustix::process::Signal::KILL);
    let _ = child.kill();
    tree.kill();
    let _ = child.wait();
}

/// The output as a secret: UTF-8, one line, one trailing newline (or CRLF) dropped.
fn secret_line(output: Zeroizing<Vec<u8>>) -> Result<SecretString, &'static str> {
    let text = std::str::from_utf8(&output).map_err(|_| "printed something that is not UTF-8")?;
    let line = text
        .strip_suffix('\n')
        .map_or(text, |t| t.strip_suffix('\r').unwrap_or(t));
    if line.is_empty() {
        return Err("printed nothing");
    }
    if line.contains(['\n', '\r']) {
        return Err("printed more than one line; a token command must print only the secret");
    }
    Ok(SecretString::from(line))
}

#[cfg(test)]
mod tests {
    use secrecy::ExposeSecret;

    use super::*;

    fn line(bytes: &[u8]) -> Result<String, &'static str> {
        secret_line(Zeroizing::new(bytes.to_vec())).map(|s| s.expose_secret().to_owned())
    }

    #[test]
    fn exactly_one_trailing_newline_is_dropped() {
        assert_eq!(line(b"s3cret\n").as_deref(), Ok("s3cret"));
        assert_eq!(line(b"s3cret\r\n").as_deref(), Ok("s3cret"));
        assert_eq!(line(b"s3cret").as_deref(), Ok("s3cret"));
        assert_eq!(line(b" spaced \n").as_deref(), Ok(" spaced "));
        assert!(line(b"two\nlines\n").is_err());
        assert!(line(b"s3cret\n\n").is_err());
        assert!(line(b"\n").is_err());
        assert!(line(b"").is_err());
        assert!(line(&[0xff, 0xfe]).is_err());
    }

    fn table(text: &str) -> toml::Table {
        toml::from_str(text).expect("toml")
    }

    #[test]
    fn settings_need_a_command_and_a_username() {
        let job = Job::from_options(&table(
            "command = [\"gh\", \"auth\", \"token\"]\nusername = \"x\"\nlifetime = \"2h\"",
        ))
        .expect("complete");
        assert_eq!(job.program, "gh");
        assert_eq!(job.args, ["auth", "token"]);
        assert_eq!(job.lifetime, Duration::from_secs(7200));
        assert_eq!(job.timeout, None);
        let error = Job::from_options(&table("username = \"x\"")).expect_err("no command");
        assert!(error.to_string().contains("`command`"), "{error}");
        let error = Job::from_options(&table("command = [\"gh\"]")).expect_err("no username");
        assert!(error.to_string().contains("`username`"), "{error}");
        let error = Job::from_options(&table(
            "command = [\"gh\"]\nusername = \"x\"\nlifetime = \"soon\"",
        ))
        .expect_err("bad lifetime");
        assert!(error.to_string().contains("`lifetime`"), "{error}");
    }

    #[test]
    fn a_lifetime_of_a_nanosecond_is_refused() {
        for text in ["1ns", "3s"] {
            let error = Job::from_options(&table(&format!(
                "command = [\"gh\"]\nusername = \"x\"\nlifetime = \"{text}\""
            )))
            .expect_err(text);
            assert!(error.to_string().contains("at least 4s"), "{error}");
        }
        assert!(Exec.check(&table("comand = [\"gh\"]")).is_err());
        assert!(Exec.check(&table("command = \"gh auth token\"")).is_err());
    }
}

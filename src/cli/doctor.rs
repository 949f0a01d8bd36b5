//! `coffer doctor`: what is configured, what works, and the one command that fixes what does not.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use crate::backend::{self, Backend};
use crate::credentials::Credentials;
use crate::keychain::Keychain;
use crate::paths::Paths;
use crate::protocol::PROGRAM;
use crate::store::Store;
use crate::store::file::FileStore;
use crate::store::keychain::KeychainStore;
use crate::unlock::cache::{self, State};
use crate::unlock::{Unlocker, passphrase};

struct Report {
    problems: usize,
}

impl Report {
    fn ok(&mut self, what: &str) {
        println!("  ok    {what}");
    }

    fn problem(&mut self, what: &str, fix: &str) {
        self.problems += 1;
        println!("  FIX   {what}\n        -> {fix}");
    }

    fn note(&mut self, what: &str) {
        println!("  note  {what}");
    }
}

pub fn run(paths: &Paths) -> ExitCode {
    let mut report = Report { problems: 0 };
    println!("{}", crate::protocol::version());

    println!("docker:");
    check_docker_config(&mut report);

    println!("helper:");
    match find_on_path(PROGRAM) {
        Some(path) => report.ok(&format!("{PROGRAM} is on PATH at {}", path.display())),
        None => report.problem(
            &format!("{PROGRAM} is not on PATH, so docker cannot run it"),
            "run ./install.sh, or add its folder to PATH",
        ),
    }

    println!("store:");
    if check_store(&mut report, paths) == Some(Backend::File) {
        println!("vault:");
        check_vault(&mut report, paths);
    }

    check_refused(&mut report, paths);

    check_identities(&mut report, paths);
    if report.problems == 0 {
        println!("everything looks right");
        ExitCode::SUCCESS
    } else {
        println!("{} problem(s) found", report.problems);
        ExitCode::FAILURE
    }
}

fn check_docker_config(report: &mut Report) {
    let Ok(path) = crate::setup::docker::config_path() else {
        report.problem(
            "cannot tell where docker's config.json is",
            "set DOCKER_CONFIG or HOME",
        );
        return;
    };
    let config: serde_json::Value = match std::fs::read(&path) {
        Ok(bytes) => match serde_json::from_slice(&bytes) {
            Ok(value) => value,
            Err(_) => {
                report.problem(
                    &format!("{} is not valid JSON", path.display()),
                    "repair or move the file aside",
                );
                return;
            }
        },
        Err(_) => serde_json::Value::Null,
    };
    match config.get("credsStore").and_then(|v| v.as_str()) {
        Some("coffer") => report.ok(&format!("credsStore is coffer in {}", path.display())),
        Some(other) => report.problem(
            &format!(
                "credsStore is {other:?} in {}: docker uses that helper, not coffer",
                path.display()
            ),
            "coffer setup docker",
        ),
        None => report.problem(
            &format!("credsStore is not set in {}", path.display()),
            "coffer setup docker",
        ),
    }
    if let Some(helpers) = config.get("credHelpers").and_then(|v| v.as_object()) {
        let ours = helpers
            .values()
            .filter(|v| v.as_str() == Some("coffer"))
            .count();
        if ours > 0 {
            report.note(&format!("{ours} registries use coffer through credHelpers"));
        }
    }
    let plaintext = config.as_object().map_or(0, crate::setup::plaintext_auths);
    if plaintext > 0 {
        report.problem(
            &format!(
                "{plaintext} credential(s) sit unencrypted in the auths of {}",
                path.display()
            ),
            "log in again through coffer (docker login), then remove them from auths",
        );
    }
}

/// Which store serves and why; what is wrong with the keychain when it is not used.
fn check_store(report: &mut Report, paths: &Paths) -> Option<Backend> {
    let (asked, _) = match backend::configured(paths) {
        Ok(setting) => setting,
        Err(error) => {
            report.problem(&error.to_string(), "fix the setting named above");
            return None;
        }
    };
    let keychain = Keychain::open();
    if let Err(why) = &keychain {
        let what = format!("keychain unusable: {why}");
        match asked {
            Backend::Keychain => {
                report.problem(&what, why.fix());
                return None;
            }
            _ => report.note(&format!("{what}\n        -> to use it: {}", why.fix())),
        }
    }
    let (store, choice) = match backend::open(paths) {
        Ok(opened) => opened,
        Err(error) => {
            report.problem(&error.to_string(), "follow the advice in the message above");
            return None;
        }
    };
    report.ok(&format!("store in use: {}", choice.explain()));
    if choice.used == Backend::Keychain {
        match store.list() {
            Ok(list) => report.ok(&format!("the keychain holds {} entries", list.len())),
            Err(error) => report.problem(
                &format!("the keychain does not list: {error}"),
                "follow the advice in the message above",
            ),
        }
        if paths.vault().exists() {
            report.note(&format!(
                "a file vault exists at {} but is not in use: `coffer migrate --to keychain` \
                 moves its entries",
                paths.vault().display()
            ));
        }
    } else if let Ok(keychain) = keychain
        && let Ok(list) = KeychainStore::new(keychain, paths).list()
        && !list.is_empty()
    {
        report.note(&format!(
            "the keychain holds {} entries that are not in use: `coffer migrate --to file` \
             moves them",
            list.len()
        ));
    }
    Some(choice.used)
}

fn check_vault(report: &mut Report, paths: &Paths) {
    let vault = paths.vault();
    let store = FileStore::new(paths.clone(), Unlocker::default());
    if !store.exists() {
        report.note(&format!(
            "no vault yet at {} (the first docker login creates it)",
            vault.display()
        ));
        if passphrase::available_source().is_none() {
            report.problem(
                "no passphrase source is available",
                "set COFFER_PASSPHRASE_FILE, or run in a terminal",
            );
        }
        return;
    }
    report.ok(&format!("vault at {}", vault.display()));
    let keychain_sealed = std::fs::read(&vault)
        .ok()
        .and_then(|bytes| crate::vault::key_header(&bytes).ok())
        .is_some_and(|header| header.sealing == crate::vault::format::Sealing::Keychain);
    let unlocked = check_unlock(report, &store);
    match passphrase::available_source() {
        _ if keychain_sealed => report.ok("sealed by a key in the OS keychain (no passphrase)"),
        Some(source) => report.ok(&format!("passphrase from {source}")),
        None if unlocked => report.note(
            "no passphrase source: when the unlock expires, docker pulls fail until the next `coffer unlock`",
        ),
        None => {
            report.problem(
                "no passphrase source: docker pulls will fail",
                "run `coffer unlock`, or set COFFER_PASSPHRASE_FILE",
            );
            return;
        }
    }
    match store.verify() {
        Ok(count) => report.ok(&format!(
            "vault opens and every record authenticates ({count} entries)"
        )),
        Err(error) => report.problem(
            &format!("the vault does not open: {error}"),
            "follow the advice in the message above",
        ),
    }
}

/// Stored credentials their issuer refuses (revoked, deleted): each one, and whose it is.
fn check_refused(report: &mut Report, paths: &Paths) {
    // What the store section could not open has been reported there already.
    let Ok(list) = Credentials::open(paths.clone()).and_then(|c| c.list()) else {
        return;
    };
    let refused: Vec<_> = list
        .iter()
        .filter_map(|s| Some((s, s.tokens.as_ref()?.refused_since?)))
        .collect();
    if refused.is_empty() {
        return;
    }
    println!("credentials:");
    for (summary, since) in refused {
        report.problem(
            &format!(
                "{}: {}",
                summary.server_url,
                super::token::refused(since, summary.description.as_deref())
            ),
            &format!(
                "store a new credential: `coffer login {}` (see `coffer token status`)",
                summary.server_url
            ),
        );
    }
}

/// Each cloud registry without a stored key: the identity `get` would use here, or what was
/// tried and the setting that fixes it.
fn check_identities(report: &mut Report, paths: &Paths) {
    let Ok(config) = crate::config::Config::load(paths) else {
        return;
    };
    let identities = super::token::identities(&config);
    if identities.is_empty() {
        return;
    }
    println!("cloud identity:");
    for (host, found) in identities {
        match found {
            Ok(identity) => report.ok(&format!("{host}: {identity}")),
            Err(why) => report.problem(&format!("{host}: no identity usable here"), &why),
        }
    }
}

pub(super) fn find_on_path(program: &str) -> Option<PathBuf> {
    std::env::split_paths(&std::env::var_os("PATH")?)
        .map(|dir| dir.join(program))
        .find(|p| is_executable(p))
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// Which unlock mechanisms work here and whether the vault is unlocked; `true` if it is.
fn check_unlock(report: &mut Report, store: &FileStore) -> bool {
    let header = match store.key_header() {
        Ok(header) => header,
        Err(error) => {
            report.problem(
                &format!("cannot read the vault: {error}"),
                "see the message",
            );
            return false;
        }
    };
    let states = match cache::status(header.as_ref().map(|h| &h.vault_id)) {
        Ok(states) => states,
        Err(error) => {
            report.problem(&error.to_string(), "fix or unset the variable");
            return false;
        }
    };
    if let [(only, _)] = states.as_slice() {
        report.note(&format!("{}: only {only} is used", cache::MECHANISM_VAR));
    }
    let mut usable = None;
    for (mechanism, state) in &states {
        match state {
            State::Unavailable(why) => report.note(&format!("{mechanism} is unavailable: {why}")),
            State::Unlocked { expires_at, pid } => {
                let until = match expires_at {
                    Some(at) => format!(
                        "until {} ({} left)",
                        super::time(*at),
                        humantime::format_duration(std::time::Duration::from_secs(
                            at.saturating_sub(cache::now())
                        ))
                    ),
                    None => "until `coffer lock` or logout".to_owned(),
                };
                let pid = pid.map(|pid| format!(", pid {pid}")).unwrap_or_default();
                report.ok(&format!("unlocked in {mechanism}{pid} {until}"));
                return true;
            }
            State::Locked => usable = usable.or(Some(*mechanism)),
        }
    }
    match usable {
        Some(mechanism) => report.note(&format!(
            "locked; `coffer unlock` keeps it open (15m by default) in {mechanism}"
        )),
        None => report.problem(
            "no unlock mechanism works here, so every docker pull needs the passphrase",
            "set COFFER_PASSPHRASE_FILE, or allow keyctl (e.g. the container's seccomp profile)",
        ),
    }
    false
}

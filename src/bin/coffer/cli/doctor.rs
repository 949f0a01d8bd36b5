//! `coffer doctor`: what is configured, what works, and the one command that fixes what does not.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use coffer::audit::{AccessLog, Event, Outcome};
use coffer::auth_file::{self, AuthFile};
use coffer::backend;
use coffer::config::Backend;
use coffer::os::keychain::{Keychain, Unusable};
use coffer::paths::Paths;
use coffer::pending_erase::PendingErases;
use coffer::protocol::PROGRAM;
use coffer::secret_cache::{MECHANISM_VAR, State};
use coffer::store::Store;
use coffer::store::file::FileStore;
use coffer::store::keychain_items::KeychainStore;
use coffer::unlock::cache;
use coffer::unlock::{Unlocker, passphrase};

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
    println!("{}", coffer::protocol::version());

    println!("docker:");
    check_docker_config(&mut report);
    println!("plaintext:");
    check_plaintext(&mut report);

    println!("helper:");
    match find_on_path(PROGRAM) {
        Some(path) => report.ok(&format!("{PROGRAM} is on PATH at {}", path.display())),
        None => report.problem(
            &format!("{PROGRAM} is not on PATH, so docker cannot run it"),
            "run ./install.sh, or add its folder to PATH",
        ),
    }

    println!("store:");
    match check_store(&mut report, paths) {
        Some(Backend::File) => {
            println!("vault:");
            check_vault(&mut report, paths);
        }
        Some(Backend::OpenBao) => {
            println!("central store:");
            check_central_store(&mut report, paths);
        }
        _ => {}
    }
    check_pending_erases(&mut report, paths);
    check_ownership(&mut report, paths);

    println!("recent failures (access log):");
    check_recent_failures(&mut report, paths);

    check_refused(&mut report, paths);
    check_identities(&mut report, paths);

    if report.problems == 0 {
        println!("everything looks right");
        ExitCode::SUCCESS
    } else {
        println!(
            "{} found",
            super::plural(report.problems, "problem", "problems")
        );
        ExitCode::FAILURE
    }
}

fn check_docker_config(report: &mut Report) {
    let Ok(path) = coffer::setup::docker::config_path() else {
        report.problem(
            "cannot tell where docker's config.json is",
            "set DOCKER_CONFIG or HOME",
        );
        return;
    };
    let config = match AuthFile::read(&path) {
        Ok(config) => config,
        Err(error) => {
            report.problem(
                &error.to_string(),
                "fix the file as the message says; docker cannot use it either",
            );
            return;
        }
    };
    let shown = config.path.display();
    match config.string("credsStore") {
        Some("coffer") => report.ok(&format!("credsStore is coffer in {shown}")),
        Some(other) => report.problem(
            &format!("credsStore is {other:?} in {shown}: docker uses that helper, not coffer"),
            "coffer setup docker",
        ),
        None if config.exists() => report.problem(
            &format!("credsStore is not set in {shown}"),
            "coffer setup docker",
        ),
        None => report.problem(
            &format!(
                "credsStore is not set: {shown} does not exist, so docker keeps logins in plaintext"
            ),
            "coffer setup docker",
        ),
    }
    if let Some(helpers) = config.object.get("credHelpers").and_then(|v| v.as_object()) {
        let ours = helpers
            .values()
            .filter(|v| v.as_str() == Some("coffer"))
            .count();
        if ours > 0 {
            report.note(&format!(
                "{} coffer through credHelpers",
                super::plural(ours, "registry uses", "registries use")
            ));
        }
    }
}

/// Every plaintext copy of a login in docker's and podman's folders, with the advice setup and
/// import give for the same file.
fn check_plaintext(report: &mut Report) {
    let found = auth_file::plaintext_files(&auth_file::config_dirs());
    if found.is_empty() {
        report.ok("no plaintext login in docker's or podman's configuration folders");
    }
    for file in found {
        let what = if file.live { "" } else { " (a copy)" };
        report.problem(
            &format!(
                "{} unencrypted in {}{what}",
                super::plural(file.logins, "login sits", "logins sit"),
                file.path.display()
            ),
            &file.advice(),
        );
    }
}

/// `coffer status`: the store in use and, for the central store, what this node holds of it.
pub fn status(paths: &Paths) -> anyhow::Result<()> {
    let (used, origin) = backend::configured(paths)?;
    println!("store: {}", backend::Choice { used, origin }.explain());
    if used == Backend::OpenBao {
        for line in backend::central_store(paths)?
            .status()
            .lines(coffer::clock::now())
        {
            println!("  {line}");
        }
    }
    Ok(())
}

/// The central store: what the cache says, then a live login and listing.
fn check_central_store(report: &mut Report, paths: &Paths) {
    let store = match backend::central_store(paths) {
        Ok(store) => store,
        Err(error) => {
            return report.problem(&error.to_string(), "fix the [openbao] setting named above");
        }
    };
    let status = store.status();
    for line in status.lines(coffer::clock::now()) {
        report.note(&line);
    }
    if status.served_stale_at.is_some() {
        report.note("entries were served from this node's cache while no OpenBao server answered (the access log says when)");
    }
    match store.check() {
        Ok(status) => report.ok(&format!(
            "logged in to {} as {} and read {}",
            status.servers.join(", "),
            status.identity,
            status.mount
        )),
        Err(error) => report.problem(
            &error.to_string(),
            "fix what the line names; until then nodes serve cached entries for stale_for, then fail",
        ),
    }
}

/// Which store serves and why, whether this context reaches it, and entries split across the
/// item store and the file vault, with the one command that merges them.
fn check_store(report: &mut Report, paths: &Paths) -> Option<Backend> {
    let (asked, origin) = match backend::configured(paths) {
        Ok(setting) => setting,
        Err(error) => {
            report.problem(&error.to_string(), "fix the setting named above");
            return None;
        }
    };
    let used = backend::settled(paths, asked);
    if used != asked {
        report
            .note("a vault of an earlier coffer exists: the next call records backend = \"file\"");
    }
    report.ok(&format!(
        "store in use: {}",
        backend::Choice { used, origin }.explain()
    ));
    // A recorded vault is opened without the keychain; an item store or no choice yet needs it.
    let items = match Keychain::open() {
        Ok(keychain) => {
            let store = KeychainStore::new(keychain, paths);
            check_items(report, &store);
            store.list().map(|list| list.len()).unwrap_or(0)
        }
        Err(why) => {
            check_no_keychain(report, used, &why);
            0
        }
    };
    check_split(
        report,
        paths,
        used,
        items,
        vault_entries(paths).unwrap_or(0),
    );
    Some(used)
}

/// What a missing keychain means for the store in use, by the backend's own rules.
fn check_no_keychain(report: &mut Report, used: Backend, why: &Unusable) {
    let first_entry = backend::seals_with_keychain(&Err(why.clone()));
    match (used, first_entry) {
        (Backend::Keychain, _) => report.problem(
            &format!("the store in use is the OS keychain, which cannot be reached here: {why}"),
            why.fix(),
        ),
        (Backend::Auto, Err(_)) => report.problem(
            &format!("the first entry cannot choose a store while the OS keychain {why}"),
            why.fix(),
        ),
        (Backend::Auto, Ok(false)) if passphrase::available_source().is_none() => report.problem(
            &format!(
                "no OS keychain here ({why}) and no passphrase source, so the first \
                 docker login cannot create a vault"
            ),
            "set COFFER_PASSPHRASE_FILE, or run `coffer init` in a terminal",
        ),
        _ => report.note(&format!("no OS keychain here: {why}")),
    }
}

/// Both stores holding entries, when only one of them serves.
fn check_split(report: &mut Report, paths: &Paths, used: Backend, items: usize, in_vault: usize) {
    let merge = "(merges them; where both hold a registry, the newer entry serves)";
    if items > 0 && (in_vault > 0 || used == Backend::File) {
        let target = if used == Backend::Keychain {
            "keychain"
        } else {
            "file"
        };
        report.problem(
            &format!(
                "entries are split: {items} in the OS keychain and {in_vault} in the file vault at \
                 {}; only the store in use serves docker",
                paths.vault().display()
            ),
            &format!("coffer migrate --to {target}   {merge}"),
        );
    } else if in_vault > 0 && used == Backend::Keychain {
        report.problem(
            &format!(
                "{in_vault} entries sit in the file vault at {}, which is not in use",
                paths.vault().display()
            ),
            &format!("coffer migrate --to keychain   {merge}"),
        );
    } else if items > 0 && used == Backend::Keychain {
        report.note(
            "`coffer migrate --to file` moves the entries to a vault sealed by the keychain, \
             whose `get` costs a fraction of a keychain item's",
        );
    }
}

/// Items of coffer's keychain service that are not coffer entries, each with its own delete
/// command.
fn check_items(report: &mut Report, store: &KeychainStore) {
    match store.unreadable() {
        Ok(unreadable) => {
            for item in unreadable {
                report.problem(
                    &format!(
                        "the keychain item (service {}, account {}) is not a coffer entry ({}); coffer passes over it",
                        item.service, item.account, item.reason
                    ),
                    &item.delete_command(),
                );
            }
        }
        Err(error) => report.problem(
            &format!("the keychain does not list: {error}"),
            "follow the advice in the message above",
        ),
    }
}

/// How many entries the vault file holds (`None`: no vault). Read from its record table,
/// without the key: a hint for people, never used to answer a client.
fn vault_entries(paths: &Paths) -> Option<usize> {
    let bytes = std::fs::read(paths.vault()).ok()?;
    Some(
        coffer::vault::format::Layout::parse(&bytes)
            .map(|layout| layout.rows().len())
            .unwrap_or(0),
    )
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
        .and_then(|bytes| coffer::vault::key_header(&bytes).ok())
        .is_some_and(|header| header.sealing == coffer::vault::format::Sealing::Keychain);
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
            "vault opens and every record authenticates ({})",
            super::plural(count, "entry", "entries")
        )),
        Err(error) => report.problem(
            &format!("the vault does not open: {error}"),
            "follow the advice in the message above",
        ),
    }
}

/// Each cloud registry without a stored key: the identity `get` would use here, or what was
/// tried and the setting that fixes it.
fn check_identities(report: &mut Report, paths: &Paths) {
    let Ok(config) = coffer::config::Config::load(paths) else {
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

/// Stored credentials their issuer refuses (revoked, deleted): each one, and whose it is.
fn check_refused(report: &mut Report, paths: &Paths) {
    // What the store section could not open has been reported there already. The store is
    // read directly: a check by doctor is not a client's access, so it leaves no log line.
    let Ok(list) = backend::open(paths).and_then(|(store, _)| store.list()) else {
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
        report.note(&format!("{}: only {only} is used", MECHANISM_VAR));
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
                            at.saturating_sub(coffer::clock::now())
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

fn check_pending_erases(report: &mut Report, paths: &Paths) {
    match PendingErases::new(paths).list() {
        Ok(pending) => {
            for pending in pending {
                report.problem(
                    &super::pending_line(&pending),
                    "`coffer unlock` (or any coffer command that opens the vault) finishes the erase",
                );
            }
        }
        Err(error) => report.problem(&error.to_string(), "follow the advice in the message above"),
    }
}

/// How far back the failures shown go, and how many at most.
const RECENT: u64 = 7 * 24 * 3600;
const MAX_FAILURES: usize = 5;

/// Docker hides the helper's errors; the access log has them. The newest failures are shown
/// with their error, which says what to do.
fn check_recent_failures(report: &mut Report, paths: &Paths) {
    let log = AccessLog::new(paths.access_log());
    let events = match log.read() {
        Ok((events, _)) => events,
        Err(error) => {
            report.problem(
                &format!("cannot read {}: {error}", log.path().display()),
                "give the file back to its user (`chown`) and make it 0600",
            );
            return;
        }
    };
    let since = std::time::SystemTime::now() - std::time::Duration::from_secs(RECENT);
    let failures: Vec<&Event> = events
        .iter()
        .filter(|e| e.outcome == Outcome::Failed)
        .filter(|e| humantime::parse_rfc3339(&e.time).is_ok_and(|at| at >= since))
        .collect();
    if failures.is_empty() {
        report.ok("no failed credential action in the last 7 days");
        return;
    }
    let shown = &failures[failures.len().saturating_sub(MAX_FAILURES)..];
    report.note(&format!(
        "{} of the last 7 days (`coffer log` has them all):",
        super::plural(failures.len(), "failure", "failures")
    ));
    for event in shown {
        println!(
            "        {}  {} {} by {} ({}): {}",
            event.time,
            super::log::json_name(&event.action),
            super::table::printable(event.registry.as_deref().unwrap_or("-")),
            super::table::printable(&event.caller),
            event.caller_pid,
            super::table::printable(event.error.as_deref().unwrap_or("failed"))
        );
    }
}

/// Files a root run with this user's HOME left behind: docker and coffer fail on them.
fn check_ownership(report: &mut Report, paths: &Paths) {
    let mut places = vec![paths.home().to_path_buf()];
    places.extend(paths.config().parent().map(Path::to_path_buf));
    if let Ok(config) = coffer::setup::docker::config_path() {
        places.extend(config.parent().map(Path::to_path_buf));
    }
    places.dedup();
    for foreign in coffer::ownership::foreign_files(&places) {
        report.problem(
            &format!(
                "{} belongs to {}, not to you: docker and coffer cannot replace it",
                foreign.path.display(),
                foreign.owner
            ),
            &foreign.fix,
        );
    }
}

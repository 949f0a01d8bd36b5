//! The access log: one JSON line per credential action, appended to `access.log` beside the
//! vault, so an operator can see which process read which credential. It never holds a secret:
//! only the time, the action, the registry, the outcome and the calling process.
//!
//! Each event is one `write` on a file opened with `O_APPEND`, so concurrent helpers never
//! interleave their lines and a `get` pays one open and one write. At [`ROTATE_AT`] bytes the
//! file is renamed to `access.log.1` (replacing the previous one), bounding the trail to about
//! twice that size.

use std::fs::{self, File, Metadata, OpenOptions};
use std::io::{self, BufRead, BufReader, ErrorKind, Write};
use std::os::unix::fs::{FileExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// The size at which `access.log` is rotated to `access.log.1`.
pub const ROTATE_AT: u64 = 1 << 20;
/// Longer registry names are cut: a request may be up to a mebibyte, a log line stays small.
const MAX_REGISTRY_CHARS: usize = 256;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    Get,
    Store,
    Erase,
    List,
    /// A change to a stored entry in place: a store in a token mode, a token renewal.
    Update,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Outcome {
    Ok,
    NotFound,
    Failed,
}

/// One line of the log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Event {
    /// RFC 3339, UTC, whole seconds.
    pub time: String,
    pub action: Action,
    /// The entry's server URL as stored, or the lookup key asked for when nothing matched.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub registry: Option<String>,
    pub outcome: Outcome,
    /// The one-line error of a failed action (these never quote secrets or input).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// What a successful action should still tell (a cached entry served while the central
    /// store's servers were away).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub warning: Option<String>,
    /// The parent process's name (`/proc/<ppid>/comm`): docker, skopeo, a shell...
    pub caller: String,
    pub caller_pid: u32,
}

impl Event {
    /// An event happening now, in a process whose parent is the caller.
    pub fn now(action: Action, registry: Option<String>, outcome: Outcome) -> Event {
        let (caller, caller_pid) = caller();
        Event {
            time: crate::clock::rfc3339_now(),
            action,
            registry: registry.map(shorten),
            outcome,
            error: None,
            warning: None,
            caller,
            caller_pid,
        }
    }
}

fn shorten(mut text: String) -> String {
    if let Some((cut, _)) = text.char_indices().nth(MAX_REGISTRY_CHARS) {
        text.truncate(cut);
        text.push('…');
    }
    text
}

/// The parent process: who ran this helper.
fn caller() -> (String, u32) {
    let pid = std::os::unix::process::parent_id();
    let name = fs::read_to_string(format!("/proc/{pid}/comm"))
        .map(|name| name.trim_end().to_owned())
        .unwrap_or_else(|_| "unknown".to_owned());
    (name, pid)
}

#[derive(Debug, Clone)]
pub struct AccessLog {
    path: PathBuf,
}

impl AccessLog {
    pub fn new(path: impl Into<PathBuf>) -> Self {
        AccessLog { path: path.into() }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Where the log goes when it is rotated.
    pub fn rotated(&self) -> PathBuf {
        let mut name = self.path.as_os_str().to_owned();
        name.push(".1");
        name.into()
    }

    /// Appends `event` with a single write. Fails with `NotFound` when the vault's folder does
    /// not exist: there is nothing to audit and the log never creates it.
    pub fn append(&self, event: &Event) -> io::Result<()> {
        let mut line = serde_json::to_vec(event)?;
        line.push(b'\n');
        let mut file = OpenOptions::new()
            .read(true)
            .append(true)
            .create(true)
            .mode(0o600)
            .open(&self.path)?;
        let metadata = file.metadata()?;
        if metadata.permissions().mode() & 0o077 != 0 {
            file.set_permissions(fs::Permissions::from_mode(0o600))?;
        }
        if metadata.len() >= ROTATE_AT {
            self.rotate(&file, &metadata);
        }
        // A half line left behind (by a crash, say) would swallow this event: start a new one.
        let start = metadata.len();
        let mut last = [b'\n'];
        if start > 0 && file.read_exact_at(&mut last, start - 1).is_ok() && last[0] != b'\n' {
            line.insert(0, b'\n');
        }
        // One write, so that concurrent helpers never interleave; on a full disk it may write
        // part of the line, which is taken back unless another line already follows it.
        match file.write(&line) {
            Ok(n) if n == line.len() => Ok(()),
            Ok(n) => {
                if file.metadata()?.len() == start + n as u64 {
                    let _ = file.set_len(start);
                }
                Err(io::Error::new(
                    ErrorKind::StorageFull,
                    "no space left for the whole line",
                ))
            }
            Err(e) => Err(e),
        }
    }

    /// Renames a full log aside. Only one process renames a given file: the one that holds its
    /// lock and still finds it under the log's name; the others keep appending to it, wherever
    /// it now is, and the next event starts the new file.
    fn rotate(&self, file: &File, metadata: &Metadata) {
        if file.try_lock().is_err() {
            return;
        }
        let still_current = fs::metadata(&self.path)
            .is_ok_and(|now| now.ino() == metadata.ino() && now.dev() == metadata.dev());
        if still_current {
            let _ = fs::rename(&self.path, self.rotated());
        }
    }

    /// Every event, oldest first, and the number of lines that could not be read.
    pub fn read(&self) -> io::Result<(Vec<Event>, usize)> {
        let mut events = Vec::new();
        let mut unreadable = 0;
        for path in [self.rotated(), self.path.clone()] {
            let file = match File::open(&path) {
                Ok(file) => file,
                Err(e) if e.kind() == ErrorKind::NotFound => continue,
                Err(e) => return Err(e),
            };
            for line in BufReader::new(file).split(b'\n') {
                let line = line?;
                // A writer that saw another's line half-way through its write (the file's size
                // grows page by page) starts its own on a new line: a blank line, not an event.
                if line.is_empty() {
                    continue;
                }
                match serde_json::from_slice(&line) {
                    Ok(event) => events.push(event),
                    Err(_) => unreadable += 1,
                }
            }
        }
        Ok((events, unreadable))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(action: Action) -> Event {
        Event::now(action, Some("ghcr.io".into()), Outcome::Ok)
    }

    #[test]
    fn a_half_line_left_behind_does_not_swallow_the_next_event() {
        let dir = tempfile::tempdir().expect("temp dir");
        let log = AccessLog::new(dir.path().join("access.log"));
        log.append(&event(Action::Get)).expect("append");
        let mut file = OpenOptions::new()
            .append(true)
            .open(log.path())
            .expect("open");
        file.write_all(br#"{"time":"2026-"#).expect("half line");
        let next = event(Action::Store);
        log.append(&next).expect("append");
        let (events, unreadable) = log.read().expect("read");
        assert_eq!((events.len(), unreadable), (2, 1));
        assert_eq!(events[1], next);
    }

    /// What a writer leaves when it saw another's line half-written: a blank line between whole
    /// ones, which is no event and nothing unreadable.
    #[test]
    fn a_blank_line_between_events_is_neither_an_event_nor_unreadable() {
        let dir = tempfile::tempdir().expect("temp dir");
        let log = AccessLog::new(dir.path().join("access.log"));
        log.append(&event(Action::Get)).expect("append");
        let mut file = OpenOptions::new()
            .append(true)
            .open(log.path())
            .expect("open");
        file.write_all(b"\n").expect("blank line");
        log.append(&event(Action::Store)).expect("append");
        let (events, unreadable) = log.read().expect("read");
        assert_eq!((events.len(), unreadable), (2, 0));
    }

    #[test]
    fn lines_round_trip_and_the_file_is_private() {
        let dir = tempfile::tempdir().expect("temp dir");
        let log = AccessLog::new(dir.path().join("access.log"));
        assert_eq!(log.read().expect("read"), (Vec::new(), 0));
        let got = event(Action::Get);
        let mut failed = Event::now(Action::Store, None, Outcome::Failed);
        failed.error = Some("the vault is locked".into());
        for e in [&got, &failed] {
            log.append(e).expect("append");
        }
        assert_eq!(log.read().expect("read"), (vec![got, failed], 0));
        let mode = fs::metadata(log.path()).expect("stat").permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        let text = fs::read_to_string(log.path()).expect("read");
        assert!(
            text.starts_with(r#"{"time":""#)
                && text
                    .contains(r#""action":"get","registry":"ghcr.io","outcome":"ok","caller":""#),
            "{text}"
        );
    }

    #[test]
    fn long_registries_are_cut() {
        let long = "é".repeat(1000);
        let event = Event::now(Action::Get, Some(long), Outcome::NotFound);
        let registry = event.registry.expect("registry");
        assert_eq!(registry.chars().count(), MAX_REGISTRY_CHARS + 1);
        assert!(registry.ends_with("é…"));
    }

    #[test]
    fn loosened_permissions_are_restored() {
        let dir = tempfile::tempdir().expect("temp dir");
        let log = AccessLog::new(dir.path().join("access.log"));
        fs::write(log.path(), b"").expect("create");
        fs::set_permissions(log.path(), fs::Permissions::from_mode(0o644)).expect("chmod");
        log.append(&event(Action::List)).expect("append");
        let mode = fs::metadata(log.path()).expect("stat").permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    #[test]
    fn a_full_log_is_rotated_once() {
        let dir = tempfile::tempdir().expect("temp dir");
        let log = AccessLog::new(dir.path().join("access.log"));
        let old = serde_json::to_string(&event(Action::Erase)).expect("json") + "\n";
        let lines = (ROTATE_AT as usize).div_ceil(old.len());
        fs::write(log.path(), old.repeat(lines)).expect("fill");
        let trigger = event(Action::Get);
        log.append(&trigger).expect("append");
        // The event that found the log full lands at the end of the rotated file.
        let trigger_len = serde_json::to_string(&trigger).expect("json").len() + 1;
        assert_eq!(
            fs::metadata(log.rotated()).expect("rotated").len(),
            (old.len() * lines + trigger_len) as u64
        );
        assert!(!log.path().exists());
        let stored = event(Action::Store);
        log.append(&stored).expect("append");
        let (events, unreadable) = log.read().expect("read");
        assert_eq!((events.len(), unreadable), (lines + 2, 0));
        assert_eq!(events.last(), Some(&stored));
    }

    #[test]
    fn a_missing_folder_is_not_created() {
        let dir = tempfile::tempdir().expect("temp dir");
        let log = AccessLog::new(dir.path().join("absent/access.log"));
        let error = log.append(&event(Action::Get)).expect_err("no folder");
        assert_eq!(error.kind(), ErrorKind::NotFound);
        assert!(!dir.path().join("absent").exists());
    }

    #[test]
    fn unreadable_lines_are_counted() {
        let dir = tempfile::tempdir().expect("temp dir");
        let log = AccessLog::new(dir.path().join("access.log"));
        log.append(&event(Action::Get)).expect("append");
        fs::write(
            log.rotated(),
            b"not json\n{\"time\":\"t\",\"action\":\"get\"}\n",
        )
        .expect("rotated");
        let (events, unreadable) = log.read().expect("read");
        assert_eq!((events.len(), unreadable), (1, 2));
    }
}

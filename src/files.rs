//! Private files: 0600 files in 0700 folders, atomic replacement and a cross-process lock.

use std::fs::{self, File, OpenOptions};
use std::io::{ErrorKind, Read, Write};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// What went wrong with a file or folder: one line saying which, and what to do.
#[derive(Debug, thiserror::Error)]
pub enum FileError {
    #[error("{} is accessible by other users; run `chmod {mode:o} {}` and try again", path.display(), path.display())]
    Permissions { path: PathBuf, mode: u32 },
    #[error(
        "{} belongs to another user; coffer takes settings only from your own files or root's",
        path.display()
    )]
    NotOwned { path: PathBuf },
    #[error("{} is not a regular file; give the path of a file", path.display())]
    NotRegular { path: PathBuf },
    #[error(
        "permission denied reading {}: run coffer as the user who owns the vault, or give it back \
         to that user (`chown`) with `chmod 600` on the file and `chmod 700` on its folder",
        path.display()
    )]
    Unreadable { path: PathBuf },
    #[error("cannot {action} {}: {source}", path.display())]
    Io {
        action: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("another coffer process held the vault lock for {0} s; if none is running, try again")]
    LockTimeout(u64),
    #[error("the {what} is longer than {max} bytes; refusing it")]
    TooLong { what: &'static str, max: usize },
}

impl FileError {
    /// `map_err(FileError::io("read", path))`: an I/O failure on `path`, saying what was tried.
    pub fn io(
        action: &'static str,
        path: impl Into<PathBuf>,
    ) -> impl FnOnce(std::io::Error) -> FileError {
        let path = path.into();
        move |source| FileError::Io {
            action,
            path,
            source,
        }
    }
}

pub type Result<T, E = FileError> = std::result::Result<T, E>;

const TEMP_MARK: &str = ".tmp-";

/// Creates `dir` (and parents) if needed and makes it 0700.
pub fn ensure_private_dir(dir: &Path) -> Result<()> {
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(FileError::io("create", dir))?;
    fs::set_permissions(dir, fs::Permissions::from_mode(0o700))
        .map_err(FileError::io("set permissions on", dir))
}

/// Refuses a file or folder that other users can read or write.
pub fn check_private(path: &Path, metadata: &fs::Metadata) -> Result<()> {
    let mode = metadata.permissions().mode();
    if mode & 0o077 != 0 {
        let wanted = if metadata.is_dir() { 0o700 } else { 0o600 };
        return Err(FileError::Permissions {
            path: path.to_path_buf(),
            mode: wanted,
        });
    }
    Ok(())
}

/// Reads a file whose settings can run commands or send secrets somewhere (`config.toml`):
/// refused unless it is a regular file of at most `max` bytes that only its owner (the user or
/// root) can change, in a folder only they can change. `None` when it does not exist. A FIFO
/// or device is refused without blocking on it.
pub fn read_trusted(path: &Path, max: u64) -> Result<Option<Vec<u8>>> {
    let mut file = match OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)
    {
        Ok(file) => file,
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(None),
        Err(source) => {
            return Err(FileError::Io {
                action: "open",
                path: path.to_path_buf(),
                source,
            });
        }
    };
    let metadata = file.metadata().map_err(FileError::io("inspect", path))?;
    if !metadata.is_file() {
        return Err(FileError::NotRegular {
            path: path.to_path_buf(),
        });
    }
    check_trusted(path, &metadata, 0o600)?;
    // Through a link, the folder that matters is the target's.
    let real = fs::canonicalize(path).map_err(FileError::io("resolve", path))?;
    if let Some(dir) = real.parent() {
        check_trusted(
            dir,
            &fs::metadata(dir).map_err(FileError::io("inspect", dir))?,
            0o700,
        )?;
    }
    if metadata.len() > max {
        return Err(FileError::TooLong {
            what: "settings file",
            max: max as usize,
        });
    }
    let mut bytes = Vec::new();
    (&mut file)
        .take(max + 1)
        .read_to_end(&mut bytes)
        .map_err(FileError::io("read", path))?;
    Ok(Some(bytes))
}

/// Refuses a file or folder that someone besides its owner can change, or whose owner is
/// neither this user nor root. `mode` is what to suggest.
fn check_trusted(path: &Path, metadata: &fs::Metadata, mode: u32) -> Result<()> {
    let owner = metadata.uid();
    if owner != 0 && owner != rustix::process::geteuid().as_raw() {
        return Err(FileError::NotOwned {
            path: path.to_path_buf(),
        });
    }
    // A sticky folder (`/tmp`) lets others add files, never replace this one.
    let sticky = metadata.is_dir() && metadata.mode() & 0o1000 != 0;
    if metadata.mode() & 0o022 != 0 && !sticky {
        return Err(FileError::Permissions {
            path: path.to_path_buf(),
            mode,
        });
    }
    Ok(())
}

/// Whether `dir` is a folder coffer may keep files in although it is not one of its own
/// (`$XDG_RUNTIME_DIR`, the unlock agent's folder in a shared temp folder): a folder itself,
/// not a link, of this user's, that nobody else can open. In any other folder another user
/// could have put a FIFO, a link or a file of their own where coffer looks.
pub fn is_own_private_dir(dir: &Path) -> std::io::Result<bool> {
    let metadata = fs::symlink_metadata(dir)?;
    Ok(metadata.is_dir()
        && metadata.uid() == crate::ownership::me()
        && metadata.mode() & 0o077 == 0)
}

/// Opens a file coffer keeps outside its own folders, to read it (or to write it, creating it
/// 0600 and emptying it): only in a folder [`is_own_private_dir`] accepts, never through a link
/// (`O_NOFOLLOW`), never blocking on a FIFO or a device (`O_NONBLOCK`), and only when it is a
/// regular file of this user's, with one name, that nobody else can change. `Ok(None)` when
/// reading a file that is not there.
pub fn open_own(path: &Path, write: bool) -> std::io::Result<Option<File>> {
    let refused = |why: &str| std::io::Error::new(ErrorKind::PermissionDenied, why.to_owned());
    let dir = folder_of(path);
    if !is_own_private_dir(dir)? {
        return Err(refused("its folder is not yours alone"));
    }
    let file = match OpenOptions::new()
        .read(!write)
        .write(write)
        .create(write)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_NOCTTY)
        .open(path)
    {
        Ok(file) => file,
        Err(e) if e.kind() == ErrorKind::NotFound && !write => return Ok(None),
        Err(e) => return Err(e),
    };
    let metadata = file.metadata()?;
    if !metadata.is_file()
        || metadata.uid() != crate::ownership::me()
        || metadata.mode() & 0o022 != 0
        || metadata.nlink() != 1
    {
        return Err(refused("not a regular file of yours alone"));
    }
    if write {
        file.set_len(0)?;
    }
    Ok(Some(file))
}

/// Reads at most `max` bytes from `input`; `None` when there were more. The one bound for
/// what coffer reads from a file or a process it does not control (not for secrets: the
/// buffer is not wiped).
pub fn read_at_most(input: impl Read, max: u64) -> std::io::Result<Option<Vec<u8>>> {
    let mut bytes = Vec::new();
    input.take(max + 1).read_to_end(&mut bytes)?;
    Ok((bytes.len() as u64 <= max).then_some(bytes))
}

/// Replaces `path` with `bytes` so that a crash leaves either the old or the new file:
/// a 0600 temp file in the same folder, fsync, rename over the target, fsync of the folder.
/// A symbolic link is written through (its target is replaced, the link kept); anything but
/// a regular file there is refused, so a device or FIFO is never replaced by a file of secrets.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    write_atomic_mode(path, bytes, 0o600)
}

/// Where a write to `path` lands: the target of a symbolic link, after checking that it is a
/// regular file or not there yet.
pub fn write_target(path: &Path) -> Result<PathBuf> {
    // Links are followed as open(2) follows them, with the kernel's own bound on a chain, so a
    // loop of links is an error rather than endless recursion.
    const MAX_LINKS: usize = 40;
    let mut path = path.to_path_buf();
    for _ in 0..MAX_LINKS {
        match fs::symlink_metadata(&path) {
            Ok(metadata) if metadata.file_type().is_symlink() => {
                let link = fs::read_link(&path).map_err(FileError::io("read the link", &path))?;
                path = match path.parent() {
                    Some(dir) => dir.join(link),
                    None => link,
                };
            }
            Ok(metadata) if !metadata.is_file() => return Err(FileError::NotRegular { path }),
            // A regular file, or nothing there yet (a dangling link is written through).
            _ => return Ok(path),
        }
    }
    Err(FileError::Io {
        action: "follow the links at",
        path,
        source: std::io::Error::from_raw_os_error(libc::ELOOP),
    })
}

/// [`write_atomic`] for a file that is not ours alone (docker's `config.json`): the new file
/// gets `mode` (the old file's), set explicitly so the umask cannot change it.
pub fn write_atomic_mode(path: &Path, bytes: &[u8], mode: u32) -> Result<()> {
    replace_atomic(&write_target(path)?, bytes, mode)
}

/// Puts a new file of `bytes` and `mode` at the name `path`, atomically, replacing whatever
/// is there: a symbolic link is replaced itself, never written through. For the files coffer
/// names inside a folder it is given (man pages, completions, rkt's `auth.d` documents),
/// where a link someone left there must not send the write to a file of the user's.
pub fn replace_atomic(path: &Path, bytes: &[u8], mode: u32) -> Result<()> {
    let dir = folder_of(path);
    let temp = temp_path(path);
    let result = (|| {
        let mut file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&temp)?;
        file.set_permissions(fs::Permissions::from_mode(mode))?;
        file.write_all(bytes)?;
        file.sync_all()?;
        fs::rename(&temp, path)?;
        File::open(dir)?.sync_all()
    })();
    result.map_err(|source| {
        let _ = fs::remove_file(&temp);
        FileError::Io {
            action: "write",
            path: path.to_path_buf(),
            source,
        }
    })
}

/// The folder `path` is in: `.` for a bare file name such as `--out docker.tar.gz`, whose
/// `parent()` is the empty path, which no system call opens.
pub fn folder_of(path: &Path) -> &Path {
    match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    }
}

/// Removes temp files left by writers that were killed. Call only while holding the lock.
pub fn remove_stale_temps(path: &Path) {
    let Ok(path) = write_target(path) else {
        return;
    };
    let (dir, Some(name)) = (folder_of(&path), path.file_name().and_then(|n| n.to_str())) else {
        return;
    };
    let prefix = format!("{name}{TEMP_MARK}");
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        if entry
            .file_name()
            .to_str()
            .is_some_and(|n| n.starts_with(&prefix))
        {
            let _ = fs::remove_file(entry.path());
        }
    }
}

fn temp_path(path: &Path) -> PathBuf {
    let unique: u64 = crate::vault::crypto::random_bytes::<8>()
        .iter()
        .fold(0, |acc, b| acc << 8 | u64::from(*b));
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(format!("{TEMP_MARK}{}-{unique:016x}", std::process::id()));
    path.with_file_name(name)
}

/// An exclusive advisory lock on a lock file, released when dropped (or when the process dies).
#[derive(Debug)]
pub struct Lock {
    _file: File,
}

/// How long a writer waits for another before giving up with a clear error.
pub const LOCK_TIMEOUT: Duration = Duration::from_secs(60);

pub fn lock(path: &Path, timeout: Duration) -> Result<Lock> {
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .open(path)
        .map_err(FileError::io("open the lock file", path))?;
    let started = Instant::now();
    let mut pause = Duration::from_millis(1);
    loop {
        match file.try_lock() {
            Ok(()) => return Ok(Lock { _file: file }),
            Err(fs::TryLockError::WouldBlock) if started.elapsed() < timeout => {
                std::thread::sleep(pause);
                pause = (pause * 2).min(Duration::from_millis(50));
            }
            Err(fs::TryLockError::WouldBlock) => {
                return Err(FileError::LockTimeout(timeout.as_secs()));
            }
            Err(fs::TryLockError::Error(source)) => {
                return Err(FileError::Io {
                    action: "lock",
                    path: path.to_path_buf(),
                    source,
                });
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn atomic_write_is_private_and_leaves_no_temp() {
        let dir = tempfile::tempdir().expect("temp dir");
        let target = dir.path().join("vault");
        write_atomic(&target, b"one").expect("first write");
        write_atomic(&target, b"two").expect("second write");
        assert_eq!(fs::read(&target).expect("read"), b"two");
        assert_eq!(
            fs::metadata(&target).expect("stat").permissions().mode() & 0o777,
            0o600
        );
        assert_eq!(fs::read_dir(dir.path()).expect("list").count(), 1);
    }

    #[test]
    fn a_loop_of_links_is_refused_not_followed_forever() {
        let dir = tempfile::tempdir().expect("temp dir");
        std::os::unix::fs::symlink("b", dir.path().join("a")).expect("link a");
        std::os::unix::fs::symlink("a", dir.path().join("b")).expect("link b");
        let error = write_atomic(&dir.path().join("a"), b"secret").expect_err("a loop");
        assert!(error.to_string().contains("follow the links"), "{error}");
        assert!(
            fs::symlink_metadata(dir.path().join("a"))
                .expect("a")
                .is_symlink()
        );
    }

    #[test]
    fn a_symlinked_file_is_written_through_and_stays_a_link() {
        let dir = tempfile::tempdir().expect("temp dir");
        let real = dir.path().join("real");
        let link = dir.path().join("link");
        fs::write(&real, b"old").expect("write");
        std::os::unix::fs::symlink("real", &link).expect("link");
        write_atomic(&link, b"new").expect("write through");
        assert!(
            fs::symlink_metadata(&link)
                .expect("stat")
                .file_type()
                .is_symlink()
        );
        assert_eq!(fs::read(&real).expect("read"), b"new");
        let dangling = dir.path().join("dangling");
        std::os::unix::fs::symlink("made", &dangling).expect("link");
        write_atomic(&dangling, b"x").expect("write through");
        assert_eq!(fs::read(dir.path().join("made")).expect("read"), b"x");
    }

    #[test]
    fn a_device_or_a_fifo_is_never_replaced() {
        let dir = tempfile::tempdir().expect("temp dir");
        let full = dir.path().join("full");
        std::os::unix::fs::symlink("/dev/full", &full).expect("link");
        for path in [Path::new("/dev/full"), &full, dir.path()] {
            let error = write_atomic(path, b"secret").expect_err("not regular");
            assert!(matches!(error, FileError::NotRegular { .. }), "{error}");
        }
        assert!(
            fs::symlink_metadata(&full)
                .expect("stat")
                .file_type()
                .is_symlink()
        );
    }

    #[test]
    fn settings_others_can_change_are_refused_and_a_fifo_does_not_block() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("config.toml");
        assert_eq!(read_trusted(&path, 100).expect("missing"), None);
        fs::write(&path, b"x = 1").expect("write");
        fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).expect("chmod");
        assert_eq!(
            read_trusted(&path, 100).expect("read"),
            Some(b"x = 1".to_vec())
        );
        for mode in [0o664, 0o646] {
            fs::set_permissions(&path, fs::Permissions::from_mode(mode)).expect("chmod");
            let error = read_trusted(&path, 100).expect_err("writable by others");
            assert!(error.to_string().contains("chmod 600"), "{error}");
        }
        fs::set_permissions(&path, fs::Permissions::from_mode(0o600)).expect("chmod");
        fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o777)).expect("chmod");
        let error = read_trusted(&path, 100).expect_err("folder writable by others");
        assert!(error.to_string().contains("chmod 700"), "{error}");
        fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o700)).expect("chmod");
        assert!(matches!(
            read_trusted(&path, 2),
            Err(FileError::TooLong { .. })
        ));
        let fifo = dir.path().join("fifo");
        let made = std::process::Command::new("mkfifo").arg(&fifo).status();
        assert!(made.expect("mkfifo").success());
        assert!(matches!(
            read_trusted(&fifo, 100),
            Err(FileError::NotRegular { .. })
        ));
    }

    #[test]
    fn stale_temps_are_removed() {
        let dir = tempfile::tempdir().expect("temp dir");
        let target = dir.path().join("vault");
        fs::write(temp_path(&target), b"torn").expect("temp");
        fs::write(dir.path().join("other"), b"keep").expect("other");
        remove_stale_temps(&target);
        assert_eq!(fs::read_dir(dir.path()).expect("list").count(), 1);
    }

    #[test]
    fn second_lock_waits_then_times_out() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("lock");
        let held = lock(&path, LOCK_TIMEOUT).expect("first lock");
        assert!(matches!(
            lock(&path, Duration::from_millis(30)),
            Err(FileError::LockTimeout(_))
        ));
        drop(held);
        lock(&path, Duration::from_millis(30)).expect("free again");
    }

    #[test]
    fn private_dir_is_reapplied() {
        let dir = tempfile::tempdir().expect("temp dir");
        let home = dir.path().join("home");
        fs::create_dir(&home).expect("mkdir");
        fs::set_permissions(&home, fs::Permissions::from_mode(0o755)).expect("chmod");
        ensure_private_dir(&home).expect("ensure");
        let metadata = fs::metadata(&home).expect("stat");
        assert_eq!(metadata.permissions().mode() & 0o777, 0o700);
        check_private(&home, &metadata).expect("private");
    }
}

//! Private files: 0600 files in 0700 folders, atomic replacement and a cross-process lock.

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::error::{Error, Result};

const TEMP_MARK: &str = ".tmp-";

/// Creates `dir` (and parents) if needed and makes it 0700.
pub fn ensure_private_dir(dir: &Path) -> Result<()> {
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(Error::io("create", dir))?;
    fs::set_permissions(dir, fs::Permissions::from_mode(0o700))
        .map_err(Error::io("set permissions on", dir))
}

/// Refuses a file or folder that other users can read or write.
pub fn check_private(path: &Path, metadata: &fs::Metadata) -> Result<()> {
    let mode = metadata.permissions().mode();
    if mode & 0o077 != 0 {
        let wanted = if metadata.is_dir() { 0o700 } else { 0o600 };
        return Err(Error::Permissions {
            path: path.to_path_buf(),
            mode: wanted,
        });
    }
    Ok(())
}

/// Replaces `path` with `bytes` so that a crash leaves either the old or the new file:
/// a 0600 temp file in the same folder, fsync, rename over the target, fsync of the folder.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    write_atomic_mode(path, bytes, 0o600)
}

/// [`write_atomic`] for a file that is not ours alone (docker's `config.json`): the new file
/// gets `mode` (the old file's), set explicitly so the umask cannot change it.
pub fn write_atomic_mode(path: &Path, bytes: &[u8], mode: u32) -> Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
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
        Error::Io {
            action: "write",
            path: path.to_path_buf(),
            source,
        }
    })
}

/// Removes temp files left by writers that were killed. Call only while holding the lock.
pub fn remove_stale_temps(path: &Path) {
    let (Some(dir), Some(name)) = (path.parent(), path.file_name().and_then(|n| n.to_str())) else {
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
        .map_err(Error::io("open the lock file", path))?;
    let started = Instant::now();
    let mut pause = Duration::from_millis(1);
    loop {
        match file.try_lock() {
            Ok(()) => return Ok(Lock { _file: file }),
            Err(fs::TryLockError::WouldBlock) if started.elapsed() < timeout => {
                std::thread::sleep(pause);
                pause = (pause * 2).min(Duration::from_millis(50));
            }
            Err(fs::TryLockError::WouldBlock) => return Err(Error::LockTimeout(timeout.as_secs())),
            Err(fs::TryLockError::Error(source)) => {
                return Err(Error::Io {
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
            Err(Error::LockTimeout(_))
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

//! Last-used times without rewriting a store on the hot path: one empty 0600 file per entry in a
//! 0700 folder, touched by each use, named by a keyed tag of the entry so that the names say
//! nothing about which registry they belong to.

use std::collections::HashMap;
use std::fs;
use std::os::unix::fs::OpenOptionsExt;
use std::path::PathBuf;
use std::time::{SystemTime, UNIX_EPOCH};

use crate::files;

#[derive(Debug, Clone)]
pub struct UsedMarks {
    dir: PathBuf,
}

/// Every mark's time (Unix seconds), by mark name, from one listing of the folder.
pub type LastUses = HashMap<String, u64>;

impl UsedMarks {
    pub fn new(dir: PathBuf) -> Self {
        UsedMarks { dir }
    }

    /// Records a use now. Best effort: a `get` never fails because its mark could not be set.
    pub fn mark(&self, tag: &[u8]) {
        let path = self.dir.join(name(tag));
        let touch = || {
            fs::OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(false)
                .mode(0o600)
                .open(&path)
        };
        let file = touch().or_else(|_| {
            files::ensure_private_dir(&self.dir)
                .map_err(|e| std::io::Error::other(e.to_string()))?;
            touch()
        });
        if let Ok(file) = file {
            let _ = file.set_modified(SystemTime::now());
        }
    }

    /// Forgets the mark of a removed entry.
    pub fn forget(&self, tag: &[u8]) {
        let _ = fs::remove_file(self.dir.join(name(tag)));
    }

    /// The last use of every entry used so far: a 10,000-entry `list` asks the file system about
    /// the marks that exist, not about 10,000 names.
    pub fn all(&self) -> LastUses {
        let Ok(marks) = fs::read_dir(&self.dir) else {
            return HashMap::new();
        };
        marks
            .flatten()
            .filter_map(|mark| {
                let modified = mark.metadata().ok()?.modified().ok()?;
                let seconds = modified.duration_since(UNIX_EPOCH).ok()?.as_secs();
                Some((mark.file_name().into_string().ok()?, seconds))
            })
            .collect()
    }
}

/// The last use of the entry tagged `tag` in `all`.
pub fn last_use(all: &LastUses, tag: &[u8]) -> Option<u64> {
    all.get(&name(tag)).copied()
}

fn name(tag: &[u8]) -> String {
    tag.iter().map(|b| format!("{b:02x}")).collect()
}

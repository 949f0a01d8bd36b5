//! Root must never leave its files in a user's home. `sudo -E`, or a sudo that keeps `HOME`,
//! runs coffer as root with a user's `HOME`: every file it then writes there (the vault, its
//! `used/` marks, docker's `config.json` and its backup) would be root's, and the user's own
//! docker and coffer could no longer read or replace them. So coffer refuses, and says how to
//! run it as that user or with root's own home; `coffer doctor` finds such files already there.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

/// Root about to write into a user's home.
#[derive(Debug, thiserror::Error)]
#[error(
    "coffer is running as root, but {var} ({}) belongs to {user}: files written there now \
     would be root's and lock {user} out. Run it as {user} (`sudo -u {sudo_user} coffer ...`), \
     or with root's own home (`sudo -H coffer ...`); see: \
     docs/troubleshooting.md#root-and-a-users-home",
    path.display()
)]
pub struct ForeignHome {
    pub var: &'static str,
    pub path: PathBuf,
    pub user: String,
    pub sudo_user: String,
}

/// The user running this process.
pub fn me() -> u32 {
    rustix::process::geteuid().as_raw()
}

/// Refuses to run as root against folders that belong to another user: `HOME`, `COFFER_HOME`
/// and `DOCKER_CONFIG`, as far as they exist (else their nearest existing parent).
pub fn refuse_foreign_home() -> Result<(), ForeignHome> {
    if me() != 0 {
        return Ok(());
    }
    for var in ["HOME", "COFFER_HOME", "DOCKER_CONFIG"] {
        let Some(value) = std::env::var_os(var).filter(|v| !v.is_empty()) else {
            continue;
        };
        let path = PathBuf::from(value);
        if let Some(owner) = owner_of_nearest(&path).filter(|&uid| uid != 0) {
            let user = user_name(owner);
            return Err(ForeignHome {
                var,
                path,
                sudo_user: sudo_name(owner, &user),
                user,
            });
        }
    }
    Ok(())
}

/// The owner of `path`, or of its nearest parent that exists.
fn owner_of_nearest(path: &Path) -> Option<u32> {
    path.ancestors()
        .find_map(|dir| std::fs::metadata(dir).ok())
        .map(|m| m.uid())
}

/// The login name of `uid` from `/etc/passwd`, else the number.
pub fn user_name(uid: u32) -> String {
    std::fs::read_to_string("/etc/passwd")
        .ok()
        .and_then(|passwd| {
            passwd.lines().find_map(|line| {
                let mut fields = line.split(':');
                let name = fields.next()?;
                let id: u32 = fields.nth(1)?.parse().ok()?;
                (id == uid).then(|| name.to_owned())
            })
        })
        .unwrap_or_else(|| uid.to_string())
}

/// What `sudo -u` takes: a name, or `#uid` for a user without one.
fn sudo_name(uid: u32, name: &str) -> String {
    if name == uid.to_string() {
        format!("'#{uid}'")
    } else {
        name.to_owned()
    }
}

/// A file or folder that is not the running user's, with the command that gives it back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Foreign {
    pub path: PathBuf,
    pub owner: String,
    pub fix: String,
}

/// Of `paths`, and of the entries of those that are folders, the ones the running user does not
/// own: what a root run with this user's `HOME` left behind.
pub fn foreign_files(paths: &[PathBuf]) -> Vec<Foreign> {
    let me = me();
    let my_name = user_name(me);
    let mut found = Vec::new();
    let mut check = |path: &Path| {
        let Ok(metadata) = std::fs::symlink_metadata(path) else {
            return;
        };
        if metadata.uid() != me && !found.iter().any(|f: &Foreign| path.starts_with(&f.path)) {
            let recursive = if metadata.is_dir() { "-R " } else { "" };
            found.push(Foreign {
                path: path.to_path_buf(),
                owner: user_name(metadata.uid()),
                fix: format!("sudo chown {recursive}{my_name}: {}", path.display()),
            });
        }
    };
    for path in paths {
        check(path);
        if let Ok(entries) = std::fs::read_dir(path) {
            for entry in entries.flatten() {
                check(&entry.path());
            }
        }
    }
    found
}

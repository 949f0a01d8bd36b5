//! `coffer agent`: the process that keeps one cached secret (a vault's data key, a chain-mode
//! token) where the kernel keyring is unavailable.
//!
//! It reads the secret from its stdin into locked memory, serves it on its socket to processes
//! of the same user, and wipes it and exits at the expiry, on `coffer lock` (or a renewed token
//! replacing it), or when its socket is removed or replaced (the runtime folder is emptied at
//! logout). Core dumps and ptrace by same-user processes are off.

use std::fs;
use std::io::Read;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use base64ct::{Base64, Encoding};
use zeroize::Zeroizing;

use super::{MAX_SECRET, Op, PATIENCE, Reply, Request, peer_uid, receive, send, uid};
use crate::clock::now;

/// How often the agent checks its expiry and its socket.
const TICK: Duration = Duration::from_secs(1);

/// Runs the agent for the slot named `slot`, holding the `length` bytes its stdin brings until
/// `expires_at` (Unix seconds; 0 for none). Its one line on stdout tells its starter whether it
/// is serving.
pub fn run(socket: PathBuf, slot: String, length: usize, expires_at: u64) -> ExitCode {
    close_inherited_descriptors();
    crate::os::hardening::disable_core_dumps();
    // Its own session: no terminal, and no hangup when the one that ran `coffer unlock` closes.
    let _ = rustix::process::setsid();
    let expires_at = (expires_at != 0).then_some(expires_at);
    let started = read_secret(std::io::stdin().lock(), length)
        .and_then(|secret| Agent::bind(socket, slot, expires_at, secret));
    let (agent, ready) = match started {
        Ok(agent) => {
            let ready = Reply {
                pid: Some(std::process::id()),
                expires_at,
                ..Reply::default()
            };
            (Some(agent), ready)
        }
        Err(error) => (
            None,
            Reply {
                error: Some(error),
                ..Reply::default()
            },
        ),
    };
    let _ = send(std::io::stdout().lock(), &ready);
    match agent {
        Some(agent) => agent.serve(),
        None => ExitCode::FAILURE,
    }
}

/// Closes every descriptor the agent inherited beyond stdin, stdout and stderr: a pipe the
/// caller's shell left open (`coffer unlock 9>&1 | cat`, a CI step's output) would otherwise
/// stay open for the agent's whole life, and whoever reads its other end would wait as long.
#[allow(unsafe_code)]
fn close_inherited_descriptors() {
    let Ok(listing) = fs::read_dir("/proc/self/fd") else {
        return;
    };
    let inherited: Vec<libc::c_int> = listing
        .flatten()
        .filter_map(|fd| fd.file_name().to_str()?.parse().ok())
        .filter(|&fd| fd > 2)
        .collect();
    for fd in inherited {
        // SAFETY: nothing of the agent's own is open yet besides stdio, so no descriptor that
        // Rust code owns is closed; the listing's own, already closed, just gives EBADF.
        unsafe { libc::close(fd) };
    }
}

/// Reads the secret into heap memory that is locked in RAM first, so it is never swapped out.
fn read_secret(mut input: impl Read, length: usize) -> Result<Zeroizing<Vec<u8>>, String> {
    if length == 0 || length > MAX_SECRET {
        return Err(format!("a secret of 1 to {MAX_SECRET} bytes, not {length}"));
    }
    let mut secret = Zeroizing::new(vec![0u8; length]);
    lock_in_memory(secret.as_mut_slice())?;
    input
        .read_exact(secret.as_mut_slice())
        .map_err(|e| format!("cannot read the secret from its starter: {e}"))?;
    Ok(secret)
}

#[allow(unsafe_code)]
fn lock_in_memory(bytes: &mut [u8]) -> Result<(), String> {
    // SAFETY: the pointer and length describe a live buffer we borrow exclusively; mlock only
    // pins its pages in RAM and reads or writes none of it.
    unsafe { rustix::mm::mlock(bytes.as_mut_ptr().cast(), bytes.len()) }.map_err(|e| {
        format!("cannot lock the secret's memory against swapping ({e}); raise `ulimit -l`")
    })
}

struct Agent {
    listener: UnixListener,
    socket: PathBuf,
    /// Device and inode of our socket: anything else at its path means we were replaced.
    identity: (u64, u64),
    slot: String,
    expires_at: Option<u64>,
    secret: Mutex<Option<Zeroizing<Vec<u8>>>>,
}

impl Agent {
    fn bind(
        socket: PathBuf,
        slot: String,
        expires_at: Option<u64>,
        secret: Zeroizing<Vec<u8>>,
    ) -> Result<Agent, String> {
        let fail =
            |action: &str, e: std::io::Error| format!("cannot {action} {}: {e}", socket.display());
        // The starter stopped any agent of this slot; what is left is a dead one's socket.
        match fs::remove_file(&socket) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(fail("remove", e)),
            _ => {}
        }
        let listener = UnixListener::bind(&socket).map_err(|e| fail("listen on", e))?;
        // The folder is already 0700; the socket is 0600 as well.
        fs::set_permissions(&socket, fs::Permissions::from_mode(0o600))
            .map_err(|e| fail("set permissions on", e))?;
        let metadata = fs::symlink_metadata(&socket).map_err(|e| fail("inspect", e))?;
        Ok(Agent {
            listener,
            identity: (metadata.dev(), metadata.ino()),
            socket,
            slot,
            expires_at,
            secret: Mutex::new(Some(secret)),
        })
    }

    fn serve(self) -> ExitCode {
        std::thread::scope(|scope| {
            scope.spawn(|| self.watch());
            for stream in self.listener.incoming().flatten() {
                self.answer(&stream);
            }
        });
        ExitCode::FAILURE
    }

    /// Ends the agent at the expiry, or when its socket is gone or someone else's.
    fn watch(&self) {
        loop {
            let left = self.expires_at.map(|at| at.saturating_sub(now()));
            if self.expired() || !owns_path(&self.socket, self.identity) {
                self.exit();
            }
            // Wall-clock seconds, so that the expiry holds across a laptop's sleep.
            std::thread::sleep(left.map_or(TICK, |s| TICK.min(Duration::from_secs(s))));
        }
    }

    fn expired(&self) -> bool {
        self.expires_at.is_some_and(|at| now() >= at)
    }

    fn answer(&self, stream: &UnixStream) {
        if peer_uid(stream) != Some(uid()) {
            return;
        }
        // The watcher looks once a second; a request in between must not get an expired secret.
        if self.expired() {
            self.exit();
        }
        let _ = stream.set_read_timeout(Some(PATIENCE));
        let _ = stream.set_write_timeout(Some(PATIENCE));
        let reply = match receive::<Request>(stream) {
            Err(_) => Reply {
                error: Some("unreadable request".into()),
                ..Reply::default()
            },
            Ok(request) if request.slot != self.slot => Reply {
                error: Some("this agent holds another secret".into()),
                ..Reply::default()
            },
            Ok(Request { op: Op::Read, .. }) => Reply {
                secret: self
                    .secret()
                    .as_ref()
                    .map(|secret| Zeroizing::new(Base64::encode_string(secret))),
                expires_at: self.expires_at,
                ..Reply::default()
            },
            Ok(Request { op: Op::Status, .. }) => Reply {
                expires_at: self.expires_at,
                pid: Some(std::process::id()),
                ..Reply::default()
            },
            Ok(Request { op: Op::Forget, .. }) => {
                // Wiped and unreachable before the client hears that it is locked.
                self.forget();
                let _ = send(
                    stream,
                    &Reply {
                        pid: Some(std::process::id()),
                        ..Reply::default()
                    },
                );
                std::process::exit(0);
            }
        };
        let _ = send(stream, &reply);
    }

    fn secret(&self) -> std::sync::MutexGuard<'_, Option<Zeroizing<Vec<u8>>>> {
        self.secret.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Wipes the secret (`Zeroizing` clears it on drop) and removes our socket.
    fn forget(&self) {
        drop(self.secret().take());
        if owns_path(&self.socket, self.identity) {
            let _ = fs::remove_file(&self.socket);
        }
    }

    fn exit(&self) -> ! {
        self.forget();
        std::process::exit(0)
    }
}

fn owns_path(path: &Path, identity: (u64, u64)) -> bool {
    fs::symlink_metadata(path).is_ok_and(|m| (m.dev(), m.ino()) == identity)
}

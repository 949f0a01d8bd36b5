//! The unlock cache's fallback: a `coffer agent` process per cached secret (a vault's data key,
//! a chain-mode token), holding it in locked memory until it expires and handing it to processes
//! of the same user over a Unix socket.
//!
//! The socket is `<slot>.sock` in `$XDG_RUNTIME_DIR/coffer-agent/` (or, without a runtime
//! directory, `coffer-agent-<uid>` in the temp directory): a 0700 folder of the user's, holding a
//! 0600 socket. Both ends check the other's uid with `SO_PEERCRED`. One request per connection,
//! one JSON object per line each way; the secret travels in base64:
//!
//! ```text
//! -> {"op":"read","slot":"vault-<hex id>"}    <- {"secret":"<base64>","expires_at":1700000000}
//! -> {"op":"status","slot":"vault-<hex id>"}  <- {"expires_at":1700000000,"pid":4242}
//! -> {"op":"forget","slot":"vault-<hex id>"}  <- {"pid":4242}   (the agent wipes it and exits)
//! ```
//! Failures answer `{"error":"..."}`. `expires_at` is absent when the agent has no timeout.
//!
//! Whoever caches a secret where the keyring is refused starts its agent: `coffer unlock` for a
//! vault's key, and for a chain-mode token the process that minted it (the helper, or `coffer`),
//! so a node with no passphrase still gets one. Nothing waits on an agent longer than
//! `PATIENCE`: not to connect, start, read or write.

pub mod server;

use std::fs;
use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::fs::DirBuilderExt;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use base64ct::{Base64, Encoding};
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use super::{Held, Slot};
use crate::os::Unavailable;

/// How long either side waits for the other before giving up: `get` never hangs on an agent.
const PATIENCE: Duration = Duration::from_secs(2);
/// The largest secret an agent keeps: a vault key is 32 bytes, a cached token a few KiB.
pub const MAX_SECRET: usize = 16 * 1024;
/// No line of this protocol comes near this (the largest secret in base64, and a little); a
/// peer cannot make the other side buffer more.
const MAX_LINE: u64 = (MAX_SECRET as u64).div_ceil(3) * 4 + 512;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
enum Op {
    Read,
    Status,
    Forget,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Request {
    op: Op,
    slot: String,
}

/// Every answer, and the agent's one line to its starter when it is ready (or not).
/// No `Debug`: it can hold the secret.
#[derive(Default, Serialize, Deserialize)]
struct Reply {
    /// Base64.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    secret: Option<Zeroizing<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    expires_at: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pid: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    error: Option<String>,
}

/// Writes one JSON line through a buffer that is wiped afterwards and never reallocated.
fn send<T: Serialize>(mut out: impl Write, message: &T) -> std::io::Result<()> {
    let mut line = Zeroizing::new(Vec::with_capacity(MAX_LINE as usize));
    serde_json::to_writer(&mut *line, message)?;
    line.push(b'\n');
    out.write_all(&line)?;
    out.flush()
}

/// Reads one JSON line of at most `MAX_LINE` bytes through a buffer that is wiped afterwards.
fn receive<T: serde::de::DeserializeOwned>(input: impl Read) -> std::io::Result<T> {
    let mut line = Zeroizing::new(Vec::with_capacity(MAX_LINE as usize + 1));
    BufReader::new(input.take(MAX_LINE)).read_until(b'\n', &mut line)?;
    serde_json::from_slice(&line).map_err(std::io::Error::other)
}

fn uid() -> u32 {
    rustix::process::getuid().as_raw()
}

/// The uid of the process at the other end of `stream`.
#[cfg(target_os = "linux")]
fn peer_uid(stream: &UnixStream) -> Option<u32> {
    rustix::net::sockopt::socket_peercred(stream)
        .ok()
        .map(|cred| cred.uid.as_raw())
}

/// The uid of the process at the other end of `stream`.
#[cfg(not(target_os = "linux"))]
#[allow(unsafe_code)]
fn peer_uid(stream: &UnixStream) -> Option<u32> {
    use std::os::fd::AsRawFd;
    let (mut uid, mut gid) = (0, 0);
    // SAFETY: getpeereid only writes two integers through pointers to these live locals.
    let status = unsafe { libc::getpeereid(stream.as_raw_fd(), &mut uid, &mut gid) };
    (status == 0).then_some(uid)
}

/// The folder of agent sockets.
pub fn socket_dir() -> PathBuf {
    match std::env::var_os("XDG_RUNTIME_DIR").filter(|dir| !dir.is_empty()) {
        Some(runtime) => PathBuf::from(runtime).join("coffer-agent"),
        None => std::env::temp_dir().join(format!("coffer-agent-{}", uid())),
    }
}

fn socket_path(slot: &Slot) -> PathBuf {
    socket_dir().join(format!("{}.sock", slot.name()))
}

/// Refuses a socket folder that is a link, someone else's, or open to others: a socket in it
/// could be anyone's.
fn check_private_dir(dir: &Path) -> Result<(), Unavailable> {
    let private = crate::files::is_own_private_dir(dir)
        .map_err(|e| Unavailable(format!("cannot inspect {}: {e}", dir.display())))?;
    if !private {
        return Err(Unavailable(format!(
            "{} must be a folder of yours that only you can open (0700); remove it and unlock again",
            dir.display()
        )));
    }
    Ok(())
}

/// Makes the socket folder (0700) if it is missing, and never changes one that exists: in a
/// shared temp folder another user may have put a link there to a folder of ours, which a
/// chmod would open to them.
fn make_private_dir(dir: &Path) -> Result<(), Unavailable> {
    let made = match dir.parent() {
        Some(parent) if !parent.exists() => fs::create_dir_all(parent),
        _ => Ok(()),
    }
    .and_then(|()| fs::DirBuilder::new().mode(0o700).create(dir));
    match made {
        Err(e) if e.kind() != std::io::ErrorKind::AlreadyExists => {
            Err(Unavailable(format!("cannot create {}: {e}", dir.display())))
        }
        _ => check_private_dir(dir),
    }
}

/// Whether an agent could run here: its socket folder, if it exists, is private.
pub fn probe() -> Result<(), Unavailable> {
    let dir = socket_dir();
    match fs::symlink_metadata(&dir) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        _ => check_private_dir(&dir),
    }
}

/// Connects to the socket at `path` within [`PATIENCE`]: a connect to a Unix socket whose
/// backlog is full waits until the agent accepts, so it is tried without blocking, again and
/// again, until the agent takes it or the patience runs out.
fn connect(path: &Path) -> std::io::Result<UnixStream> {
    use rustix::net::{AddressFamily, SocketAddrUnix, SocketFlags, SocketType};
    let address = SocketAddrUnix::new(path)?;
    let deadline = Instant::now() + PATIENCE;
    loop {
        let socket = rustix::net::socket_with(
            AddressFamily::UNIX,
            SocketType::STREAM,
            SocketFlags::NONBLOCK | SocketFlags::CLOEXEC,
            None,
        )?;
        match rustix::net::connect(&socket, &address) {
            Ok(()) => {
                let stream = UnixStream::from(socket);
                stream.set_nonblocking(false)?;
                return Ok(stream);
            }
            Err(rustix::io::Errno::AGAIN) if Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(5));
            }
            Err(rustix::io::Errno::AGAIN) => {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    "the agent accepts no connection",
                ));
            }
            Err(e) => return Err(e.into()),
        }
    }
}

/// One request to the slot's agent; `None` when no agent serves it.
fn exchange(slot: &Slot, op: Op) -> Result<Option<Reply>, Unavailable> {
    let path = socket_path(slot);
    let dir = path.parent().unwrap_or(Path::new("/"));
    let stream = match connect(&path) {
        Ok(stream) => stream,
        Err(e)
            if matches!(
                e.kind(),
                std::io::ErrorKind::NotFound | std::io::ErrorKind::ConnectionRefused
            ) =>
        {
            return Ok(None);
        }
        Err(e) => return Err(Unavailable(format!("cannot reach the agent: {e}"))),
    };
    check_private_dir(dir)?;
    if peer_uid(&stream) != Some(uid()) {
        return Err(Unavailable(format!(
            "{} is served by another user's process",
            path.display()
        )));
    }
    let talk = || -> std::io::Result<Reply> {
        stream.set_read_timeout(Some(PATIENCE))?;
        stream.set_write_timeout(Some(PATIENCE))?;
        let request = Request {
            op,
            slot: slot.name(),
        };
        send(&stream, &request)?;
        receive(&stream)
    };
    let reply = talk().map_err(|e| Unavailable(format!("the agent did not answer: {e}")))?;
    match reply.error {
        Some(error) => Err(Unavailable(format!("the agent refused: {error}"))),
        None => Ok(Some(reply)),
    }
}

pub fn lookup(slot: &Slot) -> Result<Option<Held>, Unavailable> {
    let Some(reply) = exchange(slot, Op::Read)? else {
        return Ok(None);
    };
    let Some(encoded) = reply.secret else {
        return Ok(None);
    };
    let secret = Base64::decode_vec(&encoded)
        .map(Zeroizing::new)
        .map_err(|_| Unavailable("the agent answered no base64".to_owned()))?;
    Ok(Some(Held {
        secret,
        expires_at: reply.expires_at,
    }))
}

/// The running agent's pid and expiry, without the secret.
pub fn status(slot: &Slot) -> Result<Option<(u32, Option<u64>)>, Unavailable> {
    Ok(exchange(slot, Op::Status)?.map(|reply| (reply.pid.unwrap_or(0), reply.expires_at)))
}

/// Tells the slot's agent to wipe its secret and exit; `true` if one was running.
pub fn forget(slot: &Slot) -> Result<bool, Unavailable> {
    exchange(slot, Op::Forget).map(|reply| reply.is_some())
}

/// Starts an agent holding `secret` until `expires_at` (Unix seconds), and waits until it
/// serves. The secret reaches it through a pipe, never argv or the environment; the agent gets
/// an empty environment, so a `COFFER_PASSPHRASE` does not live on in it.
pub fn start(slot: &Slot, secret: &[u8], expires_at: Option<u64>) -> Result<(), Unavailable> {
    if secret.len() > MAX_SECRET {
        return Err(Unavailable(format!(
            "the agent keeps at most {MAX_SECRET} bytes"
        )));
    }
    let dir = socket_dir();
    make_private_dir(&dir)?;
    // The helper (caching a keychain-sealed vault's key, or a chain-mode token) has no `agent`
    // command: `coffer`, installed beside it, runs the agent.
    let program = crate::paths::coffer_program();
    let mut child = Command::new(program)
        .arg("agent")
        .arg("--socket")
        .arg(socket_path(slot))
        .arg("--slot")
        .arg(slot.name())
        .arg("--length")
        .arg(secret.len().to_string())
        .arg("--expires-at")
        .arg(expires_at.unwrap_or(0).to_string())
        .env_clear()
        .current_dir("/")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| Unavailable(format!("cannot start `coffer agent`: {e}")))?;
    let handed = child.stdin.take().map(|mut pipe| pipe.write_all(secret));
    // Its one line, waited for within the patience: an agent that never says it is ready is
    // killed, which ends the read.
    let (said, ready) = mpsc::channel();
    if let Some(stdout) = child.stdout.take() {
        std::thread::spawn(move || said.send(receive::<Reply>(stdout)));
    }
    let failure = match (handed, ready.recv_timeout(PATIENCE)) {
        (Some(Ok(())), Ok(Ok(reply))) => match reply.error {
            None => return Ok(()),
            Some(error) => error,
        },
        (_, Err(mpsc::RecvTimeoutError::Timeout)) => "it did not say it was ready".to_owned(),
        _ => "it exited before it was ready".to_owned(),
    };
    let _ = child.kill();
    let _ = child.wait();
    Err(Unavailable(format!("the agent did not start: {failure}")))
}

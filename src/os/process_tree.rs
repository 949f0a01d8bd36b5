//! Containing what a credential command starts (an exec-mode command, an AWS
//! `credential_process`), on Linux.
//!
//! From [`Tree::start`] on, this process is a child subreaper (`PR_SET_CHILD_SUBREAPER`): a
//! descendant whose parent dies is re-parented to it, not to init, even one that left the
//! command's process group and session with `setsid` or a double fork. [`Tree::kill`] then
//! kills every child started since, its process group with it, and again whatever of their
//! trees comes back as their parents die, until none is left. What escapes: a process another
//! service starts on the command's behalf (a systemd unit, a D-Bus activated daemon, `at`),
//! which was never a descendant; and one in uninterruptible sleep, which dies only when its
//! system call ends.
//!
//! Tested through the binaries (`tests/integration/providers/exec.rs` and `chain.rs`): a unit
//! test's process is shared with other tests, whose children it would count as its own.

use std::time::{Duration, Instant};

use rustix::process::{Pid, Signal, WaitOptions};

/// How long [`Tree::kill`] keeps at it: a tree that forks faster than it is killed, or a
/// process stuck in the kernel, must not hold up the answer.
const KILL_WITHIN: Duration = Duration::from_secs(2);

/// The processes this process starts from [`Tree::start`] on.
#[derive(Debug)]
pub struct Tree {
    /// The children it had before: not part of the tree.
    before: Vec<Pid>,
}

impl Tree {
    /// Makes this process the subreaper of everything it starts from now on (the setting
    /// stays for the life of the process: it is harmless, as orphans it adopts and does not
    /// kill pass on to init when it exits).
    pub fn start() -> Tree {
        let _ = rustix::process::set_child_subreaper(Some(rustix::process::getpid()));
        Tree {
            before: children().into_iter().map(|(pid, _)| pid).collect(),
        }
    }

    /// Kills every process of the tree, and reaps them.
    pub fn kill(&self) {
        let deadline = Instant::now() + KILL_WITHIN;
        loop {
            let new: Vec<(Pid, bool)> = children()
                .into_iter()
                .filter(|(pid, _)| !self.before.contains(pid))
                .collect();
            if new.is_empty() || Instant::now() >= deadline {
                return;
            }
            for (pid, zombie) in new {
                if zombie {
                    let _ = rustix::process::waitpid(Some(pid), WaitOptions::NOHANG);
                } else {
                    // Its group first (an exec command leads one), so that one signal stops
                    // everything that stayed in it.
                    let _ = rustix::process::kill_process_group(pid, Signal::KILL);
                    let _ = rustix::process::kill_process(pid, Signal::KILL);
                }
            }
            std::thread::sleep(Duration::from_millis(2));
        }
    }
}

/// This process's children, each with whether it is a zombie, from `/proc/PID/stat`.
fn children() -> Vec<(Pid, bool)> {
    let me = rustix::process::getpid().as_raw_nonzero().get();
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(|entry| entry.ok()?.file_name().to_str()?.parse::<i32>().ok())
        .filter_map(|pid| {
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
            // `pid (comm) state ppid ...`; comm may hold spaces and parentheses.
            let (_, rest) = stat.rsplit_once(") ")?;
            let mut fields = rest.split(' ');
            let state = fields.next()?;
            let parent: i32 = fields.next()?.parse().ok()?;
            (parent == me).then_some((Pid::from_raw(pid)?, state == "Z"))
        })
        .collect()
}

//! The credential helper docker, podman, skopeo and buildah run: the wire protocol, nothing else.

use std::io::{IsTerminal, Write};
use std::os::unix::fs::OpenOptionsExt;

fn main() {
    coffer::os::hardening::disable_core_dumps();
    let args: Vec<String> = std::env::args_os()
        .skip(1)
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    let outcome = coffer::protocol::serve(
        &args,
        std::io::stdin().lock(),
        &mut std::io::stdout().lock(),
        coffer::credentials::Credentials::from_env,
    );
    // A warning goes to stderr as well, where a script running the helper reads it; the
    // terminal hears it once.
    for warning in &outcome.warnings {
        eprintln!("{warning}");
        if !std::io::stderr().is_terminal() {
            tell_terminal(warning);
        }
    }
    if let Some(notice) = outcome.notice {
        tell_terminal(&notice);
    }
    std::process::exit(outcome.status);
}

/// Docker hides what a helper says, so a failure is told to the person's terminal, if there is
/// one. Non-blocking: a stopped terminal must not hang a pull; no terminal, nothing is said.
fn tell_terminal(line: &str) {
    if let Ok(mut tty) = std::fs::OpenOptions::new()
        .write(true)
        .custom_flags(libc::O_NOCTTY | libc::O_NONBLOCK)
        .open("/dev/tty")
    {
        let _ = tty.write_all(format!("{line}\n").as_bytes());
    }
}

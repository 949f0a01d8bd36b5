//! What the three identity chains share (each cloud's own is `<cloud>/identity.rs`; the
//! dispatch by mode is in [`super::providers`]). The clouds' own SDKs, for chain mode: `aws-config` with `aws-sdk-ecr`/`-ecrpublic`/`-sts`,
//! `google-cloud-auth`, `azure_identity`. Each flow runs on a current-thread tokio runtime
//! made for that one mint, so nothing async exists until a token is due.
//!
//! Fail fast: finding an identity (probing metadata services, reading files) has a budget of
//! [`IDENTITY_BUDGET`] in all, so a machine with no identity, or with a metadata port that
//! accepts connections and never answers, gets its error within two seconds; the exchanges
//! after it have the `[tokens]` timeouts.

use std::time::{Duration, Instant};

use super::TokenError;

/// The time to find an identity, all sources together.
pub const IDENTITY_BUDGET: Duration = Duration::from_millis(1500);

/// What is left of the identity budget.
#[derive(Debug)]
pub struct Budget {
    started: Instant,
    pub total: Duration,
}

impl Budget {
    pub fn start() -> Budget {
        Budget {
            started: Instant::now(),
            total: IDENTITY_BUDGET,
        }
    }

    /// `None` once spent.
    pub fn left(&self) -> Option<Duration> {
        self.total
            .checked_sub(self.started.elapsed())
            .filter(|left| !left.is_zero())
    }

    /// The timeout of one metadata probe: a part of the budget, so a blackholed port leaves
    /// time for the error.
    pub fn probe(&self) -> Duration {
        self.total * 2 / 3
    }
}

/// Runs one flow on a current-thread runtime made for it.
pub fn block_on<T>(flow: impl Future<Output = Result<T, TokenError>>) -> Result<T, TokenError> {
    // Google's and Azure's HTTP clients take rustls' process-wide provider; ring is the one
    // every other client here uses. Installing twice is harmless.
    let _ = rustls::crypto::ring::default_provider().install_default();
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| TokenError::Client(format!("cannot start the async runtime: {e}")))?
        .block_on(flow)
}

/// An SDK error as one line: its message and its sources', which name the cause (an expired
/// SSO session, a refused role); the SDKs put no secret in them, except what a process they ran
/// printed on stderr, which is cut off.
pub fn cause(error: &(dyn std::error::Error + 'static)) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut next = Some(error);
    while let Some(e) = next {
        let text = e.to_string().replace(['\n', '\r'], " ");
        let (text, cut) = without_stderr(text);
        if !text.is_empty() && !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
        next = if cut { None } else { e.source() };
    }
    let mut line = parts.join(": ");
    if line.len() > 400 {
        let mut end = 400;
        while !line.is_char_boundary(end) {
            end -= 1;
        }
        line.truncate(end);
        line.push_str("...");
    }
    line
}

/// An SDK message cut where it quotes the stderr of a process it ran (a `credential_process`):
/// that may hold secrets, so it is never shown, as exec mode never shows it. `true` when cut.
pub fn without_stderr(text: String) -> (String, bool) {
    match text.to_ascii_lowercase().find("stderr:") {
        Some(at) => (
            format!(
                "{}(its stderr is not shown, since it may hold secrets: run the command yourself to see it)",
                &text[..at]
            ),
            true,
        ),
        None => (text, false),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_process_stderr_quoted_by_an_sdk_is_never_shown() {
        let sdk = std::io::Error::other(
            "Error retrieving credentials: external process exited with code exit status: 1. \
             Stderr: password=hunter2\nmore",
        );
        let line = cause(&sdk);
        assert!(
            !line.contains("hunter2") && !line.contains("more"),
            "{line}"
        );
        assert!(
            line.starts_with("Error retrieving credentials: external process exited with code exit status: 1. (its stderr is not shown"),
            "{line}"
        );
        assert_eq!(cause(&std::io::Error::other("refused")), "refused");
    }
}

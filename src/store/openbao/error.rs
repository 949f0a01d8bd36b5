//! What can go wrong between coffer and an OpenBao (or Vault) server, each in one line that names
//! the server and says what to do. No message quotes a token, a secret or a request body.

use std::path::PathBuf;

/// One server's failure to answer, kept to say why when none did.
#[derive(Debug, thiserror::Error)]
pub enum Unanswered {
    /// Shown by its innermost cause only ("Connection refused"): reqwest's own message names
    /// the URL.
    #[error("{0}")]
    Transport(#[source] crate::token::Transport),
    #[error("no answer within {0:.1} s")]
    TimedOut(f64),
    #[error("sealed")]
    Sealed,
    #[error("HTTP {status}{}", detail(.message))]
    Status { status: u16, message: String },
    #[error("answered {0}, not OpenBao's JSON")]
    NotJson(&'static str),
    #[error("answered more than {0} KiB")]
    TooLarge(u64),
    #[error("redirected to {0}, which is refused (plain http to a host other than loopback)")]
    RedirectRefused(String),
    #[error("too many redirects")]
    TooManyRedirects,
}

fn detail(message: &str) -> String {
    if message.is_empty() {
        String::new()
    } else {
        format!(" ({message})")
    }
}

#[derive(Debug, thiserror::Error)]
pub enum BaoError {
    #[error(
        "no OpenBao address: set BAO_ADDR (or VAULT_ADDR), or addresses = [\"https://...\"] \
         under [openbao] in config.toml"
    )]
    NoAddress,
    /// An address in `[openbao] addresses`, `BAO_ADDR` or `VAULT_ADDR` that cannot be used.
    #[error("OpenBao address {address:?} {problem}")]
    BadAddress {
        address: String,
        #[source]
        problem: super::settings::AddressProblem,
    },
    #[error("{what} {}: {source}", path.display())]
    File {
        what: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{what} {} holds no usable PEM {expected}", path.display())]
    Pem {
        what: &'static str,
        path: PathBuf,
        expected: &'static str,
    },
    #[error("cannot build the HTTPS client: {0}")]
    Client(#[source] reqwest::Error),
    /// Every address was tried and none answered usefully.
    #[error("no OpenBao server answered: {}", list(.tried))]
    Unavailable { tried: Vec<(String, Unanswered)> },
    #[error("OpenBao at {server} refused {what}: HTTP {status}{}", detail(.message))]
    Refused {
        server: String,
        what: String,
        status: u16,
        message: String,
    },
    #[error(
        "OpenBao at {server} denied {identity} {what}: access was revoked, or its \
         policy does not allow it; ask the OpenBao operator"
    )]
    Denied {
        server: String,
        /// Who was denied: `this node (jwt login, ...)`, `the pod (...)`.
        identity: String,
        what: String,
    },
    #[error(
        "OpenBao at {server} refused the {method} login ({identity}): {message}; the identity was \
         revoked or is not (or no longer) valid for this role"
    )]
    LoginRefused {
        server: String,
        method: &'static str,
        identity: String,
        message: String,
    },
    #[error(
        "the last {method} login failed {seconds} s ago ({message}); coffer tries again in {retry} s"
    )]
    BackingOff {
        method: &'static str,
        /// The failure was the server being away, not a refusal.
        away: bool,
        seconds: u64,
        retry: u64,
        message: String,
    },
    #[error("{} {problem}", path.display())]
    Identity { path: PathBuf, problem: String },
    #[error("OpenBao at {server} answered {what} with JSON coffer cannot read: {problem}")]
    Malformed {
        server: String,
        what: String,
        problem: String,
    },
    #[error(
        "the KV entry {path} {problem}; it needs string fields `username` and `secret` \
         (`bao kv put {path} username=... secret=...`)"
    )]
    BadEntry { path: String, problem: String },
    #[error("{what} {value:?} {problem}")]
    Layout {
        what: &'static str,
        value: String,
        problem: &'static str,
    },
    #[error(
        "{path} kept changing under coffer's writes ({tries} tries); another writer is busy: try again"
    )]
    Conflict { path: String, tries: u32 },
    #[error(
        "no OpenBao token: set BAO_TOKEN, run `bao login` (it writes ~/.vault-token), or choose a login method under [openbao.auth]; see: docs/central-store.md#logging-in"
    )]
    NoToken,
}

fn list(tried: &[(String, Unanswered)]) -> String {
    tried
        .iter()
        .map(|(server, why)| format!("{server}: {why}"))
        .collect::<Vec<_>>()
        .join("; ")
}

impl BaoError {
    /// The server is away (down, sealed, silent, broken), as opposed to having said no: the
    /// cache may serve while it lasts.
    pub fn is_unavailable(&self) -> bool {
        matches!(
            self,
            BaoError::Unavailable { .. } | BaoError::BackingOff { away: true, .. }
        )
    }

    pub fn file(
        what: &'static str,
        path: impl Into<PathBuf>,
    ) -> impl FnOnce(std::io::Error) -> BaoError {
        let path = path.into();
        move |source| BaoError::File { what, path, source }
    }
}

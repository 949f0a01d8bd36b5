//! Where a passphrase comes from, in order: `COFFER_PASSPHRASE_FILE`, systemd's
//! `$CREDENTIALS_DIRECTORY/coffer-passphrase`, `COFFER_PASSPHRASE` (least safe: the
//! environment is visible to the user's other processes), then a prompt on `/dev/tty`.
//! The prompt talks to the terminal directly because docker gives helpers a pipe for stdin.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use secrecy::{ExposeSecret, SecretString};

use crate::files::FileError;

pub const FILE_VAR: &str = "COFFER_PASSPHRASE_FILE";
pub const VALUE_VAR: &str = "COFFER_PASSPHRASE";
pub const SYSTEMD_CREDENTIAL: &str = "coffer-passphrase";

/// Why no usable passphrase was read, for a caller to match.
#[derive(Debug, thiserror::Error)]
pub enum PassphraseError {
    #[error("{VALUE_VAR} is not valid UTF-8")]
    EnvironmentNotText,
    #[error("the passphrase in {} is not valid UTF-8", .0.display())]
    FileNotText(PathBuf),
    /// Names the source it came from.
    #[error("the passphrase from {0} is empty")]
    Empty(String),
    #[error("cannot read the passphrase from the terminal: {0}")]
    Terminal(#[source] std::io::Error),
    #[error("the two passphrases differ; nothing was changed")]
    Differ,
    #[error("no terminal to ask for the new passphrase; set {NEW_FILE_VAR} to a file holding it")]
    NoTerminal,
    #[error("the new passphrase is empty")]
    NewEmpty,
    #[error(transparent)]
    File(#[from] FileError),
}

type Result<T> = std::result::Result<T, PassphraseError>;

/// Which source a passphrase came from, for `coffer doctor`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    File(PathBuf),
    SystemdCredential(PathBuf),
    Environment,
    Terminal,
}

impl std::fmt::Display for Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Source::File(path) => write!(f, "{FILE_VAR} ({})", path.display()),
            Source::SystemdCredential(path) => write!(f, "systemd credential ({})", path.display()),
            Source::Environment => write!(f, "{VALUE_VAR} (least safe)"),
            Source::Terminal => f.write_str("a prompt on /dev/tty"),
        }
    }
}

/// The first non-interactive source that is configured, or the terminal when there is one.
pub fn available_source() -> Option<Source> {
    if let Some(path) = std::env::var_os(FILE_VAR).filter(|v| !v.is_empty()) {
        return Some(Source::File(path.into()));
    }
    if let Some(dir) = std::env::var_os("CREDENTIALS_DIRECTORY") {
        let path = Path::new(&dir).join(SYSTEMD_CREDENTIAL);
        if path.exists() {
            return Some(Source::SystemdCredential(path));
        }
    }
    if std::env::var_os(VALUE_VAR).is_some_and(|v| !v.is_empty()) {
        return Some(Source::Environment);
    }
    fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/tty")
        .ok()
        .map(|_| Source::Terminal)
}

/// Reads the passphrase from the first available source, and names it; `None` when there is
/// none. `confirm` asks twice on a terminal (for a new passphrase).
pub fn read(prompt: &str, confirm: bool) -> Result<Option<(SecretString, Source)>> {
    let Some(source) = available_source() else {
        return Ok(None);
    };
    let passphrase = match &source {
        Source::File(path) | Source::SystemdCredential(path) => {
            first_line(path, matches!(source, Source::File(_)))?
        }
        Source::Environment => SecretString::from(
            std::env::var(VALUE_VAR).map_err(|_| PassphraseError::EnvironmentNotText)?,
        ),
        Source::Terminal => prompt_terminal(prompt, confirm)?,
    };
    if passphrase.expose_secret().is_empty() {
        return Err(PassphraseError::Empty(source.to_string()));
    }
    Ok(Some((passphrase, source)))
}

fn first_line(path: &Path, require_private: bool) -> Result<SecretString> {
    let metadata = fs::metadata(path).map_err(FileError::io("read the passphrase file", path))?;
    if require_private && metadata.permissions().mode() & 0o077 != 0 {
        return Err(FileError::Permissions {
            path: path.to_path_buf(),
            mode: 0o600,
        }
        .into());
    }
    let content = zeroize::Zeroizing::new(
        fs::read(path).map_err(FileError::io("read the passphrase file", path))?,
    );
    let line = content.split(|&b| b == b'\n').next().unwrap_or_default();
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    let text =
        std::str::from_utf8(line).map_err(|_| PassphraseError::FileNotText(path.to_path_buf()))?;
    Ok(SecretString::from(text))
}

fn prompt_terminal(prompt: &str, confirm: bool) -> Result<SecretString> {
    let ask = |text: &str| {
        rpassword::prompt_password(text)
            .map(SecretString::from)
            .map_err(PassphraseError::Terminal)
    };
    let first = ask(prompt)?;
    if confirm && ask("Repeat the passphrase: ")?.expose_secret() != first.expose_secret() {
        return Err(PassphraseError::Differ);
    }
    Ok(first)
}

pub const NEW_FILE_VAR: &str = "COFFER_NEW_PASSPHRASE_FILE";

/// A new passphrase for `coffer passwd`: `COFFER_NEW_PASSPHRASE_FILE`, or asked twice on the terminal.
pub fn read_new() -> Result<SecretString> {
    let passphrase = if let Some(path) = std::env::var_os(NEW_FILE_VAR).filter(|v| !v.is_empty()) {
        first_line(Path::new(&path), true)?
    } else if fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/tty")
        .is_ok()
    {
        prompt_terminal("new passphrase: ", true)?
    } else {
        return Err(PassphraseError::NoTerminal);
    };
    if passphrase.expose_secret().is_empty() {
        return Err(PassphraseError::NewEmpty);
    }
    Ok(passphrase)
}

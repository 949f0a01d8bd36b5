//! Whose credential an entry is ("ci-runner-7, team payments"): a line of plain text, checked
//! the same way wherever it comes from (`coffer login --description`, `coffer describe`, the
//! `default_description` of `config.toml`).

/// Longer descriptions are a mistake, and would swell every listing.
pub const MAX_DESCRIPTION_CHARS: usize = 200;

/// Why a description is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DescriptionError {
    #[error(
        "the description is longer than {MAX_DESCRIPTION_CHARS} characters; say whose credential it is in fewer words"
    )]
    TooLong,
    #[error(
        "the description holds a control or invisible character (a newline, a tab, an escape, a bidirectional mark); use one line of plain text"
    )]
    ControlCharacter,
}

/// A description as given: trimmed, one line of printable text; empty means none.
pub fn description(text: &str) -> Result<Option<String>, DescriptionError> {
    let text = text.trim();
    if text.chars().count() > MAX_DESCRIPTION_CHARS {
        return Err(DescriptionError::TooLong);
    }
    if text.chars().any(crate::printable::is_hidden) {
        return Err(DescriptionError::ControlCharacter);
    }
    Ok((!text.is_empty()).then(|| text.to_owned()))
}

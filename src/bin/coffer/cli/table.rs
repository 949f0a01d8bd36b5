//! Tables for people: every cell escaped and bounded before it reaches a terminal, so a stored
//! name can neither forge rows (newlines, escape sequences) nor blow up the layout.

use std::time::Duration;

use coffer::store::Entry;
use coffer::token::state::TokenSummary;

/// A cell longer than this is cut, with an ellipsis.
const MAX_CELL: usize = 200;

/// `text` cut to [`MAX_CELL`] characters, with every character that does not show as itself
/// escaped (`\n`, `\u{1b}`, `\u{200f}`: see [`coffer::printable`]).
pub fn printable(text: &str) -> String {
    match text.char_indices().nth(MAX_CELL) {
        Some((cut, _)) => format!("{}…", coffer::printable::escaped(&text[..cut])),
        None => coffer::printable::escaped(text),
    }
}

/// Prints `rows` (the first is the header) in columns two spaces apart; the last column is not
/// padded. Cells are made [`printable`] here.
pub fn print<const N: usize>(rows: &[[String; N]]) {
    let rows: Vec<Vec<String>> = rows
        .iter()
        .map(|row| row.iter().map(|cell| printable(cell)).collect())
        .collect();
    let widths: Vec<usize> = (0..N)
        .map(|i| {
            rows.iter()
                .map(|row| row[i].chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    for row in &rows {
        let mut line = String::new();
        for (i, cell) in row.iter().enumerate() {
            line.push_str(cell);
            if i + 1 < N {
                let pad = widths[i] - cell.chars().count() + 2;
                line.extend(std::iter::repeat_n(' ', pad));
            }
        }
        println!("{line}");
    }
}

/// What clients get from `entry`, in words: its token and when it expires, or the credential.
pub(super) fn handed_out(entry: &Entry, now: u64) -> String {
    match entry.tokens.as_ref().map(TokenSummary::from) {
        Some(TokenSummary {
            provider: Some(provider),
            expires_at,
            ..
        }) => format!("a token from {provider}, {}", expiry(expires_at, now)),
        _ => "the stored credential (basic)".to_owned(),
    }
}

pub(super) fn expiry(expires_at: Option<u64>, now: u64) -> String {
    match expires_at {
        None => "no expiry stated".to_owned(),
        Some(at) if at > now => format!("expires in {}", duration(at - now)),
        Some(at) => format!("expired {} ago", duration(now - at)),
    }
}

pub(super) fn duration(seconds: u64) -> String {
    humantime::format_duration(Duration::from_secs(seconds)).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_cannot_forge_rows_or_colour_the_terminal() {
        assert_eq!(printable("alice\nevil.io  bob"), "alice\\nevil.io  bob");
        assert_eq!(printable("\u{1b}[2Jx"), "\\u{1b}[2Jx");
        assert_eq!(printable("a\u{202e}b"), "a\\u{202e}b");
        assert_eq!(printable("naïve"), "naïve");
    }

    #[test]
    fn a_name_of_a_million_characters_is_cut() {
        let shown = printable(&"a".repeat(1_000_000));
        assert_eq!(shown.chars().count(), MAX_CELL + 1);
        assert!(shown.ends_with('…'));
    }
}

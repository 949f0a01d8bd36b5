//! An error's chain of causes, walked in one place: on one line for a message, or its innermost
//! cause alone.
//!
//! Only for errors whose text names no secret (the clouds' SDKs, the OS). reqwest's outermost
//! error names the URL it asked, query and all, and serde_json's can quote its input: those are
//! shown through a safe summary instead (see [`crate::token::Transport`],
//! [`crate::error::EntryError`]).

use std::error::Error;

/// The longest cause line kept, in bytes: a message stays one readable line.
const MAX_LINE: usize = 400;

/// The error and its sources, outermost first.
pub fn chain<'a>(error: &'a (dyn Error + 'a)) -> impl Iterator<Item = &'a (dyn Error + 'a)> {
    std::iter::successors(Some(error), |&e: &&'a (dyn Error + 'a)| {
        e.source().map(|s| s as &(dyn Error + 'a))
    })
}

/// The chain on one line: each cause's first line (an SDK may add a troubleshooting link on
/// the next), joined by `: `, a cause the line already says left out, at most [`MAX_LINE`]
/// bytes. A cause that quotes the stderr of a process (an AWS `credential_process`) is cut
/// there, and the walk stops: that text may hold secrets, as exec mode's stderr may.
pub fn one_line(error: &dyn Error) -> String {
    let mut line = String::new();
    for cause in chain(error) {
        let text = cause.to_string();
        let (text, cut) = without_stderr(&text);
        let text = text.lines().next().unwrap_or_default().trim();
        if !text.is_empty() && !line.contains(text) {
            if !line.is_empty() {
                line.push_str(": ");
            }
            line.push_str(text);
        }
        if cut {
            line.push_str(STDERR_NOT_SHOWN);
            break;
        }
    }
    if line.len() > MAX_LINE {
        let mut end = MAX_LINE;
        while !line.is_char_boundary(end) {
            end -= 1;
        }
        line.truncate(end);
        line.push_str("...");
    }
    line
}

const STDERR_NOT_SHOWN: &str = " (its stderr is not shown, since it may hold secrets: run the \
     command yourself to see it)";

/// The text before a quote of a process's stderr, and whether there was one.
fn without_stderr(text: &str) -> (&str, bool) {
    match text.to_ascii_lowercase().find("stderr:") {
        Some(at) => (&text[..at], true),
        None => (text, false),
    }
}

/// The innermost cause, which says what actually went wrong ("Connection refused").
pub fn innermost(error: &dyn Error) -> String {
    chain(error)
        .last()
        .map(ToString::to_string)
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("{text}")]
    struct Layer {
        text: &'static str,
        #[source]
        source: Option<Box<Layer>>,
    }

    fn layers(texts: &[&'static str]) -> Layer {
        texts
            .iter()
            .rev()
            .fold(None, |source, &text| {
                Some(Layer {
                    text,
                    source: source.map(Box::new),
                })
            })
            .expect("one layer at least")
    }

    #[test]
    fn a_chain_is_one_line_without_repeats_or_links() {
        let error = layers(&[
            "cannot load the profile: SSO session expired",
            "SSO session expired",
            "",
            "refused\nTo troubleshoot, visit https://example.invalid/help",
        ]);
        assert_eq!(
            one_line(&error),
            "cannot load the profile: SSO session expired: refused"
        );
        assert!(innermost(&error).starts_with("refused\n"));
        assert_eq!(chain(&error).count(), 4);
    }

    #[test]
    fn a_process_stderr_quoted_by_an_sdk_is_never_shown() {
        let sdk = layers(&[
            "Error retrieving credentials: external process exited with code exit status: 1. \
             Stderr: password=hunter2\nmore",
            "an inner cause that quotes it again: hunter2",
        ]);
        let line = one_line(&sdk);
        assert!(
            !line.contains("hunter2") && !line.contains("more"),
            "{line}"
        );
        assert!(
            line.starts_with(
                "Error retrieving credentials: external process exited with code exit status: \
                 1. (its stderr is not shown"
            ),
            "{line}"
        );
        assert_eq!(one_line(&layers(&["refused"])), "refused");
    }

    #[test]
    fn a_long_chain_is_cut() {
        let long: &'static str = Box::leak("é".repeat(300).into_boxed_str());
        let line = one_line(&layers(&[long]));
        assert!(
            line.len() <= MAX_LINE + 3 && line.ends_with("..."),
            "{line}"
        );
    }
}

//! Text from outside (a stored name, a request, a server's or a command's words) made safe to
//! show on a terminal: nothing in it may move the cursor, rewrite a line, reorder what follows
//! or hide itself. One rule for every place that shows such text.

/// A character that does not show as itself: a control character (C0, DEL, C1: newlines,
/// escape sequences), a line or paragraph separator, or an invisible formatting character
/// (Unicode's `Cf`: every bidirectional mark, embedding, override and isolate, zero-width
/// spaces and joiners, the soft hyphen, the byte-order mark, tag characters...).
pub fn is_hidden(c: char) -> bool {
    c.is_control()
        || matches!(
            c,
            '\u{00ad}'
                | '\u{0600}'..='\u{0605}'
                | '\u{061c}'
                | '\u{06dd}'
                | '\u{070f}'
                | '\u{0890}'..='\u{0891}'
                | '\u{08e2}'
                | '\u{180e}'
                | '\u{200b}'..='\u{200f}'
                | '\u{2028}'..='\u{202e}'
                | '\u{2060}'..='\u{2064}'
                | '\u{2066}'..='\u{206f}'
                | '\u{feff}'
                | '\u{fff9}'..='\u{fffb}'
                | '\u{110bd}'
                | '\u{110cd}'
                | '\u{13430}'..='\u{1343f}'
                | '\u{1bca0}'..='\u{1bca3}'
                | '\u{1d173}'..='\u{1d17a}'
                | '\u{e0001}'
                | '\u{e0020}'..='\u{e007f}'
        )
}

/// `text` with every [hidden](is_hidden) character escaped (`\n`, `\u{200f}`).
pub fn escaped(text: &str) -> String {
    let mut shown = String::with_capacity(text.len());
    for c in text.chars() {
        if is_hidden(c) {
            shown.extend(c.escape_default());
        } else {
            shown.push(c);
        }
    }
    shown
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_control_bidi_and_invisible_character_is_escaped() {
        for c in [
            '\n',
            '\r',
            '\t',
            '\u{1b}',
            '\u{7f}',
            '\u{9b}',
            '\u{202e}',
            '\u{2067}',
            '\u{200f}',
            '\u{061c}',
            '\u{200b}',
            '\u{200d}',
            '\u{2028}',
            '\u{2029}',
            '\u{feff}',
            '\u{00ad}',
            '\u{2060}',
            '\u{e0041}',
        ] {
            assert!(is_hidden(c), "{:?}", c);
            let shown = escaped(&format!("a{c}b"));
            assert!(!shown.contains(c), "{shown}");
            assert!(shown.starts_with("a\\") && shown.ends_with('b'), "{shown}");
        }
        for plain in [
            "ghcr.io/org",
            "registry-1 (team)",
            "café",
            "日本語",
            "emoji 🚀",
        ] {
            assert_eq!(escaped(plain), plain);
        }
    }
}

//! Server-URL parsing on arbitrary text: never a panic, and every accepted URL keeps the rules
//! of `src/server_url.rs` (its own key first, erase keys a subset of lookup keys, no spaces or
//! control characters in keys, http and https never matching each other).
#![no_main]

use coffer::server_url::ServerUrl;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|text: &str| {
    let Ok(url) = ServerUrl::parse(text) else {
        return;
    };
    let key = url.key();
    let lookups = url.lookup_keys();
    let erases = url.erase_keys();
    assert_eq!(lookups[0], key);
    assert_eq!(erases[0], key);
    assert!(erases.iter().all(|k| lookups.contains(k)));
    for k in &lookups {
        assert!(
            !k.chars().any(|c| c.is_control() || c.is_whitespace()),
            "{k:?}"
        );
    }
    for (mine, other) in [("https://", "http://"), ("http://", "https://")] {
        if key.starts_with(mine) {
            assert!(!lookups.iter().any(|k| k.starts_with(other)), "{lookups:?}");
        }
    }
    assert_eq!(ServerUrl::parse(text).as_ref(), Ok(&url));
});

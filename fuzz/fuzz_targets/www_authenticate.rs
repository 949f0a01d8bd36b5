//! `WWW-Authenticate` parsing on arbitrary text: never a panic, schemes and parameter names come
//! back lower-case, and `find` agrees with `parse`.
#![no_main]

use coffer::token::challenge;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|text: &str| {
    let challenges = challenge::parse(text);
    for c in &challenges {
        assert_eq!(c.scheme, c.scheme.to_ascii_lowercase(), "{text:?}");
        assert!(
            c.params.keys().all(|k| *k == k.to_ascii_lowercase()),
            "{text:?}"
        );
    }
    let bearer = challenge::find([text], "bearer");
    assert_eq!(
        bearer.as_ref(),
        challenges.iter().find(|c| c.scheme == "bearer")
    );
    assert_eq!(
        challenge::parse(text),
        challenges,
        "parsing is deterministic"
    );
});

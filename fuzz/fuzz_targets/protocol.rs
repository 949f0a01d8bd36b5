//! The helper protocol on arbitrary input: the first byte picks the action, the rest is stdin.
//! Whatever arrives, the answer is at most one line, a failure is exit 1 with one line, and the
//! stored secret appears only in a successful `get`.
#![no_main]

use coffer::credentials::Credentials;
use coffer::protocol;
use coffer::store::memory::MemoryStore;
use libfuzzer_sys::fuzz_target;

const ACTIONS: [&str; 6] = ["store", "get", "erase", "list", "version", "unknown"];
const SECRET: &str = "seeded-secret-0d1e";

fuzz_target!(|data: &[u8]| {
    let Some((&selector, input)) = data.split_first() else {
        return;
    };
    let action = ACTIONS[usize::from(selector) % ACTIONS.len()];
    let credentials = Credentials::new(MemoryStore::default());
    credentials
        .store("ghcr.io", "alice", SECRET.into())
        .expect("memory store");
    let mut out = Vec::new();
    let outcome = protocol::serve(&[action.to_owned()], input, &mut out, || Ok(credentials));
    let status = outcome.status;
    // A query may itself spell the secret (the fuzzer finds that), and naming the query back is
    // fine: the stored secret must not appear where the input did not put it.
    let input_has_secret = input.windows(SECRET.len()).any(|w| w == SECRET.as_bytes());
    // The line for the terminal is one line and never holds the secret.
    if let Some(notice) = &outcome.notice {
        assert!(!notice.contains('\n') && (input_has_secret || !notice.contains(SECRET)));
    }

    let lines = out.iter().filter(|&&b| b == b'\n').count();
    match status {
        0 => assert!(lines <= 1 && (out.is_empty() || out.ends_with(b"\n"))),
        1 => assert!(lines == 1 && out.ends_with(b"\n") && out.len() > 1),
        other => panic!("exit status {other}"),
    }
    let answered_secret = action == "get" && status == 0;
    if !answered_secret && !input_has_secret {
        assert!(!out.windows(SECRET.len()).any(|w| w == SECRET.as_bytes()));
    }
});

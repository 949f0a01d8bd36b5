//! A token endpoint's answer on arbitrary bytes: never a panic, whatever the JSON, the token
//! fields, `issued_at` or a refresh token's JWT claims hold.
#![no_main]

use coffer::token::http::Reply;
use coffer::token::oauth2::read_answer;
use libfuzzer_sys::fuzz_target;
use zeroize::Zeroizing;

fuzz_target!(|body: &[u8]| {
    let reply = Reply {
        status: 200,
        challenges: Vec::new(),
        body: Zeroizing::new(body.to_vec()),
        skew: -3600,
        arrived: 1_700_000_000,
    };
    let url = url::Url::parse("https://auth.example/token").expect("a valid URL");
    // Whatever the answer holds, reading it ends in a value or a one-line refusal.
    if let Err(error) = read_answer(&reply, &url) {
        assert!(!error.to_string().contains('\n'));
    }
});

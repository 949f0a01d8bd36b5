//! `config.toml` on arbitrary text, checked as coffer reads it: never a panic, and whatever loads saves and loads back the
//! same.
#![no_main]

use coffer::config::Config;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|text: &str| {
    let Ok(config) = Config::parse(text) else {
        return;
    };
    let saved = toml::to_string_pretty(&config).expect("a loaded config saves");
    assert_eq!(Config::parse(&saved).expect("a saved config loads"), config);
});

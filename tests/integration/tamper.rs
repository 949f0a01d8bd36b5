//! Damaged and unreadable vaults through the real binary: every byte of a small vault flipped
//! in turn is refused with one clear line and exit 1, never a panic and never other data; a
//! vault coffer may not read says what to do. (Truncated, empty, foreign, future-version and
//! readable-by-others files are in `vectors.rs`.)

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::time::Instant;

use coffer::vault::VaultError;

use crate::harness::{Env, Run, bin, release};

const SECRET: &str = "tamper-secret-5f1c";
const URL: &str = "registry.example:5000";

/// The refusals a flip in each region of the layout (`src/vault/format.rs`) may cause.
fn expected(at: usize, flipped: &[u8]) -> Vec<String> {
    let version = u16::from_le_bytes([flipped[8], flipped[9]]);
    let errors = match at {
        0..8 => vec![VaultError::NotAVault],
        8..10 => vec![VaultError::FutureVersion(version), VaultError::Damaged],
        10..12 => vec![VaultError::Damaged],
        12..24 => vec![VaultError::KdfOutOfBounds, VaultError::WrongKey],
        24..116 => vec![VaultError::WrongKey],
        _ => vec![VaultError::Damaged, VaultError::Truncated],
    };
    errors.iter().map(ToString::to_string).collect()
}

#[test]
fn every_flipped_byte_is_refused_with_one_clear_line() {
    let env = Env::new();
    env.helper(
        "store",
        &format!(r#"{{"ServerURL":"{URL}","Username":"alice","Secret":"{SECRET}"}}"#),
    )
    .success();
    let original = fs::read(env.vault()).expect("vault");

    let started = Instant::now();
    let positions: Vec<usize> = (0..original.len()).collect();
    // A few at a time: each process derives a key with 19 MiB of Argon2id memory.
    for batch in positions.chunks(16) {
        let homes: Vec<(usize, Vec<u8>, Env)> = batch
            .iter()
            .map(|&at| {
                let mut flipped = original.clone();
                flipped[at] ^= 1 << (at % 8);
                let home = Env::empty();
                fs::set_permissions(home.coffer_home(), fs::Permissions::from_mode(0o700))
                    .expect("chmod");
                fs::write(home.vault(), &flipped).expect("write");
                fs::set_permissions(home.vault(), fs::Permissions::from_mode(0o600))
                    .expect("chmod");
                (at, flipped, home)
            })
            .collect();
        let held = homes
            .iter()
            .map(|(_, _, h)| h.hold_helper("get", URL))
            .collect();
        let (runs, _) = release(held);
        for ((at, flipped, home), run) in homes.iter().zip(&runs) {
            run.failure().hides(&[SECRET]);
            assert_eq!(run.stderr(), "", "flip at {at}");
            let allowed: Vec<String> = expected(*at, flipped)
                .iter()
                .map(|message| format!("{}: {message}", home.vault().display()))
                .collect();
            // A wrong key also names where the passphrase came from and how to fix that.
            let out = run.stdout();
            assert!(
                out.lines().count() == 1
                    && allowed.iter().any(|m| {
                        out == format!("{m}\n")
                            || (m.ends_with("vault header is damaged") && out.starts_with(m))
                    }),
                "flip at byte {at}: got {:?}, expected one of {allowed:?}",
                run.stdout()
            );
        }
    }
    eprintln!(
        "tamper: {} single-bit flips, one per byte of a {}-byte vault, each refused by the \
         helper with one line and exit 1 ({} s)",
        original.len(),
        original.len(),
        started.elapsed().as_secs_f32()
    );
}

#[test]
fn a_vault_coffer_may_not_read_says_what_to_do() {
    let env = Env::new();
    env.helper(
        "store",
        &format!(r#"{{"ServerURL":"{URL}","Username":"alice","Secret":"{SECRET}"}}"#),
    )
    .success();
    fs::set_permissions(env.vault(), fs::Permissions::from_mode(0o000)).expect("chmod");
    let message = coffer::files::FileError::Unreadable { path: env.vault() }.to_string();
    assert!(message.contains("chmod 600"), "{message}");

    let helper = Run::of(
        env.command_unprivileged(bin("docker-credential-coffer"))
            .arg("get"),
        URL,
    );
    helper.failure().hides(&[SECRET]);
    assert_eq!(
        (helper.stdout(), helper.stderr()),
        (format!("{message}\n"), String::new())
    );

    let ls = Run::of(env.command_unprivileged(bin("coffer")).arg("ls"), "");
    ls.failure().hides(&[SECRET]);
    assert_eq!(ls.stderr(), format!("coffer: {message}\n"));
}

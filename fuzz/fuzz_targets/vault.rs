//! The vault file, in two ways picked by the first byte:
//! - raw: any bytes through the layout parser, the key header reader and an open with a fixed
//!   key: never a panic and never a read outside the file;
//! - tamper: a real vault of fuzzer-chosen records under the fixed key, with a fuzzer-chosen
//!   xor at a fuzzer-chosen byte: untouched, it opens with exactly its records; changed
//!   anywhere, it never opens.
#![no_main]

use std::sync::LazyLock;

use coffer::vault::format::{KeyHeader, Layout, Sealing};
use coffer::vault::{self, OpenVault, VaultKey};
use libfuzzer_sys::fuzz_target;
use zeroize::Zeroizing;

static KEY: LazyLock<VaultKey> = LazyLock::new(|| {
    let header = KeyHeader {
        sealing: Sealing::Keychain,
        kdf_salt: [1; 16],
        vault_id: [2; 16],
        wrap_nonce: [3; 12],
        wrapped_key: [4; 48],
    };
    VaultKey::from_cache(&header, Zeroizing::new([5; 32]))
});

fuzz_target!(|data: &[u8]| {
    match data.split_first() {
        Some((0, rest)) if rest.len() >= 3 => tamper(rest),
        Some((_, rest)) => raw(rest),
        None => {}
    }
});

fn raw(bytes: &[u8]) {
    let _ = vault::key_header(bytes);
    if let Ok(layout) = Layout::parse(bytes) {
        for row in layout.rows() {
            let _ = layout.record(row);
            let _ = layout.row(&row.tag);
        }
    }
    if let Ok(opened) = OpenVault::open(bytes, &KEY) {
        let _ = opened.records();
    }
}

fn tamper(data: &[u8]) {
    let at = usize::from(u16::from_le_bytes([data[0], data[1]]));
    let mask = data[2];
    let records: Vec<(String, &[u8])> = data[3..]
        .split(|&b| b == b'|')
        .take(8)
        .enumerate()
        .map(|(i, plain)| (format!("n{i}"), plain))
        .collect();
    let mut bytes = vault::encode(&KEY, records.iter().map(|(n, p)| (n.as_str(), *p)));
    let at = at % bytes.len();
    bytes[at] ^= mask;
    let opened = OpenVault::open(&bytes, &KEY).and_then(|v| v.records().map(|_| v));
    if mask != 0 {
        assert!(opened.is_err(), "a change at byte {at} went unnoticed");
        return;
    }
    let opened = opened.expect("an untouched vault opens");
    assert_eq!(opened.len(), records.len());
    for (name, plain) in &records {
        let (_, row) = opened.locate(std::slice::from_ref(name)).expect("present");
        let start = row.offset as usize;
        let found = opened
            .open_record(row, &bytes[start..start + row.len as usize])
            .expect("reads");
        assert_eq!(found.as_slice(), *plain);
    }
}

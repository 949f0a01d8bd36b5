//! The vault file's byte layout (format 1). All integers are little-endian.
//!
//! ```text
//! offset  size  field
//!      0     8  magic "COFFERVT"
//!      8     2  format version (1)
//!     10     1  sealing: 1 = passphrase (Argon2id), 2 = key held by the OS keychain
//!     11     1  reserved, 0
//!     12    12  Argon2id memory KiB, iterations, parallelism (u32 each; 0 when keychain-sealed)
//!     24    16  Argon2id salt
//!     40    16  vault id (random, fixed for the vault's life; names its cached key)
//!     56    12  nonce of the wrapped data key
//!     68    48  data key sealed by the key-encryption key, AAD = bytes 0..56
//!    116    16  write salt (random per write): the records' key is HKDF(data key, write salt)
//!    132     4  record count n
//!    136  24*n  table, sorted by lookup tag: tag (16), record offset (4), record length (4)
//!      T    28  seal: nonce (12) and GCM tag (16) over nothing, AAD = bytes 0..T
//!      R     …  records: nonce (12) and AES-256-GCM ciphertext of the entry's JSON, AAD = its tag
//! ```
//! A fresh write salt per write means every write seals under a fresh key, so records cannot
//! be mixed between versions of the file; the seal covers the header and the table, so no
//! record can be added, dropped or moved without the data key.

use super::VaultError;
use crate::vault::crypto::{KdfParams, LOOKUP_TAG_LEN, NONCE_LEN, SALT_LEN, TAG_LEN};

pub const MAGIC: [u8; 8] = *b"COFFERVT";
pub const VERSION: u16 = 1;

const KEY_AAD_END: usize = 56;
const WRAPPED_KEY_LEN: usize = 32 + TAG_LEN;
const COUNT_AT: usize = 132;
pub const TABLE_AT: usize = 136;
pub const ROW_LEN: usize = LOOKUP_TAG_LEN + 8;
pub const SEAL_LEN: usize = NONCE_LEN + TAG_LEN;
/// More records than anyone has registries; bounds allocation from a crafted count.
const MAX_RECORDS: usize = 1 << 20;

/// How the data key is sealed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sealing {
    Passphrase(KdfParams),
    Keychain,
}

/// The part of the header that stays the same from write to write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyHeader {
    pub sealing: Sealing,
    pub kdf_salt: [u8; SALT_LEN],
    pub vault_id: [u8; 16],
    pub wrap_nonce: [u8; NONCE_LEN],
    pub wrapped_key: [u8; WRAPPED_KEY_LEN],
}

impl KeyHeader {
    /// The bytes the wrapped data key is bound to.
    pub fn aad(&self) -> [u8; KEY_AAD_END] {
        let mut out = [0u8; KEY_AAD_END];
        out[..8].copy_from_slice(&MAGIC);
        out[8..10].copy_from_slice(&VERSION.to_le_bytes());
        let params = match self.sealing {
            Sealing::Passphrase(params) => {
                out[10] = 1;
                params
            }
            Sealing::Keychain => {
                out[10] = 2;
                KdfParams {
                    memory_kib: 0,
                    iterations: 0,
                    parallelism: 0,
                }
            }
        };
        out[12..16].copy_from_slice(&params.memory_kib.to_le_bytes());
        out[16..20].copy_from_slice(&params.iterations.to_le_bytes());
        out[20..24].copy_from_slice(&params.parallelism.to_le_bytes());
        out[24..40].copy_from_slice(&self.kdf_salt);
        out[40..56].copy_from_slice(&self.vault_id);
        out
    }
}

/// One row of the table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Row {
    pub tag: [u8; LOOKUP_TAG_LEN],
    pub offset: u32,
    pub len: u32,
}

/// A vault file split into its parts, with lengths checked but nothing yet authenticated.
#[derive(Debug)]
pub struct Layout<'a> {
    pub key_header: KeyHeader,
    pub write_salt: [u8; SALT_LEN],
    /// Header and table: what the seal authenticates.
    pub sealed_prefix: &'a [u8],
    pub table: &'a [u8],
    pub seal_nonce: &'a [u8],
    pub seal_tag: &'a [u8],
    pub bytes: &'a [u8],
}

impl<'a> Layout<'a> {
    pub fn parse(bytes: &'a [u8]) -> Result<Self, VaultError> {
        if bytes.is_empty() {
            return Err(VaultError::Empty);
        }
        if bytes.len() < MAGIC.len() || bytes[..MAGIC.len()] != MAGIC {
            return Err(VaultError::NotAVault);
        }
        if bytes.len() < TABLE_AT {
            return Err(VaultError::Truncated);
        }
        let version = u16::from_le_bytes([bytes[8], bytes[9]]);
        if version != VERSION {
            return Err(if version > VERSION {
                VaultError::FutureVersion(version)
            } else {
                VaultError::Damaged
            });
        }
        let params = KdfParams {
            memory_kib: u32_at(bytes, 12),
            iterations: u32_at(bytes, 16),
            parallelism: u32_at(bytes, 20),
        };
        let sealing = match bytes[10] {
            1 if params.within_bounds() => Sealing::Passphrase(params),
            1 => return Err(VaultError::KdfOutOfBounds),
            2 => Sealing::Keychain,
            _ => return Err(VaultError::Damaged),
        };
        let key_header = KeyHeader {
            sealing,
            kdf_salt: array_at(bytes, 24),
            vault_id: array_at(bytes, 40),
            wrap_nonce: array_at(bytes, 56),
            wrapped_key: array_at(bytes, 68),
        };
        let sealed_end = sealed_len(bytes).ok_or(VaultError::Damaged)?;
        let table_end = sealed_end - SEAL_LEN;
        if bytes.len() < sealed_end {
            return Err(VaultError::Truncated);
        }
        Ok(Layout {
            key_header,
            write_salt: array_at(bytes, 116),
            sealed_prefix: &bytes[..table_end],
            table: &bytes[TABLE_AT..table_end],
            seal_nonce: &bytes[table_end..table_end + NONCE_LEN],
            seal_tag: &bytes[table_end + NONCE_LEN..table_end + SEAL_LEN],
            bytes,
        })
    }

    pub fn rows(&self) -> impl ExactSizeIterator<Item = Row> + '_ {
        self.table.chunks_exact(ROW_LEN).map(|row| Row {
            tag: array_at(row, 0),
            offset: u32_at(row, LOOKUP_TAG_LEN),
            len: u32_at(row, LOOKUP_TAG_LEN + 4),
        })
    }

    /// The row for `tag`, by binary search over the sorted table.
    pub fn row(&self, tag: &[u8; LOOKUP_TAG_LEN]) -> Option<Row> {
        let rows = self.table.len() / ROW_LEN;
        let (mut low, mut high) = (0, rows);
        while low < high {
            let mid = (low + high) / 2;
            let at = mid * ROW_LEN;
            match self.table[at..at + LOOKUP_TAG_LEN].cmp(tag.as_slice()) {
                std::cmp::Ordering::Less => low = mid + 1,
                std::cmp::Ordering::Greater => high = mid,
                std::cmp::Ordering::Equal => return self.rows().nth(mid),
            }
        }
        None
    }

    /// The bytes of a record, if its row points inside the file.
    pub fn record(&self, row: Row) -> Result<&'a [u8], VaultError> {
        let start = row.offset as usize;
        let end = start
            .checked_add(row.len as usize)
            .ok_or(VaultError::Damaged)?;
        if end > self.bytes.len() {
            return Err(VaultError::Truncated);
        }
        self.check_record_row(row)?;
        Ok(&self.bytes[start..end])
    }

    /// Refuses a row whose record would overlap the header, table or seal, or is too short to
    /// hold a nonce and a tag.
    pub fn check_record_row(&self, row: Row) -> Result<(), VaultError> {
        if (row.offset as usize) < self.sealed_prefix.len() + SEAL_LEN
            || (row.len as usize) < NONCE_LEN + TAG_LEN
        {
            return Err(VaultError::Truncated);
        }
        Ok(())
    }
}

/// The length of the header, table and seal (all a lookup reads before its one record), from
/// the first bytes of a file; `None` when they hold no full header or an impossible count.
pub fn sealed_len(start: &[u8]) -> Option<usize> {
    if start.len() < TABLE_AT {
        return None;
    }
    let count = u32_at(start, COUNT_AT) as usize;
    (count <= MAX_RECORDS).then_some(TABLE_AT + count * ROW_LEN + SEAL_LEN)
}

/// Writes the header fields that come before the table.
pub fn encode_header(
    out: &mut Vec<u8>,
    key_header: &KeyHeader,
    write_salt: &[u8; SALT_LEN],
    count: usize,
) {
    out.extend_from_slice(&key_header.aad());
    out.extend_from_slice(&key_header.wrap_nonce);
    out.extend_from_slice(&key_header.wrapped_key);
    out.extend_from_slice(write_salt);
    out.extend_from_slice(
        &u32::try_from(count)
            .expect("record count fits in u32")
            .to_le_bytes(),
    );
}

pub fn encode_row(out: &mut Vec<u8>, row: &Row) {
    out.extend_from_slice(&row.tag);
    out.extend_from_slice(&row.offset.to_le_bytes());
    out.extend_from_slice(&row.len.to_le_bytes());
}

fn u32_at(bytes: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(array_at(bytes, at))
}

fn array_at<const N: usize>(bytes: &[u8], at: usize) -> [u8; N] {
    let mut out = [0u8; N];
    out.copy_from_slice(&bytes[at..at + N]);
    out
}

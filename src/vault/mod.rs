//! The encrypted vault file: a map from entry names to sealed bytes.
//!
//! The layout is in [`format`](mod@format), the primitives in [`crypto`]. A `get` reads the
//! file once, checks the seal over header and table, finds its record by binary search on a
//! keyed tag and decrypts that record alone, so its cost barely grows with the number of
//! entries.

pub mod crypto;
pub mod format;

use crypto::{KdfParams, Key, LOOKUP_TAG_LEN, NONCE_LEN, SALT_LEN};
use format::{KeyHeader, Layout, Row, Sealing};
use zeroize::Zeroizing;

const RECORDS_PURPOSE: &[u8] = b"coffer vault v1 records";
const LOOKUP_PURPOSE: &[u8] = b"coffer vault v1 lookup tags";

/// What can be wrong with a vault file. Each message says what to do about it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VaultError {
    #[error(
        "the vault file is empty; restore it from a backup, or move it aside and run `coffer init`"
    )]
    Empty,
    #[error("this is not a coffer vault (unknown file signature); check COFFER_HOME")]
    NotAVault,
    #[error("the vault file is truncated; restore it from a backup")]
    Truncated,
    #[error("the vault was written by a newer coffer (format {0}); upgrade coffer to open it")]
    FutureVersion(u16),
    #[error(
        "the vault asks for key-derivation work outside the accepted bounds; the file is damaged or crafted"
    )]
    KdfOutOfBounds,
    #[error("cannot unlock the vault: the passphrase is wrong, or the vault header is damaged")]
    WrongKey,
    #[error(
        "the vault is damaged or was tampered with (authentication failed); restore it from a backup"
    )]
    Damaged,
}

/// How the key-encryption key is obtained for a new or re-keyed vault.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NewSealing {
    Passphrase(KdfParams),
    Keychain,
}

/// The vault's data key, with the header that holds it wrapped.
/// Its `Debug` names the vault, never the key.
pub struct VaultKey {
    header: KeyHeader,
    data_key: Key,
}

impl VaultKey {
    /// A new vault's key, wrapped under `kek` (from [`derive_kek`] or a keychain key).
    pub fn generate(sealing: NewSealing, kdf_salt: [u8; SALT_LEN], kek: &Key) -> Self {
        Self::wrap(
            crypto::random_key(),
            crypto::random_bytes(),
            sealing,
            kdf_salt,
            kek,
        )
    }

    /// Opens the wrapped data key with the key-encryption key.
    pub fn unwrap(header: &KeyHeader, kek: &Key) -> Result<Self, VaultError> {
        let plain = crypto::open(kek, &header.wrap_nonce, &header.wrapped_key, &header.aad())
            .map_err(|_| VaultError::WrongKey)?;
        let mut data_key = Zeroizing::new([0u8; crypto::KEY_LEN]);
        if plain.len() != data_key.len() {
            return Err(VaultError::WrongKey);
        }
        data_key.copy_from_slice(&plain);
        Ok(VaultKey {
            header: header.clone(),
            data_key,
        })
    }

    /// A data key from an unlock cache. It is proven right by the seal when the vault opens.
    pub fn from_cache(header: &KeyHeader, data_key: Key) -> Self {
        VaultKey {
            header: header.clone(),
            data_key,
        }
    }

    /// The same data key, wrapped under a new key-encryption key (passphrase change).
    pub fn rewrap(&self, sealing: NewSealing, kdf_salt: [u8; SALT_LEN], kek: &Key) -> Self {
        Self::wrap(
            self.data_key.clone(),
            self.header.vault_id,
            sealing,
            kdf_salt,
            kek,
        )
    }

    fn wrap(
        data_key: Key,
        vault_id: [u8; 16],
        sealing: NewSealing,
        kdf_salt: [u8; SALT_LEN],
        kek: &Key,
    ) -> Self {
        let mut header = KeyHeader {
            sealing: match sealing {
                NewSealing::Passphrase(params) => Sealing::Passphrase(params),
                NewSealing::Keychain => Sealing::Keychain,
            },
            kdf_salt,
            vault_id,
            wrap_nonce: crypto::random_bytes(),
            wrapped_key: [0u8; 48],
        };
        let wrapped = crypto::seal(kek, &header.wrap_nonce, data_key.as_ref(), &header.aad());
        header.wrapped_key.copy_from_slice(&wrapped);
        VaultKey { header, data_key }
    }

    pub fn header(&self) -> &KeyHeader {
        &self.header
    }

    pub fn data_key(&self) -> &Key {
        &self.data_key
    }

    fn lookup_key(&self) -> Key {
        crypto::subkey(&self.data_key, &self.header.vault_id, LOOKUP_PURPOSE)
    }

    /// The lookup tag of `name`: stable across writes, meaningless without the key.
    pub fn lookup_tag(&self, name: &str) -> [u8; LOOKUP_TAG_LEN] {
        crypto::lookup_tag(&self.lookup_key(), name)
    }
}

/// The key-encryption key for a passphrase-sealed vault.
pub fn derive_kek(passphrase: &[u8], header: &KeyHeader) -> Result<Key, VaultError> {
    match header.sealing {
        Sealing::Passphrase(params) => Ok(crypto::derive_from_passphrase(
            passphrase,
            &header.kdf_salt,
            params,
        )),
        Sealing::Keychain => Err(VaultError::WrongKey),
    }
}

/// Reads the key header of a vault file, checking only its shape.
pub fn key_header(bytes: &[u8]) -> Result<KeyHeader, VaultError> {
    Layout::parse(bytes).map(|layout| layout.key_header)
}

/// Decrypted bytes of one record, wiped when dropped.
pub type Plaintext = Zeroizing<Vec<u8>>;
/// A record's lookup tag.
pub type Tag = [u8; LOOKUP_TAG_LEN];

/// A vault file whose header and table have been authenticated. Its `Debug` shows no key.
pub struct OpenVault<'a> {
    layout: Layout<'a>,
    records_key: Key,
    lookup_key: Key,
}

impl std::fmt::Debug for VaultKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VaultKey")
            .field("vault_id", &self.header.vault_id)
            .finish_non_exhaustive()
    }
}

impl std::fmt::Debug for OpenVault<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OpenVault").finish_non_exhaustive()
    }
}

impl<'a> OpenVault<'a> {
    pub fn open(bytes: &'a [u8], key: &VaultKey) -> Result<Self, VaultError> {
        let layout = Layout::parse(bytes)?;
        if layout.key_header.vault_id != key.header.vault_id {
            return Err(VaultError::WrongKey);
        }
        let records_key = crypto::subkey(&key.data_key, &layout.write_salt, RECORDS_PURPOSE);
        crypto::open(
            &records_key,
            layout.seal_nonce,
            layout.seal_tag,
            layout.sealed_prefix,
        )
        .map_err(|_| VaultError::Damaged)?;
        Ok(OpenVault {
            layout,
            records_key,
            lookup_key: key.lookup_key(),
        })
    }

    pub fn len(&self) -> usize {
        self.layout.rows().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The lookup tag of `name` in this vault: stable across writes, meaningless without the key.
    pub fn tag(&self, name: &str) -> [u8; LOOKUP_TAG_LEN] {
        crypto::lookup_tag(&self.lookup_key, name)
    }

    /// The index of the first of `names` that is present, and its row: where its record is,
    /// for a reader that read only the header and table and fetches the record itself.
    pub fn locate(&self, names: &[String]) -> Option<(usize, Row)> {
        names
            .iter()
            .enumerate()
            .find_map(|(index, name)| Some((index, self.layout.row(&self.tag(name))?)))
    }

    /// Decrypts the record of `row`, read separately from the file (`row.len` bytes at
    /// `row.offset`).
    pub fn open_record(&self, row: Row, record: &[u8]) -> Result<Plaintext, VaultError> {
        self.layout.check_record_row(row)?;
        if record.len() != row.len as usize {
            return Err(VaultError::Truncated);
        }
        self.open_sealed(row, record)
    }

    /// Every record's tag and plaintext, in table order.
    pub fn records(&self) -> Result<Vec<(Tag, Plaintext)>, VaultError> {
        self.layout
            .rows()
            .map(|row| Ok((row.tag, self.decrypt(row)?)))
            .collect()
    }

    fn decrypt(&self, row: Row) -> Result<Plaintext, VaultError> {
        self.open_sealed(row, self.layout.record(row)?)
    }

    fn open_sealed(&self, row: Row, record: &[u8]) -> Result<Plaintext, VaultError> {
        let (nonce, sealed) = record.split_at(NONCE_LEN);
        crypto::open(&self.records_key, nonce, sealed, &row.tag).map_err(|_| VaultError::Damaged)
    }
}

/// Encodes a whole vault file from named plaintexts, under a fresh write salt.
pub fn encode<'n>(
    key: &VaultKey,
    records: impl IntoIterator<Item = (&'n str, &'n [u8])>,
) -> Vec<u8> {
    let lookup_key = key.lookup_key();
    let mut records: Vec<([u8; LOOKUP_TAG_LEN], &[u8])> = records
        .into_iter()
        .map(|(name, plain)| (crypto::lookup_tag(&lookup_key, name), plain))
        .collect();
    records.sort_by_key(|record| record.0);
    records.dedup_by(|a, b| a.0 == b.0);

    let write_salt: [u8; SALT_LEN] = crypto::random_bytes();
    let records_key = crypto::subkey(&key.data_key, &write_salt, RECORDS_PURPOSE);
    let sealed: Vec<([u8; LOOKUP_TAG_LEN], [u8; NONCE_LEN], Vec<u8>)> = records
        .iter()
        .map(|(tag, plain)| {
            let nonce = crypto::random_bytes();
            (*tag, nonce, crypto::seal(&records_key, &nonce, plain, tag))
        })
        .collect();

    let mut out = Vec::new();
    format::encode_header(&mut out, &key.header, &write_salt, sealed.len());
    let mut offset = format::TABLE_AT + sealed.len() * format::ROW_LEN + format::SEAL_LEN;
    for (tag, _, ciphertext) in &sealed {
        let len = NONCE_LEN + ciphertext.len();
        let row = Row {
            tag: *tag,
            offset: to_u32(offset),
            len: to_u32(len),
        };
        format::encode_row(&mut out, &row);
        offset += len;
    }
    let seal_nonce: [u8; NONCE_LEN] = crypto::random_bytes();
    let seal = crypto::seal(&records_key, &seal_nonce, &[], &out);
    out.extend_from_slice(&seal_nonce);
    out.extend_from_slice(&seal);
    for (_, nonce, ciphertext) in &sealed {
        out.extend_from_slice(nonce);
        out.extend_from_slice(ciphertext);
    }
    out
}

fn to_u32(n: usize) -> u32 {
    u32::try_from(n).expect("a vault file stays under 4 GiB")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn test_key() -> VaultKey {
        let salt = crypto::random_bytes();
        let kek = crypto::random_key();
        VaultKey::generate(NewSealing::Passphrase(KdfParams::MIN), salt, &kek)
    }

    #[test]
    fn debug_of_a_key_or_an_open_vault_shows_no_key_bytes() {
        let key = test_key();
        let bytes = encode(&key, [("a", b"alpha".as_slice())]);
        let vault = OpenVault::open(&bytes, &key).expect("opens");
        let data_key = format!("{:?}", key.data_key().as_slice());
        for shown in [format!("{key:?}"), format!("{vault:?}")] {
            assert!(!shown.contains(&data_key), "{shown}");
            assert!(!shown.contains("alpha"), "{shown}");
            assert!(shown.len() < 200, "{shown}");
        }
    }

    #[test]
    fn round_trip_and_lookup() {
        let key = test_key();
        let bytes = encode(
            &key,
            [
                ("a", b"alpha".as_slice()),
                ("b", b"beta".as_slice()),
                ("c", b"".as_slice()),
            ],
        );
        let vault = OpenVault::open(&bytes, &key).expect("opens");
        assert_eq!(vault.len(), 3);
        let names = ["zz".to_owned(), "b".to_owned(), "a".to_owned()];
        let (index, row) = vault.locate(&names).expect("found");
        let record = &bytes[row.offset as usize..][..row.len as usize];
        let plain = vault.open_record(row, record).expect("opens");
        assert_eq!((index, plain.as_slice()), (1, b"beta".as_slice()));
        assert!(vault.locate(&["missing".to_owned()]).is_none());
        assert_eq!(
            vault.open_record(row, &record[1..]).err(),
            Some(VaultError::Truncated)
        );
        assert_eq!(vault.records().expect("reads").len(), 3);
    }

    #[test]
    fn every_write_uses_fresh_randomness() {
        let key = test_key();
        let one = encode(&key, [("a", b"alpha".as_slice())]);
        let two = encode(&key, [("a", b"alpha".as_slice())]);
        assert_ne!(one, two);
        assert_eq!(one.len(), two.len());
    }

    #[test]
    fn wrapped_key_needs_the_right_kek() {
        let kek = crypto::random_key();
        let key = VaultKey::generate(NewSealing::Keychain, [0u8; SALT_LEN], &kek);
        assert!(VaultKey::unwrap(key.header(), &kek).is_ok());
        assert_eq!(
            VaultKey::unwrap(key.header(), &crypto::random_key()).err(),
            Some(VaultError::WrongKey)
        );
    }

    #[test]
    fn every_flipped_byte_is_detected() {
        let key = test_key();
        let bytes = encode(
            &key,
            [("a", b"alpha".as_slice()), ("b", b"beta".as_slice())],
        );
        for at in 0..bytes.len() {
            let mut damaged = bytes.clone();
            damaged[at] ^= 0x01;
            let opened =
                OpenVault::open(&damaged, &key).and_then(|vault| vault.records().map(|_| ()));
            assert!(opened.is_err(), "flip at {at} went unnoticed");
        }
    }

    #[test]
    fn shape_errors() {
        let key = test_key();
        let bytes = encode(&key, [("a", b"alpha".as_slice())]);
        assert_eq!(Layout::parse(&[]).err(), Some(VaultError::Empty));
        assert_eq!(
            Layout::parse(b"hello world").err(),
            Some(VaultError::NotAVault)
        );
        assert_eq!(
            Layout::parse(&bytes[..100]).err(),
            Some(VaultError::Truncated)
        );
        let mut future = bytes.clone();
        future[8] = 9;
        assert_eq!(
            Layout::parse(&future).err(),
            Some(VaultError::FutureVersion(9))
        );
        let cut = &bytes[..bytes.len() - 3];
        let vault = OpenVault::open(cut, &key).expect("header and table are intact");
        assert_eq!(vault.records().err(), Some(VaultError::Truncated));
    }
}

//! The vault's cryptography, all from RustCrypto: Argon2id for passphrases, AES-256-GCM for
//! everything sealed, HKDF-SHA256 for per-write keys and HMAC-SHA256 for lookup tags.

use aes_gcm::aead::rand_core::RngCore;
use aes_gcm::aead::{Aead, OsRng, Payload};
use aes_gcm::{Aes256Gcm, KeyInit, Nonce};
use hkdf::Hkdf;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use zeroize::Zeroizing;

pub const KEY_LEN: usize = 32;
pub const NONCE_LEN: usize = 12;
pub const TAG_LEN: usize = 16;
pub const SALT_LEN: usize = 16;
/// Length of the keyed tag that locates a record without revealing its registry.
pub const LOOKUP_TAG_LEN: usize = 16;

/// A 256-bit key, wiped from memory when dropped.
pub type Key = Zeroizing<[u8; KEY_LEN]>;

/// The AEAD check failed: wrong key, or the bytes were changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Unauthentic;

/// Argon2id work factors, as stored in a vault header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KdfParams {
    pub memory_kib: u32,
    pub iterations: u32,
    pub parallelism: u32,
}

impl KdfParams {
    /// What a new vault gets: well above OWASP's minimum, about a quarter second on a laptop.
    pub const DEFAULT: KdfParams = KdfParams {
        memory_kib: 64 * 1024,
        iterations: 3,
        parallelism: 1,
    };
    /// OWASP's current minimum for Argon2id (m=19 MiB, t=2, p=1); nothing weaker is written or read.
    pub const MIN: KdfParams = KdfParams {
        memory_kib: 19 * 1024,
        iterations: 2,
        parallelism: 1,
    };
    /// The most a vault file may ask for, so a crafted header cannot take minutes or gigabytes.
    pub const MAX: KdfParams = KdfParams {
        memory_kib: 1024 * 1024,
        iterations: 16,
        parallelism: 8,
    };

    pub fn within_bounds(&self) -> bool {
        (Self::MIN.memory_kib..=Self::MAX.memory_kib).contains(&self.memory_kib)
            && (Self::MIN.iterations..=Self::MAX.iterations).contains(&self.iterations)
            && (Self::MIN.parallelism..=Self::MAX.parallelism).contains(&self.parallelism)
    }
}

pub fn random_bytes<const N: usize>() -> [u8; N] {
    let mut bytes = [0u8; N];
    OsRng.fill_bytes(&mut bytes);
    bytes
}

pub fn random_key() -> Key {
    let mut key = Zeroizing::new([0u8; KEY_LEN]);
    OsRng.fill_bytes(key.as_mut());
    key
}

/// Derives the key-encryption key from a passphrase. Bounds are checked by the caller.
pub fn derive_from_passphrase(passphrase: &[u8], salt: &[u8; SALT_LEN], params: KdfParams) -> Key {
    let argon_params = argon2::Params::new(
        params.memory_kib,
        params.iterations,
        params.parallelism,
        Some(KEY_LEN),
    )
    .expect("bounds checked before derivation");
    let argon = argon2::Argon2::new(
        argon2::Algorithm::Argon2id,
        argon2::Version::V0x13,
        argon_params,
    );
    let mut key = Zeroizing::new([0u8; KEY_LEN]);
    argon
        .hash_password_into(passphrase, salt, key.as_mut())
        .expect("salt and output lengths are fixed and valid");
    key
}

/// A purpose-specific key from the vault's data key.
pub fn subkey(data_key: &Key, salt: &[u8], purpose: &[u8]) -> Key {
    let mut key = Zeroizing::new([0u8; KEY_LEN]);
    Hkdf::<Sha256>::new(Some(salt), data_key.as_ref())
        .expand(purpose, key.as_mut())
        .expect("32 bytes is a valid HKDF-SHA256 output length");
    key
}

pub fn lookup_tag(index_key: &Key, name: &str) -> [u8; LOOKUP_TAG_LEN] {
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(index_key.as_ref())
        .expect("HMAC takes any key length");
    mac.update(name.as_bytes());
    let digest = mac.finalize().into_bytes();
    let mut tag = [0u8; LOOKUP_TAG_LEN];
    tag.copy_from_slice(&digest[..LOOKUP_TAG_LEN]);
    tag
}

/// Encrypts and authenticates `plaintext`, binding `aad`. Returns ciphertext followed by the tag.
pub fn seal(key: &Key, nonce: &[u8; NONCE_LEN], plaintext: &[u8], aad: &[u8]) -> Vec<u8> {
    Aes256Gcm::new(key.as_ref().into())
        .encrypt(
            Nonce::from_slice(nonce),
            Payload {
                msg: plaintext,
                aad,
            },
        )
        .expect("AES-GCM encryption cannot fail for in-memory buffers under 64 GiB")
}

pub fn open(
    key: &Key,
    nonce: &[u8],
    sealed: &[u8],
    aad: &[u8],
) -> Result<Zeroizing<Vec<u8>>, Unauthentic> {
    if nonce.len() != NONCE_LEN {
        return Err(Unauthentic);
    }
    Aes256Gcm::new(key.as_ref().into())
        .decrypt(Nonce::from_slice(nonce), Payload { msg: sealed, aad })
        .map(Zeroizing::new)
        .map_err(|_| Unauthentic)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_bytes_open_only_with_the_same_key_and_aad() {
        let key = random_key();
        let nonce = random_bytes::<NONCE_LEN>();
        let sealed = seal(&key, &nonce, b"secret", b"aad");
        assert_eq!(
            open(&key, &nonce, &sealed, b"aad")
                .expect("opens")
                .as_slice(),
            b"secret"
        );
        assert_eq!(open(&key, &nonce, &sealed, b"other"), Err(Unauthentic));
        assert_eq!(
            open(&random_key(), &nonce, &sealed, b"aad"),
            Err(Unauthentic)
        );
        let mut flipped = sealed.clone();
        flipped[0] ^= 1;
        assert_eq!(open(&key, &nonce, &flipped, b"aad"), Err(Unauthentic));
    }

    #[test]
    fn kdf_bounds() {
        assert!(KdfParams::DEFAULT.within_bounds());
        assert!(KdfParams::MIN.within_bounds());
        assert!(
            !KdfParams {
                memory_kib: 8 * 1024,
                ..KdfParams::MIN
            }
            .within_bounds()
        );
        assert!(
            !KdfParams {
                memory_kib: 4 * 1024 * 1024,
                ..KdfParams::MAX
            }
            .within_bounds()
        );
        assert!(
            !KdfParams {
                iterations: 1000,
                ..KdfParams::DEFAULT
            }
            .within_bounds()
        );
    }

    #[test]
    fn passphrase_derivation_is_deterministic_per_salt() {
        let salt = [7u8; SALT_LEN];
        let a = derive_from_passphrase(b"pass", &salt, KdfParams::MIN);
        let b = derive_from_passphrase(b"pass", &salt, KdfParams::MIN);
        let c = derive_from_passphrase(b"pass", &[8u8; SALT_LEN], KdfParams::MIN);
        assert_eq!(a, b);
        assert_ne!(a, c);
    }
}

//! A growable byte buffer for requests and answers that hold secrets.
//!
//! A `Vec` that grows leaves the old allocation, secret and all, in freed memory; so does
//! `Zeroizing<Vec>`, which wipes only the final allocation. This buffer moves its bytes into a
//! larger wiped-on-drop allocation and wipes the old one each time it grows.

use std::io::{self, ErrorKind, Read, Write};

use zeroize::Zeroizing;

#[derive(Default)]
pub struct SecretBuffer(Zeroizing<Vec<u8>>);

/// The chunk size for reading: at least std's stdin buffer, so `StdinLock` hands reads straight
/// to the file descriptor and never keeps a copy in its own (unwiped) buffer.
const CHUNK: usize = 8 * 1024;

impl SecretBuffer {
    pub fn with_capacity(capacity: usize) -> Self {
        SecretBuffer(Zeroizing::new(Vec::with_capacity(capacity)))
    }

    /// Reads `input` to its end; `None` when it holds more than `max` bytes (reading stops
    /// there, so a huge input costs no more than `max`).
    pub fn read_bounded(mut input: impl Read, max: usize) -> io::Result<Option<Self>> {
        let mut buffer = SecretBuffer::with_capacity(CHUNK);
        let mut chunk = Zeroizing::new([0u8; CHUNK]);
        loop {
            let n = match input.read(chunk.as_mut()) {
                Ok(0) => return Ok(Some(buffer)),
                Ok(n) => n,
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            if buffer.0.len() + n > max {
                return Ok(None);
            }
            buffer.extend(&chunk[..n]);
        }
    }

    pub fn extend(&mut self, bytes: &[u8]) {
        let needed = self.0.len() + bytes.len();
        if needed > self.0.capacity() {
            let mut bigger = Vec::with_capacity(needed.next_power_of_two());
            bigger.extend_from_slice(&self.0);
            // The old allocation is wiped as it is dropped here.
            self.0 = Zeroizing::new(bigger);
        }
        self.0.extend_from_slice(bytes);
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    pub fn into_inner(self) -> Zeroizing<Vec<u8>> {
        self.0
    }
}

impl Write for SecretBuffer {
    fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
        self.extend(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl std::fmt::Debug for SecretBuffer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SecretBuffer({} bytes, redacted)", self.0.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grows_without_reallocating_in_place() {
        let mut buffer = SecretBuffer::with_capacity(4);
        let first = buffer.as_bytes().as_ptr();
        buffer.extend(b"abc");
        assert_eq!(buffer.as_bytes().as_ptr(), first);
        buffer.extend(b"defgh");
        assert_eq!(buffer.as_bytes(), b"abcdefgh");
        assert_eq!(buffer.0.capacity(), 8);
        write!(buffer, "{}", 12).expect("write");
        assert_eq!(buffer.into_inner().as_slice(), b"abcdefgh12");
    }

    #[test]
    fn reads_are_bounded() {
        let big = vec![b'x'; 3 * CHUNK + 5];
        let read = SecretBuffer::read_bounded(big.as_slice(), big.len()).expect("read");
        assert_eq!(read.expect("fits").as_bytes(), big.as_slice());
        let refused = SecretBuffer::read_bounded(big.as_slice(), big.len() - 1).expect("read");
        assert!(refused.is_none());
        let mut endless = io::repeat(b'y');
        let refused = SecretBuffer::read_bounded(&mut endless, 100_000).expect("read");
        assert!(refused.is_none());
        assert_eq!(
            format!("{:?}", SecretBuffer::default()),
            "SecretBuffer(0 bytes, redacted)"
        );
    }
}

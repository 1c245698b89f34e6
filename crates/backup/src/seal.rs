//! Encryption at rest of a part: XChaCha20-Poly1305 in the STREAM construction (`aead::stream`,
//! big-endian 32-bit counter), so a part of any size is sealed in 64 KiB chunks and a reader
//! notices a changed, reordered, dropped or truncated chunk (docs/backup.md#encryption).
//!
//! Layout: `TSPSEAL2`, a random 19-byte nonce prefix, then chunks of 64 KiB of plaintext plus
//! a 16-byte tag each; the last chunk (possibly empty) is sealed as the last one. Every chunk
//! carries, as associated data, the part's place (`<set id>/<file name>`): a part copied into
//! another set or renamed does not open. Parts of the first layout (`TSPSEAL1`, no associated
//! data) still open.

use std::io::{self, Read, Write};
use std::path::Path;

use chacha20poly1305::XChaCha20Poly1305;
use chacha20poly1305::aead::stream::{DecryptorBE32, EncryptorBE32};
use chacha20poly1305::aead::{KeyInit, Payload};

const MAGIC: &[u8; 8] = b"TSPSEAL2";
/// The first layout: no associated data.
const MAGIC_V1: &[u8; 8] = b"TSPSEAL1";
const NONCE: usize = 19;
const CHUNK: usize = 64 * 1024;
const TAG: usize = 16;

/// A 32-byte key, read from `backup.encryption_key_file`.
#[derive(Clone)]
pub struct Key([u8; 32]);

impl std::fmt::Debug for Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Key(…)")
    }
}

impl Key {
    /// Reads a key file: 64 hex digits (surrounding white space ignored). The error names the
    /// file, never its content.
    pub fn from_file(path: &Path) -> Result<Key, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("{}: cannot read the key file: {e}", path.display()))?;
        let bytes = hex::decode(text.trim()).map_err(|_| {
            format!(
                "{}: not a key: expected 64 hex digits (32 bytes)",
                path.display()
            )
        })?;
        let key: [u8; 32] = bytes.try_into().map_err(|_| {
            format!(
                "{}: not a key: expected 64 hex digits (32 bytes)",
                path.display()
            )
        })?;
        Ok(Key(key))
    }

    /// A key for another use (`label`), derived from this one (HMAC-SHA256): knowing it tells
    /// nothing of this key.
    pub(crate) fn derive(&self, label: &str) -> Key {
        use hmac::Mac;
        let mut mac = <hmac::Hmac<sha2::Sha256> as Mac>::new_from_slice(&self.0)
            .unwrap_or_else(|_| unreachable!("HMAC takes a key of any length"));
        mac.update(label.as_bytes());
        Key(mac.finalize().into_bytes().into())
    }

    /// HMAC-SHA256 of `data` under this key, hex.
    pub(crate) fn mac_hex(&self, data: &[u8]) -> String {
        use hmac::Mac;
        let mut mac = <hmac::Hmac<sha2::Sha256> as Mac>::new_from_slice(&self.0)
            .unwrap_or_else(|_| unreachable!("HMAC takes a key of any length"));
        mac.update(data);
        hex::encode(mac.finalize().into_bytes())
    }

    /// Whether `hex_mac` is the HMAC-SHA256 of `data` (compared in constant time).
    pub(crate) fn mac_matches(&self, data: &[u8], hex_mac: &str) -> bool {
        use hmac::Mac;
        let Ok(tag) = hex::decode(hex_mac) else {
            return false;
        };
        let mut mac = <hmac::Hmac<sha2::Sha256> as Mac>::new_from_slice(&self.0)
            .unwrap_or_else(|_| unreachable!("HMAC takes a key of any length"));
        mac.update(data);
        mac.verify_slice(&tag).is_ok()
    }

    /// A new random key, as the 64 hex digits a key file holds.
    pub fn generate_hex() -> String {
        hex::encode(rand::random::<[u8; 32]>())
    }

    fn cipher(&self) -> XChaCha20Poly1305 {
        XChaCha20Poly1305::new(&self.0.into())
    }
}

fn sealing_failed() -> io::Error {
    io::Error::other("encryption failed")
}

/// Seals what is written to it into `inner`.
pub(crate) struct SealWriter<W: Write> {
    inner: W,
    enc: Option<EncryptorBE32<XChaCha20Poly1305>>,
    buf: Vec<u8>,
    /// The part's place, bound to every chunk.
    place: Vec<u8>,
}

impl<W: Write> SealWriter<W> {
    /// Seals into `inner` a part whose place is `place` (`<set id>/<file name>`).
    pub(crate) fn new(mut inner: W, key: &Key, place: &str) -> io::Result<SealWriter<W>> {
        let nonce: [u8; NONCE] = rand::random();
        inner.write_all(MAGIC)?;
        inner.write_all(&nonce)?;
        Ok(SealWriter {
            inner,
            enc: Some(EncryptorBE32::from_aead(key.cipher(), &nonce.into())),
            buf: Vec::with_capacity(2 * CHUNK),
            place: place.as_bytes().to_vec(),
        })
    }

    /// Seals the last chunk and returns the inner writer.
    pub(crate) fn finish(mut self) -> io::Result<W> {
        let enc = self.enc.take().ok_or_else(sealing_failed)?;
        let sealed = enc
            .encrypt_last(Payload {
                msg: self.buf.as_slice(),
                aad: &self.place,
            })
            .map_err(|_| sealing_failed())?;
        self.inner.write_all(&sealed)?;
        self.inner.flush()?;
        Ok(self.inner)
    }
}

impl<W: Write> Write for SealWriter<W> {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        self.buf.extend_from_slice(data);
        // A chunk goes out only once more follows it: the last one is sealed as last.
        while self.buf.len() > CHUNK {
            let enc = self.enc.as_mut().ok_or_else(sealing_failed)?;
            let sealed = enc
                .encrypt_next(Payload {
                    msg: &self.buf[..CHUNK],
                    aad: &self.place,
                })
                .map_err(|_| sealing_failed())?;
            self.inner.write_all(&sealed)?;
            self.buf.drain(..CHUNK);
        }
        Ok(data.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// Opens a sealed stream. A wrong key, a changed byte or a truncation is an
/// `InvalidData` error.
pub(crate) struct OpenReader<R: Read> {
    inner: R,
    dec: Option<DecryptorBE32<XChaCha20Poly1305>>,
    sealed: Vec<u8>,
    plain: Vec<u8>,
    at: usize,
    /// The associated data every chunk must carry (empty for the first layout).
    place: Vec<u8>,
}

fn not_open() -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        "cannot decrypt: wrong key, or the part was changed, cut short, renamed or moved from another set",
    )
}

impl<R: Read> OpenReader<R> {
    /// Opens a part that must be at `place` (`<set id>/<file name>`).
    pub(crate) fn new(mut inner: R, key: &Key, place: &str) -> io::Result<OpenReader<R>> {
        let mut head = [0u8; 8 + NONCE];
        inner.read_exact(&mut head).map_err(|_| not_open())?;
        let place = match &head[..8] {
            m if m == MAGIC => place.as_bytes().to_vec(),
            m if m == MAGIC_V1 => Vec::new(),
            _ => {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    "not an encrypted part (no TSPSEAL header)",
                ));
            }
        };
        let nonce: [u8; NONCE] = head[8..].try_into().map_err(|_| not_open())?;
        Ok(OpenReader {
            inner,
            dec: Some(DecryptorBE32::from_aead(key.cipher(), &nonce.into())),
            sealed: Vec::with_capacity(CHUNK + TAG + 1),
            plain: Vec::new(),
            at: 0,
            place,
        })
    }

    /// Decrypts the next chunk into `plain`; false at the end.
    fn next_chunk(&mut self) -> io::Result<bool> {
        if self.dec.is_none() {
            return Ok(false);
        }
        // Read one byte past a full chunk to know whether this one is the last.
        while self.sealed.len() <= CHUNK + TAG {
            let mut tmp = [0u8; 16 * 1024];
            let want = (CHUNK + TAG + 1 - self.sealed.len()).min(tmp.len());
            let n = self.inner.read(&mut tmp[..want])?;
            if n == 0 {
                break;
            }
            self.sealed.extend_from_slice(&tmp[..n]);
        }
        self.plain = if self.sealed.len() > CHUNK + TAG {
            let dec = self.dec.as_mut().ok_or_else(not_open)?;
            let p = dec
                .decrypt_next(Payload {
                    msg: &self.sealed[..CHUNK + TAG],
                    aad: &self.place,
                })
                .map_err(|_| not_open())?;
            self.sealed.drain(..CHUNK + TAG);
            p
        } else {
            let dec = self.dec.take().ok_or_else(not_open)?;
            dec.decrypt_last(Payload {
                msg: self.sealed.as_slice(),
                aad: &self.place,
            })
            .map_err(|_| not_open())?
        };
        self.at = 0;
        Ok(true)
    }
}

impl<R: Read> Read for OpenReader<R> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        while self.at == self.plain.len() {
            if !self.next_chunk()? {
                return Ok(0);
            }
        }
        let n = out.len().min(self.plain.len() - self.at);
        out[..n].copy_from_slice(&self.plain[self.at..self.at + n]);
        self.at += n;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn key(b: u8) -> Key {
        Key([b; 32])
    }

    fn seal(data: &[u8], k: &Key) -> Vec<u8> {
        let mut w = SealWriter::new(Vec::new(), k, "set/part").unwrap();
        // Odd write sizes cross chunk boundaries.
        for part in data.chunks(10_007) {
            w.write_all(part).unwrap();
        }
        w.finish().unwrap()
    }

    fn open(sealed: &[u8], k: &Key) -> io::Result<Vec<u8>> {
        let mut out = Vec::new();
        OpenReader::new(sealed, k, "set/part")?.read_to_end(&mut out)?;
        Ok(out)
    }

    #[test]
    fn sizes_around_chunk_boundaries_round_trip() {
        for n in [0, 1, CHUNK - 1, CHUNK, CHUNK + 1, 3 * CHUNK, 3 * CHUNK + 17] {
            let data: Vec<u8> = (0..n).map(|i| (i * 31 % 251) as u8).collect();
            let sealed = seal(&data, &key(7));
            assert_ne!(&sealed[8 + NONCE..], &data[..], "{n}: sealed is not plain");
            assert_eq!(open(&sealed, &key(7)).unwrap(), data, "{n}");
        }
    }

    #[test]
    fn a_wrong_key_a_changed_byte_and_a_truncation_are_refused() {
        let data: Vec<u8> = (0..3 * CHUNK + 5).map(|i| i as u8).collect();
        let sealed = seal(&data, &key(1));
        assert!(open(&sealed, &key(2)).is_err(), "wrong key");
        let mut moved = Vec::new();
        let opened = OpenReader::new(&sealed[..], &key(1), "other-set/part")
            .and_then(|mut r| r.read_to_end(&mut moved));
        assert!(opened.is_err(), "a part moved to another set");
        let mut changed = sealed.clone();
        changed[8 + NONCE + CHUNK + 40] ^= 1;
        assert!(open(&changed, &key(1)).is_err(), "changed byte");
        // Cut at a chunk boundary: every remaining chunk is whole, the last-chunk flag is not.
        let cut = &sealed[..8 + NONCE + 2 * (CHUNK + TAG)];
        assert!(open(cut, &key(1)).is_err(), "truncated at a boundary");
        assert!(
            open(&sealed[..sealed.len() - 1], &key(1)).is_err(),
            "truncated"
        );
    }
}

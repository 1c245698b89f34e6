//! Counting a snapshot's keys by reading its RDB file once, as it streams into its part, instead
//! of loading it into a scratch server: only key names, databases and expiry times are read;
//! every value is skipped by its encoding. The format is Redis's own (`rdb.h`, `rdb.c`), RDB
//! versions 1 to 11 (Redis 7.2). A newer version, a type this does not know, or functions in the
//! pre-release format come back as [`RdbError::Unsupported`], and the caller counts through a
//! scratch server instead (docs/backup.md#redis).

use std::io::{self, Read};

/// The newest RDB version read here (Redis 7.2).
const NEWEST: u32 = 11;

/// Keys of one database under one prefix.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct KeyCount {
    /// Without a time to live.
    pub(crate) persistent: u64,
    /// With one that had not passed when counted (a loading server drops the others).
    pub(crate) expiring: u64,
}

/// Why a file could not be counted.
#[derive(Debug, thiserror::Error)]
pub(crate) enum RdbError {
    /// Reading failed (the source, or the part it is copied into).
    #[error("{0}")]
    Io(#[from] io::Error),
    /// Not an RDB file, or a damaged one.
    #[error("not a valid RDB file at byte {at}: {what}")]
    Invalid { at: u64, what: String },
    /// Valid, perhaps, but beyond what this reader knows.
    #[error("{0}")]
    Unsupported(String),
}

/// A length, or the special encoding of a string.
enum Len {
    Plain(u64),
    Encoded(u8),
}

struct Reader<R> {
    inner: R,
    at: u64,
    version: u32,
}

impl<R: Read> Reader<R> {
    fn invalid(&self, what: impl Into<String>) -> RdbError {
        RdbError::Invalid {
            at: self.at,
            what: what.into(),
        }
    }

    fn exact(&mut self, buf: &mut [u8]) -> Result<(), RdbError> {
        self.inner.read_exact(buf).map_err(|e| match e.kind() {
            io::ErrorKind::UnexpectedEof => self.invalid("the file ends early"),
            _ => RdbError::Io(e),
        })?;
        self.at += buf.len() as u64;
        Ok(())
    }

    fn byte(&mut self) -> Result<u8, RdbError> {
        let mut b = [0u8; 1];
        self.exact(&mut b)?;
        Ok(b[0])
    }

    fn skip(&mut self, n: u64) -> Result<(), RdbError> {
        let skipped = io::copy(&mut (&mut self.inner).take(n), &mut io::sink())?;
        self.at += skipped;
        if skipped < n {
            return Err(self.invalid("the file ends early"));
        }
        Ok(())
    }

    fn len_or_encoding(&mut self) -> Result<Len, RdbError> {
        let b = self.byte()?;
        Ok(match b >> 6 {
            0 => Len::Plain(u64::from(b & 0x3f)),
            1 => Len::Plain((u64::from(b & 0x3f) << 8) | u64::from(self.byte()?)),
            2 => match b {
                0x80 => {
                    let mut v = [0u8; 4];
                    self.exact(&mut v)?;
                    Len::Plain(u64::from(u32::from_be_bytes(v)))
                }
                0x81 => {
                    let mut v = [0u8; 8];
                    self.exact(&mut v)?;
                    Len::Plain(u64::from_be_bytes(v))
                }
                _ => return Err(self.invalid(format!("unknown length prefix {b:#04x}"))),
            },
            _ => Len::Encoded(b & 0x3f),
        })
    }

    fn len(&mut self) -> Result<u64, RdbError> {
        match self.len_or_encoding()? {
            Len::Plain(n) => Ok(n),
            Len::Encoded(e) => Err(self.invalid(format!("a length expected, encoding {e} found"))),
        }
    }

    /// A string's bytes (keys are read; values are skipped with [`Reader::skip_string`]).
    fn string(&mut self) -> Result<Vec<u8>, RdbError> {
        match self.len_or_encoding()? {
            Len::Plain(n) => {
                let mut v = vec![0u8; self.bounded(n)?];
                self.exact(&mut v)?;
                Ok(v)
            }
            Len::Encoded(e @ 0..=2) => {
                let mut v = [0u8; 4];
                let width = 1usize << e;
                self.exact(&mut v[..width])?;
                let n = match e {
                    0 => i64::from(v[0] as i8),
                    1 => i64::from(i16::from_le_bytes([v[0], v[1]])),
                    _ => i64::from(i32::from_le_bytes(v)),
                };
                Ok(n.to_string().into_bytes())
            }
            Len::Encoded(3) => {
                let compressed = self.len()?;
                let size = self.len()?;
                let mut input = vec![0u8; self.bounded(compressed)?];
                self.exact(&mut input)?;
                let size = self.bounded(size)?;
                lzf_decompress(&input, size).ok_or_else(|| self.invalid("a damaged LZF string"))
            }
            Len::Encoded(e) => Err(self.invalid(format!("unknown string encoding {e}"))),
        }
    }

    /// A size to allocate: a damaged length must not allocate gigabytes.
    fn bounded(&self, n: u64) -> Result<usize, RdbError> {
        // Keys and LZF chunks here are far below this; a value past it is damage.
        const MAX: u64 = 512 * 1024 * 1024;
        if n > MAX {
            return Err(self.invalid(format!("a string of {n} bytes")));
        }
        usize::try_from(n).map_err(|_| self.invalid(format!("a string of {n} bytes")))
    }

    fn skip_string(&mut self) -> Result<(), RdbError> {
        match self.len_or_encoding()? {
            Len::Plain(n) => self.skip(n),
            Len::Encoded(e @ 0..=2) => self.skip(1 << e),
            Len::Encoded(3) => {
                let compressed = self.len()?;
                self.len()?;
                self.skip(compressed)
            }
            Len::Encoded(e) => Err(self.invalid(format!("unknown string encoding {e}"))),
        }
    }

    fn skip_strings(&mut self, n: u64) -> Result<(), RdbError> {
        for _ in 0..n {
            self.skip_string()?;
        }
        Ok(())
    }

    fn skip_lens(&mut self, n: u64) -> Result<(), RdbError> {
        for _ in 0..n {
            self.len()?;
        }
        Ok(())
    }

    /// A value of `kind` (the type byte before its key).
    fn skip_value(&mut self, kind: u8) -> Result<(), RdbError> {
        match kind {
            // A string; and every compact encoding, stored as one string: zipmap, ziplist,
            // intset, listpack.
            0 | 9..=13 | 16 | 17 | 20 => self.skip_string(),
            // List, set: elements.
            1 | 2 => {
                let n = self.len()?;
                self.skip_strings(n)
            }
            // Sorted set, first format: member, then the score as text behind a length byte
            // (253-255: NaN and the infinities, no text).
            3 => {
                for _ in 0..self.len()? {
                    self.skip_string()?;
                    let b = self.byte()?;
                    if b < 253 {
                        self.skip(u64::from(b))?;
                    }
                }
                Ok(())
            }
            // Hash: field and value.
            4 => {
                let n = self.len()?;
                self.skip_strings(n.saturating_mul(2))
            }
            // Sorted set: member, binary score.
            5 => {
                for _ in 0..self.len()? {
                    self.skip_string()?;
                    self.skip(8)?;
                }
                Ok(())
            }
            // Module value: the module's id, then typed fields up to an end mark.
            7 => {
                self.len()?;
                self.skip_module_fields()
            }
            // Quicklist: ziplists.
            14 => {
                let n = self.len()?;
                self.skip_strings(n)
            }
            // Quicklist 2: a container kind, then a listpack or a plain element.
            18 => {
                for _ in 0..self.len()? {
                    self.len()?;
                    self.skip_string()?;
                }
                Ok(())
            }
            15 | 19 | 21 => self.skip_stream(kind),
            6 => Err(RdbError::Unsupported(
                "a module value in the pre-release format".into(),
            )),
            other => Err(RdbError::Unsupported(format!("value type {other}"))),
        }
    }

    fn skip_module_fields(&mut self) -> Result<(), RdbError> {
        loop {
            match self.len()? {
                0 => return Ok(()),
                1 | 2 => {
                    self.len()?;
                }
                3 => self.skip(4)?,
                4 => self.skip(8)?,
                5 => self.skip_string()?,
                op => return Err(self.invalid(format!("unknown module field {op}"))),
            }
        }
    }

    /// A stream: its listpacks, its counters, its consumer groups with their pending entries
    /// and consumers. Types 19 and 21 add fields (`rdbLoadObject`).
    fn skip_stream(&mut self, kind: u8) -> Result<(), RdbError> {
        let packs = self.len()?;
        self.skip_strings(packs.saturating_mul(2))?;
        // Length, last id; then first id, max deleted id, entries added.
        self.skip_lens(if kind >= 19 { 8 } else { 3 })?;
        for _ in 0..self.len()? {
            self.skip_string()?;
            self.skip_lens(if kind >= 19 { 3 } else { 2 })?;
            for _ in 0..self.len()? {
                // Entry id (16 bytes), delivery time (8).
                self.skip(24)?;
                self.len()?;
            }
            for _ in 0..self.len()? {
                self.skip_string()?;
                // Seen time; active time from type 21.
                self.skip(if kind >= 21 { 16 } else { 8 })?;
                let pending = self.len()?;
                self.skip(pending.saturating_mul(16))?;
            }
        }
        Ok(())
    }
}

impl<R: Read> Reader<R> {
    /// Reads the header: `REDIS` and a four-digit version this reader knows.
    fn open(inner: R) -> Result<Reader<R>, RdbError> {
        let mut r = Reader {
            inner,
            at: 0,
            version: 0,
        };
        let mut head = [0u8; 9];
        r.exact(&mut head)?;
        let version = std::str::from_utf8(&head[5..])
            .ok()
            .and_then(|v| v.parse::<u32>().ok())
            .filter(|_| &head[..5] == b"REDIS")
            .ok_or_else(|| r.invalid("no REDIS header"))?;
        if version > NEWEST {
            return Err(RdbError::Unsupported(format!(
                "RDB version {version} (this reads up to {NEWEST}, Redis 7.2)"
            )));
        }
        r.version = version;
        Ok(r)
    }

    /// The expiry time (Unix ms) after opcode 0xfd (seconds) or 0xfc (milliseconds).
    fn expiry(&mut self, op: u8) -> Result<i64, RdbError> {
        if op == 0xfd {
            let mut v = [0u8; 4];
            self.exact(&mut v)?;
            return Ok(i64::from(u32::from_le_bytes(v)) * 1000);
        }
        let mut v = [0u8; 8];
        self.exact(&mut v)?;
        // Little-endian from RDB 9 on (Redis 5), the host's order before.
        Ok(if self.version >= 9 {
            i64::from_le_bytes(v)
        } else {
            i64::from_ne_bytes(v)
        })
    }

    /// Skips what follows an opcode that is not a key, a database or an expiry; `false` when
    /// `op` is none of those (it is then a value type, a key follows).
    fn skip_auxiliary(&mut self, op: u8) -> Result<bool, RdbError> {
        match op {
            // Sizes of the next database's tables.
            0xfb => self.skip_lens(2)?,
            // Auxiliary field: name, value.
            0xfa => self.skip_strings(2)?,
            // LFU frequency; LRU idle time.
            0xf9 => self.skip(1)?,
            0xf8 => self.skip_lens(1)?,
            // Module auxiliary data: module id, when-opcode, when, then typed fields.
            0xf7 => {
                self.skip_lens(3)?;
                self.skip_module_fields()?;
            }
            // A function library (Redis 7.0): its code.
            0xf5 => self.skip_string()?,
            0xf6 => {
                return Err(RdbError::Unsupported(
                    "functions in the pre-release format".into(),
                ));
            }
            _ => return Ok(false),
        }
        Ok(true)
    }
}

/// Counts the keys of database `db` that start with `prefix` in the RDB file `input`, their
/// times to live compared with `now_ms`. Reads up to the end mark; the checksum after it is left.
pub(crate) fn count_keys(
    input: impl Read,
    db: u32,
    prefix: &[u8],
    now_ms: i64,
) -> Result<KeyCount, RdbError> {
    let mut r = Reader::open(input)?;
    let mut count = KeyCount::default();
    let (mut current, mut expires) = (0u64, None::<i64>);
    loop {
        let op = r.byte()?;
        match op {
            0xff => return Ok(count),
            0xfe => current = r.len()?,
            0xfd | 0xfc => expires = Some(r.expiry(op)?),
            _ if r.skip_auxiliary(op)? => {}
            kind => {
                let key = r.string()?;
                r.skip_value(kind)?;
                if current == u64::from(db) && key.starts_with(prefix) {
                    match expires {
                        None => count.persistent += 1,
                        Some(at) if at > now_ms => count.expiring += 1,
                        Some(_) => {}
                    }
                }
                expires = None;
            }
        }
    }
}

/// LZF (`lzf_d.c`): literal runs and back references into what is already decompressed.
/// `None` when the input is damaged or does not make exactly `size` bytes.
fn lzf_decompress(input: &[u8], size: usize) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(size);
    let mut i = 0;
    while i < input.len() {
        let ctrl = usize::from(input[i]);
        i += 1;
        if ctrl < 32 {
            let run = input.get(i..i + ctrl + 1)?;
            out.extend_from_slice(run);
            i += ctrl + 1;
        } else {
            let mut len = ctrl >> 5;
            if len == 7 {
                len += usize::from(*input.get(i)?);
                i += 1;
            }
            let back = ((ctrl & 0x1f) << 8) + usize::from(*input.get(i)?) + 1;
            i += 1;
            let from = out.len().checked_sub(back)?;
            // The reference may overlap what it writes: byte by byte.
            for k in 0..len + 2 {
                let b = out[from + k];
                out.push(b);
            }
        }
        if out.len() > size {
            return None;
        }
    }
    (out.len() == size).then_some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lzf_literals_and_overlapping_references() {
        // "abc", then a reference 3 back of 3+2... : literal run of 3 ("abc"), then
        // ctrl = (len 1 << 5) | 0 with offset byte 2 → copy 3 bytes from 3 back.
        let input = [2, b'a', b'b', b'c', 0b0010_0000, 2];
        assert_eq!(lzf_decompress(&input, 6).as_deref(), Some(&b"abcabc"[..]));
        // Overlapping: "a", then 6 bytes from 1 back.
        let input = [0, b'a', 0b1000_0000, 0];
        assert_eq!(lzf_decompress(&input, 7).as_deref(), Some(&b"aaaaaaa"[..]));
        // A reference before the start, a run past the end, a wrong size.
        assert_eq!(lzf_decompress(&[0b0010_0000, 5], 3), None);
        assert_eq!(lzf_decompress(&[5, b'a'], 6), None);
        assert_eq!(lzf_decompress(&[2, b'a', b'b', b'c'], 4), None);
    }

    #[test]
    fn damaged_and_newer_files_are_told_apart() {
        let e = count_keys(&b"RUBBISH00"[..], 0, b"", 0).unwrap_err();
        assert!(matches!(e, RdbError::Invalid { .. }), "{e}");
        let e = count_keys(&b"REDIS0012"[..], 0, b"", 0).unwrap_err();
        assert!(matches!(e, RdbError::Unsupported(_)), "{e}");
        // A key and its value, cut short.
        let e = count_keys(&b"REDIS0010\x00\x03abc\x05xy"[..], 0, b"", 0).unwrap_err();
        assert!(matches!(e, RdbError::Invalid { at: 17, .. }), "{e}");
        let ok = count_keys(&b"REDIS0010\x00\x03abc\x02xy\xff"[..], 0, b"a", 0).unwrap();
        assert_eq!(
            ok,
            KeyCount {
                persistent: 1,
                expiring: 0
            }
        );
    }
}

//! One part of a set on disk: bytes → zstd → (sealed) → file, with the SHA-256 and size of
//! what lands in the file; and the reverse.

use std::fs::File;
use std::io::{self, BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use crate::error::BackupError;
use crate::seal::{Key, OpenReader, SealWriter};

/// zstd level: fast, and about as small as gzip -9 on dumps (docs/backup.md#format).
const LEVEL: i32 = 3;

/// Counts and hashes what passes through to the file.
struct Hashing<W: Write> {
    inner: W,
    hash: Sha256,
    bytes: u64,
}

impl<W: Write> Write for Hashing<W> {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(data)?;
        self.hash.update(&data[..n]);
        self.bytes += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

enum Sink {
    Plain(Hashing<BufWriter<File>>),
    Sealed(SealWriter<Hashing<BufWriter<File>>>),
}

impl Write for Sink {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        match self {
            Sink::Plain(w) => w.write(data),
            Sink::Sealed(w) => w.write(data),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            Sink::Plain(w) => w.flush(),
            Sink::Sealed(w) => w.flush(),
        }
    }
}

/// The file a finished part left.
#[derive(Debug, Clone)]
pub(crate) struct Written {
    pub(crate) bytes: u64,
    pub(crate) sha256: String,
}

/// Writes one part.
pub(crate) struct PartWriter {
    path: PathBuf,
    enc: zstd::stream::write::Encoder<'static, Sink>,
    /// Bytes before compression.
    pub(crate) raw_bytes: u64,
}

impl PartWriter {
    pub(crate) fn create(path: &Path, key: Option<&Key>) -> Result<PartWriter, BackupError> {
        PartWriter::create_with(path, key, LEVEL, 0)
    }

    /// For input its producer compressed already (a Redis snapshot's strings are LZF): zstd
    /// level 1, on worker threads, written in large pieces (docs/backup.md#redis).
    pub(crate) fn create_for_compressed(
        path: &Path,
        key: Option<&Key>,
    ) -> Result<PartWriter, BackupError> {
        let threads = std::thread::available_parallelism().map_or(1, |n| n.get().min(4));
        PartWriter::create_with(path, key, 1, u32::try_from(threads).unwrap_or(1))
    }

    /// `threads` 0: compress on the caller's thread (small writes cost a worker hand-off each).
    fn create_with(
        path: &Path,
        key: Option<&Key>,
        level: i32,
        threads: u32,
    ) -> Result<PartWriter, BackupError> {
        let io_err = |e| BackupError::io(path, "cannot write the part", e);
        let file = File::create(path).map_err(io_err)?;
        let hashing = Hashing {
            inner: BufWriter::with_capacity(256 * 1024, file),
            hash: Sha256::new(),
            bytes: 0,
        };
        let sink = match key {
            Some(k) => Sink::Sealed(SealWriter::new(hashing, k, &place(path)).map_err(io_err)?),
            None => Sink::Plain(hashing),
        };
        let mut enc = zstd::stream::write::Encoder::new(sink, level).map_err(io_err)?;
        if threads > 0 {
            enc.multithread(threads).map_err(io_err)?;
        }
        Ok(PartWriter {
            path: path.to_path_buf(),
            enc,
            raw_bytes: 0,
        })
    }

    pub(crate) fn write_all(&mut self, data: &[u8]) -> Result<(), BackupError> {
        self.raw_bytes += data.len() as u64;
        self.enc
            .write_all(data)
            .map_err(|e| BackupError::io(&self.path, "cannot write the part", e))
    }

    /// Ends the stream and syncs the file to disk.
    pub(crate) fn finish(self) -> Result<Written, BackupError> {
        let io_err = |e| BackupError::io(&self.path, "cannot finish the part", e);
        let sink = self.enc.finish().map_err(io_err)?;
        let hashing = match sink {
            Sink::Plain(h) => h,
            Sink::Sealed(s) => s.finish().map_err(io_err)?,
        };
        let file = hashing
            .inner
            .into_inner()
            .map_err(|e| io_err(e.into_error()))?;
        file.sync_all().map_err(io_err)?;
        Ok(Written {
            bytes: hashing.bytes,
            sha256: hex::encode(hashing.hash.finalize()),
        })
    }
}

impl Write for PartWriter {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        self.raw_bytes += data.len() as u64;
        self.enc.write(data).inspect(|n| {
            // Count what the encoder took, not what was offered.
            self.raw_bytes -= (data.len() - n) as u64;
        })
    }

    fn flush(&mut self) -> io::Result<()> {
        self.enc.flush()
    }
}

/// A part's place, bound to it when it is encrypted: `<set id>/<file name>`, from its path
/// (`<root>/<set id>/<file name>`).
fn place(path: &Path) -> String {
    let name = |p: Option<&Path>| {
        p.and_then(Path::file_name)
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default()
    };
    format!("{}/{}", name(path.parent()), name(Some(path)))
}

/// The SHA-256 and size of a file as it is on disk.
pub(crate) fn file_sha256(path: &Path) -> Result<Written, BackupError> {
    let mut f = BufReader::new(
        File::open(path).map_err(|e| BackupError::io(path, "cannot read the part", e))?,
    );
    let mut hash = Sha256::new();
    let mut buf = vec![0u8; 256 * 1024];
    let mut bytes = 0u64;
    loop {
        let n = f
            .read(&mut buf)
            .map_err(|e| BackupError::io(path, "cannot read the part", e))?;
        if n == 0 {
            break;
        }
        hash.update(&buf[..n]);
        bytes += n as u64;
    }
    Ok(Written {
        bytes,
        sha256: hex::encode(hash.finalize()),
    })
}

/// The part's content, decrypted and decompressed, as a stream.
pub(crate) fn open_part(
    path: &Path,
    key: Option<&Key>,
) -> Result<Box<dyn Read + Send>, BackupError> {
    let io_err = |e| BackupError::io(path, "cannot read the part", e);
    let file = BufReader::with_capacity(256 * 1024, File::open(path).map_err(io_err)?);
    let inner: Box<dyn Read + Send> = match key {
        Some(k) => Box::new(OpenReader::new(file, k, &place(path)).map_err(io_err)?),
        None => Box::new(file),
    };
    let dec = zstd::stream::read::Decoder::new(inner).map_err(io_err)?;
    Ok(Box::new(dec))
}

/// Reads a part to its end (decrypting and decompressing), returning its raw size: proof that
/// every byte can be read back.
pub(crate) fn read_through(path: &Path, key: Option<&Key>) -> Result<u64, BackupError> {
    let mut r = open_part(path, key)?;
    let mut buf = vec![0u8; 256 * 1024];
    let mut total = 0u64;
    loop {
        let n = r
            .read(&mut buf)
            .map_err(|e| BackupError::io(path, "cannot read the part back", e))?;
        if n == 0 {
            return Ok(total);
        }
        total += n as u64;
    }
}

/// Checks one part's file against the manifest and reads it through.
pub(crate) fn check_part(
    dir: &Path,
    part: &crate::manifest::Part,
    key: Option<&Key>,
) -> Result<(), BackupError> {
    if !crate::manifest::plain_file_name(&part.file) {
        return Err(BackupError::part(
            &part.file,
            "not a plain file name inside the set",
        ));
    }
    let path = dir.join(&part.file);
    if !path.exists() {
        return Err(BackupError::part(&part.file, "missing"));
    }
    let on_disk = file_sha256(&path)?;
    if on_disk.bytes != part.bytes || on_disk.sha256 != part.sha256 {
        return Err(BackupError::part(
            &part.file,
            format!(
                "changed since it was written (SHA-256 {}, {} bytes; the manifest says {}, {} bytes)",
                &on_disk.sha256[..12],
                on_disk.bytes,
                &part.sha256.get(..12).unwrap_or_default(),
                part.bytes
            ),
        ));
    }
    let raw = read_through(&path, key).map_err(|e| BackupError::part(&part.file, e.to_string()))?;
    if raw != part.raw_bytes {
        return Err(BackupError::part(
            &part.file,
            format!(
                "reads back as {raw} bytes, the manifest says {}",
                part.raw_bytes
            ),
        ));
    }
    Ok(())
}

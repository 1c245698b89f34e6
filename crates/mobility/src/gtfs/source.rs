//! Where a feed is read from: a folder of `.txt` files or a `.zip` of them. Files are opened one
//! at a time and streamed; nothing reads a whole feed into memory.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufReader, Read};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use super::GtfsError;

/// A feed on disk.
#[derive(Debug, Clone)]
pub struct FeedSource {
    path: PathBuf,
    kind: Kind,
    /// GTFS file name (`stops.txt`) → the entry or file that holds it.
    files: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Kind {
    Folder,
    Zip,
}

impl FeedSource {
    /// Opens a folder or a zip archive and lists its `.txt` files. Zip entries may sit under
    /// `./` or one folder (as some publishers pack them).
    pub fn open(path: &Path) -> Result<FeedSource, GtfsError> {
        let meta = std::fs::metadata(path).map_err(|e| GtfsError::io(path, "cannot read", e))?;
        let mut files = BTreeMap::new();
        let kind = if meta.is_dir() {
            let entries =
                std::fs::read_dir(path).map_err(|e| GtfsError::io(path, "cannot list", e))?;
            for entry in entries {
                let entry = entry.map_err(|e| GtfsError::io(path, "cannot list", e))?;
                let name = entry.file_name().to_string_lossy().to_string();
                if name.ends_with(".txt") && entry.path().is_file() {
                    files.insert(name.clone(), name);
                }
            }
            Kind::Folder
        } else {
            let archive = zip_archive(path)?;
            for entry in archive.file_names() {
                let base = entry.rsplit('/').next().unwrap_or(entry);
                let depth = entry.trim_start_matches("./").matches('/').count();
                if base.ends_with(".txt") && depth <= 1 {
                    files.insert(base.to_string(), entry.to_string());
                }
            }
            Kind::Zip
        };
        Ok(FeedSource {
            path: path.to_path_buf(),
            kind,
            files,
        })
    }

    /// The path given to [`FeedSource::open`].
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The GTFS file names present (`agency.txt`, …).
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.files.keys().map(String::as_str)
    }

    /// Whether `name` is present.
    pub fn has(&self, name: &str) -> bool {
        self.files.contains_key(name)
    }

    /// Runs `read` on file `name`'s bytes (decompressed), or returns `None` when it is absent.
    pub fn read<T>(
        &self,
        name: &str,
        read: impl FnOnce(&mut dyn Read) -> Result<T, GtfsError>,
    ) -> Result<Option<T>, GtfsError> {
        let Some(entry) = self.files.get(name) else {
            return Ok(None);
        };
        match self.kind {
            Kind::Folder => {
                let p = self.path.join(entry);
                let f = File::open(&p).map_err(|e| GtfsError::io(&p, "cannot open", e))?;
                read(&mut BufReader::with_capacity(1 << 16, f)).map(Some)
            }
            Kind::Zip => {
                let mut archive = zip_archive(&self.path)?;
                let mut file = archive.by_name(entry).map_err(|e| GtfsError::Archive {
                    path: self.path.clone(),
                    message: format!("{name}: {e}"),
                })?;
                read(&mut file).map(Some)
            }
        }
    }

    /// SHA-256 over every `.txt` file's name, length and content, in name order: the same
    /// content has the same hash whether zipped, re-zipped or unpacked.
    pub fn content_hash(&self) -> Result<String, GtfsError> {
        let mut hash = Sha256::new();
        let names: Vec<String> = self.files.keys().cloned().collect();
        for name in names {
            self.read(&name, |r| {
                let mut inner = Sha256::new();
                let mut buf = vec![0u8; 1 << 16];
                let mut len: u64 = 0;
                loop {
                    let n = r.read(&mut buf).map_err(|e| GtfsError::Read {
                        file: name.clone(),
                        message: e.to_string(),
                    })?;
                    if n == 0 {
                        break;
                    }
                    len += n as u64;
                    inner.update(&buf[..n]);
                }
                hash.update(name.as_bytes());
                hash.update([0]);
                hash.update(len.to_le_bytes());
                hash.update(inner.finalize());
                Ok(())
            })?;
        }
        Ok(hex::encode(hash.finalize()))
    }
}

fn zip_archive(path: &Path) -> Result<zip::ZipArchive<BufReader<File>>, GtfsError> {
    let f = File::open(path).map_err(|e| GtfsError::io(path, "cannot open", e))?;
    zip::ZipArchive::new(BufReader::new(f)).map_err(|e| GtfsError::Archive {
        path: path.to_path_buf(),
        message: format!("not a readable zip archive ({e})"),
    })
}

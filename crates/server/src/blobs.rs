//! Blobs (recordings) as files under the data directory, named by their SHA-256: writing
//! the same bytes twice stores them once, and a name never points at other bytes.
//!
//! Large blobs are streamed in ([`BlobStore::writer`]: hashed as they are written to a
//! temporary file, renamed into place when done) and out ([`BlobStore::open`]: a file to seek
//! in), so that their size never has to fit in memory.

use std::io::Write;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

pub struct BlobStore {
    root: PathBuf,
}

fn hex(digest: &[u8]) -> String {
    let mut out = String::with_capacity(64);
    for b in digest {
        out.push(char::from_digit(u32::from(b >> 4), 16).unwrap_or('0'));
        out.push(char::from_digit(u32::from(b & 0xf), 16).unwrap_or('0'));
    }
    out
}

impl BlobStore {
    pub fn new(data_dir: &Path) -> Self {
        BlobStore { root: data_dir.join("blobs") }
    }

    fn path(&self, id: &str) -> Option<PathBuf> {
        let ok = id.len() == 64 && id.bytes().all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase());
        ok.then(|| self.root.join(&id[..2]).join(format!("{id}.wav")))
    }

    /// A working directory for a blob still being made (a live call's recording tracks):
    /// `<data_dir>/blobs/staging/<name>`. The caller removes it when done.
    pub fn staging(&self, name: &str) -> PathBuf {
        let safe: String = name.chars().map(|c| if c.is_ascii_alphanumeric() || c == '_' || c == '-' { c } else { '_' }).collect();
        self.root.join("staging").join(safe)
    }

    /// Store bytes; returns their id. Written to a temporary file, synced, then renamed.
    pub async fn put(&self, bytes: &[u8]) -> std::io::Result<String> {
        let id = dialnexa_core::hash::sha256_hex(bytes);
        let path = self.path(&id).ok_or_else(|| std::io::Error::other("bad blob id"))?;
        if tokio::fs::try_exists(&path).await.unwrap_or(false) {
            return Ok(id);
        }
        if let Some(dir) = path.parent() {
            tokio::fs::create_dir_all(dir).await?;
        }
        let tmp = path.with_extension(format!("tmp{}", uuid::Uuid::now_v7().simple()));
        let file = tokio::fs::File::create(&tmp).await?;
        {
            use tokio::io::AsyncWriteExt;
            let mut f = file;
            f.write_all(bytes).await?;
            f.sync_all().await?;
        }
        tokio::fs::rename(&tmp, &path).await?;
        Ok(id)
    }

    /// A blob written piece by piece (blocking I/O: use it off the async threads).
    pub fn writer(&self) -> std::io::Result<BlobWriter> {
        let dir = self.root.join("tmp");
        std::fs::create_dir_all(&dir)?;
        let tmp = dir.join(format!("{}.part", uuid::Uuid::now_v7().simple()));
        let file = std::fs::File::create(&tmp)?;
        Ok(BlobWriter { root: self.root.clone(), tmp, file: std::io::BufWriter::with_capacity(64 * 1024, file), hasher: Sha256::new() })
    }

    pub async fn get(&self, id: &str) -> std::io::Result<Vec<u8>> {
        let path = self.path(id).ok_or_else(|| std::io::Error::new(std::io::ErrorKind::NotFound, "no such blob"))?;
        tokio::fs::read(path).await
    }

    /// Open a blob to read part of it: the file and its length.
    pub async fn open(&self, id: &str) -> std::io::Result<(tokio::fs::File, u64)> {
        let path = self.path(id).ok_or_else(|| std::io::Error::new(std::io::ErrorKind::NotFound, "no such blob"))?;
        let file = tokio::fs::File::open(path).await?;
        let len = file.metadata().await?.len();
        Ok((file, len))
    }
}

/// A blob being written: hashed as it goes; [`BlobWriter::commit`] names it and puts it in
/// place. Dropped without committing, it leaves nothing behind.
pub struct BlobWriter {
    root: PathBuf,
    tmp: PathBuf,
    file: std::io::BufWriter<std::fs::File>,
    hasher: Sha256,
}

impl Write for BlobWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.file.write(buf)?;
        self.hasher.update(&buf[..n]);
        Ok(n)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.file.flush()
    }
}

impl BlobWriter {
    /// Sync the bytes and move them to their content address; returns the id.
    pub fn commit(mut self) -> std::io::Result<String> {
        self.file.flush()?;
        self.file.get_ref().sync_all()?;
        let id = hex(&std::mem::take(&mut self.hasher).finalize());
        let store = BlobStore { root: self.root.clone() };
        let path = store.path(&id).ok_or_else(|| std::io::Error::other("bad blob id"))?;
        if path.exists() {
            // The same bytes are stored already; the temporary file goes on drop.
            return Ok(id);
        }
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        std::fs::rename(&self.tmp, &path)?;
        Ok(id)
    }
}

impl Drop for BlobWriter {
    fn drop(&mut self) {
        // After a commit the file was renamed away: nothing to remove then.
        let _ = std::fs::remove_file(&self.tmp);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_streamed_blob_is_named_by_its_bytes_and_read_in_parts() {
        let dir = tempfile::tempdir().unwrap();
        let blobs = BlobStore::new(dir.path());
        let bytes: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
        let mut w = blobs.writer().unwrap();
        for chunk in bytes.chunks(7_000) {
            w.write_all(chunk).unwrap();
        }
        let id = w.commit().unwrap();
        assert_eq!(id, dialnexa_core::hash::sha256_hex(&bytes));
        assert_eq!(blobs.put(&bytes).await.unwrap(), id, "the same bytes, the same blob");
        assert_eq!(blobs.get(&id).await.unwrap(), bytes);
        let (_, len) = blobs.open(&id).await.unwrap();
        assert_eq!(len, bytes.len() as u64);
        // Again, and abandoned: no temporary files are left behind.
        let mut again = blobs.writer().unwrap();
        again.write_all(&bytes).unwrap();
        assert_eq!(again.commit().unwrap(), id);
        let mut abandoned = blobs.writer().unwrap();
        abandoned.write_all(b"half").unwrap();
        drop(abandoned);
        assert_eq!(std::fs::read_dir(dir.path().join("blobs/tmp")).unwrap().count(), 0);
        assert!(blobs.open("../../etc/passwd").await.is_err());
    }
}

//! Blobs (recordings) as files under the data directory, named by their SHA-256: writing
//! the same bytes twice stores them once, and a name never points at other bytes.

use std::path::{Path, PathBuf};

pub struct BlobStore {
    root: PathBuf,
}

impl BlobStore {
    pub fn new(data_dir: &Path) -> Self {
        BlobStore { root: data_dir.join("blobs") }
    }

    fn path(&self, id: &str) -> Option<PathBuf> {
        let ok = id.len() == 64 && id.bytes().all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase());
        ok.then(|| self.root.join(&id[..2]).join(format!("{id}.wav")))
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

    pub async fn get(&self, id: &str) -> std::io::Result<Vec<u8>> {
        let path = self.path(id).ok_or_else(|| std::io::Error::new(std::io::ErrorKind::NotFound, "no such blob"))?;
        tokio::fs::read(path).await
    }
}

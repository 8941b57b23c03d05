//! The embedded index sealed at rest (ADR 0016): a tantivy [`Directory`] that keeps its files
//! in a directory on disk as the lake keeps its objects — each file sealed with AES-256-GCM
//! under the lake's current data key, in the lake's object format — and opens them into memory
//! when tantivy reads them.
//!
//! Tantivy writes each file once and never changes it (segments), or replaces it whole
//! (`meta.json`, `.managed.json`), so a file is sealed when its writer terminates and opened
//! whole when first read; an opened file stays in memory while tantivy holds it (the index's
//! size in memory, instead of mapped from the disk). Locks and change notifications are the
//! inner directory's.

use std::collections::HashMap;
use std::fmt;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, Weak};

use retail_lake::encryption::{KeyError, Keyring};
use tantivy::directory::error::{DeleteError, LockError, OpenReadError, OpenWriteError};
use tantivy::directory::{
    AntiCallToken, Directory, DirectoryLock, FileHandle, Lock, MmapDirectory, OwnedBytes,
    TerminatingWrite, WatchCallback, WatchHandle, WritePtr,
};

/// Runs the keyring's `work` to completion from synchronous code, wherever that code runs (a
/// tantivy thread, the blocking pool, or inside an async task).
fn blocking<T: Send>(
    runtime: &tokio::runtime::Handle,
    work: impl std::future::Future<Output = Result<T, KeyError>> + Send,
) -> io::Result<T> {
    std::thread::scope(|scope| {
        scope
            .spawn(|| runtime.block_on(work))
            .join()
            .map_err(|_| io::Error::other("the keyring's thread panicked"))?
            .map_err(io::Error::other)
    })
}

/// A directory whose files are sealed under the lake's keys (see the module).
#[derive(Clone)]
pub struct SealedDirectory {
    inner: MmapDirectory,
    dir: PathBuf,
    keyring: Arc<Keyring>,
    runtime: tokio::runtime::Handle,
    /// Files opened and still held by tantivy.
    opened: Arc<Mutex<HashMap<PathBuf, Weak<OwnedBytes>>>>,
}

impl fmt::Debug for SealedDirectory {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SealedDirectory")
            .field("dir", &self.dir)
            .finish_non_exhaustive()
    }
}

impl SealedDirectory {
    /// The index in `dir` (which must exist), sealed under `keyring`'s keys; `runtime` runs the
    /// keyring's reads (it must outlive the directory).
    ///
    /// # Errors
    ///
    /// When `dir` cannot be opened.
    pub fn open(
        dir: &Path,
        keyring: Arc<Keyring>,
        runtime: tokio::runtime::Handle,
    ) -> Result<Self, tantivy::directory::error::OpenDirectoryError> {
        Ok(Self {
            inner: MmapDirectory::open(dir)?,
            dir: dir.to_path_buf(),
            keyring,
            runtime,
            opened: Arc::default(),
        })
    }

    fn seal(&self, plain: &[u8]) -> io::Result<Vec<u8>> {
        let keyring = Arc::clone(&self.keyring);
        blocking(
            &self.runtime,
            async move { keyring.seal_bytes(plain).await },
        )
    }

    fn open_sealed(&self, path: &Path, sealed: &[u8]) -> io::Result<Vec<u8>> {
        let keyring = Arc::clone(&self.keyring);
        let name = self.dir.join(path).display().to_string();
        blocking(&self.runtime, async move {
            keyring.open_bytes(&name, sealed).await
        })
    }

    fn read_error(path: &Path, error: io::Error) -> OpenReadError {
        OpenReadError::wrap_io_error(error, path.to_path_buf())
    }
}

impl Directory for SealedDirectory {
    fn get_file_handle(&self, path: &Path) -> Result<Arc<dyn FileHandle>, OpenReadError> {
        if let Some(bytes) = self
            .opened
            .lock()
            .expect("not poisoned")
            .get(path)
            .and_then(Weak::upgrade)
        {
            return Ok(bytes);
        }
        let sealed = self.inner.atomic_read(path)?;
        let plain = self
            .open_sealed(path, &sealed)
            .map_err(|error| Self::read_error(path, error))?;
        let bytes = Arc::new(OwnedBytes::new(plain));
        let mut opened = self.opened.lock().expect("not poisoned");
        opened.retain(|_, held| held.strong_count() > 0);
        opened.insert(path.to_path_buf(), Arc::downgrade(&bytes));
        Ok(bytes)
    }

    fn delete(&self, path: &Path) -> Result<(), DeleteError> {
        self.opened.lock().expect("not poisoned").remove(path);
        self.inner.delete(path)
    }

    fn exists(&self, path: &Path) -> Result<bool, OpenReadError> {
        self.inner.exists(path)
    }

    fn open_write(&self, path: &Path) -> Result<WritePtr, OpenWriteError> {
        // Made now (empty), as tantivy expects: a second writer of the same file fails.
        let file = self.inner.open_write(path)?;
        Ok(io::BufWriter::new(Box::new(SealingWriter {
            directory: self.clone(),
            plain: Vec::new(),
            file: Some(file),
        })))
    }

    fn atomic_read(&self, path: &Path) -> Result<Vec<u8>, OpenReadError> {
        let sealed = self.inner.atomic_read(path)?;
        self.open_sealed(path, &sealed)
            .map_err(|error| Self::read_error(path, error))
    }

    fn atomic_write(&self, path: &Path, data: &[u8]) -> io::Result<()> {
        self.inner.atomic_write(path, &self.seal(data)?)
    }

    fn sync_directory(&self) -> io::Result<()> {
        self.inner.sync_directory()
    }

    fn acquire_lock(&self, lock: &Lock) -> Result<DirectoryLock, LockError> {
        self.inner.acquire_lock(lock)
    }

    fn watch(&self, watch_callback: WatchCallback) -> tantivy::Result<WatchHandle> {
        self.inner.watch(watch_callback)
    }
}

/// Collects a file's bytes and writes them sealed when tantivy terminates it.
struct SealingWriter {
    directory: SealedDirectory,
    plain: Vec<u8>,
    file: Option<WritePtr>,
}

impl Write for SealingWriter {
    fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
        self.plain.extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        // Nothing reaches the disk before the file is whole and sealed.
        Ok(())
    }
}

impl TerminatingWrite for SealingWriter {
    fn terminate_ref(&mut self, _: AntiCallToken) -> io::Result<()> {
        let mut file = self
            .file
            .take()
            .ok_or_else(|| io::Error::other("the file was already terminated"))?;
        let sealed = self.directory.seal(&std::mem::take(&mut self.plain))?;
        file.write_all(&sealed)?;
        file.flush()?;
        file.into_inner()
            .map_err(io::IntoInnerError::into_error)?
            .terminate()
    }
}

/// Where an index lives: a directory, sealed under the lake's keys when the lake is encrypted.
#[derive(Debug, Clone)]
pub struct Location {
    dir: PathBuf,
    keyring: Option<Arc<Keyring>>,
}

impl Location {
    /// The index in `dir`, sealed under `keyring`'s keys when there is one (an encrypted lake).
    pub fn new(dir: impl Into<PathBuf>, keyring: Option<Arc<Keyring>>) -> Self {
        Self {
            dir: dir.into(),
            keyring,
        }
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Whether an index was ever committed there.
    pub fn exists(&self) -> bool {
        self.dir.join("meta.json").exists()
    }

    fn directory(&self) -> crate::Result<Box<dyn Directory>> {
        let wrap = |error: tantivy::directory::error::OpenDirectoryError| {
            crate::Error::index(&self.dir)(error.into())
        };
        match &self.keyring {
            None => Ok(Box::new(MmapDirectory::open(&self.dir).map_err(wrap)?)),
            Some(keyring) => {
                let runtime = tokio::runtime::Handle::try_current().map_err(|_| {
                    crate::Error::Invalid(
                        "the sealed search index is opened outside the platform's runtime"
                            .to_owned(),
                    )
                })?;
                Ok(Box::new(
                    SealedDirectory::open(&self.dir, Arc::clone(keyring), runtime).map_err(wrap)?,
                ))
            }
        }
    }

    /// Opens the index.
    ///
    /// # Errors
    ///
    /// When it cannot be opened (or, sealed, opened with the lake's keys).
    pub fn open(&self) -> crate::Result<tantivy::Index> {
        tantivy::Index::open(self.directory()?).map_err(crate::Error::index(&self.dir))
    }

    /// Creates an index of `schema`.
    ///
    /// # Errors
    ///
    /// When it cannot be created.
    pub fn create(&self, schema: tantivy::schema::Schema) -> crate::Result<tantivy::Index> {
        tantivy::Index::create(self.directory()?, schema, tantivy::IndexSettings::default())
            .map_err(crate::Error::index(&self.dir))
    }
}

#[cfg(test)]
mod tests {
    use retail_lake::encryption::MasterKey;
    use tantivy::collector::TopDocs;
    use tantivy::query::TermQuery;
    use tantivy::schema::{IndexRecordOption, STORED, Schema, TEXT, Value as _};
    use tantivy::{TantivyDocument, Term, doc};

    use super::*;

    async fn keyring() -> Arc<Keyring> {
        let master = MasterKey::parse("test", &MasterKey::generate().unwrap()).unwrap();
        let keyring = Arc::new(Keyring::new(
            Arc::new(object_store::memory::InMemory::new()),
            vec![master],
        ));
        keyring.check().await.unwrap();
        keyring
    }

    /// Indexes three titles at `location`, then finds the one with `lantern` and reads it back.
    fn index_and_search(location: &Location) -> crate::Result<String> {
        let mut schema = Schema::builder();
        let title = schema.add_text_field("title", TEXT | STORED);
        let index = location.create(schema.build())?;
        let failed = crate::Error::index(location.dir());
        let mut writer = index
            .writer_with_num_threads(1, 15_000_000)
            .map_err(&failed)?;
        for text in ["glass lantern holder", "red heart", "white mug"] {
            writer.add_document(doc!(title => text)).map_err(&failed)?;
        }
        writer.commit().map_err(&failed)?;
        drop(writer);
        let index = location.open()?;
        let searcher = index.reader().map_err(&failed)?.searcher();
        let query = TermQuery::new(
            Term::from_field_text(title, "lantern"),
            IndexRecordOption::Basic,
        );
        let hits = searcher
            .search(&query, &TopDocs::with_limit(5).order_by_score())
            .map_err(&failed)?;
        assert_eq!(hits.len(), 1);
        let found: TantivyDocument = searcher.doc(hits[0].1).map_err(&failed)?;
        Ok(found
            .get_first(title)
            .and_then(|v| v.as_str())
            .unwrap_or_default()
            .to_owned())
    }

    fn files(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
        std::fs::read_dir(dir)
            .unwrap()
            .map(|entry| entry.unwrap().path())
            .filter(|path| path.is_file())
            .map(|path| {
                let bytes = std::fs::read(&path).unwrap();
                (path, bytes)
            })
            .collect()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_sealed_index_answers_as_a_plain_one_and_its_files_hold_nothing_readable() {
        let (plain_dir, sealed_dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let plain = Location::new(plain_dir.path(), None);
        let sealed = Location::new(sealed_dir.path(), Some(keyring().await));
        let (plain_found, sealed_found) = tokio::task::spawn_blocking({
            let (plain, sealed) = (plain.clone(), sealed.clone());
            move || (index_and_search(&plain), index_and_search(&sealed))
        })
        .await
        .unwrap();
        assert_eq!(plain_found.unwrap(), "glass lantern holder");
        assert_eq!(sealed_found.unwrap(), "glass lantern holder");

        let word = |bytes: &[u8]| bytes.windows(7).any(|w| w == b"lantern");
        assert!(files(plain_dir.path()).iter().any(|(_, b)| word(b)));
        let sealed_files = files(sealed_dir.path());
        assert!(sealed_files.len() > 5, "{sealed_files:?}");
        for (path, bytes) in &sealed_files {
            assert!(
                bytes.is_empty() || bytes.starts_with(b"RDPENC01"),
                "{} is not sealed",
                path.display()
            );
            assert!(!word(bytes), "{} holds a word", path.display());
        }

        // Without the keys, or with another lake's, the index does not open.
        let without = Location::new(sealed_dir.path(), None);
        let other = Location::new(sealed_dir.path(), Some(keyring().await));
        let (without, other) =
            tokio::task::spawn_blocking(move || (without.open().err(), other.open().err()))
                .await
                .unwrap();
        assert!(without.is_some(), "a sealed index read as a plain one");
        let other = format!("{:#}", anyhow_like(&other.expect("another lake's keys")));
        assert!(other.contains("fails authentication"), "{other}");
    }

    /// An error with its causes, as the CLI prints it.
    fn anyhow_like(error: &crate::Error) -> String {
        let mut text = error.to_string();
        let mut source = std::error::Error::source(error);
        while let Some(cause) = source {
            text.push_str(": ");
            text.push_str(&cause.to_string());
            source = cause.source();
        }
        text
    }
}

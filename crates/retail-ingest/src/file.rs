//! Files as a source: single files, directories (recursively) and glob patterns.
//!
//! Every input is checked (readable, a known format, a retail header) when the source is
//! opened, before anything is written, so one bad file changes nothing. Each file's
//! checkpoint is its content's SHA-256, so content ingested before is recognised and skipped
//! whatever the file is called. Files are decoded on the blocking pool, a few ahead of the
//! writer, so that decoding and Parquet encoding use both cores.

use std::path::{Path, PathBuf};

use async_trait::async_trait;
use retail_domain::progress::Progress;
use sha2::{Digest as _, Sha256};

use crate::decode::{Format, check, decode};
use crate::error::{Error, Result};
use crate::source::{Announcement, Checkpoint, Source, SourceBatch};

/// Files decoded ahead of the writer.
const READ_AHEAD_FILES: usize = 4;

/// Application-transaction id prefix marking an ingested file content in bronze.
pub const FILE_APP_PREFIX: &str = "retail.ingest.file.";

/// Expands inputs into a sorted, de-duplicated list of readable files.
///
/// A file is taken as given (its format must be known); a directory contributes every file of a
/// known format below it; anything else is a glob pattern, which must match at least one file.
///
/// # Errors
///
/// [`Error::NoMatch`] for an input that matches nothing, [`Error::UnsupportedFormat`] for a file
/// named explicitly whose format is unknown, [`Error::Pattern`] for a bad pattern.
pub fn resolve_inputs(inputs: &[String]) -> Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    for input in inputs {
        let path = Path::new(input);
        if path.is_file() {
            if Format::of_path(path).is_none() {
                return Err(Error::UnsupportedFormat {
                    path: path.to_owned(),
                });
            }
            files.push(path.to_owned());
        } else if path.is_dir() {
            let before = files.len();
            collect_dir(path, &mut files)?;
            if files.len() == before {
                return Err(Error::NoMatch {
                    input: input.clone(),
                });
            }
        } else {
            let pattern = glob::glob(input).map_err(|source| Error::Pattern {
                pattern: input.clone(),
                source,
            })?;
            let before = files.len();
            for entry in pattern.flatten() {
                if entry.is_file() && Format::of_path(&entry).is_some() {
                    files.push(entry);
                }
            }
            if files.len() == before {
                return Err(Error::NoMatch {
                    input: input.clone(),
                });
            }
        }
    }
    files.sort();
    files.dedup();
    Ok(files)
}

fn collect_dir(dir: &Path, files: &mut Vec<PathBuf>) -> Result<()> {
    let entries = std::fs::read_dir(dir).map_err(|source| Error::Io {
        path: dir.to_owned(),
        source,
    })?;
    for entry in entries {
        let path = entry
            .map_err(|source| Error::Io {
                path: dir.to_owned(),
                source,
            })?
            .path();
        if path.is_dir() {
            collect_dir(&path, files)?;
        } else if Format::of_path(&path).is_some() {
            files.push(path);
        }
    }
    Ok(())
}

/// Returns the lowercase hex SHA-256 of some bytes: the identity of a file's content.
pub fn content_checksum(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

#[derive(Debug, Clone)]
struct PendingFile {
    path: PathBuf,
    format: Format,
    checksum: String,
}

/// Files as a [`Source`]: one batch per file, whose checkpoint is the content's checksum.
#[derive(Debug)]
pub struct FileSource {
    files: Vec<PendingFile>,
    batch_rows: usize,
    receiver: Option<tokio::sync::mpsc::Receiver<Result<SourceBatch>>>,
}

impl FileSource {
    /// Resolves `inputs` and checks every file: readable, of a known format, with a retail
    /// header. Nothing is kept in memory but the list.
    ///
    /// # Errors
    ///
    /// As [`resolve_inputs`], and for the first file that cannot be read or is not retail
    /// transactions.
    pub async fn open(
        inputs: &[String],
        batch_rows: usize,
        progress: &dyn Progress,
    ) -> Result<Self> {
        let inputs = inputs.to_vec();
        let paths = tokio::task::spawn_blocking(move || resolve_inputs(&inputs))
            .await
            .map_err(Error::Task)??;
        progress.begin("checking files", paths.len() as u64);
        let mut files = Vec::with_capacity(paths.len());
        for path in paths {
            let format = Format::of_path(&path)
                .ok_or_else(|| Error::UnsupportedFormat { path: path.clone() })?;
            let checked = path.clone();
            let checksum = tokio::task::spawn_blocking(move || {
                let bytes = read(&checked)?;
                check(format, &checked.display().to_string(), &bytes)?;
                Ok::<_, Error>(content_checksum(&bytes))
            })
            .await
            .map_err(Error::Task)??;
            files.push(PendingFile {
                path,
                format,
                checksum,
            });
            progress.advance(1);
        }
        progress.end();
        Ok(Self {
            files,
            batch_rows,
            receiver: None,
        })
    }

    /// Files still to deliver.
    pub fn len(&self) -> usize {
        self.files.len()
    }

    /// Whether no file is left to deliver.
    pub fn is_empty(&self) -> bool {
        self.files.is_empty()
    }

    fn start_reading(&mut self) -> tokio::sync::mpsc::Receiver<Result<SourceBatch>> {
        let (sender, receiver) = tokio::sync::mpsc::channel(READ_AHEAD_FILES);
        let files = std::mem::take(&mut self.files);
        let batch_rows = self.batch_rows;
        tokio::task::spawn_blocking(move || {
            for file in files {
                let batch = read(&file.path).and_then(|bytes| {
                    let location = file.path.display().to_string();
                    let parts = decode(file.format, &location, &bytes, batch_rows)?;
                    Ok(SourceBatch {
                        location,
                        unit: file.checksum[..16].to_owned(),
                        parts,
                        checkpoint: Some(Checkpoint::progress(
                            format!("{FILE_APP_PREFIX}{}", file.checksum),
                            1,
                        )),
                        change: None,
                        checksum: file.checksum,
                    })
                });
                let failed = batch.is_err();
                if sender.blocking_send(batch).is_err() || failed {
                    break; // the writer stopped, or this file could not be read
                }
            }
        });
        receiver
    }
}

fn read(path: &Path) -> Result<Vec<u8>> {
    std::fs::read(path).map_err(|source| Error::Io {
        path: path.to_owned(),
        source,
    })
}

#[async_trait]
impl Source for FileSource {
    fn system(&self) -> &'static str {
        "file"
    }

    fn announced(&self) -> Vec<Announcement> {
        self.files
            .iter()
            .map(|file| Announcement {
                location: file.path.display().to_string(),
                checkpoint: Checkpoint::progress(format!("{FILE_APP_PREFIX}{}", file.checksum), 1),
                checksum: file.checksum.clone(),
            })
            .collect()
    }

    fn skip(&mut self, positions: &[usize]) {
        let mut index = 0;
        self.files.retain(|_| {
            let keep = !positions.contains(&index);
            index += 1;
            keep
        });
    }

    async fn next_batch(&mut self) -> Result<Option<SourceBatch>> {
        if self.receiver.is_none() {
            let receiver = self.start_reading();
            self.receiver = Some(receiver);
        }
        let receiver = self.receiver.as_mut().expect("set just above");
        receiver.recv().await.transpose()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolves_files_directories_and_globs_sorted_and_deduplicated() {
        let dir = tempfile::tempdir().unwrap();
        let sub = dir.path().join("sub");
        std::fs::create_dir(&sub).unwrap();
        for name in ["b.csv", "a.jsonl", "notes.txt"] {
            std::fs::write(dir.path().join(name), "x").unwrap();
        }
        std::fs::write(sub.join("c.parquet"), "x").unwrap();
        let root = dir.path().to_str().unwrap().to_owned();
        let files = resolve_inputs(&[root.clone(), format!("{root}/*.csv")]).unwrap();
        let names: Vec<_> = files
            .iter()
            .map(|f| f.file_name().unwrap().to_str().unwrap())
            .collect();
        assert_eq!(names, ["a.jsonl", "b.csv", "c.parquet"]);
    }

    #[test]
    fn rejects_inputs_that_match_nothing_or_an_unknown_format() {
        let dir = tempfile::tempdir().unwrap();
        let txt = dir.path().join("notes.txt");
        std::fs::write(&txt, "x").unwrap();
        let missing = format!("{}/nothing-*.csv", dir.path().display());
        assert!(matches!(
            resolve_inputs(&[missing]),
            Err(Error::NoMatch { .. })
        ));
        let explicit = txt.to_str().unwrap().to_owned();
        assert!(matches!(
            resolve_inputs(&[explicit]),
            Err(Error::UnsupportedFormat { .. })
        ));
    }

    #[tokio::test]
    async fn a_bad_file_among_good_ones_fails_the_opening_and_skipped_files_are_not_read() {
        let dir = tempfile::tempdir().unwrap();
        let good = "InvoiceNo,StockCode,Quantity,Country\n1,A,2,France\n";
        std::fs::write(dir.path().join("a.csv"), good).unwrap();
        std::fs::write(dir.path().join("b.csv"), good).unwrap();
        std::fs::write(dir.path().join("c.csv"), "x,y\n1,2\n").unwrap();
        let root = dir.path().display().to_string();
        let error = FileSource::open(
            std::slice::from_ref(&root),
            10,
            &retail_domain::progress::NoProgress,
        )
        .await
        .unwrap_err();
        assert!(matches!(error, Error::Header { .. }), "{error}");
        assert!(error.to_string().contains("c.csv"), "{error}");
        std::fs::remove_file(dir.path().join("c.csv")).unwrap();
        let mut source = FileSource::open(&[root], 10, &retail_domain::progress::NoProgress)
            .await
            .unwrap();
        let announced = source.announced();
        assert_eq!(announced.len(), 2);
        assert_eq!(
            announced[0].checkpoint, announced[1].checkpoint,
            "the same content has the same checkpoint"
        );
        source.skip(&[1]);
        let batch = source.next_batch().await.unwrap().expect("one file");
        assert!(batch.location.ends_with("a.csv"));
        assert_eq!(batch.rows(), 1);
        assert!(source.next_batch().await.unwrap().is_none());
    }
}

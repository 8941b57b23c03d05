//! Finding input files: single files, directories (recursively) and glob patterns.

use std::path::{Path, PathBuf};

use sha2::{Digest as _, Sha256};

use crate::error::{Error, Result};

/// A file format the platform reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// RFC 4180 CSV, UTF-8, with or without BOM.
    Csv,
    /// An Excel workbook; every sheet is read.
    Xlsx,
    /// Apache Parquet.
    Parquet,
    /// One JSON object per line.
    JsonLines,
}

impl Format {
    /// Returns the format of a path from its extension.
    pub fn of(path: &Path) -> Option<Self> {
        let extension = path.extension()?.to_str()?.to_ascii_lowercase();
        match extension.as_str() {
            "csv" => Some(Self::Csv),
            "xlsx" | "xlsm" => Some(Self::Xlsx),
            "parquet" => Some(Self::Parquet),
            "jsonl" | "ndjson" => Some(Self::JsonLines),
            _ => None,
        }
    }

    /// Returns the format's short name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Csv => "csv",
            Self::Xlsx => "xlsx",
            Self::Parquet => "parquet",
            Self::JsonLines => "jsonl",
        }
    }
}

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
            if Format::of(path).is_none() {
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
                if entry.is_file() && Format::of(&entry).is_some() {
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
        } else if Format::of(&path).is_some() {
            files.push(path);
        }
    }
    Ok(())
}

/// Returns the lowercase hex SHA-256 of some bytes: the identity of a file's content.
pub fn content_checksum(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
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
}

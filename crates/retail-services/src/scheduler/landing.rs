//! The landing sensors: files dropped in a directory (`landing`) or under an object-store
//! prefix (`prefix`, the objects directly under it) are ingested into bronze, then the
//! sensor's assets run. An object is read into a scratch directory of its own and ingested from
//! there (its content's checkpoint is what makes it once only), which is then removed.
//!
//! A file is taken once it looked the same (size and modification time) on two looks in a row,
//! so a file still being copied in is not read half-written (moving a finished file in, which
//! is atomic, is the safest way to drop one). Names starting with `.` or `_` and ending with
//! `.tmp` or `.part` are left alone. A file that changes after it was ingested is taken again
//! (ingestion skips content it has seen). A file that cannot be ingested is marked failed with
//! why, and tried again only when it changes.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::UNIX_EPOCH;

use retail_domain::error::{Classify as _, ErrorKind};
use retail_domain::progress::NoProgress;
use serde::{Deserialize, Serialize};

use super::{Cursor, FailedFile, Scheduler, SensorStatus, TickReport};
use crate::error::{Error, Result};
use crate::scheduler::config::Sensor;

/// A landing sensor's cursor: the files present at the last look and what became of each.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub(super) struct LandingCursor {
    files: BTreeMap<String, Seen>,
    /// Files were ingested and the sensor's run has not happened yet.
    run_pending: bool,
}

/// A file as last seen.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Seen {
    len: u64,
    /// Nanoseconds since the Unix epoch.
    modified: u64,
    state: FileState,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
enum FileState {
    /// Seen once; taken when it looks the same next time.
    Pending,
    Ingested,
    Failed {
        error: String,
    },
}

impl super::Fired for LandingCursor {
    fn run_pending(&self) -> bool {
        self.run_pending
    }

    fn with_run_pending(&self, pending: bool) -> Self {
        Self {
            run_pending: pending,
            ..self.clone()
        }
    }
}

impl LandingCursor {
    pub(super) fn describe(&self, status: &mut SensorStatus) {
        status.run_pending = self.run_pending;
        for (name, seen) in &self.files {
            let state = match &seen.state {
                FileState::Pending => "pending",
                FileState::Ingested => "ingested",
                FileState::Failed { error } => {
                    status.failed_files.push(FailedFile {
                        file: name.clone(),
                        error: error.clone(),
                    });
                    "failed"
                }
            };
            *status.files.entry(state.to_owned()).or_default() += 1;
        }
    }
}

/// Whether a name is a file to take (not hidden, not a temporary).
fn is_candidate(name: &str) -> bool {
    !(name.starts_with('.')
        || name.starts_with('_')
        || name.ends_with(".tmp")
        || name.ends_with(".part"))
}

/// The regular files of `dir` that are candidates, with their size and modification time.
async fn list(dir: &Path) -> Result<BTreeMap<String, (u64, u64)>> {
    let unreadable = |error: std::io::Error| {
        let kind = if error.kind() == std::io::ErrorKind::NotFound {
            ErrorKind::NotFound
        } else {
            ErrorKind::Unavailable
        };
        Error::new(
            kind,
            format!(
                "cannot read the landing directory {}: {error}",
                dir.display()
            ),
        )
    };
    let mut entries = tokio::fs::read_dir(dir).await.map_err(unreadable)?;
    let mut files = BTreeMap::new();
    while let Some(entry) = entries.next_entry().await.map_err(unreadable)? {
        let Some(name) = entry.file_name().to_str().map(str::to_owned) else {
            tracing::warn!(file = ?entry.file_name(), "a landing file whose name is not UTF-8 is left alone");
            continue;
        };
        if !is_candidate(&name) {
            continue;
        }
        // Following links: a link to a file is a file.
        let Ok(metadata) = tokio::fs::metadata(entry.path()).await else {
            continue; // removed meanwhile
        };
        if !metadata.is_file() {
            continue;
        }
        let modified = metadata
            .modified()
            .ok()
            .and_then(|at| at.duration_since(UNIX_EPOCH).ok())
            .map_or(0, |since| {
                u64::try_from(since.as_nanos()).unwrap_or(u64::MAX)
            });
        files.insert(name, (metadata.len(), modified));
    }
    Ok(files)
}

/// Where a landing sensor's files are.
pub(super) enum Landing<'a> {
    /// A local directory.
    Dir(&'a Path),
    /// An object-store prefix.
    Prefix(&'a retail_lake::ObjectPrefix),
}

impl Landing<'_> {
    /// The candidate files, with their size and modification time.
    async fn list(&self) -> Result<BTreeMap<String, (u64, u64)>> {
        match self {
            Self::Dir(dir) => list(dir).await,
            Self::Prefix(prefix) => Ok(prefix
                .list()
                .await
                .map_err(|error| Error::new(ErrorKind::Unavailable, error))?
                .into_iter()
                .filter(|(name, _)| is_candidate(name))
                .collect()),
        }
    }
}

impl Scheduler {
    /// Looks at a landing directory or prefix: ingests the files that settled, then runs the
    /// sensor's assets; `false` when the lease was lost.
    pub(super) async fn tick_landing_sensor(
        &self,
        sensor: &Sensor,
        landing: &Landing<'_>,
        report: &mut TickReport,
    ) -> Result<bool> {
        let name = &sensor.config.name;
        let by = format!("sensor:{name}");
        let mut cursor: Cursor<LandingCursor> = self.read_cursor(format!("sensor:{name}")).await?;
        let mut state = cursor.value.clone().unwrap_or_default();
        let present = landing.list().await?;

        // What is new or changed becomes pending; what settled is ready; what left is forgotten.
        let mut changed = false;
        let mut ready = Vec::new();
        let before = state.files.len();
        state.files.retain(|file, _| present.contains_key(file));
        changed |= state.files.len() != before;
        for (file, &(len, modified)) in &present {
            match state.files.get(file) {
                Some(seen) if seen.len == len && seen.modified == modified => {
                    if seen.state == FileState::Pending {
                        ready.push(file.clone());
                    }
                }
                _ => {
                    state.files.insert(
                        file.clone(),
                        Seen {
                            len,
                            modified,
                            state: FileState::Pending,
                        },
                    );
                    changed = true;
                }
            }
        }

        if !ready.is_empty() {
            changed = true;
            let outcomes = match landing {
                Landing::Dir(dir) => self.ingest_ready(dir, &ready, &by).await,
                Landing::Prefix(prefix) => self.ingest_objects(prefix, &ready, &by).await,
            };
            for (file, outcome) in ready.iter().zip(outcomes) {
                let Some(seen) = state.files.get_mut(file) else {
                    continue;
                };
                match outcome {
                    Ingested::Rows(rows) => {
                        seen.state = FileState::Ingested;
                        state.run_pending |= rows > 0;
                        report.ingested_files.push(file.clone());
                    }
                    Ingested::Busy => {
                        if !report.deferred.contains(&by) {
                            report.deferred.push(by.clone());
                        }
                    }
                    Ingested::Failed(error) => {
                        tracing::warn!(sensor = %name, file = %file, %error, "a landing file could not be ingested");
                        report.failed_files.push((file.clone(), error.clone()));
                        seen.state = FileState::Failed { error };
                    }
                }
            }
        }
        if changed && !self.save_cursor(&mut cursor, state.clone()).await? {
            return Ok(false);
        }
        self.run_pending(&sensor.config, report, &state, &mut cursor)
            .await
    }

    /// Reads the objects `names` under `prefix` into a scratch directory and ingests them from
    /// there as [`Scheduler::ingest_ready`] does; an object that cannot be read fails alone.
    async fn ingest_objects(
        &self,
        prefix: &retail_lake::ObjectPrefix,
        names: &[String],
        by: &str,
    ) -> Vec<Ingested> {
        let scratch = std::env::temp_dir().join(format!("retail-prefix-{}", uuid::Uuid::new_v4()));
        let mut outcomes: Vec<Option<Ingested>> = Vec::with_capacity(names.len());
        let mut read = Vec::new();
        if let Err(error) = tokio::fs::create_dir_all(&scratch).await {
            let error = format!("cannot make a scratch directory: {error}");
            return names
                .iter()
                .map(|_| Ingested::Failed(error.clone()))
                .collect();
        }
        for name in names {
            let outcome = match prefix.read(name).await {
                Ok(bytes) => match tokio::fs::write(scratch.join(name), &bytes).await {
                    Ok(()) => {
                        read.push(name.clone());
                        None
                    }
                    Err(error) => Some(Ingested::Failed(format!(
                        "cannot write {name} to a scratch directory: {error}"
                    ))),
                },
                Err(error) => Some(Ingested::Failed(error)),
            };
            outcomes.push(outcome);
        }
        let mut ingested = self.ingest_ready(&scratch, &read, by).await.into_iter();
        if let Err(error) = tokio::fs::remove_dir_all(&scratch).await {
            tracing::warn!(dir = %scratch.display(), %error, "a scratch directory was left behind");
        }
        outcomes
            .into_iter()
            .map(|outcome| {
                outcome.unwrap_or_else(|| {
                    ingested
                        .next()
                        .unwrap_or_else(|| Ingested::Failed("not ingested".to_owned()))
                })
            })
            .collect()
    }

    /// Ingests `files` of `dir` in one ingestion; if that fails, one by one, so that one bad
    /// file does not hold the others back. One outcome per file, in order.
    async fn ingest_ready(&self, dir: &Path, files: &[String], by: &str) -> Vec<Ingested> {
        let path = |file: &String| dir.join(file).to_string_lossy().into_owned();
        let all: Vec<String> = files.iter().map(path).collect();
        match self.ingest.ingest_files(&all, by, &NoProgress).await {
            Ok(run) => {
                // Rows per file, from the run's outcomes (a file seen before adds none).
                let rows = |p: &str| {
                    run.detail
                        .files
                        .iter()
                        .filter(|f| f.path == p)
                        .map(|f| f.rows)
                        .sum::<u64>()
                };
                return all.iter().map(|p| Ingested::Rows(rows(p))).collect();
            }
            Err(error) if error.kind() == ErrorKind::Conflict => {
                return files.iter().map(|_| Ingested::Busy).collect();
            }
            Err(_) if files.len() > 1 => {}
            Err(error) => return vec![Ingested::Failed(error.to_string())],
        }
        let mut outcomes = Vec::new();
        for one in &all {
            let outcome = match self
                .ingest
                .ingest_files(std::slice::from_ref(one), by, &NoProgress)
                .await
            {
                Ok(run) => Ingested::Rows(run.rows_out),
                Err(error) if error.kind() == ErrorKind::Conflict => Ingested::Busy,
                Err(error) => Ingested::Failed(error.to_string()),
            };
            outcomes.push(outcome);
        }
        outcomes
    }
}

/// What became of one file.
enum Ingested {
    /// Landed (rows added; 0 when its content was seen before).
    Rows(u64),
    /// Another ingestion held the claim: try again next tick.
    Busy,
    Failed(String),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hidden_and_temporary_files_are_left_alone() {
        for name in [".copying.csv", "_SUCCESS", "day.csv.tmp", "day.csv.part"] {
            assert!(!is_candidate(name), "{name}");
        }
        for name in ["2011-01-04.csv", "orders.json", "x.part.csv"] {
            assert!(is_candidate(name), "{name}");
        }
    }
}

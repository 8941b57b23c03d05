//! Lake tables read into memory and kept until one of them moves: the services that serve what
//! an asset wrote to gold (the models, the recommendations) check the tables' versions at most
//! once a second and read them again only when a version changed.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use retail_lake::Lake;
use retail_lake::arrow::array::RecordBatch;
use retail_lake::schema::TableSpec;
use tokio::sync::Mutex;

use crate::{Error, Result};

/// How often the tables' versions are checked.
const RECHECK: Duration = Duration::from_secs(1);

/// What was read, the versions it was read at, and when they were last checked.
#[derive(Debug)]
struct State<T> {
    checked: Option<Instant>,
    versions: Vec<Option<u64>>,
    value: Arc<T>,
}

/// A value made from lake tables, kept until one of them moves.
#[derive(Debug)]
pub(crate) struct TableCache<T> {
    lake: Lake,
    tables: &'static [TableSpec],
    state: Mutex<State<T>>,
}

impl<T: Default> TableCache<T> {
    /// The value made from `tables` of `lake` (nothing is read before the first `get`).
    pub(crate) fn new(lake: Lake, tables: &'static [TableSpec]) -> Self {
        Self {
            lake,
            tables,
            state: Mutex::new(State {
                checked: None,
                versions: Vec::new(),
                value: Arc::new(T::default()),
            }),
        }
    }

    /// The lake.
    pub(crate) fn lake(&self) -> &Lake {
        &self.lake
    }

    /// The value, made again by `load` (given each table's version, `None` for a table never
    /// written) when a table moved since it was last made.
    pub(crate) async fn get<F, Fut>(&self, load: F) -> Result<Arc<T>>
    where
        F: FnOnce(Vec<Option<u64>>) -> Fut,
        Fut: Future<Output = Result<T>>,
    {
        let mut state = self.state.lock().await;
        if state.checked.is_some_and(|at| at.elapsed() < RECHECK) {
            return Ok(Arc::clone(&state.value));
        }
        let mut versions = Vec::with_capacity(self.tables.len());
        for table in self.tables {
            versions.push(
                self.lake
                    .latest_version(table)
                    .await
                    .map_err(Error::from_classified)?,
            );
        }
        if state.checked.is_none() || versions != state.versions {
            state.value = Arc::new(load(versions.clone()).await?);
            state.versions = versions;
        }
        state.checked = Some(Instant::now());
        Ok(Arc::clone(&state.value))
    }

    /// A table's rows; none when it was never written (`version` is `None`).
    pub(crate) async fn read(
        &self,
        table: &TableSpec,
        version: Option<u64>,
    ) -> Result<Vec<RecordBatch>> {
        if version.is_none() {
            return Ok(Vec::new());
        }
        self.lake
            .read_all(table)
            .await
            .map_err(Error::from_classified)
    }
}

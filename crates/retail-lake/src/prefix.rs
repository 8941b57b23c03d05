//! An object-store prefix files are dropped under (`s3://bucket/landing/`): its objects listed
//! one level deep and read whole, for the scheduler's prefix sensor.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use deltalake::DeltaTableBuilder;
use object_store::{ObjectStore, ObjectStoreExt as _};
use url::Url;

use crate::error::{Error, Result};

/// An object-store prefix, opened with the lake's storage options.
#[derive(Clone)]
pub struct ObjectPrefix {
    url: Url,
    store: Arc<dyn ObjectStore>,
}

impl std::fmt::Debug for ObjectPrefix {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ObjectPrefix")
            .field("url", &self.url.as_str())
            .finish_non_exhaustive()
    }
}

/// An object as listed: its size and last modification, in nanoseconds since the Unix epoch.
pub type ObjectStamp = (u64, u64);

impl ObjectPrefix {
    /// The prefix at `url` (`s3://bucket/path/`, `file:///dir/`), reached with `options` (the
    /// lake's `storage_options`: endpoint, region, credentials).
    ///
    /// # Errors
    ///
    /// [`Error::InvalidRoot`] when `url` is not a URL of a store the lake can open.
    pub fn open(url: &str, options: &BTreeMap<String, String>) -> Result<Self> {
        let invalid = |reason: String| Error::InvalidRoot {
            root: url.to_owned(),
            reason,
        };
        let parsed = Url::parse(url).map_err(|error| invalid(error.to_string()))?;
        if matches!(parsed.scheme(), "s3" | "s3a") {
            static REGISTER_S3: std::sync::Once = std::sync::Once::new();
            REGISTER_S3.call_once(|| deltalake::aws::register_handlers(None));
        }
        let options: HashMap<String, String> = options
            .iter()
            .map(|(key, value)| (key.clone(), value.clone()))
            .collect();
        let storage = DeltaTableBuilder::from_url(parsed.clone())
            .map(|builder| builder.with_storage_options(options))
            .and_then(|builder| builder.build_storage())
            .map_err(|error| invalid(error.to_string()))?;
        Ok(Self {
            url: parsed,
            store: storage.object_store(None),
        })
    }

    /// Its URL.
    pub fn url(&self) -> &str {
        self.url.as_str()
    }

    /// The objects directly under the prefix (not in sub-prefixes), by name, with their size
    /// and modification time.
    ///
    /// # Errors
    ///
    /// When the store cannot be listed.
    pub async fn list(&self) -> std::result::Result<BTreeMap<String, ObjectStamp>, String> {
        let listing = self
            .store
            .list_with_delimiter(None)
            .await
            .map_err(|error| format!("cannot list {}: {error}", self.url))?;
        Ok(listing
            .objects
            .into_iter()
            .filter_map(|object| {
                let name = object.location.filename()?.to_owned();
                let modified = object
                    .last_modified
                    .timestamp_nanos_opt()
                    .and_then(|nanos| u64::try_from(nanos).ok())
                    .unwrap_or(0);
                Some((name, (object.size, modified)))
            })
            .collect())
    }

    /// The content of the object `name` directly under the prefix.
    ///
    /// # Errors
    ///
    /// When it cannot be read.
    pub async fn read(&self, name: &str) -> std::result::Result<bytes::Bytes, String> {
        let path = object_store::path::Path::from(name);
        let failed =
            |error: object_store::Error| format!("cannot read {}{name}: {error}", self.url);
        self.store
            .get(&path)
            .await
            .map_err(failed)?
            .bytes()
            .await
            .map_err(failed)
    }
}

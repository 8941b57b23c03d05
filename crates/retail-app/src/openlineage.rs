//! The OpenLineage sinks (`[openlineage]`): a file of JSON lines, or an HTTP endpoint
//! (reqwest, TLS from `[tls]`), and the emitter the runner tells of its runs.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use async_trait::async_trait;
use retail_services::LineageService;
use retail_services::openlineage::{EventSink, Namespaces, OpenLineageEmitter};
use tokio::io::AsyncWriteExt as _;
use tokio::sync::Mutex;

use crate::config::Config;

/// Appends each event as one line of JSON.
#[derive(Debug)]
pub struct FileSink {
    path: PathBuf,
    lock: Mutex<()>,
}

impl FileSink {
    /// A sink appending to `path` (created with its directory when missing).
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Self {
            path: path.into(),
            lock: Mutex::new(()),
        }
    }
}

#[async_trait]
impl EventSink for FileSink {
    async fn send(&self, event: &serde_json::Value) -> Result<(), String> {
        let mut line = serde_json::to_vec(event).map_err(|e| e.to_string())?;
        line.push(b'\n');
        let _held = self.lock.lock().await;
        let describe = |e: std::io::Error| format!("{}: {e}", self.path.display());
        if let Some(parent) = self.path.parent().filter(|p| !p.as_os_str().is_empty()) {
            tokio::fs::create_dir_all(parent).await.map_err(describe)?;
        }
        let mut file = tokio::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.path)
            .await
            .map_err(describe)?;
        // One write of the whole line: readers never see half an event.
        file.write_all(&line).await.map_err(describe)?;
        file.flush().await.map_err(describe)
    }
}

/// POSTs each event as JSON.
#[derive(Debug)]
pub struct HttpSink {
    client: reqwest::Client,
    url: String,
    api_key: Option<String>,
}

impl HttpSink {
    /// A sink posting to `url`, trusting `[tls]`'s authorities, giving up after `timeout`.
    ///
    /// # Errors
    ///
    /// When `tls.ca_file` cannot be used.
    pub fn new(
        tls: &retail_tls::TlsConfig,
        url: &str,
        api_key: Option<String>,
        timeout: Duration,
    ) -> anyhow::Result<Self> {
        let client = reqwest::Client::builder()
            .use_preconfigured_tls(tls.client_config().context("cannot use [tls]")?)
            .timeout(timeout)
            .build()
            .context("cannot build the HTTP client of OpenLineage events")?;
        Ok(Self {
            client,
            url: url.to_owned(),
            api_key,
        })
    }
}

#[async_trait]
impl EventSink for HttpSink {
    async fn send(&self, event: &serde_json::Value) -> Result<(), String> {
        let mut request = self.client.post(&self.url).json(event);
        if let Some(key) = &self.api_key {
            request = request.bearer_auth(key);
        }
        let response = request.send().await.map_err(|error| {
            format!(
                "{}: {}",
                self.url,
                retail_domain::error::error_chain(&error)
            )
        })?;
        let status = response.status();
        if status.is_success() {
            Ok(())
        } else {
            Err(format!("{} answered {status}", self.url))
        }
    }
}

/// The lake's root as a URI: itself when it has a scheme, else `file://` and its absolute path.
fn lake_namespace(root: &str) -> String {
    if root.contains("://") {
        return root.trim_end_matches('/').to_owned();
    }
    let path = std::path::absolute(root).unwrap_or_else(|_| PathBuf::from(root));
    format!("file://{}", path.display())
}

/// The PostgreSQL warehouse's namespace (`postgres://host:port`) and relation prefix
/// (`database.schema`), when it is the backend.
fn warehouse_namespace(config: &Config) -> Option<(String, String)> {
    if config.warehouse.backend != retail_warehouse::Backend::Postgres {
        return None;
    }
    let url = url::Url::parse(&config.warehouse.postgres_url).ok()?;
    let host = url.host_str().unwrap_or("localhost");
    let port = url.port().unwrap_or(5432);
    let database = url.path().trim_start_matches('/');
    let database = if database.is_empty() {
        "postgres"
    } else {
        database
    };
    Some((
        format!("postgres://{host}:{port}"),
        format!("{database}.{}", config.warehouse.postgres_schema),
    ))
}

/// The emitter `[openlineage]` asks for, `None` when its transport is `none`.
///
/// # Errors
///
/// When the HTTP client cannot be built.
pub fn emitter(
    config: &Config,
    lineage: Arc<dyn LineageService>,
    assets: &[Arc<dyn retail_pipeline::Asset>],
) -> anyhow::Result<Option<OpenLineageEmitter>> {
    let settings = &config.openlineage;
    let sink: Arc<dyn EventSink> = match settings.transport.as_str() {
        "file" => Arc::new(FileSink::new(&settings.path)),
        "http" => Arc::new(HttpSink::new(
            &config.tls,
            &settings.url,
            Some(settings.api_key.clone()).filter(|k| !k.is_empty()),
            Duration::from_secs(settings.timeout_seconds),
        )?),
        _ => return Ok(None),
    };
    let namespaces = Namespaces {
        jobs: settings.namespace.clone(),
        lake: lake_namespace(&config.lake.root),
        warehouse: warehouse_namespace(config),
    };
    Ok(Some(OpenLineageEmitter::new(
        sink, lineage, namespaces, assets,
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_lake_and_the_warehouse_are_named_as_openlineage_names_them() {
        assert_eq!(lake_namespace("s3://bucket/lake/"), "s3://bucket/lake");
        assert!(lake_namespace("data/lake").starts_with("file:///"));
        let mut config = Config::default();
        assert_eq!(warehouse_namespace(&config), None);
        config.warehouse.backend = retail_warehouse::Backend::Postgres;
        config.warehouse.postgres_url = "postgres://u:p@db.example:6432/shop".to_owned();
        config.warehouse.postgres_schema = "retail".to_owned();
        assert_eq!(
            warehouse_namespace(&config),
            Some((
                "postgres://db.example:6432".to_owned(),
                "shop.retail".to_owned()
            ))
        );
    }
}

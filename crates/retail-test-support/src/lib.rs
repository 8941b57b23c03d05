//! Fixtures shared by the integration tests (a dev-dependency only): where the real data is,
//! small generated datasets that every checkout has, and the test servers.
//!
//! A test that needs a server or the real data fails where the environment requires it (CI
//! sets `RETAIL_REQUIRE_POSTGRES`, `RETAIL_REQUIRE_REDIS`, `RETAIL_REQUIRE_KAFKA`,
//! `RETAIL_REQUIRE_TEST_DATA`), and
//! elsewhere says so and skips. Tests that can run on generated data always run.

use std::path::{Path, PathBuf};

use retail_ingest::generate::{GenerateOptions, write_daily_csv_files};

/// The real Online Retail data, when present (`RETAIL_TEST_DATA` or `../shared/data/online-retail`
/// beside the checkout).
///
/// # Panics
///
/// When it is absent and `RETAIL_REQUIRE_TEST_DATA` is set.
pub fn real_data() -> Option<PathBuf> {
    let dir = std::env::var_os("RETAIL_TEST_DATA")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/data/online-retail")
        });
    if dir.join("spark-guide-by-day").is_dir() {
        return Some(dir);
    }
    assert!(
        std::env::var_os("RETAIL_REQUIRE_TEST_DATA").is_none(),
        "real test data not found at {} (set RETAIL_TEST_DATA)",
        dir.display()
    );
    eprintln!("skipped: real test data not found at {}", dir.display());
    None
}

/// The daily CSV files of Online Retail I, sorted by day.
///
/// # Panics
///
/// When the directory cannot be listed.
pub fn daily_files(data: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(data.join("spark-guide-by-day"))
        .expect("data dir")
        .map(|entry| entry.expect("entry").path())
        .filter(|path| path.extension().is_some_and(|e| e == "csv"))
        .collect();
    files.sort();
    files
}

/// A generated dataset in the Online Retail shape: one CSV file per day, in a temporary
/// directory removed when this is dropped.
#[derive(Debug)]
pub struct Generated {
    dir: tempfile::TempDir,
    /// The daily files, sorted by day.
    pub files: Vec<PathBuf>,
}

impl Generated {
    /// `rows` rows over `days` days from 2010-12-01, with a fixed seed (the same every run):
    /// guests, returns, cancellations, non-product lines, duplicates and a few bad rows.
    ///
    /// # Panics
    ///
    /// When the files cannot be written.
    pub fn new(rows: u64, days: u32) -> Self {
        Self::with(&GenerateOptions {
            rows,
            seed: 7,
            start: chrono::NaiveDate::from_ymd_opt(2010, 12, 1).expect("a date"),
            days,
            anomaly_days: 0,
        })
    }

    /// Files generated with `options`.
    ///
    /// # Panics
    ///
    /// When the files cannot be written.
    pub fn with(options: &GenerateOptions) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        write_daily_csv_files(dir.path(), options).expect("generated files");
        let mut files: Vec<PathBuf> = std::fs::read_dir(dir.path())
            .expect("generated dir")
            .map(|entry| entry.expect("entry").path())
            .collect();
        files.sort();
        Self { dir, files }
    }

    /// The directory holding the files.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The files as inputs of an ingestion.
    pub fn inputs(&self, files: &[PathBuf]) -> Vec<String> {
        files.iter().map(|p| p.display().to_string()).collect()
    }
}

fn server(variable: &str, require: &str, start: &str) -> Option<String> {
    if let Ok(url) = std::env::var(variable) {
        return Some(url);
    }
    assert!(
        std::env::var_os(require).is_none(),
        "{variable} is not set ({start})"
    );
    eprintln!("skipped: {variable} is not set ({start})");
    None
}

/// The moto server of the test run (`RETAIL_TEST_MOTO_URL`: AWS APIs, S3 among them).
///
/// # Panics
///
/// When it is not set and `RETAIL_REQUIRE_MOTO` is.
pub fn moto_url() -> Option<String> {
    server(
        "RETAIL_TEST_MOTO_URL",
        "RETAIL_REQUIRE_MOTO",
        "scripts/services.sh start moto",
    )
}

/// The PostgreSQL server of the test run (`RETAIL_TEST_POSTGRES_URL`).
///
/// # Panics
///
/// When it is not set and `RETAIL_REQUIRE_POSTGRES` is.
pub fn postgres_url() -> Option<String> {
    server(
        "RETAIL_TEST_POSTGRES_URL",
        "RETAIL_REQUIRE_POSTGRES",
        "scripts/services.sh start postgres",
    )
}

/// The Redis server of the test run (`RETAIL_TEST_REDIS_URL`).
///
/// # Panics
///
/// When it is not set and `RETAIL_REQUIRE_REDIS` is.
pub fn redis_url() -> Option<String> {
    server(
        "RETAIL_TEST_REDIS_URL",
        "RETAIL_REQUIRE_REDIS",
        "scripts/services.sh start redis",
    )
}

/// The TLS port of the Redis server of the test run (`RETAIL_TEST_REDISS_URL`).
///
/// # Panics
///
/// When it is not set and `RETAIL_REQUIRE_REDIS` is.
pub fn rediss_url() -> Option<String> {
    server(
        "RETAIL_TEST_REDISS_URL",
        "RETAIL_REQUIRE_REDIS",
        "scripts/services.sh start redis",
    )
}

/// The Kafka-protocol broker of the test run (`RETAIL_TEST_KAFKA_BROKERS`, `host:port`).
///
/// # Panics
///
/// When it is not set and `RETAIL_REQUIRE_KAFKA` is.
pub fn kafka_brokers() -> Option<String> {
    server(
        "RETAIL_TEST_KAFKA_BROKERS",
        "RETAIL_REQUIRE_KAFKA",
        "scripts/services.sh start kafka",
    )
}

/// The RabbitMQ broker of the test run (`RETAIL_TEST_AMQP_URL`, `amqp://...`).
///
/// # Panics
///
/// When it is not set and `RETAIL_REQUIRE_RABBITMQ` is.
pub fn amqp_url() -> Option<String> {
    server(
        "RETAIL_TEST_AMQP_URL",
        "RETAIL_REQUIRE_RABBITMQ",
        "scripts/services.sh start rabbitmq",
    )
}

/// The port of the test RabbitMQ's stream protocol (`RETAIL_TEST_RABBITMQ_STREAM_PORT`).
///
/// # Panics
///
/// When it is not set, or not a port, and `RETAIL_REQUIRE_RABBITMQ` is.
pub fn rabbitmq_stream_port() -> Option<u16> {
    server(
        "RETAIL_TEST_RABBITMQ_STREAM_PORT",
        "RETAIL_REQUIRE_RABBITMQ",
        "scripts/services.sh start rabbitmq",
    )
    .map(|port| {
        port.parse()
            .expect("RETAIL_TEST_RABBITMQ_STREAM_PORT is a port")
    })
}

/// The test Typesense server's URL and API key (`RETAIL_TEST_TYPESENSE_URL`,
/// `RETAIL_TEST_TYPESENSE_KEY`).
///
/// # Panics
///
/// When they are not set and `RETAIL_REQUIRE_TYPESENSE` is.
pub fn typesense() -> Option<(String, String)> {
    let url = server(
        "RETAIL_TEST_TYPESENSE_URL",
        "RETAIL_REQUIRE_TYPESENSE",
        "scripts/services.sh start typesense",
    )?;
    let key = server(
        "RETAIL_TEST_TYPESENSE_KEY",
        "RETAIL_REQUIRE_TYPESENSE",
        "scripts/services.sh start typesense",
    )?;
    Some((url, key))
}

/// An OpenTelemetry collector (rotel): its OTLP gRPC and HTTP endpoints and the log it writes
/// every span it receives to (`RETAIL_TEST_OTLP_GRPC`, `RETAIL_TEST_OTLP_HTTP`,
/// `RETAIL_TEST_OTLP_LOG`).
///
/// # Panics
///
/// When they are not set and `RETAIL_REQUIRE_OTLP` is.
pub fn otlp_collector() -> Option<(String, String, std::path::PathBuf)> {
    let start = "scripts/services.sh start rotel";
    let grpc = server("RETAIL_TEST_OTLP_GRPC", "RETAIL_REQUIRE_OTLP", start)?;
    let http = server("RETAIL_TEST_OTLP_HTTP", "RETAIL_REQUIRE_OTLP", start)?;
    let log = server("RETAIL_TEST_OTLP_LOG", "RETAIL_REQUIRE_OTLP", start)?;
    Some((grpc, http, log.into()))
}

/// Prometheus's `promtool` (Debian's `prometheus` package; `scripts/test.sh` installs it).
///
/// # Panics
///
/// When it is not on the `PATH` and `RETAIL_REQUIRE_PROMTOOL` is set.
pub fn promtool() -> Option<std::path::PathBuf> {
    prometheus_program("promtool")
}

/// The Prometheus server (the same package as [`promtool`]), for tests that start one.
///
/// # Panics
///
/// When it is not on the `PATH` and `RETAIL_REQUIRE_PROMTOOL` is set.
pub fn prometheus() -> Option<std::path::PathBuf> {
    prometheus_program("prometheus")
}

/// A Prometheus server started for a test: `prometheus.yml` written in a directory, a free
/// loopback port, its log beside the configuration; stopped when dropped.
#[derive(Debug)]
pub struct PrometheusServer {
    child: std::process::Child,
    log: PathBuf,
    /// Its address, `http://127.0.0.1:PORT`.
    pub url: String,
}

impl PrometheusServer {
    /// Starts `binary` ([`prometheus`]) in `dir` with the configuration `config` and `extra`
    /// flags.
    ///
    /// # Panics
    ///
    /// When the files cannot be written or the program not started.
    pub fn start(binary: &Path, dir: &Path, config: &str, extra: &[&str]) -> Self {
        let file = dir.join("prometheus.yml");
        std::fs::write(&file, config).expect("prometheus.yml");
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|listener| listener.local_addr())
            .expect("a free port")
            .port();
        let log = dir.join("prometheus.log");
        let child = std::process::Command::new(binary)
            .arg(format!("--config.file={}", file.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.join("tsdb").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .args(extra)
            .stdout(std::process::Stdio::null())
            .stderr(std::fs::File::create(&log).expect("prometheus.log"))
            .spawn()
            .expect("prometheus starts");
        Self {
            child,
            log,
            url: format!("http://127.0.0.1:{port}"),
        }
    }

    /// What it logged above the info level (for a failing test's message).
    pub fn problems(&self) -> String {
        std::fs::read_to_string(&self.log)
            .unwrap_or_default()
            .lines()
            .filter(|line| !line.contains("level=info"))
            .collect::<Vec<_>>()
            .join("\n")
    }
}

impl Drop for PrometheusServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn prometheus_program(name: &str) -> Option<std::path::PathBuf> {
    let found = std::env::var_os("PATH").and_then(|path| {
        std::env::split_paths(&path)
            .map(|dir| dir.join(name))
            .find(|candidate| candidate.is_file())
    });
    if found.is_none() {
        assert!(
            std::env::var_os("RETAIL_REQUIRE_PROMTOOL").is_none(),
            "{name} is not on the PATH (apt-get install prometheus)"
        );
        eprintln!("skipped: {name} is not on the PATH (apt-get install prometheus)");
    }
    found
}

/// The authority that signs the test servers' certificates (`RETAIL_TEST_TLS_CA`).
///
/// # Panics
///
/// When it is not set and `RETAIL_REQUIRE_POSTGRES` is.
pub fn tls_ca() -> Option<String> {
    server(
        "RETAIL_TEST_TLS_CA",
        "RETAIL_REQUIRE_POSTGRES",
        "scripts/services.sh start postgres",
    )
}

/// A name no other test of this run uses: for schemas and keys of shared servers.
pub fn unique_name(prefix: &str) -> String {
    use std::sync::atomic::{AtomicU32, Ordering};
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    format!(
        "{prefix}_{}_{}_{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed),
        nanos % 100_000
    )
}

/// The OpenLineage specification's JSON schemas, read from `RETAIL_TEST_OPENLINEAGE_SPEC` (a
/// directory with `OpenLineage.json` and `facets/*.json`, as `scripts/openlineage-spec.sh`
/// brings them): events are checked against the core `RunEvent` and each facet they carry
/// against its own schema, formats (`uuid`, `date-time`, `uri`) included, and each facet's
/// `_schemaURL` must name the schema it was checked against.
pub struct OpenLineageSpec {
    core: jsonschema::Validator,
    facets: std::collections::BTreeMap<String, (String, jsonschema::Validator)>,
}

impl std::fmt::Debug for OpenLineageSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OpenLineageSpec")
            .field("facets", &self.facets.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

/// The OpenLineage schemas of the test run.
///
/// # Panics
///
/// When `RETAIL_TEST_OPENLINEAGE_SPEC` is not set and `RETAIL_REQUIRE_OPENLINEAGE_SPEC` is,
/// or the directory does not hold the schemas.
pub fn openlineage_spec() -> Option<OpenLineageSpec> {
    let dir = server(
        "RETAIL_TEST_OPENLINEAGE_SPEC",
        "RETAIL_REQUIRE_OPENLINEAGE_SPEC",
        "eval \"$(scripts/openlineage-spec.sh)\"",
    )?;
    let dir = std::path::Path::new(&dir);
    let read = |path: &std::path::Path| -> serde_json::Value {
        let text = std::fs::read_to_string(path)
            .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
    };
    let core = read(&dir.join("OpenLineage.json"));
    let core_id = core["$id"]
        .as_str()
        .expect("the core schema has an $id")
        .to_owned();
    let mut registry = jsonschema::Registry::new()
        .add(core_id.as_str(), core)
        .expect("the core schema registers");
    let mut facets = Vec::new();
    for entry in std::fs::read_dir(dir.join("facets")).expect("a facets directory") {
        let path = entry.expect("a facet schema").path();
        let schema = read(&path);
        let id = schema["$id"]
            .as_str()
            .expect("a facet schema has an $id")
            .to_owned();
        let name = path
            .file_stem()
            .and_then(|s| s.to_str())
            .expect("a facet file name")
            .to_owned();
        registry = registry
            .add(id.as_str(), schema)
            .expect("a facet schema registers");
        facets.push((name, id));
    }
    let registry = registry.prepare().expect("the schemas resolve");
    let validator = |reference: String| {
        jsonschema::options()
            .with_registry(&registry)
            .should_validate_formats(true)
            .build(&serde_json::json!({ "$ref": reference }))
            .unwrap_or_else(|e| panic!("{reference}: {e}"))
    };
    let core = validator(format!("{core_id}#/$defs/RunEvent"));
    let facets = facets
        .into_iter()
        .map(|(name, id)| {
            let url = format!("{id}#/$defs/{name}");
            (name, (url.clone(), validator(url)))
        })
        .collect();
    Some(OpenLineageSpec { core, facets })
}

impl OpenLineageSpec {
    /// Every way `event` breaks the specification: the core schema, then each facet (by the
    /// facet's name in its `_schemaURL`) against its schema. Empty: valid.
    pub fn problems(&self, event: &serde_json::Value) -> Vec<String> {
        let mut problems: Vec<String> = self
            .core
            .iter_errors(event)
            .map(|e| format!("RunEvent: {e} at {}", e.instance_path()))
            .collect();
        let mut facets: Vec<(String, &serde_json::Value)> = Vec::new();
        fn collect<'a>(
            facets: &mut Vec<(String, &'a serde_json::Value)>,
            at: String,
            value: &'a serde_json::Value,
        ) {
            if let Some(map) = value.as_object() {
                for (key, facet) in map {
                    facets.push((format!("{at}.{key}"), facet));
                }
            }
        }
        collect(
            &mut facets,
            "run.facets".to_owned(),
            &event["run"]["facets"],
        );
        collect(
            &mut facets,
            "job.facets".to_owned(),
            &event["job"]["facets"],
        );
        for side in ["inputs", "outputs"] {
            for (i, dataset) in event[side].as_array().into_iter().flatten().enumerate() {
                collect(
                    &mut facets,
                    format!("{side}[{i}].facets"),
                    &dataset["facets"],
                );
                let inputs = &dataset["inputFacets"];
                collect(&mut facets, format!("{side}[{i}].inputFacets"), inputs);
                let outputs = &dataset["outputFacets"];
                collect(&mut facets, format!("{side}[{i}].outputFacets"), outputs);
            }
        }
        for (at, facet) in facets {
            let url = facet["_schemaURL"].as_str().unwrap_or_default();
            let name = url.rsplit('/').next().unwrap_or_default();
            match self.facets.get(name) {
                Some((expected, validator)) => {
                    if url != expected {
                        problems.push(format!("{at}: _schemaURL {url} is not {expected}"));
                    }
                    problems.extend(
                        validator
                            .iter_errors(facet)
                            .map(|e| format!("{at} ({name}): {e} at {}", e.instance_path())),
                    );
                }
                None => problems.push(format!("{at}: no schema for {url:?}")),
            }
        }
        problems
    }
}

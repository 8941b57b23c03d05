//! Observability of the platform: the tracing subscriber and every metric, declared once.
//!
//! Metric names follow `retail_<subsystem>_<name>_<unit>` with `_total` on counters. Code elsewhere
//! records metrics only through the functions of [`metrics`], so names and labels stay bounded
//! and documented in one place. Without an installed recorder (the CLI batch commands) recording
//! is a no-op; `retail serve` installs the Prometheus exporter.
//!
//! ```
//! retail_telemetry::metrics::describe();
//! retail_telemetry::metrics::record_ingested("file", 541_909);
//! ```

pub mod logs;
mod process;
pub mod tracing_setup;

/// Every metric of the platform.
pub mod metrics {
    use metrics::{
        counter, describe_counter, describe_gauge, describe_histogram, gauge, histogram,
    };

    /// Records received by ingestion, by source system.
    pub const INGEST_RECORDS_TOTAL: &str = "retail_ingest_records_total";
    /// Records that could not be split into fields, by source system.
    pub const INGEST_MALFORMED_RECORDS_TOTAL: &str = "retail_ingest_malformed_records_total";
    /// Source files skipped because their content was already ingested.
    pub const INGEST_SKIPPED_FILES_TOTAL: &str = "retail_ingest_skipped_files_total";
    /// Duration of one Delta commit, by layer.
    pub const LAKE_COMMIT_DURATION_SECONDS: &str = "retail_lake_commit_duration_seconds";
    /// Duration of one pipeline stage, by stage.
    pub const PIPELINE_STAGE_DURATION_SECONDS: &str = "retail_pipeline_stage_duration_seconds";
    /// Rows written by the pipeline, by table.
    pub const PIPELINE_ROWS_WRITTEN_TOTAL: &str = "retail_pipeline_rows_written_total";
    /// Rows quarantined, by reason.
    pub const PIPELINE_QUARANTINED_ROWS_TOTAL: &str = "retail_pipeline_quarantined_rows_total";
    /// Bronze rows dropped as duplicates.
    pub const PIPELINE_DUPLICATE_ROWS_TOTAL: &str = "retail_pipeline_duplicate_rows_total";
    /// Pipeline runs, by status.
    pub const PIPELINE_RUNS_TOTAL: &str = "retail_pipeline_runs_total";
    /// Rows in each table after the latest run, by table.
    pub const LAKE_TABLE_ROWS: &str = "retail_lake_table_rows";
    /// Net revenue (gross minus returns) of all of gold, as the warehouse serves it.
    pub const GOLD_NET_REVENUE: &str = "retail_gold_net_revenue";
    /// Gross revenue of all of gold.
    pub const GOLD_GROSS_REVENUE: &str = "retail_gold_gross_revenue";
    /// The value of returns in all of gold.
    pub const GOLD_RETURNS_AMOUNT: &str = "retail_gold_returns_amount";
    /// Orders (purchase invoices) in all of gold.
    pub const GOLD_ORDERS: &str = "retail_gold_orders";
    /// Distinct customers in all of gold.
    pub const GOLD_CUSTOMERS: &str = "retail_gold_customers";
    /// HTTP requests, by route, method and status.
    pub const HTTP_REQUESTS_TOTAL: &str = "retail_http_requests_total";
    /// HTTP request latency, by route, method and status.
    pub const HTTP_REQUEST_DURATION_SECONDS: &str = "retail_http_request_duration_seconds";
    /// Analytics cache lookups, by tier (`process`, `shared`: Redis) and result (`hit`,
    /// `miss`); every lookup asks the process tier, a miss there asks the shared tier.
    pub const API_CACHE_TOTAL: &str = "retail_api_cache_total";
    /// Request handlers that panicked (each answered `500`; the server went on).
    pub const HTTP_HANDLER_PANICS_TOTAL: &str = "retail_http_handler_panics_total";
    /// Failures to reach the state shared by replicas (Redis); requests then fall back to
    /// in-process limits.
    pub const API_REDIS_ERRORS_TOTAL: &str = "retail_api_redis_errors_total";
    /// Audit events that could not be recorded (the metadata store failed); each is also
    /// logged as an error with its actor, action and target.
    pub const AUDIT_FAILURES_TOTAL: &str = "retail_audit_failures_total";
    /// Records a stream consumer committed to bronze, by stream.
    pub const STREAM_RECORDS_TOTAL: &str = "retail_stream_records_total";
    /// Records per second of a stream consumer's last round that wrote records, by stream.
    pub const STREAM_EVENTS_PER_SECOND: &str = "retail_stream_events_per_second";
    /// Messages a stream consumer has still to read, by stream and partition (a Kafka
    /// partition's end minus bronze's position; a RabbitMQ queue's waiting messages).
    pub const STREAM_LAG: &str = "retail_stream_lag";
    /// Whether a stream consumer reaches its broker (1) or not (0), by stream.
    pub const STREAM_CONNECTED: &str = "retail_stream_connected";

    /// Asset materialisations, by asset (or, for an asset writing several tables, table) and
    /// outcome (`materialized`, `up_to_date`, `failed`).
    pub const PIPELINE_ASSET_RUNS_TOTAL: &str = "retail_pipeline_asset_runs_total";
    /// Rows written by each asset.
    pub const PIPELINE_ASSET_ROWS_TOTAL: &str = "retail_pipeline_asset_rows_total";
    /// Whether the latest run's reconciliation balanced (bronze = silver + quarantine +
    /// duplicates): 1 or 0.
    pub const PIPELINE_RECONCILIATION_BALANCED: &str = "retail_pipeline_reconciliation_balanced";
    /// Warehouse calls, by catalogue query, backend and outcome (`ok`, `error`, `timeout`,
    /// `circuit_open`).
    pub const WAREHOUSE_QUERY_DURATION_SECONDS: &str = "retail_warehouse_query_duration_seconds";
    /// The warehouse circuit breaker: 0 closed, 1 trial (half-open), 2 open.
    pub const WAREHOUSE_BREAKER_STATE: &str = "retail_warehouse_breaker_state";
    /// Alerts firing and neither silenced nor inhibited, as of the alert manager's last tick.
    pub const ALERTS_FIRING: &str = "retail_alerts_firing";
    /// Alert notifications, by receiver and outcome (`delivered`, `failed`, `dropped` after
    /// the last attempt).
    pub const ALERT_NOTIFICATIONS_TOTAL: &str = "retail_alert_notifications_total";
    /// 1 while this process holds the scheduler's lease (runs the schedules and sensors).
    pub const SCHEDULER_LEASE_HELD: &str = "retail_scheduler_lease_held";
    /// Runs the scheduler started, by trigger (`schedule`, `sensor`) and how they ended.
    pub const SCHEDULER_RUNS_TOTAL: &str = "retail_scheduler_runs_total";
    /// An asset's lag behind the data upstream of it (`pipeline.freshness`), by asset.
    pub const ASSET_LAG_SECONDS: &str = "retail_asset_lag_seconds";
    /// 1 while an asset's lag is over its freshness policy's limit, by asset.
    pub const ASSET_FRESHNESS_BREACHED: &str = "retail_asset_freshness_breached";
    /// OpenLineage events sent, by outcome (`sent`, `failed`).
    pub const OPENLINEAGE_EVENTS_TOTAL: &str = "retail_openlineage_events_total";
    /// CPU time of the process (user and system).
    pub const PROCESS_CPU_SECONDS_TOTAL: &str = "process_cpu_seconds_total";
    /// Resident memory of the process.
    pub const PROCESS_RESIDENT_MEMORY_BYTES: &str = "process_resident_memory_bytes";
    /// File descriptors the process holds open.
    pub const PROCESS_OPEN_FDS: &str = "process_open_fds";
    /// The most file descriptors the process may open.
    pub const PROCESS_MAX_FDS: &str = "process_max_fds";

    /// Registers the description of every metric with the installed recorder.
    pub fn describe() {
        describe_counter!(INGEST_RECORDS_TOTAL, "records received by ingestion");
        describe_counter!(
            INGEST_MALFORMED_RECORDS_TOTAL,
            "records that could not be split"
        );
        describe_counter!(
            INGEST_SKIPPED_FILES_TOTAL,
            "files skipped as already ingested"
        );
        describe_histogram!(LAKE_COMMIT_DURATION_SECONDS, "duration of one Delta commit");
        describe_histogram!(
            PIPELINE_STAGE_DURATION_SECONDS,
            "duration of one pipeline stage"
        );
        describe_counter!(PIPELINE_ROWS_WRITTEN_TOTAL, "rows written by the pipeline");
        describe_counter!(
            PIPELINE_QUARANTINED_ROWS_TOTAL,
            "rows quarantined, by reason"
        );
        describe_counter!(
            PIPELINE_DUPLICATE_ROWS_TOTAL,
            "bronze rows dropped as duplicates"
        );
        describe_counter!(PIPELINE_RUNS_TOTAL, "pipeline runs, by status");
        describe_counter!(
            OPENLINEAGE_EVENTS_TOTAL,
            "OpenLineage run events sent to the configured transport, by outcome"
        );
        describe_gauge!(
            LAKE_TABLE_ROWS,
            "rows in each table, from the Delta logs, refreshed at most every 15 s"
        );
        describe_gauge!(GOLD_NET_REVENUE, "net revenue of all of gold, in pounds");
        describe_gauge!(
            GOLD_GROSS_REVENUE,
            "gross revenue of all of gold, in pounds"
        );
        describe_gauge!(
            GOLD_RETURNS_AMOUNT,
            "value of the returns in all of gold, in pounds"
        );
        describe_gauge!(GOLD_ORDERS, "orders (purchase invoices) in all of gold");
        describe_gauge!(GOLD_CUSTOMERS, "distinct customers in all of gold");
        describe_counter!(
            HTTP_REQUESTS_TOTAL,
            "HTTP requests by route, method and status"
        );
        describe_histogram!(
            HTTP_REQUEST_DURATION_SECONDS,
            "HTTP request latency by route, method and status"
        );
        describe_counter!(
            API_CACHE_TOTAL,
            "analytics cache lookups by tier and result"
        );
        describe_counter!(
            HTTP_HANDLER_PANICS_TOTAL,
            "request handlers that panicked and answered 500"
        );
        describe_counter!(
            API_REDIS_ERRORS_TOTAL,
            "failures to reach the state shared by replicas"
        );
        describe_counter!(
            STREAM_RECORDS_TOTAL,
            "records a stream consumer committed to bronze"
        );
        describe_gauge!(
            STREAM_EVENTS_PER_SECOND,
            "records per second of a stream consumer's last round that wrote records"
        );
        describe_gauge!(
            STREAM_LAG,
            "messages a stream consumer has still to read, by partition"
        );
        describe_gauge!(
            STREAM_CONNECTED,
            "whether a stream consumer reaches its broker"
        );
        describe_counter!(
            PIPELINE_ASSET_RUNS_TOTAL,
            "asset materialisations by asset and outcome"
        );
        describe_counter!(PIPELINE_ASSET_ROWS_TOTAL, "rows written by each asset");
        describe_gauge!(
            PIPELINE_RECONCILIATION_BALANCED,
            "whether the latest run's reconciliation balanced (1) or not (0)"
        );
        describe_histogram!(
            WAREHOUSE_QUERY_DURATION_SECONDS,
            "warehouse calls by catalogue query, backend and outcome"
        );
        describe_gauge!(
            WAREHOUSE_BREAKER_STATE,
            "the warehouse circuit breaker: 0 closed, 1 trial, 2 open"
        );
        describe_counter!(
            PROCESS_CPU_SECONDS_TOTAL,
            "CPU time of the process, user and system"
        );
        describe_gauge!(
            PROCESS_RESIDENT_MEMORY_BYTES,
            "resident memory of the process"
        );
        describe_counter!(
            AUDIT_FAILURES_TOTAL,
            "audit events that could not be recorded"
        );
        describe_gauge!(PROCESS_OPEN_FDS, "file descriptors the process holds open");
        describe_gauge!(
            ALERTS_FIRING,
            "alerts firing and neither silenced nor inhibited"
        );
        describe_counter!(
            ALERT_NOTIFICATIONS_TOTAL,
            "alert notifications by receiver and outcome"
        );
        describe_gauge!(
            PROCESS_MAX_FDS,
            "the most file descriptors the process may open"
        );
        describe_gauge!(
            SCHEDULER_LEASE_HELD,
            "1 while this process holds the scheduler's lease"
        );
        describe_counter!(
            SCHEDULER_RUNS_TOTAL,
            "runs the scheduler started by trigger and status"
        );
        describe_gauge!(
            ASSET_LAG_SECONDS,
            "an asset's lag behind the data upstream of it, by asset"
        );
        describe_gauge!(
            ASSET_FRESHNESS_BREACHED,
            "1 while an asset's lag is over its freshness policy's limit, by asset"
        );
    }

    /// Notes an asset's lag and whether it breaches its freshness policy.
    pub fn set_asset_freshness(asset: &str, lag_seconds: u64, breached: bool) {
        gauge!(ASSET_LAG_SECONDS, "asset" => asset.to_owned()).set(lag_seconds as f64);
        gauge!(ASSET_FRESHNESS_BREACHED, "asset" => asset.to_owned()).set(if breached {
            1.0
        } else {
            0.0
        });
    }

    /// Notes whether this process holds the scheduler's lease.
    pub fn set_scheduler_lease_held(held: bool) {
        gauge!(SCHEDULER_LEASE_HELD).set(if held { 1.0 } else { 0.0 });
    }

    /// Counts a run the scheduler started, by trigger and how it ended.
    pub fn record_scheduler_run(trigger: &str, status: &'static str) {
        counter!(SCHEDULER_RUNS_TOTAL, "trigger" => trigger.to_owned(), "status" => status)
            .increment(1);
    }

    /// Notes how many alerts fire, neither silenced nor inhibited.
    pub fn set_alerts_firing(count: usize) {
        gauge!(ALERTS_FIRING).set(count as f64);
    }

    /// Counts an alert notification's delivery outcome.
    pub fn record_alert_notification(receiver: &str, outcome: &'static str) {
        counter!(ALERT_NOTIFICATIONS_TOTAL, "receiver" => receiver.to_owned(), "outcome" => outcome)
            .increment(1);
    }

    /// One asset materialisation's outcome and the rows it wrote.
    pub fn record_asset(asset: &str, status: &str, rows: u64) {
        counter!(PIPELINE_ASSET_RUNS_TOTAL, "asset" => asset.to_owned(), "status" => status.to_owned())
            .increment(1);
        counter!(PIPELINE_ASSET_ROWS_TOTAL, "asset" => asset.to_owned()).increment(rows);
    }

    /// Whether the latest reconciliation balanced.
    pub fn set_reconciliation(balanced: bool) {
        gauge!(PIPELINE_RECONCILIATION_BALANCED).set(if balanced { 1.0 } else { 0.0 });
    }

    /// One warehouse call.
    pub fn record_warehouse_query(
        query: &'static str,
        backend: &'static str,
        outcome: &'static str,
        seconds: f64,
    ) {
        histogram!(
            WAREHOUSE_QUERY_DURATION_SECONDS,
            "query" => query,
            "backend" => backend,
            "outcome" => outcome
        )
        .record(seconds);
    }

    /// The breaker's state: 0 closed, 1 trial, 2 open.
    pub fn set_breaker_state(state: u8) {
        gauge!(WAREHOUSE_BREAKER_STATE).set(f64::from(state));
    }

    /// Reads the process's CPU time, resident memory and file descriptors (Linux `/proc`;
    /// elsewhere nothing is recorded).
    pub fn record_process() {
        let Some(process) = crate::process::Process::read() else {
            return;
        };
        counter!(PROCESS_CPU_SECONDS_TOTAL).absolute(process.cpu_centiseconds / 100);
        gauge!(PROCESS_RESIDENT_MEMORY_BYTES).set(process.resident_bytes as f64);
        gauge!(PROCESS_OPEN_FDS).set(process.open_fds as f64);
        if let Some(max) = process.max_fds {
            gauge!(PROCESS_MAX_FDS).set(max as f64);
        }
    }

    /// Counts a stream round's committed records and its rate.
    pub fn record_stream_round(stream: &str, records: u64, seconds: f64) {
        counter!(STREAM_RECORDS_TOTAL, "stream" => stream.to_owned()).increment(records);
        if records > 0 && seconds > 0.0 {
            gauge!(STREAM_EVENTS_PER_SECOND, "stream" => stream.to_owned())
                .set(records as f64 / seconds);
        }
    }

    /// Sets a stream partition's lag.
    pub fn set_stream_lag(stream: &str, partition: &str, lag: i64) {
        gauge!(STREAM_LAG, "stream" => stream.to_owned(), "partition" => partition.to_owned())
            .set(lag as f64);
    }

    /// Sets whether a stream consumer reaches its broker.
    pub fn set_stream_connected(stream: &str, connected: bool) {
        gauge!(STREAM_CONNECTED, "stream" => stream.to_owned()).set(f64::from(u8::from(connected)));
    }

    /// Counts records received from a source system.
    pub fn record_ingested(source: &'static str, records: u64) {
        counter!(INGEST_RECORDS_TOTAL, "source" => source).increment(records);
    }

    /// Counts malformed records from a source system.
    pub fn record_malformed(source: &'static str, records: u64) {
        counter!(INGEST_MALFORMED_RECORDS_TOTAL, "source" => source).increment(records);
    }

    /// Counts a skipped, already ingested file.
    pub fn record_skipped_file() {
        counter!(INGEST_SKIPPED_FILES_TOTAL).increment(1);
    }

    /// Records the duration of a Delta commit on a layer (`bronze`, `silver`, `gold`).
    pub fn record_commit(layer: &'static str, seconds: f64) {
        histogram!(LAKE_COMMIT_DURATION_SECONDS, "layer" => layer).record(seconds);
    }

    /// Records the duration of a pipeline stage (`silver`, `gold`).
    pub fn record_stage(stage: &'static str, seconds: f64) {
        histogram!(PIPELINE_STAGE_DURATION_SECONDS, "stage" => stage).record(seconds);
    }

    /// Counts rows written to a table.
    pub fn record_rows_written(table: &'static str, rows: u64) {
        counter!(PIPELINE_ROWS_WRITTEN_TOTAL, "table" => table).increment(rows);
    }

    /// Counts quarantined rows for one reason code.
    pub fn record_quarantined(reason: &'static str, rows: u64) {
        counter!(PIPELINE_QUARANTINED_ROWS_TOTAL, "reason" => reason).increment(rows);
    }

    /// Counts bronze rows dropped as duplicates.
    pub fn record_duplicates(rows: u64) {
        counter!(PIPELINE_DUPLICATE_ROWS_TOTAL).increment(rows);
    }

    /// Counts an OpenLineage event by outcome (`sent`, `failed`).
    pub fn record_openlineage_event(outcome: &'static str) {
        counter!(OPENLINEAGE_EVENTS_TOTAL, "outcome" => outcome).increment(1);
    }

    /// Counts a finished run by status (`succeeded`, `failed`, `up_to_date`).
    pub fn record_run(status: &'static str) {
        counter!(PIPELINE_RUNS_TOTAL, "status" => status).increment(1);
    }

    /// Sets the row count of a table.
    pub fn set_table_rows(table: &'static str, rows: u64) {
        gauge!(LAKE_TABLE_ROWS, "table" => table).set(rows as f64);
    }

    /// Sets the business figures of all of gold.
    pub fn set_gold_figures(
        net_revenue: f64,
        gross_revenue: f64,
        returns_amount: f64,
        orders: f64,
        customers: f64,
    ) {
        gauge!(GOLD_NET_REVENUE).set(net_revenue);
        gauge!(GOLD_GROSS_REVENUE).set(gross_revenue);
        gauge!(GOLD_RETURNS_AMOUNT).set(returns_amount);
        gauge!(GOLD_ORDERS).set(orders);
        gauge!(GOLD_CUSTOMERS).set(customers);
    }

    /// Counts an HTTP request and records its latency; `route` is the matched route pattern
    /// (bounded), never the raw path.
    pub fn record_http_request(route: &str, method: &str, status: u16, seconds: f64) {
        let record = |series: &HttpSeries| {
            series.requests.increment(1);
            series.duration.record(seconds);
        };
        match super::prometheus::series() {
            Some(series) => series.http(route, method, status, record),
            None => record(&HttpSeries::register(route, method, status)),
        }
    }

    /// Counts a request handler that panicked.
    pub fn record_handler_panic() {
        counter!(HTTP_HANDLER_PANICS_TOTAL).increment(1);
    }

    /// Counts an analytics cache lookup in one tier (`process`, `shared`): `hit` or `miss`.
    pub fn record_cache(tier: &'static str, result: &'static str) {
        match super::prometheus::series() {
            Some(series) => series.cache(tier, result).increment(1),
            None => counter!(API_CACHE_TOTAL, "tier" => tier, "result" => result).increment(1),
        }
    }

    /// The two series of one (route, method, status).
    pub(crate) struct HttpSeries {
        requests: metrics::Counter,
        duration: metrics::Histogram,
    }

    impl HttpSeries {
        /// Looks the series up in the installed recorder (labels built, key hashed).
        pub(crate) fn register(route: &str, method: &str, status: u16) -> Self {
            let labels = [
                ("route", route.to_owned()),
                ("method", method.to_owned()),
                ("status", status.to_string()),
            ];
            Self {
                requests: counter!(HTTP_REQUESTS_TOTAL, &labels),
                duration: histogram!(HTTP_REQUEST_DURATION_SECONDS, &labels),
            }
        }
    }

    /// Counts a failure to reach the state shared by replicas.
    pub fn record_shared_state_error() {
        counter!(API_REDIS_ERRORS_TOTAL).increment(1);
    }

    /// Counts an audit event that could not be recorded.
    pub fn record_audit_failure() {
        counter!(AUDIT_FAILURES_TOTAL).increment(1);
    }
}

/// The Prometheus exporter: one recorder per process, rendered at `/metrics`.
pub mod prometheus {
    use std::collections::HashMap;
    use std::sync::{Arc, OnceLock, RwLock};

    use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};

    use super::metrics::HttpSeries;

    /// The series of each route, by (method, status): routes are few, and each sees few pairs.
    type ByRoute = HashMap<Box<str>, Vec<(Box<str>, u16, Arc<HttpSeries>)>>;

    /// The handles of the series recorded on every request, kept once looked up, so a request
    /// costs two atomic additions and a read lock instead of building label sets and hashing
    /// them into the registry (a tenth of the time: `examples/record_cost.rs`). Only for the
    /// recorder installed here: handles looked up before it would record nowhere.
    pub(crate) struct Series {
        http: RwLock<ByRoute>,
        cache: [metrics::Counter; 4],
    }

    impl Series {
        fn new() -> Self {
            let cache = |tier: &'static str, result: &'static str| metrics::counter!(super::metrics::API_CACHE_TOTAL, "tier" => tier, "result" => result);
            Self {
                http: RwLock::default(),
                cache: [
                    cache("process", "hit"),
                    cache("process", "miss"),
                    cache("shared", "hit"),
                    cache("shared", "miss"),
                ],
            }
        }

        /// Runs `record` on the series of (route, method, status), looking it up only once.
        pub(crate) fn http(
            &self,
            route: &str,
            method: &str,
            status: u16,
            record: impl Fn(&HttpSeries),
        ) {
            let find = |map: &ByRoute| {
                map.get(route).and_then(|pairs| {
                    pairs
                        .iter()
                        .find(|(m, s, _)| **m == *method && *s == status)
                        .map(|(_, _, series)| Arc::clone(series))
                })
            };
            let known = find(
                &self
                    .http
                    .read()
                    .unwrap_or_else(std::sync::PoisonError::into_inner),
            );
            let series = known.unwrap_or_else(|| {
                let mut map = self
                    .http
                    .write()
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
                find(&map).unwrap_or_else(|| {
                    let series = Arc::new(HttpSeries::register(route, method, status));
                    map.entry(route.into()).or_default().push((
                        method.into(),
                        status,
                        Arc::clone(&series),
                    ));
                    series
                })
            });
            record(&series);
        }

        /// The counter of one cache tier and result.
        pub(crate) fn cache(&self, tier: &str, result: &str) -> &metrics::Counter {
            let index = match (tier, result) {
                ("process", "hit") => 0,
                ("process", "miss") => 1,
                ("shared", "hit") => 2,
                _ => 3,
            };
            &self.cache[index]
        }
    }

    static SERIES: OnceLock<Series> = OnceLock::new();

    /// The cached series, when this module's recorder is the one installed.
    pub(crate) fn series() -> Option<&'static Series> {
        SERIES.get()
    }

    /// Installs the process-wide Prometheus recorder (once; later calls return the same
    /// handle) and returns a handle that renders every metric in the text format.
    pub fn handle() -> PrometheusHandle {
        static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
        HANDLE
            .get_or_init(|| {
                let recorder = PrometheusBuilder::new()
                    .set_buckets(&[
                        0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0,
                        2.5, 5.0, 10.0,
                    ])
                    .expect("static buckets are valid")
                    .build_recorder();
                let handle = recorder.handle();
                // Another recorder may be installed already (a test binary): then metrics from
                // the facade go there, this handle renders what it saw, and nothing is cached.
                if metrics::set_global_recorder(recorder).is_ok() {
                    let _ = SERIES.set(Series::new());
                }
                super::metrics::describe();
                handle
            })
            .clone()
    }
}

//! The tracing subscriber: logs to standard error (text, JSON, or JSON with Elastic Common
//! Schema field names), and spans exported over OTLP when an endpoint is configured.
//!
//! With an exporter, every span of the platform (`request`, `pipeline_run`, `asset`, `stage`,
//! `warehouse_query`, `cache_lookup`, `stream_batch`, ...) becomes an OpenTelemetry span, the
//! W3C `traceparent` of an incoming request continues the caller's trace
//! ([`continue_trace`]), and JSON logs carry `trace_id` and `span_id`. Without one, nothing of
//! OpenTelemetry is installed and spans cost what `tracing` costs.

use std::time::Duration;

use opentelemetry::propagation::{Extractor, TextMapPropagator as _};
use opentelemetry::trace::{TraceContextExt as _, TracerProvider as _};
use opentelemetry_otlp::{Protocol, WithExportConfig as _};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::{Sampler, SdkTracerProvider};
use tracing_opentelemetry::OpenTelemetrySpanExt as _;
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt as _;
use tracing_subscriber::{EnvFilter, Layer as _, Registry};

use crate::logs::JsonLogs;

/// How logs are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// Human-readable, for a terminal.
    Pretty,
    /// One JSON object per line: `timestamp`, `level`, `target`, `message`, the event's
    /// fields, the enclosing spans' fields under `spans`, `trace_id` and `span_id`.
    Json,
    /// One JSON object per line with Elastic Common Schema names (`@timestamp`, `log.level`,
    /// `log.logger`, `message`, `service.name`, `trace.id`, `span.id`, the fields under
    /// `retail`), for an ELK stack.
    Ecs,
}

/// How spans are sent over OTLP.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OtlpProtocol {
    /// gRPC (a collector's port 4317).
    Grpc,
    /// HTTP with protobuf bodies (port 4318, path `/v1/traces`).
    HttpProtobuf,
}

/// Where and how spans are exported.
#[derive(Debug, Clone, PartialEq)]
pub struct Otlp {
    /// `http://127.0.0.1:4317` (gRPC) or `http://127.0.0.1:4318` (HTTP; `/v1/traces` is added
    /// when the URL has no path).
    pub endpoint: String,
    /// The protocol.
    pub protocol: OtlpProtocol,
    /// The share of new traces recorded (0 to 1); a caller's sampled trace is always
    /// continued.
    pub sample_ratio: f64,
}

/// The subscriber's options.
#[derive(Debug, Clone, PartialEq)]
pub struct Options {
    /// A filter directive (`info`, `warn,retail=info`, `retail_pipeline=debug`); it applies to
    /// spans and logs alike.
    pub filter: String,
    /// How logs are written.
    pub format: LogFormat,
    /// The `service.name` of spans and ECS logs.
    pub service: String,
    /// Export spans; `None`: no exporter.
    pub otlp: Option<Otlp>,
}

/// Keeps the exporter alive; dropping it sends the spans still buffered (at most 5 s).
#[must_use = "spans still buffered are lost unless the guard is dropped at the end"]
#[derive(Debug, Default)]
pub struct Guard {
    provider: Option<SdkTracerProvider>,
}

impl Guard {
    /// Sends the spans buffered so far.
    pub fn flush(&self) {
        if let Some(provider) = &self.provider
            && let Err(error) = provider.force_flush()
        {
            eprintln!("warning: spans could not be exported: {error}");
        }
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        if let Some(provider) = self.provider.take()
            && let Err(error) = provider.shutdown_with_timeout(Duration::from_secs(5))
        {
            eprintln!("warning: spans could not be exported: {error}");
        }
    }
}

/// The OTLP exporter's error, naming the endpoint.
#[derive(Debug)]
pub struct ExporterError {
    endpoint: String,
    detail: String,
}

impl std::fmt::Display for ExporterError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "cannot export spans to {}: {}",
            self.endpoint, self.detail
        )
    }
}

impl std::error::Error for ExporterError {}

fn provider(otlp: &Otlp, service: &str) -> Result<SdkTracerProvider, ExporterError> {
    let error = |detail: String| ExporterError {
        endpoint: otlp.endpoint.clone(),
        detail,
    };
    let exporter = match otlp.protocol {
        OtlpProtocol::Grpc => opentelemetry_otlp::SpanExporter::builder()
            .with_tonic()
            .with_endpoint(otlp.endpoint.clone())
            .build(),
        OtlpProtocol::HttpProtobuf => opentelemetry_otlp::SpanExporter::builder()
            .with_http()
            .with_protocol(Protocol::HttpBinary)
            .with_endpoint(traces_url(&otlp.endpoint))
            .build(),
    }
    .map_err(|e| error(e.to_string()))?;
    Ok(SdkTracerProvider::builder()
        .with_sampler(Sampler::ParentBased(Box::new(Sampler::TraceIdRatioBased(
            otlp.sample_ratio.clamp(0.0, 1.0),
        ))))
        .with_resource(
            Resource::builder()
                .with_service_name(service.to_owned())
                .build(),
        )
        .with_batch_exporter(exporter)
        .build())
}

/// An HTTP endpoint without a path gets the traces path.
fn traces_url(endpoint: &str) -> String {
    let trimmed = endpoint.trim_end_matches('/');
    let path_start = trimmed.find("://").map_or(0, |at| at + 3);
    if trimmed[path_start..].contains('/') {
        trimmed.to_owned()
    } else {
        format!("{trimmed}/v1/traces")
    }
}

/// Installs the global subscriber. Safe to call twice: the second call installs nothing and
/// returns an empty guard. With an OTLP exporter it must run inside a tokio runtime (gRPC
/// connections live on it).
///
/// # Errors
///
/// When the exporter cannot be built (a malformed endpoint).
pub fn init(options: &Options) -> Result<Guard, ExporterError> {
    let filter = EnvFilter::try_new(&options.filter).unwrap_or_else(|_| EnvFilter::new("info"));
    let provider = options
        .otlp
        .as_ref()
        .map(|otlp| provider(otlp, &options.service))
        .transpose()?;
    let otel = provider.as_ref().map(|provider| {
        // Per span, only what a trace shows: no busy/idle timings (two clock reads on every
        // poll of a future), no thread attributes, and no activation of the OpenTelemetry
        // context on entry (the platform reads each span's own context, never the
        // current one). Each costs on every span, sampled or not (ADR 0009).
        tracing_opentelemetry::layer()
            .with_tracer(provider.tracer("retail"))
            .with_tracked_inactivity(false)
            .with_threads(false)
            .with_context_activation(false)
    });
    let logs = match options.format {
        LogFormat::Pretty => tracing_subscriber::fmt::layer()
            .with_writer(std::io::stderr)
            .with_target(false)
            .boxed(),
        LogFormat::Json | LogFormat::Ecs => tracing_subscriber::fmt::layer()
            .with_writer(std::io::stderr)
            .fmt_fields(tracing_subscriber::fmt::format::JsonFields::new())
            .event_format(JsonLogs::new(
                options.format == LogFormat::Ecs,
                &options.service,
            ))
            .boxed(),
    };
    let installed = Registry::default()
        .with(filter)
        .with(otel)
        .with(logs)
        .try_init()
        .is_ok();
    if !installed {
        return Ok(Guard::default());
    }
    if provider.is_some() {
        opentelemetry::global::set_text_map_propagator(TraceContextPropagator::new());
    }
    Ok(Guard { provider })
}

/// Reads W3C trace context from request headers by name.
struct Headers<'a, F: Fn(&str) -> Option<&'a str>>(F);

impl<'a, F: Fn(&str) -> Option<&'a str>> Extractor for Headers<'a, F> {
    fn get(&self, key: &str) -> Option<&str> {
        (self.0)(key)
    }

    fn keys(&self) -> Vec<&str> {
        vec!["traceparent", "tracestate"]
    }
}

/// Makes `span` a child of the caller's span named by the `traceparent` (and `tracestate`)
/// header that `header` returns; does nothing without one, or without an exporter.
pub fn continue_trace<'a>(span: &tracing::Span, header: impl Fn(&str) -> Option<&'a str>) {
    if header("traceparent").is_none() {
        return;
    }
    let parent = TraceContextPropagator::new().extract(&Headers(header));
    if parent.span().span_context().is_valid() {
        // Fails only without an OpenTelemetry layer: then there is no trace to continue.
        let _ = span.set_parent(parent);
    }
}

/// The trace id of `span` (32 hex digits), when spans are exported.
pub fn trace_id(span: &tracing::Span) -> Option<String> {
    let context = span.context();
    let span_context = context.span().span_context().clone();
    span_context
        .is_valid()
        .then(|| span_context.trace_id().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_http_endpoint_without_a_path_gets_the_traces_path() {
        assert_eq!(
            traces_url("http://127.0.0.1:4318"),
            "http://127.0.0.1:4318/v1/traces"
        );
        assert_eq!(
            traces_url("http://127.0.0.1:4318/"),
            "http://127.0.0.1:4318/v1/traces"
        );
        assert_eq!(
            traces_url("https://otel.example.com/custom/path"),
            "https://otel.example.com/custom/path"
        );
    }
}

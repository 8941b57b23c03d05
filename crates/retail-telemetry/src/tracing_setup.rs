//! The tracing subscriber: logs to standard error (text, JSON, or JSON with Elastic Common
//! Schema field names), and spans exported over OTLP when an endpoint is configured.
//!
//! With an exporter, every span of the platform (`request`, `pipeline_run`, `asset`, `stage`,
//! `warehouse_query`, `cache_lookup`, `stream_batch`, ...) becomes an OpenTelemetry span, the
//! W3C `traceparent` of an incoming request continues the caller's trace
//! ([`continued_span`]), and JSON logs carry `trace_id` and `span_id`. Without one, nothing of
//! OpenTelemetry is installed and spans cost what `tracing` costs.
//!
//! Sampling is decided when a trace's first span opens ([`Sampling`]): a trace that is not
//! sampled never reaches the OpenTelemetry layer, so its spans cost what they cost without an
//! exporter (ADR 0009).

use std::cell::Cell;
use std::hash::BuildHasher as _;
use std::time::Duration;

use opentelemetry::propagation::{Extractor, TextMapPropagator as _};
use opentelemetry::trace::{TraceContextExt as _, TracerProvider as _};
use opentelemetry_otlp::{Protocol, WithExportConfig as _};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::{Sampler, SdkTracerProvider};
use tracing::level_filters::LevelFilter;
use tracing::subscriber::Interest;
use tracing::{Metadata, Subscriber, span};
use tracing_opentelemetry::OpenTelemetrySpanExt as _;
use tracing_subscriber::filter::Targets;
use tracing_subscriber::layer::{Context, Filter, SubscriberExt as _};
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::util::SubscriberInitExt as _;
use tracing_subscriber::{EnvFilter, Layer, Registry};

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
    // Sampling is decided before a span reaches the SDK (`Sampling`): whatever reaches it is
    // recorded, unless a caller's traceparent says its trace is not sampled.
    Ok(SdkTracerProvider::builder()
        .with_sampler(Sampler::ParentBased(Box::new(Sampler::AlwaysOn)))
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
    let filter = levels(&options.filter);
    let provider = options
        .otlp
        .as_ref()
        .map(|otlp| provider(otlp, &options.service))
        .transpose()?;
    let otel = provider.as_ref().map(|provider| {
        let ratio = options.otlp.as_ref().map_or(1.0, |otlp| otlp.sample_ratio);
        otel_layer(provider, ratio, levels(&options.filter))
    });
    let logs = match options.format {
        LogFormat::Pretty => tracing_subscriber::fmt::layer()
            .with_writer(std::io::stderr)
            .with_target(false)
            .boxed(),
        LogFormat::Json | LogFormat::Ecs => tracing_subscriber::fmt::layer()
            .with_writer(std::io::stderr)
            .fmt_fields(crate::logs::SpanFields)
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
        EXPORTING.store(true, std::sync::atomic::Ordering::Relaxed);
    }
    Ok(Guard { provider })
}

/// The level filter of a directive (`info` when it does not parse).
fn levels(directive: &str) -> Levels {
    Levels::new(directive)
}

/// The subscriber's level filter, from a directive such as `warn,retail=info`.
///
/// A directive of targets and levels only is a [`Targets`] filter: decided once per call site,
/// it adds nothing to a span's life. One that filters by span or field (`retail[request]=debug`)
/// needs an [`EnvFilter`], which follows every span it matches and, to know which those are,
/// takes a lock on every span's creation, entry, exit and close: two spans a request cost the
/// cached analytics endpoint about 2 % of its throughput in locks alone (ADR 0009).
#[derive(Debug)]
#[expect(
    clippy::large_enum_variant,
    reason = "one or two per process, built at start"
)]
pub enum Levels {
    /// Targets and levels.
    Targets(Targets),
    /// Span and field directives.
    Env(EnvFilter),
}

impl Levels {
    /// Parses `directive` (`info` when it does not parse).
    #[must_use]
    pub fn new(directive: &str) -> Self {
        // `Targets` reads `target[span]=level` as a target named `target[span]`, and an empty
        // directive as "nothing", where `EnvFilter` reads errors only: those stay with it.
        let plain = !directive.trim().is_empty() && !directive.contains(['[', '{']);
        match directive.parse::<Targets>() {
            Ok(targets) if plain => Self::Targets(targets),
            _ => {
                Self::Env(EnvFilter::try_new(directive).unwrap_or_else(|_| EnvFilter::new("info")))
            }
        }
    }
}

impl<S> Layer<S> for Levels
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn register_callsite(&self, metadata: &'static Metadata<'static>) -> Interest {
        match self {
            Self::Targets(targets) => Layer::<S>::register_callsite(targets, metadata),
            Self::Env(env) => Layer::<S>::register_callsite(env, metadata),
        }
    }

    fn enabled(&self, metadata: &Metadata<'_>, cx: Context<'_, S>) -> bool {
        match self {
            Self::Targets(targets) => Layer::<S>::enabled(targets, metadata, cx),
            Self::Env(env) => Layer::<S>::enabled(env, metadata, cx),
        }
    }

    fn max_level_hint(&self) -> Option<LevelFilter> {
        match self {
            Self::Targets(targets) => Layer::<S>::max_level_hint(targets),
            Self::Env(env) => Layer::<S>::max_level_hint(env),
        }
    }

    fn on_new_span(&self, attrs: &span::Attributes<'_>, id: &span::Id, cx: Context<'_, S>) {
        if let Self::Env(env) = self {
            env.on_new_span(attrs, id, cx);
        }
    }

    fn on_record(&self, id: &span::Id, values: &span::Record<'_>, cx: Context<'_, S>) {
        if let Self::Env(env) = self {
            env.on_record(id, values, cx);
        }
    }

    fn on_enter(&self, id: &span::Id, cx: Context<'_, S>) {
        if let Self::Env(env) = self {
            env.on_enter(id, cx);
        }
    }

    fn on_exit(&self, id: &span::Id, cx: Context<'_, S>) {
        if let Self::Env(env) = self {
            env.on_exit(id, cx);
        }
    }

    fn on_close(&self, id: span::Id, cx: Context<'_, S>) {
        if let Self::Env(env) = self {
            Layer::<S>::on_close(env, id, cx);
        }
    }
}

impl Levels {
    /// Whether a call site can ever pass.
    fn callsite<S: Subscriber + for<'a> LookupSpan<'a>>(
        &self,
        metadata: &'static Metadata<'static>,
    ) -> Interest {
        match self {
            Self::Targets(targets) => Filter::<S>::callsite_enabled(targets, metadata),
            Self::Env(env) => Filter::<S>::callsite_enabled(env, metadata),
        }
    }

    /// The most verbose level that can pass.
    fn hint<S: Subscriber + for<'a> LookupSpan<'a>>(&self) -> Option<LevelFilter> {
        match self {
            Self::Targets(targets) => Filter::<S>::max_level_hint(targets),
            Self::Env(env) => Filter::<S>::max_level_hint(env),
        }
    }
}

/// The OpenTelemetry layer, seeing only the spans of sampled traces.
fn otel_layer<S>(provider: &SdkTracerProvider, sample_ratio: f64, levels: Levels) -> impl Layer<S>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    // Per span, only what a trace shows: no busy/idle timings (two clock reads on every poll
    // of a future), no thread attributes, and no activation of the OpenTelemetry context on
    // entry (the platform reads each span's own context, never the current one). Each costs
    // on every span (ADR 0009).
    tracing_opentelemetry::layer()
        .with_tracer(provider.tracer("retail"))
        .with_tracked_inactivity(false)
        .with_threads(false)
        .with_context_activation(false)
        .with_filter(Sampling::new(sample_ratio, levels))
}

/// Whether the global subscriber exports spans.
static EXPORTING: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

thread_local! {
    /// The caller's decision for the next root span opened on this thread ([`continued_span`]).
    static CALLER_SAMPLED: Cell<Option<bool>> = const { Cell::new(None) };
    /// A xorshift generator's state, seeded per thread.
    static DRAWS: Cell<u64> = Cell::new(
        std::collections::hash_map::RandomState::new().hash_one(std::thread::current().id()) | 1,
    );
}

/// Decides which traces the OpenTelemetry layer sees, when a trace's first span opens: a root
/// span (no span is current) is sampled with probability `ratio`, or as its caller's
/// `traceparent` says ([`continued_span`]); a span inside a sampled trace is seen; a span or
/// event inside a trace that was not sampled is not, nor is an event outside any span.
///
/// Deciding here rather than in the SDK's sampler keeps unsampled spans out of
/// `tracing-opentelemetry`, which otherwise builds every span (attributes, ids, a start time)
/// and only drops it when it closes: exporting 10 % of traces then cost 18 % of the cached
/// endpoint's throughput.
///
/// A span opened with an explicit `parent:` follows the span that is current where it is
/// opened, not its parent (the platform opens none that way; a dependency that does, at a level
/// the filter lets through, starts or joins the trace current at that point).
///
/// It also applies the subscriber's level filter per call site, so that the call sites the
/// filter turns off stay off for good (a filter without an opinion there would make every
/// `trace!` of every dependency ask it, at every call).
#[derive(Debug)]
pub struct Sampling {
    ratio: f64,
    levels: Levels,
}

impl Sampling {
    /// Samples a share `ratio` (0 to 1) of new traces among the spans `levels` lets through.
    #[must_use]
    pub fn new(ratio: f64, levels: Levels) -> Self {
        Self {
            ratio: if ratio.is_nan() {
                0.0
            } else {
                ratio.clamp(0.0, 1.0)
            },
            levels,
        }
    }

    fn draw(&self) -> bool {
        if self.ratio >= 1.0 {
            return true;
        }
        if self.ratio <= 0.0 {
            return false;
        }
        let value = DRAWS.with(|state| {
            let mut x = state.get();
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            state.set(x);
            x
        });
        // The top 53 bits as a fraction in [0, 1).
        #[allow(clippy::cast_precision_loss)]
        let fraction = (value >> 11) as f64 / (1_u64 << 53) as f64;
        fraction < self.ratio
    }
}

impl<S> Filter<S> for Sampling
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn enabled(&self, metadata: &Metadata<'_>, cx: &Context<'_, S>) -> bool {
        // With a per-layer filter, `lookup_current` is the nearest enclosing span this filter
        // let through, and `current_span` the innermost span of all.
        if cx.lookup_current().is_some() {
            return true;
        }
        if metadata.is_event() || cx.current_span().id().is_some() {
            return false;
        }
        CALLER_SAMPLED
            .with(Cell::take)
            .unwrap_or_else(|| self.draw())
    }

    fn callsite_enabled(&self, metadata: &'static Metadata<'static>) -> Interest {
        // Off where the levels say so; elsewhere decided per span, never per call site.
        if self.levels.callsite::<S>(metadata).is_never() {
            Interest::never()
        } else {
            Interest::sometimes()
        }
    }

    fn max_level_hint(&self) -> Option<LevelFilter> {
        self.levels.hint::<S>()
    }
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

/// Opens a request's root span with `open` and continues the caller's trace named by the
/// `traceparent` (and `tracestate`) header that `header` returns: the span becomes the
/// caller's child, and is recorded exactly when the caller's trace is sampled. Without a valid
/// `traceparent`, the span starts a trace of its own, sampled by the configured ratio. Without
/// an exporter, this is `open()`.
pub fn continued_span<'a>(
    header: impl Fn(&str) -> Option<&'a str>,
    open: impl FnOnce() -> tracing::Span,
) -> tracing::Span {
    let parent = header("traceparent")
        .map(|_| TraceContextPropagator::new().extract(&Headers(&header)))
        .filter(|parent| parent.span().span_context().is_valid());
    let Some(parent) = parent else {
        return open();
    };
    let sampled = parent.span().span_context().is_sampled();
    CALLER_SAMPLED.with(|decision| decision.set(Some(sampled)));
    let span = open();
    // Cleared also when the span was not opened (filtered out by level, or no span at all).
    CALLER_SAMPLED.with(|decision| decision.set(None));
    if sampled {
        // Fails only without an OpenTelemetry layer: then there is no trace to continue.
        let _ = span.set_parent(parent);
    }
    span
}

/// The trace id a caller's W3C `traceparent` names, if it is well formed and spans are
/// exported (the global subscriber of [`init`] has an exporter).
pub fn callers_trace_id<'a>(header: impl Fn(&str) -> Option<&'a str>) -> Option<String> {
    if !EXPORTING.load(std::sync::atomic::Ordering::Relaxed) {
        return None;
    }
    header("traceparent")?;
    let parent = TraceContextPropagator::new().extract(&Headers(header));
    let span_context = parent.span().span_context().clone();
    span_context
        .is_valid()
        .then(|| span_context.trace_id().to_string())
}

/// The trace id of `span` (32 hex digits), when its trace is sampled and exported.
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

    use std::sync::{Arc, Mutex};

    use opentelemetry_sdk::error::OTelSdkResult;
    use opentelemetry_sdk::trace::{SpanData, SpanExporter};

    /// Keeps what it is given.
    #[derive(Debug, Clone, Default)]
    struct Kept(Arc<Mutex<Vec<SpanData>>>);

    impl SpanExporter for Kept {
        async fn export(&self, batch: Vec<SpanData>) -> OTelSdkResult {
            self.0.lock().unwrap().extend(batch);
            Ok(())
        }
    }

    /// Runs `work` under a subscriber that exports a share `ratio` of traces, and returns the
    /// spans exported.
    fn exported(ratio: f64, work: impl FnOnce()) -> Vec<SpanData> {
        exported_at("trace", ratio, work)
    }

    /// [`exported`], with the subscriber's levels set by `directive`.
    fn exported_at(directive: &str, ratio: f64, work: impl FnOnce()) -> Vec<SpanData> {
        let kept = Kept::default();
        let provider = SdkTracerProvider::builder()
            .with_sampler(Sampler::ParentBased(Box::new(Sampler::AlwaysOn)))
            .with_simple_exporter(kept.clone())
            .build();
        let subscriber = Registry::default().with(levels(directive)).with(otel_layer(
            &provider,
            ratio,
            levels(directive),
        ));
        tracing::subscriber::with_default(subscriber, work);
        provider.force_flush().unwrap();
        kept.0.lock().unwrap().clone()
    }

    fn request_with_children() {
        let request = tracing::info_span!("request");
        let _entered = request.enter();
        tracing::info!("inside the request");
        let lookup = tracing::info_span!("cache_lookup");
        lookup.in_scope(|| {
            let _query = tracing::info_span!("warehouse_query").entered();
        });
    }

    #[test]
    fn a_sampled_trace_is_exported_whole_and_an_unsampled_one_not_at_all() {
        let all = exported(1.0, request_with_children);
        let names: Vec<&str> = all.iter().map(|s| s.name.as_ref()).collect();
        assert_eq!(names, ["warehouse_query", "cache_lookup", "request"]);
        let request = &all[2];
        assert_eq!(all[1].parent_span_id, request.span_context.span_id());
        assert_eq!(all[0].parent_span_id, all[1].span_context.span_id());
        assert_eq!(request.events.len(), 1, "the event inside the request");

        assert!(exported(0.0, request_with_children).is_empty());
    }

    #[test]
    fn a_share_of_traces_is_sampled_and_each_is_whole() {
        let spans = exported(0.25, || {
            for _ in 0..2_000 {
                request_with_children();
            }
        });
        let roots: Vec<&SpanData> = spans.iter().filter(|s| s.name == "request").collect();
        // 500 expected; a binomial (2000, 0.25) lies within ±100 of it with p > 0.9999.
        assert!(
            (400..=600).contains(&roots.len()),
            "{} of 2000 traces sampled at 25 %",
            roots.len()
        );
        assert_eq!(spans.len(), roots.len() * 3, "each sampled trace whole");
        let ids: std::collections::HashSet<_> =
            spans.iter().map(|s| s.span_context.span_id()).collect();
        for span in spans.iter().filter(|s| s.name != "request") {
            assert!(ids.contains(&span.parent_span_id), "{} orphaned", span.name);
        }
    }

    #[test]
    fn a_callers_traceparent_decides_whether_its_trace_is_recorded() {
        let trace = "4bf92f3577b34da6a3ce929d0e0e4736";
        let caller = "00f067aa0ba902b7";
        let sampled = format!("00-{trace}-{caller}-01");
        let spans = exported(0.0, || {
            let header = |name: &str| (name == "traceparent").then_some(sampled.as_str());
            let span = continued_span(header, || tracing::info_span!("request"));
            span.in_scope(|| tracing::info_span!("cache_lookup").in_scope(|| {}));
        });
        assert_eq!(
            spans.len(),
            2,
            "a sampled caller's trace is recorded at ratio 0"
        );
        let request = spans.iter().find(|s| s.name == "request").unwrap();
        assert_eq!(request.span_context.trace_id().to_string(), trace);
        assert_eq!(request.parent_span_id.to_string(), caller);

        let unsampled = format!("00-{trace}-{caller}-00");
        let spans = exported(1.0, || {
            let header = |name: &str| (name == "traceparent").then_some(unsampled.as_str());
            let span = continued_span(header, || tracing::info_span!("request"));
            span.in_scope(|| tracing::info_span!("cache_lookup").in_scope(|| {}));
            // The caller's decision is spent on its own span, not the next root.
            tracing::info_span!("next").in_scope(|| {});
        });
        let names: Vec<&str> = spans.iter().map(|s| s.name.as_ref()).collect();
        assert_eq!(
            names,
            ["next"],
            "an unsampled caller's trace is not recorded"
        );

        let spans = exported(1.0, || {
            let header = |name: &str| (name == "traceparent").then_some("00-zz-broken-01");
            continued_span(header, || tracing::info_span!("request")).in_scope(|| {});
        });
        assert_eq!(
            spans.len(),
            1,
            "a malformed traceparent starts a trace of its own"
        );
        assert_ne!(spans[0].span_context.trace_id().to_string(), trace);
    }

    #[test]
    fn levels_of_targets_are_decided_per_call_site_and_span_directives_per_span() {
        assert!(matches!(
            Levels::new("warn,retail=info"),
            Levels::Targets(_)
        ));
        assert!(matches!(
            Levels::new("retail[request]=debug"),
            Levels::Env(_)
        ));
        assert!(matches!(Levels::new(""), Levels::Env(_)));
        assert!(matches!(Levels::new("=="), Levels::Env(_)));

        let work = || {
            tracing::info_span!("outer").in_scope(|| {
                tracing::debug_span!("inner").in_scope(|| {});
            });
            tracing::debug_span!("alone").in_scope(|| {});
            tracing::info_span!(target: "elsewhere", "other").in_scope(|| {});
        };
        let names = |directive: &str| -> Vec<String> {
            exported_at(directive, 1.0, work)
                .iter()
                .map(|s| s.name.to_string())
                .collect()
        };
        assert_eq!(names("warn,retail_telemetry=info"), ["outer"]);
        assert_eq!(
            names("warn,retail_telemetry=debug"),
            ["inner", "outer", "alone"]
        );
        assert_eq!(
            names("warn,retail_telemetry=info,retail_telemetry[outer]=debug"),
            ["inner", "outer"]
        );
    }

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

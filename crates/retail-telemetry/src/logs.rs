//! JSON log lines with the trace and span ids of the event's span, in the platform's own field
//! names or in Elastic Common Schema's.

use std::fmt;

use opentelemetry::trace::TraceContextExt as _;
use serde_json::{Map, Value, json};
use tracing::field::{Field, Visit};
use tracing::{Event, Subscriber};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields, FormattedFields};
use tracing_subscriber::registry::LookupSpan;

/// The ECS version the `Ecs` lines follow.
pub const ECS_VERSION: &str = "8.11";

/// Formats events as one JSON object per line. The ids come from the global dispatcher (as
/// `tracing_setup::init` installs it); under a scoped one lines carry none.
#[derive(Debug, Clone)]
pub struct JsonLogs {
    ecs: bool,
    service: String,
}

impl JsonLogs {
    /// ECS names when `ecs`; `service` is the `service.name` of ECS lines.
    pub fn new(ecs: bool, service: &str) -> Self {
        Self {
            ecs,
            service: service.to_owned(),
        }
    }
}

/// An event's fields as JSON values.
struct Fields<'a>(&'a mut Map<String, Value>);

impl Visit for Fields<'_> {
    fn record_f64(&mut self, field: &Field, value: f64) {
        self.0.insert(field.name().to_owned(), json!(value));
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.0.insert(field.name().to_owned(), json!(value));
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.0.insert(field.name().to_owned(), json!(value));
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        self.0.insert(field.name().to_owned(), json!(value));
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.insert(field.name().to_owned(), json!(value));
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.0
            .insert(field.name().to_owned(), json!(format!("{value:?}")));
    }
}

/// A span's fields as one JSON object, written straight into the span's text: no map, no
/// intermediate values, and a field recorded later is appended rather than the object parsed
/// and written again (`tracing-subscriber`'s `JsonFields` does both, on every span of every
/// request). A field recorded twice appears twice; readers keep the last.
#[derive(Debug, Clone, Copy, Default)]
pub struct SpanFields;

/// Writes `"name":value` pairs after an opening brace.
struct PairWriter<'a, 'w> {
    writer: &'a mut Writer<'w>,
    first: bool,
    result: fmt::Result,
}

impl PairWriter<'_, '_> {
    fn pair(&mut self, field: &Field, value: impl FnOnce(&mut Writer<'_>) -> fmt::Result) {
        if self.result.is_err() {
            return;
        }
        let comma = if self.first { "" } else { "," };
        self.first = false;
        self.result = write!(self.writer, "{comma}")
            .and_then(|()| write_json_str(self.writer, field.name()))
            .and_then(|()| self.writer.write_char(':'))
            .and_then(|()| value(self.writer));
    }
}

/// `text` as a JSON string.
fn write_json_str(writer: &mut Writer<'_>, text: &str) -> fmt::Result {
    writer.write_char('"')?;
    write_escaped(writer, text)?;
    writer.write_char('"')
}

/// `text` escaped for the inside of a JSON string.
fn write_escaped(writer: &mut dyn fmt::Write, text: &str) -> fmt::Result {
    let mut start = 0;
    for (at, c) in text.char_indices() {
        let escaped = match c {
            '"' => "\\\"",
            '\\' => "\\\\",
            '\n' => "\\n",
            '\r' => "\\r",
            '\t' => "\\t",
            c if u32::from(c) < 0x20 => {
                writer.write_str(&text[start..at])?;
                write!(writer, "\\u{:04x}", u32::from(c))?;
                start = at + c.len_utf8();
                continue;
            }
            _ => continue,
        };
        writer.write_str(&text[start..at])?;
        writer.write_str(escaped)?;
        start = at + c.len_utf8();
    }
    writer.write_str(&text[start..])
}

/// A `Debug` value written as the inside of a JSON string, without an intermediate `String`.
struct Escaping<'a, 'w>(&'a mut Writer<'w>);

impl fmt::Write for Escaping<'_, '_> {
    fn write_str(&mut self, text: &str) -> fmt::Result {
        write_escaped(self.0, text)
    }
}

impl Visit for PairWriter<'_, '_> {
    fn record_f64(&mut self, field: &Field, value: f64) {
        if value.is_finite() {
            self.pair(field, |w| write!(w, "{value}"));
        } else {
            self.pair(field, |w| write_json_str(w, &value.to_string()));
        }
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.pair(field, |w| write!(w, "{value}"));
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.pair(field, |w| write!(w, "{value}"));
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        self.pair(field, |w| write!(w, "{value}"));
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        self.pair(field, |w| write_json_str(w, value));
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.pair(field, |w| {
            w.write_char('"')?;
            fmt::write(&mut Escaping(w), format_args!("{value:?}"))?;
            w.write_char('"')
        });
    }
}

impl<'writer> FormatFields<'writer> for SpanFields {
    fn format_fields<R: tracing_subscriber::field::RecordFields>(
        &self,
        mut writer: Writer<'writer>,
        fields: R,
    ) -> fmt::Result {
        writer.write_char('{')?;
        let mut pairs = PairWriter {
            writer: &mut writer,
            first: true,
            result: Ok(()),
        };
        fields.record(&mut pairs);
        pairs.result?;
        writer.write_char('}')
    }

    fn add_fields(
        &self,
        current: &'writer mut FormattedFields<Self>,
        fields: &tracing::span::Record<'_>,
    ) -> fmt::Result {
        if current.fields.pop() != Some('}') {
            current.fields.clear();
            return self.format_fields(current.as_writer(), fields);
        }
        let first = current.fields.len() == 1;
        let mut writer = current.as_writer();
        let mut pairs = PairWriter {
            writer: &mut writer,
            first,
            result: Ok(()),
        };
        fields.record(&mut pairs);
        pairs.result?;
        writer.write_char('}')
    }
}

impl<S, N> FormatEvent<S, N> for JsonLogs
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let mut fields = Map::new();
        event.record(&mut Fields(&mut fields));
        let message = fields
            .remove("message")
            .unwrap_or_else(|| Value::String(String::new()));
        // The enclosing spans' fields, outermost first (an inner field wins).
        let mut spans = Map::new();
        let mut innermost = None;
        if let Some(scope) = ctx.event_scope() {
            for span in scope.from_root() {
                if let Some(Value::Object(own)) = span
                    .extensions()
                    .get::<FormattedFields<N>>()
                    .and_then(|formatted| serde_json::from_str(formatted.as_str()).ok())
                {
                    spans.extend(own);
                }
                innermost = Some(span.id());
            }
        }
        // The innermost span's ids, when spans are exported (no extension is held here, as
        // the OpenTelemetry layer needs to lock them).
        let ids = innermost
            .and_then(|id| {
                tracing::dispatcher::get_default(|dispatch| {
                    tracing_opentelemetry::get_otel_context(&id, dispatch)
                })
            })
            .map(|context| context.span().span_context().clone())
            .filter(opentelemetry::trace::SpanContext::is_valid)
            .map(|span| (span.trace_id().to_string(), span.span_id().to_string()));
        let (trace_id, span_id) = ids.unzip();
        let metadata = event.metadata();
        let timestamp = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true);
        let line = if self.ecs {
            let mut line = Map::new();
            line.insert("@timestamp".to_owned(), json!(timestamp));
            line.insert(
                "log.level".to_owned(),
                json!(metadata.level().as_str().to_ascii_lowercase()),
            );
            line.insert("log.logger".to_owned(), json!(metadata.target()));
            line.insert("message".to_owned(), message);
            line.insert("service.name".to_owned(), json!(self.service));
            line.insert("ecs.version".to_owned(), json!(ECS_VERSION));
            if let (Some(trace), Some(span)) = (&trace_id, &span_id) {
                line.insert("trace.id".to_owned(), json!(trace));
                line.insert("span.id".to_owned(), json!(span));
            }
            spans.extend(fields);
            if !spans.is_empty() {
                line.insert("retail".to_owned(), Value::Object(spans));
            }
            line
        } else {
            let mut line = Map::new();
            line.insert("timestamp".to_owned(), json!(timestamp));
            line.insert("level".to_owned(), json!(metadata.level().as_str()));
            line.insert("target".to_owned(), json!(metadata.target()));
            line.insert("message".to_owned(), message);
            line.extend(fields);
            if !spans.is_empty() {
                line.insert("spans".to_owned(), Value::Object(spans));
            }
            if let (Some(trace), Some(span)) = (trace_id, span_id) {
                line.insert("trace_id".to_owned(), json!(trace));
                line.insert("span_id".to_owned(), json!(span));
            }
            line
        };
        writeln!(writer, "{}", Value::Object(line))
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use opentelemetry::trace::TracerProvider as _;
    use tracing_opentelemetry::OpenTelemetrySpanExt as _;
    use tracing_subscriber::layer::SubscriberExt as _;

    use super::*;

    /// A writer into a shared buffer.
    #[derive(Clone, Default)]
    struct Buffer(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Buffer {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(bytes);
            Ok(bytes.len())
        }

        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    fn fmt_layer<S>(ecs: bool, buffer: &Buffer) -> impl tracing_subscriber::Layer<S>
    where
        S: Subscriber + for<'a> LookupSpan<'a>,
    {
        let writer = buffer.clone();
        tracing_subscriber::fmt::layer()
            .with_writer(move || writer.clone())
            .fmt_fields(crate::logs::SpanFields)
            .event_format(JsonLogs::new(ecs, "retail-test"))
    }

    fn parsed(buffer: &Buffer) -> Vec<Value> {
        let text = String::from_utf8(buffer.0.lock().unwrap().clone()).unwrap();
        text.lines()
            .map(|line| serde_json::from_str(line).expect("one JSON object per line"))
            .collect()
    }

    fn log_in_spans() -> Option<(String, String)> {
        let outer = tracing::info_span!("pipeline_run", run = "r1");
        let _outer = outer.enter();
        let inner = tracing::info_span!("asset", key = "gold", attempt = 1);
        let _inner = inner.enter();
        tracing::info!(rows = 42_u64, "asset done");
        let context = inner.context();
        let span = opentelemetry::trace::TraceContextExt::span(&context);
        let ids = span.span_context();
        ids.is_valid()
            .then(|| (ids.trace_id().to_string(), ids.span_id().to_string()))
    }

    #[test]
    fn span_fields_are_json_whatever_they_hold_and_fields_recorded_later_are_kept() {
        let buffer = Buffer::default();
        let subscriber = tracing_subscriber::registry().with(fmt_layer(false, &buffer));
        tracing::subscriber::with_default(subscriber, || {
            let path = "/api/v1/\"quoted\"\\back\nline\u{1}";
            let outer = tracing::info_span!(
                "request",
                path = %path,
                debug = ?("a\"b", 1),
                ratio = 0.5,
                nan = f64::NAN,
                big = u64::MAX,
                ok = true,
                outcome = tracing::field::Empty
            );
            let _outer = outer.enter();
            outer.record("outcome", "hit");
            outer.record("outcome", "miss");
            let empty = tracing::info_span!("empty");
            empty.in_scope(|| tracing::info!("inside"));
        });
        let lines = parsed(&buffer);
        assert_eq!(lines.len(), 1);
        assert_eq!(
            lines[0]["spans"],
            json!({
                "path": "/api/v1/\"quoted\"\\back\nline\u{1}",
                "debug": "(\"a\\\"b\", 1)",
                "ratio": 0.5,
                "nan": "NaN",
                "big": u64::MAX,
                "ok": true,
                "outcome": "miss",
            })
        );
    }

    #[test]
    fn json_and_ecs_lines_carry_the_fields_the_spans_fields_and_the_innermost_spans_ids() {
        // As `retail` installs it: the global subscriber (a scoped one hides the dispatcher
        // from formatters), with spans exported.
        let (json, ecs) = (Buffer::default(), Buffer::default());
        let provider = opentelemetry_sdk::trace::SdkTracerProvider::builder().build();
        let subscriber = tracing_subscriber::registry()
            .with(tracing_opentelemetry::layer().with_tracer(provider.tracer("test")))
            .with(fmt_layer(false, &json))
            .with(fmt_layer(true, &ecs));
        tracing::subscriber::set_global_default(subscriber).expect("the only global subscriber");
        let (trace, span) = log_in_spans().expect("an exported span has ids");
        let lines = parsed(&json);
        assert_eq!(lines.len(), 1);
        let line = &lines[0];
        assert_eq!(line["message"], "asset done");
        assert_eq!(line["level"], "INFO");
        assert_eq!(line["rows"], 42);
        assert_eq!(
            line["spans"],
            json!({"run": "r1", "key": "gold", "attempt": 1})
        );
        assert_eq!(line["trace_id"], trace.as_str());
        assert_eq!(line["span_id"], span.as_str());
        assert!(line["timestamp"].as_str().unwrap().ends_with('Z'));
        let line = &parsed(&ecs)[0];
        assert_eq!(line["log.level"], "info");
        assert_eq!(line["service.name"], "retail-test");
        assert_eq!(line["ecs.version"], ECS_VERSION);
        assert_eq!(line["message"], "asset done");
        assert_eq!(
            line["retail"],
            json!({"run": "r1", "key": "gold", "attempt": 1, "rows": 42})
        );
        assert_eq!(line["trace.id"], trace.as_str());
        assert_eq!(line["span.id"], span.as_str());
        assert!(line.get("@timestamp").is_some());
    }

    #[test]
    fn without_an_exporter_lines_have_no_ids() {
        let buffer = Buffer::default();
        let subscriber = tracing_subscriber::registry().with(fmt_layer(false, &buffer));
        let ids = tracing::subscriber::with_default(subscriber, log_in_spans);
        assert_eq!(ids, None);
        let line = &parsed(&buffer)[0];
        assert_eq!(line["spans"]["key"], "gold");
        assert!(line.get("trace_id").is_none());
    }
}

//! The process's subscriber: log lines on stderr, and the OpenTelemetry layer of [`traces`].
//!
//! Logs go to stderr so stdout stays clean for JSON output. Level from `TSP_LOG` (e.g. `info`,
//! `tsp_hub=debug`), else `RUST_LOG`, default `info`; `TSP_LOG_FORMAT=json` for JSON lines, each
//! with the `trace_id` and `span_id` of its span. Colours only on a terminal: a log file or
//! collector gets plain text.
//!
//! [`traces`]: crate::traces

use std::fmt;

use tracing::{Event, Subscriber};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::util::SubscriberInitExt;
use tsp_config::OtlpSettings;

use crate::traces::{self, Tracing};

/// Installs the subscriber once per process: logs filtered by `TSP_LOG`, spans traced as
/// `settings` say. Keep the answer until the process ends.
pub fn init(settings: &OtlpSettings) -> Tracing {
    use std::io::IsTerminal;
    use tracing_subscriber::Layer;
    let filter = EnvFilter::try_from_env("TSP_LOG")
        .or_else(|_| EnvFilter::try_from_env("RUST_LOG"))
        .unwrap_or_else(|_| EnvFilter::new("info,sqlx=warn,mongodb=warn"));
    let (otel, tracing) = traces::layer(settings);
    let plain = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal());
    let logs = if std::env::var("TSP_LOG_FORMAT").as_deref() == Ok("json") {
        let json = tracing_subscriber::fmt::format().json();
        plain
            .event_format(WithTraceIds(json))
            .fmt_fields(tracing_subscriber::fmt::format::JsonFields::new())
            .with_filter(filter)
            .boxed()
    } else {
        plain.with_filter(filter).boxed()
    };
    let _ = tracing_subscriber::registry()
        .with(otel)
        .with(logs)
        .try_init();
    tracing
}

/// A JSON line format that adds the `trace_id` and `span_id` of the nearest traced span.
struct WithTraceIds<F>(F);

impl<S, N, F> FormatEvent<S, N> for WithTraceIds<F>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
    F: FormatEvent<S, N>,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let mut line = String::new();
        self.0.format_event(ctx, Writer::new(&mut line), event)?;
        // The nearest traced span: a debug span (a store call) is traced only while exporting.
        let ids = ctx.lookup_current().and_then(|current| {
            current.scope().find_map(|span| {
                let ext = span.extensions();
                let data = ext.get::<tracing_opentelemetry::OtelData>()?;
                Some((data.trace_id()?, data.span_id()?))
            })
        });
        // The inner format writes one object and a newline: the ids go before its last brace.
        match (ids, line.trim_end().strip_suffix('}')) {
            (Some((trace, span)), Some(head)) => writeln!(
                writer,
                "{head},\"trace_id\":\"{trace}\",\"span_id\":\"{span}\"}}"
            ),
            _ => writer.write_str(&line),
        }
    }
}

//! Traces (docs/metrics.md#traces): the process's tracing subscriber, with an OpenTelemetry
//! layer that gives every span a trace, the W3C trace context in and out (requests, jobs), and
//! export over OTLP/HTTP when `telemetry.otlp.endpoint` is set.
//!
//! Trace context is carried whether or not spans are exported, so a worker's log lines share
//! the `trace_id` of the request that enqueued their job. Exporting also turns on the spans of
//! each store call (debug level), which otherwise are not even created.

use std::collections::HashMap;

use opentelemetry::propagation::TextMapPropagator;
use opentelemetry::trace::{TraceContextExt, TracerProvider as _};
use opentelemetry_otlp::{Protocol, WithExportConfig};
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::{Sampler, SdkTracerProvider};
use tracing::Span;
use tracing_opentelemetry::OpenTelemetrySpanExt;
use tracing_subscriber::filter::{LevelFilter, Targets};
use tsp_config::OtlpSettings;
use tsp_queue::trace::{Relation, TraceHooks};

/// The workspace's crates: their spans are traced; other crates' only as events (warnings).
const OWN_CRATES: [&str; 6] = [
    "tsp_hub",
    "tsp_queue",
    "tsp_mobility",
    "tsp_backup",
    "tsp_server",
    "tsp_job",
];

/// What [`layer`] built: keep it until the process ends, then [`Tracing::shutdown`] sends the
/// spans still buffered.
pub struct Tracing {
    provider: SdkTracerProvider,
    exporting: bool,
}

impl Tracing {
    /// Whether spans leave the process.
    pub fn exporting(&self) -> bool {
        self.exporting
    }

    /// Exports what is buffered (bounded by `telemetry.otlp.timeout`) and stops.
    pub fn shutdown(self) {
        if let Err(e) = self.provider.shutdown() {
            tracing::warn!(error = %e, "spans not exported at exit");
        }
    }
}

/// The OpenTelemetry layer for `settings`, filtered to what it traces, and its provider. The
/// exporter (a thread of its own, with a blocking HTTP client) is made only for an endpoint;
/// one that cannot be made is said and the process goes on without export.
pub fn layer<S>(
    settings: &OtlpSettings,
) -> (
    impl tracing_subscriber::Layer<S> + Send + Sync + 'static,
    Tracing,
)
where
    S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a> + Send + Sync,
{
    use tracing_subscriber::Layer;
    let ratio = f64::from(settings.sample_percent) / 100.0;
    let mut builder = SdkTracerProvider::builder()
        .with_sampler(Sampler::ParentBased(Box::new(Sampler::TraceIdRatioBased(
            ratio,
        ))))
        .with_resource(
            opentelemetry_sdk::Resource::builder()
                .with_service_name(settings.service_name.clone())
                .build(),
        );
    let mut exporting = false;
    if let Some(endpoint) = &settings.endpoint {
        match exporter(settings, endpoint) {
            Ok(e) => {
                builder = builder.with_batch_exporter(e);
                exporting = true;
            }
            Err(e) => eprintln!("warning: spans are not exported: {e}"),
        }
    }
    let provider = builder.build();
    let tracer = provider.tracer("tsp-job");
    // Store calls are debug spans: only while exporting are they worth their cost.
    let own = if exporting {
        LevelFilter::DEBUG
    } else {
        LevelFilter::INFO
    };
    let filter = OWN_CRATES
        .iter()
        .fold(Targets::new(), |t, name| t.with_target(*name, own))
        .with_default(LevelFilter::WARN);
    let layer = tracing_opentelemetry::layer()
        .with_tracer(tracer)
        .with_location(false)
        .with_threads(false)
        .with_filter(filter);
    tsp_queue::trace::install(TraceHooks {
        current: current_traceparent,
        attach,
        every_job: exporting,
    });
    (
        layer,
        Tracing {
            provider,
            exporting,
        },
    )
}

fn exporter(
    settings: &OtlpSettings,
    endpoint: &str,
) -> Result<opentelemetry_otlp::SpanExporter, opentelemetry_otlp::ExporterBuildError> {
    let protocol = match settings.protocol.as_str() {
        "http/json" => Protocol::HttpJson,
        _ => Protocol::HttpBinary,
    };
    opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_endpoint(endpoint)
        .with_protocol(protocol)
        .with_timeout(settings.timeout)
        .build()
}

/// The context `traceparent` names, when it is a valid W3C `traceparent`.
pub fn extract(traceparent: &str) -> Option<opentelemetry::Context> {
    if !tsp_queue::trace::is_traceparent(traceparent) {
        return None;
    }
    let carrier = HashMap::from([("traceparent".to_string(), traceparent.to_string())]);
    let cx = TraceContextPropagator::new().extract(&carrier);
    cx.span().span_context().is_valid().then_some(cx)
}

/// `span`'s context as a W3C `traceparent`, if it has one.
pub fn traceparent_of(span: &Span) -> Option<String> {
    let cx = span.context();
    let sc = cx.span().span_context().clone();
    sc.is_valid().then(|| {
        let flags = sc.trace_flags().to_u8();
        format!("00-{}-{}-{flags:02x}", sc.trace_id(), sc.span_id())
    })
}

/// Makes `span` continue the caller's trace when `traceparent` is a valid one; else it starts
/// its own.
pub fn continue_trace(span: &Span, traceparent: Option<&str>) {
    if let Some(t) = traceparent {
        attach(span, t, Relation::Parent);
    }
}

fn current_traceparent() -> Option<String> {
    traceparent_of(&Span::current())
}

fn attach(span: &Span, traceparent: &str, relation: Relation) {
    let Some(cx) = extract(traceparent) else {
        return;
    };
    match relation {
        Relation::Parent => {
            // Fails only once the span has started its own trace; it was made just before.
            let _ = span.set_parent(cx);
        }
        Relation::Link => span.add_link(cx.span().span_context().clone()),
    }
}

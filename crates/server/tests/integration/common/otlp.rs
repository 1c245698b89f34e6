//! An OTLP/HTTP receiver of the test's own, on loopback: no collector can be installed here, so
//! the processes under test export their spans (`telemetry.otlp.protocol = "http/json"`) to this,
//! which keeps every span it is sent.

use std::sync::{Arc, Mutex};

use serde_json::Value;

/// One received span: ids as hex, its name and string attributes.
#[derive(Debug, Clone)]
pub struct Span {
    pub trace_id: String,
    pub span_id: String,
    pub parent: String,
    pub name: String,
    pub attributes: Vec<(String, String)>,
}

impl Span {
    /// The attribute `key`, as text.
    pub fn attr(&self, key: &str) -> Option<&str> {
        self.attributes
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
}

/// The receiver: its traces URL, and what it got.
pub struct Receiver {
    pub endpoint: String,
    spans: Arc<Mutex<Vec<Span>>>,
}

impl Receiver {
    pub async fn start() -> Receiver {
        let spans: Arc<Mutex<Vec<Span>>> = Arc::default();
        let kept = spans.clone();
        let app = axum::Router::new().route(
            "/v1/traces",
            axum::routing::post(move |body: axum::body::Bytes| {
                let kept = kept.clone();
                async move {
                    let request: Value = serde_json::from_slice(&body).expect("OTLP JSON");
                    kept.lock().unwrap().extend(spans_of(&request));
                    axum::Json(serde_json::json!({}))
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let endpoint = format!("http://{}/v1/traces", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });
        Receiver { endpoint, spans }
    }

    /// Every span received so far.
    pub fn spans(&self) -> Vec<Span> {
        self.spans.lock().unwrap().clone()
    }
}

fn spans_of(request: &Value) -> Vec<Span> {
    let mut out = Vec::new();
    let text = |v: &Value| v.as_str().unwrap_or_default().to_string();
    for rs in request["resourceSpans"].as_array().into_iter().flatten() {
        for ss in rs["scopeSpans"].as_array().into_iter().flatten() {
            for s in ss["spans"].as_array().into_iter().flatten() {
                let attributes = s["attributes"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|a| {
                        let v = &a["value"];
                        let value = v["stringValue"]
                            .as_str()
                            .map(str::to_string)
                            .unwrap_or_else(|| v.to_string());
                        (text(&a["key"]), value)
                    })
                    .collect();
                out.push(Span {
                    trace_id: text(&s["traceId"]),
                    span_id: text(&s["spanId"]),
                    parent: text(&s["parentSpanId"]),
                    name: text(&s["name"]),
                    attributes,
                });
            }
        }
    }
    out
}

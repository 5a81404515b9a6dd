//! Prometheus metrics of the gateway's calls, per endpoint or route as the caller named it:
//! calls by status, their latency, and the tokens the answers reported (`usage`, OpenAI's and
//! MLflow's shape alike). They outlive config reloads: one set for the process.

use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;
use serde_json::Value;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CallLabels {
    endpoint: String,
    status: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct EndpointLabels {
    endpoint: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TokenLabels {
    endpoint: String,
    kind: String,
}

pub struct GatewayMetrics {
    registry: Registry,
    calls: Family<CallLabels, Counter>,
    latency: Family<EndpointLabels, Histogram>,
    upstream_latency: Family<EndpointLabels, Histogram>,
    tokens: Family<TokenLabels, Counter>,
}

fn latency_histogram() -> Histogram {
    Histogram::new([
        0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
    ])
}

impl Default for GatewayMetrics {
    fn default() -> Self {
        let mut registry = Registry::default();
        let calls = Family::<CallLabels, Counter>::default();
        let latency = Family::<EndpointLabels, Histogram>::new_with_constructor(
            latency_histogram as fn() -> Histogram,
        );
        let upstream_latency = Family::<EndpointLabels, Histogram>::new_with_constructor(
            latency_histogram as fn() -> Histogram,
        );
        let tokens = Family::<TokenLabels, Counter>::default();
        registry.register(
            "mlox_gateway_calls",
            "Calls to an endpoint or route, by HTTP status of the answer",
            calls.clone(),
        );
        registry.register(
            "mlox_gateway_call_duration_seconds",
            "Time from the request to the answer (to the first byte of a stream)",
            latency.clone(),
        );
        registry.register(
            "mlox_gateway_upstream_duration_seconds",
            "Time the upstream took, retries included, per endpoint actually called (after \
             routing and fallbacks); the call's duration minus this is the gateway's own",
            upstream_latency.clone(),
        );
        registry.register(
            "mlox_gateway_tokens",
            "Tokens the upstream reported in its answers' usage (prompt, completion)",
            tokens.clone(),
        );
        GatewayMetrics {
            registry,
            calls,
            latency,
            upstream_latency,
            tokens,
        }
    }
}

impl GatewayMetrics {
    /// One answered call: its status, how long it took, and the answer's body (when it was
    /// JSON; only its `usage` is read).
    pub fn record_body(&self, endpoint: &str, status: u16, elapsed: Duration, body: Option<&[u8]>) {
        #[derive(serde::Deserialize)]
        struct WithUsage {
            usage: Option<Value>,
        }
        let usage = body
            .and_then(|b| serde_json::from_slice::<WithUsage>(b).ok())
            .and_then(|w| w.usage)
            .map(|usage| serde_json::json!({ "usage": usage }));
        self.record(endpoint, status, elapsed, usage.as_ref());
    }

    /// One answered call: its status, how long it took, and the answer (when it was JSON).
    pub fn record(&self, endpoint: &str, status: u16, elapsed: Duration, answer: Option<&Value>) {
        self.calls
            .get_or_create(&CallLabels {
                endpoint: endpoint.to_string(),
                status: status.to_string(),
            })
            .inc();
        self.latency
            .get_or_create(&EndpointLabels {
                endpoint: endpoint.to_string(),
            })
            .observe(elapsed.as_secs_f64());
        let Some(usage) = answer.and_then(|a| a.get("usage")) else {
            return;
        };
        for (kind, key) in [
            ("prompt", "prompt_tokens"),
            ("completion", "completion_tokens"),
        ] {
            if let Some(n) = usage.get(key).and_then(Value::as_u64) {
                self.tokens
                    .get_or_create(&TokenLabels {
                        endpoint: endpoint.to_string(),
                        kind: kind.to_string(),
                    })
                    .inc_by(n);
            }
        }
    }

    /// How long one endpoint's upstream took to answer (to the first byte of a stream).
    pub fn record_upstream(&self, endpoint: &str, elapsed: Duration) {
        self.upstream_latency
            .get_or_create(&EndpointLabels {
                endpoint: endpoint.to_string(),
            })
            .observe(elapsed.as_secs_f64());
    }

    /// The text exposition format.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn calls_latency_and_tokens_are_counted_per_endpoint() {
        let metrics = GatewayMetrics::default();
        let usage = json!({"usage": {"prompt_tokens": 3, "completion_tokens": 5}});
        metrics.record("chat", 200, Duration::from_millis(2), Some(&usage));
        metrics.record("chat", 200, Duration::from_millis(4), Some(&usage));
        metrics.record("chat", 503, Duration::from_millis(1), None);
        let text = metrics.render();
        assert!(
            text.contains(r#"mlox_gateway_calls_total{endpoint="chat",status="200"} 2"#),
            "{text}"
        );
        assert!(
            text.contains(r#"mlox_gateway_calls_total{endpoint="chat",status="503"} 1"#),
            "{text}"
        );
        assert!(
            text.contains(r#"mlox_gateway_tokens_total{endpoint="chat",kind="prompt"} 6"#),
            "{text}"
        );
        assert!(
            text.contains(r#"mlox_gateway_tokens_total{endpoint="chat",kind="completion"} 10"#),
            "{text}"
        );
        assert!(
            text.contains(r#"mlox_gateway_call_duration_seconds_count{endpoint="chat"} 3"#),
            "{text}"
        );
    }
}

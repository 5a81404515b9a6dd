//! The running gateway: endpoints and routes by name, and one call from a request body to the
//! answer (rate limit, validation, traffic split, provider mapping, upstream call).

use std::collections::HashMap;
use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use serde_json::{Map, Value};

use crate::config::{EndpointConfig, EndpointType, GatewayConfig, RouteConfig};
use crate::error::GatewayError;
use crate::limit::{RateLimiter, SharedCounter, acquire_shared, describe};
use crate::provider::{self, ServedAnswer};
use crate::sse::{self, SseStream};
use crate::traces::{GatewayCall, TraceRecorder};
use crate::upstream::Upstream;

pub struct Gateway {
    endpoints: Vec<Endpoint>,
    routes: Vec<Route>,
    by_name: HashMap<String, Target>,
    upstream: Upstream,
    traces: Option<std::sync::Arc<TraceRecorder>>,
    metrics: Option<std::sync::Arc<crate::metrics::GatewayMetrics>>,
    /// Where limits are counted when replicas share them; in this process otherwise.
    shared_limits: Option<std::sync::Arc<dyn SharedCounter>>,
}

struct Endpoint {
    config: EndpointConfig,
    limiter: Option<RateLimiter>,
}

struct Route {
    config: RouteConfig,
    /// (endpoint index, traffic percentage), in config order.
    destinations: Vec<(usize, u8)>,
}

#[derive(Clone, Copy)]
enum Target {
    Endpoint(usize),
    Route(usize),
}

/// A successful call's answer.
pub enum Answer {
    /// A JSON body, ready to send.
    Json(Bytes),
    /// A `text/event-stream` body.
    Stream(SseStream),
}

impl Gateway {
    pub fn new(config: GatewayConfig) -> Result<Self, String> {
        let upstream = Upstream::new()?;
        let mut by_name = HashMap::new();
        let endpoints: Vec<Endpoint> = config
            .endpoints
            .into_iter()
            .enumerate()
            .map(|(i, config)| {
                by_name.insert(config.name.clone(), Target::Endpoint(i));
                Endpoint {
                    limiter: config.limit.as_ref().map(RateLimiter::new),
                    config,
                }
            })
            .collect();
        let mut routes = Vec::with_capacity(config.routes.len());
        for (i, route) in config.routes.into_iter().enumerate() {
            let mut destinations = Vec::with_capacity(route.destinations.len());
            for d in &route.destinations {
                // The config checks destinations name endpoints; a miss here is a bug.
                let Some(Target::Endpoint(index)) = by_name.get(&d.name).copied() else {
                    return Err(format!(
                        "route '{}' names '{}', which is not an endpoint",
                        route.name, d.name
                    ));
                };
                destinations.push((index, d.traffic_percentage));
            }
            by_name.insert(route.name.clone(), Target::Route(i));
            routes.push(Route {
                config: route,
                destinations,
            });
        }
        Ok(Gateway {
            endpoints,
            routes,
            by_name,
            upstream,
            traces: None,
            metrics: None,
            shared_limits: None,
        })
    }

    /// Endpoints in config order.
    pub fn endpoints(&self) -> impl Iterator<Item = &EndpointConfig> {
        self.endpoints.iter().map(|e| &e.config)
    }

    pub fn routes(&self) -> impl Iterator<Item = &RouteConfig> {
        self.routes.iter().map(|r| &r.config)
    }

    pub fn endpoint(&self, name: &str) -> Option<&EndpointConfig> {
        match self.by_name.get(name)? {
            Target::Endpoint(i) => Some(&self.endpoints[*i].config),
            Target::Route(_) => None,
        }
    }

    pub fn route(&self, name: &str) -> Option<&RouteConfig> {
        match self.by_name.get(name)? {
            Target::Route(i) => Some(&self.routes[*i].config),
            Target::Endpoint(_) => None,
        }
    }

    /// The endpoint type of an endpoint or route.
    pub fn kind_of(&self, name: &str) -> Option<EndpointType> {
        Some(match self.by_name.get(name)? {
            Target::Endpoint(i) => self.endpoints[*i].config.endpoint_type,
            Target::Route(i) => self.routes[*i].config.task_type,
        })
    }

    /// Picks the endpoint that serves one call to `name`: the endpoint itself, or a route's
    /// destination drawn by its traffic percentages.
    fn pick(&self, name: &str) -> Option<&Endpoint> {
        match self.by_name.get(name)? {
            Target::Endpoint(i) => self.endpoints.get(*i),
            Target::Route(i) => {
                let route = self.routes.get(*i)?;
                let mut draw = fastrand::u8(0..100);
                for (index, percentage) in &route.destinations {
                    if draw < *percentage {
                        return self.endpoints.get(*index);
                    }
                    draw -= percentage;
                }
                // Percentages sum to 100, so the loop always returns.
                route
                    .destinations
                    .last()
                    .and_then(|(index, _)| self.endpoints.get(*index))
            }
        }
    }

    /// Records every call as a trace in a tracking server.
    pub fn with_traces(self, recorder: TraceRecorder) -> Self {
        self.with_shared_traces(std::sync::Arc::new(recorder))
    }

    /// Counts every call in `metrics`, shared across reloads of the configuration.
    pub fn with_metrics(mut self, metrics: std::sync::Arc<crate::metrics::GatewayMetrics>) -> Self {
        self.metrics = Some(metrics);
        self
    }

    pub fn metrics(&self) -> Option<&crate::metrics::GatewayMetrics> {
        self.metrics.as_deref()
    }

    /// Counts rate limits in a store shared with other replicas instead of in this process.
    pub fn with_shared_limits(mut self, counter: std::sync::Arc<dyn SharedCounter>) -> Self {
        self.shared_limits = Some(counter);
        self
    }

    /// Records every call with a recorder shared across reloads of the configuration.
    pub fn with_shared_traces(mut self, recorder: std::sync::Arc<TraceRecorder>) -> Self {
        self.traces = Some(recorder);
        self
    }

    /// One call to an endpoint or route with a request body in MLflow's / OpenAI's shape,
    /// recorded as a trace when a recorder is set.
    pub async fn invoke(
        &self,
        name: &str,
        body: Map<String, Value>,
    ) -> Result<Answer, GatewayError> {
        let timer = std::time::Instant::now();
        let pass_usage_chunk = sse::client_wants_usage(&body);
        // Calls to names the gateway does not serve are not traced: nothing ran.
        let result = match (&self.traces, self.kind_of(name)) {
            (Some(recorder), Some(kind)) => {
                let started = SystemTime::now();
                let inputs = Value::Object(body.clone());
                let result = self.dispatch(name, body).await;
                recorder.record(GatewayCall::finished(name, kind, inputs, started, &result));
                result
            }
            _ => self.dispatch(name, body).await,
        };
        if let Some(metrics) = &self.metrics {
            let (status, answer) = match &result {
                Ok(Answer::Json(bytes)) => (200, Some(bytes.as_ref())),
                Ok(Answer::Stream(_)) => (200, None),
                Err(e) => (e.status(), None),
            };
            metrics.record_body(name, status, timer.elapsed(), answer);
        }
        match result {
            // Upstreams are asked for a usage chunk; a client that did not ask gets none.
            Ok(Answer::Stream(stream)) => Ok(Answer::Stream(sse::tap_usage(
                stream,
                pass_usage_chunk,
                |_| {},
            ))),
            other => other,
        }
    }

    /// Waits for the traces of calls already answered to be sent (see `TraceRecorder::flush`).
    pub async fn flush_traces(&self, timeout: std::time::Duration) {
        if let Some(recorder) = &self.traces {
            recorder.flush(timeout).await;
        }
    }

    async fn dispatch(&self, name: &str, body: Map<String, Value>) -> Result<Answer, GatewayError> {
        let Some(endpoint) = self.pick(name) else {
            return Err(GatewayError::NotFound(format!(
                "The endpoint '{name}' is not present or active on the server."
            )));
        };
        let fallbacks = &endpoint.config.fallbacks;
        if fallbacks.is_empty() {
            return self.call_one(endpoint, body).await;
        }
        let mut result = self.call_one(endpoint, body.clone()).await;
        for fallback in fallbacks {
            match &result {
                Err(e) if falls_through(e) => {}
                _ => break,
            }
            let Some(Target::Endpoint(index)) = self.by_name.get(fallback).copied() else {
                continue;
            };
            tracing::warn!(endpoint = %endpoint.config.name, fallback = %fallback, "endpoint failed; trying its fallback");
            result = self.call_one(&self.endpoints[index], body.clone()).await;
        }
        result
    }

    /// One endpoint's call: its checks, its rate limit, its upstream.
    async fn call_one(
        &self,
        endpoint: &Endpoint,
        body: Map<String, Value>,
    ) -> Result<Answer, GatewayError> {
        let config = &endpoint.config;
        check_request(config, &body)?;
        if let Some(limit) = &config.limit {
            let counted = match (&self.shared_limits, &endpoint.limiter) {
                (Some(shared), _) => acquire_shared(shared.as_ref(), &config.name, limit).await,
                (None, Some(limiter)) => limiter.acquire(),
                (None, None) => Ok(()),
            };
            if let Err(exceeded) = counted {
                return Err(GatewayError::RateLimited {
                    message: format!("Rate limit exceeded: {}", describe(limit)),
                    retry_after: exceeded.retry_after,
                });
            }
        }
        let started = std::time::Instant::now();
        let answer = send(&self.upstream, config, body).await;
        if let Some(metrics) = &self.metrics {
            metrics.record_upstream(&config.name, started.elapsed());
        }
        answer
    }
}

/// Whether a failed call is worth making to another upstream: this one was unreachable, timed
/// out, out of its rate limit, or answered 429 or 5xx (a streamed answer never fails over: it
/// already began).
pub(crate) fn falls_through(error: &GatewayError) -> bool {
    match error {
        GatewayError::BadGateway(_)
        | GatewayError::Timeout(_)
        | GatewayError::RateLimited { .. } => true,
        GatewayError::Upstream { status, .. } => *status == 429 || *status >= 500,
        _ => false,
    }
}

/// The request checks MLflow's schemas make for this endpoint's type and provider.
pub fn check_request(
    config: &EndpointConfig,
    body: &Map<String, Value>,
) -> Result<(), GatewayError> {
    provider::validate_request(config.endpoint_type, body)?;
    provider::check_text_generation_request(config, body)?;
    if matches!(
        config.provider,
        crate::config::ProviderConfig::Anthropic { .. }
    ) {
        crate::anthropic::check(body)?;
    }
    provider::check_model_serving_chat(config, config.endpoint_type, body)
}

/// A checked call to one endpoint (see [`send`]).
pub async fn call_endpoint(
    upstream: &Upstream,
    config: &EndpointConfig,
    body: Map<String, Value>,
) -> Result<Answer, GatewayError> {
    check_request(config, &body)?;
    send(upstream, config, body).await
}

/// One call of a checked request to one configured upstream: the request in the provider's
/// shape, the answer in MLflow's / OpenAI's. Shared by the file-configured gateway and the
/// endpoints kept in the tracking database.
async fn send(
    upstream: &Upstream,
    config: &EndpointConfig,
    body: Map<String, Value>,
) -> Result<Answer, GatewayError> {
    let kind = config.endpoint_type;
    let stream = provider::wants_stream(kind, &body);
    let request = provider::build_request(config, kind, body, stream);
    if request.stream {
        let response = upstream
            .open_stream(&request, &config.retries, config.timeout)
            .await?;
        if matches!(
            config.provider,
            crate::config::ProviderConfig::Anthropic { .. }
        ) {
            let mut translator = crate::anthropic::StreamTranslator::new(now_seconds());
            return Ok(Answer::Stream(sse::relay_mapped(
                response,
                config.timeout,
                move |data| match serde_json::from_str::<Value>(data) {
                    Ok(event) => translator.event(&event),
                    Err(_) => Vec::new(),
                },
            )));
        }
        return Ok(Answer::Stream(sse::relay(response, config.timeout)));
    }
    let bytes = upstream
        .call(&request, &config.retries, config.timeout)
        .await?;
    let upstream: Value = serde_json::from_slice(&bytes)
        .map_err(|e| GatewayError::BadGateway(format!("the upstream's answer is not JSON: {e}")))?;
    if matches!(
        config.provider,
        crate::config::ProviderConfig::OpenAiCompatible { .. }
    ) {
        // Passed on as it came: the upstream already speaks OpenAI's shape.
        return Ok(Answer::Json(bytes));
    }
    let created = now_seconds();
    let model = config.model_name.as_deref();
    if matches!(
        config.provider,
        crate::config::ProviderConfig::Anthropic { .. }
    ) {
        return Ok(Answer::Json(Bytes::from(crate::anthropic::answer(
            &upstream, created,
        )?)));
    }
    if matches!(
        config.provider,
        crate::config::ProviderConfig::TextGenerationInference { .. }
    ) {
        let generated = provider::read_text_generation_answer(&upstream)?;
        if stream {
            let chunk = provider::model_serving_chunk(kind, model, &[generated.text], created);
            return Ok(Answer::Stream(sse::from_chunks(vec![chunk])));
        }
        return Ok(Answer::Json(Bytes::from(provider::text_generation_answer(
            model, &generated, created,
        ))));
    }
    let answer = provider::read_model_serving_answer(kind, &upstream)?;
    if stream {
        let ServedAnswer::Texts(texts) = &answer else {
            return Err(GatewayError::BadGateway(
                "embeddings cannot be streamed".into(),
            ));
        };
        let chunk = provider::model_serving_chunk(kind, model, texts, created);
        return Ok(Answer::Stream(sse::from_chunks(vec![chunk])));
    }
    Ok(Answer::Json(Bytes::from(provider::model_serving_answer(
        kind, model, &answer, created,
    ))))
}

fn now_seconds() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

//! Endpoints kept in the tracking database (MLflow 3's AI gateway inside the tracking server):
//! each model of an endpoint is a provider, a model name, the values of its secret and its
//! auth config. A call goes to one primary model (the first, or drawn by weight when the
//! endpoint splits traffic) and, when that fails with what a retry could cure (the upstream
//! unreachable, timing out, or answering 429/5xx), to the fallback models in their order, up
//! to the endpoint's `max_attempts`. Each attempt is an ordinary [`crate::gateway`] call, so
//! both ways of configuring the gateway share one engine.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::time::Duration;

use serde_json::{Map, Value};

use mlox_core::net::is_public;

use crate::config::{
    DEFAULT_TIMEOUT, EndpointConfig, EndpointType, OpenAiFamily, ProviderConfig,
    normalize_provider, unsupported_provider,
};
use crate::error::GatewayError;
use crate::gateway::{Answer, call_endpoint, falls_through};
use crate::retry::RetryPolicy;
use crate::upstream::Upstream;

/// One model of a stored endpoint, its secret opened.
#[derive(Clone)]
pub struct StoredModel {
    pub provider: String,
    pub model_name: String,
    pub secret: BTreeMap<String, String>,
    pub auth_config: BTreeMap<String, String>,
    pub weight: f64,
    pub fallback_order: Option<i64>,
    pub primary: bool,
}

impl std::fmt::Debug for StoredModel {
    // The secret stays out of logs.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoredModel")
            .field("provider", &self.provider)
            .field("model_name", &self.model_name)
            .field("weight", &self.weight)
            .field("primary", &self.primary)
            .finish_non_exhaustive()
    }
}

#[derive(Clone, Debug)]
pub struct StoredEndpoint {
    pub id: String,
    pub name: String,
    /// `REQUEST_BASED_TRAFFIC_SPLIT`: primaries drawn by weight; otherwise the first primary.
    pub traffic_split: bool,
    /// Whether a fallback config is set; without one, fallback models are not called.
    pub falls_back: bool,
    /// How many fallback models may be tried; all of them when `None`.
    pub max_fallback_attempts: Option<usize>,
    pub models: Vec<StoredModel>,
}

/// Where stored endpoints come from (the tracking server's store), and where their calls are
/// recorded when the endpoint tracks usage.
pub trait EndpointSource: Send + Sync + 'static {
    /// The endpoint by name with its secrets opened; `GatewayError::NotFound` when there is none.
    fn endpoint(
        &self,
        name: &str,
    ) -> impl std::future::Future<Output = Result<LoadedEndpoint, GatewayError>> + Send;
    /// Every endpoint's name and creation time (ms), for `/v1/models`.
    fn endpoint_names(
        &self,
    ) -> impl std::future::Future<Output = Result<Vec<(String, i64)>, GatewayError>> + Send;
    /// Records one finished call into the endpoint's usage experiment; must not block.
    fn record(&self, experiment_id: &str, call: crate::traces::GatewayCall);
    /// Refuses a call that a budget forbids (`GatewayError::RateLimited` until the window
    /// ends), before any upstream is called.
    fn admit(
        &self,
        call: &CallScope,
    ) -> impl std::future::Future<Output = Result<(), GatewayError>> + Send;
    /// Adds what a finished call cost (USD) to the budgets that count it; must not block.
    fn charge(&self, call: CallScope, cost_usd: f64);
    /// `MLFLOW_GATEWAY_API_BASE_ALLOW_PRIVATE_IPS`: user-chosen base URLs may be private.
    fn allow_private_destinations(&self) -> bool;
}

/// Whose call it is, as budgets count calls.
#[derive(Clone, Debug, Default)]
pub struct CallScope {
    pub endpoint_id: String,
    /// The signed-in caller; `None` when the server has no sign-in.
    pub username: Option<String>,
}

/// A call's answer and the model that gave it.
pub struct Answered<'a> {
    pub answer: Answer,
    pub model: &'a StoredModel,
}

/// An endpoint as one call needs it.
#[derive(Clone, Debug)]
pub struct LoadedEndpoint {
    pub endpoint: StoredEndpoint,
    /// The experiment calls are traced into, when the endpoint tracks usage.
    pub usage_experiment_id: Option<String>,
}

/// The auth-config key naming a base URL the user chose.
const API_BASE: &str = "api_base";

impl StoredModel {
    /// The model as a gateway endpoint config. The secret's `api_key` is the key; the auth
    /// config's `api_base` (and `organization` for OpenAI) are used as MLflow uses them.
    pub fn endpoint_config(
        &self,
        endpoint: &str,
        kind: EndpointType,
    ) -> Result<EndpointConfig, GatewayError> {
        let normalized = normalize_provider(&self.provider);
        let api_key = self.secret.get("api_key").cloned();
        let api_base = self.auth_config.get(API_BASE).filter(|b| !b.is_empty());
        let provider = if normalized == "mlflow-model-serving" {
            let Some(url) = api_base else {
                return Err(GatewayError::BadRequest(format!(
                    "The model '{}' of endpoint '{endpoint}' (mlflow-model-serving) needs the \
                     model server's URL as 'api_base' in its secret's auth config.",
                    self.model_name
                )));
            };
            ProviderConfig::ModelServing {
                model_server_url: url.trim_end_matches('/').to_string(),
                chat_messages: true,
                token: api_key,
            }
        } else if normalized == "anthropic" {
            let Some(api_key) = api_key else {
                return Err(GatewayError::BadRequest(format!(
                    "The model '{}' of endpoint '{endpoint}' has no API key: its secret was \
                     deleted or holds no 'api_key'.",
                    self.model_name
                )));
            };
            ProviderConfig::Anthropic {
                api_base: api_base
                    .map_or(crate::anthropic::DEFAULT_API_BASE, String::as_str)
                    .trim_end_matches('/')
                    .to_string(),
                api_key,
                version: self
                    .auth_config
                    .get("anthropic_version")
                    .cloned()
                    .unwrap_or_else(|| crate::anthropic::DEFAULT_VERSION.into()),
            }
        } else if let Some(family) = OpenAiFamily::from_name(&normalized) {
            if family == OpenAiFamily::OpenAi
                && self
                    .auth_config
                    .get("api_type")
                    .is_some_and(|t| !t.eq_ignore_ascii_case("openai"))
            {
                return Err(GatewayError::NotImplemented(
                    "Azure OpenAI (auth config 'api_type') is not implemented in mlox yet".into(),
                ));
            }
            if api_key.is_none() && family != OpenAiFamily::Ollama {
                return Err(GatewayError::BadRequest(format!(
                    "The model '{}' of endpoint '{endpoint}' has no API key: its secret was \
                     deleted or holds no 'api_key'.",
                    self.model_name
                )));
            }
            ProviderConfig::OpenAiCompatible {
                provider: family,
                api_base: api_base
                    .map_or(family.default_api_base(), String::as_str)
                    .trim_end_matches('/')
                    .to_string(),
                api_key,
                organization: self.auth_config.get("organization").cloned(),
                azure: None,
            }
        } else {
            return Err(GatewayError::NotImplemented(unsupported_provider(
                &self.provider,
            )));
        };
        Ok(EndpointConfig {
            name: endpoint.to_string(),
            endpoint_type: kind,
            model_name: Some(self.model_name.clone()),
            provider,
            limit: None,
            // One attempt per model: falling back is how a stored endpoint retries.
            retries: RetryPolicy::disabled(),
            timeout: DEFAULT_TIMEOUT,
            fallbacks: Vec::new(),
        })
    }

    /// The base URL the user set, which must not lead to a private address unless allowed.
    pub fn user_destination(&self) -> Option<&str> {
        self.auth_config
            .get(API_BASE)
            .map(String::as_str)
            .filter(|b| !b.is_empty())
    }
}

impl StoredEndpoint {
    /// The models a call tries, in order: one primary, then the fallbacks.
    fn attempts(&self) -> Result<Vec<&StoredModel>, GatewayError> {
        let primaries: Vec<&StoredModel> = self.models.iter().filter(|m| m.primary).collect();
        let first = if self.traffic_split {
            let total: f64 = primaries.iter().map(|m| m.weight.max(0.0)).sum();
            let mut draw = fastrand::f64() * total;
            primaries
                .iter()
                .find(|m| {
                    draw -= m.weight.max(0.0);
                    draw < 0.0
                })
                .or(primaries.last())
                .copied()
        } else {
            primaries.first().copied()
        };
        let Some(first) = first else {
            return Err(GatewayError::NotFound(format!(
                "Endpoint '{}' has no PRIMARY models configured",
                self.name
            )));
        };
        let mut order = vec![first];
        if self.falls_back {
            let mut fallbacks: Vec<&StoredModel> =
                self.models.iter().filter(|m| !m.primary).collect();
            fallbacks.sort_by_key(|m| m.fallback_order.unwrap_or(i64::MAX));
            let allowed = self.max_fallback_attempts.unwrap_or(fallbacks.len());
            order.extend(fallbacks.into_iter().take(allowed));
        }
        Ok(order)
    }

    /// One call: the first model that answers, or the last failure.
    pub async fn invoke(
        &self,
        upstream: &Upstream,
        kind: EndpointType,
        body: Map<String, Value>,
        allow_private_destinations: bool,
    ) -> Result<Answered<'_>, GatewayError> {
        let attempts = self.attempts()?;
        let mut last = None;
        for model in attempts {
            let config = model.endpoint_config(&self.name, kind)?;
            if let Some(destination) = model.user_destination()
                && !allow_private_destinations
            {
                check_public_destination(destination).await?;
            }
            match call_endpoint(upstream, &config, body.clone()).await {
                Ok(answer) => return Ok(Answered { answer, model }),
                Err(e) if falls_through(&e) => {
                    tracing::warn!(endpoint = %self.name, model = %model.model_name, error = %e, "gateway model failed; trying the next");
                    last = Some(e);
                }
                Err(e) => return Err(e),
            }
        }
        Err(last.unwrap_or_else(|| {
            GatewayError::NotFound(format!("Endpoint '{}' has no models", self.name))
        }))
    }
}

/// Refuses a user-chosen base URL whose host resolves to a private, loopback or link-local
/// address (a tracking-server user must not reach the server's own network through it).
pub async fn check_public_destination(base: &str) -> Result<(), GatewayError> {
    let refused = |why: String| {
        GatewayError::BadRequest(format!(
            "The api_base '{base}' {why}. Set MLFLOW_GATEWAY_API_BASE_ALLOW_PRIVATE_IPS=true to allow private addresses."
        ))
    };
    let url = reqwest::Url::parse(base).map_err(|e| refused(format!("is not a URL ({e})")))?;
    let host = url
        .host_str()
        .ok_or_else(|| refused("names no host".into()))?
        .trim_matches(['[', ']'])
        .to_string();
    let port = url.port_or_known_default().unwrap_or(443);
    let addresses: Vec<IpAddr> = match host.parse::<IpAddr>() {
        Ok(ip) => vec![ip],
        Err(_) => {
            let lookup = tokio::net::lookup_host((host.as_str(), port));
            tokio::time::timeout(Duration::from_secs(5), lookup)
                .await
                .map_err(|_| refused(format!("could not be resolved in time ('{host}')")))?
                .map_err(|e| refused(format!("could not be resolved ({e})")))?
                .map(|a| a.ip())
                .collect()
        }
    };
    match addresses.into_iter().find(|ip| !is_public(*ip)) {
        Some(ip) => Err(refused(format!("resolves to the non-public address {ip}"))),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn model(provider: &str, primary: bool, order: Option<i64>) -> StoredModel {
        StoredModel {
            provider: provider.into(),
            model_name: format!("{provider}-{order:?}"),
            secret: BTreeMap::from([("api_key".into(), "sk-1234567890".into())]),
            auth_config: BTreeMap::new(),
            weight: 1.0,
            fallback_order: order,
            primary,
        }
    }

    fn endpoint(models: Vec<StoredModel>, falls_back: bool, max: Option<usize>) -> StoredEndpoint {
        StoredEndpoint {
            id: "e-1".into(),
            name: "e".into(),
            traffic_split: false,
            falls_back,
            max_fallback_attempts: max,
            models,
        }
    }

    #[test]
    fn a_call_tries_the_primary_then_fallbacks_in_their_order_up_to_max_attempts() {
        let e = endpoint(
            vec![
                model("openai", false, Some(2)),
                model("openai", true, None),
                model("groq", false, Some(0)),
                model("xai", false, Some(1)),
            ],
            true,
            Some(2),
        );
        let names: Vec<String> = e
            .attempts()
            .unwrap()
            .iter()
            .map(|m| m.model_name.clone())
            .collect();
        assert_eq!(names, ["openai-None", "groq-Some(0)", "xai-Some(1)"]);
        let without_config = endpoint(e.models.clone(), false, None);
        assert_eq!(without_config.attempts().unwrap().len(), 1);
    }

    #[test]
    fn traffic_split_draws_primaries_by_weight() {
        let mut heavy = model("openai", true, None);
        heavy.weight = 0.9;
        heavy.model_name = "heavy".into();
        let mut light = model("openai", true, None);
        light.weight = 0.1;
        light.model_name = "light".into();
        let e = StoredEndpoint {
            traffic_split: true,
            ..endpoint(vec![heavy, light], false, None)
        };
        fastrand::seed(7);
        let heavy_draws = (0..1000)
            .filter(|_| e.attempts().unwrap()[0].model_name == "heavy")
            .count();
        assert!((850..950).contains(&heavy_draws), "{heavy_draws}");
    }

    #[test]
    fn an_endpoint_without_primaries_is_refused() {
        let e = endpoint(vec![model("openai", false, Some(0))], true, None);
        assert!(matches!(e.attempts(), Err(GatewayError::NotFound(_))));
    }

    #[test]
    fn providers_map_to_the_engine_or_are_refused_by_name() {
        let mut m = model("openai", true, None);
        m.auth_config
            .insert("api_base".into(), "http://127.0.0.1:9/v1/".into());
        let config = m.endpoint_config("e", EndpointType::Chat).unwrap();
        match config.provider {
            ProviderConfig::OpenAiCompatible {
                api_base, api_key, ..
            } => {
                assert_eq!(api_base, "http://127.0.0.1:9/v1");
                assert_eq!(api_key.as_deref(), Some("sk-1234567890"));
            }
            other => panic!("{other:?}"),
        }
        let refused = model("gemini", true, None)
            .endpoint_config("e", EndpointType::Chat)
            .unwrap_err();
        assert!(
            refused.to_string().contains("not implemented in mlox yet"),
            "{refused}"
        );
        assert!(matches!(
            model("anthropic", true, None)
                .endpoint_config("e", EndpointType::Chat)
                .unwrap()
                .provider,
            ProviderConfig::Anthropic { .. }
        ));
        let mut orphan = model("openai", true, None);
        orphan.secret.clear();
        assert!(orphan.endpoint_config("e", EndpointType::Chat).is_err());
    }

    #[tokio::test]
    async fn private_destinations_are_refused() {
        for base in [
            "http://127.0.0.1:8080/v1",
            "http://[::1]/v1",
            "http://10.1.2.3",
            "http://169.254.169.254/latest",
        ] {
            let err = check_public_destination(base).await.unwrap_err();
            assert!(err.to_string().contains("non-public"), "{base}: {err}");
        }
        assert!(
            check_public_destination("https://93.184.216.34/v1")
                .await
                .is_ok()
        );
    }
}

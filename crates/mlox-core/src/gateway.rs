//! The AI gateway kept in the tracking database (MLflow 3's `/api/3.0/mlflow/gateway/*`):
//! provider secrets, model definitions (a provider and model bound to a secret), endpoints
//! that route to model definitions (primary by weight, then fallbacks in order), bindings of
//! endpoints to resources that call them (scorers) and endpoint tags. This module holds the
//! entities as MLflow's API carries them and MLflow's rules for them: ids, endpoint names,
//! linkage types, secret masking, and the `gateway:/<endpoint>` model references of scorers.
//! Sealing secrets and calling providers belong to other crates.

use std::collections::BTreeMap;

use crate::{Error, Result};
use serde::Serialize;
use serde_json::Value;

/// A stored secret as the API shows it: never the value, only its masked form.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct GatewaySecretInfo {
    pub secret_id: String,
    pub secret_name: String,
    pub masked_values: BTreeMap<String, String>,
    pub created_at: i64,
    pub last_updated_at: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub provider: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub created_by: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_updated_by: Option<String>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub auth_config: BTreeMap<String, String>,
}

/// A provider's model bound to the secret that pays for it. The secret is `None` once it was
/// deleted: the definition stays, unusable until it is given another.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct GatewayModelDefinition {
    pub model_definition_id: String,
    pub name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub secret_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub secret_name: Option<String>,
    pub provider: String,
    pub model_name: String,
    pub created_at: i64,
    pub last_updated_at: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub created_by: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_updated_by: Option<String>,
}

/// `PRIMARY` models share an endpoint's traffic by weight; `FALLBACK` models are tried in
/// `fallback_order` when a primary fails.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub enum LinkageType {
    #[serde(rename = "PRIMARY")]
    Primary,
    #[serde(rename = "FALLBACK")]
    Fallback,
}

impl LinkageType {
    pub fn as_str(self) -> &'static str {
        match self {
            LinkageType::Primary => "PRIMARY",
            LinkageType::Fallback => "FALLBACK",
        }
    }

    /// The proto enum's name or number; `LINKAGE_TYPE_UNSPECIFIED` and unknown values are
    /// refused as MLflow refuses them.
    pub fn parse(value: &Value, location: &str) -> Result<LinkageType> {
        match value {
            Value::String(s) if s == "PRIMARY" => Ok(LinkageType::Primary),
            Value::String(s) if s == "FALLBACK" => Ok(LinkageType::Fallback),
            Value::Number(n) if n.as_i64() == Some(1) => Ok(LinkageType::Primary),
            Value::Number(n) if n.as_i64() == Some(2) => Ok(LinkageType::Fallback),
            _ => Err(Error::invalid(format!(
                "Invalid or missing value for required parameter 'linkage_type' in {location}. \
                 Must be one of: PRIMARY, FALLBACK."
            ))),
        }
    }

    pub fn from_stored(text: &str) -> LinkageType {
        if text == "FALLBACK" {
            LinkageType::Fallback
        } else {
            LinkageType::Primary
        }
    }
}

/// One model an endpoint is to use, as a create, update or attach request names it.
#[derive(Clone, Debug, PartialEq)]
pub struct ModelConfig {
    pub model_definition_id: String,
    pub linkage_type: LinkageType,
    pub weight: f64,
    pub fallback_order: Option<i64>,
}

/// An endpoint's use of one model definition.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct GatewayModelMapping {
    pub mapping_id: String,
    pub endpoint_id: String,
    pub model_definition_id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub model_definition: Option<GatewayModelDefinition>,
    pub weight: f64,
    pub created_at: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub created_by: Option<String>,
    pub linkage_type: LinkageType,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fallback_order: Option<i64>,
}

/// How an endpoint falls back; `strategy` is `SEQUENTIAL` (the only one MLflow has).
#[derive(Clone, Debug, Default, PartialEq, Serialize, serde::Deserialize)]
pub struct FallbackConfig {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub strategy: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_attempts: Option<i64>,
}

pub const ROUTING_STRATEGIES: [&str; 1] = ["REQUEST_BASED_TRAFFIC_SPLIT"];
pub const FALLBACK_STRATEGIES: [&str; 1] = ["SEQUENTIAL"];

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct GatewayEndpointTag {
    pub key: String,
    pub value: String,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct GatewayEndpoint {
    pub endpoint_id: String,
    pub name: String,
    pub created_at: i64,
    pub last_updated_at: i64,
    pub model_mappings: Vec<GatewayModelMapping>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub created_by: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_updated_by: Option<String>,
    pub tags: Vec<GatewayEndpointTag>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub routing_strategy: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fallback_config: Option<FallbackConfig>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub experiment_id: Option<String>,
    pub usage_tracking: bool,
}

/// A resource (a scorer) that calls an endpoint.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct GatewayEndpointBinding {
    pub endpoint_id: String,
    pub resource_type: String,
    pub resource_id: String,
    pub created_at: i64,
    pub last_updated_at: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub created_by: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_updated_by: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub display_name: Option<String>,
}

/// The resource types MLflow lets bind to an endpoint.
pub const RESOURCE_TYPES: [&str; 1] = ["scorer"];

pub fn new_secret_id() -> String {
    format!("s-{}", uuid::Uuid::new_v4().simple())
}
pub fn new_model_definition_id() -> String {
    format!("d-{}", uuid::Uuid::new_v4().simple())
}
pub fn new_endpoint_id() -> String {
    format!("e-{}", uuid::Uuid::new_v4().simple())
}
pub fn new_mapping_id() -> String {
    format!("m-{}", uuid::Uuid::new_v4().simple())
}

/// The experiment an endpoint's calls are traced into when none is named.
pub fn usage_experiment_name(endpoint_name: &str) -> String {
    format!("gateway/{endpoint_name}")
}

/// Letters, digits, `_`, `-` and `.`, as MLflow's gateway names endpoints.
pub fn check_endpoint_name(name: &str) -> Result<()> {
    if !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
    {
        Ok(())
    } else {
        Err(Error::invalid(format!(
            "Invalid endpoint name '{name}'. Name can only contain letters, numbers, \
             underscores, hyphens, and dots."
        )))
    }
}

pub fn check_resource_type(resource_type: &str) -> Result<()> {
    if RESOURCE_TYPES.contains(&resource_type) {
        Ok(())
    } else {
        Err(Error::invalid(format!(
            "Invalid resource_type '{resource_type}'. Must be one of: {}.",
            RESOURCE_TYPES.join(", ")
        )))
    }
}

/// What is shown of one secret value: the first three and last four characters, or `***`
/// when the value is shorter than eight (showing parts of it would give too much away).
pub fn mask_value(value: &str) -> String {
    let chars: Vec<char> = value.chars().collect();
    if chars.len() < 8 {
        return "***".into();
    }
    let prefix: String = chars[..3].iter().collect();
    let suffix: String = chars[chars.len() - 4..].iter().collect();
    format!("{prefix}...{suffix}")
}

pub fn mask_values(values: &BTreeMap<String, String>) -> BTreeMap<String, String> {
    values
        .iter()
        .map(|(k, v)| (k.clone(), mask_value(v)))
        .collect()
}

/// A secret needs at least one value, and no empty key or value.
pub fn check_secret_values(values: &BTreeMap<String, String>) -> Result<()> {
    if values.is_empty() {
        return Err(Error::invalid(
            "Missing value for required parameter 'secret_value'.",
        ));
    }
    if values
        .iter()
        .any(|(k, v)| k.trim().is_empty() || v.is_empty())
    {
        return Err(Error::invalid(
            "Invalid value for parameter 'secret_value': every key and value must be non-empty.",
        ));
    }
    Ok(())
}

/// The prefix of a scorer model served by the gateway: `gateway:/<endpoint name or id>`.
pub const GATEWAY_MODEL_PREFIX: &str = "gateway:/";

/// The JSON objects in a serialized scorer that name its judge model, outermost first.
const SCORER_MODEL_HOLDERS: [&str; 3] = [
    "instructions_judge_pydantic_data",
    "builtin_scorer_pydantic_data",
    "third_party_scorer_data",
];

fn scorer_model_holder(serialized: &mut Value) -> Option<&mut serde_json::Map<String, Value>> {
    let object = serialized.as_object_mut()?;
    if let Some(key) = SCORER_MODEL_HOLDERS
        .iter()
        .find(|k| object.get(**k).is_some_and(Value::is_object))
    {
        return object.get_mut(*key)?.as_object_mut();
    }
    let base = object
        .get_mut("memory_augmented_judge_data")?
        .get_mut("base_judge")?;
    scorer_model_holder(base)
}

/// The endpoint reference of a serialized scorer whose judge is served by the gateway.
pub fn scorer_gateway_ref(serialized: &Value) -> Option<String> {
    let mut copy = serialized.clone();
    let model = scorer_model_holder(&mut copy)?.get("model")?.as_str()?;
    model
        .strip_prefix(GATEWAY_MODEL_PREFIX)
        .filter(|r| !r.is_empty())
        .map(str::to_string)
}

/// The serialized scorer with its gateway endpoint reference replaced (a name by an id when
/// stored, so renaming an endpoint keeps its scorers; an id by the name when read).
pub fn with_scorer_gateway_ref(serialized: &Value, endpoint_ref: &str) -> Value {
    let mut copy = serialized.clone();
    if let Some(holder) = scorer_model_holder(&mut copy) {
        holder.insert(
            "model".into(),
            Value::String(format!("{GATEWAY_MODEL_PREFIX}{endpoint_ref}")),
        );
    }
    copy
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn masking_shows_three_leading_and_four_trailing_characters() {
        assert_eq!(mask_value("AKIATEST1234"), "AKI...1234");
        assert_eq!(mask_value("secret123abc"), "sec...3abc");
        assert_eq!(mask_value("12345678"), "123...5678");
        assert_eq!(mask_value("1234567"), "***");
        assert_eq!(mask_value(""), "***");
        assert_eq!(mask_value("ключ-секрет-1"), "клю...ет-1");
    }

    #[test]
    fn endpoint_names_follow_mlflows_rule() {
        assert!(check_endpoint_name("chat_v1.2-b").is_ok());
        for bad in ["", "a b", "a/b", "ä"] {
            let err = check_endpoint_name(bad).unwrap_err();
            assert!(err.message.contains("Invalid endpoint name"), "{bad}");
        }
    }

    #[test]
    fn linkage_types_are_read_by_name_or_number() {
        assert_eq!(
            LinkageType::parse(&json!("FALLBACK"), "x").unwrap(),
            LinkageType::Fallback
        );
        assert_eq!(
            LinkageType::parse(&json!(1), "x").unwrap(),
            LinkageType::Primary
        );
        let err =
            LinkageType::parse(&json!("LINKAGE_TYPE_UNSPECIFIED"), "model_configs[0]").unwrap_err();
        assert!(err.message.contains("in model_configs[0]"));
    }

    #[test]
    fn secret_values_need_a_key_and_a_value() {
        let mut values = BTreeMap::new();
        assert!(check_secret_values(&values).is_err());
        values.insert("api_key".to_string(), String::new());
        assert!(check_secret_values(&values).is_err());
        values.insert("api_key".to_string(), "sk".to_string());
        assert!(check_secret_values(&values).is_ok());
    }

    #[test]
    fn a_scorers_gateway_model_is_found_and_replaced_where_mlflow_keeps_it() {
        let judge = json!({"instructions_judge_pydantic_data": {"model": "gateway:/chat", "x": 1}});
        assert_eq!(scorer_gateway_ref(&judge).as_deref(), Some("chat"));
        let stored = with_scorer_gateway_ref(&judge, "e-1");
        assert_eq!(
            stored,
            json!({"instructions_judge_pydantic_data": {"model": "gateway:/e-1", "x": 1}})
        );
        let nested = json!({"memory_augmented_judge_data": {"base_judge":
            {"builtin_scorer_pydantic_data": {"model": "gateway:/e-2"}}}});
        assert_eq!(scorer_gateway_ref(&nested).as_deref(), Some("e-2"));
        assert_eq!(
            scorer_gateway_ref(
                &json!({"instructions_judge_pydantic_data": {"model": "openai:/gpt"}})
            ),
            None
        );
        assert_eq!(
            scorer_gateway_ref(&json!({"call_source": "def f(): ..."})),
            None
        );
    }
}
